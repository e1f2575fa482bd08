//! `shm_client`: fetches files from `shm_server` through POSIX shared memory.
//! Parses arguments, drives [`shmxfer::Client`], prints one line per file and
//! maps the outcome to an exit code.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shmxfer::shm_region::{DEFAULT_SLOTS, MAX_SLOTS};
use shmxfer::{Client, ClientConfig, Delivery, Error, Outcome, Progress, DEFAULT_QUEUE};

mod common;
use common::{byte_count, human_size, json_string, quote_name};

/// `std::eprintln!` without its panic: a closed stderr (`2>&1 | head -1`)
/// loses the message, not the exit status.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

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

/// How long a fetch waits for a server unless `--wait` says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Fetch files from shm_server through POSIX shared memory.
#[derive(Debug, Parser)]
#[command(
    name = "shm_client",
    version,
    override_usage = "shm_client [OPTIONS] [-r] FILE...\n       \
        shm_client [OPTIONS] -i LIST\n       \
        shm_client [OPTIONS] --stdout FILE\n       \
        shm_client [OPTIONS] --list [PREFIX] [--json]\n       \
        shm_client [OPTIONS] --status [--json]\n       \
        shm_client [OPTIONS] --stop-server",
    long_about = "Fetch files from a shm_server on this machine through POSIX shared memory.\n\n\
        The client creates its own shared-memory region (at most 4096 bytes) and two named semaphores, \
        asks for each FILE on the server's message queue, and writes what arrives into --out-dir under \
        the FILE's last path component. A file appears under its name only once its size and xxh3-64 \
        checksum are verified; a missing file is reported as 'not found on server' and creates nothing.\n\n\
        A fetch may start before the server: it waits up to --wait seconds for the queue.",
    after_help = "Examples:\n  \
        shm_client hello.txt subdir/nested.txt      fetch two files into the current directory\n  \
        shm_client -o /tmp/in --wait 5 big.iso      fetch into /tmp/in, wait at most 5 s for a server\n  \
        shm_client -i filelist.txt                  fetch the files named in filelist.txt\n  \
        shm_client --stdout big.iso | sha256sum     stream one file to a pipe\n  \
        shm_client -r -o /tmp/in subdir             fetch subdir/ and everything below it into /tmp/in/subdir\n  \
        shm_client --list subdir --human            show what the server serves below subdir/\n  \
        shm_client --status                         what the server is doing, session by session\n  \
        shm_client --stop-server                    stop a --persistent server\n\n\
        Output: one line per FILE on stdout ('NAME: received N bytes', 'NAME: not found on server', ...); \
        a name holding control characters is quoted as ls quotes it ('a'$'\\n''b'). Diagnostics, a summary \
        when more than one file was asked for, and a progress bar (when stderr is a terminal) go to stderr.\n\n\
        Exit status: 0 every file delivered, 1 at least one not delivered, 2 usage error, \
        3 no server within --wait, 4 session lost (server died, protocol error), 130 interrupted."
)]
struct Args {
    /// Name of the server's command queue: a leading '/', no other '/'.
    #[arg(long, value_name = "NAME", env = "SHMXFER_QUEUE", default_value = DEFAULT_QUEUE, value_parser = common::parse_queue)]
    queue: String,

    /// Directory the files are written into.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,

    /// Seconds to wait for a server to appear (0: try once). Default: 30 for a fetch; --list,
    /// --status and --stop-server try once unless --wait is given.
    #[arg(long, value_name = "SECS", value_parser = common::parse_secs, allow_negative_numbers = true)]
    wait: Option<Duration>,

    /// Read the names of the files to fetch from LIST, one per line ('-': standard input); blank
    /// lines are skipped. Names given as arguments come first.
    #[arg(short = 'i', long = "input", value_name = "LIST")]
    input: Option<PathBuf>,

    /// Do not replace files that exist in the output directory (such a file counts as not delivered).
    #[arg(long)]
    no_clobber: bool,

    /// Keep each FILE's path below --out-dir (d1/x -> DIR/d1/x), creating directories as needed; without it
    /// a file is written under its last path component, and two FILEs with the same one are refused.
    /// With -r: each file keeps its whole path in the server's tree.
    #[arg(short = 'R', long)]
    relative: bool,

    /// Print only failures: no success lines, no summary, no progress, no waiting notice.
    #[arg(short, long)]
    quiet: bool,

    /// Print the server's files with their sizes (SIZE, a tab, PATH per line) instead of fetching;
    /// with PREFIX, only PREFIX itself or what lies below the directory PREFIX.
    #[arg(long, value_name = "PREFIX", num_args = 0..=1,
          conflicts_with_all = ["files", "stop_server", "no_clobber", "input", "relative"])]
    list: Option<Option<String>>,

    /// Ask the server what it is doing: its pid, root, mode, uptime, sessions and totals, and a
    /// line per live session (client pid, file, bytes so far, rate, time since its last frame).
    #[arg(long, conflicts_with_all = ["files", "list", "stop_server", "no_clobber", "input", "stdout", "recursive", "relative"])]
    status: bool,

    /// With --list or --status: print JSON for scripts.
    #[arg(long)]
    json: bool,

    /// Print sizes as B, KiB, MiB, GiB.
    #[arg(long)]
    human: bool,

    /// Write the one FILE to standard output instead of into --out-dir; nothing else goes to
    /// stdout. Size and checksum are still verified: a mismatch is reported on stderr with exit
    /// status 1 (the bytes have left by then).
    #[arg(long, conflicts_with_all = ["list", "stop_server", "no_clobber", "out_dir", "relative"])]
    stdout: bool,

    /// Fetch directories of the server's tree with what lies below them, keeping their paths
    /// below --out-dir (`-r sub` writes `sub/...`, `-r .` the whole tree); never writes outside
    /// --out-dir.
    #[arg(short = 'r', long, conflicts_with_all = ["list", "stop_server", "stdout"])]
    recursive: bool,

    /// Ask the server to stop and wait until it has.
    #[arg(long, conflicts_with_all = ["files", "no_clobber", "input", "relative"])]
    stop_server: bool,

    /// End a session in which no frame moved for SECS seconds (the server stopped or stuck):
    /// exit 4, objects removed. 0: wait for ever.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = common::parse_secs, allow_negative_numbers = true)]
    stall_timeout: Duration,

    /// Slots in the shared-memory ring (1-4); for measurements.
    #[arg(long, hide = true, default_value_t = DEFAULT_SLOTS, value_parser = clap::value_parser!(u32).range(1..=MAX_SLOTS as i64))]
    slots: u32,

    /// Give up on a live server that has not taken the session after SECS seconds; for tests.
    #[arg(long, hide = true, value_name = "SECS", default_value = "10", value_parser = common::parse_secs)]
    attach_timeout: Duration,

    /// Files to fetch, as paths relative to the server's root.
    #[arg(value_name = "FILE", required_unless_present_any = ["list", "stop_server", "input", "status", "completions", "man"])]
    files: Vec<String>,

    /// Print a completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit: `shm_client --man > shm_client.1`.
    #[arg(long)]
    man: bool,
}

/// A progress bar on stderr while a file arrives, only on a terminal; and
/// how far the file in progress got (within 1 MiB), for the line of a file
/// a lost session cut off.
struct Bar {
    enabled: bool,
    bar: Option<ProgressBar>,
    /// The size of the file arriving and the bytes received of it.
    current: Option<(u64, u64)>,
}

impl Bar {
    fn new(enabled: bool) -> Bar {
        Bar { enabled, bar: None, current: None }
    }
}

impl Progress for Bar {
    fn start(&mut self, name: &str, size: u64) {
        self.current = Some((size, 0));
        if !self.enabled || size < 1 << 20 {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(quote_name(name).into_owned());
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some((_, got)) = &mut self.current {
            *got += bytes;
        }
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        self.current = None;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Prints one result line on stdout. A closed stdout (`shm_client … | head -1`)
/// does not stop the transfers, nor leave objects behind as SIGPIPE would: the
/// lines are dropped and the exit status still tells what happened.
fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn exit_code_for(e: &Error) -> u8 {
    match e {
        // No server to trust on this queue: its objects are not what they
        // should be (a FIFO, another user's queue or lock).
        Error::NoServer { .. } | Error::BadObject { .. } | Error::QueueFull { .. } => EXIT_NO_SERVER,
        Error::Cancelled => EXIT_INTERRUPTED,
        Error::Busy { .. } => EXIT_NOT_DELIVERED,
        Error::InvalidName { .. } | Error::SameOutput { .. } => EXIT_USAGE,
        _ => EXIT_SESSION_LOST,
    }
}

fn fail(e: &Error) -> ExitCode {
    let hint = match e {
        Error::PeerGone(_) | Error::Stalled { .. } => {
            "; nothing partial is kept: run it again once the server runs"
        }
        _ => "",
    };
    eprintln!("shm_client: {}{hint}", common::chain(e));
    ExitCode::from(exit_code_for(e))
}

/// [`fail`] for finding a server, which waited up to `wait`.
fn fail_to_connect(e: &Error, wait: Duration) -> ExitCode {
    let Error::NoServer { queue, .. } = e else {
        return fail(e);
    };
    let more = if wait.is_zero() { ", or give --wait SECS to wait for it" } else { "" };
    eprintln!("shm_client: {e}; start `shm_server --queue {queue}` first{more}");
    ExitCode::from(exit_code_for(e))
}

/// Exits 2 with clap's usage error `msg`.
fn usage_error(kind: ErrorKind, msg: impl std::fmt::Display) -> ! {
    Args::command().error(kind, msg).exit()
}

/// The `-i` list as messages name it.
fn list_shown(list: &std::path::Path) -> String {
    if list.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        list.display().to_string()
    }
}

/// The names in `list` (a file, or `-` for stdin): one per line, blank lines
/// skipped, a trailing `\r` dropped.
fn read_names(list: &PathBuf) -> Result<Vec<String>, String> {
    let shown = list_shown(list);
    let reader: Box<dyn BufRead> = if list.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(list).map_err(|e| format!("cannot read the names in {shown}: {e}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut names = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(|e| format!("cannot read the names in {shown}: {e}"))?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let name = String::from_utf8(line.to_vec()).map_err(|_| {
            format!("{shown}, line {}: the name is not UTF-8; file names must be UTF-8", i + 1)
        })?;
        names.push(name);
    }
    Ok(names)
}

/// `bytes` as the user asked: exact, or for people with `--human`.
fn size_text(bytes: u64, human: bool) -> String {
    if human {
        human_size(bytes)
    } else {
        bytes.to_string()
    }
}

/// Whether the listed `path` is `prefix` or lies below the directory `prefix`.
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix == "."
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn list(mut client: Client, args: &Args, prefix: &str) -> ExitCode {
    let listed = client.list();
    let closed = client.close();
    let entries = match listed.and_then(|l| closed.map(|()| l)) {
        Ok(entries) => entries,
        Err(e) => return fail(&e),
    };
    let entries: Vec<(String, u64)> = entries.into_iter().filter(|(p, _)| under_prefix(p, prefix)).collect();
    if args.json {
        let mut out = String::from("{\"files\":[");
        for (i, (path, size)) in entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("{{\"path\":{},\"size\":{size}}}", json_string(path)));
        }
        out.push_str("]}");
        say(format_args!("{out}"));
    } else {
        for (path, size) in &entries {
            say(format_args!("{}\t{}", size_text(*size, args.human), quote_name(path)));
        }
    }
    if entries.is_empty() && prefix != "." {
        eprintln!(
            "shm_client: the server has no file at or below {}; see `shm_client --list` for what it has",
            quote_name(prefix)
        );
        return ExitCode::from(EXIT_NOT_DELIVERED);
    }
    ExitCode::from(EXIT_OK)
}

/// `--status`: the server and its other sessions, as text or JSON.
fn status(mut client: Client, args: &Args) -> ExitCode {
    let asked = client.status();
    let closed = client.close();
    let status = match asked.and_then(|s| closed.map(|()| s)) {
        Ok(status) => status,
        Err(e) => return fail(&e),
    };
    let server = &status.server;
    let rate = |bytes: u64, ms: u64| bytes.saturating_mul(1000).checked_div(ms).unwrap_or(0);
    if args.json {
        let mut out = format!(
            "{{\"server\":{{\"pid\":{},\"root\":{},\"persistent\":{},\"max_sessions\":{},\"open_sessions\":{},\
             \"uptime_ms\":{},\"sessions_total\":{},\"files\":{},\"bytes\":{}}},\"sessions\":[",
            server.pid,
            json_string(&server.root),
            server.persistent,
            server.max_sessions,
            server.open_sessions,
            server.uptime_ms,
            server.sessions_total,
            server.files,
            server.bytes
        );
        for (i, s) in status.sessions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let path = if s.path.is_empty() { "null".to_owned() } else { json_string(&s.path) };
            out.push_str(&format!(
                "{{\"client_pid\":{},\"path\":{path},\"sent\":{},\"size\":{},\"rate\":{},\"idle_ms\":{},\
                 \"file_ms\":{},\"age_ms\":{},\"total\":{}}}",
                s.client_pid,
                s.sent,
                s.size,
                rate(s.sent, s.file_ms),
                s.idle_ms,
                s.file_ms,
                s.age_ms,
                s.total
            ));
        }
        out.push_str("]}");
        say(format_args!("{out}"));
        return ExitCode::from(EXIT_OK);
    }
    let secs = |ms: u64| Duration::from_millis(ms).as_secs_f64();
    say(format_args!(
        "server pid {} on queue {}, serving {} ({}), up {:.1} s",
        server.pid,
        args.queue,
        quote_name(&server.root),
        if server.persistent { "persistent" } else { "until the last client leaves" },
        secs(server.uptime_ms)
    ));
    say(format_args!(
        "sessions: {} open of {} allowed, {} since the start; sent {} file(s), {}",
        server.open_sessions,
        server.max_sessions,
        server.sessions_total,
        server.files,
        size_text(server.bytes, args.human) + if args.human { "" } else { " bytes" }
    ));
    for s in &status.sessions {
        let doing = if s.path.is_empty() {
            "between files".to_owned()
        } else {
            format!(
                "{}: {} of {}, {}/s",
                quote_name(&s.path),
                size_text(s.sent, args.human),
                size_text(s.size, args.human) + if args.human { "" } else { " bytes" },
                human_size(rate(s.sent, s.file_ms))
            )
        };
        say(format_args!("client {}: {doing}, last frame {:.1} s ago", s.client_pid, secs(s.idle_ms)));
    }
    ExitCode::from(EXIT_OK)
}

/// What became of the files asked for, for the summary line.
#[derive(Default)]
struct Tally {
    delivered: usize,
    not_found: usize,
    refused: usize,
    failed: usize,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Delivered { bytes } => {
                self.delivered += 1;
                self.bytes += bytes;
            }
            Outcome::NotFound => self.not_found += 1,
            Outcome::Refused(_) => self.refused += 1,
            Outcome::Failed(_) => self.failed += 1,
        }
    }

    fn reported(&self) -> usize {
        self.delivered + self.not_found + self.refused + self.failed
    }

    /// `7 files: 5 delivered, 1 not found, 1 failed; 2.0 MiB in 0.04 s (50.0 MiB/s)`
    fn summary(&self, asked: usize, took: Duration) -> String {
        let mut parts = vec![format!("{} delivered", self.delivered)];
        for (n, what) in [
            (self.not_found, "not found"),
            (self.refused, "refused"),
            (self.failed, "failed"),
            (asked - self.reported(), "not fetched"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let secs = took.as_secs_f64();
        let rate = if secs > 0.0 { human_size((self.bytes as f64 / secs) as u64) } else { "-".into() };
        format!("{asked} files: {}; {} in {secs:.2} s ({rate}/s)", parts.join(", "), human_size(self.bytes))
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.kind() == ErrorKind::InvalidUtf8 => {
            // Only names are read as text (files, --list, --queue); paths such as -o may be any bytes.
            let bad = std::env::args_os().skip(1).find(|a| a.to_str().is_none());
            let shown = bad.map(|a| a.as_encoded_bytes().escape_ascii().to_string()).unwrap_or_default();
            eprintln!("shm_client: {shown}: not UTF-8; file names (and queue names) must be UTF-8");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => e.exit(),
    };
    let environment =
        &[("SHMXFER_QUEUE", "The server's queue when --queue is not given (default /shmxfer).")];
    if let Some(code) = common::print_generated(Args::command(), args.completions, args.man, environment) {
        return code;
    }
    if args.json && args.list.is_none() && !args.status {
        usage_error(ErrorKind::MissingRequiredArgument, "--json goes with --list or --status");
    }
    let mut files = args.files.clone();
    if let Some(input) = &args.input {
        match read_names(input) {
            Ok(names) => files.extend(names),
            Err(msg) => {
                eprintln!("shm_client: {msg}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
        if files.is_empty() {
            eprintln!("shm_client: {} names no file to fetch; give one name per line", list_shown(input));
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if files.iter().any(String::is_empty) {
        usage_error(
            ErrorKind::InvalidValue,
            "an empty file name; name a path below the server's root ('.' with -r: all of it)",
        );
    }
    if let Some(Some(prefix)) = &args.list {
        if prefix.is_empty() {
            usage_error(ErrorKind::InvalidValue, "--list '': an empty prefix; give none to list everything");
        }
        if prefix.starts_with('/') {
            eprintln!(
                "shm_client: {}: leads outside the served directory; list a path below the server's root, or give no prefix",
                quote_name(prefix)
            );
            return ExitCode::from(EXIT_NOT_DELIVERED);
        }
    }
    if args.stdout && files.len() != 1 {
        usage_error(
            ErrorKind::WrongNumberOfValues,
            format!("--stdout streams one file; {} were named", files.len()),
        );
    }
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
    // Asking a server something (not fetching) does not wait for one unless told to.
    let one_try = args.list.is_some() || args.stop_server || args.status;
    let wait = args.wait.unwrap_or(if one_try { Duration::ZERO } else { DEFAULT_WAIT });
    let stall_timeout = Some(args.stall_timeout).filter(|d| !d.is_zero());
    let config = ClientConfig {
        queue: args.queue.clone(),
        wait,
        slots: args.slots,
        stall_timeout,
        attach_timeout: args.attach_timeout,
        spin_budget: common::spin_budget_from_env(),
    };
    let quiet = args.quiet;
    let mut on_wait = || {
        if !quiet {
            eprintln!(
                "shm_client: waiting up to {} s for a server on queue {}",
                wait.as_secs_f64(),
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
            Err(e) => fail_to_connect(&e, wait),
        };
    }

    if args.list.is_none() && !args.stdout && !args.status {
        if !args.recursive {
            if let Err(e) = delivery(&args, args.out_dir.clone()).check_outputs(&files) {
                return fail(&e);
            }
        }
        match std::fs::metadata(&args.out_dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                eprintln!(
                    "shm_client: output directory {}: not a directory; name a directory with -o",
                    args.out_dir.display()
                );
                return ExitCode::from(EXIT_NOT_DELIVERED);
            }
            Err(e) => {
                eprintln!(
                    "shm_client: output directory {}: {e}; create it (mkdir -p {}) or name another with -o",
                    args.out_dir.display(),
                    quote_name(&args.out_dir.to_string_lossy())
                );
                return ExitCode::from(EXIT_NOT_DELIVERED);
            }
        }
    }

    let connect = if args.status { Client::connect_for_status } else { Client::connect };
    let client = match connect(&config, Arc::clone(&cancel), &mut on_wait) {
        Ok(c) => c,
        Err(e) => return fail_to_connect(&e, wait),
    };

    if let Some(prefix) = &args.list {
        return list(client, &args, prefix.as_deref().unwrap_or("."));
    }
    if args.status {
        return status(client, &args);
    }
    if args.stdout {
        return stream(client, &args, &files[0], &cancel);
    }
    fetch(client, &args, &files)
}

/// Standard output for `--stdout`: the first write error (a closed pipe,
/// `| head -c10`) ends the session at once through the cancel flag, so the
/// rest of the file is not received for nothing.
struct StopOnError<W> {
    inner: W,
    cancel: Arc<AtomicBool>,
    error: Option<String>,
}

impl<W: Write> StopOnError<W> {
    fn check<T>(&mut self, done: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &done {
            if self.error.is_none() {
                self.error = Some(e.to_string());
            }
            self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        done
    }
}

impl<W: Write> Write for StopOnError<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let done = self.inner.write(buf);
        self.check(done)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let done = self.inner.flush();
        self.check(done)
    }
}

/// `--stdout`: the file's bytes to stdout, any message to stderr.
fn stream(mut client: Client, args: &Args, path: &str, cancel: &Arc<AtomicBool>) -> ExitCode {
    let mut bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let stdout = StopOnError { inner: std::io::stdout().lock(), cancel: Arc::clone(cancel), error: None };
    let mut out = std::io::BufWriter::with_capacity(shmxfer::IO_CHUNK, stdout);
    let fetched = client.fetch_to(path, &mut out, &mut bar);
    bar.finish();
    let fetched = fetched.and_then(|outcome| client.close().map(|()| outcome));
    let name = quote_name(path);
    // A write error ended the session: say so once, whatever the session said.
    let write_error = out.get_ref().error.clone();
    if let Some(e) = write_error.filter(|_| !matches!(fetched, Ok(Outcome::Delivered { .. }))) {
        eprintln!("shm_client: {name}: writing to standard output: {e}; transfer stopped");
        return ExitCode::from(EXIT_NOT_DELIVERED);
    }
    match fetched {
        Ok(Outcome::Delivered { .. }) => ExitCode::from(EXIT_OK),
        Ok(Outcome::NotFound) => {
            eprintln!("shm_client: {name}: not found on server");
            ExitCode::from(EXIT_NOT_DELIVERED)
        }
        Ok(Outcome::Refused(why)) => {
            eprintln!("shm_client: {name}: refused by server: {why}");
            ExitCode::from(EXIT_NOT_DELIVERED)
        }
        Ok(Outcome::Failed(why)) => {
            eprintln!("shm_client: {name}: failed: {why}");
            ExitCode::from(EXIT_NOT_DELIVERED)
        }
        Err(e) => fail(&e),
    }
}

/// Why a session was lost, in a few words for the line of the file it cut off.
fn lost_reason(e: &Error) -> String {
    match e {
        Error::Cancelled => "interrupted".into(),
        Error::Stalled { waited } => {
            format!("no frame moved for {:.0} s (--stall-timeout)", waited.as_secs_f64())
        }
        e => common::chain(e),
    }
}

/// Prints the result line of one file, shown as `shown`.
fn report(args: &Args, shown: &str, outcome: &Outcome) {
    let name = quote_name(shown);
    match outcome {
        Outcome::Delivered { bytes } if !args.quiet => {
            if args.human {
                say(format_args!("{name}: received {}", human_size(*bytes)));
            } else {
                say(format_args!("{name}: received {}", byte_count(*bytes)));
            }
        }
        Outcome::Delivered { .. } => {}
        Outcome::NotFound => say(format_args!("{name}: not found on server")),
        Outcome::Refused(why) if !args.recursive && why.ends_with(" is a directory") => {
            say(format_args!("{name}: refused by server: {why}; use -r to fetch a directory"))
        }
        Outcome::Refused(why) => say(format_args!("{name}: refused by server: {why}")),
        Outcome::Failed(why) => say(format_args!("{name}: failed: {why}")),
    }
}

/// One file to fetch: the path asked of the server, the name its line
/// shows (with `-r`, also its path below --out-dir), or an outcome known
/// before asking.
struct Job {
    remote: String,
    shown: String,
    known: Option<Outcome>,
}

/// Where and how the files of one run of jobs are written.
fn delivery(args: &Args, out_dir: PathBuf) -> Delivery {
    Delivery { out_dir, no_clobber: args.no_clobber, relative: args.relative }
}

/// The jobs of a plain fetch: each file into --out-dir under its final name
/// (with `-R`, under its path).
fn plain_jobs(args: &Args, files: &[String]) -> Vec<Job> {
    let delivery = delivery(args, args.out_dir.clone());
    files
        .iter()
        .map(|f| Job { remote: f.clone(), shown: delivery.shown_name(f).into_owned(), known: None })
        .collect()
}

/// The jobs of `-r`: every listed file at or below each named path, kept at
/// its path relative to the named directory's parent below --out-dir (`-r
/// sub/deep` writes `deep/...`; `-r .` the whole tree), or with `-R` at its
/// whole path (`sub/deep/...`). Directories are created as the files
/// arrive, one component at a time, never through a symlink; a path from
/// the server with an empty, `.` or `..` component is refused.
fn recursive_jobs(client: &mut Client, args: &Args, files: &[String]) -> Result<Vec<Job>, Error> {
    let listing = client.list()?;
    let mut jobs = Vec::new();
    for f in files {
        if f.starts_with('/') {
            // As the server refuses any absolute path it is asked for.
            let why =
                format!("{f} leads outside the served directory; name a directory below the server's root");
            jobs.push(Job { remote: f.clone(), shown: f.clone(), known: Some(Outcome::Refused(why)) });
            continue;
        }
        let dir = f.trim_end_matches('/');
        let whole = dir == ".";
        // What replaces `dir` in the local path: its last component.
        let base = if whole { "" } else { dir.rsplit('/').next().unwrap_or(dir) };
        let before = jobs.len();
        for (path, _) in &listing {
            let below = path.strip_prefix(dir).filter(|rest| rest.starts_with('/'));
            if !whole && path != dir && below.is_none() {
                continue;
            }
            let local = match below {
                _ if whole || args.relative => path.clone(),
                Some(rest) => format!("{base}{rest}"),
                None => shmxfer::output_name(path).unwrap_or(path).to_owned(),
            };
            jobs.push(local_job(path, local));
        }
        if jobs.len() == before {
            jobs.push(Job { remote: f.clone(), shown: f.clone(), known: Some(Outcome::NotFound) });
        }
    }
    Ok(jobs)
}

/// The job for the listed `remote`, written at `local` below --out-dir.
fn local_job(remote: &str, local: String) -> Job {
    let parts: Vec<&str> = local.split('/').collect();
    let known = parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..").then(|| {
        Outcome::Failed("the server's path has an empty, '.' or '..' component; not written".into())
    });
    Job { remote: remote.to_owned(), shown: local, known }
}

/// Fetches the jobs in order, one request window per run of jobs not known
/// to fail; prints a line per file and the summary.
fn fetch(mut client: Client, args: &Args, files: &[String]) -> ExitCode {
    let quiet = args.quiet;
    let started = Instant::now();
    let (jobs, mut fetched) = if args.recursive {
        match recursive_jobs(&mut client, args, files) {
            Ok(jobs) => (jobs, Ok(())),
            // Turned away or lost before the listing: a line for each name asked for.
            Err(e) => (plain_jobs(args, files), Err(e)),
        }
    } else {
        (plain_jobs(args, files), Ok(()))
    };
    let mut bar = Bar::new(!quiet && std::io::stderr().is_terminal());
    let mut tally = Tally::default();
    let mut next = 0;
    while next < jobs.len() && fetched.is_ok() {
        if let Some(outcome) = &jobs[next].known {
            report(args, &jobs[next].shown, outcome);
            tally.add(outcome);
            next += 1;
            continue;
        }
        let run = jobs[next..].iter().take_while(|j| j.known.is_none()).count();
        let run = &jobs[next..next + run];
        let delivery = delivery(args, args.out_dir.clone());
        let mut i = 0;
        let mut each = |_: &str, outcome: &Outcome| {
            report(args, &run[i].shown, outcome);
            tally.add(outcome);
            i += 1;
        };
        fetched = if args.recursive {
            // Each file at the path -r chose for it below --out-dir.
            let requests: Vec<(String, String)> =
                run.iter().map(|j| (j.remote.clone(), j.shown.clone())).collect();
            delivery.fetch_as(&mut client, &requests, &mut bar, &mut each)
        } else {
            let paths: Vec<String> = run.iter().map(|j| j.remote.clone()).collect();
            delivery.fetch(&mut client, &paths, &mut bar, &mut each)
        }
        .map(drop);
        next += run.len();
    }
    // The file in progress when the session was lost, and how far it got.
    let cut_off = bar.current.take();
    bar.finish();
    let fetched = fetched.and_then(|()| client.close());
    let code = match fetched {
        Ok(()) if tally.delivered == jobs.len() => ExitCode::from(EXIT_OK),
        Ok(()) => ExitCode::from(EXIT_NOT_DELIVERED),
        Err(e @ Error::Busy { .. }) => {
            // Every file not yet reported gets its line, as any failed file does.
            eprintln!("shm_client: {e}");
            let why = Outcome::Failed("server busy".into());
            for job in &jobs[tally.reported()..] {
                report(args, &job.shown, &why);
                tally.add(&why);
            }
            ExitCode::from(EXIT_NOT_DELIVERED)
        }
        Err(e) => {
            // One line per file still, as for any failed file: the one in
            // progress failed, the others were never fetched.
            let mut left = jobs[tally.reported()..].iter();
            if let Some(job) = left.next() {
                let got = match cut_off {
                    Some((size, got)) => {
                        format!("cut off after {} of {}: ", human_size(got), human_size(size))
                    }
                    None => String::new(),
                };
                let why = Outcome::Failed(format!("{got}{}; nothing kept", lost_reason(&e)));
                report(args, &job.shown, &why);
                tally.add(&why);
            }
            let rest = if matches!(e, Error::Cancelled) { "interrupted" } else { "session lost" };
            for job in left {
                say(format_args!("{}: not fetched: {rest}", quote_name(&job.shown)));
            }
            fail(&e)
        }
    };
    if jobs.len() > 1 && !quiet {
        eprintln!("shm_client: {}", tally.summary(jobs.len(), started.elapsed()));
    }
    code
}
