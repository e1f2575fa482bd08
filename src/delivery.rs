//! The requesting role's policy: which files to ask for, how many requests
//! to keep in flight, whether what arrived is right (size and checksum), and
//! how a verified file gets its name in the output directory.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;

use xxhash_rust::xxh3::Xxh3;

use crate::client::{Client, Frame};
use crate::error::{Error, Result};
use crate::output::{OutDir, OutputPath};
use crate::protocol::{Reply, MAX_PATH_LEN};
use crate::IO_CHUNK;

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
    /// Keep the requested paths below the output directory (`-R`), instead
    /// of their final components.
    pub relative: bool,
}

impl Delivery {
    /// Where the requested `path` is written, or why it cannot be.
    fn output_path(&self, path: &str) -> std::result::Result<OutputPath, String> {
        OutputPath::for_request(path, self.relative)
    }

    /// The name the user reads for the requested `path`: its final
    /// component, or with `-R` its path below the output directory.
    pub fn shown_name<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match self.output_path(path) {
            Ok(out) if self.relative => out.shown().into(),
            Ok(_) => output_name(path).unwrap_or(path).into(),
            Err(_) => path.into(),
        }
    }

    /// Checks, before any request, that no two of `paths` would be written
    /// to the same output name.
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] naming the first two such paths.
    pub fn check_outputs(&self, paths: &[String]) -> Result<()> {
        let mut seen: HashMap<OutputPath, &str> = HashMap::new();
        for path in paths {
            let Ok(out) = self.output_path(path) else { continue };
            let shown = out.shown();
            if let Some(first) = seen.insert(out, path) {
                return Err(Error::SameOutput {
                    first: first.to_owned(),
                    second: path.clone(),
                    output: shown,
                    relative: self.relative,
                });
            }
        }
        Ok(())
    }

    /// Why `path`, to be written to `out`, gets no request at all, if it
    /// does not.
    fn refuse_locally(
        &self,
        out_dir: &std::io::Result<OutDir>,
        path: &str,
        out: &std::result::Result<OutputPath, String>,
    ) -> Option<Outcome> {
        let out = match out {
            Ok(out) => out,
            Err(why) => return Some(Outcome::Failed(why.clone())),
        };
        if path.len() > MAX_PATH_LEN {
            let len = path.len();
            return Some(Outcome::Failed(format!("path is {len} bytes, at most {MAX_PATH_LEN} allowed")));
        }
        if let Ok(dir) = out_dir {
            if self.no_clobber && dir.exists(out) {
                let target = self.out_dir.join(out.shown());
                return Some(Outcome::Failed(format!(
                    "{} exists; not replaced (--no-clobber)",
                    target.display()
                )));
            }
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
        let outs = paths.iter().map(|p| self.output_path(p)).collect();
        self.fetch_into(client, paths, outs, progress, report)
    }

    /// As [`Delivery::fetch`], each file of `requests` asked for by its
    /// first path and written at its second, a relative path below
    /// [`Delivery::out_dir`] (what `shm_client -r` does). Directories are
    /// created as needed, one component at a time, never through a symlink;
    /// a local path with an empty, `.` or `..` component fails its file.
    ///
    /// # Errors
    ///
    /// As [`Delivery::fetch`].
    pub fn fetch_as(
        &self,
        client: &mut Client,
        requests: &[(String, String)],
        progress: &mut dyn Progress,
        report: &mut dyn FnMut(&str, &Outcome),
    ) -> Result<Vec<Outcome>> {
        let paths: Vec<String> = requests.iter().map(|(remote, _)| remote.clone()).collect();
        let outs = requests.iter().map(|(_, local)| OutputPath::below(local)).collect();
        self.fetch_into(client, &paths, outs, progress, report)
    }

    fn fetch_into(
        &self,
        client: &mut Client,
        paths: &[String],
        outs: Vec<std::result::Result<OutputPath, String>>,
        progress: &mut dyn Progress,
        report: &mut dyn FnMut(&str, &Outcome),
    ) -> Result<Vec<Outcome>> {
        // Opened once: every file is created and named relative to it.
        let out_dir = OutDir::open(&self.out_dir);
        let mut outcomes: Vec<Option<Outcome>> =
            paths.iter().zip(&outs).map(|(p, out)| self.refuse_locally(&out_dir, p, out)).collect();
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
            let outcome = match (outcomes[i].take(), &outs[i]) {
                (Some(o), _) => o,
                (None, Ok(out)) => {
                    let seq = in_flight.pop_front().expect("a request is in flight for every file");
                    self.receive(client, seq, &out_dir, out, progress, &mut chunk)?
                }
                (None, Err(_)) => unreachable!("refused by refuse_locally"),
            };
            progress.finish();
            report(path, &outcome);
            outcomes[i] = Some(outcome);
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every file has an outcome")).collect())
    }

    /// Receives the answer to request `seq` and, for a file, writes it to
    /// `out` in `out_dir`. The frames are read to the end whatever happens locally.
    fn receive(
        &self,
        client: &mut Client,
        seq: u32,
        out_dir: &std::io::Result<OutDir>,
        out: &OutputPath,
        progress: &mut dyn Progress,
        chunk: &mut [u8],
    ) -> Result<Outcome> {
        let (size, mode) = match read_start(client, seq, chunk)? {
            Ok(start) => start,
            Err(outcome) => return Ok(outcome),
        };
        progress.start(out.name(), size);
        let dir = self.out_dir.display();
        // A local failure does not stop the reading: the server streams the
        // file anyway, and the session goes on with the next one.
        let mut sink = match out_dir {
            Ok(out_dir) => out_dir.create(out, mode).map_err(|e| format!("creating a file in {dir}: {e}")),
            Err(e) => Err(format!("output directory {dir}: {e}")),
        };
        let mut write = |bytes: &[u8]| {
            if let Ok(s) = &mut sink {
                if let Err(e) = s.write_all(bytes) {
                    sink = Err(format!("writing into {dir}: {e}"));
                }
            }
        };
        let received = match read_body(client, seq, size, chunk, progress, &mut write)? {
            Body::Ended { count, checksum, received, digest } => {
                if count != received || count != size {
                    return Ok(Outcome::Failed(format!(
                        "size mismatch: announced {size}, sent {count}, received {received}"
                    )));
                }
                if checksum != digest {
                    return Ok(Outcome::Failed("checksum mismatch (xxh3-64)".into()));
                }
                received
            }
            Body::ServerError(why) => return Ok(Outcome::Failed(format!("server: {why}"))),
        };
        let sink = match sink {
            Ok(sink) => sink,
            Err(why) => return Ok(Outcome::Failed(why)),
        };
        Ok(match sink.persist(self.no_clobber) {
            Ok(()) => Outcome::Delivered { bytes: received },
            Err(e) => persist_failure(&e, &self.out_dir.join(out.shown())),
        })
    }
}

/// Reads the first frame of the answer to `seq`: the file's size and mode,
/// or the outcome of a file that does not come.
fn read_start(
    client: &mut Client,
    seq: u32,
    buf: &mut [u8],
) -> Result<std::result::Result<(u64, u32), Outcome>> {
    Ok(match client.next_frame(seq, buf)? {
        Frame::Control(Reply::Start { size, mode, .. }) => Ok((size, mode)),
        Frame::Control(Reply::NotFound) => Err(Outcome::NotFound),
        Frame::Control(Reply::Refused { reason, .. }) => Err(Outcome::Refused(reason)),
        Frame::Control(Reply::Error { reason, .. }) => Err(Outcome::Failed(format!("server: {reason}"))),
        other => return Err(Error::Protocol(format!("{other:?} where a file should start"))),
    })
}

/// How a file's data frames ended.
enum Body {
    /// The end frame came: the server's count and checksum, and what arrived
    /// and its checksum.
    Ended { count: u64, checksum: u64, received: u64, digest: u64 },
    /// The server gave up midway.
    ServerError(String),
}

/// Reads the data frames of request `seq`, whose start frame announced
/// `size` bytes, up to its end frame.
///
/// Each data frame is copied once, from the slot straight into `chunk`
/// (memory the server cannot reach; at least [`IO_CHUNK`] and one frame
/// long), hashed there while it is in cache, and handed to `write` in
/// [`IO_CHUNK`] pieces and the rest at the end: the checksum covers exactly
/// the bytes written.
fn read_body(
    client: &mut Client,
    seq: u32,
    size: u64,
    chunk: &mut [u8],
    progress: &mut dyn Progress,
    write: &mut dyn FnMut(&[u8]),
) -> Result<Body> {
    let mut hasher = Xxh3::new();
    let mut received = 0u64;
    let mut unreported = 0u64;
    // chunk[..fill] waits to be written.
    let mut fill = 0;
    loop {
        match client.next_frame(seq, &mut chunk[fill..])? {
            Frame::Data(len) => {
                received += u64::from(len);
                if received > size {
                    return Err(Error::Protocol(format!("server sent more than the announced {size} bytes")));
                }
                let end = fill + len as usize;
                hasher.update(&chunk[fill..end]);
                fill = end;
                if fill >= IO_CHUNK {
                    write(&chunk[..IO_CHUNK]);
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
                write(&chunk[..fill]);
                progress.advance(unreported);
                return Ok(Body::Ended { count, checksum, received, digest: hasher.digest() });
            }
            Frame::Control(Reply::Error { reason, .. }) => return Ok(Body::ServerError(reason)),
            other => return Err(Error::Protocol(format!("{other:?} inside a file"))),
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
    /// #     collect_every: shmxfer::server::COLLECT_EVERY,
    /// #     spin_budget: shmxfer::pacing::DEFAULT_SPIN_BUDGET,
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
        let mut chunk = vec![0; IO_CHUNK + self.max_payload()];
        let size = match read_start(self, seq, &mut chunk)? {
            Ok((size, _)) => size,
            Err(outcome) => return Ok(outcome),
        };
        progress.start(output_name(path).unwrap_or(path), size);
        let mut write_error: Option<std::io::Error> = None;
        let mut write = |bytes: &[u8]| {
            if write_error.is_none() {
                write_error = out.write_all(bytes).err();
            }
        };
        let body = read_body(self, seq, size, &mut chunk, progress, &mut write)?;
        if write_error.is_none() {
            write_error = out.flush().err();
        }
        match body {
            Body::Ended { .. } if write_error.is_some() => {
                let e = write_error.expect("checked");
                Ok(Outcome::Failed(format!("writing the file out: {e}")))
            }
            Body::Ended { count, received, .. } if count != received || count != size => {
                Ok(Outcome::Failed(format!(
                    "size mismatch: announced {size}, sent {count}, received {received}; \
                     the bytes written are not the file"
                )))
            }
            Body::Ended { checksum, digest, .. } if checksum != digest => {
                Ok(Outcome::Failed("checksum mismatch (xxh3-64); the bytes written are not the file".into()))
            }
            Body::Ended { received, .. } => Ok(Outcome::Delivered { bytes: received }),
            Body::ServerError(why) => Ok(Outcome::Failed(format!("server: {why}"))),
        }
    }
}

/// The outcome of a file that could not be given its name.
fn persist_failure(e: &Error, target: &std::path::Path) -> Outcome {
    if e.raw_os_error() == Some(libc::EEXIST) {
        Outcome::Failed(format!("{} exists; not replaced (--no-clobber)", target.display()))
    } else {
        Outcome::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_final_components() {
        assert_eq!(output_name("a/b/c.txt"), Some("c.txt"));
        assert_eq!(output_name("../x"), Some("x"));
        for none in ["", ".", "..", "a/", "a/.."] {
            assert_eq!(output_name(none), None, "{none:?}");
        }
    }

    #[test]
    fn two_paths_to_one_output_name_are_refused_unless_relative() {
        let paths: Vec<String> = ["d1/x", "a", "d2/x"].iter().map(|p| (*p).to_owned()).collect();
        let mut d = Delivery { out_dir: ".".into(), no_clobber: false, relative: false };
        match d.check_outputs(&paths) {
            Err(Error::SameOutput { first, second, output, .. }) => {
                assert_eq!((first.as_str(), second.as_str(), output.as_str()), ("d1/x", "d2/x", "x"));
            }
            other => panic!("{other:?}"),
        }
        d.relative = true;
        d.check_outputs(&paths).unwrap();
        assert_eq!(d.shown_name("./d1//x"), "d1/x");
        let same: Vec<String> = ["d1/x", "./d1/x"].iter().map(|p| (*p).to_owned()).collect();
        assert!(matches!(d.check_outputs(&same), Err(Error::SameOutput { .. })));
    }
}
