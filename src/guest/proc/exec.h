/* Loading a program into a new address space: ELF images, "#!" scripts, argument stacks. */
#ifndef LEL_GUEST_PROC_EXEC_H
#define LEL_GUEST_PROC_EXEC_H

#include <stdint.h>

struct inode;
struct mm;
struct proc;

/* Reads an executable's bytes from a file or the built-in image. */
struct image {
    struct inode *ino;
    const uint8_t *mem;
    uint64_t len;
};

#define INTERP_MAX 256

struct args {
    struct mm *mm; /* the new address space (owned: load_program consumes it) */
    uint64_t bottom;
    uint32_t argc, envc;
    uint64_t room; /* of ARG_MAX, what is left */
};

int args_init(struct args *a);

/* `count` NUL-separated strings from kernel memory (a command's argv or env), below the others. */
int args_put_list(struct args *a, const char *list, uint32_t count);

/* A user's argv or envp array (NULL: none), last string first so they keep their order. */
int args_put_user(struct args *a, uint64_t uvec, uint32_t *count);

/* The x87/SSE state a new program starts with: FCW 0x37f, MXCSR 0x1f80, registers zero. When
 * the program is already running (execve) the live registers are reset too. */
void fx_reset(struct proc *p);

/* Loads `im` into the address space `a` holds the arguments in (consumed, whatever
 * happens); on success the current process runs on it (the old one is freed) and entry and
 * sp say where to start. */
int load_program(const struct image *im, struct args *a, uint64_t *entry, uint64_t *sp);

/* The program at `path` (relative to `cwd`), or the file `ino` itself (image_of_inode): a
 * regular file with an execute bit (EISDIR, EACCES else). `follow`: a final symlink is
 * followed (else it is E_LOOP, as execveat's AT_SYMLINK_NOFOLLOW says). */
int image_of(struct inode *cwd, const char *path, struct image *im);
int image_at(struct inode *cwd, const char *path, int follow, struct image *im);
int image_of_inode(struct inode *ino, struct image *im);

/* A script ("#!interp [arg]" on its first line) runs as `interp [arg] path argv[1..]`, as on
 * Linux: in `a` those take argv[0]'s place, `im` becomes the interpreter and its path goes to
 * `exe` (INTERP_MAX bytes; `path` may be `exe` itself: a nested script is the last one's
 * interpreter). 0 when `im` is not a script. */
int shebang(struct image *im, const char *path, struct args *a, char *exe);

#endif
