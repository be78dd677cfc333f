/* Internals shared by lelctl's command files (not the groups' entry points: lel_cli.h). */
#ifndef LEL_CLI_SANDBOX_H
#define LEL_CLI_SANDBOX_H

#include "lel_cli.h"

/** Parses "K=V" into obj (option `opt` for the message); -1 (printed) without '='. */
int lel__cli_kv(json_t *obj, const char *opt, const char *arg);
/** "/sandboxes/<escaped id><rest>" into buf. */
void lel__cli_sbx_path(char *buf, size_t cap, const char *id, const char *rest);
/** GETs a list at path, following X-Next-Token unless one_page; *all gets every item (owned). */
int lel__cli_list_all(struct lel_cli *cli, const char *path, int one_page, json_t **all);
/** DELETE <prefix>/<id> for each id left after the options; the first failure's exit code. */
int lel__cli_delete_each(struct lel_cli *cli, int argc, char **argv, const char *prefix, const char *done);
/** sandbox exec and sandbox cp (lel_cli_exec.c). */
int lel__cli_exec(struct lel_cli *cli, int argc, char **argv);
int lel__cli_cp(struct lel_cli *cli, int argc, char **argv);

#endif
