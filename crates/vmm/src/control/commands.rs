//! The commands rvmm's QMP server accepts, as one `Command` enum with typed arguments, and
//! the argument checks QEMU's generated visitors make (the same error texts: "Parameter 'x'
//! is missing", "Invalid parameter type for 'x', expected: string", "Parameter 'x' is
//! unexpected"). Executing a command is the VMM thread's job (`vmm::commands`).
//!
//! rvmm's own commands follow QMP's rule for commands that are not QEMU's
//! (docs/devel/qapi-code-gen.rst, "Downstream extensions"): a name starting with
//! `__RFQDN_`, here `__org.rvmm_`. We prefer it to the `x-` prefix, which QEMU reserves for
//! its own unstable interfaces and could collide with a future QEMU command, and to a bare
//! `rvmm-` prefix, which the QMP rules do not provide for. Clients can therefore tell at a
//! glance which commands a QEMU would not have.

use serde_json::{Map, Value};

use super::qmp::QmpError;
use crate::util::cpulist::parse_cpulist;

/// rvmm's downstream prefix (reverse domain name, QMP's `__RFQDN_`).
pub const RVMM_PREFIX: &str = "__org.rvmm_";
/// Reads or sets one vCPU's affinity (libvirt's `vcpupin`).
pub const CMD_VCPUPIN: &str = "__org.rvmm_vcpupin";
/// Reads or sets the emulator threads' affinity (libvirt's `emulatorpin`).
pub const CMD_EMULATORPIN: &str = "__org.rvmm_emulatorpin";
/// Per-vCPU state, host CPU, CPU time and affinity (libvirt's `vcpuinfo`).
pub const CMD_VCPUINFO: &str = "__org.rvmm_vcpuinfo";

/// Every command name, in the order `query-commands` lists them.
pub const COMMAND_NAMES: &[&str] = &[
    "qmp_capabilities",
    "query-commands",
    "query-version",
    "query-name",
    "query-status",
    "stop",
    "cont",
    "system_powerdown",
    "system_reset",
    "quit",
    "query-cpus-fast",
    "query-hotpluggable-cpus",
    "query-cpu-definitions",
    "query-cpu-model-expansion",
    CMD_VCPUPIN,
    CMD_EMULATORPIN,
    CMD_VCPUINFO,
];

/// `query-cpu-model-expansion`'s `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpansionType {
    /// A static base model (`base`) plus properties.
    Static,
    /// The named model with every property.
    Full,
}

/// A request for the VMM thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    QueryCommands,
    QueryVersion,
    QueryName,
    QueryStatus,
    /// Pause every vCPU (`STOP` event).
    Stop,
    /// Resume (`RESUME` event).
    Cont,
    /// Press the ACPI power button (`POWERDOWN` event).
    SystemPowerdown,
    /// Reset the machine (`RESET` event).
    SystemReset,
    /// End the VM (`SHUTDOWN` event).
    Quit,
    QueryCpusFast,
    QueryHotpluggableCpus,
    QueryCpuDefinitions,
    QueryCpuModelExpansion {
        expansion: ExpansionType,
        model: String,
        /// Property changes (`"aes": true`).
        props: Map<String, Value>,
    },
    /// Without `cpus`: report; with `cpus` (and `vcpu`): pin, then report.
    VcpuPin {
        vcpu: Option<u32>,
        cpus: Option<Vec<u32>>,
    },
    /// Without `cpus`: report; with: pin every non-vCPU thread, then report.
    EmulatorPin {
        cpus: Option<Vec<u32>>,
    },
    VcpuInfo,
}

/// A command's arguments, consumed member by member in schema order.
struct Args {
    map: Map<String, Value>,
}

fn type_error(name: &str, expected: &str) -> QmpError {
    QmpError::generic(format!(
        "Invalid parameter type for '{name}', expected: {expected}"
    ))
}

impl Args {
    fn take(&mut self, name: &str, required: bool) -> Result<Option<Value>, QmpError> {
        match self.map.remove(name) {
            Some(v) => Ok(Some(v)),
            None if required => Err(QmpError::generic(format!("Parameter '{name}' is missing"))),
            None => Ok(None),
        }
    }

    fn string(&mut self, name: &str, required: bool) -> Result<Option<String>, QmpError> {
        match self.take(name, required)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(type_error(name, "string")),
        }
    }

    fn uint32(&mut self, name: &str, required: bool) -> Result<Option<u32>, QmpError> {
        match self.take(name, required)? {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| QmpError::generic(format!("Parameter '{name}' expects uint32"))),
            Some(_) => Err(type_error(name, "integer")),
        }
    }

    fn object(
        &mut self,
        name: &str,
        required: bool,
    ) -> Result<Option<Map<String, Value>>, QmpError> {
        match self.take(name, required)? {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(type_error(name, "object")),
        }
    }

    /// A CPU list in the kernel's syntax.
    fn cpulist(&mut self, name: &str) -> Result<Option<Vec<u32>>, QmpError> {
        match self.string(name, false)? {
            None => Ok(None),
            Some(text) => parse_cpulist(&text)
                .map(Some)
                .map_err(|e| QmpError::generic(format!("Parameter '{name}': {e}"))),
        }
    }

    /// Rejects members nobody consumed (the first, in name order).
    fn finish(self, prefix: &str) -> Result<(), QmpError> {
        match self.map.keys().next() {
            Some(k) => Err(QmpError::generic(format!(
                "Parameter '{prefix}{k}' is unexpected"
            ))),
            None => Ok(()),
        }
    }
}

/// Checks `qmp_capabilities`' arguments: `enable` may only list capabilities the greeting
/// offered, and rvmm offers none (no out-of-band execution).
pub fn check_capabilities(arguments: Map<String, Value>) -> Result<(), QmpError> {
    let mut args = Args { map: arguments };
    if let Some(enable) = args.take("enable", false)? {
        let Value::Array(items) = enable else {
            return Err(type_error("enable", "array"));
        };
        // rvmm's greeting offers no capability, so any entry is refused: the first decides how.
        match items.first() {
            None => {}
            Some(Value::String(s)) if s == "oob" => {
                return Err(QmpError::generic(
                    "Capability 'oob' not available".to_string(),
                ))
            }
            Some(Value::String(s)) => {
                return Err(QmpError::generic(format!(
                    "Parameter 'enable' does not accept value '{s}'"
                )))
            }
            Some(_) => return Err(type_error("enable", "string")),
        }
    }
    args.finish("")
}

/// Turns a command name and its `arguments` into a `Command`.
pub fn parse(name: &str, arguments: Map<String, Value>) -> Result<Command, QmpError> {
    let mut args = Args { map: arguments };
    let command = match name {
        "query-commands" => Command::QueryCommands,
        "query-version" => Command::QueryVersion,
        "query-name" => Command::QueryName,
        "query-status" => Command::QueryStatus,
        "stop" => Command::Stop,
        "cont" => Command::Cont,
        "system_powerdown" => Command::SystemPowerdown,
        "system_reset" => Command::SystemReset,
        "quit" => Command::Quit,
        "query-cpus-fast" => Command::QueryCpusFast,
        "query-hotpluggable-cpus" => Command::QueryHotpluggableCpus,
        "query-cpu-definitions" => Command::QueryCpuDefinitions,
        "query-cpu-model-expansion" => {
            let kind = args.string("type", true)?.unwrap_or_default();
            let expansion = match kind.as_str() {
                "static" => ExpansionType::Static,
                "full" => ExpansionType::Full,
                other => {
                    return Err(QmpError::generic(format!(
                        "Parameter 'type' does not accept value '{other}'"
                    )))
                }
            };
            let model = args.object("model", true)?.unwrap_or_default();
            let mut model = Args { map: model };
            let name = model
                .string("name", true)
                .map_err(|e| QmpError::generic(e.desc.replace("'name'", "'model.name'")))?
                .unwrap_or_default();
            let props = model
                .object("props", false)
                .map_err(|e| QmpError::generic(e.desc.replace("'props'", "'model.props'")))?
                .unwrap_or_default();
            model.finish("model.")?;
            Command::QueryCpuModelExpansion {
                expansion,
                model: name,
                props,
            }
        }
        CMD_VCPUPIN => {
            let vcpu = args.uint32("vcpu", false)?;
            let cpus = args.cpulist("cpus")?;
            if cpus.is_some() && vcpu.is_none() {
                return Err(QmpError::generic(
                    "Parameter 'vcpu' is missing (needed with 'cpus')".to_string(),
                ));
            }
            Command::VcpuPin { vcpu, cpus }
        }
        CMD_EMULATORPIN => Command::EmulatorPin {
            cpus: args.cpulist("cpus")?,
        },
        CMD_VCPUINFO => Command::VcpuInfo,
        _ => return Err(QmpError::command_not_found(name)),
    };
    args.finish("")?;
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::qmp::ErrorClass;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn err(name: &str, v: Value) -> String {
        parse(name, args(v)).unwrap_err().desc
    }

    #[test]
    fn plain_commands() {
        assert_eq!(parse("query-status", Map::new()), Ok(Command::QueryStatus));
        assert_eq!(parse("quit", Map::new()), Ok(Command::Quit));
        assert_eq!(parse(CMD_VCPUINFO, Map::new()), Ok(Command::VcpuInfo));
        let e = parse("nope", Map::new()).unwrap_err();
        assert_eq!(e.class, ErrorClass::CommandNotFound);
        assert_eq!(e.desc, "The command nope has not been found");
        // QEMU 7.2's texts for argument errors.
        assert_eq!(
            err("query-status", json!({"a": 1})),
            "Parameter 'a' is unexpected"
        );
        assert_eq!(
            err("query-cpu-model-expansion", json!({})),
            "Parameter 'type' is missing"
        );
        assert_eq!(
            err("query-cpu-model-expansion", json!({"type": 5})),
            "Invalid parameter type for 'type', expected: string"
        );
        assert_eq!(
            err(
                "query-cpu-model-expansion",
                json!({"type": "bogus", "model": {"name": "qemu64"}})
            ),
            "Parameter 'type' does not accept value 'bogus'"
        );
    }

    #[test]
    fn model_expansion_arguments() {
        assert_eq!(
            parse(
                "query-cpu-model-expansion",
                args(
                    json!({"type": "full", "model": {"name": "Haswell", "props": {"aes": false}}})
                )
            ),
            Ok(Command::QueryCpuModelExpansion {
                expansion: ExpansionType::Full,
                model: "Haswell".into(),
                props: args(json!({"aes": false})),
            })
        );
        assert_eq!(
            err("query-cpu-model-expansion", json!({"type": "static"})),
            "Parameter 'model' is missing"
        );
        assert_eq!(
            err(
                "query-cpu-model-expansion",
                json!({"type": "static", "model": {}})
            ),
            "Parameter 'model.name' is missing"
        );
        assert_eq!(
            err(
                "query-cpu-model-expansion",
                json!({"type": "static", "model": {"name": "x", "props": 1}})
            ),
            "Invalid parameter type for 'model.props', expected: object"
        );
        assert_eq!(
            err(
                "query-cpu-model-expansion",
                json!({"type": "static", "model": {"name": "x", "extra": 1}})
            ),
            "Parameter 'model.extra' is unexpected"
        );
    }

    #[test]
    fn pin_arguments() {
        assert_eq!(
            parse(CMD_VCPUPIN, Map::new()),
            Ok(Command::VcpuPin {
                vcpu: None,
                cpus: None
            })
        );
        assert_eq!(
            parse(CMD_VCPUPIN, args(json!({"vcpu": 1, "cpus": "0-3,^2"}))),
            Ok(Command::VcpuPin {
                vcpu: Some(1),
                cpus: Some(vec![0, 1, 3])
            })
        );
        assert_eq!(
            err(CMD_VCPUPIN, json!({"vcpu": "1"})),
            "Invalid parameter type for 'vcpu', expected: integer"
        );
        assert_eq!(
            err(CMD_VCPUPIN, json!({"vcpu": -1})),
            "Parameter 'vcpu' expects uint32"
        );
        assert_eq!(
            err(CMD_VCPUPIN, json!({"vcpu": 1.5})),
            "Invalid parameter type for 'vcpu', expected: integer"
        );
        assert_eq!(
            err(CMD_VCPUPIN, json!({"cpus": "0"})),
            "Parameter 'vcpu' is missing (needed with 'cpus')"
        );
        assert_eq!(
            err(CMD_VCPUPIN, json!({"vcpu": 0, "cpus": "x"})),
            "Parameter 'cpus': CPU list \"x\": bad token \"x\": \"x\" is not a decimal CPU number"
        );
        assert_eq!(
            parse(CMD_EMULATORPIN, args(json!({"cpus": "0"}))),
            Ok(Command::EmulatorPin {
                cpus: Some(vec![0])
            })
        );
        assert_eq!(
            err(CMD_EMULATORPIN, json!({"cpus": ["0"]})),
            "Invalid parameter type for 'cpus', expected: string"
        );
    }

    #[test]
    fn capabilities_arguments() {
        assert_eq!(check_capabilities(Map::new()), Ok(()));
        assert_eq!(check_capabilities(args(json!({"enable": []}))), Ok(()));
        assert_eq!(
            check_capabilities(args(json!({"enable": ["oob"]})))
                .unwrap_err()
                .desc,
            "Capability 'oob' not available"
        );
        assert_eq!(
            check_capabilities(args(json!({"x": 1}))).unwrap_err().desc,
            "Parameter 'x' is unexpected"
        );
    }

    #[test]
    fn downstream_names_carry_the_prefix() {
        for name in [CMD_VCPUPIN, CMD_EMULATORPIN, CMD_VCPUINFO] {
            assert!(
                name.starts_with(RVMM_PREFIX) && COMMAND_NAMES.contains(&name),
                "{name}"
            );
        }
    }
}
