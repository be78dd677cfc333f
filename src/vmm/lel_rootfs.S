/* The default root filesystem (built from busybox-static by src/guest/mkrootfs.sh), embedded
 * so that lelantosd needs no file beside it. */
    .section .rodata
    .balign 4096
    .globl lel_rootfs_image, lel_rootfs_image_end
lel_rootfs_image:
    .incbin "rootfs.cpio"
lel_rootfs_image_end:
    .section .note.GNU-stack, "", @progbits
