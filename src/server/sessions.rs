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

use log::{debug, error, warn};

use crate::fs::output::OutDir;
use crate::fs::source::Root;
use crate::os::names::SessionNames;
use crate::protocol::{PutFlags, SessionKind};
use crate::server::answers::answer_busy;
use crate::server::log_budget::LogBudget;
use crate::server::stats::{ServerStats, SessionStats};
use crate::shm_region::pacing::Pacing;
use crate::shm_region::ring::Producer;
use crate::shm_region::{EndReason, Region};
use crate::text::duration_text;
use crate::transfer::send_file::Ask;

mod thread;

use thread::{attach, SessionThread};

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
            self.refuse_as_busy(region, client_pid, kind, producer, &region_map);
            return;
        }
        self.start(names, client_pid, kind, producer, region_map);
    }

    /// Answers a session over the limit of its kind: "busy".
    fn refuse_as_busy(
        &mut self,
        region: String,
        client_pid: u32,
        kind: SessionKind,
        producer: Producer,
        region_map: &Region,
    ) {
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
                    warn!("busy: refused a session from pid {client_pid} ({limit} open, the session limit)")
                }
            }
        }
        if let Err(e) = answer_busy(producer, region_map, limit, EndReason::Busy) {
            warn!("could not tell pid {client_pid} that the server is busy: {e:#}");
        }
    }

    /// Takes the session: its thread started, its record in the table.
    fn start(
        &mut self,
        names: SessionNames,
        client_pid: u32,
        kind: SessionKind,
        producer: Producer,
        region_map: Arc<Region>,
    ) {
        let region = names.region.clone();
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
