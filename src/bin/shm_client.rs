//! `shm_client`: fetches files from `shm_server` through POSIX shared memory.
//! Parses arguments into a [`Mode`], runs it through [`shmxfer::Client`],
//! prints one line per file and maps the outcome to an exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use serde::Serialize;
use shmxfer::programs::{human_size, normalize_path, quote_name, DEFAULT_SLOTS, IO_CHUNK, MAX_SLOTS};
use shmxfer::{
    Client, ClientConfig, Clobber, Error, FetchOptions, Outcome, OutputNames, Partial, SessionEnd,
    SessionKind, StopKind, Times, Update, Waiting, DEFAULT_QUEUE,
};

mod common;
use common::bar::Bar;
use common::show::{self, outcome_text, quote_path, say, say_skipped, Format, Lines};

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
/// Session lost: the server died, or broke the protocol; or local trouble
/// (out of file descriptors) before or during the session.
const EXIT_SESSION_LOST: u8 = 4;
/// Interrupted by SIGINT, SIGTERM, SIGHUP or SIGQUIT.
const EXIT_INTERRUPTED: u8 = 130;

/// How long a fetch waits for a server unless `--wait` says otherwise.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Fetch files from shm_server through POSIX shared memory.
#[derive(Debug, Parser)]
#[command(
    name = "shm_client",
    version,
    override_usage = "shm_client [OPTIONS] [-r] FILE...\n       \
        shm_client [OPTIONS] -O DEST FILE\n       \
        shm_client [OPTIONS] -i LIST\n       \
        shm_client [OPTIONS] --stdout FILE\n       \
        shm_client [OPTIONS] --list [PREFIX] [-l] [--human] [--json]\n       \
        shm_client [OPTIONS] --status [--human] [--json]\n       \
        shm_client --status --all [--json]\n       \
        shm_client [OPTIONS] --stop-server [--drain]",
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
        shm_client -O /tmp/copy.iso big.iso         fetch big.iso to the file /tmp/copy.iso\n  \
        shm_client 'logs/*.txt'                     fetch the .txt files of logs/ (quoted: the server matches)\n  \
        shm_client -C big.iso                       fetch big.iso, resuming where a cut-off run stopped\n  \
        shm_client -u -p -i filelist.txt            fetch only what changed, keeping modification times\n  \
        shm_client --stdout big.iso | sha256sum     stream one file to a pipe\n  \
        shm_client -r -o /tmp/in subdir             fetch subdir/ and everything below it into /tmp/in/subdir\n  \
        shm_client --list subdir --human            show what the server serves below subdir/\n  \
        shm_client --list -l                        mode, size, time (UTC) and path, as ls -l\n  \
        shm_client --json -i filelist.txt           a JSON line per file and a summary, for scripts\n  \
        shm_client --status                         what the server is doing, session by session\n  \
        shm_client --stop-server                    stop a --persistent server\n\n\
        Output: one line per FILE on stdout, naming the path asked for and the output path where it \
        differs ('sub/x.txt: received N bytes → x.txt', 'NAME: not found on server', ...); with --json one \
        JSON object per FILE, then a summary object. A name holding control characters is quoted as ls \
        quotes it ('a'$'\\n''b'). Diagnostics ('shm_client: error: ...' for a fatal one), a summary when \
        more than one file was asked for, and progress bars (when stderr is a terminal: the file's, and \
        the whole run's when more than one file is fetched) go to stderr. --stdout to a terminal refuses \
        binary data (a NUL byte in the first 64 KiB): redirect it to a file or a pipe.\n\n\
        Exit status: 0 every file delivered (or skipped by --no-clobber / --update), 1 at least one not delivered, 2 usage error, \
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
    /// --status and --stop-server try once unless --wait is given. When given, a busy server
    /// (all its sessions in use) is asked again for that long too.
    #[arg(long, value_name = "SECS", value_parser = common::parse_secs, allow_negative_numbers = true)]
    wait: Option<Duration>,

    /// Read the names of the files to fetch from LIST, one per line ('-': standard input); blank
    /// lines are skipped. Names given as arguments come first.
    #[arg(short = 'i', long = "input", value_name = "LIST")]
    input: Option<PathBuf>,

    /// Do not replace files that exist in the output directory: such a file is skipped
    /// ('NAME: skipped: exists'), a success, as cp -n and wget -nc do.
    #[arg(long)]
    no_clobber: bool,

    /// Write the one FILE to DEST (a file path, not a directory) instead of into --out-dir, with
    /// the same safety: a temporary file beside DEST, verified, then given its name. '-': standard
    /// output, as --stdout. One FILE only; not with -o, -R or -r.
    #[arg(short = 'O', long = "output", value_name = "DEST",
          conflicts_with_all = ["out_dir", "relative", "recursive", "list", "status", "stop_server", "stdout"])]
    output: Option<PathBuf>,

    /// Resume: a transfer cut off (server gone, Ctrl-C, stall) keeps what arrived as a hidden
    /// partial file (.shmxfer-partial.NAME, its source's size and mtime in
    /// .shmxfer-partial.NAME.source), and a later run with -C asks only for the rest; the whole
    /// file is still verified. A partial whose source changed since starts over. Without -C
    /// nothing partial is ever kept.
    #[arg(short = 'C', long = "continue", conflicts_with_all = ["list", "status", "stop_server", "stdout"])]
    resume: bool,

    /// Fetch a file only when its copy is missing, differs in size or is older than the source,
    /// as cp -u does; else 'NAME: skipped: up to date', a success. The server decides before it
    /// sends a byte.
    #[arg(short = 'u', long, conflicts_with_all = ["list", "status", "stop_server", "stdout"])]
    update: bool,

    /// Give each file the source's modification time (the mode is kept anyway), as cp -p does.
    #[arg(short = 'p', long, conflicts_with_all = ["list", "status", "stop_server", "stdout"])]
    preserve: bool,

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

    /// With --status: every shmxfer server of this user on this machine (found through their lock
    /// objects in /dev/shm, as `ipcs -a` lists all objects), one block per live server, and each
    /// dead server's leftovers (remove them with `shm_server --cleanup --all`). --queue is not used.
    /// With --json: one JSON object per line, per server.
    #[arg(long, requires = "status")]
    all: bool,

    /// Print JSON for scripts: with --list or --status their one object; on a fetch one object per
    /// requested file ({"request", "path", "result", "bytes", and for a file refused, failed or
    /// skipped "reason" and "message"}), then {"summary": {...}}, one per line. Not with --stdout.
    #[arg(long)]
    json: bool,

    /// Print sizes as B, KiB, MiB, GiB.
    #[arg(long)]
    human: bool,

    /// With --list: long lines, as `ls -l`: mode, size, modification time (UTC, to the minute) and
    /// path (`-rw-r--r--  1234  2026-12-01 11:45  hello.txt`); with --json each file also gets
    /// "mode" (octal, "0644") and "mtime" (RFC 3339, UTC: "2026-12-01T11:45:35Z").
    #[arg(short = 'l', long)]
    long: bool,

    /// Write the one FILE to standard output instead of into --out-dir; nothing else goes to
    /// stdout. Size and checksum are still verified: a mismatch is reported on stderr with exit
    /// status 1 (the bytes have left by then). To a terminal, a file whose first 64 KiB hold a NUL
    /// byte (binary) is not written: exit status 1; redirect it to a file or a pipe.
    #[arg(long, conflicts_with_all = ["list", "stop_server", "no_clobber", "out_dir", "relative"])]
    stdout: bool,

    /// Fetch directories of the server's tree with what lies below them, keeping their paths
    /// below --out-dir (`-r sub` writes `sub/...`, `-r .` the whole tree); never writes outside
    /// --out-dir.
    #[arg(short = 'r', long, conflicts_with_all = ["list", "stop_server", "stdout"])]
    recursive: bool,

    /// Ask the server to stop and wait until it has: open sessions are cancelled (their clients
    /// exit 4), everything is removed. With --drain, a graceful stop.
    #[arg(long, conflicts_with_all = ["files", "no_clobber", "input", "relative"])]
    stop_server: bool,

    /// With --stop-server: a graceful stop, as SIGQUIT to the server. Open sessions finish what
    /// they have asked for, new clients are refused (busy: the server is stopping), then the
    /// server exits 0 with everything removed; waits for that as long as it takes (SIGINT ends
    /// the wait, not the drain). SIGTERM to the server meanwhile stops it at once.
    #[arg(long, requires = "stop_server")]
    drain: bool,

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

    /// Files to fetch, as paths relative to the server's root. A name with '*', '?' or '[...]'
    /// (quoted, so that the shell leaves it) is matched against the server's files, one path
    /// component at a time as a shell does ('*' does not cross '/'), unless a file has exactly
    /// that name; a pattern that matches nothing is not found.
    #[arg(value_name = "FILE", required_unless_present_any = ["list", "stop_server", "input", "status", "completions", "man"])]
    files: Vec<String>,

    /// Print a completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit: `shm_client --man > shm_client.1`.
    #[arg(long)]
    man: bool,
}

/// What one run does: the flags that choose it, checked.
enum Mode {
    /// Fetch the named files (with `-r`: the trees below them) into --out-dir.
    Fetch { files: Vec<String>, recursive: bool },
    /// Stream one file to stdout.
    Stdout(String),
    /// Fetch one file to a path (`-O DEST`).
    Output { file: String, dest: PathBuf },
    /// The server's files at or below a prefix (`.`: all).
    List { prefix: String, json: bool },
    /// What the server is doing.
    Status { json: bool },
    /// What every server of this user is doing, and which are dead.
    StatusAll { json: bool },
    /// Ask the server to stop, at once or after its open sessions.
    StopServer(StopKind),
}

impl Mode {
    /// The mode `args` ask for, or the exit code of a usage error.
    fn from_args(args: &Args) -> Result<Mode, ExitCode> {
        if args.json && (args.stop_server || (args.stdout && args.list.is_none() && !args.status)) {
            usage_error(ErrorKind::ArgumentConflict, "--json goes with a fetch, --list or --status");
        }
        if args.long && args.list.is_none() {
            usage_error(ErrorKind::MissingRequiredArgument, "-l/--long goes with --list");
        }
        let mut files = args.files.clone();
        if let Some(input) = &args.input {
            files.extend(common::read_names(input).map_err(|msg| exit_with(EXIT_USAGE, &msg))?);
            if files.is_empty() {
                let msg =
                    format!("{} names no file to fetch; give one name per line", common::list_shown(input));
                return Err(exit_with(EXIT_USAGE, &msg));
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
                usage_error(
                    ErrorKind::InvalidValue,
                    "--list '': an empty prefix; give none to list everything",
                );
            }
            if prefix.starts_with('/') {
                let msg = format!("{}: leads outside the served directory; list a path below the server's root, or give no prefix", quote_name(prefix));
                return Err(exit_with(EXIT_NOT_DELIVERED, &msg));
            }
        }
        Ok(if args.stop_server {
            Mode::StopServer(if args.drain { StopKind::Drain } else { StopKind::Now })
        } else if args.status && args.all {
            Mode::StatusAll { json: args.json }
        } else if args.status {
            Mode::Status { json: args.json }
        } else if let Some(prefix) = &args.list {
            Mode::List { prefix: prefix.clone().unwrap_or_else(|| ".".into()), json: args.json }
        } else if let Some(dest) = args.output.clone().filter(|d| d.as_os_str() != "-") {
            if files.len() != 1 {
                let msg = format!("-O/--output writes one file; {} were named", files.len());
                usage_error(ErrorKind::WrongNumberOfValues, msg);
            }
            Mode::Output { file: files.remove(0), dest }
        } else if args.stdout || args.output.is_some() {
            if files.len() != 1 {
                let msg = format!("--stdout streams one file; {} were named", files.len());
                usage_error(ErrorKind::WrongNumberOfValues, msg);
            }
            Mode::Stdout(files.remove(0))
        } else {
            Mode::Fetch { files, recursive: args.recursive }
        })
    }

    /// Asking a server something (not fetching) does not wait for one unless told to.
    fn default_wait(&self) -> Duration {
        match self {
            Mode::Fetch { .. } | Mode::Stdout(_) | Mode::Output { .. } => DEFAULT_WAIT,
            _ => Duration::ZERO,
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.kind() == ErrorKind::InvalidUtf8 => {
            // Only names are read as text (files, --list, --queue); paths such as -o may be any bytes.
            let bad = std::env::args_os().skip(1).find(|a| a.to_str().is_none());
            let shown = bad.map(|a| a.as_encoded_bytes().escape_ascii().to_string()).unwrap_or_default();
            return exit_with(
                EXIT_USAGE,
                &format!("{shown}: not UTF-8; file names (and queue names) must be UTF-8"),
            );
        }
        Err(e) => e.exit(),
    };
    let environment =
        &[("SHMXFER_QUEUE", "The server's queue when --queue is not given (default /shmxfer).")];
    if let Some(code) = common::print_generated(Args::command(), args.completions, args.man, environment) {
        return code;
    }
    let mode = match Mode::from_args(&args) {
        Ok(mode) => mode,
        Err(code) => return code,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    if let Err(e) = common::stop_on_signals(&cancel) {
        return exit_with(EXIT_SESSION_LOST, &format!("installing signal handlers: {e}"));
    }
    let wait = args.wait.unwrap_or(mode.default_wait());
    let config = match client_config(&args, wait, &cancel) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Mode::Fetch { files, recursive } = &mode {
        if let Err(code) = check_output(&args, files, *recursive) {
            return code;
        }
    }
    if let Mode::Output { dest, .. } = &mode {
        if let Err(code) = check_dest(dest) {
            return code;
        }
    }
    if let Mode::StopServer(kind) = mode {
        return match shmxfer::stop_server(&config, kind) {
            Ok(()) if args.quiet => ExitCode::from(EXIT_OK),
            Ok(()) => exit_with(EXIT_OK, &format!("the server on queue {} stopped", args.queue)),
            Err(e) => fail_to_connect(&e, wait),
        };
    }
    if let Mode::StatusAll { json } = mode {
        return status_all(&config, &args, json);
    }
    let kind = if matches!(mode, Mode::Status { .. }) { SessionKind::Status } else { SessionKind::Transfer };
    let client = match Client::open(&config, kind) {
        Ok(c) => c,
        Err(e) => return fail_to_connect(&e, wait),
    };
    match mode {
        Mode::List { prefix, json } => list(client, &args, &prefix, json),
        Mode::Status { json } => status(client, &args, json),
        Mode::Stdout(file) => stream(client, &args, &file, &cancel),
        Mode::Fetch { files, recursive } => fetch(client, &args, Files::Named(&files, recursive)),
        Mode::Output { file, dest } => fetch(client, &args, Files::To(&file, &dest)),
        Mode::StopServer(_) | Mode::StatusAll { .. } => unreachable!("handled above"),
    }
}

/// The library's configuration from the command line.
fn client_config(args: &Args, wait: Duration, cancel: &Arc<AtomicBool>) -> Result<ClientConfig, Error> {
    let config = ClientConfig::builder(&args.queue)
        .wait(wait)
        // Only a --wait given waits for a free session of a busy server.
        .busy_wait(args.wait.unwrap_or(Duration::ZERO))
        .slots(args.slots)
        .stall_timeout(Some(args.stall_timeout).filter(|d| !d.is_zero()))
        .attach_timeout(args.attach_timeout)
        .spin_budget(common::spin_budget_from_env())
        .cancel(Arc::clone(cancel));
    if args.quiet {
        return config.build();
    }
    config
        .on_wait(|queue, wait, what| match what {
            Waiting::FreeSession => eprintln!(
                "shm_client: the server is busy (it serves its maximum of sessions); waiting up to {:.1} s for a free session",
                wait.as_secs_f64()
            ),
            _ => eprintln!("shm_client: waiting up to {} s for a server on queue {queue}", wait.as_secs_f64()),
        })
        .build()
}

/// Prints `msg` as the program's message on stderr and returns `code`:
/// `shm_client: error: …` when the run failed, as `shm_server: error: …`.
fn exit_with(code: u8, msg: &str) -> ExitCode {
    match code {
        EXIT_OK => eprintln!("shm_client: {msg}"),
        _ => eprintln!("shm_client: error: {msg}"),
    }
    ExitCode::from(code)
}

/// Exits 2 with clap's usage error `msg`.
fn usage_error(kind: ErrorKind, msg: impl std::fmt::Display) -> ! {
    Args::command().error(kind, msg).exit()
}

/// Before any request: no two files to one output name, and an output
/// directory that is one.
fn check_output(args: &Args, files: &[String], recursive: bool) -> Result<(), ExitCode> {
    if !recursive {
        options(args).check(files).map_err(|e| fail(&e))?;
    }
    let dir = args.out_dir.display();
    match std::fs::metadata(&args.out_dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(exit_with(
            EXIT_NOT_DELIVERED,
            &format!("output directory {dir}: not a directory; name a directory with -o"),
        )),
        Err(e) => {
            let quoted = quote_name(&args.out_dir.to_string_lossy()).into_owned();
            let msg =
                format!("output directory {dir}: {e}; create it (mkdir -p {quoted}) or name another with -o");
            Err(exit_with(EXIT_NOT_DELIVERED, &msg))
        }
    }
}

/// Before any request for `-O DEST`: a directory for DEST that is one.
fn check_dest(dest: &std::path::Path) -> Result<(), ExitCode> {
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(exit_with(
            EXIT_NOT_DELIVERED,
            &format!("-O {}: {} is not a directory", dest.display(), dir.display()),
        )),
        Err(e) => {
            let quoted = quote_name(&dir.to_string_lossy()).into_owned();
            let msg =
                format!("-O {}: {}: {e}; create it (mkdir -p {quoted}) first", dest.display(), dir.display());
            Err(exit_with(EXIT_NOT_DELIVERED, &msg))
        }
    }
}

fn exit_code_for(e: &Error) -> u8 {
    match e {
        // No server to trust on this queue: its objects are not what they
        // should be (a FIFO, another user's queue or lock).
        Error::NoServer { .. }
        | Error::BadObject { .. }
        | Error::QueueFull { .. }
        | Error::OtherUsersServer { .. } => EXIT_NO_SERVER,
        Error::Cancelled => EXIT_INTERRUPTED,
        Error::Busy { .. }
        | Error::Stopping { .. }
        | Error::NotFound
        | Error::Refused { .. }
        | Error::Failed { .. } => EXIT_NOT_DELIVERED,
        Error::InvalidName { .. } | Error::SameOutput { .. } => EXIT_USAGE,
        _ => EXIT_SESSION_LOST,
    }
}

/// The library's message for `e` with its causes, in this program's words
/// where they name its options.
fn describe(e: &Error) -> String {
    match e {
        Error::SessionEnded(SessionEnd::ServerStopping) => {
            "the server stopped (SIGINT/SIGTERM or shm_client --stop-server) and cancelled this session"
                .into()
        }
        Error::Stalled { .. } => format!("{e} (--stall-timeout)"),
        Error::SameOutput { names: OutputNames::Basename, .. } => {
            format!("{e}; -R/--relative keeps their paths below the output directory")
        }
        e => common::chain(e),
    }
}

/// What to do next about `e`, after its message.
fn hint(e: &Error) -> &'static str {
    match e {
        Error::PeerGone(_) | Error::Stalled { .. } | Error::SessionEnded(_) => {
            "; nothing partial is kept: run it again once the server runs"
        }
        Error::Os { source, .. } if matches!(source.raw_os_error(), Some(libc::EMFILE)) => {
            "; raise ulimit -n (the client needs about 10 descriptors) and run it again"
        }
        Error::Os { source, .. } if matches!(source.raw_os_error(), Some(libc::ENFILE)) => {
            "; the machine is out of file descriptors: close some, or raise fs.file-max, and run it again"
        }
        _ => "",
    }
}

fn fail(e: &Error) -> ExitCode {
    exit_with(exit_code_for(e), &format!("{}{}", describe(e), hint(e)))
}

/// [`fail`] for finding a server, which waited up to `wait`.
fn fail_to_connect(e: &Error, wait: Duration) -> ExitCode {
    let Error::NoServer { queue, .. } = e else {
        return fail(e);
    };
    let more = if wait.is_zero() { ", or give --wait SECS to wait for it" } else { "" };
    exit_with(exit_code_for(e), &format!("{e}; start `shm_server --queue {queue}` first{more}"))
}

/// `--list`: a line per file on stdout, then a line per entry the server
/// left out on stderr (exit 1 then: the listing is not complete).
fn list(mut client: Client, args: &Args, prefix: &str, json: bool) -> ExitCode {
    let listing = match client.list(Some(prefix)).and_then(|l| client.close().map(|()| l)) {
        Ok(listing) => listing,
        Err(e) => return fail(&e),
    };
    if json && args.long {
        say(format_args!("{}", show::long_listing_json(&listing)));
    } else if json {
        #[derive(Serialize)]
        struct Files<'a> {
            files: &'a [shmxfer::Entry],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            skipped: &'a [shmxfer::Skipped],
        }
        let files = Files { files: &listing.files, skipped: &listing.skipped };
        say(format_args!("{}", common::to_json(&files)));
    } else {
        show::print_listing(&listing.files, args.long, args.human);
    }
    for skip in &listing.skipped {
        say_skipped(&skip.path, &skip.text);
    }
    if !listing.is_complete() {
        let n = listing.skipped.len();
        return exit_with(
            EXIT_NOT_DELIVERED,
            &format!("the listing is not complete: {n} entr{} left out", if n == 1 { "y" } else { "ies" }),
        );
    }
    if listing.files.is_empty() && normalize_path(prefix.as_bytes()) != b"." {
        let msg = format!(
            "the server has no file at or below {}; see `shm_client --list` for what it has",
            quote_name(prefix)
        );
        return exit_with(EXIT_NOT_DELIVERED, &msg);
    }
    ExitCode::from(EXIT_OK)
}

/// `--status`: the server and its other sessions, as text or JSON.
fn status(mut client: Client, args: &Args, json: bool) -> ExitCode {
    match client.status().and_then(|s| client.close().map(|()| s)) {
        Ok(status) if json => say(format_args!("{}", common::to_json(&common::StatusJson::new(&status)))),
        Ok(status) => show::print_status(&status, &args.queue, args.human),
        Err(e) => return fail(&e),
    }
    ExitCode::from(EXIT_OK)
}

/// `--status --all`: every server of this user, as text blocks or one JSON
/// object per line.
fn status_all(config: &ClientConfig, args: &Args, json: bool) -> ExitCode {
    let reports = match shmxfer::status_all(config) {
        Ok(reports) => reports,
        Err(e) => return fail(&e),
    };
    if json {
        for report in &reports {
            say(format_args!("{}", common::to_json(&common::ServerJsonLine::new(report))));
        }
    } else {
        show::print_status_all(&reports, args.human);
    }
    ExitCode::from(EXIT_OK)
}

/// `--stdout`: the file's bytes to stdout, any message to stderr.
fn stream(mut client: Client, args: &Args, path: &str, cancel: &Arc<AtomicBool>) -> ExitCode {
    let mut bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let stdout = match common::StopOnError::stdout(Arc::clone(cancel)) {
        Ok(stdout) => stdout,
        Err(e) => return exit_with(EXIT_NOT_DELIVERED, &format!("standard output: {e}")),
    };
    // `-O -` asks for the bytes on stdout in so many words, as `curl -o -`:
    // a terminal gets them.
    let asked_for_stdout = args.output.as_deref().is_some_and(|d| d.as_os_str() == "-");
    let guarded = NoBinaryOnTerminal::new(stdout, Arc::clone(cancel), asked_for_stdout);
    let mut out = std::io::BufWriter::with_capacity(IO_CHUNK, guarded);
    let fetched = client.fetch_to_with(path, &mut out, &mut bar);
    let fetched = fetched.and_then(|outcome| client.close().map(|()| outcome));
    let name = quote_name(path);
    if out.get_ref().check == TerminalCheck::Refused {
        let msg = format!("{name}: binary data not written to the terminal; redirect it to a file or a pipe");
        return exit_with(EXIT_NOT_DELIVERED, &msg);
    }
    // A write error ended the session: say so once, whatever the session said.
    let write_error = out.get_ref().inner.error.clone();
    if let Some(e) = write_error.filter(|_| !matches!(fetched, Ok(Outcome::Delivered { .. }))) {
        return exit_with(
            EXIT_NOT_DELIVERED,
            &format!("{name}: writing to standard output: {e}; transfer stopped"),
        );
    }
    match fetched {
        Ok(Outcome::Delivered { .. }) => ExitCode::from(EXIT_OK),
        Ok(outcome) => exit_with(EXIT_NOT_DELIVERED, &format!("{name}: {}", outcome_text(&outcome))),
        Err(e) => fail(&e),
    }
}

/// Whether `--stdout` may write what arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TerminalCheck {
    /// Standard output is a terminal and nothing was written yet.
    Pending,
    /// Not a terminal, or the first chunk was text.
    Passed,
    /// The first chunk held a NUL byte: binary, refused.
    Refused,
}

/// `--stdout` to a terminal: the first chunk (64 KiB) is looked at, and if
/// it holds a NUL byte nothing is written and the session ends (as `curl`
/// refuses binary output to a terminal), so that a binary file does not
/// garble the terminal. `-O -` writes it all the same, as `curl -o -` does.
struct NoBinaryOnTerminal {
    inner: common::StopOnError,
    cancel: Arc<AtomicBool>,
    check: TerminalCheck,
}

impl NoBinaryOnTerminal {
    fn new(
        inner: common::StopOnError,
        cancel: Arc<AtomicBool>,
        asked_for_stdout: bool,
    ) -> NoBinaryOnTerminal {
        let check = if std::io::stdout().is_terminal() && !asked_for_stdout {
            TerminalCheck::Pending
        } else {
            TerminalCheck::Passed
        };
        NoBinaryOnTerminal { inner, cancel, check }
    }
}

impl Write for NoBinaryOnTerminal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.check {
            TerminalCheck::Pending if buf.contains(&0) => {
                self.check = TerminalCheck::Refused;
                self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            TerminalCheck::Pending => self.check = TerminalCheck::Passed,
            TerminalCheck::Passed | TerminalCheck::Refused => {}
        }
        match self.check {
            TerminalCheck::Refused => Err(std::io::Error::other("binary data to a terminal")),
            _ => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Where and how the files are written.
fn options(args: &Args) -> FetchOptions {
    let clobber = if args.no_clobber { Clobber::Skip } else { Clobber::Replace };
    let names = if args.relative { OutputNames::Relative } else { OutputNames::Basename };
    let partial = if args.resume { Partial::Keep } else { Partial::Discard };
    let times = if args.preserve { Times::Preserve } else { Times::Now };
    let update = if args.update { Update::IfNewer } else { Update::Always };
    FetchOptions::new(&args.out_dir)
        .clobber(clobber)
        .names(names)
        .partial(partial)
        .times(times)
        .update(update)
}

/// Why a session was lost, in a few words for the line of the file it cut off.
fn lost_reason(e: &Error) -> String {
    match e {
        Error::Cancelled => "interrupted".into(),
        Error::Stalled { waited } => {
            format!("no frame moved for {:.0} s (--stall-timeout)", waited.as_secs_f64())
        }
        e => describe(e),
    }
}

/// What a fetch writes: the named files (with `-r` the trees) into the
/// output directory, or one file to a path (`-O`).
enum Files<'a> {
    Named(&'a [String], bool),
    To(&'a str, &'a std::path::Path),
}

/// Fetches the files (or with `-r` the trees), a line per file, and the
/// summary.
fn fetch(mut client: Client, args: &Args, files: Files<'_>) -> ExitCode {
    let bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let format = if args.json { Format::Json } else { Format::Text };
    let mut lines = Lines { bar, quiet: args.quiet, human: args.human, recursive: args.recursive, format };
    let report = match files {
        Files::Named(files, true) => client.fetch_tree_with(files, &options(args), &mut lines),
        Files::Named(files, false) => client.fetch_files_with(files, &options(args), &mut lines),
        Files::To(file, dest) => client.fetch_as_with(file, dest, &options(args), &mut lines),
    };
    lines.bar.clear();
    let report = match report {
        Ok(report) => report,
        Err(e) => return fail(&e),
    };
    for name in &report.repeated {
        eprintln!("shm_client: warning: {} named more than once; fetched once", quote_path(name));
    }
    let code = match &report.lost {
        None => match client.close() {
            Ok(()) if report.all_delivered() => ExitCode::from(EXIT_OK),
            Ok(()) => ExitCode::from(EXIT_NOT_DELIVERED),
            Err(e) => fail(&e),
        },
        Some(lost) if matches!(lost.error, Error::Busy { .. } | Error::Stopping { .. }) => {
            exit_with(EXIT_NOT_DELIVERED, &lost.error.to_string())
        }
        Some(lost) => {
            say_lost(lost, format);
            if lost.kept.is_some() {
                exit_with(exit_code_for(&lost.error), &describe(&lost.error))
            } else {
                fail(&lost.error)
            }
        }
    };
    let summary = report.summary();
    match format {
        Format::Json => say(format_args!("{}", common::json::summary_line(&summary))),
        Format::Text if summary.asked > 1 && !args.quiet => eprintln!("shm_client: {summary}"),
        Format::Text => {}
    }
    code
}

/// One line per file still, as for any failed file, when the session was
/// lost: the one in progress failed, the others were never fetched.
fn say_lost(lost: &shmxfer::Lost, format: Format) {
    use std::os::unix::ffi::OsStrExt;
    let names = lost.cut_off.iter().map(|(name, _)| name).chain(&lost.not_fetched);
    let requests = lost.requests.iter().map(Some).chain(std::iter::repeat(None));
    let rest = if matches!(lost.error, Error::Cancelled) { "interrupted" } else { "session lost" };
    for (i, (name, request)) in names.zip(requests).enumerate() {
        let request = request.unwrap_or(name);
        let cut_off = lost.cut_off.as_ref().filter(|_| i == 0);
        let message = match cut_off {
            Some((_, got)) => {
                let got = got.map(|(got, size)| {
                    format!("cut off after {} of {}: ", human_size(got), human_size(size))
                });
                let kept = match lost.kept {
                    Some(bytes) => format!("{} kept: run it again with --continue", human_size(bytes)),
                    None => "nothing kept".into(),
                };
                format!("{}{}; {kept}", got.unwrap_or_default(), lost_reason(&lost.error))
            }
            None => format!("not fetched: {rest}"),
        };
        match format {
            Format::Text if cut_off.is_some() => {
                say(format_args!("{}: failed: {message}", quote_path(request)))
            }
            Format::Text => say(format_args!("{}: {message}", quote_path(request))),
            Format::Json => {
                let (request, name) = (request.as_os_str().as_bytes(), name.as_os_str().as_bytes());
                say(format_args!("{}", common::json::lost_line(request, name, cut_off.is_some(), &message)))
            }
        }
    }
}
