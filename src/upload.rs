//! The client's side of an upload: one local file sent to the server's
//! `--accept` directory through a session of [`SessionKind::Upload`], whose
//! ring runs from the client to the server. The file is announced on the
//! queue ([`Command::Put`](crate::protocol::Command::Put): path, size,
//! mode, whether an existing name is kept), its bytes follow as `Data`
//! frames and its count and xxh3 as an `End` frame, and the server answers
//! in the region's header; the client stops sending as soon as an answer
//! shows (a refusal), and waits for it after the `End`, checking the
//! server's liveness and the cancel flag, within the stall timeout.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

use crate::client::{Client, ClientConfig};
use crate::error::{Error, Result};
use crate::protocol::{PutIfExists, Reply, SessionKind, UploadAnswer, MODE_BITS};
use crate::ring::WAIT_SLICE;
use crate::IO_CHUNK;

/// How long the client sleeps between looks at the answer word.
const ANSWER_POLL: Duration = Duration::from_micros(200);

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
    /// use shmxfer::{Client, ClientConfig, PutIfExists, UploadAnswer};
    ///
    /// let mut client = Client::connect_for_uploads(&ClientConfig::from_env())?;
    /// let answer = client.put_file("report.txt".as_ref(), b"inbox/report.txt", PutIfExists::Replace)?;
    /// assert_eq!(answer, UploadAnswer::Stored);
    /// client.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Os`] for the local file (`EISDIR`/`EINVAL` when it is not a
    /// regular file), [`Error::Protocol`] on a session not opened for
    /// uploads or for an answer word no server writes, and the ring's and
    /// the queue's errors: [`Error::PeerGone`] when the server dies,
    /// [`Error::Cancelled`], [`Error::Stalled`], [`Error::Timeout`].
    pub fn put_file(&mut self, local: &Path, remote: &[u8], if_exists: PutIfExists) -> Result<UploadAnswer> {
        let shown = local.display().to_string();
        let mut file = File::open(local).map_err(|e| Error::os_named("open", &shown, e))?;
        let meta = file.metadata().map_err(|e| Error::os_named("stat", &shown, e))?;
        if !meta.file_type().is_file() {
            let errno = if meta.is_dir() { libc::EISDIR } else { libc::EINVAL };
            return Err(Error::os_named("open", &shown, io::Error::from_raw_os_error(errno)));
        }
        let size = meta.len();
        self.producer()?;
        let seq = self.request_put(remote, size, meta.mode() & MODE_BITS, if_exists)?;
        let mut hash = Xxh3::new();
        let mut count = 0u64;
        let mut chunk = vec![0u8; IO_CHUNK];
        let mut failed_read = None;
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
                    break 'send;
                }
                self.producer()?.send_data(seq, piece)?;
                hash.update(piece);
                count += piece.len() as u64;
            }
        }
        // A short read leaves the count short: the server drops the file.
        self.producer()?.send(seq, &Reply::End { count, checksum: hash.digest() })?;
        let answer = self.wait_for_answer(seq)?;
        match failed_read {
            Some(e) => Err(Error::os_named("read", &shown, e)),
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
