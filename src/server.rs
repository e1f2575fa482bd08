//! The serving role: binds the queue, reads its messages and dispatches them
//! to the session table (`sessions.rs`), and stops.

pub(crate) mod answers;
pub(crate) mod leftovers;
pub(crate) mod log_budget;
pub(crate) mod serve_file;
pub(crate) mod sessions;
pub(crate) mod stats;
pub(crate) mod upload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, trace, warn};
use posixmq::PosixMq;

use crate::error::{Error, Result};
use crate::fs::output::OutDir;
use crate::fs::source::Root;
use crate::os::liveness::{queue_identity, ServerLock};
use crate::os::names::validate_queue_name;
use crate::os::queue::{self, QUEUE_MSG_LEN};
use crate::protocol::{Command, StopKind};
use crate::server::leftovers::collect_dead_sessions;
use crate::server::log_budget::LogBudget;
use crate::server::sessions::{Job, ServeEnv, Sessions};
use crate::server::stats::ServerStats;
use crate::shm_region::pacing::{Pacing, DEFAULT_SPIN_BUDGET};
use crate::transfer::send_file::Ask;

/// How often the main loop looks at the stop flag and finished sessions.
const POLL: Duration = Duration::from_millis(50);

/// How often a running server collects what dead sessions of its queue left,
/// unless its [`ServerConfig::collect_every`] says otherwise.
pub const COLLECT_EVERY: Duration = Duration::from_secs(5);

/// Sessions served at once unless told otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 16;

/// How long a session may stall unless told otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How a server runs. [`Server::builder`] fills it with the defaults.
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
    /// How long a session may go without a frame taken or a request sent
    /// before the server ends it and frees its slot (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// How often the running server collects what dead sessions of its
    /// queue left (every 5 s unless told otherwise).
    pub collect_every: Duration,
    /// The longest a session's wait for a free slot spins before it blocks
    /// (zero: block at once);
    /// [`DEFAULT_SPIN_BUDGET`](crate::DEFAULT_SPIN_BUDGET) (200 µs) unless
    /// measuring.
    pub spin_budget: Duration,
    /// The directory uploads go below (`shm_server --accept DIR`); `None`:
    /// every upload is refused.
    pub accept: Option<PathBuf>,
}

/// How a running server is asked to stop from outside its queue (a signal
/// handler, another thread): [`StopKind::Now`] cancels its open sessions,
/// [`StopKind::Drain`] lets them finish what they asked for first. A `Now`
/// asked during a drain ends the drain at once; a `Drain` asked after a
/// `Now` changes nothing. Clones share one request.
///
/// # Examples
///
/// ```
/// use shmxfer::{StopKind, StopSignal};
///
/// let stop = StopSignal::new();
/// assert_eq!(stop.requested(), None);
/// stop.request(StopKind::Drain);
/// assert_eq!(stop.requested(), Some(StopKind::Drain));
/// // A signal handler raises a flag: SIGTERM during the drain.
/// stop.flag(StopKind::Now).store(true, std::sync::atomic::Ordering::Relaxed);
/// assert_eq!(stop.requested(), Some(StopKind::Now));
/// stop.request(StopKind::Drain);
/// assert_eq!(stop.requested(), Some(StopKind::Now));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    now: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
}

impl StopSignal {
    /// No stop asked for yet.
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    /// Asks for a stop of `kind`.
    pub fn request(&self, kind: StopKind) {
        self.flag(kind).store(true, Ordering::Relaxed);
    }

    /// The stop asked for, if any: `Now` over `Drain` when both were.
    pub fn requested(&self) -> Option<StopKind> {
        if self.now.load(Ordering::Relaxed) {
            Some(StopKind::Now)
        } else if self.drain.load(Ordering::Relaxed) {
            Some(StopKind::Drain)
        } else {
            None
        }
    }

    /// The flag that asks for `kind` once true, for a signal handler
    /// (`signal_hook::flag::register`); setting it is [`StopSignal::request`].
    pub fn flag(&self, kind: StopKind) -> Arc<AtomicBool> {
        match kind {
            StopKind::Now => Arc::clone(&self.now),
            StopKind::Drain => Arc::clone(&self.drain),
        }
    }
}

/// Builds a [`ServerConfig`], or binds a [`Server`] at once, from the
/// defaults: the queue named by `SHMXFER_QUEUE` (else [`DEFAULT_QUEUE`](crate::DEFAULT_QUEUE)),
/// the root `files`, 16 sessions, a 60 s stall timeout, not persistent, no
/// uploads.
///
/// ```
/// use std::time::Duration;
///
/// let config = shmxfer::Server::builder().queue("/mine").build();
/// assert_eq!((config.root.as_path(), config.max_sessions), ("files".as_ref(), 16));
/// assert_eq!(config.stall_timeout, Some(Duration::from_secs(60)));
/// assert!(!config.persistent && config.accept.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: ServerConfig,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            config: ServerConfig {
                queue: crate::os::names::queue_from_env(),
                root: PathBuf::from("files"),
                persistent: false,
                max_sessions: DEFAULT_MAX_SESSIONS,
                stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
                collect_every: COLLECT_EVERY,
                spin_budget: DEFAULT_SPIN_BUDGET,
                accept: None,
            },
        }
    }
}

impl ServerBuilder {
    /// The command queue's name, such as `/shmxfer`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.config.queue = queue.into();
        self
    }

    /// The directory whose regular files are served.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.config.root = root.into();
        self
    }

    /// Keep serving after clients leave, until stopped.
    pub fn persistent(mut self) -> Self {
        self.config.persistent = true;
        self
    }

    /// Sessions served at once; a client over the limit is answered "busy".
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.config.max_sessions = max;
        self
    }

    /// How long a session may go without a frame taken or a request sent
    /// before the server ends it (`None`: never).
    pub fn stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.stall_timeout = timeout;
        self
    }

    /// How often the running server collects what dead sessions of its
    /// queue left (every 5 s unless told otherwise).
    pub fn collect_every(mut self, every: Duration) -> Self {
        self.config.collect_every = every;
        self
    }

    /// The longest a session's wait for a free slot spins before it blocks
    /// (zero: block at once); [`DEFAULT_SPIN_BUDGET`] unless measuring.
    pub fn spin_budget(mut self, budget: Duration) -> Self {
        self.config.spin_budget = budget;
        self
    }

    /// Takes uploads below `dir` (`None`, the default: refuses them).
    pub fn accept(mut self, dir: Option<PathBuf>) -> Self {
        self.config.accept = dir;
        self
    }

    /// The configuration, for [`Server::bind`].
    pub fn build(self) -> ServerConfig {
        self.config
    }

    /// Binds a server with this configuration: [`Server::bind`].
    ///
    /// # Errors
    ///
    /// As [`Server::bind`].
    pub fn bind(self) -> Result<Server> {
        Server::bind(self.config)
    }
}

/// A bound server: it holds the queue's liveness lock and the queue.
/// Dropping it removes both.
///
/// # Examples
///
/// A server and a client in one process, on a queue of their own:
///
/// ```
/// use shmxfer::{Client, ClientConfig, Server, StopSignal};
///
/// # fn main() -> Result<(), shmxfer::Error> {
/// let root = tempfile::tempdir().unwrap();
/// std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
/// let queue = format!("/shmxfer_builder_doctest_{}", std::process::id());
///
/// let server = Server::builder().queue(&queue).root(root.path()).max_sessions(4).bind()?;
/// let stop = StopSignal::new();
/// let serving = std::thread::spawn(move || server.run(stop));
///
/// let mut client = Client::connect(&ClientConfig::new(&queue))?;
/// let listing = client.list(None)?;
/// let hello = client.fetch_vec("hello.txt")?;
/// client.close()?;
/// // Not persistent: the server stops once its last client that fetched
/// // files has left (a listing alone would not end it).
/// serving.join().unwrap()?;
///
/// assert_eq!(listing.files.len(), 1);
/// assert_eq!((listing.files[0].path.as_path(), listing.files[0].size), ("hello.txt".as_ref(), 6));
/// assert_eq!(hello, b"hello\n");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    root: Arc<Root>,
    /// The `--accept` directory, open once.
    accept: Option<Arc<OutDir>>,
    queue: PosixMq,
    /// Held, not read: while it lives the queue is ours. Declared after
    /// `queue`, so that it is released only after the queue is gone.
    _lock: ServerLock,
}

impl Server {
    /// A builder with the defaults; see [`ServerBuilder`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Takes the queue: opens the root, locks `<queue>.lock`, removes a queue
    /// that a dead server left, creates the queue afresh (`O_EXCL`, 0600).
    ///
    /// # Errors
    ///
    /// [`Error::ServerRunning`] when a live server holds the lock;
    /// [`Error::Timeout`] when a dead server's lock stays held by whoever
    /// removes it (a `--cleanup` stopped);
    /// [`Error::InvalidName`]; [`Error::BadObject`] for objects of another
    /// user under the queue's names; [`Error::Os`] for the root or the queue.
    pub fn bind(config: ServerConfig) -> Result<Server> {
        validate_queue_name(&config.queue)?;
        let root = Root::open(&config.root)?;
        let accept = match &config.accept {
            Some(dir) => Some(Arc::new(
                OutDir::accepting(dir).map_err(|e| Error::os_named("open", &dir.display().to_string(), e))?,
            )),
            None => None,
        };
        let lock = ServerLock::acquire(&config.queue)?;
        // The lock is held before the queue is created, so no server takes
        // the queue from under this one; the queue is created with
        // `O_EXCL`, so a squatter can only make this start fail (and the
        // lock goes with it).
        let queue = queue::create(&config.queue).map_err(|e| squatted(&config.queue, e))?;
        let server = Server { config, root: Arc::new(root), accept, queue, _lock: lock };
        server.collect_leftovers();
        Ok(server)
    }

    /// The start line of the log: what is served, on which queue, how.
    fn announce(&self) {
        let uploads = match &self.config.accept {
            Some(dir) => format!(", taking uploads into {}", dir.display()),
            None => String::new(),
        };
        // How to keep a default server serving, for whoever wonders why it stopped.
        let keep = if self.config.persistent {
            ""
        } else {
            "; --persistent keeps a server serving after its last client"
        };
        info!(
            "serving {} on queue {} (pid {}, {}, at most {} session(s) at once, stall timeout {}){uploads}{keep}",
            self.config.root.display(),
            self.config.queue,
            std::process::id(),
            if self.config.persistent { "persistent" } else { "until the last client leaves" },
            self.config.max_sessions,
            self.config.stall_timeout.map_or("none".to_owned(), |d| format!("{} s", d.as_secs_f64()))
        );
    }

    /// What every session shares, and the totals of the server's log.
    fn serve_env(&self, stop: &StopSignal) -> (ServeEnv, Arc<ServerStats>) {
        let stats = ServerStats::new(
            self.config.root.display().to_string(),
            self.config.persistent,
            self.config.max_sessions,
        );
        let stats = Arc::new(if self.accept.is_some() { stats.accepting_uploads() } else { stats });
        let env = ServeEnv {
            root: Arc::clone(&self.root),
            stop: stop.flag(StopKind::Now),
            stall_timeout: self.config.stall_timeout,
            stats: Arc::clone(&stats),
            pacing: Pacing::new(self.config.spin_budget),
            accept: self.accept.clone(),
        };
        (env, stats)
    }

    /// Serves until stopped: by `stop` (a signal), a stop message, or —
    /// unless persistent — the last session closing after the goodbye of a
    /// client that asked for a file or sent one. A stop of [`StopKind::Now`] cancels
    /// and joins the open sessions; one of [`StopKind::Drain`] answers new
    /// transfer sessions "busy" (their regions marked "server stopping"),
    /// lets each open session answer what it had asked for when the drain
    /// began, and stops once none is open. A `Now` during a drain cancels
    /// what is left.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the queue fails.
    pub fn run(self, stop: StopSignal) -> Result<()> {
        self.announce();
        let (env, stats) = self.serve_env(&stop);
        let mut sessions = Sessions::new(&self.config.queue, self.config.max_sessions, env);
        let mut buf = vec![0u8; QUEUE_MSG_LEN];
        let mut garbage = LogBudget::new("bad queue messages dropped");
        let mut collected_at = Instant::now();
        let result = loop {
            match stop.requested() {
                Some(StopKind::Now) => {
                    info!("stopping");
                    break Ok(());
                }
                Some(StopKind::Drain) if !sessions.draining() => {
                    info!("stopping after the open sessions (a signal asked to drain)");
                    if let Some(end) = self.begin_drain(&mut sessions, &mut buf, &mut garbage) {
                        break end;
                    }
                }
                _ => {}
            }
            sessions.reap();
            if sessions.drained() {
                info!("the open sessions are done; stopping");
                break Ok(());
            }
            garbage.flush();
            if collected_at.elapsed() >= self.config.collect_every {
                self.collect_leftovers();
                collected_at = Instant::now();
            }
            if self.last_client_left(&sessions) {
                info!("last client left; stopping");
                break Ok(());
            }
            let cmd = match self.next_command(&mut buf, &mut garbage) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => continue,
                Err(e) => break Err(e),
            };
            match cmd {
                Command::Stop { client_pid, kind: StopKind::Now } => {
                    info!("stop requested by pid {client_pid}");
                    break Ok(());
                }
                Command::Stop { client_pid, kind: StopKind::Drain } => {
                    if !sessions.draining() {
                        info!("stop after the open sessions requested by pid {client_pid}");
                        if let Some(end) = self.begin_drain(&mut sessions, &mut buf, &mut garbage) {
                            break end;
                        }
                    }
                }
                cmd => dispatch(&mut sessions, cmd),
            }
        };
        stop.request(StopKind::Now);
        sessions.end_all();
        info!("stopped: {}", stats.summary());
        result
    }

    /// Begins a drain: the messages already in the queue are taken as they
    /// would be (requests of open sessions routed, new sessions answered
    /// "busy"), then each open session is told that nothing more comes, so
    /// that it ends once it has answered what it was asked.
    ///
    /// `None`: serving goes on until the sessions are done. `Some`: the
    /// server stops now, with that result (a stop of [`StopKind::Now`]
    /// among those messages, or the queue failing).
    fn begin_drain(
        &self,
        sessions: &mut Sessions,
        buf: &mut [u8],
        garbage: &mut LogBudget,
    ) -> Option<Result<()>> {
        sessions.begin_drain();
        let waiting = self.queue.attributes().map_or(0, |a| a.current_messages);
        for _ in 0..waiting {
            match self.next_command(buf, garbage) {
                Ok(Some(Command::Stop { client_pid, kind: StopKind::Now })) => {
                    info!("stop requested by pid {client_pid} during the drain");
                    return Some(Ok(()));
                }
                // Already draining.
                Ok(Some(Command::Stop { kind: StopKind::Drain, .. })) => {}
                Ok(Some(cmd)) => dispatch(sessions, cmd),
                Ok(None) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        sessions.end_after_queued_jobs();
        None
    }

    /// Removes what dead sessions of this queue left (clients killed before
    /// their session began, or killed together with an earlier server), and
    /// logs each object.
    fn collect_leftovers(&self) {
        match collect_dead_sessions(&self.config.queue) {
            Ok(collected) => {
                for object in &collected.removed {
                    info!("removed {object}, left by a process that is gone");
                }
            }
            Err(e) => warn!("collecting leftovers of queue {}: {e:#}", self.config.queue),
        }
    }

    /// The default mode's exit rule: a client that asked for a file (or sent
    /// one) said
    /// goodbye, no session is open and no message waits (a client whose
    /// message is queued is served first).
    fn last_client_left(&self, sessions: &Sessions) -> bool {
        !self.config.persistent
            && sessions.all_left()
            && self.queue.attributes().map_or(true, |a| a.current_messages == 0)
    }

    /// The next well-formed message within one poll interval; bad ones are
    /// logged (within the log budget) and dropped.
    fn next_command(&self, buf: &mut [u8], garbage: &mut LogBudget) -> Result<Option<Command>> {
        let n = match self.queue.recv_timeout(buf, POLL) {
            Ok((_, n)) => n,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIMEDOUT) | Some(libc::EAGAIN)) => {
                return Ok(None)
            }
            Err(e) => return Err(Error::os_named("mq_receive", &self.config.queue, e)),
        };
        match Command::decode(&buf[..n]) {
            Ok(cmd) => {
                trace!("queue: {cmd}");
                Ok(Some(cmd))
            }
            Err(e) => {
                if garbage.admit() {
                    warn!("dropped a {n}-byte queue message: {e}");
                }
                Ok(None)
            }
        }
    }
}

/// The error of a queue creation that found the name taken although this
/// server holds the lock (another process created the queue meanwhile):
/// a refusal naming the queue's owner; any other error as it is.
fn squatted(queue: &str, e: Error) -> Error {
    if e.raw_os_error() != Some(libc::EEXIST) {
        return e;
    }
    let owner = posixmq::OpenOptions::readonly()
        .nonblocking()
        .open(queue)
        .ok()
        .and_then(|mq| queue_identity(queue, &mq).ok())
        .map_or("an unknown user".to_owned(), |(uid, _)| format!("uid {uid}"));
    Error::BadObject {
        name: queue.to_owned(),
        reason: format!(
            "the queue was created by another process (owned by {owner}) while this server was taking it; \
             nothing of this server is left; find who uses the name, or choose another queue"
        ),
    }
}

/// Hands one session message to the table.
fn dispatch(sessions: &mut Sessions, cmd: Command) {
    let is_goodbye = matches!(cmd, Command::Close { .. });
    if cmd.region().is_some_and(|r| sessions.drop_quietly(r, is_goodbye)) {
        return;
    }
    match cmd {
        Command::Open { client_pid, region_size, region, items, spaces, kind } => {
            sessions.open(client_pid, region_size, region, items, spaces, kind)
        }
        Command::Get { client_pid, seq, region, path, offset, condition } => {
            sessions.route(&region, client_pid, Job::Get { seq, path, ask: Ask { offset, condition } })
        }
        Command::List { client_pid, seq, region, prefix } => {
            sessions.route(&region, client_pid, Job::List { seq, prefix })
        }
        Command::Status { client_pid, seq, region } => {
            sessions.route(&region, client_pid, Job::Status { seq })
        }
        Command::Close { client_pid, region } => sessions.close(&region, client_pid),
        Command::Cancel { client_pid, seq, region } => sessions.cancel(&region, client_pid, seq),
        Command::Put { client_pid, seq, region, path, flags } => {
            sessions.route(&region, client_pid, Job::Put { seq, path, flags })
        }
        Command::Stop { .. } => {}
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Remove the queue only while its name still names our queue.
        let name = &self.config.queue;
        if queue::still_named(name, &self.queue) {
            if let Err(e) = posixmq::remove_queue(name) {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    warn!("could not remove queue {name}: {e:#}");
                }
            }
        }
        // Then the fields drop, `_lock` among them: the lock is released
        // only after the queue is gone.
    }
}
