//! The client's side of an upload: one local file sent to the server's
//! `--accept` directory through an [`UploadSession`] (a session of
//! [`SessionKind::Upload`], whose ring runs from the client to the server).
//! The file is announced on the queue ([`Command::Put`]: its path and
//! [`PutFlags`]), and sent by the sender a fetch's server uses
//! ([`send_source`]): a `Start` frame with its size (or that its size is
//! unknown: procfs, sysfs), mode and mtime, its bytes, and its count and
//! xxh3 (or, when the file changed while it was read or a read failed, an
//! `Error` frame: the server keeps nothing of it). The server answers in
//! the region's header; the client stops sending as soon as an answer
//! shows (a refusal), and waits for it after the end, checking the
//! server's liveness and the cancel flag, within the stall timeout. What
//! the server answered is returned as a fetch's result is, an [`Outcome`].

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::stat::FileStat;

use crate::choices::{Times, Update};
use crate::client::config::ClientConfig;
use crate::client::delivery::{NoProgress, Progress};
use crate::client::fetch::Client;
use crate::client::link::Remote;
use crate::client::session::Session;
use crate::error::{Error, Result};
use crate::fs::source::{FileKind, OpenFailure, Root};
use crate::fs::walk::{Limits, SkipReason as WalkSkip, Visit, Walk};
use crate::os::sys::IO_CHUNK;
use crate::protocol::{AsRemotePath, Command, PutFlags, PutIfExists, ReasonCode, SessionKind, UploadAnswer};
use crate::shm_region::ring::{Producer, WAIT_SLICE};
use crate::transfer::codes::os_error;
use crate::transfer::outcome::{FailReason, Outcome, SkipReason};
use crate::transfer::send_file::{send_source, Ask, Sent, Source};
use crate::transfer::Meter;

/// How long the client sleeps between looks at the answer word.
const ANSWER_POLL: Duration = Duration::from_micros(200);

/// How far [`LocalTree::walk`] goes: what lies deeper, or past the file
/// limit, is skipped, entry by entry.
const TREE_LIMITS: Limits = Limits { max_depth: 64, max_files: 1_000_000 };

/// A local directory to upload (`shm_client --put -r`), walked before a
/// byte is sent: its regular files, and every entry that is not sent with
/// the reason. The walk descends through directory descriptors only and
/// follows no symlink below the directory; a file is opened through the
/// same descriptors when it is sent ([`UploadSession::put_tree_file_with`]).
#[derive(Debug)]
pub struct LocalTree {
    root: Root,
    /// The regular files below the directory, sorted by path.
    pub files: Vec<LocalFile>,
    /// What is not sent (symlinks, FIFOs, devices, sockets, unreadable
    /// directories, what lies too deep), sorted by path.
    pub skipped: Vec<LocalSkip>,
}

/// A regular file of a [`LocalTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Its path below the tree's directory (`/` between components; bytes,
    /// as a Unix name is).
    pub path: Vec<u8>,
    /// Its size when the tree was walked.
    pub size: u64,
}

/// Why an entry of a [`LocalTree`] is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalSkipReason {
    /// A symbolic link: never followed.
    Symlink,
    /// A FIFO, a device, a socket: not a regular file.
    NotRegular,
    /// It could not be examined, opened or read (the `errno`).
    Unreadable(i32),
    /// A directory deeper than the walk descends.
    TooDeep,
    /// Past the walk's file limit.
    OverLimit,
}

/// An entry of a [`LocalTree`] that is not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSkip {
    /// Its path below the tree's directory (empty: the directory itself).
    pub path: Vec<u8>,
    /// Why it is not sent.
    pub reason: LocalSkipReason,
    /// The reason in a few words (`a symbolic link; not followed`).
    pub text: String,
}

impl LocalTree {
    /// Walks the directory `dir` (a symlink to one is followed: it was
    /// named) and everything below it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] or [`Error::LocalFile`] when `dir` cannot be opened as
    /// a directory.
    pub fn walk(dir: impl AsRef<Path>) -> Result<LocalTree> {
        let dir = dir.as_ref();
        let root = Root::open(dir)?;
        let walk = Walk::new(&root, b"", TREE_LIMITS)
            .map_err(|failure| Error::local("open", &dir.display().to_string(), os_error(&failure)))?;
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        for visit in walk {
            match visit {
                Visit::File(entry) => files.push(LocalFile { path: entry.path, size: entry.size }),
                Visit::Skipped(skip) => {
                    let (reason, text) = match skip.reason {
                        WalkSkip::NotRegular(crate::fs::source::FileKind::Symlink) => {
                            (LocalSkipReason::Symlink, "a symbolic link; not followed".to_owned())
                        }
                        WalkSkip::NotRegular(kind) => {
                            (LocalSkipReason::NotRegular, format!("{}, not a regular file", kind.text()))
                        }
                        WalkSkip::Unreadable(e) => (
                            LocalSkipReason::Unreadable(e as i32),
                            format!("unreadable: {}", io::Error::from_raw_os_error(e as i32)),
                        ),
                        WalkSkip::TooDeep => (
                            LocalSkipReason::TooDeep,
                            format!("deeper than {} directory levels", TREE_LIMITS.max_depth),
                        ),
                        WalkSkip::OverLimit => {
                            (LocalSkipReason::OverLimit, format!("past {} files", TREE_LIMITS.max_files))
                        }
                    };
                    skipped.push(LocalSkip { path: skip.path, reason, text });
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(LocalTree { root, files, skipped })
    }
}

/// How [`UploadSession::put_file_with`] sends a file: whether a file of its
/// name on the server is replaced, whether one that is up to date is kept,
/// and which modification time the stored file gets (the flags of a fetch
/// with the same names: `--no-clobber`, `--update`, `--preserve`).
///
/// # Examples
///
/// ```
/// use shmxfer::upload::{PutIfExists, PutOptions};
/// use shmxfer::{Times, Update};
///
/// let options = PutOptions::new().update(Update::IfNewer).times(Times::Preserve);
/// assert_eq!(options.if_exists, PutIfExists::Replace);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// Whether a file of its name on the server is replaced.
    pub if_exists: PutIfExists,
    /// Whether a file there with the source's size, not older than it, is
    /// kept ([`SkipReason::UpToDate`]).
    pub update: Update,
    /// Which modification time the stored file gets.
    pub times: Times,
}

impl PutOptions {
    /// Replace, always, the time it is written: the defaults.
    pub fn new() -> PutOptions {
        PutOptions::default()
    }

    /// Whether a file of its name on the server is replaced.
    #[must_use]
    pub fn if_exists(mut self, if_exists: PutIfExists) -> PutOptions {
        self.if_exists = if_exists;
        self
    }

    /// Whether a file there that is up to date is kept.
    #[must_use]
    pub fn update(mut self, update: Update) -> PutOptions {
        self.update = update;
        self
    }

    /// Which modification time the stored file gets.
    #[must_use]
    pub fn times(mut self, times: Times) -> PutOptions {
        self.times = times;
        self
    }

    /// The flags of the `Put`.
    fn flags(&self) -> PutFlags {
        let update = match self.update {
            Update::Always => PutFlags::NONE,
            Update::IfNewer => PutFlags::UNLESS_UP_TO_DATE,
        };
        let times = match self.times {
            Times::Now => PutFlags::NONE,
            Times::Preserve => PutFlags::KEEP_MTIME,
        };
        PutFlags::from(self.if_exists).with(update).with(times)
    }
}

/// The caller's progress, told how an uploaded file leaves (under its
/// local `name`), and the bytes that left: the sender tells of each frame,
/// the progress hears of them in [`IO_CHUNK`] steps (and at the end), as a
/// fetch's does.
struct Told<'a> {
    progress: std::cell::RefCell<&'a mut dyn Progress>,
    name: &'a str,
    moved: std::cell::Cell<u64>,
    /// Bytes moved that the progress has not heard of yet.
    untold: std::cell::Cell<u64>,
}

impl Told<'_> {
    fn tell(&self) {
        let n = self.untold.take();
        if n > 0 {
            self.progress.borrow_mut().advance(n);
        }
    }

    /// Every byte and the end left: from here on, a session lost leaves
    /// the server's answer unknown ([`Progress::answer_awaited`]).
    fn answer_awaited(&self) {
        self.tell();
        self.progress.borrow_mut().answer_awaited();
    }
}

impl Meter for Told<'_> {
    fn begin(&self, _path: &str, size: u64) {
        self.moved.set(0);
        self.untold.set(0);
        self.progress.borrow_mut().start(self.name, size);
    }

    fn advance(&self, n: u64) {
        self.moved.set(self.moved.get() + n);
        self.untold.set(self.untold.get() + n);
        if self.untold.get() >= IO_CHUNK as u64 {
            self.tell();
        }
    }

    fn end(&self) -> u64 {
        self.tell();
        self.progress.borrow_mut().finish();
        self.moved.take()
    }
}

/// The words of a refusal or a failure the server answered with `code`
/// (its answer carries only the code): a wording per code, no default.
fn answer_text(code: ReasonCode) -> &'static str {
    match code {
        // The path leads out (`..`, absolute), or a directory of it is a
        // symlink or not a directory on the server: the server follows none.
        ReasonCode::OutsideRoot => {
            "it would be written outside the server's --accept directory, or a directory of its \
             path is a symlink or not a directory there; not followed"
        }
        ReasonCode::InvalidPath => "not a path of plain names below the server's --accept directory",
        ReasonCode::IsDirectory => "a directory has that name on the server",
        ReasonCode::OutOfResources => "the server ran out of room (disk full?); nothing was kept",
        ReasonCode::PermissionDenied => "the server may not write there",
        ReasonCode::NameTooLong => "a name too long for the server's file system",
        ReasonCode::Changed => "the file changed while it was sent; nothing was kept",
        ReasonCode::ReadFailed => "reading the file failed; nothing was kept",
        ReasonCode::TooLarge => {
            "more bytes than announced (or than the 64 MiB of a file of unknown size); nothing was kept"
        }
        ReasonCode::NotRegular | ReasonCode::WrongSession | ReasonCode::Cancelled | ReasonCode::Other => {
            "it failed on the server; nothing was kept"
        }
    }
}

/// What the server's `answer` to an upload of which `bytes` left means,
/// as a fetch's result says it: stored (the bytes the server verified),
/// skipped by choice, refused or failed with the reason and its words. A
/// server that takes no uploads refused it as the wrong kind of session
/// ([`FailReason::WrongSession`]).
fn outcome(answer: UploadAnswer, bytes: u64) -> Outcome {
    match answer {
        UploadAnswer::Stored => Outcome::Delivered { bytes },
        UploadAnswer::Skipped => Outcome::Skipped { reason: SkipReason::Exists },
        UploadAnswer::UpToDate => Outcome::Skipped { reason: SkipReason::UpToDate },
        UploadAnswer::NotAccepting => {
            Outcome::Refused { reason: FailReason::WrongSession, text: NOT_ACCEPTING.to_owned() }
        }
        UploadAnswer::Refused(code) => {
            Outcome::Refused { reason: code.into(), text: answer_text(code).into() }
        }
        UploadAnswer::Failed(code) => Outcome::Failed { reason: code.into(), text: answer_text(code).into() },
    }
}

/// The words of [`UploadAnswer::NotAccepting`].
pub(crate) const NOT_ACCEPTING: &str = "the server takes no uploads (it was started without --accept)";

/// A session that sends files to the server's `--accept` directory
/// ([`UploadSession::put_file`]): [`UploadSession::connect`] (or
/// [`Client::connect_for_uploads`]) opens it, [`UploadSession::close`] (or
/// dropping it) ends it. It fetches nothing: that is a [`Client`]'s.
///
/// # Examples
///
/// ```
/// use shmxfer::upload::PutIfExists;
/// use shmxfer::{ClientConfig, Outcome, Server, UploadSession};
///
/// # fn main() -> Result<(), shmxfer::Error> {
/// let (root, inbox, here) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
/// let queue = format!("/shmxfer_doc_upload_{}", std::process::id());
/// let server = Server::builder().queue(&queue).root(root.path()).accept(Some(inbox.path().into())).persistent().bind()?;
/// let serving = std::thread::spawn(move || server.run(Default::default()));
/// let local = here.path().join("report.txt");
/// std::fs::write(&local, b"all well\n").unwrap();
///
/// let mut session = UploadSession::connect(&ClientConfig::new(&queue))?;
/// let stored = session.put_file(&local, "report.txt", PutIfExists::Replace)?;
/// assert_eq!(stored, Outcome::Delivered { bytes: 9 });
/// // A refusal is an error for `?`: the path leads outside the directory.
/// let refused = session.put_file(&local, "../escape.txt", PutIfExists::Replace)?;
/// assert!(refused.into_result("../escape.txt").is_err());
/// session.close()?;
/// assert_eq!(std::fs::read(inbox.path().join("report.txt")).unwrap(), b"all well\n");
/// shmxfer::stop_server(&ClientConfig::new(&queue), shmxfer::StopKind::Now)?;
/// serving.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
pub struct UploadSession {
    session: Session<Producer>,
}

impl std::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("UploadSession");
        self.session.describe(&mut f);
        f.finish()
    }
}

impl UploadSession {
    /// As [`Client::connect`], for a session that sends files to the
    /// server ([`UploadSession::put_file`]); the server takes it only when
    /// it was started with `--accept` (else each file is refused with
    /// [`FailReason::WrongSession`]).
    ///
    /// # Errors
    ///
    /// As [`Client::connect`]; [`Error::Busy`] or [`Error::Stopping`] when
    /// the server turned the session away.
    pub fn connect(config: &ClientConfig) -> Result<UploadSession> {
        Ok(UploadSession { session: Session::open_upload(config)? })
    }

    /// As [`Client::connect_remote`], for an upload session with the server
    /// on the host `remote` names (its relay runs as
    /// `shm_client --relay=upload`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use shmxfer::remote::Remote;
    /// use shmxfer::upload::PutIfExists;
    /// use shmxfer::{ClientConfig, UploadSession};
    ///
    /// let remote = Remote::new("build@farm7");
    /// let mut session = UploadSession::connect_remote(&ClientConfig::from_env(), &remote)?;
    /// let outcome = session.put_file("report.txt", "inbox/report.txt", PutIfExists::Skip)?;
    /// assert!(outcome.is_success(), "stored, or skipped: it exists there");
    /// session.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::connect_remote`].
    pub fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<UploadSession> {
        Ok(UploadSession { session: Session::open_remote(config, remote, SessionKind::Upload)? })
    }

    /// Sends the regular file `local` to the server, to be written at
    /// `remote` below its `--accept` directory (a relative path of plain
    /// components, any [`AsRemotePath`]: text, a path, bytes; the server
    /// refuses any other), replacing a file there
    /// unless `if_exists` is [`PutIfExists::Skip`]. The server names the
    /// file only once its size and xxh3 match what was sent; what became
    /// of it is returned as a fetch's is: [`Outcome::Delivered`] with the
    /// bytes the server verified, [`Outcome::Skipped`], or
    /// [`Outcome::Refused`] or [`Outcome::Failed`] with the reason, which
    /// [`Outcome::into_result`] turns into an error naming `remote`.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::upload::PutIfExists;
    /// use shmxfer::{ClientConfig, Outcome, Server, UploadSession};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// # let root = tempfile::tempdir().unwrap();
    /// # let inbox = tempfile::tempdir().unwrap();
    /// # let here = tempfile::tempdir().unwrap();
    /// # std::env::set_current_dir(here.path()).unwrap();
    /// # std::fs::write("report.txt", b"all well\n").unwrap();
    /// # let queue = format!("/shmxfer_doctest_put_{}", std::process::id());
    /// # let server = Server::builder()
    /// #     .queue(&queue)
    /// #     .root(root.path())
    /// #     .accept(Some(inbox.path().to_owned()))
    /// #     .stall_timeout(None)
    /// #     .bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    /// // A server started with `--accept DIR` on `queue`:
    /// let mut session = UploadSession::connect(&ClientConfig::new(&queue))?;
    /// let outcome = session.put_file("report.txt", "in/report.txt", PutIfExists::Replace)?;
    /// assert_eq!(outcome, Outcome::Delivered { bytes: 9 });
    /// // A refusal is an error for `?` once turned into a result, naming the path.
    /// let refused = session.put_file("report.txt", "../out.txt", PutIfExists::Replace)?;
    /// let error = refused.into_result("../out.txt").unwrap_err();
    /// assert!(error.to_string().starts_with("refused by server: ../out.txt: it would be written outside"));
    /// // So is a name that is no path at all, refused without asking.
    /// let nameless = session.put_file("report.txt", "", PutIfExists::Replace)?;
    /// assert_eq!(nameless.reason(), Some(shmxfer::FailReason::InvalidPath));
    /// session.close()?;
    /// # serving.join().unwrap()?;
    /// # assert_eq!(std::fs::read(inbox.path().join("in/report.txt")).unwrap(), b"all well\n");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The file is `fstat`ed before and after it is read: when its size,
    /// modification or status-change time moved meanwhile (another process
    /// wrote it, truncated it), the server is told to keep nothing and
    /// the upload [`Outcome::Failed`] with [`FailReason::Changed`].
    ///
    /// # Errors
    ///
    /// [`Error::LocalFile`] for the local file (`EISDIR`/`EINVAL` when it is not a
    /// regular file; `read` when a read failed: the server kept nothing),
    /// [`Error::Encode`] for a `remote` holding a NUL or longer than a
    /// request carries (1024 bytes),
    /// [`Error::Protocol`] for an answer word no server writes, and the
    /// ring's and the queue's errors: [`Error::PeerGone`] when the server
    /// dies, [`Error::Cancelled`], [`Error::Stalled`], [`Error::Timeout`].
    pub fn put_file(
        &mut self,
        local: impl AsRef<Path>,
        remote: impl AsRemotePath,
        if_exists: PutIfExists,
    ) -> Result<Outcome> {
        self.put_file_with(local, remote, &PutOptions::new().if_exists(if_exists), &mut NoProgress)
    }

    /// As [`UploadSession::put_file`], telling `progress` as the bytes leave:
    /// [`Progress::start`] (the local file's name and size),
    /// [`Progress::advance`] per chunk sent, [`Progress::answer_awaited`]
    /// once every byte and the end left, [`Progress::finish`] once the
    /// server answered (or the session was lost).
    ///
    /// # Errors
    ///
    /// As [`UploadSession::put_file`]. An error after
    /// [`Progress::answer_awaited`] leaves unknown whether the server
    /// stored the file: it had all of it.
    pub fn put_file_with(
        &mut self,
        local: impl AsRef<Path>,
        remote: impl AsRemotePath,
        options: &PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<Outcome> {
        let (local, remote) = (local.as_ref(), remote.as_remote_path());
        let shown = local.display().to_string();
        // Named, so followed if a symlink; a FIFO does not block the open
        // (its kind refuses it), a terminal does not become ours.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(local)
            .map_err(|e| Error::local("open", &shown, e))?;
        let st = nix::sys::stat::fstat(&file).map_err(|e| Error::local("stat", &shown, e.into()))?;
        let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.put_open((file, st), &shown, &name, remote, options, progress)
    }

    /// As [`UploadSession::put_file_with`], for a file of `tree`: opened
    /// below the tree's directory through its descriptor, following no
    /// symlink (not even one that another process put in the tree after
    /// the walk and that stays inside it).
    ///
    /// # Errors
    ///
    /// As [`UploadSession::put_file`]; [`Error::LocalFile`] of `open` when the file is
    /// gone, unreadable or no longer a regular file.
    pub fn put_tree_file_with(
        &mut self,
        tree: &LocalTree,
        file: &LocalFile,
        remote: impl AsRemotePath,
        options: &PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<Outcome> {
        let remote = remote.as_remote_path();
        let shown = String::from_utf8_lossy(&file.path).into_owned();
        let opened = tree
            .root
            .open_file_no_symlinks(&file.path)
            .map_err(|f| Error::local("open", &shown, os_error(&f)))?;
        let name = shown.rsplit('/').next().unwrap_or_default().to_owned();
        self.put_open(opened, &shown, &name, remote, options, progress)
    }

    /// Ends the session, as [`Client::close`].
    ///
    /// # Errors
    ///
    /// As [`Client::close`].
    pub fn close(self) -> Result<()> {
        self.session.close()
    }

    /// Sends the open local file (`shown` in messages, `name` to
    /// `progress`) through [`send_source`], the sender a fetch's server
    /// uses, and waits for the server's answer. Its `fstat` before the
    /// first byte gives its kind, size, mode and times, and is what the end
    /// of the file is compared with.
    fn put_open(
        &mut self,
        (mut file, st): (File, FileStat),
        shown: &str,
        name: &str,
        remote: &[u8],
        options: &PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<Outcome> {
        let kind = FileKind::of(&st);
        if kind != FileKind::Regular {
            return Err(Error::local("open", shown, os_error(&OpenFailure::WrongKind(kind))));
        }
        if remote.is_empty() {
            // No path at all: refused here in the words of the server's
            // refusal of a bad path (a Put without one cannot be sent).
            let code = ReasonCode::InvalidPath;
            return Ok(Outcome::Refused { reason: code.into(), text: answer_text(code).into() });
        }
        let seq = self.session.take_seq();
        let (client_pid, region) = (self.session.pid(), self.session.region_name());
        let (path, flags) = (remote.to_vec(), options.flags());
        self.session.send_command(&Command::Put { client_pid, seq, region, path, flags })?;
        let remote_shown = String::from_utf8_lossy(remote);
        let source = Source { file: &mut file, st, shown: &remote_shown };
        let told = Told {
            progress: std::cell::RefCell::new(progress),
            name,
            moved: std::cell::Cell::new(0),
            untold: std::cell::Cell::new(0),
        };
        let answer = self.send_and_wait(seq, source, shown, &told);
        let bytes = told.end();
        answer.map(|answer| outcome(answer, bytes))
    }

    /// Sends `source` as upload `seq` and waits for the server's answer;
    /// a read that failed is the local file's error (`shown`), once the
    /// server answered (it kept nothing).
    fn send_and_wait(
        &mut self,
        seq: u32,
        source: Source<'_>,
        shown: &str,
        told: &Told<'_>,
    ) -> Result<UploadAnswer> {
        let read_failed =
            match send_source(&mut self.session, seq, source, Ask::default(), &mut Vec::new(), told)? {
                Sent::GaveUp { read, .. } => read,
                // The end left: the server may store the file whatever
                // becomes of this session before its answer comes.
                Sent::Whole(_) => {
                    told.answer_awaited();
                    None
                }
                Sent::UpToDate => None,
            };
        let answer = self.session.wait_for_answer(seq)?;
        match read_failed {
            Some(e) => Err(Error::local("read", shown, e)),
            None => Ok(answer),
        }
    }
}

impl Session<Producer> {
    /// Waits for the server's answer to upload `seq`: bounded by the
    /// server's liveness (checked every slice), the cancel flag and the
    /// stall timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for a word no server writes, [`Error::Cancelled`],
    /// [`Error::Stalled`], the server's death and the relay's errors.
    pub(crate) fn wait_for_answer(&mut self, seq: u32) -> Result<UploadAnswer> {
        let started = Instant::now();
        let mut checked = started;
        loop {
            if let Some(word) = self.answer_to(seq)? {
                return UploadAnswer::from_code(word)
                    .map_err(|e| Error::Protocol(format!("upload answer {word:#x}: {e}")));
            }
            if self.is_cancelled() {
                return Err(Error::Cancelled);
            }
            if checked.elapsed() >= WAIT_SLICE {
                checked = Instant::now();
                self.server_alive()?;
                let waited = started.elapsed();
                if waited >= self.stall_limit() {
                    return Err(Error::Stalled { waited });
                }
            }
            std::thread::sleep(ANSWER_POLL);
        }
    }
}

impl Client {
    /// [`UploadSession::connect`]: a session that sends files to the server.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect_for_uploads(config: &ClientConfig) -> Result<UploadSession> {
        UploadSession::connect(config)
    }
}
