//! The requesting role: find the server, open a session, receive files into
//! the output directory.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use posixmq::PosixMq;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::protocol::{Command, FrameHeader, FrameKind, Reply, MAX_PATH_LEN};
use crate::ring::{Consumer, Liveness, RingSems, WAIT_SLICE};
use crate::server::{lock_name, validate_queue_name, IO_CHUNK};
use crate::shm_region::{Geometry, Region, Semaphore, SessionNames, ShmObject, DEFAULT_SLOTS};
use crate::sys;

/// Requests a client keeps in flight: the server always has the next file
/// queued, and one client never fills the shared queue (10 messages).
pub const REQUEST_WINDOW: usize = 4;

/// How a client connects and where it writes.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The command queue's name, such as `/shmxfer`.
    pub queue: String,
    /// How long to wait for a server to appear; zero means one try.
    pub wait: Duration,
    /// Slots in the ring (1..=4).
    pub slots: u32,
}

impl ClientConfig {
    /// A configuration with the defaults: 30 s wait, [`DEFAULT_SLOTS`] slots.
    pub fn new(queue: impl Into<String>) -> ClientConfig {
        ClientConfig { queue: queue.into(), wait: Duration::from_secs(30), slots: DEFAULT_SLOTS }
    }
}

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

/// Where and how received files are written.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The output directory.
    pub out_dir: PathBuf,
    /// Refuse to replace existing files.
    pub no_clobber: bool,
}

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

/// A live session with a server.
pub struct Client {
    queue_name: String,
    queue: PosixMq,
    consumer: Consumer,
    cancel: Arc<AtomicBool>,
    names: SessionNames,
    next_seq: u32,
    closed: bool,
    /// Whether the server still holds its lock; checked while a send waits.
    server_alive: Liveness,
    /// This process's id, named in every message.
    pid: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("queue", &self.queue_name).field("region", &self.names.region).finish()
    }
}

/// Opens the queue of a live server, retrying with a growing back-off until
/// `wait` runs out. `on_wait` is called once, the first time it has to wait.
fn open_queue(
    config: &ClientConfig,
    started: Instant,
    cancel: &AtomicBool,
    told: &mut bool,
    on_wait: &mut dyn FnMut(),
) -> Result<(PosixMq, Arc<ShmObject>)> {
    validate_queue_name(&config.queue)?;
    let mut backoff = Duration::from_millis(5);
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        match try_open_queue(&config.queue)? {
            Some(found) => return Ok(found),
            None => {
                let waited = started.elapsed();
                if waited >= config.wait {
                    return Err(Error::NoServer { queue: config.queue.clone(), waited });
                }
                if !*told {
                    on_wait();
                    *told = true;
                }
                std::thread::sleep(backoff.min(config.wait - waited));
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// The queue and the lock object of a live server, or `None` when there is
/// no queue or only one left by a dead server.
fn try_open_queue(queue: &str) -> Result<Option<(PosixMq, Arc<ShmObject>)>> {
    let lock = match ShmObject::open(&lock_name(queue), false) {
        Ok(lock) => lock,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    if !sys::is_write_locked(&lock).map_err(|e| Error::os_named("fcntl(F_OFD_GETLK)", lock.name(), e))? {
        return Ok(None);
    }
    let mq = match posixmq::OpenOptions::writeonly().open(queue) {
        Ok(mq) => mq,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::os_named("mq_open", queue, e)),
    };
    Ok(Some((mq, Arc::new(lock))))
}

fn server_liveness(lock: Arc<ShmObject>, queue: String) -> Liveness {
    Box::new(move || match sys::is_write_locked(&*lock) {
        Ok(false) => Err(Error::PeerGone(format!("the server of queue {queue} died or stopped"))),
        _ => Ok(()),
    })
}

/// How long a live server may take to attach to a new session.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the server has mapped the region (it writes its pid into the
/// header), polling with a short growing pause.
fn wait_attached(region: &Region, alive: &Liveness, cancel: &AtomicBool) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    while region.server_pid() == 0 {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        alive()?;
        if start.elapsed() > ATTACH_TIMEOUT {
            return Err(Error::Protocol(format!(
                "the server did not open the session within {} s",
                ATTACH_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    Ok(())
}

/// Sends one message, waiting in slices while the queue is full.
fn send(queue: &PosixMq, cmd: &Command, cancel: &AtomicBool, alive: &Liveness) -> Result<()> {
    let bytes = cmd.encode()?;
    loop {
        match queue.send_timeout(0, &bytes, WAIT_SLICE) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIMEDOUT) | Some(libc::EAGAIN)) => {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                alive()?;
            }
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                return Err(Error::os(
                    "mq_send",
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "{e}: the queue takes shorter messages than this {}-byte request",
                            bytes.len()
                        ),
                    ),
                ))
            }
            Err(e) => return Err(Error::os("mq_send", e)),
        }
    }
}

/// Asks the server of `config.queue` to stop, and waits until its queue is
/// gone.
///
/// # Errors
///
/// [`Error::NoServer`] when no server shows up within `config.wait`;
/// [`Error::PeerGone`] when it does not stop within 10 seconds.
pub fn stop_server(config: &ClientConfig, cancel: &AtomicBool, on_wait: &mut dyn FnMut()) -> Result<()> {
    let (queue, lock) = open_queue(config, Instant::now(), cancel, &mut false, on_wait)?;
    let alive = server_liveness(Arc::clone(&lock), config.queue.clone());
    send(&queue, &Command::Stop { client_pid: std::process::id() }, cancel, &alive)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sys::is_write_locked(&*lock).unwrap_or(false) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if Instant::now() > deadline {
            return Err(Error::PeerGone(format!("the server of {} did not stop within 10 s", config.queue)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

impl Client {
    /// Finds a live server (waiting up to `config.wait`), creates the session
    /// objects and opens the session.
    ///
    /// # Errors
    ///
    /// [`Error::NoServer`], [`Error::Cancelled`], [`Error::Os`] for the objects.
    pub fn connect(
        config: &ClientConfig,
        cancel: Arc<AtomicBool>,
        on_wait: &mut dyn FnMut(),
    ) -> Result<Client> {
        let started = Instant::now();
        let mut told = false;
        loop {
            let (queue, lock) = open_queue(config, started, &cancel, &mut told, on_wait)?;
            let pid = std::process::id();
            let geometry = Geometry::for_slots(config.slots);
            let names = SessionNames::fresh(&config.queue, pid)?;
            let region = Region::create(&names.region, geometry, pid)?;
            let sems = RingSems {
                items: Semaphore::create_exclusive(&names.items, 0)?,
                spaces: Semaphore::create_exclusive(&names.spaces, geometry.slots())?,
            };
            let alive = server_liveness(Arc::clone(&lock), config.queue.clone());
            let open = Command::Open {
                client_pid: pid,
                region_size: geometry.region_size() as u32,
                region: names.region.clone(),
            };
            send(&queue, &open, &cancel, &alive)?;
            match wait_attached(&region, &alive, &cancel) {
                Ok(()) => {}
                // The server went away before it took the session (a server
                // in its default mode that was just finishing): our objects
                // are dropped here, and we look for a server again.
                Err(Error::PeerGone(_)) => continue,
                Err(e) => return Err(e),
            }
            let consumer = Consumer::new(region, sems, Arc::clone(&cancel), alive);
            return Ok(Client {
                queue_name: config.queue.clone(),
                queue,
                consumer,
                cancel,
                names,
                next_seq: 1,
                closed: false,
                server_alive: server_liveness(lock, config.queue.clone()),
                pid,
            });
        }
    }

    /// The session's object names.
    pub fn names(&self) -> &SessionNames {
        &self.names
    }

    fn send(&self, cmd: &Command) -> Result<()> {
        send(&self.queue, cmd, &self.cancel, &self.server_alive)
    }

    fn request(&mut self, path: &str) -> Result<u32> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        self.send(&Command::Get {
            client_pid: self.pid,
            seq,
            region: self.names.region.clone(),
            path: path.to_owned(),
        })?;
        Ok(seq)
    }

    /// Reads the next frame, checks it answers `seq`, and decodes control
    /// frames. Busy answers end the session.
    fn next_frame(&mut self, seq: u32, buf: &mut Vec<u8>) -> Result<(FrameHeader, Option<Reply>)> {
        let header = self.consumer.recv(buf)?;
        if header.kind == FrameKind::Busy {
            let reply = Reply::decode(header.kind, buf)?;
            let Reply::Busy { max_sessions } = reply else { unreachable!("decoded by kind") };
            return Err(Error::Busy { max_sessions });
        }
        if header.seq != seq {
            return Err(Error::Protocol(format!("frame for request {}, expected {seq}", header.seq)));
        }
        if header.kind == FrameKind::Data {
            return Ok((header, None));
        }
        let reply = Reply::decode(header.kind, buf)?;
        Ok((header, Some(reply)))
    }

    /// Fetches `paths` in order into `delivery.out_dir`, keeping a few
    /// requests in flight. Returns one outcome per path; a session-level
    /// failure (server gone, protocol error, interrupt) is an `Err` and
    /// leaves no partial file.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`], [`Error::Protocol`], [`Error::Busy`],
    /// [`Error::Cancelled`] or [`Error::Os`] from the queue.
    pub fn fetch(
        &mut self,
        paths: &[String],
        delivery: &Delivery,
        progress: &mut dyn Progress,
        report: &mut dyn FnMut(&str, &Outcome),
    ) -> Result<Vec<Outcome>> {
        // Files refused locally get no request.
        let mut outcomes: Vec<Option<Outcome>> = paths
            .iter()
            .map(|p| match output_name(p) {
                None => Some(Outcome::Failed("no file name in this path".into())),
                Some(_) if p.len() > MAX_PATH_LEN => Some(Outcome::Failed(format!(
                    "path is {} bytes, at most {MAX_PATH_LEN} allowed",
                    p.len()
                ))),
                Some(name)
                    if delivery.no_clobber && delivery.out_dir.join(name).symlink_metadata().is_ok() =>
                {
                    Some(Outcome::Failed(format!(
                        "{} exists; not replaced (--no-clobber)",
                        delivery.out_dir.join(name).display()
                    )))
                }
                Some(_) => None,
            })
            .collect();
        let todo: Vec<usize> = (0..paths.len()).filter(|&i| outcomes[i].is_none()).collect();
        let mut in_flight: VecDeque<(usize, u32)> = VecDeque::new();
        let mut next = 0;
        let mut buf = Vec::with_capacity(self.consumer.payload());
        for (i, path) in paths.iter().enumerate() {
            while in_flight.len() < REQUEST_WINDOW && next < todo.len() {
                let seq = self.request(&paths[todo[next]])?;
                in_flight.push_back((todo[next], seq));
                next += 1;
            }
            let outcome = match outcomes[i].take() {
                Some(o) => o,
                None => {
                    let (idx, seq) = in_flight.pop_front().expect("a request is in flight for every file");
                    debug_assert_eq!(idx, i);
                    let name = output_name(path).expect("checked above");
                    self.receive(seq, name, delivery, progress, &mut buf)?
                }
            };
            progress.finish();
            report(path, &outcome);
            outcomes[i] = Some(outcome);
        }
        Ok(outcomes.into_iter().map(|o| o.expect("every file has an outcome")).collect())
    }

    fn receive(
        &mut self,
        seq: u32,
        name: &str,
        delivery: &Delivery,
        progress: &mut dyn Progress,
        buf: &mut Vec<u8>,
    ) -> Result<Outcome> {
        let size = match self.next_frame(seq, buf)? {
            (_, Some(Reply::Start { size })) => size,
            (_, Some(Reply::NotFound)) => return Ok(Outcome::NotFound),
            (_, Some(Reply::Refused(why))) => return Ok(Outcome::Refused(why)),
            (_, Some(Reply::Error(why))) => return Ok(Outcome::Failed(format!("server: {why}"))),
            (h, _) => return Err(Error::Protocol(format!("{:?} frame where a file should start", h.kind))),
        };
        progress.start(name, size);
        let mut sink = match Sink::new(&delivery.out_dir) {
            Ok(s) => Some(s),
            Err(e) => {
                // Keep reading: the server streams the file anyway.
                self.drain(seq, size, buf)?;
                return Ok(Outcome::Failed(format!(
                    "creating a file in {}: {e}",
                    delivery.out_dir.display()
                )));
            }
        };
        let mut write_error: Option<std::io::Error> = None;
        let mut hasher = Xxh3::new();
        let mut received = 0u64;
        let mut unreported = 0u64;
        loop {
            match self.next_frame(seq, buf)? {
                (h, None) => {
                    received += u64::from(h.len);
                    if received > size {
                        return Err(Error::Protocol(format!(
                            "server sent more than the announced {size} bytes"
                        )));
                    }
                    hasher.update(buf);
                    if let Some(s) = sink.as_mut() {
                        if let Err(e) = s.out.write_all(buf) {
                            write_error = Some(e);
                            sink = None;
                        }
                    }
                    unreported += u64::from(h.len);
                    if unreported >= 1 << 20 {
                        progress.advance(unreported);
                        unreported = 0;
                    }
                }
                (_, Some(Reply::End { count, checksum })) => {
                    progress.advance(unreported);
                    if count != received || count != size {
                        return Ok(Outcome::Failed(format!(
                            "size mismatch: announced {size}, sent {count}, received {received}"
                        )));
                    }
                    if checksum != hasher.digest() {
                        return Ok(Outcome::Failed("checksum mismatch (xxh3-64)".into()));
                    }
                    if let Some(e) = write_error {
                        return Ok(Outcome::Failed(format!(
                            "writing into {}: {e}",
                            delivery.out_dir.display()
                        )));
                    }
                    let sink = sink.expect("no write error, so the sink is there");
                    return Ok(match sink.persist(&delivery.out_dir, name, delivery.no_clobber) {
                        Ok(()) => Outcome::Delivered { bytes: received },
                        Err(e) => Outcome::Failed(e),
                    });
                }
                (_, Some(Reply::Error(why))) => return Ok(Outcome::Failed(format!("server: {why}"))),
                (h, _) => return Err(Error::Protocol(format!("{:?} frame inside a file", h.kind))),
            }
        }
    }

    /// Reads and discards the rest of a file's frames.
    fn drain(&mut self, seq: u32, size: u64, buf: &mut Vec<u8>) -> Result<()> {
        let mut received = 0u64;
        loop {
            match self.next_frame(seq, buf)? {
                (h, None) => {
                    received += u64::from(h.len);
                    if received > size {
                        return Err(Error::Protocol("server sent more than it announced".into()));
                    }
                }
                (_, Some(Reply::End { .. } | Reply::Error(_))) => return Ok(()),
                (h, _) => return Err(Error::Protocol(format!("{:?} frame inside a file", h.kind))),
            }
        }
    }

    /// Asks for the server's list of files: `(relative path, size)`, sorted.
    ///
    /// # Errors
    ///
    /// As [`Client::fetch`].
    pub fn list(&mut self) -> Result<Vec<(String, u64)>> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.send(&Command::List { client_pid: self.pid, seq, region: self.names.region.clone() })?;
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            match self.next_frame(seq, &mut buf)? {
                (_, Some(Reply::ListEntry { size, path })) => out.push((path, size)),
                (_, Some(Reply::ListEnd { count })) if count == out.len() as u64 => return Ok(out),
                (_, Some(Reply::ListEnd { count })) => {
                    return Err(Error::Protocol(format!(
                        "listing ended at {count} entries, received {}",
                        out.len()
                    )))
                }
                (_, Some(Reply::Error(why))) => return Err(Error::Protocol(format!("server: {why}"))),
                (h, _) => return Err(Error::Protocol(format!("{:?} frame in a listing", h.kind))),
            }
        }
    }

    /// Sends the shutdown message. Dropping the client unlinks its objects.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from the queue, [`Error::PeerGone`].
    pub fn close(mut self) -> Result<()> {
        self.closed = true;
        self.send(&Command::Close { client_pid: self.pid, region: self.names.region.clone() })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if !self.closed {
            // Best effort: tell the server the session ends, without waiting.
            if let Ok(bytes) =
                (Command::Close { client_pid: self.pid, region: self.names.region.clone() }).encode()
            {
                let _ = self.queue.send_timeout(0, &bytes, Duration::from_millis(10));
            }
        }
    }
}

/// A file being received: unnamed (`O_TMPFILE`) where the filesystem can,
/// else a named temporary file that is removed on drop.
struct Sink {
    /// Writes in [`crate::server::IO_CHUNK`] pieces, not one per slot.
    out: BufWriter<File>,
    named: Option<tempfile::TempPath>,
}

impl Sink {
    fn new(dir: &Path) -> std::io::Result<Sink> {
        match sys::unnamed_tempfile(dir) {
            Ok(file) => Ok(Sink { out: BufWriter::with_capacity(IO_CHUNK, file), named: None }),
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
        Ok(Sink { out: BufWriter::with_capacity(IO_CHUNK, file), named: Some(path) })
    }

    /// Gives the verified file its final name.
    fn persist(self, dir: &Path, name: &str, no_clobber: bool) -> std::result::Result<(), String> {
        let target = dir.join(name);
        let shown = target.display();
        let file = self.out.into_inner().map_err(|e| format!("writing {shown}: {}", e.error()))?;
        if let Some(path) = self.named {
            let res = if no_clobber {
                std::fs::hard_link(&path, &target).map(|()| drop(path))
            } else {
                path.persist(&target).map_err(|e| e.error)
            };
            return res.map_err(|e| format!("{shown}: {e}"));
        }
        match sys::link_into_place(&file, dir, name) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && no_clobber => {
                Err(format!("{shown} exists; not replaced (--no-clobber)"))
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Link under a temporary name beside it, then rename over.
                let random = sys::random_u64().map_err(|e| e.to_string())?;
                let tmp_name = format!(".{name}.{random:016x}.shmxfer");
                sys::link_into_place(&file, dir, &tmp_name).map_err(|e| format!("{shown}: {e}"))?;
                std::fs::rename(dir.join(&tmp_name), &target).map_err(|e| {
                    let _ = std::fs::remove_file(dir.join(&tmp_name));
                    format!("{shown}: {e}")
                })
            }
            Err(e) => Err(format!("{shown}: {e}")),
        }
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
                sink.out.write_all(bytes).unwrap();
                sink.persist(dir.path(), "f", no_clobber)
            };
            put(b"one", false).unwrap();
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"one");
            put(b"two", false).unwrap();
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"two");
            let err = put(b"three", true).unwrap_err();
            assert!(err.contains("exists") || err.contains("File exists"), "{err}");
            assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"two");
            // A sink dropped unpersisted leaves nothing.
            let mut sink = make(dir.path()).unwrap();
            sink.out.write_all(b"partial").unwrap();
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
