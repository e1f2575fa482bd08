//! The server's table of open sessions: opening one (or answering "busy"),
//! routing requests to it, closing it on the client's goodbye, reaping
//! finished session threads.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, warn};

use crate::names::SessionNames;
use crate::protocol::SessionKind;
use crate::serve::{answer_busy, Job, ServeEnv, SessionThread};
use crate::stats::SessionStats;

/// Requests a session may have waiting before the server ends it as a flood.
pub const MAX_PENDING_REQUESTS: usize = 256;

/// How long a full table waits for sessions whose clients said goodbye
/// before it calls the server busy.
const CLOSING_GRACE: Duration = Duration::from_millis(200);

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
    thread: Option<JoinHandle<()>>,
    stats: Arc<SessionStats>,
    /// A status session may only ask for the status, and does not count
    /// against `max`.
    kind: SessionKind,
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
    /// Whether any client said goodbye: a default-mode server may stop once
    /// no session is open.
    any_closed: bool,
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
        }
    }

    /// Joins the threads of finished sessions and forgets them.
    pub fn reap(&mut self) {
        let stats = &self.env.stats;
        self.open.retain(|region, s| {
            let finished = s.reap_if_finished();
            if finished {
                stats.close(region);
            }
            !finished
        });
    }

    /// Whether a client said goodbye and no session is open now.
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
        let open = self.open.values().filter(|s| s.kind == kind).count();
        open >= self.limit(kind)
    }

    /// How many sessions of `kind` may be open at once.
    fn limit(&self, kind: SessionKind) -> usize {
        match kind {
            SessionKind::Transfer => self.max,
            SessionKind::Status => STATUS_SESSIONS,
        }
    }

    /// Opens a session for `region`, or answers "busy" when the table is
    /// full. A status-only session has room of its own, so that a full
    /// server can still say what it does.
    pub fn open(&mut self, client_pid: u32, region_size: u32, region: String, kind: SessionKind) {
        if !SessionNames::is_session_of(&self.queue, client_pid, &region) {
            warn!("dropped an open message from pid {client_pid} naming {region:?}, not a session object of this queue");
            return;
        }
        if self.open.contains_key(&region) {
            warn!("dropped a second open message for session {region}");
            return;
        }
        if self.full(kind) {
            self.wait_for_closing(kind);
        }
        let names = SessionNames::for_region(&region);
        if self.full(kind) {
            if self.refused.len() >= MAX_REFUSED {
                self.refused.clear();
            }
            self.refused.insert(region);
            let limit = self.limit(kind);
            match kind {
                SessionKind::Status => {
                    warn!("busy: refused a status session from pid {client_pid} ({limit} open)")
                }
                SessionKind::Transfer => warn!(
                    "busy: refused a session from pid {client_pid} ({limit} open; --max-sessions sets how many)"
                ),
            }
            if let Err(e) = answer_busy(&names, region_size, client_pid, limit, &self.env.pacing) {
                warn!("could not tell pid {client_pid} that the server is busy: {e}");
            }
            return;
        }
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let stats = self.env.stats.open(&region, client_pid, kind);
        let thread = SessionThread {
            names,
            region_size,
            client_pid,
            env: self.env.clone(),
            pending: Arc::clone(&pending),
            stats: Arc::clone(&stats),
            kind,
        };
        match std::thread::Builder::new().name(format!("session-{client_pid}")).spawn(move || thread.run(rx))
        {
            Ok(thread) => {
                debug!("client {client_pid}: session {region} opened");
                let session =
                    Session { client_pid, jobs: Some(tx), pending, thread: Some(thread), stats, kind };
                self.open.insert(region, session);
            }
            Err(e) => {
                self.env.stats.close(&region);
                error!("could not start a session thread: {e}");
            }
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

    /// The client's goodbye: its session finishes what is queued and ends.
    pub fn close(&mut self, region: &str, client_pid: u32) {
        match self.open.get_mut(region) {
            Some(s) if s.client_pid == client_pid => {
                debug!("client {client_pid}: session {region}: goodbye");
                s.stats.said_goodbye();
                s.jobs = None;
                // Asking for the status does not make a client of the
                // default mode's "last client".
                self.any_closed |= s.kind == SessionKind::Transfer;
            }
            // A session the server ended (a stall, a dead client) still gets
            // its client's goodbye: nothing to do.
            _ => debug!("dropped a shutdown message for unknown session {region}"),
        }
    }

    /// Ends every session (the caller has raised the stop flag) and joins
    /// their threads.
    pub fn end_all(&mut self) {
        for (_, mut s) in self.open.drain() {
            s.jobs = None;
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}
