/* lelctl's configuration: flags, then the environment, then the config file (see lel_cli.h). */
#include "lel_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define DEFAULT_URL "http://127.0.0.1:3000"

/* Reads the top-level `url` and `api_key` scalars of a YAML mapping into *url / *key (strdup'd,
 * only where still NULL). Other keys are refused so a typo does not silently fall back to a
 * default. Returns 0, -ENOENT for a missing file, or -EINVAL after printing why. */
static int read_file(const char *path, char **url, char **key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? -ENOENT : (lel_cli_err("cannot read %s: %s", path, strerror(errno)), -EINVAL);
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int depth = 0, rc = 0, done = 0;
    char *pending = NULL; /* a key of the top mapping waiting for its value */
    while (!done && !rc) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            lel_cli_err("%s:%zu: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "invalid YAML");
            rc = -EINVAL;
            break;
        }
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth == 1 && pending) {
                lel_cli_err("%s: '%s' must be a string", path, pending);
                rc = -EINVAL;
            }
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT: depth--; break;
        case YAML_SCALAR_EVENT:
            if (depth != 1)
                break;
            if (!pending) {
                pending = strdup((const char *)ev.data.scalar.value);
                if (strcmp(pending, "url") && strcmp(pending, "api_key")) {
                    lel_cli_err("%s:%zu: unknown key '%s' (known: url, api_key)", path, ev.start_mark.line + 1, pending);
                    rc = -EINVAL;
                }
            } else {
                char **dst = !strcmp(pending, "url") ? url : key;
                if (!*dst)
                    *dst = strdup((const char *)ev.data.scalar.value);
                free(pending);
                pending = NULL;
            }
            break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    free(pending);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

int lel_cli_config_load(struct lel_cli *cli, const char *path)
{
    if (!cli->url)
        cli->url = env_dup("LELANTOS_URL");
    if (!cli->key)
        cli->key = env_dup("LELANTOS_API_KEY");
    char def[4096];
    int explicit = path != NULL || getenv("LELANTOS_CONFIG") != NULL;
    if (!path)
        path = getenv("LELANTOS_CONFIG");
    if (!path) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(def, sizeof(def), "%s/lelantos/config.yaml", xdg);
        else
            snprintf(def, sizeof(def), "%s/.config/lelantos/config.yaml", home ? home : ".");
        path = def;
    }
    if (!cli->url || !cli->key) {
        int r = read_file(path, &cli->url, &cli->key);
        if (r == -EINVAL || (r == -ENOENT && explicit)) {
            if (r == -ENOENT)
                lel_cli_err("config file %s does not exist", path);
            return LEL_EXIT_USAGE;
        }
    }
    if (!cli->url)
        cli->url = strdup(DEFAULT_URL);
    size_t n = strlen(cli->url);
    while (n > 0 && cli->url[n - 1] == '/')
        cli->url[--n] = 0;
    if (strncmp(cli->url, "http://", 7) && strncmp(cli->url, "https://", 8)) {
        lel_cli_err("the URL '%s' must start with http:// or https://", cli->url);
        return LEL_EXIT_USAGE;
    }
    return 0;
}
