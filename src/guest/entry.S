/* Guest entry and interrupt stubs. The VMM enters _start in 64-bit mode with paging on. */
    .section .text.entry, "ax"
    .globl _start
_start:
    movq $0x9f000, %rsp
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
