//! Human-readable vCPU register dumps for fatal exits (triple fault, KVM internal error,
//! failed entry), in the spirit of QEMU's `info registers`.

use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

fn seg(name: &str, s: &kvm_segment) -> String {
    format!(
        "{name} ={:04x} {:016x} {:08x} type={:x} dpl={} p={} db={} l={} g={}",
        s.selector, s.base, s.limit, s.type_, s.dpl, s.present, s.db, s.l, s.g
    )
}

/// Formats general, segment and control registers.
pub fn format_registers(r: &kvm_regs, s: &kvm_sregs) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}\n",
        r.rax, r.rbx, r.rcx, r.rdx
    ));
    out.push_str(&format!(
        "RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}\n",
        r.rsi, r.rdi, r.rbp, r.rsp
    ));
    out.push_str(&format!(
        "R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}\n",
        r.r8, r.r9, r.r10, r.r11
    ));
    out.push_str(&format!(
        "R12={:016x} R13={:016x} R14={:016x} R15={:016x}\n",
        r.r12, r.r13, r.r14, r.r15
    ));
    out.push_str(&format!("RIP={:016x} RFL={:08x}\n", r.rip, r.rflags));
    for (name, sg) in [
        ("CS", &s.cs),
        ("SS", &s.ss),
        ("DS", &s.ds),
        ("ES", &s.es),
        ("FS", &s.fs),
        ("GS", &s.gs),
        ("TR", &s.tr),
    ] {
        out.push_str(&seg(name, sg));
        out.push('\n');
    }
    out.push_str(&format!(
        "GDT={:016x} {:04x}  IDT={:016x} {:04x}\n",
        s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit
    ));
    out.push_str(&format!(
        "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x} EFER={:x} APIC_BASE={:x}",
        s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.apic_base
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_rip_and_control_registers() {
        let r = kvm_regs {
            rip: 0x1000000,
            rax: 0xdead,
            ..Default::default()
        };
        let mut s = kvm_sregs {
            cr0: 0x80000011,
            ..Default::default()
        };
        s.cs.selector = 0x10;
        let text = format_registers(&r, &s);
        assert!(text.contains("RIP=0000000001000000"), "{text}");
        assert!(text.contains("RAX=000000000000dead"), "{text}");
        assert!(text.contains("CR0=80000011"), "{text}");
        assert!(text.contains("CS =0010"), "{text}");
    }
}
