/* Prints, from inside a Linux guest, a probe-format dump (CPUID of every online CPU and the
 * ACPI MADT/SRAT/SLIT) followed by the kernel's own topology and NUMA answers from /sys.
 * Used by capture.sh to make the oracle fixtures in this directory. */
#define _GNU_SOURCE
#include <cpuid.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void cpuid(unsigned l, unsigned s, unsigned r[4]) { __cpuid_count(l, s, r[0], r[1], r[2], r[3]); }
static void line(int cpu, unsigned l, unsigned s) {
    unsigned r[4]; cpuid(l, s, r);
    printf("CPUID cpu=%d leaf=%08x sub=%08x eax=%08x ebx=%08x ecx=%08x edx=%08x\n", cpu, l, s, r[0], r[1], r[2], r[3]);
}
static int has_sub(unsigned l) { return l == 4 || l == 7 || l == 0xb || l == 0xd || l == 0x1f || l == 0x8000001d; }
static void leaf(int cpu, unsigned l) {
    if (!has_sub(l)) { line(cpu, l, 0); return; }
    for (unsigned s = 0; s < 64; s++) {
        unsigned r[4]; cpuid(l, s, r); line(cpu, l, s);
        if ((l == 0xb || l == 0x1f) && ((r[2] >> 8) & 0xff) == 0) break;
        if ((l == 4 || l == 0x8000001d) && (r[0] & 0x1f) == 0) break;
        if (l == 7) { unsigned r0[4]; cpuid(7, 0, r0); if (s >= r0[0]) break; }
    }
}
static void cat(const char *label, const char *path) {
    char buf[4096]; FILE *f = fopen(path, "r"); if (!f) { printf("%s -\n", label); return; }
    size_t n = fread(buf, 1, sizeof buf - 1, f); fclose(f); buf[n] = 0;
    while (n && (buf[n-1] == '\n')) buf[--n] = 0;
    printf("%s %s\n", label, buf);
}
int main(void) {
    int n = sysconf(_SC_NPROCESSORS_ONLN);
    printf("PROBE-BEGIN v1\n");
    for (int c = 0; c < n; c++) {
        cpu_set_t set; CPU_ZERO(&set); CPU_SET(c, &set);
        if (sched_setaffinity(0, sizeof set, &set)) { printf("PROBE-ERROR affinity %d\n", c); continue; }
        unsigned r[4];
        cpuid(0, 0, r); for (unsigned l = 0; l <= r[0]; l++) leaf(c, l);
        cpuid(0x40000000, 0, r); unsigned hv = (r[0] >= 0x40000000 && r[0] < 0x40000100) ? r[0] : 0x40000000;
        for (unsigned l = 0x40000000; l <= hv; l++) leaf(c, l);
        cpuid(0x80000000, 0, r); for (unsigned l = 0x80000000; l <= r[0] && r[0] < 0x80000100; l++) leaf(c, l);
    }
    const char *sigs[] = {"APIC", "SRAT", "SLIT"};
    for (int i = 0; i < 3; i++) {
        char p[64]; snprintf(p, sizeof p, "/sys/firmware/acpi/tables/%s", sigs[i]);
        FILE *f = fopen(p, "rb"); if (!f) continue;
        static unsigned char b[1 << 20]; size_t len = fread(b, 1, sizeof b, f); fclose(f);
        printf("ACPI sig=%s len=%zu data=", sigs[i], len);
        for (size_t j = 0; j < len; j++) printf("%02x", b[j]);
        printf("\n");
    }
    printf("PROBE-END cpus=%d\n", n);
    for (int c = 0; c < n; c++) {
        char p[128], l[64];
        const char *f[] = {"physical_package_id", "die_id", "core_id", "thread_siblings_list", "core_siblings_list"};
        for (int i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%d/topology/%s", c, f[i]);
            snprintf(l, sizeof l, "SYS cpu=%d %s", c, f[i]); cat(l, p);
        }
    }
    for (int nd = 0; nd < 16; nd++) {
        char p[128], l[64];
        snprintf(p, sizeof p, "/sys/devices/system/node/node%d/cpulist", nd); snprintf(l, sizeof l, "NODE %d cpulist", nd);
        if (access(p, F_OK)) continue; cat(l, p);
        snprintf(p, sizeof p, "/sys/devices/system/node/node%d/distance", nd); snprintf(l, sizeof l, "NODE %d distance", nd); cat(l, p);
    }
    fflush(stdout);
    return 0;
}
