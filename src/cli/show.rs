//! How the client prints: result lines on stdout, the status as text.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::programs::{byte_count, human_size, quote_bytes, quote_name, quote_whole};
use crate::status::{ServerReport, Status};
use crate::{Entry, FailReason, FileResult, Listing, Outcome, Progress, SkipReason};

use super::bar::Bar;

/// Prints one result line on stdout. A closed stdout (`shm_client … | head -1`)
/// does not stop the transfers, nor leave objects behind as SIGPIPE would: the
/// lines are dropped and the exit status still tells what happened.
pub fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A path (any bytes) as result lines and listings print it on stdout:
/// whole, quoted as `ls` quotes ([`quote_whole`]).
pub fn quote_path(path: &Path) -> Cow<'_, str> {
    quote_whole(path.as_os_str().as_bytes())
}

/// A path (any bytes) as a message on stderr names it: [`quote_path`], cut
/// in its middle past 200 bytes ([`quote_bytes`]).
pub fn message_path(path: &Path) -> Cow<'_, str> {
    quote_bytes(path.as_os_str().as_bytes())
}

/// An entry a listing left out, on stderr: `shm_client: NAME: skipped: WHY`.
/// Its path is said whole ([`quote_path`]), as a result line names its
/// file: the lines say entry by entry what was left out, and two paths cut
/// in their middle could read alike. A listing's path is at most
/// [`MAX_PATH_LEN`](crate::programs::MAX_PATH_LEN) bytes.
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
        // What a shell says of `small.txt/`.
        Outcome::Failed { reason: FailReason::NotADirectory, text } => text.clone(),
        Outcome::Failed { text, .. } => format!("failed: {text}"),
        Outcome::Skipped { reason: SkipReason::Exists } => "skipped: exists".into(),
        Outcome::Skipped { reason: SkipReason::UpToDate } => "skipped: up to date".into(),
        Outcome::LeftOut { text, .. } => format!("skipped: {text}"),
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
#[derive(Debug)]
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

    fn planned_sizes(&mut self, sizes: &[Option<u64>]) {
        self.bar.planned_sizes(sizes);
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.advance(bytes);
    }

    fn resumed(&mut self, bytes: u64) {
        self.bar.resumed(bytes);
    }

    fn finish(&mut self) {
        self.bar.finish();
    }

    fn starting_over(&mut self, name: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "shm_client: {}: the source changed since the partial file was kept; starting over",
            quote_name(name)
        );
    }

    fn partial_removed(&mut self, name: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "shm_client: {}: the server no longer has its source; removed the partial file kept for it",
            quote_name(name)
        );
    }

    fn partial_busy(&mut self, name: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "shm_client: {}: another shm_client is writing its partial file; fetching it whole, nothing kept if cut off",
            quote_name(name)
        );
    }

    fn partial_longer(&mut self, name: &str, kept: u64, size: u64) {
        let _ = writeln!(
            std::io::stderr(),
            "shm_client: {}: the partial file ({}) is longer than the source ({}), which did not change; starting over",
            quote_name(name),
            human_size(kept),
            human_size(size)
        );
    }

    fn result(&mut self, file: &FileResult) {
        self.bar.result(file);
        self.bar.suspend(|| match self.format {
            Format::Text => self.text_line(file),
            Format::Json => {
                if let Outcome::LeftOut { text, .. } = &file.outcome {
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
            Outcome::Delivered { bytes } if !self.quiet => {
                let resumed = match file.resumed_at {
                    Some(at) => format!(" (resumed at {})", size(at)),
                    None => String::new(),
                };
                match output {
                    Some(output) => {
                        say(format_args!("{name}: received {}{resumed} → {output}", size(*bytes)))
                    }
                    None => say(format_args!("{name}: received {}{resumed}", size(*bytes))),
                }
            }
            Outcome::Delivered { .. } | Outcome::Skipped { .. } if self.quiet => {}
            // Left out by the server's listing: said on stderr, as --list says it.
            Outcome::LeftOut { text, .. } => say_skipped(&file.name, text),
            Outcome::Refused { reason: FailReason::IsDirectory, text } if !self.recursive => {
                say(format_args!("{name}: refused by server: {text}; use -r to fetch a directory"))
            }
            outcome => say(format_args!("{name}: {}", outcome_text(outcome))),
        }
    }
}

/// `--list` as text: `SIZE<TAB>PATH` per file; with `--human` the sizes
/// right-aligned in a column as wide as the widest; with `-l` as `ls -l`
/// (`-rw-r--r--  1234  2026-12-01 11:45  path`, the time in UTC).
pub fn print_listing(files: &[Entry], long: bool, human: bool) {
    let sizes: Vec<String> = files.iter().map(|e| size_text(e.size, human)).collect();
    let width = if long || human { sizes.iter().map(|s| s.chars().count()).max().unwrap_or(0) } else { 0 };
    for (e, size) in files.iter().zip(&sizes) {
        let path = quote_path(&e.path);
        if long {
            let mode = mode_text(e.mode);
            say(format_args!("{mode}  {size:>width$}  {}  {path}", minute_text(e.mtime)));
        } else {
            say(format_args!("{size:>width$}\t{path}"));
        }
    }
}

/// `--list -l --json`: `{"files":[{"path":…,"size":N,"mode":"0644","mtime":"…Z"},…]}`, and the
/// entries left out as `--list --json` gives them.
pub fn long_listing_json(listing: &Listing) -> String {
    #[derive(serde::Serialize)]
    struct Long<'a> {
        #[serde(flatten)]
        entry: &'a Entry,
        mode: String,
        mtime: String,
    }
    #[derive(serde::Serialize)]
    struct Files<'a> {
        files: Vec<Long<'a>>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        skipped: &'a [crate::Skipped],
    }
    let files = listing
        .files
        .iter()
        .map(|entry| Long { entry, mode: format!("{:04o}", entry.mode), mtime: rfc3339_utc(entry.mtime) })
        .collect();
    super::to_json(&Files { files, skipped: &listing.skipped })
}

/// A regular file's permission bits as `ls -l` shows them: `-rwsr-xr-t`.
pub fn mode_text(mode: u32) -> String {
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    // Execute, or the special bit over it: lower case with execute, upper without.
    let special = |x: u32, special: u32, c: char| match (mode & special != 0, mode & x != 0) {
        (true, true) => c,
        (true, false) => c.to_ascii_uppercase(),
        (false, true) => 'x',
        (false, false) => '-',
    };
    [
        '-',
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't'),
    ]
    .into_iter()
    .collect()
}

/// The UTC calendar fields of `t`: year, month, day, hour, minute, second.
fn utc_fields(t: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs_f64().ceil() as u64).unwrap_or(i64::MAX),
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    // Days to a civil date (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest / 60 % 60, rest % 60)
}

/// `2026-12-01 11:45` (UTC), as `ls -l --time-style=long-iso` shows a time.
pub fn minute_text(t: SystemTime) -> String {
    let (y, mo, d, h, mi, _) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// `2026-12-01T11:45:35Z`: RFC 3339 in UTC, to the second.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `--status` as text: the server, then a line per other session.
pub fn print_status(status: &Status, queue: &str, human: bool) {
    let server = &status.server;
    let secs = |ms: u64| Duration::from_millis(ms).as_secs_f64();
    let bytes = |n: u64| size_text(n, human) + if human { "" } else { " bytes" };
    let mode = if server.persistent { "persistent" } else { "until the last client leaves" };
    let (root, up) = (quote_name(&server.root), secs(server.uptime_ms));
    let queue = quote_name(queue);
    say(format_args!("server pid {} on queue {queue}, serving {root} ({mode}), up {up:.1} s", server.pid));
    let received = if server.accepting {
        format!("; received {} file(s), {}", server.received_files, bytes(server.received_bytes))
    } else {
        String::new()
    };
    say(format_args!(
        "sessions: {} open of {} allowed, {} since the start; sent {} file(s), {}{received}",
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
            let rate = if super::is_stalled(s) {
                "stalled".to_owned()
            } else {
                human_size(super::session_rate(s)) + "/s"
            };
            format!("{}: {} of {}, {rate}", quote_name(&s.path), size_text(s.sent, human), bytes(s.size))
        };
        say(format_args!(
            "client {}: {doing}, last frame {:.1} s ago ({})",
            s.client_pid,
            secs(s.idle_ms),
            super::direction(s.kind)
        ));
    }
}

/// `--status --all` as text: a block per live server (as `--status` prints
/// it), a line per dead one, blank lines between them; a line saying so
/// when there is none.
pub fn print_status_all(reports: &[ServerReport], human: bool) {
    if reports.is_empty() {
        say(format_args!("no shmxfer server of this user on this machine"));
    }
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            say(format_args!(""));
        }
        match report {
            ServerReport::Live { queue, status: Ok(status) } => print_status(status, queue, human),
            ServerReport::Live { queue, status: Err(e) } => say(format_args!(
                "server on queue {}: live, no status: {}",
                quote_name(queue),
                super::chain(e)
            )),
            ServerReport::Dead { queue } => say(format_args!(
                "dead server on queue {}: its lock is left over (and maybe its queue and sessions' objects); \
                 remove them with `shm_server --cleanup --all`",
                quote_name(queue)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_ls_shows_them() {
        assert_eq!(mode_text(0o644), "-rw-r--r--");
        assert_eq!(mode_text(0o755), "-rwxr-xr-x");
        assert_eq!(mode_text(0o4755), "-rwsr-xr-x");
        assert_eq!(mode_text(0o2644), "-rw-r-Sr--");
        assert_eq!(mode_text(0o1777), "-rwxrwxrwt");
        assert_eq!(mode_text(0), "----------");
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        // `date -u -d @1796125535`
        assert_eq!(rfc3339_utc(at(1_796_125_535)), "2026-12-01T11:45:35Z");
        assert_eq!(minute_text(at(1_796_125_535)), "2026-12-01 11:45");
        assert_eq!(rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH - Duration::from_secs(1)), "1969-12-31T23:59:59Z");
    }
}
