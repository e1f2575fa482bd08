//! `shm_server`: serves the files of a directory over a POSIX message queue
//! and client-created POSIX shared memory. Parses arguments, runs
//! [`shmxfer::Server`], maps the outcome to an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use shmxfer::programs::quote_name;
use shmxfer::{Error, Server, StopKind, StopSignal, DEFAULT_QUEUE};

use shmxfer::cli as common;

/// Serve the files of a directory to `shm_client` through POSIX shared memory.
#[derive(Debug, Parser)]
#[command(
    name = "shm_server",
    version,
    override_usage = "shm_server [OPTIONS]\n       shm_server --cleanup [--queue NAME]\n       shm_server --cleanup --all",
    long_about = "Serve the regular files below a directory to shm_client processes on this machine.\n\n\
        Requests arrive on a POSIX message queue; each client's files travel through the client's own \
        POSIX shared-memory region (at most 4096 bytes), handed back and forth with two named POSIX \
        semaphores. Only regular files below --root are served: absolute paths, '..' and symlinks that \
        leave the root, directories, FIFOs and devices are refused.\n\n\
        By default the server stops once a client that fetched files (or sent one) has said goodbye and no session is \
        open (a `shm_client --list` or `--status` does not count), removing its \
        queue. With --persistent it serves until SIGINT/SIGTERM or `shm_client --stop-server`.\n\n\
        SIGINT, SIGTERM and SIGHUP cancel open sessions and stop at once. SIGQUIT (or `shm_client \
        --stop-server --drain`) stops gracefully: open sessions are served what they asked for, new \
        clients are refused as busy (the server is stopping), then everything is removed and the \
        server exits 0; SIGTERM during the drain stops at once.",
    after_help = "Examples:\n  \
        shm_server                          serve ./files until the first client is done\n  \
        shm_server --root /srv/data --persistent -v\n  \
        shm_server --accept /srv/inbox      also take uploads (shm_client --put FILE) into /srv/inbox\n  \
        shm_server --cleanup                remove what crashed servers and clients left behind\n  \
        SHMXFER_QUEUE=/mine shm_server      use another queue (shm_client reads the same variable)\n  \
        shm_server --persistent --log-time none   under systemd (Type=notify; see contrib/shmxfer.service)\n\n\
        Exit status: 0 clean shutdown (also on SIGINT/SIGTERM/SIGQUIT), 1 fatal error (e.g. another live server \
        owns the queue), 2 usage error."
)]
struct Args {
    /// Name of the command queue: a leading '/', no other '/'.
    #[arg(long, value_name = "NAME", env = "SHMXFER_QUEUE", default_value = DEFAULT_QUEUE, value_parser = common::parse_queue)]
    queue: String,

    /// Directory whose regular files are served (subdirectories included).
    #[arg(long, value_name = "DIR", default_value = "files")]
    root: PathBuf,

    /// Keep serving after clients leave, until SIGINT/SIGTERM or `shm_client --stop-server`.
    #[arg(long)]
    persistent: bool,

    /// Take uploads (`shm_client --put FILE`) into DIR: each file is written below it (never
    /// outside: no '..', no symlink followed), verified (size and xxh3-64) before its name
    /// appears, without setuid/setgid/sticky bits. Without it every upload is refused.
    #[arg(long, value_name = "DIR", conflicts_with = "cleanup")]
    accept: Option<PathBuf>,

    /// Sessions served at once; a client over the limit is told the server is busy.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    max_sessions: u16,

    /// End a session in which the client took no frame, or sent no request, for SECS
    /// seconds (a stopped client), freeing its slot. 0: wait for ever.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = common::parse_secs, allow_negative_numbers = true)]
    stall_timeout: Duration,

    /// Collect what dead sessions left every SECS seconds while serving; for tests.
    #[arg(long, hide = true, value_name = "SECS", default_value = "5", value_parser = common::parse_secs)]
    collect_every: Duration,

    /// Remove what dead servers and clients of this queue left in /dev/shm and the
    /// queue namespace, print each object removed, and exit. Touches nothing a live
    /// process uses. A server started meanwhile waits for it (up to 5 s).
    #[arg(long, conflicts_with_all = ["persistent", "max_sessions"])]
    cleanup: bool,

    /// With --cleanup: every queue of this user that has a server's lock in /dev/shm, not only
    /// --queue (as `ipcrm -a` covers all objects). A dead server's queue, lock and sessions' objects
    /// go; a live server keeps its own and loses only what its dead sessions left. Another user's
    /// objects are never touched.
    #[arg(long, requires = "cleanup")]
    all: bool,

    /// Log each session's life too (-v); -vv: also every queue message. By default the
    /// log has a start line, one line per request (client pid, path, outcome, bytes, duration,
    /// rate), warnings and a summary at shutdown. RUST_LOG (env_logger's syntax, such as
    /// `shmxfer=debug`) is honoured; -v and -q set the default level over it.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,

    /// Begin each log line with the time (utc, the default: RFC 3339 in UTC to the
    /// millisecond, such as 2026-12-01T11:45:35.123Z), or not (none: for journald,
    /// which stamps each line itself).
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = LogTime::Utc)]
    log_time: LogTime,

    /// Print a completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit: `shm_server --man > shm_server.1`.
    #[arg(long)]
    man: bool,
}

/// What begins a log line before `shm_server: `.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogTime {
    /// The time in UTC, RFC 3339 to the millisecond.
    Utc,
    /// Nothing: the log's reader (journald) stamps lines itself.
    None,
}

fn init_logging(args: &Args) {
    let level = match (args.quiet, args.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Info,
        (false, 1) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(log::LevelFilter::Info);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    if args.quiet || args.verbose > 0 {
        builder.filter_level(level);
    }
    let log_time = args.log_time;
    builder
        .format(move |buf, record| {
            let prefix = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            match log_time {
                LogTime::Utc => write!(buf, "{} ", buf.timestamp_millis())?,
                LogTime::None => {}
            }
            writeln!(buf, "shm_server: {prefix}{}", record.args())
        })
        .target(env_logger::Target::Stderr)
        .init();
}

/// The signals that stop the server, and how: SIGINT, SIGTERM and SIGHUP
/// end open sessions and stop; SIGQUIT lets them finish what they asked for
/// first. A `Now` signal during a drain stops at once.
const STOP_SIGNALS: [(libc::c_int, StopKind); 4] = [
    (signal_hook::consts::SIGINT, StopKind::Now),
    (signal_hook::consts::SIGTERM, StopKind::Now),
    (signal_hook::consts::SIGHUP, StopKind::Now),
    (signal_hook::consts::SIGQUIT, StopKind::Drain),
];

/// What `--cleanup` looks at.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// The one queue.
    Queue(&'a str),
    /// Every queue of this user with a server's lock (`--all`).
    All,
}

fn cleanup(scope: Scope<'_>) -> anyhow::Result<()> {
    let collected = match scope {
        Scope::All => {
            shmxfer::cleanup::cleanup_all().context("cleaning up after the servers of this user")?
        }
        Scope::Queue(queue) => shmxfer::cleanup::cleanup(queue)
            .with_context(|| format!("cleaning up after queue {}", quote_name(queue)))?,
    };
    let mut stdout = std::io::stdout().lock();
    for object in &collected.removed {
        // A closed stdout (`--cleanup | head -1`) loses the line, not the cleanup.
        let _ = writeln!(stdout, "removed {object}");
    }
    for object in &collected.skipped {
        log::warn!("left alone {object}");
    }
    // What was left alone is left over, said above: then only nothing was
    // removed.
    let what = if collected.skipped.is_empty() { "nothing left over" } else { "nothing removed" };
    if collected.removed.is_empty() {
        match scope {
            Scope::Queue(queue) => log::info!("{what} for queue {}", quote_name(queue)),
            Scope::All => log::info!("{what} by servers of this user"),
        }
    }
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.cleanup {
        return cleanup(if args.all { Scope::All } else { Scope::Queue(&args.queue) });
    }
    let stop = StopSignal::new();
    for (sig, kind) in STOP_SIGNALS {
        // Each signal only raises the flag of its kind: any number of them,
        // in any order, ends in a clean stop (`Now` over `Drain`).
        signal_hook::flag::register(sig, stop.flag(kind)).context("installing signal handlers")?;
    }
    let mut builder = Server::builder()
        .queue(&args.queue)
        .root(&args.root)
        .max_sessions(usize::from(args.max_sessions))
        .stall_timeout(Some(args.stall_timeout).filter(|d| !d.is_zero()))
        .collect_every(args.collect_every)
        .spin_budget(common::spin_budget_from_env())
        .accept(args.accept.clone());
    if let Some(dir) = &args.accept {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => anyhow::bail!("--accept {}: not a directory", dir.display()),
            Err(e) => anyhow::bail!("--accept {}: {e}; create it or name another directory", dir.display()),
        }
    }
    if args.persistent {
        builder = builder.persistent();
    }
    match std::fs::metadata(&args.root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!(
            "root {} is not a directory; name the directory to serve with --root",
            args.root.display()
        ),
        Err(e) => anyhow::bail!(
            "root directory {}: {e}; create it or name the directory to serve with --root",
            args.root.display()
        ),
    }
    let server = builder.bind().map_err(|e| {
        let hint = match &e {
            Error::ServerRunning { queue, .. } => format!(
                "; stop it with `shm_client --queue {queue} --stop-server` (if it is --persistent) \
                 or serve another queue with --queue"
            ),
            Error::BadObject { .. } => " (--queue NAME chooses another)".to_owned(),
            _ => String::new(),
        };
        anyhow::anyhow!("{}{hint}", common::chain(&e))
    })?;
    // The queue exists: clients' requests wait in it until `run` reads them.
    notify_systemd(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("serving {} on {}", args.root.display(), args.queue)),
    ]);
    let served = server.run(stop);
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    served.context("serving failed")?;
    Ok(())
}

/// Tells systemd (`Type=notify`) how the service is, when `NOTIFY_SOCKET`
/// names its socket. The datagram is sent without blocking: a socket whose
/// queue is full (a stuck or hostile listener) gets a warning, and serving
/// goes on: nothing but the queue may hold up the serving loop.
fn notify_systemd(states: &[sd_notify::NotifyState]) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let message: String = states.iter().map(|state| format!("{state}\n")).collect();
    match send_without_blocking(&socket, message.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => log::warn!(
            "NOTIFY_SOCKET {}: its queue is full; systemd was not told ({}); serving anyway",
            socket.to_string_lossy(),
            message.trim_end().replace('\n', ", ")
        ),
        Err(e) => log::warn!("telling systemd through NOTIFY_SOCKET {}: {e}", socket.to_string_lossy()),
    }
}

/// Sends `message` as one datagram to the Unix socket `path` (a leading
/// `@`: an abstract name, as systemd gives it) from a non-blocking socket:
/// `WouldBlock` when the socket's queue is full.
fn send_without_blocking(path: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let address = match path.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.connect_addr(&address)?;
    let sent = socket.send(message)?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "the notification was cut short"))
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidUtf8 => {
            eprintln!("shm_server: error: {}", common::not_utf8());
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let environment = &[
        ("SHMXFER_QUEUE", "The queue to serve when --queue is not given (default /shmxfer)."),
        (
            "RUST_LOG",
            "What to log, in env_logger's syntax (such as warn or shmxfer=debug); -v, -vv and -q set the level over it.",
        ),
        (
            "NOTIFY_SOCKET",
            "Set by systemd for Type=notify: READY=1 is sent once the queue exists, STOPPING=1 when serving ends.",
        ),
    ];
    if let Some(code) = common::print_generated(Args::command(), args.completions, args.man, environment) {
        return code;
    }
    init_logging(&args);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", common::anyhow_chain(&e));
            ExitCode::from(1)
        }
    }
}
