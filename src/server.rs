//! The serving role: owns the command queue, runs one thread per client
//! session, streams files through each client's region.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{debug, error, info, trace, warn};
use posixmq::PosixMq;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::protocol::{Command, Reply, MAX_MSG_LEN, MAX_PATH_LEN};
use crate::ring::{Liveness, Producer, RingSems};
use crate::shm_region::{
    unlink_semaphore, unlink_shm, validate_name, Region, Semaphore, SessionNames, ShmObject,
};
use crate::sys;

/// Messages a queue holds: the Linux default (`/proc/sys/fs/mqueue/msg_default`,
/// and the most an unprivileged process may ask for, `msg_max`).
pub const QUEUE_CAPACITY: usize = 10;
/// Largest message the queue accepts: the Linux default `msgsize_default`.
pub const QUEUE_MSG_LEN: usize = 8192;
/// Requests a session may have waiting before the server ends it as a flood.
pub const MAX_PENDING_REQUESTS: usize = 256;
/// Bytes read from a file per read() call; the slots then carry them on.
pub const IO_CHUNK: usize = 64 * 1024;
/// How often the main loop looks at the stop flag and finished sessions.
const POLL: Duration = Duration::from_millis(50);

const _: () = assert!(MAX_MSG_LEN <= QUEUE_MSG_LEN);

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The command queue's name, such as `/shmxfer`.
    pub queue: String,
    /// The directory whose regular files are served.
    pub root: PathBuf,
    /// Keep serving after clients leave (until stopped).
    pub persistent: bool,
    /// Sessions served at once; a client over the limit is answered "busy".
    pub max_sessions: usize,
}

/// The name of the liveness lock object of `queue`.
pub fn lock_name(queue: &str) -> String {
    format!("{queue}.lock")
}

/// Checks a queue name: an object name with room left for the session
/// objects derived from it.
///
/// # Errors
///
/// [`Error::InvalidName`].
pub fn validate_queue_name(queue: &str) -> Result<()> {
    validate_name(queue)?;
    // `.<pid>.<16 hex>.spaces` is added for the session objects.
    let longest = SessionNames::for_region(&format!("{queue}.4294967295.0123456789abcdef")).spaces;
    validate_name(&longest).map(|_| ()).map_err(|_| Error::InvalidName {
        name: queue.to_owned(),
        reason: format!(
            "is {} bytes; queue names may have at most {} bytes",
            queue.len(),
            queue.len() + crate::protocol::MAX_NAME_LEN - longest.len()
        ),
    })
}

/// A bound server: it holds the queue's liveness lock and the queue.
/// Dropping it removes both.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    root: Arc<File>,
    queue: PosixMq,
    /// Held, not read: while it lives the queue is ours; its Drop unlinks
    /// `<queue>.lock` and releases the lock.
    _lock: ShmObject,
}

impl Server {
    /// Takes the queue: locks `<queue>.lock`, removes a queue that a dead
    /// server left, creates the queue afresh (`O_EXCL`, 0600).
    ///
    /// # Errors
    ///
    /// [`Error::ServerRunning`] when a live server holds the lock;
    /// [`Error::InvalidName`]; [`Error::Os`] for the root or the queue.
    pub fn bind(config: ServerConfig) -> Result<Server> {
        validate_queue_name(&config.queue)?;
        let root = File::open(&config.root)
            .map_err(|e| Error::os_named("open root", &config.root.display().to_string(), e))?;
        if !root.metadata().map_err(|e| Error::os("fstat root", e))?.is_dir() {
            return Err(Error::os_named(
                "open root",
                &config.root.display().to_string(),
                std::io::Error::from_raw_os_error(libc::ENOTDIR),
            ));
        }
        let lock = lock_queue(&config.queue)?;
        match posixmq::remove_queue(&config.queue) {
            Ok(()) => warn!("removed queue {} left by a server that is gone", config.queue),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(Error::os_named("mq_unlink", &config.queue, e)),
        }
        let queue = posixmq::OpenOptions::readonly()
            .create_new()
            .mode(0o600)
            .capacity(QUEUE_CAPACITY)
            .max_msg_len(QUEUE_MSG_LEN)
            .open(&config.queue)
            .map_err(|e| queue_error(&config.queue, e))?;
        Ok(Server { config, root: Arc::new(root), queue, _lock: lock })
    }

    /// Serves until stopped: by `stop` turning true (a signal), a stop
    /// request, or — unless persistent — the last session closing after a
    /// client's shutdown message. Open sessions are cancelled and joined.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the queue fails.
    pub fn run(self, stop: Arc<AtomicBool>) -> Result<()> {
        info!(
            "serving {} on queue {} ({}, at most {} session(s) at once)",
            self.config.root.display(),
            self.config.queue,
            if self.config.persistent { "persistent" } else { "until the last client leaves" },
            self.config.max_sessions
        );
        let mut sessions: HashMap<String, Session> = HashMap::new();
        let mut any_closed = false;
        // Sessions answered "busy": their pipelined requests are dropped quietly.
        let mut refused: HashSet<String> = HashSet::new();
        let mut buf = vec![0u8; QUEUE_MSG_LEN];
        let mut garbage = LogBudget::default();
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                info!("stopping");
                break Ok(());
            }
            sessions.retain(|_, s| !s.reap_if_finished());
            // A client whose message is already queued is served first.
            if !self.config.persistent
                && any_closed
                && sessions.is_empty()
                && self.queue.attributes().map_or(true, |a| a.current_messages == 0)
            {
                info!("last client left; stopping");
                break Ok(());
            }
            let n = match self.queue.recv_timeout(&mut buf, POLL) {
                Ok((_, n)) => n,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIMEDOUT) | Some(libc::EAGAIN)) => continue,
                Err(e) => break Err(Error::os_named("mq_receive", &self.config.queue, e)),
            };
            let cmd = match Command::decode(&buf[..n]) {
                Ok(cmd) => cmd,
                Err(e) => {
                    if garbage.admit() {
                        warn!("dropped a {n}-byte queue message: {e}");
                    }
                    continue;
                }
            };
            trace!("message {cmd:?}");
            if cmd.region().is_some_and(|r| refused.contains(r)) {
                if matches!(cmd, Command::Close { .. }) {
                    refused.remove(cmd.region().unwrap_or_default());
                }
                continue;
            }
            match cmd {
                Command::Open { client_pid, region_size, region } => {
                    self.open_session(&mut sessions, &mut refused, client_pid, region_size, region, &stop)
                }
                Command::Get { client_pid, seq, region, path } => {
                    route(&mut sessions, &region, client_pid, Job::Get { seq, path })
                }
                Command::List { client_pid, seq, region } => {
                    route(&mut sessions, &region, client_pid, Job::List { seq })
                }
                Command::Close { client_pid, region } => match sessions.get_mut(&region) {
                    Some(s) if s.client_pid == client_pid => {
                        debug!("session {region}: client {client_pid} said goodbye");
                        s.jobs = None;
                        any_closed = true;
                    }
                    _ => warn!("dropped a shutdown message for unknown session {region}"),
                },
                Command::Stop { client_pid } => {
                    info!("stop requested by pid {client_pid}");
                    break Ok(());
                }
            }
        };
        stop.store(true, Ordering::Relaxed);
        for (_, mut s) in sessions.drain() {
            s.jobs = None;
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
        result
    }

    fn open_session(
        &self,
        sessions: &mut HashMap<String, Session>,
        refused: &mut HashSet<String>,
        client_pid: u32,
        region_size: u32,
        region: String,
        stop: &Arc<AtomicBool>,
    ) {
        if !is_session_name(&self.config.queue, client_pid, &region) {
            warn!("dropped an open message from pid {client_pid} naming {region:?}, not a session object of this queue");
            return;
        }
        if sessions.contains_key(&region) {
            warn!("dropped a second open message for session {region}");
            return;
        }
        if sessions.len() >= self.config.max_sessions {
            // Sessions whose clients said goodbye end within moments: give
            // them that moment before calling the server busy.
            let deadline = std::time::Instant::now() + Duration::from_millis(200);
            loop {
                sessions.retain(|_, s| !s.reap_if_finished());
                let closing = sessions.values().any(|s| s.jobs.is_none());
                if sessions.len() < self.config.max_sessions
                    || !closing
                    || std::time::Instant::now() > deadline
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if sessions.len() >= self.config.max_sessions {
            if refused.len() >= 1024 {
                refused.clear();
            }
            refused.insert(region.clone());
            warn!("busy: refused a session from pid {client_pid} ({} open)", sessions.len());
            if let Err(e) = answer_busy(&region, region_size, client_pid, self.config.max_sessions) {
                warn!("could not tell pid {client_pid} that the server is busy: {e}");
            }
            return;
        }
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let ctx = SessionCtx {
            names: SessionNames::for_region(&region),
            region_size,
            client_pid,
            root: Arc::clone(&self.root),
            stop: Arc::clone(stop),
            pending: Arc::clone(&pending),
        };
        let thread =
            std::thread::Builder::new().name(format!("session-{client_pid}")).spawn(move || ctx.run(rx));
        match thread {
            Ok(thread) => {
                debug!("session {region}: opened for pid {client_pid}");
                sessions
                    .insert(region, Session { client_pid, jobs: Some(tx), pending, thread: Some(thread) });
            }
            Err(e) => error!("could not start a session thread: {e}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = posixmq::remove_queue(&self.config.queue) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                warn!("could not remove queue {}: {e}", self.config.queue);
            }
        }
        // Then the fields drop, `_lock` among them: the lock is released
        // only after the queue is gone.
    }
}

/// Whether `region` has the form `<queue>.<client_pid>.<16 hex digits>`: the
/// server maps, and may unlink, only objects named like this.
fn is_session_name(queue: &str, client_pid: u32, region: &str) -> bool {
    region
        .strip_prefix(queue)
        .and_then(|r| r.strip_prefix(&format!(".{client_pid}.")))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn queue_error(queue: &str, e: std::io::Error) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::EINVAL) => format!(
            " (the queue needs {QUEUE_CAPACITY} messages of {QUEUE_MSG_LEN} bytes; see /proc/sys/fs/mqueue/msg_max and msgsize_max)"
        ),
        Some(libc::EMFILE) | Some(libc::ENOSPC) => {
            " (too many queues: see /proc/sys/fs/mqueue/queues_max, default 256, and RLIMIT_MSGQUEUE)".to_owned()
        }
        _ => String::new(),
    };
    Error::os_named("mq_open", queue, std::io::Error::new(e.kind(), format!("{e}{hint}")))
}

/// Locks `<queue>.lock` for this process, or reports the live holder. The
/// returned object unlinks the name when dropped; the lock lasts as long as
/// the object (or the process).
///
/// # Errors
///
/// [`Error::ServerRunning`] when another process holds the lock;
/// [`Error::Os`] from the calls.
pub fn lock_queue(queue: &str) -> Result<ShmObject> {
    use std::os::unix::fs::MetadataExt;
    let name = lock_name(queue);
    for _ in 0..20 {
        let mut lock = ShmObject::open_or_create(&name)?;
        if !sys::try_lock_exclusive(&lock).map_err(|e| Error::os_named("fcntl(F_OFD_SETLK)", &name, e))? {
            let pid = read_lock_pid(&lock);
            return Err(Error::ServerRunning { queue: queue.to_owned(), pid });
        }
        // A server that was exiting may have unlinked the name between our
        // open and our lock: then we hold a lock nobody else can see. Only a
        // lock on the object that still bears the name counts.
        let ours = lock.stat()?.ino();
        let named = ShmObject::open(&name, false).and_then(|o| o.stat()).map(|m| m.ino());
        if named.ok() == Some(ours) {
            lock.take_ownership();
            lock.write_all_at_start(format!("{}\n", std::process::id()).as_bytes())?;
            return Ok(lock);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::ServerRunning { queue: queue.to_owned(), pid: None })
}

/// The pid a server wrote into its lock object, if readable.
pub(crate) fn read_lock_pid(lock: &ShmObject) -> Option<u32> {
    let mut text = String::new();
    let fd = lock.as_fd_clone().ok()?;
    File::from(fd).take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Answers a client over the session limit: a `Busy` frame in its region.
fn answer_busy(region: &str, region_size: u32, client_pid: u32, max: usize) -> Result<()> {
    let names = SessionNames::for_region(region);
    let region = Arc::new(Region::open(&names.region, region_size, client_pid)?);
    let sems = RingSems { items: Semaphore::open(&names.items)?, spaces: Semaphore::open(&names.spaces)? };
    region.set_server_pid(std::process::id());
    if !sems.spaces.try_wait() {
        return Err(Error::Protocol("no free slot for the busy answer".into()));
    }
    sems.spaces.post()?;
    // One free slot is there, so this does not block.
    let alive: Liveness = Box::new(|| Ok(()));
    let mut producer = Producer::new(region, sems, Arc::new(AtomicBool::new(false)), alive);
    producer.send(0, &Reply::Busy { max_sessions: max as u32 })
}

/// Bad messages logged per second at most: a flood of garbage on the queue
/// is dropped without flooding the log too.
const GARBAGE_LOGS_PER_SECOND: u32 = 20;

/// Counts log lines per second; past the budget, lines are counted, not
/// printed, and the count is logged with the first line of a later second.
#[derive(Debug)]
struct LogBudget {
    second: std::time::Instant,
    logged: u32,
    suppressed: u64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget { second: std::time::Instant::now(), logged: 0, suppressed: 0 }
    }
}

impl LogBudget {
    /// Whether one more line may be logged now.
    fn admit(&mut self) -> bool {
        if self.second.elapsed() >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                warn!("dropped {} more bad queue messages without logging them", self.suppressed);
            }
            *self = LogBudget::default();
        }
        if self.logged < GARBAGE_LOGS_PER_SECOND {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

enum Job {
    Get { seq: u32, path: String },
    List { seq: u32 },
}

struct Session {
    client_pid: u32,
    /// Dropped on the client's shutdown message: the thread finishes what is
    /// queued and ends.
    jobs: Option<mpsc::Sender<Job>>,
    pending: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Session {
    fn reap_if_finished(&mut self) -> bool {
        match &self.thread {
            Some(t) if t.is_finished() => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                true
            }
            Some(_) => false,
            None => true,
        }
    }
}

fn route(sessions: &mut HashMap<String, Session>, region: &str, client_pid: u32, job: Job) {
    let Some(s) = sessions.get_mut(region) else {
        warn!("dropped a request for unknown session {region}");
        return;
    };
    if s.client_pid != client_pid {
        warn!(
            "dropped a request for session {region} from pid {client_pid}, not its client {}",
            s.client_pid
        );
        return;
    }
    let Some(jobs) = &s.jobs else {
        warn!("dropped a request for session {region} after its shutdown message");
        return;
    };
    if s.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_REQUESTS {
        warn!("session {region}: more than {MAX_PENDING_REQUESTS} requests waiting; ending it");
        s.jobs = None;
        return;
    }
    if jobs.send(job).is_err() {
        s.jobs = None;
    }
}

struct SessionCtx {
    names: SessionNames,
    region_size: u32,
    client_pid: u32,
    root: Arc<File>,
    stop: Arc<AtomicBool>,
    pending: Arc<AtomicUsize>,
}

impl SessionCtx {
    fn run(self, jobs: mpsc::Receiver<Job>) {
        let region = &self.names.region;
        let mut producer = match self.attach() {
            Ok(p) => p,
            Err(e) => {
                warn!("session {region}: refused: {e}");
                return;
            }
        };
        let mut buf = Vec::new();
        let outcome = loop {
            let job = match jobs.recv_timeout(crate::ring::WAIT_SLICE) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.stop.load(Ordering::Relaxed) {
                        break Err(Error::Cancelled);
                    }
                    if !producer.region().creator_alive() {
                        break Err(Error::PeerGone(format!("client {} died", self.client_pid)));
                    }
                    continue;
                }
            };
            self.pending.fetch_sub(1, Ordering::Relaxed);
            let res = match job {
                Job::Get { seq, path } => serve_file(&mut producer, &self.root, seq, &path, &mut buf),
                Job::List { seq } => serve_list(&mut producer, &self.root, seq),
            };
            if let Err(e) = res {
                break Err(e);
            }
        };
        match outcome {
            Ok(()) => debug!("session {region}: closed"),
            Err(Error::Cancelled) => debug!("session {region}: cancelled"),
            Err(Error::PeerGone(why)) => warn!("session {region}: {why}; removing its objects"),
            Err(e) => warn!("session {region}: ended: {e}"),
        }
        // Whatever ended the session (a shutdown included), a client that is
        // gone may have left its objects: it cannot remove them any more.
        if !producer.region().creator_alive() {
            drop(producer);
            self.unlink_dead_client();
        }
    }

    fn attach(&self) -> Result<Producer> {
        let region = Arc::new(Region::open(&self.names.region, self.region_size, self.client_pid)?);
        let sems = RingSems {
            items: Semaphore::open(&self.names.items)?,
            spaces: Semaphore::open(&self.names.spaces)?,
        };
        region.set_server_pid(std::process::id());
        let watched = Arc::clone(&region);
        let pid = self.client_pid;
        let alive: Liveness = Box::new(move || {
            if watched.creator_alive() {
                Ok(())
            } else {
                Err(Error::PeerGone(format!("client {pid} died")))
            }
        });
        Ok(Producer::new(region, sems, Arc::clone(&self.stop), alive))
    }

    /// Removes the objects of a client that died without cleaning up. Only
    /// called once its liveness lock is free, i.e. the client is gone.
    fn unlink_dead_client(&self) {
        for res in [
            unlink_shm(&self.names.region),
            unlink_semaphore(&self.names.items),
            unlink_semaphore(&self.names.spaces),
        ] {
            match res {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => warn!("{e}"),
            }
        }
    }
}

/// Why a path is not served, as the client will read it.
fn refusal(path: &str, e: &std::io::Error) -> Option<Reply> {
    Some(match e.raw_os_error()? {
        libc::ENOENT | libc::ENOTDIR => Reply::NotFound,
        libc::EXDEV | libc::ELOOP => Reply::Refused(format!("{path} leads outside the served directory")),
        libc::EACCES | libc::EPERM => Reply::Refused("permission denied".into()),
        libc::ENAMETOOLONG => Reply::Refused("name too long".into()),
        libc::EINVAL => Reply::Refused("invalid path".into()),
        _ => return None,
    })
}

fn file_type_name(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Sends a file's negative answer, logging it (`-v` shows refusals; errors
/// always show).
fn answer(tx: &mut Producer, seq: u32, path: &str, reply: Reply) -> Result<()> {
    match &reply {
        Reply::NotFound => debug!("{path}: not found"),
        Reply::Refused(why) => debug!("{path}: refused: {why}"),
        Reply::Error(why) => warn!("{path}: {why}"),
        _ => {}
    }
    tx.send(seq, &reply)
}

fn serve_file(tx: &mut Producer, root: &File, seq: u32, path: &str, buf: &mut Vec<u8>) -> Result<()> {
    if path.len() > MAX_PATH_LEN {
        return answer(tx, seq, path, Reply::Refused("name too long".into()));
    }
    let handle = match sys::open_beneath(root, path) {
        Ok(f) => f,
        Err(e) => {
            let reply = refusal(path, &e).unwrap_or_else(|| Reply::Error(e.to_string()));
            return answer(tx, seq, path, reply);
        }
    };
    let meta = match handle.metadata() {
        Ok(m) => m,
        Err(e) => return answer(tx, seq, path, Reply::Error(e.to_string())),
    };
    if !meta.file_type().is_file() {
        let why = format!("{path} is {}", file_type_name(meta.file_type()));
        return answer(tx, seq, path, Reply::Refused(why));
    }
    // The path was resolved above; whatever fails now is the server's
    // trouble (no /proc, no permission to read), not a missing file.
    let mut file = match sys::reopen_for_reading(&handle) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            return answer(tx, seq, path, Reply::Refused("permission denied".into()))
        }
        Err(e) => return answer(tx, seq, path, Reply::Error(format!("opening {path}: {e}"))),
    };
    let size = meta.len();
    debug!("sending {path} ({size} bytes)");
    tx.send(seq, &Reply::Start { size })?;
    let mut hasher = Xxh3::new();
    // Read in large pieces and hand them out slot by slot: one read() per
    // IO_CHUNK bytes, not one per slot.
    buf.resize(IO_CHUNK, 0);
    let mut sent = 0u64;
    while sent < size {
        let want = (size - sent).min(buf.len() as u64) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return answer(tx, seq, path, Reply::Error(format!("{path} shrank while it was sent"))),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return answer(tx, seq, path, Reply::Error(format!("reading {path}: {e}"))),
        };
        hasher.update(&buf[..n]);
        for piece in buf[..n].chunks(tx.payload()) {
            tx.send_data(seq, piece)?;
        }
        sent += n as u64;
    }
    tx.send(seq, &Reply::End { count: sent, checksum: hasher.digest() })
}

/// Entries a listing walks at most, and how deep.
const LIST_MAX_ENTRIES: usize = 100_000;
const LIST_MAX_DEPTH: usize = 32;

fn serve_list(tx: &mut Producer, root: &File, seq: u32) -> Result<()> {
    let mut entries = Vec::new();
    let root_path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(root)));
    walk(&root_path, Path::new(""), 0, &mut entries);
    entries.sort();
    let mut count = 0u64;
    for (path, size) in entries {
        // size (8 bytes) and path: entries too long for one slot are skipped.
        if 8 + path.len() > tx.payload() {
            continue;
        }
        tx.send(seq, &Reply::ListEntry { size, path })?;
        count += 1;
    }
    tx.send(seq, &Reply::ListEnd { count })
}

fn walk(dir: &Path, rel: &Path, depth: usize, out: &mut Vec<(String, u64)>) {
    if depth > LIST_MAX_DEPTH {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        if out.len() >= LIST_MAX_ENTRIES {
            return;
        }
        let Ok(ft) = entry.file_type() else { continue };
        let rel_path = rel.join(entry.file_name());
        if ft.is_dir() {
            walk(&entry.path(), &rel_path, depth + 1, out);
        } else if ft.is_file() {
            let (Ok(meta), Some(name)) = (entry.metadata(), rel_path.to_str()) else { continue };
            if name.len() <= MAX_PATH_LEN {
                out.push((name.to_owned(), meta.len()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_admits_a_few_lines_per_second() {
        let mut budget = LogBudget::default();
        let admitted = (0..1000).filter(|_| budget.admit()).count();
        assert_eq!(admitted, GARBAGE_LOGS_PER_SECOND as usize);
        assert_eq!(budget.suppressed, 1000 - u64::from(GARBAGE_LOGS_PER_SECOND));
        budget.second -= Duration::from_secs(1);
        assert!(budget.admit());
        assert_eq!(budget.suppressed, 0);
    }

    #[test]
    fn only_session_names_of_this_queue_and_pid_are_accepted() {
        assert!(is_session_name("/q", 12, "/q.12.0123456789abcdef"));
        for bad in [
            "/q.13.0123456789abcdef",
            "/q.12.0123",
            "/r.12.0123456789abcdef",
            "/q.lock",
            "/q.12.0123456789abcdeg",
        ] {
            assert!(!is_session_name("/q", 12, bad), "{bad}");
        }
    }
}
