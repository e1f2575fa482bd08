//! What the two programs share (feature `cli`; no promise, may change at
//! any time): what both print the same way: error chains, file names, sizes,
//! JSON; and the client's pieces that are not its logic: the progress bar,
//! the `-i` list, standard output that stops the transfer on an error.

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub mod bar;
pub mod client;
pub mod json;
pub mod show;

/// An error and its causes on one line, `a: b: c`.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// [`chain`] for an `anyhow::Error`.
pub fn anyhow_chain(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

pub use crate::programs::{byte_count, human_size, quote_name};

/// `value` as one line of JSON.
pub fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

/// Bytes per second, from bytes in milliseconds.
pub fn rate(bytes: u64, ms: u64) -> u64 {
    bytes.saturating_mul(1000).checked_div(ms).unwrap_or(0)
}

/// A session whose last frame moved this long ago is shown as stalled, not
/// with a rate.
pub const STALLED_AFTER: Duration = Duration::from_secs(2);

/// Which way a session moves files, as `--status` names it.
pub fn direction(kind: crate::SessionKind) -> &'static str {
    match kind {
        crate::SessionKind::Transfer => "fetch",
        crate::SessionKind::Upload => "upload",
        crate::SessionKind::Status => "status",
    }
}

/// A session's rate: its file's bytes over the time since the file
/// started. A session that sent a burst (the ring, a pipe's buffer) and now
/// waits for a slow reader shows what it really moves, neither 0 B/s (the
/// burst took no measurable time) nor the burst's speed.
pub fn session_rate(s: &crate::status::SessionStatus) -> u64 {
    rate(s.sent, s.file_ms)
}

/// Whether no frame of the session's file moved for [`STALLED_AFTER`].
pub fn is_stalled(s: &crate::status::SessionStatus) -> bool {
    !s.path.is_empty() && Duration::from_millis(s.idle_ms) >= STALLED_AFTER
}

/// `--status --json`: the server, then each other session.
#[derive(Debug, serde::Serialize)]
pub struct StatusJson<'a> {
    server: ServerJson<'a>,
    sessions: Vec<SessionJson<'a>>,
}

#[derive(Debug, serde::Serialize)]
struct ServerJson<'a> {
    pid: u32,
    root: &'a str,
    persistent: bool,
    max_sessions: u32,
    open_sessions: u32,
    uptime_ms: u64,
    sessions_total: u64,
    files: u64,
    bytes: u64,
    /// Takes uploads (`--accept`).
    accepting: bool,
    received_files: u64,
    received_bytes: u64,
}

#[derive(Debug, serde::Serialize)]
struct SessionJson<'a> {
    client_pid: u32,
    /// `fetch`, `upload` or `status` ([`direction`]).
    direction: &'static str,
    /// `null` between files.
    path: Option<&'a str>,
    sent: u64,
    size: u64,
    /// Bytes per second since the file started ([`session_rate`]).
    rate: u64,
    /// No frame for [`STALLED_AFTER`] or longer.
    stalled: bool,
    idle_ms: u64,
    file_ms: u64,
    age_ms: u64,
    total: u64,
}

impl<'a> StatusJson<'a> {
    pub fn new(status: &'a crate::status::Status) -> StatusJson<'a> {
        let s = &status.server;
        let server = ServerJson {
            pid: s.pid,
            root: &s.root,
            persistent: s.persistent,
            max_sessions: s.max_sessions,
            open_sessions: s.open_sessions,
            uptime_ms: s.uptime_ms,
            sessions_total: s.sessions_total,
            files: s.files,
            bytes: s.bytes,
            accepting: s.accepting,
            received_files: s.received_files,
            received_bytes: s.received_bytes,
        };
        let sessions = status
            .sessions
            .iter()
            .map(|s| SessionJson {
                client_pid: s.client_pid,
                direction: direction(s.kind),
                path: Some(s.path.as_str()).filter(|p| !p.is_empty()),
                sent: s.sent,
                size: s.size,
                rate: session_rate(s),
                stalled: is_stalled(s),
                idle_ms: s.idle_ms,
                file_ms: s.file_ms,
                age_ms: s.age_ms,
                total: s.total,
            })
            .collect();
        StatusJson { server, sessions }
    }
}

/// One line of `--status --all --json`: a server of this user, its queue,
/// whether it lives, and for a live one the fields of `--status --json`
/// (`server`, `sessions`) or the `error` that kept them from it.
#[derive(Debug, serde::Serialize)]
pub struct ServerJsonLine<'a> {
    queue: &'a str,
    /// `live` or `dead` (a dead server's lock, left over).
    state: &'static str,
    #[serde(flatten)]
    status: Option<StatusJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl<'a> ServerJsonLine<'a> {
    pub fn new(report: &'a crate::status::ServerReport) -> ServerJsonLine<'a> {
        match report {
            crate::status::ServerReport::Live { queue, status: Ok(status) } => {
                ServerJsonLine { queue, state: "live", status: Some(StatusJson::new(status)), error: None }
            }
            crate::status::ServerReport::Live { queue, status: Err(e) } => {
                ServerJsonLine { queue, state: "live", status: None, error: Some(chain(e)) }
            }
            crate::status::ServerReport::Dead { queue } => {
                ServerJsonLine { queue, state: "dead", status: None, error: None }
            }
        }
    }
}

/// The `-i` list as messages name it.
pub fn list_shown(list: &Path) -> String {
    if list.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        list.display().to_string()
    }
}

/// The names in `list` (a file, or `-` for stdin): one per line, blank lines
/// skipped, a trailing `\r` dropped.
pub fn read_names(list: &Path) -> Result<Vec<String>, String> {
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

/// The signals that stop a client: each one, however many arrive and in
/// whatever order, only sets `cancel`. Nothing exits from inside a handler:
/// the program notices the flag at its next check (every wait of the
/// library is bounded and checks it), removes its objects and exits.
pub fn stop_on_signals(cancel: &Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    for sig in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        signal_hook::flag::register(sig, Arc::clone(cancel))?;
    }
    Ok(())
}

/// Standard output for `--stdout`: the first write error (a closed pipe,
/// `| head -c10`) ends the session at once through the cancel flag, so the
/// rest of the file is not received for nothing. A pipe or socket is written
/// without blocking and waited on in short slices, so that a reader that
/// stopped reading does not hold the client past a signal: once the cancel
/// flag is set, a waiting write gives up (and is not counted as an error).
#[derive(Debug)]
pub struct StopOnError {
    out: std::fs::File,
    cancel: Arc<AtomicBool>,
    /// The status flags to restore when `O_NONBLOCK` was added.
    restore: Option<nix::fcntl::OFlag>,
    /// The first write error.
    pub error: Option<String>,
}

impl StopOnError {
    /// Standard output (a duplicate of its descriptor), watched by `cancel`.
    pub fn stdout(cancel: Arc<AtomicBool>) -> std::io::Result<StopOnError> {
        use std::os::fd::AsFd;
        StopOnError::new(std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?), cancel)
    }

    /// `out` (a device or FIFO that `-O` names, say), watched by `cancel`.
    pub fn new(out: std::fs::File, cancel: Arc<AtomicBool>) -> std::io::Result<StopOnError> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        use nix::sys::stat::SFlag;
        let st = nix::sys::stat::fstat(&out)?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let mut restore = None;
        if kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK {
            let flags = OFlag::from_bits_truncate(fcntl(&out, FcntlArg::F_GETFL)?);
            if !flags.contains(OFlag::O_NONBLOCK) {
                fcntl(&out, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
                restore = Some(flags);
            }
        }
        Ok(StopOnError { out, cancel, restore, error: None })
    }

    fn check<T>(&mut self, done: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &done {
            if self.error.is_none() {
                self.error = Some(e.to_string());
            }
            self.cancel.store(true, Ordering::Relaxed);
        }
        done
    }

    /// Waits up to a slice for room to write.
    fn wait_for_room(&self) {
        use nix::poll::{poll, PollFd, PollFlags};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.out.as_fd(), PollFlags::POLLOUT)];
        let _ = poll(&mut fds, 100u16);
    }
}

impl std::io::Write for StopOnError {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("cancelled"));
            }
            match self.out.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.wait_for_room(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                done => return self.check(done),
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StopOnError {
    fn drop(&mut self) {
        if let Some(flags) = self.restore {
            let _ = nix::fcntl::fcntl(&self.out, nix::fcntl::FcntlArg::F_SETFL(flags));
        }
    }
}

/// Parses a number of seconds (fractions allowed, not negative), for clap.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs < 0.0 {
        return Err("seconds cannot be negative; give a number >= 0 (see --help for what 0 means)".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a number of seconds >= 0"))
}

/// The environment variable that sets the spin budget of either program, in
/// microseconds, for measurements (see the README's performance section).
pub const SPIN_ENV: &str = "SHMXFER_SPIN_US";

/// The spin budget `SHMXFER_SPIN_US` asks for, or the library's default when
/// it is not set or not a number of microseconds.
pub fn spin_budget_from_env() -> Duration {
    std::env::var(SPIN_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(crate::DEFAULT_SPIN_BUDGET, Duration::from_micros)
}

/// What clap's "invalid UTF-8" stands for: which argument, or the
/// `SHMXFER_QUEUE` variable, is not UTF-8, its bytes escaped, where a name
/// must be text.
pub fn not_utf8() -> String {
    let escaped = |a: &std::ffi::OsStr| a.as_encoded_bytes().escape_ascii().to_string();
    let what = match std::env::args_os().skip(1).find(|a| a.to_str().is_none()) {
        Some(arg) => escaped(&arg),
        None => match std::env::var_os(crate::QUEUE_ENV) {
            Some(value) if value.to_str().is_none() => format!("{}={}", crate::QUEUE_ENV, escaped(&value)),
            _ => "an argument".to_owned(),
        },
    };
    not_utf8_named(&what)
}

/// The usage error of `what` (an argument as its bytes escaped, or
/// `SHMXFER_QUEUE=…`), not UTF-8 where a name must be: the one wording of
/// [`not_utf8`] and of a file name given that is not UTF-8.
pub fn not_utf8_named(what: &dyn std::fmt::Display) -> String {
    format!("{what}: not UTF-8; file names (and queue names) must be UTF-8")
}

/// Checks a queue name with the library's rules, for clap.
pub fn parse_queue(s: &str) -> Result<String, String> {
    match crate::programs::validate_queue_name(s) {
        Ok(()) => Ok(s.to_owned()),
        Err(crate::Error::InvalidName { reason, .. }) => {
            Err(format!("{reason} (a queue name looks like /name)"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Prints what `--completions SHELL` or `--man` ask for, if either was
/// given, and returns the exit code; `None` when neither was.
pub fn print_generated(
    cmd: clap::Command,
    completions: Option<clap_complete::Shell>,
    man: bool,
    environment: &[(&str, &str)],
) -> Option<std::process::ExitCode> {
    if let Some(shell) = completions {
        print_completions(cmd, shell);
        return Some(std::process::ExitCode::SUCCESS);
    }
    man.then(|| print_man(cmd, environment))
}

/// `--completions SHELL`: the shell completion script of `cmd` on stdout,
/// offering what `--help` shows (no hidden flag).
pub fn print_completions(cmd: clap::Command, shell: clap_complete::Shell) {
    let name = cmd.get_name().to_owned();
    let mut shown = without_hidden(&cmd);
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut shown, name, &mut script);
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
}

/// `cmd` as far as completions see it: its name, version and the arguments
/// that are not hidden (clap's generators offer hidden ones too, and a
/// `Command` cannot drop an argument, so a new one is made). The strings
/// live until the process exits, as the programs do right after.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let mut shown = clap::Command::new(leak(cmd.get_name()));
    if let Some(version) = cmd.get_version() {
        shown = shown.version(leak(version));
    }
    shown.args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
}

/// `text` for roff: backslashes and dashes escaped, no line starting as a request.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// The sections of a man page made from `after_help`: its `Examples:`
/// paragraph as EXAMPLES (one tagged paragraph per command, so roff keeps
/// the lines), `Exit status:` as EXIT STATUS (one entry per code), any
/// other `Title: text` paragraph as a section of its own; then ENVIRONMENT
/// from `environment` (variable, meaning).
fn man_sections(after_help: &str, environment: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for para in after_help.split("\n\n") {
        let Some((title, body)) = para.split_once(':') else {
            let _ = writeln!(out, ".PP\n{}", roff(para.trim()));
            continue;
        };
        let _ = writeln!(out, ".SH \"{}\"", title.trim().to_uppercase());
        match title.trim() {
            "Examples" => {
                for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    // `command   what it does`: two spaces or more between.
                    match line.split_once("  ") {
                        Some((cmd, what)) => {
                            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(cmd.trim()), roff(what.trim()));
                        }
                        None => {
                            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n.", roff(line));
                        }
                    }
                }
            }
            "Exit status" => {
                // `0 meaning, 1 meaning (a, b), 2 meaning.`: a new entry at each `, ` before a digit.
                let body = body.trim().trim_end_matches('.');
                let mut entries = vec![String::new()];
                let mut rest = body;
                while let Some(at) = rest.find(", ") {
                    let (head, tail) = rest.split_at(at);
                    entries.last_mut().expect("one entry").push_str(head);
                    rest = &tail[2..];
                    if rest.starts_with(|c: char| c.is_ascii_digit()) {
                        entries.push(String::new());
                    } else {
                        entries.last_mut().expect("one entry").push_str(", ");
                    }
                }
                entries.last_mut().expect("one entry").push_str(rest);
                for entry in &entries {
                    let (code, meaning) = entry.split_once(' ').unwrap_or((entry, ""));
                    let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(code), roff(meaning));
                }
            }
            _ => {
                let _ = writeln!(out, ".PP\n{}", roff(body.trim()));
            }
        }
    }
    if !environment.is_empty() {
        out.push_str(".SH ENVIRONMENT\n");
        for (name, meaning) in environment {
            let _ = writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(name), roff(meaning));
        }
    }
    out
}

/// `--man`: the man page of `cmd` (roff) on stdout, its `after_help` made
/// into sections (see `man_sections`) and an ENVIRONMENT section.
pub fn print_man(mut cmd: clap::Command, environment: &[(&str, &str)]) -> std::process::ExitCode {
    let after_help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    // The NAME section is the `about` text as it is: no markdown backticks there.
    if let Some(about) = cmd.get_about().map(|a| a.to_string().replace('`', "")) {
        cmd = cmd.about(about);
    }
    let name = cmd.get_name().to_owned();
    // The usage forms the help shows, with their value names, one per line.
    let usage = cmd.render_usage().to_string();
    let man = clap_mangen::Man::new(cmd);
    let mut page = Vec::new();
    let rendered = (|| {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        page.extend_from_slice(b".SH SYNOPSIS\n.nf\n");
        for line in usage.lines() {
            let line = line.trim();
            let line = line.strip_prefix("Usage:").unwrap_or(line).trim();
            page.extend_from_slice(format!("{}\n", roff(line)).as_bytes());
        }
        page.extend_from_slice(b".fi\n");
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        page.extend_from_slice(man_sections(&after_help, environment).as_bytes());
        man.render_version_section(&mut page)
    })();
    match rendered.and_then(|()| std::io::Write::write_all(&mut std::io::stdout(), &page)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that stopped reading (`--man | head`) is no error worth a message.
        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: writing the man page: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_print_each_cause() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "open root files")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(chain(&e), "open root files: No such file or directory (os error 2)");
        let a = anyhow::Error::new(Outer(std::io::Error::from_raw_os_error(libc::ENOENT))).context("serving");
        assert_eq!(anyhow_chain(&a), "serving: open root files: No such file or directory (os error 2)");
    }

    #[test]
    fn json_escapes_what_json_requires() {
        assert_eq!(to_json(&"a\"b\\c\nd\te\u{1}"), r#""a\"b\\c\nd\te\u0001""#);
        assert_eq!(to_json(&"ü"), "\"ü\"");
    }
}
