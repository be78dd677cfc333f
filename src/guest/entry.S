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
    cld                      /* user code may have left DF set; C code assumes it clear */
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
    testl %eax, %eax
    jnz isr_preempt
isr_return:
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

/* Preempting user mode: the interrupt arrived on the fixed irq stack (TSS.rsp0). Add the
 * callee-saved registers, move the whole frame (22 quadwords) to the top of the current
 * process's kernel stack (idle while it is in user mode), and leave the CPU from there; when
 * the process is scheduled again, proc_preempt returns and the frame is restored. */
isr_preempt:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rsi
    movq syscall_stack_top(%rip), %rdi
    subq $176, %rdi
    movq %rdi, %rdx
    movl $22, %ecx
    rep movsq
    movq %rdx, %rsp
    movq %rsp, %rdi          /* proc_preempt(frame): a handled signal may rewrite it */
    call proc_preempt
preempt_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    jmp isr_return

/* iret_to(frame): leaves the kernel through a frame laid out as isr_preempt's (rt_sigreturn
 * to a preempted context: every register comes back, rcx and r11 included). */
    .globl iret_to
iret_to:
    movq %rdi, %rsp
    jmp preempt_return

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
/* syscall_exit: rsp points at a struct uregs; restores it and returns to user mode (callers
 * close interrupts first where sysret reopens them: kernel_sysret_prep). */
    .globl syscall_exit
syscall_exit:
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
    popq %rax
    popq %rcx
    popq %r11
    popq %rsp
    sysretq

/* A new process's first switch lands here (see first_frame in proc.c), on to syscall_exit. */
    .globl fresh_exit
fresh_exit:
    call kernel_sysret_prep
    jmp syscall_exit

/* pvm_idle(vif): PVM's "sti; hlt". Opening the VIF byte does not trap, so an interrupt can be
 * delivered between it and the hlt; isr() moves a return address inside [pvm_idle_window,
 * pvm_idle_window_end) past the hlt, or the guest would sleep with its wake-up already taken.
 * An interrupt that was pending is delivered by the port-0x80 doorbell (PVM.md 2.3), and then
 * there is nothing to wait for: return to the caller's loop. */
    .globl pvm_idle, pvm_idle_window, pvm_idle_window_end
pvm_idle:
    movb $1, (%rdi)
pvm_idle_window:
    cmpb $0, 1(%rdi)
    jne 1f
    hlt
pvm_idle_window_end:
    ret
1:  outb %al, $0x80
    ret

/* switch_to(save_sp, new_sp): saves the callee-saved registers and the stack pointer, then
 * continues on another kernel stack where switch_to was left (or first_frame prepared). */
    .globl switch_to
switch_to:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

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
