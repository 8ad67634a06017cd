//! libvirt's x86 CPU map (/usr/share/libvirt/cpu_map: index.xml, x86_vendors.xml,
//! x86_features.xml and one file per model, shipped by Debian's libvirt0): vendors, every
//! feature with its CPUID or MSR bit, and every model's features in libvirt's spelling.
//!
//! It is the source of the libvirt ↔ QEMU feature-name mapping: a libvirt feature and a
//! QEMU feature are the same when they name the same bit (`pclmuldq` is `pclmulqdq`,
//! `tsc_adjust` is `tsc-adjust`). Nothing is embedded: the map is read from the installed
//! files (overridable with `$RVMM_LIBVIRT_CPU_MAP`), and pure `parse` takes their text.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::cpuid::CpuidReg;
use super::features::{name_of, FeatureWord, WordLocation};

/// Where Debian's libvirt0 installs the CPU map.
pub const DEFAULT_CPU_MAP_DIR: &str = "/usr/share/libvirt/cpu_map";
/// Environment variable overriding the CPU map directory.
pub const CPU_MAP_ENV: &str = "RVMM_LIBVIRT_CPU_MAP";

/// The CPU map cannot be read.
#[derive(Debug, Error)]
pub enum LibvirtMapError {
    #[error("libvirt's CPU map {dir} is missing: install Debian's libvirt0 (apt-get install libvirt0) or point ${CPU_MAP_ENV} at a cpu_map directory")]
    Missing { dir: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not well-formed XML: {message}")]
    Xml { file: String, message: String },
    #[error("{file}: <{element}>: {rule}")]
    Bad {
        file: String,
        element: String,
        rule: String,
    },
}

/// A feature's bit as libvirt describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LvLocation {
    /// `<cpuid eax_in= ecx_in= REG='mask'/>`.
    Cpuid {
        leaf: u32,
        subleaf: u32,
        reg: CpuidReg,
        mask: u32,
    },
    /// `<msr index= edx= eax=/>`.
    Msr { index: u32, mask: u64 },
}

/// One libvirt feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvFeature {
    pub name: String,
    /// `<alias name=>` children.
    pub aliases: Vec<String>,
    pub location: LvLocation,
    /// The QEMU feature naming the same bit, if QEMU 7.2 names it.
    pub qemu: Option<&'static str>,
}

/// One libvirt model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvModel {
    pub name: String,
    /// libvirt's vendor name (`Intel`, `AMD`, `Hygon`).
    pub vendor: Option<String>,
    /// Feature names, libvirt spelling.
    pub features: Vec<String>,
    /// Features marked `removed='yes'`: QEMU dropped them from its model; libvirt keeps the
    /// name for old domains, disables them in guests and does not count them as the
    /// model's features.
    pub removed: Vec<String>,
    /// `<signature family= model=>`.
    pub signatures: Vec<(u32, u32)>,
}

/// The whole x86 map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LibvirtCpuMap {
    /// (libvirt name, CPUID vendor string), e.g. ("Intel", "GenuineIntel").
    pub vendors: Vec<(String, String)>,
    pub features: Vec<LvFeature>,
    /// In index.xml order (oldest first).
    pub models: Vec<LvModel>,
}

/// The QEMU feature that names the bit at `loc`.
pub fn qemu_name_for(loc: LvLocation) -> Option<&'static str> {
    let (want, bit) = match loc {
        LvLocation::Cpuid {
            leaf,
            subleaf,
            reg,
            mask,
        } => {
            if mask.count_ones() != 1 {
                return None;
            }
            let word = FeatureWord::all().find(|w| match w.info().location {
                WordLocation::Cpuid {
                    leaf: l,
                    subleaf: s,
                    reg: r,
                } => l == leaf && r == reg && s.unwrap_or(0) == subleaf,
                WordLocation::Msr { .. } => false,
            })?;
            // A one-bit mask's bit number is below 64.
            (word, u8::try_from(mask.trailing_zeros()).ok()?)
        }
        LvLocation::Msr { index, mask } => {
            if mask.count_ones() != 1 {
                return None;
            }
            let word = FeatureWord::all().find(
                |w| matches!(w.info().location, WordLocation::Msr { index: i } if i == index),
            )?;
            // A one-bit mask's bit number is below 64.
            (word, u8::try_from(mask.trailing_zeros()).ok()?)
        }
    };
    name_of(want, bit)
}

fn parse_num(file: &str, element: &str, attr: &str, text: &str) -> Result<u64, LibvirtMapError> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.map_err(|_| LibvirtMapError::Bad {
        file: file.to_string(),
        element: element.to_string(),
        rule: format!("{attr}='{text}' is not a number"),
    })
}

/// [`parse_num`] for a 32-bit field (a CPUID leaf, register mask, MSR index, family or
/// model): a larger value is refused, never truncated.
fn parse_u32(file: &str, element: &str, attr: &str, text: &str) -> Result<u32, LibvirtMapError> {
    let n = parse_num(file, element, attr, text)?;
    u32::try_from(n).map_err(|_| LibvirtMapError::Bad {
        file: file.to_string(),
        element: element.to_string(),
        rule: format!("{attr}='{text}' does not fit in 32 bits"),
    })
}

fn parse_doc<'a>(file: &str, text: &'a str) -> Result<roxmltree::Document<'a>, LibvirtMapError> {
    // The map directory can be any directory (`$RVMM_LIBVIRT_CPU_MAP`): the same limits
    // as every XML rvmm reads.
    crate::xml_limits::check(text).map_err(|e| LibvirtMapError::Xml {
        file: file.to_string(),
        message: format!("line {}: refused before parsing: {e}", e.line()),
    })?;
    roxmltree::Document::parse(text).map_err(|e| LibvirtMapError::Xml {
        file: file.to_string(),
        message: e.to_string(),
    })
}

fn feature_location(file: &str, f: roxmltree::Node) -> Result<Option<LvLocation>, LibvirtMapError> {
    let name = f.attribute("name").unwrap_or("");
    for c in f.children().filter(|c| c.is_element()) {
        let element = format!("feature name='{name}'");
        let num = |attr: &str| -> Result<u32, LibvirtMapError> {
            match c.attribute(attr) {
                Some(v) => parse_u32(file, &element, attr, v),
                None => Ok(0),
            }
        };
        match c.tag_name().name() {
            "cpuid" => {
                let regs = [
                    ("eax", CpuidReg::Eax),
                    ("ebx", CpuidReg::Ebx),
                    ("ecx", CpuidReg::Ecx),
                    ("edx", CpuidReg::Edx),
                ];
                for (attr, reg) in regs {
                    let mask = num(attr)?;
                    if mask != 0 {
                        return Ok(Some(LvLocation::Cpuid {
                            leaf: num("eax_in")?,
                            subleaf: num("ecx_in")?,
                            reg,
                            mask,
                        }));
                    }
                }
            }
            "msr" => {
                return Ok(Some(LvLocation::Msr {
                    index: num("index")?,
                    mask: (u64::from(num("edx")?) << 32) | u64::from(num("eax")?),
                }))
            }
            _ => {}
        }
    }
    Ok(None)
}

impl LibvirtCpuMap {
    /// The map directory: `$RVMM_LIBVIRT_CPU_MAP` or /usr/share/libvirt/cpu_map.
    pub fn dir() -> PathBuf {
        std::env::var_os(CPU_MAP_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CPU_MAP_DIR))
    }

    /// Reads the installed map.
    pub fn load() -> Result<LibvirtCpuMap, LibvirtMapError> {
        Self::load_dir(&Self::dir())
    }

    /// Reads the map in `dir`.
    pub fn load_dir(dir: &Path) -> Result<LibvirtCpuMap, LibvirtMapError> {
        let index = dir.join("index.xml");
        if !index.exists() {
            return Err(LibvirtMapError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| LibvirtMapError::Read { path, source })
        };
        Self::parse(&read("index.xml")?, read)
    }

    /// Builds the map from index.xml's text and a reader for the files it includes.
    pub fn parse(
        index: &str,
        read: impl Fn(&str) -> Result<String, LibvirtMapError>,
    ) -> Result<LibvirtCpuMap, LibvirtMapError> {
        let doc = parse_doc("index.xml", index)?;
        let mut map = LibvirtCpuMap::default();
        let x86 = doc
            .descendants()
            .find(|n| n.has_tag_name("arch") && n.attribute("name") == Some("x86"));
        let Some(x86) = x86 else {
            return Err(LibvirtMapError::Bad {
                file: "index.xml".into(),
                element: "arch".into(),
                rule: "no <arch name='x86'>".into(),
            });
        };
        for inc in x86.children().filter(|c| c.has_tag_name("include")) {
            let Some(file) = inc.attribute("filename") else {
                continue;
            };
            map.add_file(file, &read(file)?)?;
        }
        Ok(map)
    }

    /// Adds the vendors, features and models of one map file.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), LibvirtMapError> {
        let doc = parse_doc(file, text)?;
        for n in doc.root_element().children().filter(|c| c.is_element()) {
            let name = n.attribute("name").unwrap_or("").to_string();
            match n.tag_name().name() {
                "vendor" => {
                    self.vendors
                        .push((name, n.attribute("string").unwrap_or("").to_string()));
                }
                "feature" => {
                    let Some(location) = feature_location(file, n)? else {
                        return Err(LibvirtMapError::Bad {
                            file: file.to_string(),
                            element: format!("feature name='{name}'"),
                            rule: "has neither <cpuid> nor <msr>".into(),
                        });
                    };
                    let aliases = n
                        .children()
                        .filter(|c| c.has_tag_name("alias"))
                        .filter_map(|c| c.attribute("name").map(String::from))
                        .collect();
                    self.features.push(LvFeature {
                        name,
                        aliases,
                        location,
                        qemu: qemu_name_for(location),
                    });
                }
                "model" => {
                    let mut m = LvModel {
                        name,
                        vendor: None,
                        features: Vec::new(),
                        removed: Vec::new(),
                        signatures: Vec::new(),
                    };
                    for c in n.children().filter(|c| c.is_element()) {
                        match c.tag_name().name() {
                            "vendor" => m.vendor = c.attribute("name").map(String::from),
                            "feature" => {
                                let name = c.attribute("name").map(String::from);
                                if c.attribute("removed") == Some("yes") {
                                    m.removed.extend(name);
                                } else {
                                    m.features.extend(name);
                                }
                            }
                            "signature" => {
                                let num = |a: &str| {
                                    c.attribute(a)
                                        .map(|v| parse_u32(file, "signature", a, v))
                                        .transpose()
                                };
                                if let (Some(f), Some(mo)) = (num("family")?, num("model")?) {
                                    m.signatures.push((f, mo));
                                }
                            }
                            _ => {}
                        }
                    }
                    self.models.push(m);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The feature called `name` (its name or one of its aliases).
    pub fn feature(&self, name: &str) -> Option<&LvFeature> {
        self.features.iter().find(|f| f.name == name).or_else(|| {
            self.features
                .iter()
                .find(|f| f.aliases.iter().any(|a| a == name))
        })
    }

    /// The libvirt name of QEMU's feature `qemu` (the first libvirt feature on that bit).
    pub fn libvirt_name(&self, qemu: &str) -> Option<&str> {
        self.features
            .iter()
            .find(|f| f.qemu == Some(qemu))
            .map(|f| f.name.as_str())
    }

    /// The model called `name`.
    pub fn model(&self, name: &str) -> Option<&LvModel> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The CPUID vendor string of libvirt's vendor `name`.
    pub fn vendor_string(&self, name: &str) -> Option<&str> {
        self.vendors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.as_str())
    }

    /// libvirt's name for the CPUID vendor string `id`.
    pub fn vendor_name(&self, id: &str) -> Option<&str> {
        self.vendors
            .iter()
            .find(|(_, s)| s == id)
            .map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str =
        "<cpus><arch name='x86'><include filename='v.xml'/><include filename='f.xml'/>\
<include filename='m.xml'/></arch><arch name='ppc64'><include filename='ppc.xml'/></arch></cpus>";
    const VENDORS: &str = "<cpus><vendor name='Intel' string='GenuineIntel'/></cpus>";
    const FEATURES: &str = "<cpus>\
<feature name='pclmuldq'><cpuid eax_in='0x01' ecx='0x00000002'/></feature>\
<feature name='tsc_adjust'><alias name='tsc-adjust' source='qemu'/>\
<cpuid eax_in='0x07' ecx_in='0x00' ebx='0x00000002'/></feature>\
<feature name='osxsave'><cpuid eax_in='0x01' ecx='0x08000000'/></feature>\
<feature name='rdctl-no'><msr index='0x10a' edx='0x00000000' eax='0x00000001'/></feature>\
</cpus>";
    const MODELS: &str = "<cpus><model name='Tiny'><signature family='6' model='42'/>\
<vendor name='Intel'/><feature name='pclmuldq'/><feature name='osxsave' removed='yes'/></model></cpus>";

    fn map() -> LibvirtCpuMap {
        LibvirtCpuMap::parse(INDEX, |f| {
            Ok(match f {
                "v.xml" => VENDORS,
                "f.xml" => FEATURES,
                "m.xml" => MODELS,
                other => panic!("read {other}"),
            }
            .to_string())
        })
        .unwrap()
    }

    #[test]
    fn maps_names_by_bit() {
        let m = map();
        assert_eq!(m.feature("pclmuldq").unwrap().qemu, Some("pclmulqdq"));
        assert_eq!(m.feature("tsc-adjust").unwrap().name, "tsc_adjust");
        assert_eq!(m.feature("tsc_adjust").unwrap().qemu, Some("tsc-adjust"));
        assert_eq!(m.feature("rdctl-no").unwrap().qemu, Some("rdctl-no"));
        // QEMU 7.2 gives OSXSAVE (CPUID.01H:ECX[27]) no name.
        assert_eq!(m.feature("osxsave").unwrap().qemu, None);
        assert_eq!(m.libvirt_name("pclmulqdq"), Some("pclmuldq"));
        assert_eq!(m.libvirt_name("avx"), None);
    }

    #[test]
    fn models_and_vendors() {
        let m = map();
        let tiny = m.model("Tiny").unwrap();
        assert_eq!(tiny.vendor.as_deref(), Some("Intel"));
        assert_eq!(tiny.features, ["pclmuldq"]);
        assert_eq!(tiny.removed, ["osxsave"]);
        assert_eq!(tiny.signatures, [(6, 42)]);
        assert_eq!(m.vendor_string("Intel"), Some("GenuineIntel"));
        assert_eq!(m.vendor_name("GenuineIntel"), Some("Intel"));
    }

    #[test]
    fn deep_map_files_are_refused_before_parsing() {
        let mut m = LibvirtCpuMap::default();
        let deep = format!(
            "<cpus>{}{}</cpus>",
            "<x>".repeat(100_000),
            "</x>".repeat(100_000)
        );
        assert_eq!(
            m.add_file("x86_features.xml", &deep)
                .unwrap_err()
                .to_string(),
            "x86_features.xml: not well-formed XML: line 1: refused before parsing: elements \
             nest deeper than the limit of 256 levels"
        );
    }

    #[test]
    fn errors_name_the_file_and_element() {
        let mut m = LibvirtCpuMap::default();
        let e = m
            .add_file(
                "f.xml",
                "<cpus><feature name='x'><cpuid eax_in='zz' eax='1'/></feature></cpus>",
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.xml: <feature name='x'>: eax_in='zz' is not a number"
        );
        let e = m
            .add_file("f.xml", "<cpus><feature name='y'/></cpus>")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.xml: <feature name='y'>: has neither <cpuid> nor <msr>"
        );
        let e = LibvirtCpuMap::load_dir(Path::new("/nonexistent")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("libvirt's CPU map /nonexistent is missing"));
    }
}
