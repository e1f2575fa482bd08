//! The server's sessions: the table of open ones (opening one or answering
//! "busy", routing requests to it, closing it on the client's goodbye,
//! reaping finished threads), and the thread that runs one session — maps the
//! client's region and answers its requests until the session ends, and says
//! why it ended as a [`SessionEnd`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use crate::error::{Error, Result};
use crate::fs::output::OutDir;
use crate::fs::source::Root;
use crate::os::names::SessionNames;
use crate::os::owned_name::remove_session;
use crate::os::semaphore::Semaphore;
use crate::protocol::{PutFlags, ReasonCode, Reply, SessionKind, UploadAnswer};
use crate::server::answers::{answer_busy, send_listing, send_status};
use crate::server::log_budget::LogBudget;
use crate::server::stats::{ServerStats, SessionStats};
use crate::shm_region::client_alive;
use crate::shm_region::pacing::Pacing;
use crate::shm_region::ring::{Consumer, Liveness, Producer, RingSems, WAIT_SLICE};
use crate::shm_region::{EndReason, Region};
use crate::text::{byte_count, duration_text, quote_bytes, rate_text};
use crate::transfer::receive::{receive_file, PutRequest, Received, Stopped};
use crate::transfer::send_file::{refused, send_file, Ask, FileRequest, Served};
use crate::transfer::Meter;

/// Requests a session may have waiting before the server ends it as a flood.
pub const MAX_PENDING_REQUESTS: usize = 256;

/// How long a full table waits for sessions whose clients said goodbye
/// before it calls the server busy.
const CLOSING_GRACE: Duration = Duration::from_millis(200);

/// How long a stopping server waits for its sessions to end: well within
/// the second a stop takes.
const END_GRACE: Duration = Duration::from_millis(600);

/// Status-only sessions served at once, beside the `max` others.
const STATUS_SESSIONS: usize = 4;

/// Regions answered "busy" that are remembered, so that their pipelined
/// requests are dropped quietly.
const MAX_REFUSED: usize = 1024;

/// One open session, as the dispatcher sees it.
#[derive(Debug)]
struct Session {
    client_pid: u32,
    /// Dropped on the client's shutdown message: the thread finishes what is
    /// queued and ends.
    jobs: Option<mpsc::Sender<Job>>,
    pending: Arc<AtomicUsize>,
    /// The request the client cancelled last (0: none), shared with the
    /// session thread, which checks it between chunks of a file.
    cancelled: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
    /// The client's region, shared with the thread: the table marks it
    /// when it leaves a thread that does not end (stuck in a read).
    region: Arc<Region>,
    stats: Arc<SessionStats>,
    /// A status session may only ask for the status, and does not count
    /// against `max`.
    kind: SessionKind,
    /// Whether this session's goodbye makes its client the default mode's
    /// "last client": only once it asked for a file.
    goodbye: Goodbye,
}

/// Whether a session's goodbye lets a default-mode server stop once no
/// session is open. A client that only listed the files or asked for the
/// status leaves the server to the next client; one that asked for a file
/// or sent one (a listing too or not) was the client the server waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goodbye {
    /// Nothing asked for but listings or the status: the server goes on.
    DoesNotCount,
    /// A file was asked for: the server may stop after this goodbye.
    Counts,
}

impl Goodbye {
    /// What a session's goodbye counts for once it was asked `job`.
    fn after(self, job: &Job) -> Goodbye {
        match job {
            Job::Get { .. } | Job::Put { .. } => Goodbye::Counts,
            Job::List { .. } | Job::Status { .. } => self,
        }
    }
}

impl Session {
    /// Joins the thread if it has finished; whether it has.
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

/// The open sessions of one server, keyed by region name.
#[derive(Debug)]
pub(crate) struct Sessions {
    queue: String,
    max: usize,
    env: ServeEnv,
    open: HashMap<String, Session>,
    refused: HashSet<String>,
    /// Whether a client that asked for a file said goodbye: a default-mode
    /// server may stop once no session is open ([`Goodbye`]).
    any_closed: bool,
    /// The rate limit for lines about Open messages that fail at once.
    bad_opens: LogBudget,
    /// The rate limit for "busy" lines.
    busy_lines: LogBudget,
    /// Whether the server drains: new transfer sessions are answered busy,
    /// the open ones end once they answered what they were asked.
    mode: TableMode,
}

/// Whether the table takes new sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableMode {
    /// Serving: new sessions are opened while there is room.
    Open,
    /// A graceful stop: new transfer sessions are answered "busy" with
    /// their regions marked "server stopping"; status sessions are still
    /// taken, so that one can watch the drain.
    Draining,
}

impl Sessions {
    /// An empty table for the server of `queue`, at most `max` sessions.
    pub fn new(queue: &str, max: usize, env: ServeEnv) -> Sessions {
        Sessions {
            queue: queue.to_owned(),
            max,
            env,
            open: HashMap::new(),
            refused: HashSet::new(),
            any_closed: false,
            bad_opens: LogBudget::new("open messages dropped"),
            busy_lines: LogBudget::new("clients answered busy"),
            mode: TableMode::Open,
        }
    }

    /// Begins a graceful stop: from now on new transfer sessions are
    /// answered "busy" (see [`TableMode::Draining`]).
    pub fn begin_drain(&mut self) {
        self.mode = TableMode::Draining;
    }

    /// Whether a graceful stop has begun.
    pub fn draining(&self) -> bool {
        self.mode == TableMode::Draining
    }

    /// Whether a graceful stop has begun and no session is left.
    pub fn drained(&self) -> bool {
        self.draining() && self.open.is_empty()
    }

    /// Tells every open session that no request follows those already
    /// routed to it: each ends once it has answered them. A client that did
    /// not say goodbye finds its region marked "server stopping" when its
    /// session has ended ([`Sessions::reap`]).
    pub fn end_after_queued_jobs(&mut self) {
        for (region, s) in &mut self.open {
            if s.jobs.take().is_some() {
                debug!(
                    "client {}: session {region}: ends after the requests it has made (drain)",
                    s.client_pid
                );
            }
        }
    }

    /// Joins the threads of finished sessions and forgets them.
    pub fn reap(&mut self) {
        self.bad_opens.flush();
        self.busy_lines.flush();
        let stats = &self.env.stats;
        let mode = self.mode;
        self.open.retain(|region, s| {
            let finished = s.reap_if_finished();
            if finished {
                if mode == TableMode::Draining && !s.stats.has_said_goodbye() {
                    // Its client may still wait for an answer it asked for
                    // after the drain began: tell it why none comes.
                    s.region.mark_ended(EndReason::ServerStopping);
                }
                stats.close(region);
            }
            !finished
        });
    }

    /// Whether a client that asked for a file said goodbye and no session
    /// is open now.
    pub fn all_left(&self) -> bool {
        self.any_closed && self.open.is_empty()
    }

    /// Whether messages about `region` are dropped quietly (it was answered
    /// "busy"); its goodbye ends that.
    pub fn drop_quietly(&mut self, region: &str, is_goodbye: bool) -> bool {
        if is_goodbye {
            self.refused.remove(region)
        } else {
            self.refused.contains(region)
        }
    }

    /// Whether no other session of this kind fits: `max` sessions, or
    /// [`STATUS_SESSIONS`] status-only ones.
    fn full(&self, kind: SessionKind) -> bool {
        let open = self.open.values().filter(|s| s.kind.is_status() == kind.is_status()).count();
        open >= self.limit(kind)
    }

    /// How many sessions of `kind` may be open at once.
    fn limit(&self, kind: SessionKind) -> usize {
        match kind {
            SessionKind::Transfer | SessionKind::Upload => self.max,
            SessionKind::Status => STATUS_SESSIONS,
        }
    }

    /// Opens a session for `region` and its semaphores `items` and `spaces`
    /// (each of its own form for this queue and `client_pid`, else the
    /// message is dropped), or answers "busy" when the table is full. A
    /// status-only session has room of its own, so that a full server can
    /// still say what it does.
    pub fn open(
        &mut self,
        client_pid: u32,
        region_size: u32,
        region: String,
        items: String,
        spaces: String,
        kind: SessionKind,
    ) {
        let shown = format!("{region:?} ({items:?}, {spaces:?})");
        let Some(names) = SessionNames::of_client(&self.queue, client_pid, region, items, spaces) else {
            if self.bad_opens.admit() {
                warn!("dropped an open message from pid {client_pid} naming {shown}, not session objects of this queue");
            }
            return;
        };
        let region = names.region.clone();
        if self.open.contains_key(&region) {
            if self.bad_opens.admit() {
                warn!("dropped a second open message for session {region}");
            }
            return;
        }
        // Mapped here, before a slot is taken or the table is looked at: an
        // Open naming a region that does not exist (or fails its checks)
        // costs one failed open, no thread and no slot.
        let (producer, region_map) =
            match attach(&names, region_size, client_pid, &self.env.stop, &self.env.pacing) {
                Ok(attached) => attached,
                Err(e) => {
                    if self.bad_opens.admit() {
                        warn!("session {region}: refused: {e:#}");
                    }
                    return;
                }
            };
        if self.mode == TableMode::Draining && !kind.is_status() {
            self.refuse_while_draining(region, client_pid, producer, &region_map);
            return;
        }
        if self.full(kind) {
            self.wait_for_closing(kind);
        }
        if self.full(kind) {
            if self.refused.len() >= MAX_REFUSED {
                self.refused.clear();
            }
            self.refused.insert(region);
            let limit = self.limit(kind);
            if self.busy_lines.admit() {
                match kind {
                    SessionKind::Status => {
                        warn!("busy: refused a status session from pid {client_pid} ({limit} open)")
                    }
                    SessionKind::Transfer | SessionKind::Upload => {
                        warn!(
                            "busy: refused a session from pid {client_pid} ({limit} open, the session limit)"
                        )
                    }
                }
            }
            if let Err(e) = answer_busy(producer, &region_map, limit, EndReason::Busy) {
                warn!("could not tell pid {client_pid} that the server is busy: {e:#}");
            }
            return;
        }
        // Taken: the client waits for this pid before it sends a request.
        region_map.set_server_pid(std::process::id());
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let cancelled = Arc::new(AtomicU32::new(0));
        let stats = self.env.stats.open(&region, client_pid, kind);
        let thread = SessionThread {
            names,
            client_pid,
            env: self.env.clone(),
            pending: Arc::clone(&pending),
            cancelled: Arc::clone(&cancelled),
            stats: Arc::clone(&stats),
            kind,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("session-{client_pid}"))
            .spawn(move || thread.run(producer, rx));
        match spawned {
            Ok(thread) => {
                debug!("client {client_pid}: session {region} opened");
                let session = Session {
                    client_pid,
                    jobs: Some(tx),
                    pending,
                    cancelled,
                    thread: Some(thread),
                    region: region_map,
                    stats,
                    kind,
                    goodbye: Goodbye::DoesNotCount,
                };
                self.open.insert(region, session);
            }
            Err(e) => {
                self.env.stats.close(&region);
                error!("could not start a session thread: {e:#}");
            }
        }
    }

    /// Answers a new transfer session during a drain: "busy", its region
    /// marked "server stopping" first, so that the client can tell a
    /// stopping server from a full one.
    fn refuse_while_draining(&mut self, region: String, client_pid: u32, producer: Producer, map: &Region) {
        if self.refused.len() >= MAX_REFUSED {
            self.refused.clear();
        }
        self.refused.insert(region);
        if self.busy_lines.admit() {
            warn!("busy: refused a session from pid {client_pid}: the server is stopping (draining its open sessions)");
        }
        if let Err(e) = answer_busy(producer, map, self.max, EndReason::ServerStopping) {
            warn!("could not tell pid {client_pid} that the server is stopping: {e:#}");
        }
    }

    /// Sessions whose clients said goodbye end within moments: gives them
    /// that moment before the table is called full.
    fn wait_for_closing(&mut self, kind: SessionKind) {
        let deadline = Instant::now() + CLOSING_GRACE;
        loop {
            self.reap();
            let closing = self.open.values().any(|s| s.jobs.is_none() && s.kind == kind);
            if !self.full(kind) || !closing || Instant::now() > deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Hands a request to the session of `region`, if `client_pid` owns it.
    pub fn route(&mut self, region: &str, client_pid: u32, job: Job) {
        let Some(s) = self.open.get_mut(region) else {
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
            match self.mode {
                TableMode::Draining => {
                    debug!("dropped a request for session {region}: the server is stopping")
                }
                TableMode::Open => warn!("dropped a request for session {region} after its shutdown message"),
            }
            return;
        };
        s.goodbye = s.goodbye.after(&job);
        if s.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_REQUESTS {
            warn!("session {region}: more than {MAX_PENDING_REQUESTS} requests waiting; ending it");
            s.jobs = None;
            return;
        }
        if jobs.send(job).is_err() {
            s.jobs = None;
        }
    }

    /// The client cancels request `seq` of its session: the file being sent
    /// for it ends at the next chunk.
    pub fn cancel(&mut self, region: &str, client_pid: u32, seq: u32) {
        match self.open.get(region) {
            Some(s) if s.client_pid == client_pid => s.cancelled.store(seq, Ordering::Release),
            _ => debug!("dropped a cancel message for unknown session {region}"),
        }
    }

    /// The client's goodbye: its session finishes what is queued and ends.
    pub fn close(&mut self, region: &str, client_pid: u32) {
        match self.open.get_mut(region) {
            Some(s) if s.client_pid == client_pid => {
                debug!("client {client_pid}: session {region}: goodbye");
                s.stats.said_goodbye();
                s.jobs = None;
                // Asking for the status or a listing does not make a client
                // of the default mode's "last client"; asking for a file, or
                // sending one, does.
                self.any_closed |= s.kind != SessionKind::Status && s.goodbye == Goodbye::Counts;
            }
            // A session the server ended (a stall, a dead client) still gets
            // its client's goodbye: nothing to do.
            _ => debug!("dropped a shutdown message for unknown session {region}"),
        }
    }

    /// Ends every session (the caller has raised the stop flag) and joins
    /// their threads, waiting at most [`END_GRACE`]: a session stuck in a
    /// read of its source (a FUSE or NFS file that never answers) is not
    /// waited for. Its region is marked "server stopping" for its client,
    /// and its thread ends with the process.
    pub fn end_all(&mut self) {
        for s in self.open.values_mut() {
            s.jobs = None;
        }
        let deadline = Instant::now() + END_GRACE;
        while Instant::now() < deadline
            && self.open.values().any(|s| s.thread.as_ref().is_some_and(|t| !t.is_finished()))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        for (region, mut s) in self.open.drain() {
            if !s.reap_if_finished() {
                s.region.mark_ended(EndReason::ServerStopping);
                warn!(
                    "client {}: session {region} did not end within {} (stuck in a read of its source?); left behind",
                    s.client_pid,
                    duration_text(END_GRACE)
                );
            }
        }
    }
}

/// What a session is asked to do.
#[derive(Debug)]
pub(crate) enum Job {
    Get { seq: u32, path: Vec<u8>, ask: Ask },
    List { seq: u32, prefix: Vec<u8> },
    Status { seq: u32 },
    Put { seq: u32, path: Vec<u8>, flags: PutFlags },
}

/// What every session of one server shares.
#[derive(Debug, Clone)]
pub(crate) struct ServeEnv {
    /// The served directory, open.
    pub root: Arc<Root>,
    /// Turns true when the server stops: sessions end at the next frame.
    pub stop: Arc<AtomicBool>,
    /// How long a session may go without a frame taken or a request sent
    /// before the server ends it (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// The server's totals and live sessions.
    pub stats: Arc<ServerStats>,
    /// The spinners and turns all sessions share.
    pub pacing: Pacing,
    /// The directory uploads go below (`--accept`), open; `None`: every
    /// upload is refused.
    pub accept: Option<Arc<OutDir>>,
}

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
        let region = &self.names.region;
        let mut producer = producer.with_stall_timeout(self.env.stall_timeout);
        let end = match self.serve(&mut producer, &jobs) {
            Ok(end) => end,
            Err(e) => SessionEnd::from_error(e, self.stats.has_said_goodbye()),
        };
        if let Some(reason) = end.mark() {
            producer.region().mark_ended(reason);
        }
        self.log_end(&end);
        // Whatever ended the session (a shutdown included), a client that is
        // gone may have left its objects: it cannot remove them any more.
        if !client_alive(producer.region()) {
            drop(producer);
            if let Err(e) = remove_session(&self.names) {
                warn!("session {region}: {e:#}");
            }
        }
    }

    /// [`SessionThread::run`] of an upload session: the server empties the
    /// ring the client fills.
    fn run_uploads(self, consumer: Consumer, jobs: mpsc::Receiver<Job>) {
        let region = &self.names.region;
        let mut consumer = consumer.with_stall_timeout(self.env.stall_timeout);
        let end = match self.serve_uploads(&mut consumer, &jobs) {
            Ok(end) => end,
            Err(e) => SessionEnd::from_error(e, self.stats.has_said_goodbye()),
        };
        if let Some(reason) = end.mark() {
            consumer.region().mark_ended(reason);
        }
        self.log_end(&end);
        if !client_alive(consumer.region()) {
            drop(consumer);
            if let Err(e) = remove_session(&self.names) {
                warn!("session {region}: {e:#}");
            }
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
