//! `query-stats-schemas {provider?}`: what each statistic `query-stats` can return is, in
//! QEMU 7.2's StatsSchema shape: one schema per target (`vcpu` first, then `vm`, as QEMU's
//! prepending lists them), each statistic with its `type`, `unit` (absent when the kernel
//! says none), `base` (present only when `exponent` is not 0), `exponent` and, for linear
//! histograms only, `bucket-size`. The statistics come in the reverse of the kernel's
//! descriptor order, as QEMU sends them. The vCPU schema is the first present vCPU's (QEMU
//! reads `first_cpu`'s).
//!
//! The descriptors are read from the running kernel (`machine::stats`), so a newer kernel's
//! statistics appear here without a code change.

use serde::{Deserialize, Serialize};

use super::query_stats::{StatsProvider, StatsTarget};
use super::{ClientRequest, QmpCommand};
use crate::control::args::{Args, Presence};
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::machine::stats::{KvmStat, StatDesc, StatType, StatUnit};

pub const NAME: &str = "query-stats-schemas";

/// The command: every provider, or only `provider`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryStatsSchemas {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<StatsProvider>,
}

/// One statistic's schema (QEMU's StatsSchemaValue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatsSchemaValue {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: StatType,
    /// Absent for a plain number or counter (the kernel's unit `none`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub unit: Option<StatUnit>,
    /// 10 or 2; present only when `exponent` is not 0.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub base: Option<i8>,
    pub exponent: i16,
    /// A linear histogram's bucket width; absent for every other type.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bucket_size: Option<u32>,
}

/// The statistics of one provider and target (QEMU's StatsSchema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSchema {
    pub provider: StatsProvider,
    pub target: StatsTarget,
    pub stats: Vec<StatsSchemaValue>,
}

impl ClientRequest for QueryStatsSchemas {
    const NAME: &'static str = NAME;
    type Reply = Vec<StatsSchema>;
}

impl StatsSchemaValue {
    /// The schema QEMU 7.2 gives a kernel descriptor (accel/kvm's add_kvmschema_entry).
    pub fn of(desc: &StatDesc) -> StatsSchemaValue {
        StatsSchemaValue {
            name: desc.name.clone(),
            kind: desc.kind,
            unit: (desc.unit != StatUnit::None).then_some(desc.unit),
            base: (desc.exponent != 0).then_some(desc.base as i8),
            exponent: desc.exponent,
            bucket_size: (desc.kind == StatType::LinearHistogram).then_some(desc.bucket_size),
        }
    }
}

/// The schemas of `stats`, in QEMU's order (the reverse of the descriptors').
fn schema(target: StatsTarget, stats: &[KvmStat]) -> StatsSchema {
    StatsSchema {
        provider: StatsProvider::Kvm,
        target,
        stats: stats
            .iter()
            .rev()
            .map(|s| StatsSchemaValue::of(&s.desc))
            .collect(),
    }
}

impl QmpCommand for QueryStatsSchemas {
    const NAME: &'static str = NAME;
    type Reply = Vec<StatsSchema>;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        let provider = args
            .string("provider", Presence::Optional)?
            .map(|p| StatsProvider::parse("provider", &p))
            .transpose()?;
        Ok(QueryStatsSchemas { provider })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<Vec<StatsSchema>, QmpError> {
        // KVM is the only provider: asked for by name or by omission.
        match self.provider {
            None | Some(StatsProvider::Kvm) => {}
        }
        let mut schemas = vec![schema(StatsTarget::Vm, &vm.vm_kvm_stats()?)];
        if let Some(first) = vm.vcpus().first() {
            schemas.push(schema(StatsTarget::Vcpu, &vm.vcpu_kvm_stats(*first)?));
        }
        // QEMU prepends each schema: vcpu, then vm.
        schemas.reverse();
        Ok(schemas)
    }
}
