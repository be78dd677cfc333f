#include "promtext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double prom_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

int prom_have(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

int prom_lint(const char *dir, const char *text)
{
    char path[300], cmd[700];
    snprintf(path, sizeof(path), "%s/scrape.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "promtool check metrics failed on %s (rc %d)\n", path, rc);
    return rc;
}
