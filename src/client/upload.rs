//! The client's side of an upload: one local file sent to the server's
//! `--accept` directory through a session of [`SessionKind::Upload`], whose
//! ring runs from the client to the server. The file is announced on the
//! queue ([`Command::Put`](crate::protocol::Command::Put): its path and
//! [`PutFlags`]), and sent by the sender a fetch's server uses
//! ([`send_source`]): a `Start` frame with its size (or that its size is
//! unknown: procfs, sysfs), mode and mtime, its bytes, and its count and
//! xxh3 (or, when the file changed while it was read or a read failed, an
//! `Error` frame: the server keeps nothing of it). The server answers in
//! the region's header; the client stops sending as soon as an answer
//! shows (a refusal), and waits for it after the end, checking the
//! server's liveness and the cancel flag, within the stall timeout.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::stat::FileStat;

use crate::choices::{Times, Update};
use crate::client::delivery::{NoProgress, Progress};
use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::fs::source::{FileKind, OpenFailure, Root};
use crate::fs::walk::{Limits, SkipReason, Visit, Walk};
use crate::protocol::{PutFlags, PutIfExists, Reply, SessionKind, UploadAnswer};
use crate::shm_region::ring::WAIT_SLICE;
use crate::transfer::codes::os_error;
use crate::transfer::send_file::{send_source, Ask, FrameSink, Sent, Source};
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
/// same descriptors when it is sent ([`Client::put_tree_file_with`]).
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
                        SkipReason::NotRegular(crate::fs::source::FileKind::Symlink) => {
                            (LocalSkipReason::Symlink, "a symbolic link; not followed".to_owned())
                        }
                        SkipReason::NotRegular(kind) => {
                            (LocalSkipReason::NotRegular, format!("{}, not a regular file", kind.text()))
                        }
                        SkipReason::Unreadable(e) => (
                            LocalSkipReason::Unreadable(e as i32),
                            format!("unreadable: {}", io::Error::from_raw_os_error(e as i32)),
                        ),
                        SkipReason::TooDeep => (
                            LocalSkipReason::TooDeep,
                            format!("deeper than {} directory levels", TREE_LIMITS.max_depth),
                        ),
                        SkipReason::OverLimit => {
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

/// How [`Client::put_file_with`] sends a file: whether a file of its
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
    /// kept ([`UploadAnswer::UpToDate`]).
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
/// local `name`), and the bytes that left.
struct Told<'a> {
    progress: std::cell::RefCell<&'a mut dyn Progress>,
    name: &'a str,
    moved: std::cell::Cell<u64>,
}

impl Meter for Told<'_> {
    fn begin(&self, _path: &str, size: u64) {
        self.moved.set(0);
        self.progress.borrow_mut().start(self.name, size);
    }

    fn advance(&self, n: u64) {
        self.moved.set(self.moved.get() + n);
        self.progress.borrow_mut().advance(n);
    }

    fn end(&self) -> u64 {
        self.progress.borrow_mut().finish();
        self.moved.take()
    }
}

/// An upload's frames: into the session's ring or its relay, stopped by
/// the server's answer when it comes before the end (a refusal, a failure
/// for good, a copy up to date).
impl FrameSink for Client {
    fn max_payload(&self) -> usize {
        Client::max_payload(self)
    }

    fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        self.producer()?.send(seq, reply)
    }

    fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        self.producer()?.send_data(seq, bytes)
    }

    fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()> {
        self.producer()?.send_data_end(seq, bytes, count, checksum)
    }

    fn yield_turn(&mut self) {}

    fn stop_asked(&mut self, seq: u32) -> Result<bool> {
        Ok(self.answer_to(seq)?.is_some())
    }
}

impl Client {
    /// As [`Client::connect`], for a session that sends files to the
    /// server ([`Client::put_file`]); the server takes it only when it was
    /// started with `--accept` (else each file is answered
    /// [`UploadAnswer::NotAccepting`]).
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect_for_uploads(config: &ClientConfig) -> Result<Client> {
        Client::open(config, SessionKind::Upload)
    }

    /// Sends the regular file `local` to the server, to be written at
    /// `remote` below its `--accept` directory (a relative path of plain
    /// components; the server refuses any other), replacing a file there
    /// unless `if_exists` is [`PutIfExists::Skip`]. The server names the
    /// file only once its size and xxh3 match what was sent; what it
    /// answered is returned.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::upload::{PutIfExists, UploadAnswer};
    /// use shmxfer::{Client, ClientConfig, Server};
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
    /// let mut client = Client::connect_for_uploads(&ClientConfig::new(&queue))?;
    /// let answer = client.put_file("report.txt", "in/report.txt", PutIfExists::Replace)?;
    /// assert_eq!(answer, UploadAnswer::Stored);
    /// client.close()?;
    /// # serving.join().unwrap()?;
    /// # assert_eq!(std::fs::read(inbox.path().join("in/report.txt")).unwrap(), b"all well\n");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// The file is `fstat`ed before and after it is read: when its size,
    /// modification or status-change time moved meanwhile (another process
    /// wrote it, truncated it), the server is told to keep nothing and
    /// answers [`UploadAnswer::Failed`] with [`ReasonCode::Changed`](crate::upload::ReasonCode::Changed).
    ///
    /// # Errors
    ///
    /// [`Error::LocalFile`] for the local file (`EISDIR`/`EINVAL` when it is not a
    /// regular file; `read` when a read failed: the server kept nothing),
    /// [`Error::Protocol`] on a session not opened for uploads or for an
    /// answer word no server writes, and the ring's and the queue's errors:
    /// [`Error::PeerGone`] when the server dies, [`Error::Cancelled`],
    /// [`Error::Stalled`], [`Error::Timeout`].
    pub fn put_file(
        &mut self,
        local: impl AsRef<Path>,
        remote: impl AsRef<[u8]>,
        if_exists: PutIfExists,
    ) -> Result<UploadAnswer> {
        self.put_file_with(local, remote, &PutOptions::new().if_exists(if_exists), &mut NoProgress)
    }

    /// As [`Client::put_file`], telling `progress` as the bytes leave:
    /// [`Progress::start`] (the local file's name and size),
    /// [`Progress::advance`] per chunk sent, [`Progress::finish`] once the
    /// server answered (or the session was lost).
    ///
    /// # Errors
    ///
    /// As [`Client::put_file`].
    pub fn put_file_with(
        &mut self,
        local: impl AsRef<Path>,
        remote: impl AsRef<[u8]>,
        options: &PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<UploadAnswer> {
        let (local, remote) = (local.as_ref(), remote.as_ref());
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

    /// As [`Client::put_file_with`], for a file of `tree`: opened below the
    /// tree's directory through its descriptor, following no symlink (not
    /// even one that another process put in the tree after the walk and
    /// that stays inside it).
    ///
    /// # Errors
    ///
    /// As [`Client::put_file`]; [`Error::LocalFile`] of `open` when the file is
    /// gone, unreadable or no longer a regular file.
    pub fn put_tree_file_with(
        &mut self,
        tree: &LocalTree,
        file: &LocalFile,
        remote: impl AsRef<[u8]>,
        options: &PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<UploadAnswer> {
        let remote = remote.as_ref();
        let shown = String::from_utf8_lossy(&file.path).into_owned();
        let opened = tree
            .root
            .open_file_no_symlinks(&file.path)
            .map_err(|f| Error::local("open", &shown, os_error(&f)))?;
        let name = shown.rsplit('/').next().unwrap_or_default().to_owned();
        self.put_open(opened, &shown, &name, remote, options, progress)
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
    ) -> Result<UploadAnswer> {
        let kind = FileKind::of(&st);
        if kind != FileKind::Regular {
            return Err(Error::local("open", shown, os_error(&OpenFailure::WrongKind(kind))));
        }
        self.producer()?;
        let seq = self.request_put(remote, options.flags())?;
        let remote_shown = String::from_utf8_lossy(remote);
        let source = Source { file: &mut file, st, shown: &remote_shown };
        let told = Told { progress: std::cell::RefCell::new(progress), name, moved: std::cell::Cell::new(0) };
        let answer = self.send_and_wait(seq, source, shown, &told);
        told.end();
        answer
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
        let read_failed = match send_source(self, seq, source, Ask::default(), &mut Vec::new(), told)? {
            Sent::GaveUp { read, .. } => read,
            Sent::Whole(_) | Sent::UpToDate => None,
        };
        let answer = self.wait_for_answer(seq)?;
        match read_failed {
            Some(e) => Err(Error::local("read", shown, e)),
            None => Ok(answer),
        }
    }

    /// Waits for the server's answer to upload `seq`: bounded by the
    /// server's liveness (checked every slice), the cancel flag and the
    /// stall timeout.
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
