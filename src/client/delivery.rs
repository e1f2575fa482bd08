//! The requesting role's policy: how many requests to keep in flight,
//! whether what arrived is right (size and checksum), and where a verified
//! file goes: one delivery path for every output, whether a directory
//! ([`crate::fs::output`]), a writer or a reader.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::client::fetch::Client;
use crate::error::{Error, Result};
use crate::fs::output::{
    Clobber, Found, Kept, OutDir, OutputNames, OutputPath, Partial, Sink, Times, Update,
};
use crate::os::sys::IO_CHUNK;
use crate::protocol::Frame;
use crate::protocol::{GetCondition, ReasonCode, Reply, Stamp, StartFlags, MAX_PATH_LEN};
use crate::transfer::body::{read_body, Announced, Body, End, FromStart, Incoming, Mismatch, Report, Taking};
use crate::transfer::codes::io_reason;
use crate::transfer::outcome::{FailReason, FileResult, Outcome, SkipReason};

/// Requests a client keeps in flight: the server always has the next file
/// queued, and one client never fills the shared queue (10 messages).
pub(crate) const REQUEST_WINDOW: usize = 4;

/// Told about progress while files arrive; every method does nothing
/// unless implemented.
pub trait Progress {
    /// A run of `files` files starts (before the first [`Progress::start`]).
    fn planned(&mut self, _files: usize) {}
    /// The sizes of the run's files, one per file in the order of their
    /// results, where known before they start: a recursive fetch's and a
    /// pattern's matches, from the server's listing (`None` for a file
    /// named as it is); an upload's files, from its plan. Told once, after
    /// [`Progress::planned`].
    fn planned_sizes(&mut self, _sizes: &[Option<u64>]) {}
    /// A file of `size` bytes starts; `name` is its file name.
    fn start(&mut self, _name: &str, _size: u64) {}
    /// `bytes` more bytes arrived.
    fn advance(&mut self, _bytes: u64) {}
    /// The file that just started resumes a partial file an earlier run
    /// kept ([`Partial::Keep`]): its first `bytes` bytes were there already,
    /// and did not arrive in this run (told before the
    /// [`Progress::advance`] that counts them).
    fn resumed(&mut self, _bytes: u64) {}
    /// An upload's every byte and its end have left: the server's answer
    /// is awaited. A session lost from here on (interrupted, the server
    /// gone or stalled) leaves unknown whether the server stored the file:
    /// it may have, and nothing here can tell. Never told of a fetch.
    fn answer_awaited(&mut self) {}
    /// The file is done, for better or worse; its outcome is reported next.
    fn finish(&mut self) {}
    /// A file of a [`Client::fetch_files`] run has its outcome, in the order
    /// asked for.
    fn result(&mut self, _file: &FileResult) {}
    /// The partial file kept for `name` is not resumed: its source changed
    /// since (size or mtime); the file starts over.
    fn starting_over(&mut self, _name: &str) {}
    /// The partial file kept for `name` (`kept` bytes) is not resumed: it
    /// is longer than its source (`size` bytes), which did not change
    /// since; the file starts over.
    fn partial_longer(&mut self, _name: &str, _kept: u64, _size: u64) {}
    /// The file in progress was cut off and its first `bytes` bytes are
    /// kept for resuming ([`Partial::Keep`]).
    fn kept_partial(&mut self, _bytes: u64) {}
    /// The partial file kept for `name` was removed: the server no longer
    /// has its source.
    fn partial_removed(&mut self, _name: &str) {}
    /// The partial file of `name` is another client's, which is writing it
    /// (it holds its lock; [`Partial::Keep`]): the file comes whole, beside
    /// it, and nothing of it is kept if it is cut off. Told once, as the
    /// file starts.
    fn partial_busy(&mut self, _name: &str) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The file name a requested path is written under: its final component.
/// `None` for a path without a usable final component.
pub(crate) fn output_name(requested: &[u8]) -> Option<&[u8]> {
    let name = requested.rsplit(|&b| b == b'/').next()?;
    if matches!(name, b"" | b"." | b"..") {
        None
    } else {
        Some(name)
    }
}

/// Where and how [`Client::fetch_files`] writes the files: the output
/// directory (default `.`), whether an existing file is replaced, and what
/// name a file gets.
///
/// # Examples
///
/// ```
/// use shmxfer::{Clobber, FetchOptions, OutputNames};
///
/// let options = FetchOptions::new("/tmp/in").clobber(Clobber::Keep).names(OutputNames::Relative);
/// assert_eq!(options.out_dir, std::path::Path::new("/tmp/in"));
/// // Two paths with one file name are refused before any request.
/// assert!(FetchOptions::default().check(&["d1/x", "d2/x"]).is_err());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchOptions {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Whether an existing file is replaced.
    pub clobber: Clobber,
    /// What name a file gets below the output directory.
    pub names: OutputNames,
    /// Whether a cut-off file is kept for resuming, and resumed.
    pub partial: Partial,
    /// Which modification time a delivered file gets.
    pub times: Times,
    /// Whether a file with an up-to-date copy is fetched.
    pub update: Update,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions::new(".")
    }
}

impl FetchOptions {
    /// Options that write into `out_dir`, replacing existing files, each
    /// file under its last path component.
    pub fn new(out_dir: impl Into<PathBuf>) -> FetchOptions {
        FetchOptions {
            out_dir: out_dir.into(),
            clobber: Clobber::Replace,
            names: OutputNames::Basename,
            partial: Partial::Discard,
            times: Times::Now,
            update: Update::Always,
        }
    }

    /// Whether a cut-off file is kept for resuming, and resumed.
    #[must_use]
    pub fn partial(mut self, partial: Partial) -> FetchOptions {
        self.partial = partial;
        self
    }

    /// Which modification time a delivered file gets.
    #[must_use]
    pub fn times(mut self, times: Times) -> FetchOptions {
        self.times = times;
        self
    }

    /// Whether a file with an up-to-date copy is fetched.
    #[must_use]
    pub fn update(mut self, update: Update) -> FetchOptions {
        self.update = update;
        self
    }

    /// Whether an existing file is replaced.
    #[must_use]
    pub fn clobber(mut self, clobber: Clobber) -> FetchOptions {
        self.clobber = clobber;
        self
    }

    /// What name a file gets below the output directory.
    #[must_use]
    pub fn names(mut self, names: OutputNames) -> FetchOptions {
        self.names = names;
        self
    }

    /// Where the requested `path` is written, or why it cannot be.
    pub(crate) fn output_path(&self, path: &[u8]) -> std::result::Result<OutputPath, String> {
        OutputPath::for_request(path, self.names)
    }

    /// The name the user reads for the requested `path`: its final
    /// component, or kept whole its path below the output directory.
    pub(crate) fn shown_name(&self, path: &[u8]) -> PathBuf {
        match self.output_path(path) {
            Ok(out) if self.names == OutputNames::Relative => out.shown_path(),
            Ok(_) => PathBuf::from(OsStr::from_bytes(output_name(path).unwrap_or(path))),
            Err(_) => PathBuf::from(OsStr::from_bytes(path)),
        }
    }
}

/// One file to fetch: the path asked of the server, the name the user
/// reads (also its path below the output directory for a tree), where it
/// is written, or an outcome known before asking.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Normalized ([`crate::protocol::normalize_path`]); bytes, as a Unix
    /// name is.
    pub(crate) remote: Vec<u8>,
    /// The name given that asked for it, as given: the path, or the
    /// pattern or tree that matched it.
    pub(crate) named: Vec<u8>,
    pub(crate) shown: PathBuf,
    pub(crate) out: std::result::Result<OutputPath, String>,
    pub(crate) known: Option<Outcome>,
    /// Its size as the server's listing gave it (a tree's file, a
    /// pattern's match), for the run's progress; `None`: not known before
    /// it starts.
    pub(crate) size: Option<u64>,
}

impl Job {
    /// The path asked of the server, as a path.
    pub(crate) fn remote_path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(&self.remote))
    }
}

/// Why `job` gets no request at all, if it does not.
pub(super) fn refuse_locally(
    options: &FetchOptions,
    out_dir: &std::io::Result<OutDir>,
    job: &Job,
) -> Option<Outcome> {
    if let Some(known) = &job.known {
        return Some(known.clone());
    }
    let out = match &job.out {
        Ok(out) => out,
        Err(why) => return Some(Outcome::failed(FailReason::BadOutputName, why.clone())),
    };
    if let Some(too_long) = too_long(&job.remote) {
        return Some(too_long);
    }
    if let Ok(dir) = out_dir {
        if dir.is_directory(out) {
            // Found before any byte is asked for, not at the rename.
            let path = options.out_dir.join(out.shown_path());
            let text = format!("{} is a directory; no file can be written there", shown_path(&path));
            return Some(Outcome::failed(FailReason::WriteFailed, text));
        }
        match options.clobber {
            Clobber::Keep if dir.exists(out) => return Some(exists(&options.out_dir.join(out.shown_path()))),
            Clobber::Skip if dir.exists(out) => return Some(Outcome::Skipped { reason: SkipReason::Exists }),
            _ => {}
        }
    }
    None
}

/// How a file is asked for: from which byte, on what condition, and the
/// partial file it resumes.
pub(super) struct Asked {
    seq: u32,
    kept: Option<Kept>,
}

/// Asks for the file of `job` (to be written to `out`): from the end of
/// its kept partial file ([`Partial::Keep`]) if the source is still the
/// one it was cut from, or unless the copy there is up to date
/// ([`Update::IfNewer`]), or whole.
pub(super) fn ask(
    client: &mut Client,
    options: &FetchOptions,
    out_dir: &std::io::Result<OutDir>,
    job: &Job,
) -> Result<Asked> {
    let (Ok(dir), Ok(out)) = (out_dir, &job.out) else {
        return Ok(Asked { seq: client.request(&job.remote)?, kept: None });
    };
    if options.partial == Partial::Keep {
        match dir.kept(out) {
            Found::Kept(kept) => {
                let seq = client.request_from(&job.remote, kept.len, GetCondition::IfSame(kept.stamp))?;
                return Ok(Asked { seq, kept: Some(kept) });
            }
            // Not to be trusted: its names go, the file comes whole.
            Found::Unusable => dir.discard_kept(out),
            // Another client's live transfer: the file comes whole, and
            // that partial stays that client's.
            Found::Busy | Found::Nothing => {}
        }
    }
    // The copy's stamp is looked up only when it decides something.
    let copy = match options.update {
        Update::IfNewer => dir.stamp(out),
        Update::Always => None,
    };
    let condition = copy.map_or(GetCondition::Always, GetCondition::UnlessUpToDate);
    Ok(Asked { seq: client.request_from(&job.remote, 0, condition)?, kept: None })
}

pub(super) fn too_long(path: &[u8]) -> Option<Outcome> {
    (path.len() > MAX_PATH_LEN).then(|| {
        let len = path.len();
        Outcome::failed(
            FailReason::PathTooLong,
            format!("path is {len} bytes, at most {MAX_PATH_LEN} allowed"),
        )
    })
}

pub(super) fn exists(target: &Path) -> Outcome {
    Outcome::failed(FailReason::OutputExists, format!("{} exists; not replaced", shown_path(target)))
}

/// An output path as a file's outcome names it: quoted as every message
/// quotes a name (its name came from the server, or the user).
fn shown_path(path: &Path) -> std::borrow::Cow<'_, str> {
    crate::text::quote_bytes(path.as_os_str().as_bytes())
}

/// Fetches `jobs` in order into `options.out_dir` through `client`,
/// keeping [`REQUEST_WINDOW`] requests in flight; each result is pushed to
/// `results` and told to `progress` as soon as it is known. A session-level
/// failure (server gone, protocol error, interrupt) is an `Err` and leaves
/// no partial file.
pub(crate) fn fetch_jobs(
    client: &mut Client,
    jobs: &[Job],
    options: &FetchOptions,
    progress: &mut dyn Progress,
    results: &mut Vec<FileResult>,
) -> Result<()> {
    // Opened once: every file is created and named relative to it.
    let out_dir = OutDir::open(&options.out_dir);
    let mut known: Vec<Option<Outcome>> = jobs.iter().map(|j| refuse_locally(options, &out_dir, j)).collect();
    let todo: Vec<usize> = (0..jobs.len()).filter(|&i| known[i].is_none()).collect();
    let mut in_flight: VecDeque<Asked> = VecDeque::new();
    let mut next = 0;
    // One frame past IO_CHUNK: a frame always fits after what waits to be
    // written.
    let mut chunk = vec![0; IO_CHUNK + client.max_payload()];
    for (i, job) in jobs.iter().enumerate() {
        while in_flight.len() < REQUEST_WINDOW && next < todo.len() {
            in_flight.push_back(ask(client, options, &out_dir, &jobs[todo[next]])?);
            next += 1;
        }
        let (outcome, resumed_at) = match (known[i].take(), &job.out) {
            (Some(o), _) => (o, None),
            (None, Ok(out)) => {
                let asked = in_flight.pop_front().expect("a request is in flight for every file");
                receive(client, options, asked, &out_dir, out, progress, &mut chunk)?
            }
            (None, Err(_)) => unreachable!("refused by refuse_locally"),
        };
        progress.finish();
        results.push(FileResult { path: job.remote_path(), name: job.shown.clone(), outcome, resumed_at });
        progress.result(results.last().expect("just pushed"));
    }
    Ok(())
}

/// `e`, the error that cut a file off before its first frame, after
/// telling `progress` of the partial file it was to resume (`kept`),
/// untouched and kept for the next run.
fn kept_as_it_was(kept: Option<&Kept>, progress: &mut dyn Progress, e: Error) -> Error {
    if let Some(kept) = kept {
        progress.kept_partial(kept.len);
    }
    e
}

/// Receives the answer to request `asked` and, for a file, writes it to
/// `out` in `out_dir`: appended to its kept partial file when the server
/// resumes it, else from the start. The frames are read to the end
/// whatever happens locally. A session lost midway keeps what was written
/// as a partial file with [`Partial::Keep`], else nothing. A file delivered
/// after resuming comes with the length of the partial it resumed.
pub(super) fn receive(
    client: &mut Client,
    options: &FetchOptions,
    asked: Asked,
    out_dir: &std::io::Result<OutDir>,
    out: &OutputPath,
    progress: &mut dyn Progress,
    chunk: &mut [u8],
) -> Result<(Outcome, Option<u64>)> {
    let Asked { seq, mut kept } = asked;
    let start = match coming(client, seq, chunk, &mut kept, (out_dir, out), progress) {
        Ok(Ok(start)) => start,
        Ok(Err(outcome)) => return Ok((outcome, None)),
        // Cut off before its first frame: the partial it was to resume is
        // as it was, and the next run resumes it.
        Err(e) => return Err(kept_as_it_was(kept.as_ref(), progress, e)),
    };
    let size = Announced::of(start.size, start.flags);
    progress.start(&out.name().to_string_lossy(), size.told());
    let dir = options.out_dir.display();
    let mut hasher = Xxh3::new();
    // A local failure cancels the file: the server stops sending it, what
    // is in flight is read and dropped, and the session goes on with the
    // next one.
    let (mut sink, mut written) = open_sink(options, out_dir, out, kept, &start, progress, &mut hasher)?;
    if written > 0 {
        progress.resumed(written);
    }
    progress.advance(written);
    let resumed_at = written;
    let from_start = if sink.is_ok() {
        FromStart::Take
    } else {
        client.cancel_request(seq)?;
        FromStart::Drop
    };
    let mut write = |bytes: &[u8]| {
        if let Ok(s) = &mut sink {
            match s.write_all(bytes) {
                Ok(()) => written += bytes.len() as u64,
                Err(e) => {
                    let code = io_reason(&e).unwrap_or(ReasonCode::Other);
                    sink = Err(format!("writing into {dir}: {e}"));
                    return Taking::No(code);
                }
            }
        }
        Taking::Yes
    };
    let mut incoming = Incoming::new(seq, size, "server", resumed_at, hasher);
    let advance = &mut |n| progress.advance(n);
    let body = read_body(client, &mut incoming, chunk, from_start, &mut write, advance, Report::EachChunk);
    let received = match body {
        Err(e) => {
            keep_partial(options, sink, &start, written, progress);
            return Err(e);
        }
        Ok(Body::Ended { end, received, verdict }) => {
            if let Some(bad) = check(size, end, received, verdict, "") {
                return Ok((bad, None));
            }
            received
        }
        Ok(Body::GivenUp(code, why)) => {
            return Ok((Outcome::failed(code.into(), format!("server: {why}")), None))
        }
        Ok(Body::Dropped) => {
            let why = sink.err().unwrap_or_else(|| format!("writing into {dir}: the output stopped"));
            return Ok((Outcome::failed(FailReason::WriteFailed, why), None));
        }
    };
    let resumed = (resumed_at > 0).then_some(resumed_at);
    let outcome = match sink {
        Ok(sink) => deliver(options, sink, &start, out, received),
        Err(why) => Outcome::failed(FailReason::WriteFailed, why),
    };
    let resumed = resumed.filter(|_| outcome.is_delivered());
    Ok((outcome, resumed))
}

/// The `Start` of the answer to `seq`, or the outcome of a file that does
/// not come (its `kept` partial removed when its source is gone: it can
/// never be resumed) or is up to date.
fn coming(
    client: &mut Client,
    seq: u32,
    chunk: &mut [u8],
    kept: &mut Option<Kept>,
    (out_dir, out): (&std::io::Result<OutDir>, &OutputPath),
    progress: &mut dyn Progress,
) -> Result<std::result::Result<Started, Outcome>> {
    Ok(match read_start(client, seq, chunk)? {
        Ok(start) if start.flags.up_to_date() => Err(Outcome::Skipped { reason: SkipReason::UpToDate }),
        Ok(start) => Ok(start),
        Err(outcome) => {
            if let (Some(held), Outcome::NotFound, Ok(out_dir)) = (kept.take(), &outcome, out_dir) {
                // Its lock let go first: the names go under it again.
                drop(held);
                out_dir.discard_kept(out);
                progress.partial_removed(&out.shown_path().to_string_lossy());
            }
            Err(outcome)
        }
    })
}

/// Gives a verified file its name (and with `-p` its mtime first).
fn deliver(options: &FetchOptions, sink: Sink, start: &Started, out: &OutputPath, received: u64) -> Outcome {
    let dir = options.out_dir.display();
    if options.times == Times::Preserve {
        if let Err(e) = sink.set_mtime(start.mtime_ns) {
            return Outcome::failed(FailReason::WriteFailed, format!("setting the mtime in {dir}: {e}"));
        }
    }
    match sink.persist(options.clobber) {
        Ok(()) => Outcome::Delivered { bytes: received },
        Err(e) if options.clobber == Clobber::Skip && e.raw_os_error() == Some(libc::EEXIST) => {
            Outcome::Skipped { reason: SkipReason::Exists }
        }
        Err(e) => persist_failure(&e, &options.out_dir.join(out.shown_path())),
    }
}

/// The sink a file's bytes go to: its kept partial file when the server
/// resumes it (its bytes hashed again into `hasher`), else a new file (a
/// partial from its first byte with `-C`); or why it cannot be had, the
/// file then cancelled. With it, the bytes already there.
fn open_sink(
    options: &FetchOptions,
    out_dir: &std::io::Result<OutDir>,
    out: &OutputPath,
    kept: Option<Kept>,
    start: &Started,
    progress: &mut dyn Progress,
    hasher: &mut Xxh3,
) -> Result<(std::result::Result<Sink, String>, u64)> {
    let dir = options.out_dir.display();
    let mut written = 0u64;
    let sink = match (out_dir, kept, start.flags.from_offset()) {
        (_, None, true) => return Err(Error::Protocol("a file resumed that was asked for whole".into())),
        (Err(e), _, _) => Err(format!("output directory {dir}: {e}")),
        (Ok(out_dir), Some(mut kept), true) => {
            written = kept.len;
            match kept.read_through(&mut |bytes| hasher.update(bytes)) {
                Ok(()) => {
                    out_dir.resume(out, kept, start.mode).map_err(|e| format!("resuming in {dir}: {e}"))
                }
                Err(e) => Err(format!("reading the partial file in {dir}: {e}")),
            }
        }
        (Ok(out_dir), kept, false) => {
            if let Some(kept) = kept {
                // Not resumed: the source is another, or the partial is
                // longer than the very source it was cut from.
                let name = out.shown_path().to_string_lossy().into_owned();
                let source = Stamp { size: start.size, mtime_ns: start.mtime_ns };
                if kept.stamp == source && kept.len > start.size {
                    progress.partial_longer(&name, kept.len, start.size);
                } else {
                    progress.starting_over(&name);
                }
                // Its lock let go first: the names go under it again.
                drop(kept);
                out_dir.discard_kept(out);
            }
            // With --continue a file of known size has its partial name from
            // the first byte: even a SIGKILL leaves it to resume.
            // Where the partial's names cannot be had (another user's in a
            // shared directory, another client's live transfer, a name too
            // long for the prefix), the file still comes, keeping nothing
            // if it is cut off.
            let created = if options.partial == Partial::Keep && !start.flags.size_unknown() {
                let stamp = Stamp { size: start.size, mtime_ns: start.mtime_ns };
                out_dir.create_partial(out, start.mode, stamp).or_else(|e| {
                    if e.kind() == std::io::ErrorKind::ResourceBusy {
                        progress.partial_busy(&out.shown_path().to_string_lossy());
                    }
                    out_dir.create(out, start.mode)
                })
            } else {
                out_dir.create(out, start.mode)
            };
            created.map_err(|e| creation_failure(out_dir, &dir, &e))
        }
    };
    Ok((sink, written))
}

/// Why a file could not be created in `out_dir` (shown as `dir`), saying
/// what to do where the OS error alone does not.
pub(super) fn creation_failure(out_dir: &OutDir, dir: &dyn std::fmt::Display, e: &std::io::Error) -> String {
    if out_dir.is_removed() {
        // O_TMPFILE in a removed directory fails with EPERM or ENOENT.
        return format!("the output directory {dir} was removed while the client ran; create it again and fetch the file again");
    }
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => {
            format!("creating a file in {dir}: {e}; raise ulimit -n")
        }
        _ => format!("creating a file in {dir}: {e}"),
    }
}

/// Keeps what `sink` holds of a file cut off after `written` bytes, with
/// [`Partial::Keep`] and a file of known size; else it goes with the sink.
pub(super) fn keep_partial(
    options: &FetchOptions,
    sink: std::result::Result<Sink, String>,
    start: &Started,
    written: u64,
    progress: &mut dyn Progress,
) {
    let Ok(sink) = sink else { return };
    if options.partial != Partial::Keep || start.flags.size_unknown() || written == 0 {
        return;
    }
    if sink.keep_partial().is_ok() {
        progress.kept_partial(written);
    }
}

/// The outcome of a file whose size or checksum is wrong (`verdict`, on
/// the sender's `end` and the bytes `received`), `note` added to its text;
/// `None` when both are right.
pub(super) fn check(
    size: Announced,
    end: End,
    received: u64,
    verdict: std::result::Result<(), Mismatch>,
    note: &str,
) -> Option<Outcome> {
    match verdict {
        Ok(()) => None,
        Err(Mismatch::Size) => {
            let text =
                format!("size mismatch: announced {size}, sent {}, received {received}{note}", end.count);
            Some(Outcome::failed(FailReason::SizeMismatch, text))
        }
        Err(Mismatch::Checksum) => {
            Some(Outcome::failed(FailReason::ChecksumMismatch, format!("checksum mismatch (xxh3-64){note}")))
        }
    }
}

/// What a `Start` frame said.
pub(super) struct Started {
    pub(super) size: u64,
    pub(super) mode: u32,
    pub(super) flags: StartFlags,
    pub(super) mtime_ns: i64,
}

/// Reads the first frame of the answer to `seq`: what its `Start` frame
/// said, or the outcome of a file that does not come.
pub(super) fn read_start(
    client: &mut Client,
    seq: u32,
    buf: &mut [u8],
) -> Result<std::result::Result<Started, Outcome>> {
    Ok(match client.next_frame(seq, buf)? {
        Frame::Control(Reply::Start { size, mode, flags, mtime_ns }) => {
            Ok(Started { size, mode, flags, mtime_ns })
        }
        Frame::Control(Reply::NotFound) => Err(Outcome::NotFound),
        Frame::Control(Reply::Refused { code, reason }) => {
            Err(Outcome::Refused { reason: code.into(), text: reason })
        }
        Frame::Control(Reply::Error { code, reason }) => {
            Err(Outcome::failed(code.into(), format!("server: {reason}")))
        }
        other => return Err(Error::Protocol(format!("{other:?} where a file should start"))),
    })
}

/// The outcome of a file that could not be given its name.
pub(super) fn persist_failure(e: &Error, target: &Path) -> Outcome {
    if e.raw_os_error() == Some(libc::EEXIST) {
        exists(target)
    } else {
        Outcome::failed(FailReason::WriteFailed, e.with_causes())
    }
}

#[cfg(test)]
mod tests;
