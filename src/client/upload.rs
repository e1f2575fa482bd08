//! The client's side of an upload: one local file sent to the server's
//! `--accept` directory through a session of [`SessionKind::Upload`], whose
//! ring runs from the client to the server. The file is announced on the
//! queue ([`Command::Put`](crate::protocol::Command::Put): path, size,
//! mode, whether an existing name is kept), its bytes follow as `Data`
//! frames and its count and xxh3 as an `End` frame (or, when the file
//! changed while it was read or a read failed, an `Error` frame: the
//! server keeps nothing of it), and the server answers
//! in the region's header; the client stops sending as soon as an answer
//! shows (a refusal), and waits for it after the `End`, checking the
//! server's liveness and the cancel flag, within the stall timeout.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

use crate::client::delivery::{NoProgress, Progress};
use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::fs::source::{OpenFailure, Root, Snapshot};
use crate::fs::walk::{Limits, SkipReason, Visit, Walk};
use crate::os::sys::IO_CHUNK;
use crate::protocol::{PutIfExists, ReasonCode, Reply, SessionKind, UploadAnswer, MODE_BITS};
use crate::shm_region::ring::WAIT_SLICE;

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
    pub fn walk(dir: &Path) -> Result<LocalTree> {
        let root = Root::open(dir)?;
        let walk = Walk::new(&root, b"", TREE_LIMITS)
            .map_err(|failure| Error::local("open", &dir.display().to_string(), failure_error(failure)))?;
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

/// An [`OpenFailure`] of a local file as the OS error it stands for.
fn failure_error(failure: OpenFailure) -> io::Error {
    let errno = match failure {
        OpenFailure::Missing => libc::ENOENT,
        OpenFailure::OutsideRoot => return io::Error::other("a symbolic link on the way; not followed"),
        OpenFailure::PermissionDenied => libc::EACCES,
        OpenFailure::NameTooLong => libc::ENAMETOOLONG,
        OpenFailure::InvalidPath => libc::EINVAL,
        OpenFailure::OutOfResources(e) | OpenFailure::Os(e) => return e,
        OpenFailure::WrongKind(crate::fs::source::FileKind::Directory) => libc::EISDIR,
        OpenFailure::WrongKind(kind) => {
            return io::Error::other(format!("{}, not a regular file", kind.text()))
        }
    };
    io::Error::from_raw_os_error(errno)
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
    /// ```no_run
    /// use shmxfer::upload::{PutIfExists, UploadAnswer};
    /// use shmxfer::{Client, ClientConfig};
    ///
    /// let mut client = Client::connect_for_uploads(&ClientConfig::from_env())?;
    /// let answer = client.put_file("report.txt".as_ref(), b"inbox/report.txt", PutIfExists::Replace)?;
    /// assert_eq!(answer, UploadAnswer::Stored);
    /// client.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// The file is `fstat`ed before and after it is read: when its size,
    /// modification or status-change time moved meanwhile (another process
    /// wrote it, truncated it), the server is told to keep nothing and
    /// answers [`UploadAnswer::Failed`] with [`ReasonCode::Changed`].
    ///
    /// # Errors
    ///
    /// [`Error::LocalFile`] for the local file (`EISDIR`/`EINVAL` when it is not a
    /// regular file; `read` when a read failed: the server kept nothing),
    /// [`Error::Protocol`] on a session not opened for uploads or for an
    /// answer word no server writes, and the ring's and the queue's errors:
    /// [`Error::PeerGone`] when the server dies, [`Error::Cancelled`],
    /// [`Error::Stalled`], [`Error::Timeout`].
    pub fn put_file(&mut self, local: &Path, remote: &[u8], if_exists: PutIfExists) -> Result<UploadAnswer> {
        self.put_file_with(local, remote, if_exists, &mut NoProgress)
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
        local: &Path,
        remote: &[u8],
        if_exists: PutIfExists,
        progress: &mut dyn Progress,
    ) -> Result<UploadAnswer> {
        let shown = local.display().to_string();
        let file = File::open(local).map_err(|e| Error::local("open", &shown, e))?;
        let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.put_open(file, &shown, &name, remote, if_exists, progress)
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
        remote: &[u8],
        if_exists: PutIfExists,
        progress: &mut dyn Progress,
    ) -> Result<UploadAnswer> {
        let shown = String::from_utf8_lossy(&file.path).into_owned();
        let (opened, _) = tree
            .root
            .open_file_no_symlinks(&file.path)
            .map_err(|f| Error::local("open", &shown, failure_error(f)))?;
        let name = shown.rsplit('/').next().unwrap_or_default().to_owned();
        self.put_open(opened, &shown, &name, remote, if_exists, progress)
    }

    /// Sends the open local `file` (`shown` in messages, `name` to
    /// `progress`).
    fn put_open(
        &mut self,
        mut file: File,
        shown: &str,
        name: &str,
        remote: &[u8],
        if_exists: PutIfExists,
        progress: &mut dyn Progress,
    ) -> Result<UploadAnswer> {
        let meta = file.metadata().map_err(|e| Error::local("stat", shown, e))?;
        if !meta.file_type().is_file() {
            let errno = if meta.is_dir() { libc::EISDIR } else { libc::EINVAL };
            return Err(Error::local("open", shown, io::Error::from_raw_os_error(errno)));
        }
        self.producer()?;
        progress.start(name, meta.len());
        let answer = self.send_file(&mut file, shown, &meta, remote, if_exists, progress);
        progress.finish();
        answer
    }

    /// Announces and sends the open `file` (as `meta` found it before the
    /// first byte), then waits for the server's answer.
    fn send_file(
        &mut self,
        file: &mut File,
        shown: &str,
        meta: &std::fs::Metadata,
        remote: &[u8],
        if_exists: PutIfExists,
        progress: &mut dyn Progress,
    ) -> Result<UploadAnswer> {
        let before = Snapshot::of_metadata(meta);
        let size = meta.len();
        let seq = self.request_put(remote, size, meta.mode() & MODE_BITS, if_exists)?;
        let mut hash = Xxh3::new();
        let mut count = 0u64;
        let mut chunk = vec![0u8; IO_CHUNK];
        let mut failed_read = None;
        let mut answered_early = false;
        'send: while count < size {
            let want = (size - count).min(IO_CHUNK as u64) as usize;
            let got = match file.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed_read = Some(e);
                    break;
                }
            };
            let cap = self.max_payload();
            for piece in chunk[..got].chunks(cap) {
                // A refusal shows at once: the rest is not sent.
                if self.answer_to(seq)?.is_some() {
                    answered_early = true;
                    break 'send;
                }
                self.producer()?.send_data(seq, piece)?;
                hash.update(piece);
                count += piece.len() as u64;
                progress.advance(piece.len() as u64);
            }
        }
        // The file as it is now: a write, a truncation or a rewrite in
        // place meanwhile shows in its size or times (a short read, too).
        let after = file.metadata().map(|m| Snapshot::of_metadata(&m));
        let abandon = match (&failed_read, &after) {
            (Some(e), _) => Some((ReasonCode::ReadFailed, format!("read: {e}"))),
            (None, Err(e)) => Some((ReasonCode::ReadFailed, format!("fstat: {e}"))),
            (None, Ok(after)) if *after != before || (count < size && !answered_early) => Some((
                ReasonCode::Changed,
                format!("changed while it was sent ({count} of {size} bytes read)"),
            )),
            (None, Ok(_)) => None,
        };
        let last = match abandon {
            // The server drops what came and answers the file failed.
            Some((code, reason)) => Reply::Error { code, reason },
            None => Reply::End { count, checksum: hash.digest() },
        };
        self.producer()?.send(seq, &last)?;
        let answer = self.wait_for_answer(seq)?;
        match failed_read {
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
