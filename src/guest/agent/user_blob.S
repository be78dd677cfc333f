/* The built-in test executable, embedded in the kernel image. */
    .section .rodata
    .balign 16
    .globl user_test_elf, user_test_elf_end
user_test_elf:
    .incbin "test_hello.elf"
user_test_elf_end:
