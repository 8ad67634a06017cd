//! The topology step of the CPUID pipeline: given one vCPU's table (already holding the
//! model's leaves, with leaf 0 and 0x80000000 giving the levels), write every leaf QEMU
//! 7.2 derives from the topology and cache model, in the shape QEMU's
//! `kvm_arch_init_vcpu()` hands KVM_SET_CPUID2: the same subleaves, terminators and flags,
//! all-zero extended leaves left out, leaves past the levels untouched.
//!
//! Which level raises are needed (QEMU raises the basic level to 0x1F for an Intel
//! vendor with dies > 1) is the model builder's decision; this step only reads levels.

use super::cache_leaves::{leaf_0x2, leaf_0x4, leaf_0x80000005, leaf_0x80000006, leaf_0x8000001d};
use super::leaves::{
    leaf_0x1f, leaf_0x8000001e, leaf_0xb, patch_leaf_0x1, patch_leaf_0x80000001,
    patch_leaf_0x80000008, TopologyContext,
};
use crate::cpuid::CpuidEntry;

const EXTENDED_BASE: u32 = 0x8000_0000;

/// The top 4 bits of a leaf number select its range (basic, hypervisor, extended, ...).
fn same_range(a: u32, b: u32) -> bool {
    a >> 28 == b >> 28
}

/// Where a new leaf goes: after the last lower leaf of its range, else before the first
/// higher one of its range, else at the end.
fn insert_position(entries: &[CpuidEntry], function: u32) -> usize {
    let in_range = |e: &CpuidEntry| same_range(e.function, function);
    if let Some(i) = entries
        .iter()
        .rposition(|e| in_range(e) && e.function < function)
    {
        return i + 1;
    }
    entries
        .iter()
        .position(|e| in_range(e) && e.function > function)
        .unwrap_or(entries.len())
}

/// Replaces all subleaves of `function` with `new` (which may be empty: the leaf goes).
pub fn replace_leaf(entries: &mut Vec<CpuidEntry>, function: u32, new: Vec<CpuidEntry>) {
    let at = match entries.iter().position(|e| e.function == function) {
        Some(i) => {
            entries.retain(|e| e.function != function);
            i
        }
        None => insert_position(entries, function),
    };
    entries.splice(at..at, new);
}

/// The entry for `function` subleaf 0, inserted (all zero) if missing.
fn entry_mut(entries: &mut Vec<CpuidEntry>, function: u32) -> &mut CpuidEntry {
    let i = match entries
        .iter()
        .position(|e| e.function == function && e.index == 0)
    {
        Some(i) => i,
        None => {
            let at = insert_position(entries, function);
            entries.insert(
                at,
                CpuidEntry {
                    function,
                    ..CpuidEntry::default()
                },
            );
            at
        }
    };
    &mut entries[i]
}

/// An extended leaf that QEMU leaves out of the KVM table when all four registers are 0.
fn unless_zero(e: CpuidEntry) -> Vec<CpuidEntry> {
    if e.eax == 0 && e.ebx == 0 && e.ecx == 0 && e.edx == 0 {
        Vec::new()
    } else {
        vec![e]
    }
}

fn level_of(entries: &[CpuidEntry], function: u32) -> Option<u32> {
    entries
        .iter()
        .find(|e| e.function == function && e.index == 0)
        .map(|e| e.eax)
}

/// Writes the topology and cache leaves of one vCPU into its table: leaves 1, 2, 4, 0xB,
/// 0x1F (up to the basic level in leaf 0's EAX) and 0x80000001, 0x80000005, 0x80000006,
/// 0x80000008, 0x8000001D, 0x8000001E (up to the level in 0x80000000's EAX). Without
/// leaf 0 nothing basic is written; without 0x80000000 nothing extended.
pub fn apply_topology(ctx: &TopologyContext, entries: &mut Vec<CpuidEntry>) {
    if let Some(level) = level_of(entries, 0) {
        if level >= 1 {
            patch_leaf_0x1(ctx, entry_mut(entries, 1));
        }
        if level >= 2 {
            replace_leaf(entries, 2, vec![leaf_0x2(ctx)]);
        }
        if level >= 4 {
            replace_leaf(entries, 4, leaf_0x4(ctx));
        }
        if level >= 0xB {
            replace_leaf(entries, 0xB, leaf_0xb(ctx));
        }
        if level >= 0x1F {
            replace_leaf(entries, 0x1F, leaf_0x1f(ctx));
        }
    }
    if let Some(xlevel) = level_of(entries, EXTENDED_BASE).filter(|l| *l >= EXTENDED_BASE) {
        if xlevel >= 0x8000_0001 {
            patch_leaf_0x80000001(ctx, entry_mut(entries, 0x8000_0001));
        }
        if xlevel >= 0x8000_0005 {
            replace_leaf(entries, 0x8000_0005, unless_zero(leaf_0x80000005(ctx)));
        }
        if xlevel >= 0x8000_0006 {
            replace_leaf(entries, 0x8000_0006, unless_zero(leaf_0x80000006(ctx)));
        }
        if xlevel >= 0x8000_0008 {
            patch_leaf_0x80000008(ctx, entry_mut(entries, 0x8000_0008));
        }
        if xlevel >= 0x8000_001D {
            replace_leaf(entries, 0x8000_001D, leaf_0x8000001d(ctx));
        }
        if xlevel >= 0x8000_001E {
            replace_leaf(entries, 0x8000_001E, unless_zero(leaf_0x8000001e(ctx)));
        }
    }
}
