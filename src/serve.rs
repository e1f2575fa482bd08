//! One session on the server side: the thread that maps a client's region
//! and answers its requests, a file or a listing at a time, through the
//! ring.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::liveness::client_alive;
use crate::names::SessionNames;
use crate::owned_name::remove_session;
use crate::pacing::Pacing;
use crate::protocol::{ReasonCode, Reply, SessionKind, MAX_PATH_LEN, MODE_BITS};
use crate::ring::{Liveness, Producer, RingSems, WAIT_SLICE};
use crate::semaphore::Semaphore;
use crate::shm_region::{EndReason, Region};
use crate::stats::{duration_text, rate_text, ServerStats, SessionStats};
use crate::text::{byte_count, quote_name};
use crate::{sys, IO_CHUNK};

/// What a session is asked to do.
#[derive(Debug)]
pub(crate) enum Job {
    Get { seq: u32, path: String },
    List { seq: u32 },
    Status { seq: u32 },
}

/// What every session of one server shares.
#[derive(Debug, Clone)]
pub(crate) struct ServeEnv {
    /// The served directory, open.
    pub root: Arc<File>,
    /// Turns true when the server stops: sessions end at the next frame.
    pub stop: Arc<AtomicBool>,
    /// How long a session may go without a frame taken or a request sent
    /// before the server ends it (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// The server's totals and live sessions.
    pub stats: Arc<ServerStats>,
    /// The spinners and turns all sessions share.
    pub pacing: Pacing,
}

/// A session about to run in its own thread.
#[derive(Debug)]
pub(crate) struct SessionThread {
    pub names: SessionNames,
    pub region_size: u32,
    pub client_pid: u32,
    pub env: ServeEnv,
    /// Requests routed to this session and not yet taken.
    pub pending: Arc<AtomicUsize>,
    /// What this session is doing, for the log and `--status`.
    pub stats: Arc<SessionStats>,
    /// What the session is for: a status session is refused files and
    /// listings.
    pub kind: SessionKind,
}

/// What became of one file request, as far as the server knows.
enum Served {
    /// Sent whole: this many bytes, and the checksum.
    Sent(u64),
    /// Answered with this negative reply (not found, refused, error).
    Answered(Reply),
}

impl SessionThread {
    /// Serves the session's requests until the client says goodbye (the
    /// sender of `jobs` drops), dies, or the server stops.
    pub fn run(self, jobs: mpsc::Receiver<Job>) {
        let region = &self.names.region;
        let attached =
            attach(&self.names, self.region_size, self.client_pid, &self.env.stop, &self.env.pacing);
        let mut producer = match attached {
            Ok(p) => p.with_stall_timeout(self.env.stall_timeout),
            Err(e) => {
                warn!("session {region}: refused: {e}");
                return;
            }
        };
        let outcome = self.serve(&mut producer, &jobs);
        let pid = self.client_pid;
        let (bytes, lasted) = self.stats.totals();
        let totals = format!("{} in {}", byte_count(bytes), duration_text(lasted));
        match outcome {
            Ok(()) => debug!("client {pid}: session {region} closed: {totals}"),
            Err(Error::Cancelled) => {
                producer.region().mark_ended(EndReason::ServerStopping);
                debug!("client {pid}: session {region} cancelled: {totals}")
            }
            Err(Error::Stalled { waited }) => {
                producer.region().mark_ended(EndReason::Stalled);
                let secs = waited.as_secs_f64();
                warn!("client {pid}: session {region}: the client took no frame for {secs:.0} s (stopped?); session ended (--stall-timeout)");
            }
            Err(Error::Timeout { after, .. }) => {
                producer.region().mark_ended(EndReason::Idle);
                let secs = after.as_secs_f64();
                warn!("client {pid}: session {region}: the client sent no request for {secs:.0} s; session ended (--stall-timeout)");
            }
            // Interrupted after its goodbye (Ctrl-C): it left, as it said.
            Err(Error::PeerGone(_)) if self.stats.has_said_goodbye() => {
                debug!("client {pid}: session {region} ended: the client left during a transfer: {totals}")
            }
            Err(Error::PeerGone(why)) => warn!("client {pid}: session {region}: {why}; removing its objects"),
            Err(e) => warn!("client {pid}: session {region} ended: {e}"),
        }
        // Whatever ended the session (a shutdown included), a client that is
        // gone may have left its objects: it cannot remove them any more.
        if !client_alive(producer.region()) {
            drop(producer);
            if let Err(e) = remove_session(&self.names) {
                warn!("session {region}: {e}");
            }
        }
    }

    fn serve(&self, producer: &mut Producer, jobs: &mpsc::Receiver<Job>) -> Result<()> {
        let mut buf = Vec::new();
        let mut idle_since = Instant::now();
        loop {
            let job = match jobs.recv_timeout(WAIT_SLICE) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.env.stop.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    if !client_alive(producer.region()) {
                        return Err(Error::PeerGone(format!("client {} died", self.client_pid)));
                    }
                    let idle = idle_since.elapsed();
                    if self.env.stall_timeout.is_some_and(|limit| idle >= limit) {
                        return Err(Error::Timeout { what: "no request came".into(), after: idle });
                    }
                    continue;
                }
            };
            self.pending.fetch_sub(1, Ordering::Relaxed);
            let pid = self.client_pid;
            match job {
                Job::Get { seq, .. } | Job::List { seq } if self.kind == SessionKind::Status => {
                    producer.send(
                        seq,
                        &refused(ReasonCode::WrongSession, "this session was opened for the status only"),
                    )?;
                }
                Job::Get { seq, path } => self.get(producer, seq, &path, &mut buf)?,
                Job::List { seq } => {
                    let (count, left_out) = serve_list(producer, &self.env.root, seq)?;
                    info!("client {pid}: listing: {count} file(s)");
                    if left_out.not_utf8 > 0 {
                        warn!(
                            "client {pid}: listing: left out {} name(s) that are not UTF-8, such as {}; \
                             only UTF-8 names can be listed or fetched: rename them",
                            left_out.not_utf8, left_out.example
                        );
                    }
                    if left_out.too_long > 0 {
                        warn!(
                            "client {pid}: listing: left out {} path(s) too long to list",
                            left_out.too_long
                        );
                    }
                }
                Job::Status { seq } => {
                    let (server, sessions) = self.env.stats.snapshot(&self.names.region);
                    let count = sessions.len() as u64;
                    producer.send(seq, &Reply::ServerStatus(server))?;
                    for session in sessions {
                        producer.send(seq, &Reply::SessionStatus(session))?;
                    }
                    producer.send(seq, &Reply::StatusEnd { count })?;
                    info!("client {pid}: status");
                }
            }
            idle_since = Instant::now();
        }
    }

    /// Serves one file request and writes its access-log line: client,
    /// path, outcome, bytes, duration, rate.
    fn get(&self, producer: &mut Producer, seq: u32, path: &str, buf: &mut Vec<u8>) -> Result<()> {
        let started = Instant::now();
        let result = serve_file(producer, &self.env.root, seq, path, buf, &self.stats);
        let took = started.elapsed();
        let sent = self.stats.end();
        let (pid, shown) = (self.client_pid, quote_name(path));
        self.env.stats.count(sent, matches!(result, Ok(Served::Sent(_))));
        match &result {
            Ok(Served::Sent(n)) => {
                info!(
                    "client {pid}: {shown}: sent {} in {} ({})",
                    byte_count(*n),
                    duration_text(took),
                    rate_text(*n, took)
                )
            }
            Ok(Served::Answered(Reply::NotFound)) => info!("client {pid}: {shown}: not found"),
            Ok(Served::Answered(Reply::Refused { reason, .. })) => {
                info!("client {pid}: {shown}: refused: {reason}")
            }
            Ok(Served::Answered(reply)) => {
                let why = match reply {
                    Reply::Error { reason, .. } => reason.as_str(),
                    _ => "",
                };
                warn!(
                    "client {pid}: {shown}: failed after {} in {}: {why}",
                    byte_count(sent),
                    duration_text(took)
                )
            }
            Err(Error::PeerGone(_)) if self.stats.has_said_goodbye() => {
                info!(
                    "client {pid}: {shown}: stopped after {}: the client left before the end",
                    byte_count(sent)
                )
            }
            Err(Error::Cancelled) => {
                info!("client {pid}: {shown}: stopped after {}: the server stops", byte_count(sent))
            }
            Err(e) => info!("client {pid}: {shown}: stopped after {}: {e}", byte_count(sent)),
        }
        result.map(drop)
    }
}

/// Maps a client's region and opens its semaphores: the producer end of its
/// ring, watching the client's liveness lock. Writes this server's pid into
/// the header, which tells the client that its session was taken.
///
/// # Errors
///
/// [`Error::BadRegion`] or [`Error::Os`] when the objects fail their checks.
pub(crate) fn attach(
    names: &SessionNames,
    region_size: u32,
    client_pid: u32,
    cancel: &Arc<AtomicBool>,
    pacing: &Pacing,
) -> Result<Producer> {
    let region = Arc::new(Region::open(&names.region, region_size, client_pid)?);
    let sems = RingSems { items: Semaphore::open(&names.items)?, spaces: Semaphore::open(&names.spaces)? };
    region.set_server_pid(std::process::id());
    let watched = Arc::clone(&region);
    let alive: Liveness = Box::new(move || {
        if client_alive(&watched) {
            Ok(())
        } else {
            Err(Error::PeerGone(format!("client {client_pid} died")))
        }
    });
    Ok(Producer::new(region, sems, Arc::clone(cancel), alive, pacing))
}

/// Answers a client over the session limit with a `Busy` frame in its
/// region, without waiting for a slot.
///
/// # Errors
///
/// As [`attach`]; [`Error::Protocol`] when the client's ring has no free slot.
pub(crate) fn answer_busy(
    names: &SessionNames,
    region_size: u32,
    client_pid: u32,
    max: usize,
    pacing: &Pacing,
) -> Result<()> {
    let mut producer = attach(names, region_size, client_pid, &Arc::new(AtomicBool::new(false)), pacing)?;
    if !producer.has_free_slot() {
        return Err(Error::Protocol("no free slot for the busy answer".into()));
    }
    producer.send(0, &Reply::Busy { max_sessions: u32::try_from(max).unwrap_or(u32::MAX) })
}

/// A refusal with its code and the text beside it.
fn refused(code: ReasonCode, reason: impl Into<String>) -> Reply {
    Reply::Refused { code, reason: reason.into() }
}

/// A failure on the server's side with its code and the text beside it.
fn failed(code: ReasonCode, reason: impl Into<String>) -> Reply {
    Reply::Error { code, reason: reason.into() }
}

/// Why a path is not served, as the client will read it.
fn refusal(path: &str, e: &std::io::Error) -> Option<Reply> {
    Some(match e.raw_os_error()? {
        libc::ENOENT | libc::ENOTDIR => Reply::NotFound,
        libc::EXDEV | libc::ELOOP => {
            refused(ReasonCode::OutsideRoot, format!("{path} leads outside the served directory"))
        }
        libc::EACCES | libc::EPERM => refused(ReasonCode::PermissionDenied, "permission denied"),
        libc::ENAMETOOLONG => refused(ReasonCode::NameTooLong, "name too long"),
        libc::EINVAL => refused(ReasonCode::InvalidPath, "invalid path"),
        libc::EMFILE | libc::ENFILE | libc::ENOMEM => {
            refused(ReasonCode::OutOfResources, format!("the server is out of resources: {e}"))
        }
        _ => return None,
    })
}

/// The code of a file that is not a regular file.
fn file_type_code(ft: std::fs::FileType) -> ReasonCode {
    if ft.is_dir() {
        ReasonCode::IsDirectory
    } else {
        ReasonCode::NotRegular
    }
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

/// Sends the answer that a file is not served (not found, refused, failed).
fn send_negative(tx: &mut Producer, seq: u32, reply: Reply) -> Result<Served> {
    tx.send(seq, &reply)?;
    Ok(Served::Answered(reply))
}

/// Opens `path` below `root` for reading, or says why not.
fn open_served(root: &File, path: &str) -> std::result::Result<(File, std::fs::Metadata), Reply> {
    let handle = sys::open_beneath(root, path)
        .map_err(|e| refusal(path, &e).unwrap_or_else(|| failed(ReasonCode::Other, e.to_string())))?;
    let meta = handle.metadata().map_err(|e| failed(ReasonCode::Other, e.to_string()))?;
    if !meta.file_type().is_file() {
        let ft = meta.file_type();
        return Err(refused(file_type_code(ft), format!("{path} is {}", file_type_name(ft))));
    }
    // The path was resolved above; whatever fails now is the server's
    // trouble (no /proc, no permission to read), not a missing file.
    let file = sys::reopen_for_reading(&handle).map_err(|e| match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => refused(ReasonCode::PermissionDenied, "permission denied"),
        _ => refusal(path, &e).unwrap_or_else(|| failed(ReasonCode::Other, format!("opening {path}: {e}"))),
    })?;
    Ok((file, meta))
}

fn serve_file(
    tx: &mut Producer,
    root: &File,
    seq: u32,
    path: &str,
    buf: &mut Vec<u8>,
    stats: &SessionStats,
) -> Result<Served> {
    let (mut file, meta) = match open_served(root, path) {
        Ok(opened) => opened,
        Err(reply) => return send_negative(tx, seq, reply),
    };
    let size = meta.len();
    let noted = Snapshot::of(&meta);
    stats.begin(path, size);
    tx.send(seq, &Reply::Start { size, mode: meta.mode() & MODE_BITS })?;
    let mut hasher = Xxh3::new();
    // Read in large pieces and hand them out slot by slot: one read() per
    // IO_CHUNK bytes, not one per slot.
    buf.resize(IO_CHUNK, 0);
    let mut sent = 0u64;
    while sent < size {
        let want = (size - sent).min(buf.len() as u64) as usize;
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => {
                return send_negative(
                    tx,
                    seq,
                    failed(ReasonCode::Changed, format!("{path} shrank while it was sent")),
                )
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return send_negative(tx, seq, failed(ReasonCode::ReadFailed, format!("reading {path}: {e}")))
            }
        };
        hasher.update(&buf[..n]);
        for piece in buf[..n].chunks(tx.max_payload()) {
            tx.send_data(seq, piece)?;
        }
        sent += n as u64;
        stats.advance(n as u64);
    }
    // Bytes rewritten in place or appended while we read would make a copy
    // that matches its checksum and still is not the file: like tar's "file
    // changed as we read it", such a file fails.
    match file.metadata() {
        Ok(now) if Snapshot::of(&now) == noted => {}
        Ok(_) => {
            return send_negative(
                tx,
                seq,
                failed(ReasonCode::Changed, format!("{path} changed while it was sent")),
            )
        }
        Err(e) => {
            return send_negative(tx, seq, failed(ReasonCode::ReadFailed, format!("fstat {path}: {e}")))
        }
    }
    tx.send(seq, &Reply::End { count: sent, checksum: hasher.digest() })?;
    Ok(Served::Sent(sent))
}

/// What says a file changed: its size, modification and status-change
/// times, to the nanosecond.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    fn of(meta: &std::fs::Metadata) -> Snapshot {
        Snapshot {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Entries a listing walks at most, and how deep.
const LIST_MAX_ENTRIES: usize = 100_000;
const LIST_MAX_DEPTH: usize = 32;

/// What a listing left out, for the server's log.
#[derive(Debug, Default)]
struct LeftOut {
    /// Files and directories whose names are not UTF-8 (a directory counts once).
    not_utf8: u64,
    /// The first of them, bytes that are not printable ASCII escaped.
    example: String,
    /// Paths too long for the protocol.
    too_long: u64,
}

/// Sends the listing; returns the number of entries sent and what was left out.
fn serve_list(tx: &mut Producer, root: &File, seq: u32) -> Result<(u64, LeftOut)> {
    let mut entries = Vec::new();
    let mut left_out = LeftOut::default();
    let root_path = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(root)));
    walk(&root_path, Path::new(""), 0, &mut entries, &mut left_out);
    entries.sort();
    let mut count = 0u64;
    for (path, size) in entries {
        // size (8 bytes) and path: entries too long for one slot are skipped.
        if 8 + path.len() > tx.max_payload() {
            left_out.too_long += 1;
            continue;
        }
        tx.send(seq, &Reply::ListEntry { size, path })?;
        count += 1;
    }
    tx.send(seq, &Reply::ListEnd { count })?;
    Ok((count, left_out))
}

fn walk(dir: &Path, rel: &Path, depth: usize, out: &mut Vec<(String, u64)>, left_out: &mut LeftOut) {
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
        if !(ft.is_dir() || ft.is_file()) {
            continue;
        }
        if rel_path.to_str().is_none() {
            if left_out.not_utf8 == 0 {
                let bytes = std::os::unix::ffi::OsStrExt::as_bytes(rel_path.as_os_str());
                left_out.example = format!("\"{}\"", bytes.escape_ascii());
            }
            left_out.not_utf8 += 1;
            continue;
        }
        if ft.is_dir() {
            walk(&entry.path(), &rel_path, depth + 1, out, left_out);
        } else {
            let (Ok(meta), Some(name)) = (entry.metadata(), rel_path.to_str()) else { continue };
            if name.len() <= MAX_PATH_LEN {
                out.push((name.to_owned(), meta.len()));
            } else {
                left_out.too_long += 1;
            }
        }
    }
}
