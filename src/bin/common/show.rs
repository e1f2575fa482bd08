//! How the client prints: result lines on stdout, the status as text.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use shmxfer::programs::{byte_count, human_size, quote_bytes, quote_name};
use shmxfer::{FailReason, FileResult, Outcome, Progress, Status};

use super::bar::Bar;

/// Prints one result line on stdout. A closed stdout (`shm_client … | head -1`)
/// does not stop the transfers, nor leave objects behind as SIGPIPE would: the
/// lines are dropped and the exit status still tells what happened.
pub fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A path (any bytes) as names are printed: quoted as `ls` quotes.
pub fn quote_path(path: &Path) -> Cow<'_, str> {
    quote_bytes(path.as_os_str().as_bytes())
}

/// An entry a listing left out, on stderr: `shm_client: NAME: skipped: WHY`.
pub fn say_skipped(path: &Path, text: &str) {
    let name = if path.as_os_str().is_empty() { Cow::Borrowed(".") } else { quote_path(path) };
    let _ = writeln!(std::io::stderr(), "shm_client: {name}: skipped: {text}");
}

/// `bytes` as the user asked: exact, or for people with `--human`.
pub fn size_text(bytes: u64, human: bool) -> String {
    if human {
        human_size(bytes)
    } else {
        bytes.to_string()
    }
}

/// What became of a file that did not arrive, as its line says it.
pub fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::NotFound => "not found on server".into(),
        Outcome::Refused { text, .. } => format!("refused by server: {text}"),
        Outcome::Failed { reason: FailReason::OutputExists, text } => {
            format!("failed: {text} (--no-clobber)")
        }
        Outcome::Failed { text, .. } => format!("failed: {text}"),
        Outcome::Skipped { text, .. } => format!("skipped: {text}"),
        other => format!("{other:?}"),
    }
}

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A line for people per file (`NAME: received N bytes`).
    Text,
    /// A JSON object per file, then a summary object (`--json`).
    Json,
}

/// The progress bar, and a line on stdout per file as soon as it is done.
pub struct Lines {
    pub bar: Bar,
    pub quiet: bool,
    pub human: bool,
    /// `-r`: a directory refused needs no hint.
    pub recursive: bool,
    pub format: Format,
}

/// The name a result line gives a file: the path asked for, and for a
/// delivered file the output path after an arrow where it differs
/// (`subdir/nested.txt: received 7 bytes → nested.txt`).
fn requested_and_output(file: &FileResult) -> (Cow<'_, str>, Option<Cow<'_, str>>) {
    let output = (file.outcome.is_delivered() && file.path != file.name).then(|| quote_path(&file.name));
    (quote_path(&file.path), output)
}

impl Progress for Lines {
    fn start(&mut self, name: &str, size: u64) {
        self.bar.start(name, size);
    }

    fn planned(&mut self, files: usize) {
        self.bar.planned(files);
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.advance(bytes);
    }

    fn finish(&mut self) {
        self.bar.finish();
    }

    fn result(&mut self, file: &FileResult) {
        self.bar.result(file);
        self.bar.suspend(|| match self.format {
            Format::Text => self.text_line(file),
            Format::Json => {
                if let Outcome::Skipped { text, .. } = &file.outcome {
                    say_skipped(&file.name, text);
                }
                say(format_args!("{}", super::json::file_line(file)));
            }
        });
    }
}

impl Lines {
    /// A file's result line for people.
    fn text_line(&self, file: &FileResult) {
        let (name, output) = requested_and_output(file);
        let size = |n| if self.human { human_size(n) } else { byte_count(n) };
        match &file.outcome {
            Outcome::Delivered { bytes } if !self.quiet => match output {
                Some(output) => say(format_args!("{name}: received {} → {output}", size(*bytes))),
                None => say(format_args!("{name}: received {}", size(*bytes))),
            },
            Outcome::Delivered { .. } => {}
            // Left out by the server's listing: said on stderr, as --list says it.
            Outcome::Skipped { text, .. } => say_skipped(&file.name, text),
            Outcome::Refused { reason: FailReason::IsDirectory, text } if !self.recursive => {
                say(format_args!("{name}: refused by server: {text}; use -r to fetch a directory"))
            }
            outcome => say(format_args!("{name}: {}", outcome_text(outcome))),
        }
    }
}

/// `--status` as text: the server, then a line per other session.
pub fn print_status(status: &Status, queue: &str, human: bool) {
    let server = &status.server;
    let secs = |ms: u64| Duration::from_millis(ms).as_secs_f64();
    let bytes = |n: u64| size_text(n, human) + if human { "" } else { " bytes" };
    let mode = if server.persistent { "persistent" } else { "until the last client leaves" };
    let (root, up) = (quote_name(&server.root), secs(server.uptime_ms));
    say(format_args!("server pid {} on queue {}, serving {root} ({mode}), up {up:.1} s", server.pid, queue));
    say(format_args!(
        "sessions: {} open of {} allowed, {} since the start; sent {} file(s), {}",
        server.open_sessions,
        server.max_sessions,
        server.sessions_total,
        server.files,
        bytes(server.bytes)
    ));
    for s in &status.sessions {
        let doing = if s.path.is_empty() {
            "between files".to_owned()
        } else {
            let rate = human_size(super::rate(s.sent, s.file_ms));
            format!("{}: {} of {}, {rate}/s", quote_name(&s.path), size_text(s.sent, human), bytes(s.size))
        };
        say(format_args!("client {}: {doing}, last frame {:.1} s ago", s.client_pid, secs(s.idle_ms)));
    }
}
