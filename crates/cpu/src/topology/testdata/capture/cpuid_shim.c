/* LD_PRELOAD shim: appends every KVM_SET_CPUID2 table (with the vCPU id from
 * KVM_CREATE_VCPU) to the file named by $CPUID_DUMP. Used by capture.sh. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/kvm.h>
static int vcpu_ids[4096];
int ioctl(int fd, unsigned long req, ...) {
    static int (*real)(int, unsigned long, ...);
    if (!real) real = dlsym(RTLD_NEXT, "ioctl");
    va_list ap; va_start(ap, req); void *arg = va_arg(ap, void *); va_end(ap);
    int r = real(fd, req, arg);
    const char *out = getenv("CPUID_DUMP");
    if (req == KVM_CREATE_VCPU && r >= 0 && r < 4096) vcpu_ids[r] = (int)(long)arg;
    if (req == KVM_SET_CPUID2 && out) {
        FILE *f = fopen(out, "a");
        struct kvm_cpuid2 *c = arg;
        fprintf(f, "vcpu %d\n", vcpu_ids[fd]);
        for (unsigned i = 0; i < c->nent; i++) {
            struct kvm_cpuid_entry2 *e = &c->entries[i];
            fprintf(f, "%08x %08x %x %08x %08x %08x %08x\n", e->function, e->index, e->flags, e->eax, e->ebx, e->ecx, e->edx);
        }
        fclose(f);
    }
    return r;
}
