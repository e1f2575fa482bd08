//! The thread that runs one session: it maps the client's region, answers
//! the requests the table routes to it (files, listings, status, uploads)
//! and says why the session ended.

use crate::error::{Error, Result};
use crate::os::names::SessionNames;
use crate::os::owned_name::remove_session;
use crate::os::semaphore::Semaphore;
use crate::protocol::{ReasonCode, Reply, SessionKind, UploadAnswer};
use crate::server::answers::{send_listing, send_status};
use crate::server::serve_file::{refused, send_file, FileRequest, Served};
use crate::server::stats::SessionStats;
use crate::server::upload::{receive_file, PutRequest, Received, Stopped};
use crate::shm_region::client_alive;
use crate::shm_region::pacing::Pacing;
use crate::shm_region::ring::{Consumer, Liveness, Producer, RingSems, WAIT_SLICE};
use crate::shm_region::{EndReason, Region};
use crate::text::{byte_count, duration_text, quote_bytes, rate_text};
use crate::transfer::send_file::Ask;
use crate::transfer::Meter;
use log::{debug, info, warn};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use super::{Job, ServeEnv};

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The client said goodbye and everything it asked for was answered.
    Goodbye,
    /// The client went away after its goodbye, before its last answers were
    /// taken (interrupted): it left, as it said.
    LeftAfterGoodbye,
    /// The client died (its region lock is free), or its objects went bad.
    ClientGone(String),
    /// The client took no frame for this long (stopped?).
    Stalled(Duration),
    /// The client sent no request for this long.
    IdleTimeout(Duration),
    /// The server stops.
    Cancelled,
    /// Anything else.
    Failed(Error),
}

impl SessionEnd {
    /// Why a session ended whose answer failed with `e`.
    fn from_error(e: Error, said_goodbye: bool) -> SessionEnd {
        match e {
            Error::Cancelled => SessionEnd::Cancelled,
            Error::Stalled { waited } => SessionEnd::Stalled(waited),
            Error::PeerGone(_) if said_goodbye => SessionEnd::LeftAfterGoodbye,
            Error::PeerGone(why) => SessionEnd::ClientGone(why),
            e => SessionEnd::Failed(e),
        }
    }

    /// What the region's header says to a client that comes back.
    fn mark(&self) -> Option<EndReason> {
        match self {
            SessionEnd::Cancelled => Some(EndReason::ServerStopping),
            SessionEnd::Stalled(_) => Some(EndReason::Stalled),
            SessionEnd::IdleTimeout(_) => Some(EndReason::Idle),
            _ => None,
        }
    }
}

/// A session about to run in its own thread.
#[derive(Debug)]
pub(crate) struct SessionThread {
    pub names: SessionNames,
    pub client_pid: u32,
    pub env: ServeEnv,
    /// Requests routed to this session and not yet taken.
    pub pending: Arc<AtomicUsize>,
    /// The request its client cancelled last (0: none).
    pub cancelled: Arc<AtomicU32>,
    /// What this session is doing, for the log and `--status`.
    pub stats: Arc<SessionStats>,
    /// What the session is for: a status session is refused files and
    /// listings.
    pub kind: SessionKind,
}

impl SessionThread {
    /// Serves the session's requests through `producer` (the client's region,
    /// mapped by [`attach`]) until the client says goodbye (the
    /// sender of `jobs` drops), dies, or the server stops; then logs why it
    /// ended and removes the objects of a client that is gone.
    pub fn run(self, producer: Producer, jobs: mpsc::Receiver<Job>) {
        if self.kind == SessionKind::Upload {
            // The client turns its end round once it sees the session
            // taken, before it sends a frame: the ring is empty.
            return self.run_uploads(producer.turn_round(), jobs);
        }
        let mut producer = producer.with_stall_timeout(self.env.stall_timeout);
        let served = self.serve(&mut producer, &jobs);
        if self.ended(served, producer.region()) {
            drop(producer);
            self.remove_objects();
        }
    }

    /// [`SessionThread::run`] of an upload session: the server empties the
    /// ring the client fills.
    fn run_uploads(self, consumer: Consumer, jobs: mpsc::Receiver<Job>) {
        let mut consumer = consumer.with_stall_timeout(self.env.stall_timeout);
        let served = self.serve_uploads(&mut consumer, &jobs);
        if self.ended(served, consumer.region()) {
            drop(consumer);
            self.remove_objects();
        }
    }

    /// The end of a session that `served` says (an error is an end too):
    /// marked in the header of its `region` and logged; whether its client
    /// is gone, in which case (whatever ended the session, a shutdown
    /// included) it can no longer remove its objects, and the server does
    /// once its ring end is dropped.
    fn ended(&self, served: Result<SessionEnd>, region: &Region) -> bool {
        let end = served.unwrap_or_else(|e| SessionEnd::from_error(e, self.stats.has_said_goodbye()));
        if let Some(reason) = end.mark() {
            region.mark_ended(reason);
        }
        self.log_end(&end);
        !client_alive(region)
    }

    /// Removes the objects of a client that is gone.
    fn remove_objects(&self) {
        if let Err(e) = remove_session(&self.names) {
            warn!("session {}: {e:#}", self.names.region);
        }
    }

    /// Takes `Put` jobs and receives their files until the session ends;
    /// other requests cannot be answered on a ring that runs to the server,
    /// and are dropped with a warning.
    fn serve_uploads(&self, consumer: &mut Consumer, jobs: &mpsc::Receiver<Job>) -> Result<SessionEnd> {
        let mut buf = Vec::new();
        let mut idle_since = Instant::now();
        let pid = self.client_pid;
        loop {
            let job = match self.next_job(jobs, consumer.region(), idle_since) {
                Ok(job) => job,
                Err(end) => return Ok(end),
            };
            let Job::Put { seq, path, flags } = job else {
                warn!("client {pid}: dropped a request that an upload session cannot answer");
                continue;
            };
            let started = Instant::now();
            let put = PutRequest { seq, path: &path, flags };
            let got = match receive_file(consumer, self.env.accept.as_deref(), put, &mut buf, &*self.stats) {
                Ok(got) => got,
                Err(stopped) => {
                    // Ended without its End frame: cut off, as a fetch the
                    // client leaves; nothing of it is kept.
                    self.log_stopped_upload(&path, &stopped);
                    self.env.stats.count_received_cut(stopped.bytes);
                    return Err(stopped.error);
                }
            };
            log_upload(pid, &path, &got, started.elapsed());
            if got.answer == UploadAnswer::Stored {
                self.env.stats.count_received(got.bytes);
            }
            idle_since = Instant::now();
        }
    }

    /// The access-log line of an upload that ended without its End frame:
    /// the bytes that came, and why (worded as for a fetch cut off).
    fn log_stopped_upload(&self, path: &[u8], stopped: &Stopped) {
        let (pid, shown, bytes) = (self.client_pid, quote_bytes(path), byte_count(stopped.bytes));
        match &stopped.error {
            Error::PeerGone(_) => {
                info!("client {pid}: {shown}: upload stopped after {bytes}: the client left before the end")
            }
            Error::Cancelled => {
                info!("client {pid}: {shown}: upload stopped after {bytes}: the server stops")
            }
            e => info!("client {pid}: {shown}: upload stopped after {bytes}: {e:#}"),
        }
    }

    /// The next job, waiting in slices; or why the session ends instead:
    /// the client's goodbye, the server's stop, the client's death, or the
    /// idle limit.
    fn next_job(
        &self,
        jobs: &mpsc::Receiver<Job>,
        region: &Region,
        idle_since: Instant,
    ) -> std::result::Result<Job, SessionEnd> {
        loop {
            match jobs.recv_timeout(WAIT_SLICE) {
                Ok(job) => {
                    self.pending.fetch_sub(1, Ordering::Relaxed);
                    return Ok(job);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(SessionEnd::Goodbye),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.env.stop.load(Ordering::Relaxed) {
                        return Err(SessionEnd::Cancelled);
                    }
                    if !client_alive(region) {
                        let why = format!("client {} died", self.client_pid);
                        return Err(SessionEnd::from_error(
                            Error::PeerGone(why),
                            self.stats.has_said_goodbye(),
                        ));
                    }
                    let idle = idle_since.elapsed();
                    if self.env.stall_timeout.is_some_and(|limit| idle >= limit) {
                        return Err(SessionEnd::IdleTimeout(idle));
                    }
                }
            }
        }
    }

    fn log_end(&self, end: &SessionEnd) {
        let (pid, region) = (self.client_pid, &self.names.region);
        let (bytes, lasted) = self.stats.totals();
        let totals = format!("{} in {}", byte_count(bytes), duration_text(lasted));
        match end {
            SessionEnd::Goodbye => debug!("client {pid}: session {region} closed: {totals}"),
            SessionEnd::Cancelled => debug!("client {pid}: session {region} cancelled: {totals}"),
            SessionEnd::Stalled(waited) => {
                let secs = waited.as_secs_f64();
                warn!("client {pid}: session {region}: the client took no frame for {secs:.0} s (stopped?); session ended (the stall timeout)");
            }
            SessionEnd::IdleTimeout(after) => {
                let secs = after.as_secs_f64();
                warn!("client {pid}: session {region}: the client sent no request for {secs:.0} s; session ended (the stall timeout)");
            }
            SessionEnd::LeftAfterGoodbye => {
                debug!("client {pid}: session {region} ended: the client left during a transfer: {totals}")
            }
            SessionEnd::ClientGone(why) => {
                warn!("client {pid}: session {region}: {why}; removing its objects")
            }
            SessionEnd::Failed(e) => warn!("client {pid}: session {region} ended: {e:#}"),
        }
    }

    /// Takes and answers jobs until the session ends: `Ok` with why, when
    /// the loop saw it; `Err` when an answer failed.
    fn serve(&self, producer: &mut Producer, jobs: &mpsc::Receiver<Job>) -> Result<SessionEnd> {
        let mut buf = Vec::new();
        let mut idle_since = Instant::now();
        loop {
            let job = match self.next_job(jobs, producer.region(), idle_since) {
                Ok(job) => job,
                Err(end) => return Ok(end),
            };
            let pid = self.client_pid;
            match job {
                Job::Get { seq, .. } | Job::List { seq, .. } if self.kind == SessionKind::Status => {
                    producer.send(
                        seq,
                        &refused(ReasonCode::WrongSession, "this session was opened for the status only"),
                    )?;
                }
                Job::Get { seq, path, ask } => self.get(producer, seq, &path, ask, &mut buf)?,
                Job::Put { .. } => {
                    warn!("client {pid}: dropped an upload on a session not opened for uploads")
                }
                Job::List { seq, prefix } => send_listing(producer, &self.env.root, seq, &prefix, pid)?,
                Job::Status { seq } => {
                    send_status(producer, &self.env.stats, &self.names.region, seq)?;
                    info!("client {pid}: status");
                }
            }
            idle_since = Instant::now();
        }
    }

    /// Serves one file request and writes its access-log line: client,
    /// path, outcome, bytes, duration, rate.
    fn get(&self, producer: &mut Producer, seq: u32, path: &[u8], ask: Ask, buf: &mut Vec<u8>) -> Result<()> {
        let started = Instant::now();
        let request = FileRequest { seq, path, ask };
        let result = send_file(producer, &self.env.root, request, buf, &*self.stats, &self.cancelled);
        let took = started.elapsed();
        let sent = self.stats.end();
        let (pid, shown) = (self.client_pid, quote_bytes(path));
        self.env.stats.count(sent, matches!(result, Ok(Served::Sent(_))));
        match &result {
            Ok(Served::Sent(n)) => {
                info!(
                    "client {pid}: {shown}: sent {} in {}{}",
                    byte_count(*n),
                    duration_text(took),
                    rate_text(*n, took).map(|r| format!(" ({r})")).unwrap_or_default()
                )
            }
            Ok(Served::UpToDate) => info!("client {pid}: {shown}: up to date, not sent"),
            Ok(Served::Answered(Reply::NotFound)) => info!("client {pid}: {shown}: not found"),
            Ok(Served::Answered(Reply::Refused { reason, .. })) => {
                info!("client {pid}: {shown}: refused: {reason}")
            }
            Ok(Served::Answered(Reply::Error { code: ReasonCode::Cancelled, .. })) => {
                info!("client {pid}: {shown}: stopped after {}: cancelled by the client", byte_count(sent))
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
            Err(e) => info!("client {pid}: {shown}: stopped after {}: {e:#}", byte_count(sent)),
        }
        result.map(drop)
    }
}

/// The access-log line of one upload, shaped as a fetch's: client pid,
/// path, what became of it, the bytes that came and how long they took,
/// and the rate of a stored file; then why, when it was not stored.
fn log_upload(pid: u32, path: &[u8], got: &Received, took: Duration) {
    let shown = quote_bytes(path);
    let (bytes, time) = (byte_count(got.bytes), duration_text(took));
    let why = got.why.as_deref().unwrap_or("");
    match got.answer {
        UploadAnswer::Stored => info!(
            "client {pid}: {shown}: received {bytes} in {time}{}",
            rate_text(got.bytes, took).map(|r| format!(" ({r})")).unwrap_or_default()
        ),
        UploadAnswer::Skipped => info!("client {pid}: {shown}: upload skipped after {bytes} in {time}: exists"),
        UploadAnswer::UpToDate => {
            info!("client {pid}: {shown}: upload skipped after {bytes} in {time}: up to date")
        }
        UploadAnswer::NotAccepting => info!(
            "client {pid}: {shown}: upload refused after {bytes} in {time}: the server was started without --accept"
        ),
        UploadAnswer::Refused(_) => info!("client {pid}: {shown}: upload refused after {bytes} in {time}: {why}"),
        UploadAnswer::Failed(_) => warn!("client {pid}: {shown}: upload failed after {bytes} in {time}: {why}"),
    }
}

/// Maps a client's region and opens its semaphores: the producer end of its
/// ring, watching the client's liveness lock, and the region itself. The
/// caller writes this server's pid into the header once it takes the
/// session (or answers "busy"): that tells the client it was answered.
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
) -> Result<(Producer, Arc<Region>)> {
    let region = Arc::new(Region::open(&names.region, region_size, client_pid)?);
    let sems = RingSems { items: Semaphore::open(&names.items)?, spaces: Semaphore::open(&names.spaces)? };
    let watched = Arc::clone(&region);
    let alive: Liveness = Box::new(move || {
        if client_alive(&watched) {
            Ok(())
        } else {
            Err(Error::PeerGone(format!("client {client_pid} died")))
        }
    });
    Ok((Producer::new(Arc::clone(&region), sems, Arc::clone(cancel), alive, pacing), region))
}
