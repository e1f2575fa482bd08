//! `--put [-r] FILE… [--to DIR]`: sends local files (with `-r` directory
//! trees) to the server's `--accept` directory, a line per file (a JSON
//! object per file and a summary with `--json`), and maps the answers to
//! an exit code.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use crate::upload::{PutIfExists, PutOptions, ToSend, Unsent, UploadItem, UploadPlan};
use crate::{FailReason, Outcome, Progress, SkipReason, Summary, Times, Update, UploadSession};

use super::*;
use crate::cli::json::{self, Why};

/// Passes progress on to the bar and keeps how far the file got (what the
/// line of a file cut off reports).
struct Sending<'a> {
    bar: &'a mut Bar,
    so_far: SoFar,
}

/// How far the file being sent got.
#[derive(Debug, Clone, Copy, Default)]
struct SoFar {
    /// Its size as `fstat` gave it when it was opened for sending.
    size: Option<u64>,
    /// The bytes that left.
    sent: u64,
    /// Every byte and the end left: the server may have stored it, whether
    /// or not its answer came ([`Progress::answer_awaited`]).
    answer_awaited: bool,
}

impl Progress for Sending<'_> {
    fn start(&mut self, name: &str, size: u64) {
        self.so_far.size = Some(size);
        self.bar.start(name, size);
    }

    fn advance(&mut self, bytes: u64) {
        self.so_far.sent += bytes;
        self.bar.advance(bytes);
    }

    fn answer_awaited(&mut self) {
        self.so_far.answer_awaited = true;
    }

    fn finish(&mut self) {
        self.bar.finish();
    }
}

/// Before any request: the run, planned once (trees walked, long paths
/// and missing files noted), or the exit code of two files to one remote
/// path.
pub fn plan_run(
    args: &Args,
    files: &[PathBuf],
    to: Option<&str>,
    name: Option<&Path>,
) -> Result<UploadPlan, ExitCode> {
    let mut builder = UploadPlan::builder().recursive(args.recursive);
    if let Some(to) = to {
        builder = builder.to(to);
    }
    if let Some(name) = name {
        builder = builder.name(name.as_os_str().as_bytes());
    }
    builder.plan(files).map_err(|e| fail(&e))
}

/// How the run prints: a line for people or a JSON object per file.
struct Printer {
    bar: Bar,
    format: Format,
    quiet: bool,
    summary: Summary,
    started: Instant,
}

/// The file being sent: item `at` of the plan, its local path, where it
/// goes, and whether it is a tree's.
struct Sent<'a> {
    at: usize,
    local: &'a Path,
    remote: &'a [u8],
    in_tree: bool,
}

impl Sent<'_> {
    /// The local path as asked for, as bytes (JSON's `request`).
    fn request(&self) -> &[u8] {
        self.local.as_os_str().as_bytes()
    }
}

impl Printer {
    /// One item's result: the text line `text` (`None`: none, as for a
    /// success under `--quiet`) or its JSON object.
    fn line(&mut self, text: Option<String>, object: impl FnOnce() -> String) {
        let format = self.format;
        self.bar.suspend(|| match (format, text) {
            (Format::Json, _) => say(format_args!("{}", object())),
            (Format::Text, Some(text)) => say(format_args!("{text}")),
            (Format::Text, None) => {}
        });
    }

    /// The summary: an object with `--json`, else a line on stderr when
    /// more than one file was asked for (as a fetch's), unless quiet.
    fn finish(&mut self) {
        self.bar.clear();
        self.summary.elapsed = self.started.elapsed();
        match self.format {
            Format::Json => say(format_args!("{}", json::summary_line(&self.summary))),
            Format::Text if self.summary.asked > 1 && !self.quiet => {
                eprintln!("shm_client: {}", self.summary)
            }
            Format::Text => {}
        }
    }

    /// An item that is not sent: its line (a tree's entry is named on
    /// stderr, as the walk's entries are).
    fn not_sent(&mut self, item: &UploadItem) {
        match item {
            UploadItem::NotSent(Unsent { local, remote, reason, text }) => {
                // The library does not name this program's options.
                let text = match reason {
                    FailReason::IsDirectory => "a directory; use -r to send it with what lies below it",
                    _ => text,
                };
                self.summary.failed += 1;
                let line = format!("{}: not sent: {text}", quote_path(local));
                self.line(Some(line), || {
                    let request = local.as_os_str().as_bytes();
                    json::upload_line(request, remote, "failed", 0, Some(Why::Fail(*reason)), Some(text))
                });
            }
            UploadItem::Skipped(Unsent { local, remote, reason, text }) => {
                self.summary.left_out += 1;
                self.bar.suspend(|| say_skipped(local, text));
                if self.format == Format::Json {
                    let request = local.as_os_str().as_bytes();
                    let why = Some(Why::Fail(*reason));
                    say(format_args!(
                        "{}",
                        json::upload_line(request, remote, "skipped", 0, why, Some(text))
                    ));
                }
            }
            UploadItem::Send(_) => {}
        }
    }

    /// What became of a file the server answered: whether it was stored or
    /// skipped, or the exit code that ends the run (a server that takes no
    /// uploads).
    fn answered(
        &mut self,
        file: &Sent<'_>,
        outcome: Outcome,
        queue: &str,
        items: &[UploadItem],
    ) -> Result<bool, ExitCode> {
        self.bar.file_done();
        let shown = quote_path(file.local);
        let (request, remote) = (file.request(), file.remote);
        let quiet = self.quiet;
        let skipped = |text: &str| (!quiet).then(|| format!("{shown}: skipped: {text}"));
        match outcome {
            Outcome::Delivered { bytes } => {
                self.summary.delivered += 1;
                self.summary.bytes += bytes;
                self.summary.received += bytes;
                let remote_shown = quote_path(Path::new(OsStr::from_bytes(remote)));
                let line = (!quiet).then(|| format!("{shown}: sent {bytes} bytes → {remote_shown}"));
                self.line(line, || json::upload_line(request, remote, "delivered", bytes, None, None));
            }
            Outcome::Skipped { reason } => {
                self.summary.skipped += 1;
                let text = match reason {
                    SkipReason::Exists => "exists on the server",
                    SkipReason::UpToDate => "up to date on the server",
                };
                self.line(skipped(text), || {
                    json::upload_line(request, remote, "skipped", 0, Some(Why::Skip(reason)), Some(text))
                });
            }
            Outcome::Refused { reason: FailReason::WrongSession, .. } => {
                return Err(self.not_accepting(file, queue, items));
            }
            Outcome::Refused { reason, text } => {
                self.summary.refused += 1;
                let remote_shown = quote_path(Path::new(OsStr::from_bytes(remote)));
                let line = format!("{shown}: refused by server: {remote_shown}: {text}");
                self.line(Some(line), || {
                    json::upload_line(request, remote, "refused", 0, Some(Why::Fail(reason)), Some(&text))
                });
                return Ok(false);
            }
            Outcome::Failed { reason, text } | Outcome::LeftOut { reason, text } => {
                self.summary.failed += 1;
                self.line(Some(format!("{shown}: failed: {text}")), || {
                    json::upload_line(request, remote, "failed", 0, Some(Why::Fail(reason)), Some(&text))
                });
                return Ok(false);
            }
            Outcome::NotFound => {
                // No server answers an upload so.
                self.summary.failed += 1;
                let text = "not found on server";
                self.line(Some(format!("{shown}: failed: {text}")), || {
                    let why = Some(Why::Fail(FailReason::Server));
                    json::upload_line(request, remote, "failed", 0, why, Some(text))
                });
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A server that takes no uploads: the file's line, the rest named as
    /// not sent, the summary, and the exit code.
    fn not_accepting(&mut self, file: &Sent<'_>, queue: &str, items: &[UploadItem]) -> ExitCode {
        let text = format!(
            "refused: the server on queue {queue} takes no uploads; start it with \
             `shm_server --accept DIR` to receive files into DIR"
        );
        self.summary.refused += 1;
        self.summary.not_fetched += sends_from(items, file.at + 1);
        if self.format == Format::Json {
            let why = Some(Why::Fail(FailReason::WrongSession));
            say(format_args!(
                "{}",
                json::upload_line(file.request(), file.remote, "refused", 0, why, Some(&text))
            ));
        }
        let not_sent = "not sent: the server takes no uploads";
        name_the_rest(items, file.at + 1, self.format, FailReason::WrongSession, not_sent);
        self.finish();
        exit_with(EXIT_NOT_DELIVERED, &format!("{}: {text}", show::message_path(file.local)))
    }

    /// The local file could not be sent (not there, not a regular file,
    /// unreadable): a named file failed, a tree's file is skipped as the
    /// walk's entries are.
    fn local_failure(&mut self, file: &Sent<'_>, e: &Error) {
        let (request, remote) = (file.request(), file.remote);
        let text = describe(e);
        let reason = match e {
            Error::LocalFile { source, .. } if source.raw_os_error() == Some(libc::EISDIR) => {
                FailReason::IsDirectory
            }
            _ => FailReason::Unreadable,
        };
        self.bar.file_done();
        if file.in_tree {
            self.summary.left_out += 1;
            self.bar.suspend(|| say_skipped(file.local, &text));
            if self.format == Format::Json {
                let why = Some(Why::Fail(reason));
                say(format_args!("{}", json::upload_line(request, remote, "skipped", 0, why, Some(&text))));
            }
        } else {
            self.summary.failed += 1;
            self.line(Some(format!("{}: not sent: {text}", quote_path(file.local))), || {
                json::upload_line(request, remote, "failed", 0, Some(Why::Fail(reason)), Some(&text))
            });
        }
    }

    /// The session ended inside the file (`so_far`: how far it got): a line
    /// for the file cut off and for each one not sent, as a fetch prints
    /// them, the summary, and the session's exit code. A file whose every
    /// byte and end had left is not said to be kept nowhere: the server
    /// had all of it, and whether it stored it is unknown.
    fn lost(&mut self, file: &Sent<'_>, e: &Error, so_far: SoFar, items: &[UploadItem]) -> ExitCode {
        let (request, remote) = (file.request(), file.remote);
        self.bar.clear();
        if let Error::Remote { .. } = e {
            // The relay never opened a session (no server on the
            // host, no shm_client there, the host not reached):
            // nothing left, this file and the rest are not sent.
            self.summary.not_fetched += sends_from(items, file.at);
            let not_sent = "not sent: the server could not be reached";
            name_the_rest(items, file.at, self.format, FailReason::SessionLost, not_sent);
            self.finish();
            return fail(e);
        }
        let SoFar { size, sent, answer_awaited } = so_far;
        self.summary.received += sent;
        self.summary.not_fetched += sends_from(items, file.at + 1);
        let (result, message) = if answer_awaited {
            self.summary.unconfirmed += 1;
            let remote_shown = quote_path(Path::new(OsStr::from_bytes(remote)));
            let message = format!(
                "all {} sent; the server's answer did not come: {}; it may have stored it as {remote_shown}",
                common::byte_count(sent),
                lost_reason(e)
            );
            ("unconfirmed", message)
        } else {
            self.summary.failed += 1;
            ("failed", cut_off_message(size.map(|size| (sent, size)), e, "nothing kept"))
        };
        match self.format {
            Format::Text => say(format_args!("{}: {result}: {message}", quote_path(file.local))),
            Format::Json => {
                let why = Some(Why::Fail(FailReason::SessionLost));
                say(format_args!(
                    "{}",
                    json::upload_line(request, remote, result, sent, why, Some(&message))
                ));
            }
        }
        let not_sent = format!("not sent: {}", why_the_rest(e));
        name_the_rest(items, file.at + 1, self.format, FailReason::SessionLost, &not_sent);
        self.finish();
        fail_moving(e, Way::Upload)
    }
}

/// Sends each file, a line per file; 0 when every file was stored or
/// skipped, 1 when one was not, 2 for two files to one remote path, the
/// session's code when it was lost.
pub fn put(mut session: UploadSession, args: &Args, plan: UploadPlan) -> ExitCode {
    let started = Instant::now();
    for local in plan.repeated() {
        eprintln!("shm_client: warning: {} named more than once; sent once", show::message_path(local));
    }
    let if_exists = if args.no_clobber { PutIfExists::Skip } else { PutIfExists::Replace };
    let update = if args.update { Update::IfNewer } else { Update::Always };
    let times = if args.preserve { Times::Preserve } else { Times::Now };
    let options = PutOptions::new().if_exists(if_exists).update(update).times(times);
    let format = if args.json { Format::Json } else { Format::Text };
    let bar = Bar::new(!args.quiet && !args.json && std::io::stderr().is_terminal());
    let summary = Summary::default().of_uploads();
    let mut out = Printer { bar, format, quiet: args.quiet, summary, started };
    let items = plan.items();
    // Every entry, those a tree's walk left out too (as a fetch's `-r`
    // counts the entries its listing left out).
    out.summary.asked = items.len();
    out.bar.planned(plan.sends());
    out.bar.planned_sizes(&plan.planned_sizes());
    let mut all_sent = true;
    for (at, item) in items.iter().enumerate() {
        let UploadItem::Send(to_send) = item else {
            all_sent = false;
            out.not_sent(item);
            continue;
        };
        let file = Sent { at, local: &to_send.local, remote: &to_send.remote, in_tree: to_send.in_tree() };
        let mut sending = Sending { bar: &mut out.bar, so_far: SoFar::default() };
        let sent = plan.put_with(&mut session, to_send, &options, &mut sending);
        // Of a stored file, the bytes are what the server verified (not
        // what the walk saw, nor what `fstat` says of a file in /proc or
        // /sys); of one cut off, what left.
        let so_far = sending.so_far;
        match sent {
            Ok(outcome) => match out.answered(&file, outcome, &args.queue, items) {
                Ok(stored) => all_sent &= stored,
                Err(code) => return code,
            },
            Err(e @ Error::LocalFile { .. }) => {
                all_sent = false;
                out.local_failure(&file, &e);
            }
            Err(e) => return out.lost(&file, &e, so_far, items),
        }
    }
    out.finish();
    match session.close() {
        Ok(()) if all_sent => ExitCode::from(EXIT_OK),
        Ok(()) => ExitCode::from(EXIT_NOT_DELIVERED),
        Err(e) => fail_moving(&e, Way::Upload),
    }
}

/// A line (or a JSON object, skipped for `reason`) saying `not_sent` for
/// each file to send from item `from` on: the run ends, and none goes
/// unnamed.
fn name_the_rest(items: &[UploadItem], from: usize, format: Format, reason: FailReason, not_sent: &str) {
    for item in &items[from..] {
        if let UploadItem::Send(ToSend { local, remote, .. }) = item {
            match format {
                Format::Text => say(format_args!("{}: {not_sent}", quote_path(local))),
                Format::Json => {
                    let request = local.as_os_str().as_bytes();
                    let why = Some(Why::Fail(reason));
                    say(format_args!(
                        "{}",
                        json::upload_line(request, remote, "skipped", 0, why, Some(not_sent))
                    ));
                }
            }
        }
    }
}

/// The files to send from item `from` on.
fn sends_from(items: &[UploadItem], from: usize) -> usize {
    items[from..].iter().filter(|i| matches!(i, UploadItem::Send(_))).count()
}
