/* A static program test_e2e_vm_files copies into a sandbox to give a file extended attributes
 * and read them back (base has no setfattr/getfattr):
 *   xattr_tool set FILE NAME VALUE   setxattr(2)
 *   xattr_tool dump FILE             each attribute as "name=value\n", names sorted
 * Exit 0, or 1 with the failing call's errno on stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dump(const char *file)
{
    static char names[65536], value[65536];
    char *list[4096];
    ssize_t n = listxattr(file, names, sizeof(names));
    if (n < 0) {
        fprintf(stderr, "listxattr: %s\n", strerror(errno));
        return 1;
    }
    size_t k = 0;
    for (char *p = names; p < names + n && k < 4096; p += strlen(p) + 1)
        list[k++] = p;
    qsort(list, k, sizeof(list[0]), cmp);
    for (size_t i = 0; i < k; i++) {
        ssize_t vl = getxattr(file, list[i], value, sizeof(value));
        if (vl < 0) {
            fprintf(stderr, "getxattr %s: %s\n", list[i], strerror(errno));
            return 1;
        }
        printf("%s=%.*s\n", list[i], (int)vl, value);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "set")) {
        if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) == 0)
            return 0;
        fprintf(stderr, "setxattr: %s\n", strerror(errno));
        return 1;
    }
    if (argc == 3 && !strcmp(argv[1], "dump"))
        return dump(argv[2]);
    fprintf(stderr, "usage: xattr_tool set FILE NAME VALUE | dump FILE\n");
    return 2;
}
