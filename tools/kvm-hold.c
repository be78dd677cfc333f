/* kvm-hold: a test-harness aid for tools/qemu-vm.sh, not part of Lelantos.
 *
 * Creates one KVM VM with an in-kernel APIC that is both hardware- and software-disabled, and
 * returns once it is in place, leaving a child that holds it until killed. KVM counts such APICs in two static keys (apic_hw_disabled,
 * apic_sw_disabled); every new vCPU bumps the sw key from 0 to 1 until its guest enables the
 * APIC, and destroying VMs drops it back, and each 0<->1 transition live-patches the host
 * kernel's code (jump labels). Inside QEMU's software emulation (TCG) a CPU has been seen
 * stuck for minutes on such a patch site in __apic_accept_irq while the tests create and
 * destroy VMs (an L1 soft lockup: KVM_SIGNAL_MSI -> kvm_irq_delivery_to_apic_fast). Holding
 * one disabled APIC for the whole run keeps both keys above zero, so the code is patched once
 * here and never again. Hardware hosts need none of this.
 *
 * Build: cc -O2 -static -Wall -Wextra -Werror -o kvm-hold tools/kvm-hold.c */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MSR_IA32_APICBASE 0x1b
#define APIC_DEFAULT_BASE 0xfee00000ULL /* without the enable bit (0x800): hardware-disabled */

int main(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    int vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0 || ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
        perror("kvm-hold: VM with an in-kernel irqchip");
        return 1;
    }
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0); /* its APIC starts software-disabled */
    struct {
        struct kvm_msrs hdr;
        struct kvm_msr_entry e;
    } msrs;
    memset(&msrs, 0, sizeof(msrs));
    msrs.hdr.nmsrs = 1;
    msrs.e.index = MSR_IA32_APICBASE;
    msrs.e.data = APIC_DEFAULT_BASE;
    if (vcpu < 0 || ioctl(vcpu, KVM_SET_MSRS, &msrs) != 1) {
        perror("kvm-hold: vCPU with a disabled APIC");
        return 1;
    }
    pid_t child = fork(); /* the child inherits the descriptors that keep the VM alive */
    if (child < 0) {
        perror("kvm-hold: fork");
        return 1;
    }
    if (child == 0)
        for (;;)
            pause();
    return 0;
}
