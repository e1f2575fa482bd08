//! One file at a time, outside a run: to any writer ([`Client::fetch_to`]),
//! into a `Vec` ([`Client::fetch_vec`]), to a path, verified and atomic
//! ([`Client::fetch_file`]), or as a reader ([`Client::fetch_reader`]).

use std::io::Write;
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

use crate::client::config::ClientConfig;
use crate::client::fetch::Client;
use crate::error::{Error, Result};
use crate::fs::output::Clobber;
use crate::os::sys::IO_CHUNK;
use crate::protocol::AsRemotePath;
use crate::transfer::body::{read_body, Announced, Body, FromStart, Incoming, Piece, Report, Taking};
use crate::transfer::outcome::{FailReason, Outcome};

use super::delivery::*;

impl Client {
    /// What becomes of `path`, fetched as one file (to a writer or a reader), before it is asked for: a path too long for the
    /// protocol, or one given with a trailing `/`
    /// ([`Client::not_a_directory`]); `None`: it is asked for.
    fn refused_before_asking(&mut self, path: &[u8]) -> Result<Option<Outcome>> {
        match too_long(path) {
            Some(too_long) => Ok(Some(too_long)),
            None => self.not_a_directory(path),
        }
    }

    /// Fetches the one file `path` and writes its bytes into `out` as they
    /// arrive (what `shm_client --stdout` does). Size and checksum are still
    /// checked at the end; since the bytes have already been written by
    /// then, a mismatch can only be reported: the outcome is then
    /// [`Outcome::Failed`] and what `out` received must not be trusted. A
    /// write error on `out` also fails the file (the rest is read and
    /// dropped, so the session stays usable). `out` is flushed at the end.
    ///
    /// # Errors
    ///
    /// A session-level failure: [`Error::PeerGone`],
    /// [`Error::SessionEnded`], [`Error::Stalled`], [`Error::Protocol`],
    /// [`Error::Decode`], [`Error::Busy`], [`Error::Cancelled`], or
    /// [`Error::Timeout`] / [`Error::Os`] from the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::{Client, ClientConfig, Outcome, Server};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// let root = tempfile::tempdir().unwrap();
    /// std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    /// let queue = format!("/shmxfer_doctest_fetch_to_{}", std::process::id());
    /// # let server = Server::builder()
    /// #     .queue(&queue)
    /// #     .root(root.path())
    /// #     .max_sessions(1)
    /// #     .stall_timeout(None)
    /// #     .bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    ///
    /// // With a server on `queue`:
    /// let mut client = Client::connect(&ClientConfig::new(&queue))?;
    /// let mut bytes = Vec::new();
    /// let outcome = client.fetch_to("hello.txt", &mut bytes)?;
    /// client.close()?;
    ///
    /// assert_eq!(outcome, Outcome::Delivered { bytes: 6 });
    /// assert_eq!(bytes, b"hello\n");
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_to(&mut self, path: impl AsRemotePath, out: &mut dyn Write) -> Result<Outcome> {
        self.fetch_to_with(path, out, &mut NoProgress)
    }

    /// [`Client::fetch_to`], telling `progress` how the file arrives.
    ///
    /// # Errors
    ///
    /// As [`Client::fetch_to`].
    pub fn fetch_to_with(
        &mut self,
        path: impl AsRemotePath,
        out: &mut dyn Write,
        progress: &mut dyn Progress,
    ) -> Result<Outcome> {
        let path = path.as_remote_path();
        if let Some(refused) = self.refused_before_asking(path)? {
            return Ok(refused);
        }
        let seq = self.request(&crate::protocol::normalize_path(path))?;
        let mut chunk = vec![0; IO_CHUNK + self.max_payload()];
        let size = match read_start(self, seq, &mut chunk)? {
            Ok(start) => Announced::of(start.size, start.flags),
            Err(outcome) => return Ok(outcome),
        };
        progress.start(&String::from_utf8_lossy(output_name(path).unwrap_or(path)), size.told());
        let mut write_error: Option<std::io::Error> = None;
        // A failing writer does not cancel the file: the rest is read and
        // dropped, as documented (a caller that wants it to stop at once
        // sets the cancel flag, as `shm_client --stdout` does).
        let mut write = |bytes: &[u8]| {
            if write_error.is_none() {
                write_error = out.write_all(bytes).err();
            }
            Taking::Yes
        };
        let mut incoming = Incoming::new(seq, size, "server", 0, Xxh3::new());
        let advance = &mut |n| progress.advance(n);
        let body = read_body(
            self,
            &mut incoming,
            &mut chunk,
            FromStart::Take,
            &mut write,
            advance,
            Report::EachChunk,
        );
        progress.finish();
        let body = body?;
        if write_error.is_none() {
            write_error = out.flush().err();
        }
        Ok(match body {
            Body::Ended { .. } if write_error.is_some() => {
                let e = write_error.expect("checked");
                Outcome::failed(FailReason::WriteFailed, format!("writing the file out: {e}"))
            }
            Body::Ended { end, received, verdict } => {
                let note = "; the bytes written are not the file";
                check(size, end, received, verdict, note).unwrap_or(Outcome::Delivered { bytes: received })
            }
            Body::GivenUp(code, why) => Outcome::failed(code.into(), format!("server: {why}")),
            Body::Dropped => {
                Outcome::failed(FailReason::WriteFailed, "writing the file out: the output stopped")
            }
        })
    }

    /// Fetches the one file `path` into memory, verified.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Refused`] or [`Error::Failed`] for a
    /// file that did not arrive (see [`Outcome::into_result`]); a
    /// session-level failure as [`Client::fetch_to`].
    pub fn fetch_vec(&mut self, path: impl AsRemotePath) -> Result<Vec<u8>> {
        let path = path.as_remote_path();
        let mut bytes = Vec::new();
        self.fetch_to(path, &mut bytes)?.into_result(path)?;
        Ok(bytes)
    }

    /// Fetches the one file `path` to the file `dest`: written beside it
    /// and given its name only once size and checksum are verified,
    /// replacing an existing file atomically unless `clobber` is
    /// [`Clobber::Keep`]. Returns the bytes delivered.
    ///
    /// # Errors
    ///
    /// As [`Client::fetch_vec`]; [`Error::Failed`] with
    /// [`FailReason::WriteFailed`] when `dest` cannot be written,
    /// [`FailReason::OutputExists`] when it exists and is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::{Client, ClientConfig, Clobber, Error, Server};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// # let root = tempfile::tempdir().unwrap();
    /// # std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    /// # let here = tempfile::tempdir().unwrap();
    /// # std::env::set_current_dir(here.path()).unwrap();
    /// # let queue = format!("/shmxfer_doctest_fetch_file_{}", std::process::id());
    /// # let server = Server::builder().queue(&queue).root(root.path()).stall_timeout(None).bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    /// let mut client = Client::connect(&ClientConfig::new(&queue))?;
    /// assert_eq!(client.fetch_file("hello.txt", "greeting.txt", Clobber::Replace)?, 6);
    /// assert_eq!(std::fs::read("greeting.txt").unwrap(), b"hello\n");
    /// // A missing file says which.
    /// let missing = client.fetch_file("nope.txt", "nope.txt", Clobber::Replace).unwrap_err();
    /// assert!(matches!(&missing, Error::NotFound { path } if path.as_os_str() == "nope.txt"));
    /// assert_eq!(missing.to_string(), "nope.txt: not found");
    /// client.close()?;
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_file(
        &mut self,
        path: impl AsRemotePath,
        dest: impl AsRef<Path>,
        clobber: Clobber,
    ) -> Result<u64> {
        let (name, dir) = crate::fs::output::dest_parts(dest.as_ref())
            .map_err(|text| Error::Failed { reason: FailReason::BadOutputName, text })?;
        let options = FetchOptions::new(dir).clobber(clobber);
        let path = path.as_remote_path();
        let known = self.not_a_directory(path)?;
        let job = super::plan::dest_job(path, name, name.into(), known);
        let mut results = Vec::with_capacity(1);
        fetch_jobs(self, std::slice::from_ref(&job), &options, &mut NoProgress, &mut results)?;
        results.pop().expect("one result per job").into_result()
    }
}

/// Fetches the one file `name` into memory, verified, from the server of
/// the queue the environment names (`$SHMXFER_QUEUE`, else `/shmxfer`): a
/// client made by [`ClientConfig::from_env`](crate::ClientConfig::from_env)
/// connects (waiting up to [`DEFAULT_WAIT`](crate::DEFAULT_WAIT), 5 s, for a
/// server), fetches ([`Client::fetch_vec`]) and closes, in one call.
///
/// # Errors
///
/// As [`Client::connect`] ([`Error::NoServer`] when no server came within
/// the wait) and [`Client::fetch_vec`] ([`Error::NotFound`] naming `name`
/// when the server has no such file).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), shmxfer::Error> {
/// # let root = tempfile::tempdir().unwrap();
/// # std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
/// # let queue = format!("/shmxfer_doctest_fetch_{}", std::process::id());
/// # std::env::set_var("SHMXFER_QUEUE", &queue);
/// # let server = shmxfer::Server::builder().queue(&queue).root(root.path()).persistent().bind()?;
/// # let stop = shmxfer::StopSignal::new();
/// # let stopper = stop.clone();
/// # let serving = std::thread::spawn(move || server.run(stopper));
/// // With a server on $SHMXFER_QUEUE (`shm_server --root DIR`):
/// let bytes = shmxfer::fetch("hello.txt")?;
/// assert_eq!(bytes, b"hello\n");
///
/// let missing = shmxfer::fetch("nope.txt").unwrap_err();
/// assert_eq!(missing.to_string(), "nope.txt: not found");
/// # stop.request(shmxfer::StopKind::Now);
/// # serving.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
pub fn fetch(name: impl AsRemotePath) -> Result<Vec<u8>> {
    let mut client = Client::connect(&ClientConfig::from_env())?;
    let fetched = client.fetch_vec(name);
    let closed = client.close();
    let bytes = fetched?;
    closed?;
    Ok(bytes)
}

/// One file as a reader ([`Client::fetch_reader`]): each read hands on the
/// bytes of one frame at most; the end of the file checks its size and
/// checksum, and a mismatch is a read error (the bytes read before it must
/// not be trusted then). A read that fails (a mismatch, the server giving
/// the file up, the session lost) fails again each time it is repeated:
/// `Ok(0)` is only ever the verified end. Dropped before the end, it reads
/// the rest of the file and drops it, so the session stays usable.
pub struct FileReader<'a> {
    client: &'a mut Client,
    size: Announced,
    incoming: Incoming,
    buf: Vec<u8>,
    /// `buf[pos..len]` waits to be read.
    pos: usize,
    len: usize,
    state: Reading,
}

/// How far a [`FileReader`] got.
#[derive(Debug)]
enum Reading {
    /// Frames are still due.
    Body,
    /// The verified end came: what is in the buffer is the last of it.
    Ended,
    /// The file failed: this error again at every read.
    Failed(std::io::ErrorKind, String),
}

impl std::fmt::Debug for FileReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader").field("incoming", &self.incoming).finish()
    }
}

impl FileReader<'_> {
    /// The file's size as the server announced it (for a file whose size
    /// the server could not know beforehand, such as one in `/proc`, what
    /// `fstat` said: the bytes read are the truth).
    pub fn size(&self) -> u64 {
        self.size.told()
    }

    /// Reads the next frame into the buffer, as every receiver reads a
    /// file's body ([`Incoming::next`]); at the verified end the state is
    /// [`Reading::Ended`], on a failure [`Reading::Failed`].
    fn fill(&mut self) -> std::io::Result<()> {
        let failed = match self.next_piece() {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        self.state = Reading::Failed(failed.kind(), failed.to_string());
        Err(failed)
    }

    /// [`FileReader::fill`] but for the state a failure leaves.
    fn next_piece(&mut self) -> std::io::Result<()> {
        let bad = |text: String| std::io::Error::new(std::io::ErrorKind::InvalidData, text);
        let (len, end) = match self.incoming.next(self.client, &mut self.buf, true) {
            Ok(Piece::Data { len, end }) => (len, end),
            Ok(Piece::GivenUp { reason, .. }) => {
                return Err(std::io::Error::other(format!("server: {reason}")))
            }
            Err(Error::Protocol(text)) => return Err(bad(text)),
            Err(e) => return Err(std::io::Error::other(e)),
        };
        if let Some(end) = end {
            // The last bytes, checked before they are read.
            let verdict = self.incoming.verify(end);
            if let Some(Outcome::Failed { text, .. }) =
                check(self.size, end, self.incoming.received(), verdict, "")
            {
                return Err(bad(text));
            }
            self.state = Reading::Ended;
        }
        (self.pos, self.len) = (0, len);
        Ok(())
    }
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.len {
            match &self.state {
                Reading::Body => self.fill()?,
                Reading::Ended => return Ok(0),
                Reading::Failed(kind, text) => return Err(std::io::Error::new(*kind, text.clone())),
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for FileReader<'_> {
    fn drop(&mut self) {
        while matches!(self.state, Reading::Body) {
            let _ = self.fill();
        }
    }
}

impl Client {
    /// Fetches the one file `path` as a reader of its bytes.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::Refused`] or [`Error::Failed`] for a
    /// file that does not come; a session-level failure as
    /// [`Client::fetch_to`]. Reading returns the I/O errors described at
    /// [`FileReader`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// use shmxfer::{Client, ClientConfig, Server};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let root = tempfile::tempdir().unwrap();
    /// # std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    /// # let queue = format!("/shmxfer_doctest_reader_{}", std::process::id());
    /// # let server = Server::builder()
    /// #     .queue(&queue)
    /// #     .root(root.path())
    /// #     .max_sessions(1)
    /// #     .stall_timeout(None)
    /// #     .bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    /// let mut client = Client::connect(&ClientConfig::new(&queue))?;
    /// let mut text = String::new();
    /// client.fetch_reader("hello.txt")?.read_to_string(&mut text)?;
    /// client.close()?;
    /// assert_eq!(text, "hello\n");
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_reader(&mut self, path: impl AsRemotePath) -> Result<FileReader<'_>> {
        let path = path.as_remote_path();
        if let Some(refused) = self.refused_before_asking(path)? {
            refused.into_result(path)?;
        }
        let seq = self.request(&crate::protocol::normalize_path(path))?;
        let mut buf = vec![0; self.max_payload()];
        let size = match read_start(self, seq, &mut buf)? {
            Ok(start) => Announced::of(start.size, start.flags),
            Err(outcome) => return Err(outcome.into_result(path).expect_err("not delivered")),
        };
        Ok(FileReader {
            client: self,
            size,
            incoming: Incoming::new(seq, size, "server", 0, Xxh3::new()),
            buf,
            pos: 0,
            len: 0,
            state: Reading::Body,
        })
    }
}
