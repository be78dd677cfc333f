/* Guest entry and interrupt stubs. The VMM enters _start in 64-bit mode with paging on. */
    .section .text.entry, "ax"
    .globl _start
_start:
    movq $0xffffffff8009f000, %rsp
    xorl %ebp, %ebp
    call kmain
1:  hlt
    jmp 1b

/* Every vector gets a stub that pushes a dummy error code when the CPU gives none, then the
 * vector number, and jumps to the common path, which saves the caller-saved registers and
 * calls isr(vector, frame). */
    .text
    .macro stub vec
    .align 16
isr_stub_\vec:
    .if (\vec == 8 || (\vec >= 10 && \vec <= 14) || \vec == 17 || \vec == 21 || \vec == 29 || \vec == 30)
    .else
    pushq $0
    .endif
    pushq $\vec
    jmp isr_common
    .endm

    .altmacro
    .set i, 0
    .rept 256
    stub %i
    .set i, i + 1
    .endr

isr_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq 72(%rsp), %rdi      /* vector */
    leaq 80(%rsp), %rsi      /* error code, then the CPU frame (rip, cs, rflags, rsp, ss) */
    call isr
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp
    iretq

/* syscall from user mode: CPU (or PVM) left RCX = user RIP, R11 = user RFLAGS, RSP = user
 * stack. Switch to the syscall stack, save the user registers as struct uregs, dispatch, and
 * return with sysretq. */
    .globl syscall_entry
syscall_entry:
    movq %rsp, user_rsp_scratch(%rip)
    movq syscall_stack_top(%rip), %rsp
    pushq user_rsp_scratch(%rip)
    pushq %r11
    pushq %rcx
    pushq %rax
    pushq %rdi
    pushq %rsi
    pushq %rdx
    pushq %r10
    pushq %r8
    pushq %r9
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    call syscall_dispatch
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    popq %r9
    popq %r8
    popq %r10
    popq %rdx
    popq %rsi
    popq %rdi
    addq $8, %rsp
    popq %rcx
    popq %r11
    popq %rsp
    sysretq

/* enter_user(rip, rsp): first entry into user mode, interrupts as in RFLAGS 0x202 */
    .globl enter_user
enter_user:
    movq %rdi, %rcx
    movq %rsi, %rsp
    movq $0x202, %r11
    xorl %eax, %eax
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebx, %ebx
    xorl %ebp, %ebp
    xorq %r8, %r8
    xorq %r9, %r9
    xorq %r10, %r10
    xorq %r12, %r12
    xorq %r13, %r13
    xorq %r14, %r14
    xorq %r15, %r15
    sysretq

/* ctx_save(ctx) returns 0; ctx_restore(ctx, v) makes that ctx_save return v (v != 0). */
    .globl ctx_save
ctx_save:
    movq %rbx, 0(%rdi)
    movq %rbp, 8(%rdi)
    movq %r12, 16(%rdi)
    movq %r13, 24(%rdi)
    movq %r14, 32(%rdi)
    movq %r15, 40(%rdi)
    leaq 8(%rsp), %rax
    movq %rax, 48(%rdi)
    movq (%rsp), %rax
    movq %rax, 56(%rdi)
    xorl %eax, %eax
    ret
    .globl ctx_restore
ctx_restore:
    movq 0(%rdi), %rbx
    movq 8(%rdi), %rbp
    movq 16(%rdi), %r12
    movq 24(%rdi), %r13
    movq 32(%rdi), %r14
    movq 40(%rdi), %r15
    movq 48(%rdi), %rsp
    movq %rsi, %rax
    jmp *56(%rdi)

    .section .bss
    .align 8
user_rsp_scratch:
    .quad 0

    .section .text
    .macro stubaddr vec
    .quad isr_stub_\vec
    .endm

    .section .rodata
    .globl isr_stubs
isr_stubs:
    .set i, 0
    .rept 256
    stubaddr %i
    .set i, i + 1
    .endr
