//! `query-version`: QEMU's VersionInfo shape with the QEMU version rvmm follows and
//! `package: "rvmm X.Y.Z"` (the same value the greeting carries).

use super::QmpCommand;
use crate::control::args::Args;
use crate::control::error::QmpError;
use crate::control::qmp::Version;
use crate::control::view::VmView;

pub const NAME: &str = "query-version";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryVersion;

impl QmpCommand for QueryVersion {
    const NAME: &'static str = NAME;
    type Reply = Version;

    fn parse(_: &mut Args) -> Result<Self, QmpError> {
        Ok(QueryVersion)
    }

    fn execute(&self, _: &mut dyn VmView) -> Result<Version, QmpError> {
        Ok(Version::rvmm())
    }
}
