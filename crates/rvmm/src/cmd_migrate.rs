//! `rvmm migrate VM URI [--downtime-limit MS] [--max-bandwidth B]` (QMP
//! `migrate-set-parameters`, `migrate`, then `query-migrate` until it is over) and the
//! front end of `rvmm run --incoming URI` (docs/migration.md).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use vmm::migration::{Listener, MigrationInfo, MigrationStatus, MigrationUri};

use crate::cli::{MigrateArgs, RunArgs};
use crate::cmd_qmp::connect;
use crate::output::outln;

/// How often the migration's progress is read (the command ends at most this long after
/// the migration).
const POLL: Duration = Duration::from_millis(20);

/// `--incoming URI`: checked and bound before anything else (a port in use is one
/// message, exit 1, nothing built).
pub(crate) fn incoming_listener(args: &RunArgs) -> Result<Option<Listener>> {
    let Some(text) = &args.incoming else {
        return Ok(None);
    };
    if args.restore.is_some() {
        bail!("--incoming conflicts with --restore: the VM comes from the migration source");
    }
    if args.dry_run {
        bail!("--incoming conflicts with --dry-run: a dry run builds nothing to migrate into");
    }
    let uri = MigrationUri::parse(text).map_err(|e| anyhow::anyhow!("--incoming {e}"))?;
    Ok(Some(Listener::bind(&uri, "--incoming")?))
}

pub fn migrate(args: MigrateArgs) -> Result<ExitCode> {
    // The address is checked here too, so a bad one never reaches the VM.
    MigrationUri::parse(&args.uri)?;
    let mut client = connect(&args.vm)?;
    let mut params = serde_json::Map::new();
    if let Some(d) = args.downtime_limit {
        params.insert("downtime-limit".into(), json!(d));
    }
    if let Some(b) = args.max_bandwidth {
        params.insert("max-bandwidth".into(), json!(b));
    }
    if !params.is_empty() {
        client
            .execute("migrate-set-parameters", Some(params.into()))
            .context("migrate-set-parameters")?;
    }
    client.execute("migrate", Some(json!({ "uri": args.uri })))?;
    let start = Instant::now();
    let mut told = false;
    let info = loop {
        let info: MigrationInfo = client
            .call("query-migrate", None)
            .context("query-migrate")?;
        if info.status.is_some_and(MigrationStatus::finished) {
            break info;
        }
        // Capability `pause-before-switchover`: someone else lets it go on.
        if info.status == Some(MigrationStatus::PreSwitchover) && !told {
            told = true;
            eprintln!(
                "rvmm migrate: the VM is paused in pre-switchover (capability \
                 pause-before-switchover); waiting for QMP migrate-continue \
                 {{\"state\": \"pre-switchover\"}} (or migrate_cancel) on {}",
                args.vm
            );
        }
        std::thread::sleep(POLL);
    };
    let ram = info.ram.unwrap_or_default();
    match info.status {
        Some(MigrationStatus::Completed) => {
            outln!(
                "migrated to {} in {} ms (downtime {} ms): {} MiB sent, {} pages with data, {} zero pages, {} dirty-log rounds; the VM here is paused (postmigrate)",
                args.uri,
                info.total_time.unwrap_or(start.elapsed().as_millis() as u64),
                info.downtime.unwrap_or(0),
                ram.transferred >> 20,
                ram.normal,
                ram.duplicate,
                ram.dirty_sync_count
            )?;
            Ok(ExitCode::SUCCESS)
        }
        status => bail!(
            "migration to {} {}: {}; the VM keeps running",
            args.uri,
            status.map_or("failed", MigrationStatus::as_str),
            info.error_desc.unwrap_or_else(|| "no reason given".into())
        ),
    }
}
