//! `--put [-r] FILE… [--to DIR]`: sends local files (with `-r` directory
//! trees) to the server's `--accept` directory, a line per file (a JSON
//! object per file and a summary with `--json`), and maps the answers to
//! an exit code.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use crate::programs::MAX_PATH_LEN;
use crate::upload::{LocalSkipReason, LocalTree, PutIfExists, PutOptions};
use crate::{FailReason, Outcome, Progress, SkipReason, Summary, Times, Update, UploadSession};

use super::*;
use crate::cli::json::{self, Why};

/// Where a file of `rel` (its name, or its path in a tree) goes below the
/// server's `--accept` directory: below `to` when given.
fn below_to(rel: &[u8], to: Option<&str>) -> Vec<u8> {
    match to.map(|t| normalize_path(t.as_bytes())).filter(|d| d != b".") {
        Some(mut dir) => {
            dir.push(b'/');
            dir.extend_from_slice(rel);
            dir
        }
        None => rel.to_vec(),
    }
}

/// Where `local` goes below the server's `--accept` directory: its last
/// component, below `to` when given. `None` for a path without a file name.
fn remote_path(local: &Path, to: Option<&str>) -> Option<Vec<u8>> {
    Some(below_to(local.file_name()?.as_bytes(), to))
}

/// The name a tree keeps below `to` (`-r photos` → `photos/...`, as
/// `scp -r`): the directory's own name; for a path that has none (`.`,
/// `..`, `/`), the name it resolves to, else none (its contents go to
/// `to` itself).
fn tree_name(dir: &Path) -> Option<Vec<u8>> {
    match dir.file_name() {
        Some(name) => Some(name.as_bytes().to_vec()),
        None => std::fs::canonicalize(dir).ok()?.file_name().map(|n| n.as_bytes().to_vec()),
    }
}

/// Where a file to send comes from.
#[derive(Debug)]
enum Source {
    /// A path named on the command line.
    Named,
    /// File `file` of tree `tree` (an index into [`Plan::trees`]).
    InTree { tree: usize, file: usize },
}

/// One step of the run, in the order of the arguments.
#[derive(Debug)]
enum Item {
    /// A file to send: the local path shown, where it comes from, where it goes.
    Send { local: PathBuf, source: Source, remote: Vec<u8> },
    /// An argument that is not sent (no file name, a directory without
    /// `-r`, a tree that cannot be opened): its line says why.
    NotSent { local: PathBuf, remote: Vec<u8>, reason: FailReason, text: String },
    /// An entry of a tree that is not sent (a symlink, a FIFO, ...): named
    /// on stderr.
    Skipped { local: PathBuf, remote: Vec<u8>, reason: FailReason, text: String },
}

/// What the arguments ask for, checked before anything is sent.
#[derive(Debug)]
pub struct Plan {
    trees: Vec<LocalTree>,
    items: Vec<Item>,
    /// Files named more than once: sent once.
    twice: Vec<PathBuf>,
}

/// The reason code a skipped tree entry gets in `--json`.
fn skip_reason(reason: LocalSkipReason) -> FailReason {
    match reason {
        LocalSkipReason::Symlink | LocalSkipReason::NotRegular => FailReason::NotRegular,
        LocalSkipReason::TooDeep => FailReason::TooDeep,
        LocalSkipReason::OverLimit => FailReason::OverLimit,
        _ => FailReason::Unreadable,
    }
}

/// Plans the run: every file to send with its remote path, walking the
/// trees of `-r`; exits 2 when two different local files would go to one
/// remote path, naming both.
fn plan(files: &[PathBuf], to: Option<&str>, name: Option<&Path>, recursive: bool) -> Result<Plan, ExitCode> {
    let mut plan = Plan { trees: Vec::new(), items: Vec::new(), twice: Vec::new() };
    // Where a named file goes: under its own name, or the one `-O` gives.
    let remote_path = |local: &Path, to: Option<&str>| match name {
        Some(name) => Some(below_to(&normalize_path(name.as_os_str().as_bytes()), to)),
        None => remote_path(local, to),
    };
    for local in files {
        let meta = std::fs::metadata(local);
        if let Err(e) = &meta {
            // Not there (or not reachable): said so, and no party to a
            // clash of remote paths.
            if e.kind() == std::io::ErrorKind::NotFound {
                let shown = local.display().to_string();
                let e = Error::LocalFile {
                    op: "open",
                    path: shown,
                    source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::ENOENT)),
                };
                plan.items.push(Item::NotSent {
                    local: local.clone(),
                    remote: remote_path(local, to).unwrap_or_default(),
                    reason: FailReason::Unreadable,
                    text: describe(&e),
                });
                continue;
            }
        }
        let is_dir = meta.is_ok_and(|m| m.is_dir());
        if is_dir && recursive {
            let base = match (tree_name(local), to) {
                (Some(name), _) => below_to(&name, to),
                (None, Some(to)) => {
                    Some(normalize_path(to.as_bytes())).filter(|d| d != b".").unwrap_or_default()
                }
                (None, None) => Vec::new(),
            };
            let tree = match LocalTree::walk(local) {
                Ok(tree) => tree,
                Err(e) => {
                    let text = describe(&e);
                    plan.items.push(Item::NotSent {
                        local: local.clone(),
                        remote: base,
                        reason: FailReason::Unreadable,
                        text,
                    });
                    continue;
                }
            };
            let index = plan.trees.len();
            let join =
                |rel: &[u8]| if rel.is_empty() { local.clone() } else { local.join(OsStr::from_bytes(rel)) };
            let below = |rel: &[u8]| match (base.is_empty(), rel.is_empty()) {
                (true, _) => rel.to_vec(),
                (false, true) => base.clone(),
                (false, false) => [&base[..], b"/", rel].concat(),
            };
            for skip in &tree.skipped {
                plan.items.push(Item::Skipped {
                    local: join(&skip.path),
                    remote: below(&skip.path),
                    reason: skip_reason(skip.reason),
                    text: skip.text.clone(),
                });
            }
            for (i, file) in tree.files.iter().enumerate() {
                let remote = below(&file.path);
                let source = Source::InTree { tree: index, file: i };
                plan.items.push(Item::Send { local: join(&file.path), source, remote });
            }
            plan.trees.push(tree);
        } else if is_dir {
            plan.items.push(Item::NotSent {
                local: local.clone(),
                remote: remote_path(local, to).unwrap_or_default(),
                reason: FailReason::IsDirectory,
                text: "a directory; use -r to send it with what lies below it".into(),
            });
        } else {
            match remote_path(local, to) {
                Some(remote) => {
                    plan.items.push(Item::Send { local: local.clone(), source: Source::Named, remote })
                }
                None => plan.items.push(Item::NotSent {
                    local: local.clone(),
                    remote: Vec::new(),
                    reason: FailReason::BadOutputName,
                    text: "no file name in this path".into(),
                }),
            }
        }
    }
    refuse_long_paths(&mut plan);
    check_collisions(&mut plan)?;
    Ok(plan)
}

/// A file whose path below the `--accept` directory is longer than a `Put`
/// carries is not sent: a tree's entry is skipped, a named file not sent,
/// each saying why, and the run goes on with the next.
fn refuse_long_paths(plan: &mut Plan) {
    for item in &mut plan.items {
        let Item::Send { local, source, remote } = item else { continue };
        if remote.len() <= MAX_PATH_LEN {
            continue;
        }
        let text = format!(
            "its path on the server is {} bytes, longer than the {MAX_PATH_LEN} a request carries",
            remote.len()
        );
        let (local, remote, reason) =
            (std::mem::take(local), std::mem::take(remote), FailReason::PathTooLong);
        *item = match source {
            Source::InTree { .. } => Item::Skipped { local, remote, reason, text },
            Source::Named => Item::NotSent { local, remote, reason, text },
        };
    }
}

/// Passes progress on to the bar and keeps the size of the file as it was
/// opened for sending and the bytes sent so far (what the line of a
/// stored file and of one cut off report).
struct Sending<'a> {
    bar: &'a mut Bar,
    size: Option<u64>,
    sent: u64,
}

impl Progress for Sending<'_> {
    fn start(&mut self, name: &str, size: u64) {
        self.size = Some(size);
        self.bar.start(name, size);
    }

    fn advance(&mut self, bytes: u64) {
        self.sent += bytes;
        self.bar.advance(bytes);
    }

    fn finish(&mut self) {
        self.bar.finish();
    }
}

/// No two different local files to one remote path; a file named twice is
/// sent once ([`Plan::twice`] names it).
fn check_collisions(plan: &mut Plan) -> Result<(), ExitCode> {
    let mut seen: HashMap<Vec<u8>, PathBuf> = HashMap::new();
    let mut twice = Vec::new();
    for (i, item) in plan.items.iter().enumerate() {
        let Item::Send { local, remote, .. } = item else { continue };
        match seen.get(remote) {
            Some(first) if first == local => twice.push(i),
            Some(first) => {
                let output = quote_path(Path::new(OsStr::from_bytes(remote))).into_owned();
                return Err(exit_with(
                    EXIT_USAGE,
                    &format!(
                        "{} and {} would both be sent to {output}; send them in two runs or with --to",
                        quote_path(first),
                        quote_path(local)
                    ),
                ));
            }
            None => {
                seen.insert(remote.clone(), local.clone());
            }
        }
    }
    for i in twice.into_iter().rev() {
        if let Item::Send { local, .. } = plan.items.remove(i) {
            plan.twice.insert(0, local);
        }
    }
    Ok(())
}

/// Before any request: the run, planned once (trees walked, long paths
/// and missing files noted), or the exit code of two files to one remote
/// path.
pub fn plan_run(
    args: &Args,
    files: &[PathBuf],
    to: Option<&str>,
    name: Option<&Path>,
) -> Result<Plan, ExitCode> {
    plan(files, to, name, args.recursive)
}

/// How the run prints: a line for people or a JSON object per file.
struct Printer {
    bar: Bar,
    format: Format,
    quiet: bool,
    summary: Summary,
    started: Instant,
}

/// The file being sent: item `at` of the plan, its local path and where it
/// goes.
struct Sent<'a> {
    at: usize,
    local: &'a Path,
    remote: &'a [u8],
}

impl Sent<'_> {
    /// The local path as asked for, as bytes (JSON's `request`).
    fn request(&self) -> &[u8] {
        self.local.as_os_str().as_bytes()
    }
}

impl Printer {
    /// One file's result: the text line `text` (`None`: none, as for a
    /// success under `--quiet`) or its JSON object.
    fn line(&mut self, text: Option<String>, object: impl FnOnce() -> String) {
        self.bar.file_done();
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
    fn not_sent(&mut self, item: &Item) {
        match item {
            Item::Send { .. } => {}
            Item::NotSent { local, remote, reason, text } => {
                self.summary.failed += 1;
                let line = format!("{}: not sent: {text}", quote_path(local));
                self.line(Some(line), || {
                    let request = local.as_os_str().as_bytes();
                    json::upload_line(request, remote, "failed", 0, Some(Why::Fail(*reason)), Some(text))
                });
            }
            Item::Skipped { local, remote, reason, text } => {
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
        items: &[Item],
    ) -> Result<bool, ExitCode> {
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
    fn not_accepting(&mut self, file: &Sent<'_>, queue: &str, items: &[Item]) -> ExitCode {
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
        exit_with(EXIT_NOT_DELIVERED, &format!("{}: {text}", quote_path(file.local)))
    }

    /// The local file could not be sent (not there, not a regular file,
    /// unreadable): a named file failed, a tree's file is skipped as the
    /// walk's entries are.
    fn local_failure(&mut self, file: &Sent<'_>, source: &Source, e: &Error) {
        let (request, remote) = (file.request(), file.remote);
        let text = describe(e);
        let reason = match e {
            Error::LocalFile { source, .. } if source.raw_os_error() == Some(libc::EISDIR) => {
                FailReason::IsDirectory
            }
            _ => FailReason::Unreadable,
        };
        match source {
            Source::InTree { .. } => {
                self.summary.left_out += 1;
                self.bar.file_done();
                self.bar.suspend(|| say_skipped(file.local, &text));
                if self.format == Format::Json {
                    let why = Some(Why::Fail(reason));
                    say(format_args!(
                        "{}",
                        json::upload_line(request, remote, "skipped", 0, why, Some(&text))
                    ));
                }
            }
            Source::Named => {
                self.summary.failed += 1;
                self.line(Some(format!("{}: not sent: {text}", quote_path(file.local))), || {
                    json::upload_line(request, remote, "failed", 0, Some(Why::Fail(reason)), Some(&text))
                });
            }
        }
    }

    /// The session ended inside the file (`sending`: what `fstat` gave and
    /// what left): a line for the file cut off and for each one not sent,
    /// as a fetch prints them, the summary, and the session's exit code.
    fn lost(&mut self, file: &Sent<'_>, e: &Error, sending: (Option<u64>, u64), items: &[Item]) -> ExitCode {
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
        let (size, so_far) = sending;
        self.summary.failed += 1;
        self.summary.not_fetched += sends_from(items, file.at + 1);
        let cut = size.map(|size| format!("cut off after {} of {}: ", human_size(so_far), human_size(size)));
        let message = format!("{}{}; nothing kept", cut.unwrap_or_default(), lost_reason(e));
        match self.format {
            Format::Text => say(format_args!("{}: failed: {message}", quote_path(file.local))),
            Format::Json => {
                let why = Some(Why::Fail(FailReason::SessionLost));
                say(format_args!(
                    "{}",
                    json::upload_line(request, remote, "failed", so_far, why, Some(&message))
                ));
            }
        }
        let rest = if matches!(e, Error::Cancelled) { "interrupted" } else { "session lost" };
        let not_sent = format!("not sent: {rest}");
        name_the_rest(items, file.at + 1, self.format, FailReason::SessionLost, &not_sent);
        self.finish();
        fail(e)
    }
}

/// Sends each file, a line per file; 0 when every file was stored or
/// skipped, 1 when one was not, 2 for two files to one remote path, the
/// session's code when it was lost.
pub fn put(mut session: UploadSession, args: &Args, plan: Plan) -> ExitCode {
    let started = Instant::now();
    for local in &plan.twice {
        eprintln!("shm_client: warning: {} named more than once; sent once", quote_path(local));
    }
    let if_exists = if args.no_clobber { PutIfExists::Skip } else { PutIfExists::Replace };
    let update = if args.update { Update::IfNewer } else { Update::Always };
    let times = if args.preserve { Times::Preserve } else { Times::Now };
    let options = PutOptions::new().if_exists(if_exists).update(update).times(times);
    let format = if args.json { Format::Json } else { Format::Text };
    let bar = Bar::new(!args.quiet && !args.json && std::io::stderr().is_terminal());
    let summary = Summary::default().of_uploads();
    let mut out = Printer { bar, format, quiet: args.quiet, summary, started };
    let sends = plan.items.iter().filter(|i| matches!(i, Item::Send { .. })).count();
    // Every entry, those a tree's walk left out too (as a fetch's `-r`
    // counts the entries its listing left out).
    out.summary.asked = plan.items.len();
    out.bar.planned(sends);
    let mut all_sent = true;
    for (at, item) in plan.items.iter().enumerate() {
        let Item::Send { local, source, remote } = item else {
            all_sent = false;
            out.not_sent(item);
            continue;
        };
        let file = Sent { at, local, remote };
        let mut sending = Sending { bar: &mut out.bar, size: None, sent: 0 };
        let sent = match source {
            Source::Named => session.put_file_with(local, remote, &options, &mut sending),
            Source::InTree { tree, file } => {
                let tree = &plan.trees[*tree];
                session.put_tree_file_with(tree, &tree.files[*file], remote, &options, &mut sending)
            }
        };
        // The size `fstat` gave when the file was opened, and the bytes that
        // left: of a stored file, what the server verified (not what the
        // walk saw, nor what `fstat` says of a file in /proc or /sys).
        let sending = (sending.size, sending.sent);
        match sent {
            Ok(outcome) => match out.answered(&file, outcome, &args.queue, &plan.items) {
                Ok(stored) => all_sent &= stored,
                Err(code) => return code,
            },
            Err(e @ Error::LocalFile { .. }) => {
                all_sent = false;
                out.local_failure(&file, source, &e);
            }
            Err(e) => return out.lost(&file, &e, sending, &plan.items),
        }
    }
    out.finish();
    match session.close() {
        Ok(()) if all_sent => ExitCode::from(EXIT_OK),
        Ok(()) => ExitCode::from(EXIT_NOT_DELIVERED),
        Err(e) => fail(&e),
    }
}

/// A line (or a JSON object, skipped for `reason`) saying `not_sent` for
/// each file to send from item `from` on: the run ends, and none goes
/// unnamed.
fn name_the_rest(items: &[Item], from: usize, format: Format, reason: FailReason, not_sent: &str) {
    for item in &items[from..] {
        if let Item::Send { local, remote, .. } = item {
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
fn sends_from(items: &[Item], from: usize) -> usize {
    items[from..].iter().filter(|i| matches!(i, Item::Send { .. })).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_keep_the_name_below_to() {
        assert_eq!(remote_path(Path::new("a/b.txt"), None).unwrap(), b"b.txt");
        assert_eq!(remote_path(Path::new("b.txt"), Some("in//x/")).unwrap(), b"in/x/b.txt");
        assert_eq!(remote_path(Path::new("b.txt"), Some(".")).unwrap(), b"b.txt");
        assert_eq!(tree_name(Path::new("photos/")).unwrap(), b"photos");
        assert_eq!(below_to(b"photos", Some("in")), b"in/photos");
    }
}
