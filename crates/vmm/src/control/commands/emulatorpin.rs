//! `__org.rvmm_emulatorpin {cpus?}` (libvirt's `emulatorpin`): with `cpus`, pins every
//! thread that is not a vCPU (threads they start later inherit it); then reports them and
//! the main thread's affinity.

use serde::{Deserialize, Serialize};

use super::{ClientRequest, QmpCommand};
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::view::VmView;
use crate::util::cpulist::cpulist;

pub const NAME: &str = "__org.rvmm_emulatorpin";

/// Without `cpus`: report; with: pin every non-vCPU thread, then report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorPin {
    pub cpus: Option<Vec<u32>>,
}

/// The arguments as a client sends them: the CPU list as text, which the server parses
/// and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EmulatorPinRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
}

impl ClientRequest for EmulatorPinRequest {
    const NAME: &'static str = NAME;
    type Reply = EmulatorPinReply;
}

/// One emulator thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EmulatorThreadRow {
    pub thread_id: i32,
    pub name: String,
    /// A kernel CPU list.
    pub cpus: String,
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorPinReply {
    /// The main thread's affinity, as a kernel CPU list.
    pub cpus: String,
    pub threads: Vec<EmulatorThreadRow>,
    pub warnings: Vec<String>,
}

impl QmpCommand for EmulatorPin {
    const NAME: &'static str = NAME;
    type Reply = EmulatorPinReply;

    fn parse(args: &mut Args) -> Result<Self, QmpError> {
        Ok(EmulatorPin {
            cpus: args.cpulist("cpus")?,
        })
    }

    fn execute(&self, vm: &mut dyn VmView) -> Result<EmulatorPinReply, QmpError> {
        let mut warnings = Vec::new();
        if let Some(cpus) = &self.cpus {
            let what = format!("emulatorpin {}", cpulist(cpus));
            warnings.extend(vm.check_host_cpus(&what, cpus)?);
            vm.pin_emulator(cpus)?;
        }
        let threads = vm
            .emulator_threads()?
            .into_iter()
            .map(|t| EmulatorThreadRow {
                thread_id: t.thread_id,
                name: t.name,
                cpus: cpulist(&t.affinity),
            })
            .collect();
        Ok(EmulatorPinReply {
            cpus: cpulist(&vm.main_affinity()?),
            threads,
            warnings,
        })
    }
}
