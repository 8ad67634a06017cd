//! `rvmm top VM [--batch] [--iterations N] [--delay S] [--sort COLUMN]`: samples
//! `__org.rvmm_stats` every --delay and shows the rates between consecutive samples
//! (vmm::monitor::rates) as vmm::monitor::top renders them. The first refresh needs two
//! samples, one --delay apart.
//!
//! Interactive mode (top_term.rs) redraws on the alternate screen; `q` quits, `<` and `>`
//! move the sort column, and each column's key (shown on the help line) sorts by it.
//! `--batch` prints one plain block per refresh, blocks separated by a blank line, for
//! `--iterations` refreshes (no limit by default). A VM that ends while watched ends top
//! with "top: VM NAME ended", exit 1, the terminal restored.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vmm::control::commands::stats::StatsQuery;
use vmm::control::{ClientError, QmpClient};
use vmm::monitor::rates::{rates, VmRates};
use vmm::monitor::sample::StatsReport;
use vmm::monitor::top::{render_top, Column, Screen};
use vmm::util::duration::parse_duration;

use crate::cli::TopArgs;
use crate::cmd_qmp::connect;
use crate::output::write_stdout;
use crate::top_term::{Input, Terminal};

/// Whether a failed request means the VM is gone (its end of the socket closed), rather
/// than, say, a reply that did not come in time.
fn vm_ended(e: &ClientError) -> bool {
    use std::io::ErrorKind;
    match e {
        ClientError::Closed { .. } => true,
        ClientError::Io { error, .. } => matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}

/// Samples one VM.
struct Sampler {
    client: QmpClient,
    /// The VM's name for messages: its own `--name` once known, else the VM argument.
    name: String,
}

impl Sampler {
    fn sample(&mut self) -> Result<StatsReport> {
        match self.client.request(&StatsQuery { vcpu: None }) {
            Ok(report) => {
                if let Some(n) = &report.name {
                    self.name.clone_from(n);
                }
                Ok(report)
            }
            Err(e) if vm_ended(&e) => bail!("top: VM {} ended", self.name),
            Err(e) => Err(e).context("top"),
        }
    }

    fn rates(&self, before: &StatsReport, after: &StatsReport) -> Result<VmRates> {
        rates(before, after).with_context(|| format!("top: VM {}", self.name))
    }
}

pub fn top(args: TopArgs) -> Result<ExitCode> {
    let delay = parse_duration("--delay", &args.delay)?;
    let sort = Column::parse(&args.sort)?;
    if args.iterations == Some(0) {
        bail!("--iterations: \"0\" is not a number of refreshes: give 1 or more");
    }
    let mut sampler = Sampler {
        client: connect(&args.vm)?,
        name: args.vm.clone(),
    };
    if args.batch {
        batch(&mut sampler, delay, sort, args.iterations)
    } else {
        interactive(&mut sampler, delay, sort, args.iterations)
    }
}

fn batch(
    sampler: &mut Sampler,
    delay: Duration,
    sort: Column,
    iterations: Option<u64>,
) -> Result<ExitCode> {
    let mut before = sampler.sample()?;
    let mut done = 0u64;
    loop {
        std::thread::sleep(delay);
        let after = sampler.sample()?;
        let r = sampler.rates(&before, &after)?;
        let screen = Screen {
            name: &sampler.name,
            sort,
            width: None,
            help: false,
        };
        let mut text = String::new();
        if done > 0 {
            text.push('\n');
        }
        for line in render_top(&r, &screen) {
            text.push_str(&line);
            text.push('\n');
        }
        write_stdout(&text)?;
        done += 1;
        if iterations.is_some_and(|n| done >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        before = after;
    }
}

/// What the keys and signals asked for while waiting.
enum Waited {
    /// The delay passed: sample again.
    Refresh,
    /// End top with this status.
    Exit(ExitCode),
}

/// Waits `delay`, acting on keys (sort changes redraw `shown` at once) meanwhile.
fn wait_keys(
    term: &Terminal,
    delay: Duration,
    sort: &mut Column,
    draw: &dyn Fn(Column) -> Result<()>,
) -> Result<Waited> {
    let deadline = Instant::now() + delay;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Waited::Refresh);
        }
        let changed = match term.wait(deadline - now)? {
            Input::Timeout => None,
            Input::Closed | Input::Key(b'q' | b'Q') => return Ok(Waited::Exit(ExitCode::SUCCESS)),
            Input::Signal(signo) => {
                return Ok(Waited::Exit(ExitCode::from(
                    128u8.wrapping_add(signo as u8),
                )))
            }
            Input::Resized => Some(*sort),
            Input::Key(b'<') => Some(sort.prev()),
            Input::Key(b'>') => Some(sort.next()),
            Input::Key(k) => Column::from_key(char::from(k)),
        };
        if let Some(column) = changed {
            *sort = column;
            draw(column)?;
        }
    }
}

fn interactive(
    sampler: &mut Sampler,
    delay: Duration,
    mut sort: Column,
    iterations: Option<u64>,
) -> Result<ExitCode> {
    let term = Terminal::enter().context("top")?;
    let mut before = sampler.sample()?;
    let waiting = format!(
        "rvmm top - {}: sampling for {:.2}s (q quits)",
        sampler.name,
        delay.as_secs_f64()
    );
    let (width, _) = term.size();
    term.draw(&[vmm::monitor::top::truncate(&waiting, width)])?;
    let no_rates = |_: Column| Ok(());
    if let Waited::Exit(code) = wait_keys(&term, delay, &mut sort, &no_rates)? {
        return Ok(code);
    }
    let mut done = 0u64;
    loop {
        let after = sampler.sample()?;
        let r = sampler.rates(&before, &after)?;
        let draw = |column: Column| -> Result<()> {
            let (width, _) = term.size();
            let screen = Screen {
                name: &sampler.name,
                sort: column,
                width: Some(width),
                help: true,
            };
            term.draw(&render_top(&r, &screen))?;
            Ok(())
        };
        draw(sort)?;
        done += 1;
        if iterations.is_some_and(|n| done >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        if let Waited::Exit(code) = wait_keys(&term, delay, &mut sort, &draw)? {
            return Ok(code);
        }
        before = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};
    use std::path::PathBuf;

    #[test]
    fn a_closed_socket_is_the_vm_ending_a_timeout_is_not() {
        let io = |kind| ClientError::Io {
            path: PathBuf::from("/x.qmp"),
            error: Error::from(kind),
        };
        assert!(vm_ended(&ClientError::Closed {
            path: PathBuf::from("/x.qmp")
        }));
        assert!(vm_ended(&io(ErrorKind::ConnectionReset)));
        assert!(vm_ended(&io(ErrorKind::BrokenPipe)));
        assert!(!vm_ended(&io(ErrorKind::WouldBlock)));
        assert!(!vm_ended(&io(ErrorKind::TimedOut)));
        assert!(!vm_ended(&ClientError::Qmp {
            class: "GenericError".into(),
            desc: "x".into()
        }));
    }
}
