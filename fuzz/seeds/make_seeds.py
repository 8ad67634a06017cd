#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/NAME/ (docs/security.md,
"Fuzzing"). Seeds come from the repository's real inputs (test domains, host CPU files,
probe dumps and the ACPI tables inside them) and from small hand-built ones (CLI option
texts, QMP streams, minimal ELF/PVH and bzImage headers, device bus records).
Run from the repository root: python3 fuzz/seeds/make_seeds.py"""
import glob, os, re, struct, hashlib

ROOT = os.getcwd()
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

def put(target, data, name=None):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = name or "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# cli_grammars: byte 0 = grammar (smp cpu memory numa cpulist machine), then the text.
GRAMMARS = ["smp", "cpu", "memory", "numa", "cpulist", "machine"]
cli = {
    "smp": ["4", "2,sockets=2,cores=1,threads=1", "8,maxcpus=16,sockets=2,dies=2,cores=2,threads=2",
            "cpus=4,maxcpus=8", "sockets=2,cores=4", "0", "1,threads=2", "4,cores=2,threads=2,dies=1"],
    "cpu": ["host", "max", "qemu64", "Haswell,+avx512f,-hle,rtm=off", "Skylake-Client-v4,check,enforce",
            "EPYC-Rome,pmu=on,lahf_lm", "Cascadelake-Server,+x2apic,x2apic=on,-x2apic", "qemu64,tsc_adjust=on"],
    "memory": ["512", "1G", "2048M", "1.5G", "1G,hugepages=on", "4G,hugepages=on,hugepage-size=1G",
               "256M,merge=off,prealloc=on,shared=on,thp=off", "16E", "0x100000"],
    "numa": ["4\n1G\nnode,nodeid=0,cpus=0-1,mem=512M\nnode,nodeid=1,cpus=2-3,mem=512M\ndist,src=0,dst=1,val=20",
             "8,sockets=2,cores=4\n2G\nnode,cpus=0-3,memdev=x\nnode,cpus=4-7",
             "2\n1G\nnode,nodeid=0,cpus=0-1,mem=1G,host-nodes=0,policy=bind"],
    "cpulist": ["0-3,8,10-15:2", "0-127", "1", "0-7,^3", "0:0-3", "3:4-5,7", "0-1023:3/8"],
    "machine": ["pit=on", "pit=off,pit=on", "pc,pit=off"],
}
for g, texts in cli.items():
    for t in texts:
        put("cli_grammars", bytes([GRAMMARS.index(g)]) + t.encode())

# domain_xml: the test domains, and small variants.
for p in glob.glob(os.path.join(ROOT, "crates/rvmm/tests/data/domains/*.xml")):
    put("domain_xml", open(p, "rb").read(), os.path.basename(p))
put("domain_xml", "<domain type='kvm'><name>n</name><memory unit='MiB'>256</memory><vcpu>2</vcpu>"
    "<cpu mode='custom'><model>Tiny</model><topology sockets='1' dies='1' cores='2' threads='1'/>"
    "<feature policy='require' name='vmx'/><numa><cell id='0' cpus='0-1' memory='256' unit='MiB'>"
    "<distances><sibling id='0' value='10'/></distances></cell></numa></cpu></domain>")
put("domain_xml", "<domain type='kvm'><name>h</name><memory>262144</memory><vcpu current='1'>4</vcpu>"
    "<cpu mode='host-model'/><cputune><vcpupin vcpu='0' cpuset='0-3'/><emulatorpin cpuset='1'/></cputune>"
    "<os><kernel>/k</kernel><initrd>/i</initrd><cmdline>x</cmdline></os></domain>")

# host_cpu: the host CPU files and JSON.
for p in glob.glob(os.path.join(ROOT, "crates/rvmm/tests/data/hosts/*.xml")):
    put("host_cpu", open(p, "rb").read(), os.path.basename(p))
put("host_cpu", '{"vendor":"GenuineIntel","family":6,"model":60,"stepping":3,"features":["sse2","avx2","fma"]}')
put("host_cpu", '[{"vendor":"AuthenticAMD","family":23,"model":49,"stepping":0,"features":["sse2"]},'
    '{"vendor":"GenuineIntel","family":6,"model":85,"stepping":4,"features":["sse2","pclmulqdq"]}]')
put("host_cpu", "<cpu><model>Tiny</model><vendor>Intel</vendor><feature name='vmx'/></cpu>"
    "<cpu><mode name='host-model'/><model>Haswell</model></cpu>")

# qmp: streams of requests.
Q = '{"execute":"qmp_capabilities"}\r\n'
qmp = [
    Q + '{"execute":"query-status","id":1}\n{"execute":"query-cpus-fast"}\n',
    Q + '{"execute":"query-commands"}{"execute":"query-version"}{"execute":"query-name"}',
    Q + '{"execute":"stop"}\n{"execute":"cont"}\n{"execute":"system_powerdown"}\n{"execute":"system_reset"}\n{"execute":"quit"}',
    Q + '{"execute":"query-hotpluggable-cpus"}\n{"execute":"query-cpu-definitions"}',
    Q + '{"execute":"query-cpu-model-expansion","arguments":{"type":"full","model":{"name":"Haswell","props":{"avx2":false}}}}',
    Q + '{"execute":"query-cpu-model-expansion","arguments":{"type":"static","model":{"name":"host"}}}',
    Q + '{"execute":"__org.rvmm_vcpupin","arguments":{"vcpu":1,"cpus":"0-3,^2"}}\n{"execute":"__org.rvmm_vcpupin"}',
    Q + '{"execute":"__org.rvmm_emulatorpin","arguments":{"cpus":"1"}}\n{"execute":"__org.rvmm_vcpuinfo"}',
    Q + '{"execute":"__org.rvmm_schedinfo"}\n{"execute":"__org.rvmm_schedinfo","arguments":{"set":{"vcpu_quota":25000,"cpu_shares":512}}}',
    Q + '{"execute":"__org.rvmm_schedinfo","arguments":{"set":{"vcpu_quota":0,"bogus":1}}}\n{"execute":"__org.rvmm_stats"}',
    '{"execute":"query-status"}\n{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
    '{"execute": }\n{"execute": 5}\n{"execute": "nope", "id": ["x", 1]}\n[1,2]\n"str"\n123 true {"exec-oob":"x"}',
    Q + '{\n  "execute": "query-status",\n  "arguments": {"pad": "\\"}]"}\n}\n',
]
for s in qmp:
    put("qmp", s)

# boot_image: minimal ELF64 with a PVH note and a PT_LOAD, and a bzImage header.
def elf(pvh=True, entry=0x1000000):
    note = b""
    if pvh:
        name = b"Xen\0"
        note = struct.pack("<III", len(name), 4, 18) + name + struct.pack("<I", entry)
    ehdr_len, phdr_len = 64, 56
    phnum = 2
    off_note = ehdr_len + phnum * phdr_len
    off_load = off_note + len(note)
    code = b"\xf4" * 16
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    ehdr += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, ehdr_len, 0, 0, ehdr_len, phdr_len, phnum, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, off_load, entry, entry, len(code), len(code), 0x1000)
    notep = struct.pack("<IIQQQQQQ", 4, 4, off_note, 0, 0, len(note), len(note), 4)
    return ehdr + load + notep + note + code
put("boot_image", elf(True), "elf-pvh")
put("boot_image", elf(False), "elf-no-pvh")
def bzimage(version=0x020f, xload=1, size=0x1400):
    b = bytearray(size)
    b[0x1f1] = 1                                   # setup_sects
    struct.pack_into("<H", b, 0x1fe, 0xaa55)
    struct.pack_into("<I", b, 0x202, 0x53726448)   # HdrS
    struct.pack_into("<H", b, 0x206, version)
    b[0x211] = 1                                   # LOADED_HIGH
    struct.pack_into("<I", b, 0x22c, 0x37ffffff)   # initrd_addr_max
    struct.pack_into("<H", b, 0x236, xload)        # xloadflags
    struct.pack_into("<I", b, 0x238, 2048)         # cmdline_size
    struct.pack_into("<I", b, 0x260, 0x100000)     # init_size
    return bytes(b)
put("boot_image", bzimage(), "bzimage-2.15")
put("boot_image", bzimage(version=0x0206, xload=0, size=0x400), "bzimage-old")

# probe_dump and acpi_tables: the oracle dumps, one shortened, and the tables inside them.
for p in sorted(glob.glob(os.path.join(ROOT, "crates/vmm/tests/probe_oracle/*.txt"))):
    text = open(p).read()
    put("probe_dump", text, os.path.basename(p))
    for m in re.finditer(r"ACPI sig=(\w+) len=\d+ data=([0-9a-fA-F]+)", text):
        put("acpi_tables", bytes.fromhex(m.group(2)), f"{m.group(1)}-{os.path.basename(p)[:-4]}")

# device_bus: 6-byte records (op, port lo, port hi, size, value lo, value hi).
def rec(op, port, size, value=0):
    return struct.pack("<BHBH", op, port, size, value)
PIO_R, PIO_W, MMIO_R, MMIO_W, INPUT, PWR = range(6)
put("device_bus", b"".join([rec(PIO_W, 0x3f8, 1, 0x41), rec(PIO_R, 0x3fd, 1), rec(PIO_W, 0x3fb, 1, 0x80),
                            rec(PIO_W, 0x3f8, 1, 1), rec(PIO_W, 0x3f9, 1, 0), rec(PIO_W, 0x3fb, 1, 3),
                            rec(PIO_W, 0x3f9, 1, 0xf), rec(INPUT, 0, 4, 0x6261), rec(PIO_R, 0x3f8, 1),
                            rec(PIO_R, 0x3fa, 1), rec(PIO_W, 0x3f8, 0xf4, 0x4242)]), "serial")
put("device_bus", b"".join([rec(PIO_R, 0x64, 1), rec(PIO_R, 0x60, 1), rec(PIO_W, 0x64, 1, 0xfe)]), "i8042-reset")
put("device_bus", b"".join([rec(PIO_W, 0x602, 2, 0x100), rec(PWR, 0, 0), rec(PIO_R, 0x600, 4),
                            rec(PIO_W, 0x600, 2, 0x100), rec(PIO_R, 0x608, 4), rec(PIO_R, 0x609, 3),
                            rec(PIO_W, 0x604, 2, (5 << 10) | (1 << 13)), rec(PIO_W, 0xcf9, 1, 0x6)]), "pm")
put("device_bus", b"".join([rec(PIO_W, 0xf4, 4, 1), rec(MMIO_R, 0x1234, 8), rec(MMIO_W, 0, 2, 7),
                            rec(PIO_R, 0xffff, 8), rec(PIO_W, 0x80, 0, 0)]), "debug-exit-mmio")
