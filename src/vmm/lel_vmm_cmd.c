/* The host channel's requests for streamed commands (src/guest's LEL_OP_CMD_READ, _STDIN,
 * _POLL, _RESIZE) and signals: thin wrappers over lel_vm_call that check every length the guest gives.
 * Same threading as lel_vmm.c: called from the VM's owner, one at a time. */
#include "lel_vmm.h"

#include "../guest/lel_guest_abi.h"

#include <errno.h>
#include <string.h>

int lel_vm_cmd_signal(lel_vm_t *vm, uint32_t id, int sig)
{
    uint64_t arg[4] = {id, sig > 0 && sig < 64 ? (uint64_t)sig : 9, 0, 0};
    int r = lel_vm_call(vm, LEL_OP_CMD_KILL, arg, NULL, 5000);
    return r > 0 ? -r : r;
}

int lel_vm_cmd_read(lel_vm_t *vm, uint32_t id, uint64_t *out_len, uint64_t *err_len, int *ended)
{
    uint64_t arg[4] = {id, 0, 0, 0}, ret[4] = {0};
    int r = lel_vm_call(vm, LEL_OP_CMD_READ, arg, ret, 5000);
    *out_len = *err_len = 0;
    *ended = 0;
    if (r != 0)
        return r > 0 ? -r : r;
    *out_len = ret[1] < LEL_BULK_HALF ? ret[1] : LEL_BULK_HALF; /* never trust the guest's lengths */
    *err_len = ret[2] < LEL_BULK_HALF ? ret[2] : LEL_BULK_HALF;
    *ended = (ret[3] & LEL_CMD_ENDED) != 0;
    return 0;
}

int lel_vm_cmd_stdin(lel_vm_t *vm, uint32_t id, const void *p, size_t n, int close, size_t *taken)
{
    uint64_t arg[4] = {id, n < LEL_BULK_SIZE ? n : LEL_BULK_SIZE, close ? 1 : 0, 0}, ret[4] = {0};
    int r = lel_vm_call_bulk(vm, LEL_OP_CMD_STDIN, arg, p ? p : "", (size_t)arg[1], ret, 5000);
    *taken = r == 0 || r == LEL_ST_EPIPE ? (size_t)(ret[0] < arg[1] ? ret[0] : arg[1]) : 0;
    return r > 0 ? -r : r;
}

int lel_vm_cmd_resize(lel_vm_t *vm, uint32_t id, uint16_t cols, uint16_t rows)
{
    uint64_t arg[4] = {id, cols, rows, 0};
    int r = lel_vm_call(vm, LEL_OP_CMD_RESIZE, arg, NULL, 5000);
    return r > 0 ? -r : r;
}

int lel_vm_cmd_poll(lel_vm_t *vm, struct lel_cmd_ready *out, size_t cap, size_t *n)
{
    uint64_t arg[4] = {0}, ret[4] = {0};
    uint32_t pairs[LEL_CHAN_DATA_MAX / 4];
    size_t len = 0;
    *n = 0;
    int r = lel_vm_call_data(vm, LEL_OP_CMD_POLL, arg, "", 0, ret, pairs, sizeof(pairs), &len, 5000);
    if (r != 0)
        return r > 0 ? -r : r;
    for (size_t i = 0; i + 1 < len / 4 && *n < cap; i += 2)
        out[(*n)++] = (struct lel_cmd_ready){pairs[i], pairs[i + 1]};
    return 0;
}
