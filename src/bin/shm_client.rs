//! `shm_client`: fetches files from `shm_server` through POSIX shared memory.
//! Parses arguments, drives [`shmxfer::Client`], prints one line per file and
//! maps the outcome to an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmxfer::shm_region::{DEFAULT_SLOTS, MAX_SLOTS};
use shmxfer::{Client, ClientConfig, Delivery, Error, Outcome, Progress, DEFAULT_QUEUE};

/// Every file delivered.
const EXIT_OK: u8 = 0;
/// At least one file not delivered (not found, refused, failed check, busy server).
const EXIT_NOT_DELIVERED: u8 = 1;
/// Usage error.
const EXIT_USAGE: u8 = 2;
/// No server within --wait.
const EXIT_NO_SERVER: u8 = 3;
/// Session lost: the server died, or broke the protocol.
const EXIT_SESSION_LOST: u8 = 4;
/// Interrupted by SIGINT/SIGTERM.
const EXIT_INTERRUPTED: u8 = 130;

/// Fetch files from shm_server through POSIX shared memory.
#[derive(Debug, Parser)]
#[command(
    name = "shm_client",
    version,
    long_about = "Fetch files from a shm_server on this machine through POSIX shared memory.\n\n\
        The client creates its own shared-memory region (at most 4096 bytes) and two named semaphores, \
        asks for each FILE on the server's message queue, and writes what arrives into --out-dir under \
        the FILE's last path component. A file appears under its name only once its size and xxh3-64 \
        checksum are verified; a missing file is reported as 'not found on server' and creates nothing.\n\n\
        The client may start before the server: it waits up to --wait seconds for the queue.",
    after_help = "Examples:\n  \
        shm_client hello.txt subdir/nested.txt      fetch two files into the current directory\n  \
        shm_client -o /tmp/in --wait 5 big.iso      fetch into /tmp/in, wait at most 5 s for a server\n  \
        shm_client --list                           show what the server serves\n  \
        shm_client --stop-server                    stop a --persistent server\n\n\
        Output: one line per FILE on stdout ('NAME: received N bytes', 'NAME: not found on server', ...); \
        diagnostics on stderr; a progress bar on stderr when it is a terminal.\n\n\
        Exit status: 0 every file delivered, 1 at least one not delivered, 2 usage error, \
        3 no server within --wait, 4 session lost (server died, protocol error), 130 interrupted."
)]
struct Args {
    /// Name of the server's command queue: a leading '/', no other '/'.
    #[arg(long, value_name = "NAME", env = "SHMXFER_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,

    /// Directory the files are written into.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,

    /// Seconds to wait for a server to appear (0: try once).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    wait: Duration,

    /// Do not replace files that exist in the output directory (such a file counts as not delivered).
    #[arg(long)]
    no_clobber: bool,

    /// Print only failures: no success lines, no progress, no waiting notice.
    #[arg(short, long)]
    quiet: bool,

    /// Print the server's files with their sizes (SIZE, a tab, PATH per line) instead of fetching.
    #[arg(long, conflicts_with_all = ["files", "stop_server", "no_clobber"])]
    list: bool,

    /// Ask the server to stop and wait until it has.
    #[arg(long, conflicts_with_all = ["files", "no_clobber"])]
    stop_server: bool,

    /// Slots in the shared-memory ring (1-4); for measurements.
    #[arg(long, hide = true, default_value_t = DEFAULT_SLOTS, value_parser = clap::value_parser!(u32).range(1..=MAX_SLOTS as i64))]
    slots: u32,

    /// Files to fetch, as paths relative to the server's root.
    #[arg(value_name = "FILE", required_unless_present_any = ["list", "stop_server"])]
    files: Vec<String>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a number of seconds >= 0"))
}

/// A progress bar on stderr while a file arrives, only on a terminal.
struct Bar {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn start(&mut self, name: &str, size: u64) {
        if !self.enabled || size < 1 << 20 {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_owned());
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Prints one result line on stdout. A closed stdout (`shm_client … | head -1`)
/// does not stop the transfers, nor leave objects behind as SIGPIPE would: the
/// lines are dropped and the exit status still tells what happened.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn exit_code_for(e: &Error) -> u8 {
    match e {
        Error::NoServer { .. } => EXIT_NO_SERVER,
        Error::Cancelled => EXIT_INTERRUPTED,
        Error::Busy { .. } => EXIT_NOT_DELIVERED,
        Error::InvalidName { .. } => EXIT_USAGE,
        _ => EXIT_SESSION_LOST,
    }
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("shm_client: {e}");
    ExitCode::from(exit_code_for(e))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while cleaning up ends the process at once.
        let installed = signal_hook::flag::register_conditional_shutdown(
            sig,
            EXIT_INTERRUPTED.into(),
            Arc::clone(&cancel),
        )
        .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&cancel)));
        if let Err(e) = installed {
            eprintln!("shm_client: installing signal handlers: {e}");
            return ExitCode::from(EXIT_SESSION_LOST);
        }
    }
    let config = ClientConfig { queue: args.queue.clone(), wait: args.wait, slots: args.slots };
    let quiet = args.quiet;
    let mut on_wait = || {
        if !quiet {
            eprintln!(
                "shm_client: waiting up to {} s for a server on queue {}",
                args.wait.as_secs_f64(),
                args.queue
            );
        }
    };

    if args.stop_server {
        return match shmxfer::stop_server(&config, &cancel, &mut on_wait) {
            Ok(()) => {
                if !quiet {
                    eprintln!("shm_client: the server on queue {} stopped", args.queue);
                }
                ExitCode::from(EXIT_OK)
            }
            Err(e) => fail(&e),
        };
    }

    if !args.list {
        match std::fs::metadata(&args.out_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                eprintln!("shm_client: output directory {}: not a directory", args.out_dir.display());
                return ExitCode::from(EXIT_NOT_DELIVERED);
            }
            Err(e) => {
                eprintln!("shm_client: output directory {}: {e}", args.out_dir.display());
                return ExitCode::from(EXIT_NOT_DELIVERED);
            }
        }
    }

    let mut client = match Client::connect(&config, Arc::clone(&cancel), &mut on_wait) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };

    if args.list {
        let listed = client.list();
        let closed = client.close();
        return match listed.and_then(|l| closed.map(|()| l)) {
            Ok(entries) => {
                for (path, size) in entries {
                    say(format_args!("{size}\t{path}"));
                }
                ExitCode::from(EXIT_OK)
            }
            Err(e) => fail(&e),
        };
    }

    let delivery = Delivery { out_dir: args.out_dir.clone(), no_clobber: args.no_clobber };
    let mut bar = Bar { enabled: !quiet && std::io::stderr().is_terminal(), bar: None };
    let mut all_delivered = true;
    let mut report = |path: &str, outcome: &Outcome| {
        let name = shmxfer::output_name(path).unwrap_or(path);
        match outcome {
            Outcome::Delivered { bytes } => {
                if !quiet {
                    say(format_args!("{name}: received {bytes} bytes"));
                }
            }
            Outcome::NotFound => say(format_args!("{name}: not found on server")),
            Outcome::Refused(why) => say(format_args!("{name}: refused by server: {why}")),
            Outcome::Failed(why) => say(format_args!("{name}: failed: {why}")),
        }
        all_delivered &= outcome.is_delivered();
    };
    let fetched = delivery.fetch(&mut client, &args.files, &mut bar, &mut |p, o| {
        report(p, o);
    });
    bar.finish();
    let fetched = fetched.and_then(|outcomes| client.close().map(|()| outcomes));
    match fetched {
        Ok(_) if all_delivered => ExitCode::from(EXIT_OK),
        Ok(_) => ExitCode::from(EXIT_NOT_DELIVERED),
        Err(e) => fail(&e),
    }
}
