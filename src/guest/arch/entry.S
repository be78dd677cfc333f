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
    testb $3, 96(%rsp)
    jz 1f
    call kernel_irq_on       /* back to user mode: PVM's VIF byte, which iretq does not reopen */
1:  popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp
    testb $3, 8(%rsp)
    jz 2f
    cmpl $0, kernel_pvm(%rip)
    jne pvm_iret
2:  iretq

/* Back to user mode under PVM, with every register the user's and rsp at the CPU frame {rip,
 * cs, rflags, rsp, ss}: only the IRET_FRAME hypercall really returns to user mode (iretq and
 * sysretq leave the vCPU in kernel mode, running user code with kernel rights and taking its
 * interrupts on the user stack). Its frame is the CPU's with rax, rbx and rdi before it. */
pvm_iret:
    subq $24, %rsp
    movq %rax, 0(%rsp)
    movq %rbx, 8(%rsp)
    movq %rdi, 16(%rsp)
    movq $0x33, 32(%rsp)
    movq $0x2b, 56(%rsp)
    movq %rsp, %rbx
    movl $0x100d, %eax       /* HC_IRET_FRAME */
    int $0x1b
    ud2                      /* it does not come back */

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
    cmpl $0, kernel_pvm(%rip)
    jne 1f
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
1:  movq %rsp, %rdi          /* under PVM: out through iret_to and pvm_iret (signal.inc) */
    call syscall_exit_pvm


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
