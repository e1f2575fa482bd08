//! The requesting role's policy: which files to ask for, how many requests
//! to keep in flight, whether what arrived is right (size and checksum), and
//! how a verified file gets its name in the output directory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::client::{Client, Frame};
use crate::error::{Error, Result};
use crate::protocol::{Reply, MAX_PATH_LEN};
use crate::{sys, IO_CHUNK};

/// Requests a client keeps in flight: the server always has the next file
/// queued, and one client never fills the shared queue (10 messages).
pub const REQUEST_WINDOW: usize = 4;

/// What became of one requested file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written, verified, renamed into place.
    Delivered { bytes: u64 },
    /// The server has no such file ("FNF").
    NotFound,
    /// The server will not serve it (outside its root, not a regular file).
    Refused(String),
    /// Anything else: a failed check, a local write error, an existing file
    /// under `--no-clobber`.
    Failed(String),
}

impl Outcome {
    /// Whether the file arrived.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }
}

/// Told about progress while files arrive.
pub trait Progress {
    /// A file of `size` bytes starts.
    fn start(&mut self, _name: &str, _size: u64) {}
    /// `bytes` more bytes arrived.
    fn advance(&mut self, _bytes: u64) {}
    /// The file is done, for better or worse; its outcome is reported next.
    fn finish(&mut self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The file name a requested path is written under: its final component.
/// `None` for a path without a usable final component.
pub fn output_name(requested: &str) -> Option<&str> {
    let name = requested.rsplit('/').next()?;
    if name.is_empty() || name == "." || name == ".." {
        None
    } else {
        Some(name)
    }
}

/// Where and how received files are written.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Refuse to replace existing files.
    pub no_clobber: bool,
}

impl Delivery {
    /// Why `path` gets no request at all, if it does not.
    fn refuse_locally(&self, path: &str) -> Option<Outcome> {
        let Some(name) = output_name(path) else {
            return Some(Outcome::Failed("no file name in this path".into()));
        };
        if path.len() > MAX_PATH_LEN {
            let len = path.len();
            return Some(Outcome::Failed(format!("path is {len} bytes, at most {MAX_PATH_LEN} allowed")));
        }
        let target = self.out_dir.join(name);
        if self.no_clobber && target.symlink_metadata().is_ok() {
            return Some(Outcome::Failed(format!(
                "{} exists; not replaced (--no-clobber)",
                target.display()
            )));
        }
        None
    }

    /// Fetches `paths` in order into [`Delivery::out_dir`] through `client`,
    /// keeping [`REQUEST_WINDOW`] requests in flight. Returns one outcome per
    /// path, each also given to `report` as soon as it is known; a
    /// session-level failure (server gone, protocol error, interrupt) is an
    /// `Err` and leaves no partial file.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`], [`Error::Protocol`], [`Error::Decode`],
    /// [`Error::Busy`], [`Error::Cancelled`] or [`Error::Os`] from the queue.
    pub fn fetch(
        &self,
        client: &mut Client,
        paths: &[String],
        progress: &mut dyn Progress,
        report: &mut dyn FnMut(&str, &Outcome),
    ) -> Result<Vec<Outcome>> {
        let mut outcomes: Vec<Option<Outcome>> = paths.iter().map(|p| self.refuse_locally(p)).collect();
        let todo: Vec<usize> = (0..paths.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut in_flight: VecDeque<u32> = VecDeque::new();
        let mut next = 0;
        // One frame past IO_CHUNK: a frame always fits after what waits to
        // be written.
        let mut chunk = vec![0; IO_CHUNK + client.max_payload()];
        for (i, path) in paths.iter().enumerate() {
            while in_flight.len() < REQUEST_WINDOW && next < todo.len() {
                in_flight.push_back(client.request(&paths[todo[next]])?);
                next += 1;
            }
            let outcome = match outcomes[i].take() {
                Some(o) => o,
                None => {
                    let seq = in_flight.pop_front().expect("a request is in flight for every file");
                    let name = output_name(path).expect("checked by refuse_locally");
                    self.receive(client, seq, name, progress, &mut chunk)?
                }
            };
            progress.finish();
            report(path, &outcome);
            outcomes[i] = Some(outcome);
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every file has an outcome")).collect())
    }

    /// Receives the answer to request `seq` and, for a file, writes it under
    /// `name`. The frames are read to the end whatever happens locally.
    ///
    /// Each data frame is copied once, from the slot straight into `chunk`
    /// (memory the server cannot reach), hashed there while it is in cache,
    /// and written from there in [`IO_CHUNK`] pieces: the checksum covers
    /// exactly the bytes that are written.
    fn receive(
        &self,
        client: &mut Client,
        seq: u32,
        name: &str,
        progress: &mut dyn Progress,
        chunk: &mut [u8],
    ) -> Result<Outcome> {
        let size = match client.next_frame(seq, chunk)? {
            Frame::Control(Reply::Start { size }) => size,
            Frame::Control(Reply::NotFound) => return Ok(Outcome::NotFound),
            Frame::Control(Reply::Refused(why)) => return Ok(Outcome::Refused(why)),
            Frame::Control(Reply::Error(why)) => return Ok(Outcome::Failed(format!("server: {why}"))),
            other => return Err(Error::Protocol(format!("{other:?} where a file should start"))),
        };
        progress.start(name, size);
        let dir = self.out_dir.display();
        // A local failure does not stop the reading: the server streams the
        // file anyway, and the session goes on with the next one.
        let mut sink = Sink::new(&self.out_dir).map_err(|e| format!("creating a file in {dir}: {e}"));
        let mut hasher = Xxh3::new();
        let mut received = 0u64;
        let mut unreported = 0u64;
        let write = |sink: &mut std::result::Result<Sink, String>, bytes: &[u8]| {
            if let Ok(s) = sink {
                if let Err(e) = s.file.write_all(bytes) {
                    *sink = Err(format!("writing into {dir}: {e}"));
                }
            }
        };
        // chunk[..fill] waits to be written.
        let mut fill = 0;
        loop {
            match client.next_frame(seq, &mut chunk[fill..])? {
                Frame::Data(len) => {
                    received += u64::from(len);
                    if received > size {
                        return Err(Error::Protocol(format!(
                            "server sent more than the announced {size} bytes"
                        )));
                    }
                    let end = fill + len as usize;
                    hasher.update(&chunk[fill..end]);
                    fill = end;
                    if fill >= IO_CHUNK {
                        write(&mut sink, &chunk[..IO_CHUNK]);
                        chunk.copy_within(IO_CHUNK..fill, 0);
                        fill -= IO_CHUNK;
                    }
                    unreported += u64::from(len);
                    if unreported >= 1 << 20 {
                        progress.advance(unreported);
                        unreported = 0;
                    }
                }
                Frame::Control(Reply::End { count, checksum }) => {
                    write(&mut sink, &chunk[..fill]);
                    progress.advance(unreported);
                    if count != received || count != size {
                        return Ok(Outcome::Failed(format!(
                            "size mismatch: announced {size}, sent {count}, received {received}"
                        )));
                    }
                    if checksum != hasher.digest() {
                        return Ok(Outcome::Failed("checksum mismatch (xxh3-64)".into()));
                    }
                    let sink = match sink {
                        Ok(sink) => sink,
                        Err(why) => return Ok(Outcome::Failed(why)),
                    };
                    return Ok(match sink.persist(&self.out_dir, name, self.no_clobber) {
                        Ok(()) => Outcome::Delivered { bytes: received },
                        Err(e) => persist_failure(&e, &self.out_dir.join(name)),
                    });
                }
                Frame::Control(Reply::Error(why)) => return Ok(Outcome::Failed(format!("server: {why}"))),
                other => return Err(Error::Protocol(format!("{other:?} inside a file"))),
            }
        }
    }
}

impl Client {
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
    /// As [`Delivery::fetch`]: a session-level failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{atomic::AtomicBool, Arc};
    /// use shmxfer::{Client, ClientConfig, NoProgress, Outcome, Server, ServerConfig};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// let root = tempfile::tempdir().unwrap();
    /// std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    /// let queue = format!("/shmxfer_doctest_fetch_to_{}", std::process::id());
    /// # let server = Server::bind(ServerConfig {
    /// #     queue: queue.clone(),
    /// #     root: root.path().to_owned(),
    /// #     persistent: false,
    /// #     max_sessions: 1,
    /// #     stall_timeout: None,
    /// # })?;
    /// # let serving = std::thread::spawn(move || server.run(Arc::new(AtomicBool::new(false))));
    ///
    /// // With a server on `queue`:
    /// let config = ClientConfig::builder(&queue).build()?;
    /// let mut client = Client::connect(&config, Arc::new(AtomicBool::new(false)), &mut || {})?;
    /// let mut bytes = Vec::new();
    /// let outcome = client.fetch_to("hello.txt", &mut bytes, &mut NoProgress)?;
    /// client.close()?;
    ///
    /// assert_eq!(outcome, Outcome::Delivered { bytes: 6 });
    /// assert_eq!(bytes, b"hello\n");
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_to(
        &mut self,
        path: &str,
        out: &mut dyn Write,
        progress: &mut dyn Progress,
    ) -> Result<Outcome> {
        if path.len() > MAX_PATH_LEN {
            let len = path.len();
            return Ok(Outcome::Failed(format!("path is {len} bytes, at most {MAX_PATH_LEN} allowed")));
        }
        let seq = self.request(path)?;
        let mut buf = vec![0; self.max_payload()];
        let size = match self.next_frame(seq, &mut buf)? {
            Frame::Control(Reply::Start { size }) => size,
            Frame::Control(Reply::NotFound) => return Ok(Outcome::NotFound),
            Frame::Control(Reply::Refused(why)) => return Ok(Outcome::Refused(why)),
            Frame::Control(Reply::Error(why)) => return Ok(Outcome::Failed(format!("server: {why}"))),
            other => return Err(Error::Protocol(format!("{other:?} where a file should start"))),
        };
        progress.start(output_name(path).unwrap_or(path), size);
        let mut write_error: Option<std::io::Error> = None;
        let mut hasher = Xxh3::new();
        let mut received = 0u64;
        let mut unreported = 0u64;
        loop {
            match self.next_frame(seq, &mut buf)? {
                Frame::Data(len) => {
                    received += u64::from(len);
                    if received > size {
                        return Err(Error::Protocol(format!(
                            "server sent more than the announced {size} bytes"
                        )));
                    }
                    let data = &buf[..len as usize];
                    hasher.update(data);
                    if write_error.is_none() {
                        write_error = out.write_all(data).err();
                    }
                    unreported += u64::from(len);
                    if unreported >= 1 << 20 {
                        progress.advance(unreported);
                        unreported = 0;
                    }
                }
                Frame::Control(Reply::End { count, checksum }) => {
                    progress.advance(unreported);
                    if write_error.is_none() {
                        write_error = out.flush().err();
                    }
                    if let Some(e) = write_error {
                        return Ok(Outcome::Failed(format!("writing the file out: {e}")));
                    }
                    if count != received || count != size {
                        return Ok(Outcome::Failed(format!(
                            "size mismatch: announced {size}, sent {count}, received {received}; \
                             the bytes written are not the file"
                        )));
                    }
                    if checksum != hasher.digest() {
                        return Ok(Outcome::Failed(
                            "checksum mismatch (xxh3-64); the bytes written are not the file".into(),
                        ));
                    }
                    return Ok(Outcome::Delivered { bytes: received });
                }
                Frame::Control(Reply::Error(why)) => return Ok(Outcome::Failed(format!("server: {why}"))),
                other => return Err(Error::Protocol(format!("{other:?} inside a file"))),
            }
        }
    }
}

/// A file being received: unnamed (`O_TMPFILE`) where the filesystem can,
/// else a named temporary file that is removed on drop.
struct Sink {
    /// Written in [`IO_CHUNK`] pieces, not one per slot.
    file: File,
    named: Option<tempfile::TempPath>,
}

impl Sink {
    fn new(dir: &Path) -> std::io::Result<Sink> {
        match sys::unnamed_tempfile(dir) {
            Ok(file) => Ok(Sink { file, named: None }),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
                ) =>
            {
                Sink::named(dir)
            }
            Err(e) => Err(e),
        }
    }

    /// The fallback: a named temporary file, removed on drop.
    fn named(dir: &Path) -> std::io::Result<Sink> {
        let tmp = tempfile::Builder::new().prefix(".shmxfer-").suffix(".part").tempfile_in(dir)?;
        let (file, path) = tmp.into_parts();
        Ok(Sink { file, named: Some(path) })
    }

    /// Gives the verified file its final name.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming the target; with `no_clobber`, `EEXIST` when the
    /// name exists.
    fn persist(self, dir: &Path, name: &str, no_clobber: bool) -> Result<()> {
        let target = dir.join(name);
        let shown = target.display().to_string();
        let file = self.file;
        if let Some(path) = self.named {
            let res = if no_clobber {
                std::fs::hard_link(&path, &target).map(|()| drop(path))
            } else {
                path.persist(&target).map_err(|e| e.error)
            };
            return res.map_err(|e| Error::os_named("link", &shown, e));
        }
        match sys::link_into_place(&file, dir, name) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && !no_clobber => {
                // Link under a temporary name beside it, then rename over.
                let random = sys::random_u64().map_err(|e| Error::os("getrandom", e))?;
                let tmp_name = format!(".{name}.{random:016x}.shmxfer");
                sys::link_into_place(&file, dir, &tmp_name)
                    .map_err(|e| Error::os_named("link", &shown, e))?;
                std::fs::rename(dir.join(&tmp_name), &target).map_err(|e| {
                    let _ = std::fs::remove_file(dir.join(&tmp_name));
                    Error::os_named("rename", &shown, e)
                })
            }
            res => res.map_err(|e| Error::os_named("link", &shown, e)),
        }
    }
}

/// The outcome of a file that could not be given its name.
fn persist_failure(e: &Error, target: &Path) -> Outcome {
    if e.raw_os_error() == Some(libc::EEXIST) {
        Outcome::Failed(format!("{} exists; not replaced (--no-clobber)", target.display()))
    } else {
        Outcome::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn both_kinds_of_sink_create_replace_and_refuse_to_clobber() {
        type Make = fn(&Path) -> std::io::Result<Sink>;
        for make in [Sink::new as Make, Sink::named as Make] {
            let dir = tempfile::tempdir().unwrap();
            let put = |bytes: &[u8], no_clobber: bool| {
                let mut sink = make(dir.path()).unwrap();
                sink.file.write_all(bytes).unwrap();
                sink.persist(dir.path(), "f", no_clobber)
            };
            put(b"one", false).unwrap();
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"one");
            put(b"two", false).unwrap();
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"two");
            let err = put(b"three", true).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"two");
            // A sink dropped unpersisted leaves nothing.
            let mut sink = make(dir.path()).unwrap();
            sink.file.write_all(b"partial").unwrap();
            drop(sink);
            assert_eq!(entries(dir.path()), ["f"]);
        }
    }

    #[test]
    fn output_names_are_final_components() {
        assert_eq!(output_name("a/b/c.txt"), Some("c.txt"));
        assert_eq!(output_name("../x"), Some("x"));
        for none in ["", ".", "..", "a/", "a/.."] {
            assert_eq!(output_name(none), None, "{none:?}");
        }
    }
}
