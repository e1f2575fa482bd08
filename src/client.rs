//! The requesting role's transport: find a live server, open a session
//! (create the region and semaphores, send Open, wait until the server takes
//! it), send requests, read the answer frames, say goodbye. What to do with
//! the frames is [`crate::delivery`]'s business.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use posixmq::PosixMq;

use crate::error::{Error, Result};
use crate::liveness::ServerWatch;
use crate::names::{validate_queue_name, SessionNames};
use crate::pacing::{Pacing, DEFAULT_SPIN_BUDGET};
use crate::protocol::{Command, FrameHeader, FrameKind, Reply, ServerStatus, SessionKind, SessionStatus};
use crate::queue;
use crate::ring::{Consumer, Liveness, RingSems};
use crate::semaphore::Semaphore;
use crate::shm_region::{EndReason, Geometry, Region, DEFAULT_SLOTS, MAX_SLOTS};

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The command queue's name, such as `/shmxfer`.
    pub queue: String,
    /// How long to wait for a server to appear; zero means one try.
    pub wait: Duration,
    /// Slots in the ring (1..=4).
    pub slots: u32,
    /// How long a session may go without a frame before the client gives
    /// up on it (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// How long a live server may take to attach to a new session before the
    /// client gives up on it ([`ATTACH_TIMEOUT`] unless told otherwise).
    pub attach_timeout: Duration,
    /// The longest a wait for a frame spins before it blocks (zero: block
    /// at once); [`DEFAULT_SPIN_BUDGET`] unless measuring.
    pub spin_budget: Duration,
}

impl ClientConfig {
    /// A configuration with the defaults: 30 s wait, [`DEFAULT_SLOTS`]
    /// slots, [`DEFAULT_STALL_TIMEOUT`], [`ATTACH_TIMEOUT`], [`DEFAULT_SPIN_BUDGET`].
    pub fn new(queue: impl Into<String>) -> ClientConfig {
        ClientConfig {
            queue: queue.into(),
            wait: Duration::from_secs(30),
            slots: DEFAULT_SLOTS,
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
            attach_timeout: ATTACH_TIMEOUT,
            spin_budget: DEFAULT_SPIN_BUDGET,
        }
    }
}

/// Builds a [`ClientConfig`] step by step and checks it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use shmxfer::ClientConfig;
///
/// let config = ClientConfig::builder("/myqueue")
///     .wait(Duration::from_secs(5))
///     .slots(4)
///     .stall_timeout(Some(Duration::from_secs(10)))
///     .build()?;
/// assert_eq!(config.wait, Duration::from_secs(5));
/// assert_eq!(config.stall_timeout, Some(Duration::from_secs(10)));
///
/// // A bad queue name or slot count is an error here, not at connect time.
/// assert!(ClientConfig::builder("myqueue").build().is_err());
/// assert!(ClientConfig::builder("/myqueue").slots(9).build().is_err());
/// # Ok::<(), shmxfer::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientConfigBuilder {
    config: ClientConfig,
}

impl ClientConfig {
    /// A builder that starts from [`ClientConfig::new`]`(queue)`.
    pub fn builder(queue: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder { config: ClientConfig::new(queue) }
    }
}

impl ClientConfigBuilder {
    /// How long [`Client::connect`] waits for a server to appear; zero: one try.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.config.wait = wait;
        self
    }

    /// How long a session may go without a frame before the client gives
    /// up on it; `None`: never.
    pub fn stall_timeout(mut self, stall: Option<Duration>) -> Self {
        self.config.stall_timeout = stall;
        self
    }

    /// Slots in the ring, 1 to [`MAX_SLOTS`].
    pub fn slots(mut self, slots: u32) -> Self {
        self.config.slots = slots;
        self
    }

    /// The longest a wait for a frame spins before it blocks; zero: block
    /// at once.
    pub fn spin_budget(mut self, budget: Duration) -> Self {
        self.config.spin_budget = budget;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a queue name that breaks the naming rules
    /// (see [`validate_queue_name`]); [`Error::InvalidConfig`] for a slot
    /// count outside 1 to [`MAX_SLOTS`].
    pub fn build(self) -> Result<ClientConfig> {
        validate_queue_name(&self.config.queue)?;
        if !(1..=MAX_SLOTS).contains(&self.config.slots) {
            let slots = self.config.slots;
            return Err(Error::InvalidConfig(format!("{slots} slots asked for; 1 to {MAX_SLOTS} allowed")));
        }
        Ok(self.config)
    }
}

/// How long a session may go without a frame, on either side, unless told
/// otherwise (`--stall-timeout`).
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a live server may take to attach to a new session, unless the
/// [`ClientConfig::attach_timeout`] says otherwise.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// A frame as the client reads it: data (the payload is in the caller's
/// buffer) or a decoded control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A data frame of this many bytes.
    Data(u32),
    /// Any other frame.
    Control(Reply),
}

/// What a server says of itself and of its other live sessions
/// ([`Client::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub server: ServerStatus,
    /// The other sessions, by client pid.
    pub sessions: Vec<SessionStatus>,
}

/// Most sessions a status may list: far more than a server serves at once.
const MAX_STATUS_SESSIONS: usize = 65_536;

/// A live session with a server.
pub struct Client {
    queue_name: String,
    queue: PosixMq,
    consumer: Consumer,
    cancel: Arc<AtomicBool>,
    names: SessionNames,
    next_seq: u32,
    closed: bool,
    /// Whether the server that took the session lives; checked while a send
    /// waits.
    server_alive: Liveness,
    /// How long a request may wait for room in a full queue: the stall
    /// timeout, for a full queue is a session where nothing moves.
    send_limit: Duration,
    /// This process's id, named in every message.
    pid: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("queue", &self.queue_name).field("region", &self.names.region).finish()
    }
}

/// The queue of a live server and a watch on that server.
struct Found {
    queue: PosixMq,
    watch: Arc<ServerWatch>,
}

/// Looks for a live server on `config.queue`, retrying with a growing
/// back-off until `config.wait` (counted from `started`) runs out. `on_wait`
/// is called the first time it has to wait, and only then.
fn find_server(
    config: &ClientConfig,
    started: Instant,
    cancel: &AtomicBool,
    on_wait: &mut Option<&mut dyn FnMut()>,
) -> Result<Found> {
    validate_queue_name(&config.queue)?;
    let mut backoff = Duration::from_millis(5);
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if let Some(found) = try_find_server(&config.queue)? {
            return Ok(found);
        }
        let waited = started.elapsed();
        if waited >= config.wait {
            return Err(Error::NoServer { queue: config.queue.clone(), waited });
        }
        if let Some(tell) = on_wait.take() {
            tell();
        }
        std::thread::sleep(backoff.min(config.wait - waited));
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

/// The queue of a live server, or `None` when there is no queue or only one
/// left by a dead server.
fn try_find_server(queue: &str) -> Result<Option<Found>> {
    let Some(watch) = ServerWatch::find(queue)? else { return Ok(None) };
    let Some(mq) = queue::open_for_sending(queue)? else { return Ok(None) };
    Ok(Some(Found { queue: mq, watch: Arc::new(watch) }))
}

fn liveness(watch: &Arc<ServerWatch>) -> Liveness {
    let watch = Arc::clone(watch);
    Box::new(move || watch.check())
}

/// The session's liveness: the server that took it lives and has not ended
/// it on its own.
fn session_liveness(watch: &Arc<ServerWatch>, region: &Arc<Region>) -> Liveness {
    let (watch, region) = (Arc::clone(watch), Arc::clone(region));
    Box::new(move || {
        // What the server said about the session comes first: a stopping
        // server also releases its lock.
        match region.ended() {
            None => watch.check(),
            Some(EndReason::ServerStopping) => Err(Error::PeerGone(
                "the server stopped (SIGINT/SIGTERM or shm_client --stop-server) and cancelled this session"
                    .into(),
            )),
            Some(EndReason::Stalled) => Err(Error::PeerGone(
                "the server ended this session: this client took no frame for the server's stall timeout"
                    .into(),
            )),
            Some(EndReason::Idle) => Err(Error::PeerGone(
                "the server ended this session: this client sent no request for the server's stall timeout"
                    .into(),
            )),
        }
    })
}

/// A queue that stayed full while the client looked for a session: no
/// server that takes requests.
fn no_room(e: Error, config: &ClientConfig) -> Error {
    match e {
        Error::Timeout { what, after } if what == queue::QUEUE_FULL => {
            Error::QueueFull { queue: config.queue.clone(), waited: after }
        }
        e => e,
    }
}

/// Waits until the server has mapped the region (it writes its pid into the
/// header), polling with a short growing pause.
fn wait_attached(
    region: &Region,
    alive: &Liveness,
    cancel: &AtomicBool,
    attach_timeout: Duration,
    queue_still_ours: impl Fn() -> bool,
) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    while region.server_pid() == 0 {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        alive()?;
        if !queue_still_ours() {
            return Err(Error::PeerGone("the queue was replaced before the server took the session".into()));
        }
        if start.elapsed() > attach_timeout {
            return Err(Error::Timeout {
                what: "the server did not take the session".into(),
                after: start.elapsed(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
    Ok(())
}

/// Asks the server of `config.queue` to stop, and waits until it has.
///
/// # Errors
///
/// [`Error::NoServer`] when no server shows up within `config.wait`;
/// [`Error::Timeout`] when it does not stop within 10 seconds.
pub fn stop_server(config: &ClientConfig, cancel: &AtomicBool, on_wait: &mut dyn FnMut()) -> Result<()> {
    let found = find_server(config, Instant::now(), cancel, &mut Some(on_wait))?;
    let alive = liveness(&found.watch);
    let stop = Command::Stop { client_pid: std::process::id() };
    queue::send(&found.queue, &stop, cancel, &alive, config.wait).map_err(|e| no_room(e, config))?;
    let start = Instant::now();
    while found.watch.is_alive() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(Error::Timeout {
                what: format!("the server of {} did not stop", config.queue),
                after: start.elapsed(),
            });
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
    /// [`Error::NoServer`], [`Error::Cancelled`], [`Error::Timeout`] when the
    /// server does not take the session, [`Error::Os`] for the objects.
    pub fn connect(
        config: &ClientConfig,
        cancel: Arc<AtomicBool>,
        on_wait: &mut dyn FnMut(),
    ) -> Result<Client> {
        Client::open(config, cancel, on_wait, SessionKind::Transfer)
    }

    /// As [`Client::connect`], for a session that only asks for
    /// [`Client::status`]: the server takes it even when it serves its
    /// maximum of sessions, and it is not listed in the status. Other
    /// requests on it are dropped by the server.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect_for_status(
        config: &ClientConfig,
        cancel: Arc<AtomicBool>,
        on_wait: &mut dyn FnMut(),
    ) -> Result<Client> {
        Client::open(config, cancel, on_wait, SessionKind::Status)
    }

    fn open(
        config: &ClientConfig,
        cancel: Arc<AtomicBool>,
        on_wait: &mut dyn FnMut(),
        kind: SessionKind,
    ) -> Result<Client> {
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        // This client's own: its ring end spins with no other client's.
        let pacing = Pacing::new(config.spin_budget);
        loop {
            let found = find_server(config, started, &cancel, &mut on_wait)?;
            let pid = std::process::id();
            let geometry = Geometry::for_slots(config.slots);
            let names = SessionNames::fresh(&config.queue, pid)?;
            let region = Arc::new(Region::create(&names.region, geometry, pid)?);
            let sems = RingSems {
                items: Semaphore::create_exclusive(&names.items, 0)?,
                spaces: Semaphore::create_exclusive(&names.spaces, geometry.slots())?,
            };
            let alive = liveness(&found.watch);
            let (client_pid, region_size, name) = (pid, geometry.region_size() as u32, names.region.clone());
            let open = Command::Open { client_pid, region_size, region: name, kind };
            // The rest of --wait: a stopped server's full queue is no server.
            let left = config.wait.saturating_sub(started.elapsed());
            queue::send(&found.queue, &open, &cancel, &alive, left).map_err(|e| no_room(e, config))?;
            match wait_attached(&region, &alive, &cancel, config.attach_timeout, || {
                queue::still_named(&config.queue, &found.queue)
            }) {
                Ok(()) => {}
                // The server went away before it took the session (a server
                // in its default mode that was just finishing), or a new
                // server replaced the queue our Open went into (it took over
                // from a dead one just then): our objects are dropped here,
                // and we look for a server again.
                Err(Error::PeerGone(_)) => continue,
                Err(e) => return Err(e),
            }
            let alive = session_liveness(&found.watch, &region);
            let consumer = Consumer::new(region, sems, Arc::clone(&cancel), alive, &pacing)
                .with_stall_timeout(config.stall_timeout);
            return Ok(Client {
                queue_name: config.queue.clone(),
                queue: found.queue,
                consumer,
                cancel,
                names,
                next_seq: 1,
                closed: false,
                server_alive: liveness(&found.watch),
                send_limit: config.stall_timeout.unwrap_or(Duration::MAX),
                pid,
            });
        }
    }

    /// The session's object names.
    pub fn names(&self) -> &SessionNames {
        &self.names
    }

    /// The largest payload one frame carries.
    pub fn max_payload(&self) -> usize {
        self.consumer.max_payload()
    }

    fn send(&self, cmd: &Command) -> Result<()> {
        queue::send(&self.queue, cmd, &self.cancel, &self.server_alive, self.send_limit)
    }

    fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        seq
    }

    /// Asks for the file `path`; its frames will carry the returned
    /// sequence number.
    ///
    /// # Errors
    ///
    /// As [`queue::send`].
    pub fn request(&mut self, path: &str) -> Result<u32> {
        let seq = self.take_seq();
        let region = self.names.region.clone();
        self.send(&Command::Get { client_pid: self.pid, seq, region, path: path.to_owned() })?;
        Ok(seq)
    }

    /// Asks for the server's listing; its frames will carry the returned
    /// sequence number.
    ///
    /// # Errors
    ///
    /// As [`queue::send`].
    pub fn request_list(&mut self) -> Result<u32> {
        let seq = self.take_seq();
        self.send(&Command::List { client_pid: self.pid, seq, region: self.names.region.clone() })?;
        Ok(seq)
    }

    /// Reads the next frame, which must answer `seq`, copying its payload
    /// straight out of the ring into the front of `out`. A data frame's
    /// payload is left in `out[..len]`; control frames are decoded. A busy
    /// answer ends the session. `out` should hold [`Client::max_payload`]
    /// bytes: a longer frame is a decoding error.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::Decode`], [`Error::Protocol`] for a frame of
    /// another request, and the ring's errors.
    pub fn next_frame(&mut self, seq: u32, out: &mut [u8]) -> Result<Frame> {
        let header: FrameHeader = self.consumer.recv_into(out)?;
        let payload = &out[..header.len as usize];
        if header.kind == FrameKind::Busy {
            if let Reply::Busy { max_sessions } = Reply::decode(header.kind, payload)? {
                return Err(Error::Busy { max_sessions });
            }
        }
        if header.seq != seq {
            return Err(Error::Protocol(format!("frame for request {}, expected {seq}", header.seq)));
        }
        if header.kind == FrameKind::Data {
            return Ok(Frame::Data(header.len));
        }
        Ok(Frame::Control(Reply::decode(header.kind, payload)?))
    }

    /// Asks for the server's list of files: `(relative path, size)`, sorted.
    ///
    /// # Errors
    ///
    /// As [`Client::next_frame`].
    pub fn list(&mut self) -> Result<Vec<(String, u64)>> {
        let seq = self.request_list()?;
        let mut buf = vec![0; self.max_payload()];
        let mut out = Vec::new();
        loop {
            match self.next_frame(seq, &mut buf)? {
                Frame::Control(Reply::ListEntry { size, path }) => out.push((path, size)),
                Frame::Control(Reply::ListEnd { count }) if count == out.len() as u64 => return Ok(out),
                Frame::Control(Reply::ListEnd { count }) => {
                    return Err(Error::Protocol(format!(
                        "listing ended at {count} entries, received {}",
                        out.len()
                    )))
                }
                Frame::Control(Reply::Error { reason, .. }) => {
                    return Err(Error::Protocol(format!("server: {reason}")))
                }
                other => return Err(Error::Protocol(format!("{other:?} in a listing"))),
            }
        }
    }

    /// Asks the server for its status: its pid, root, mode, uptime, sessions
    /// and totals, and what each other session is doing.
    ///
    /// # Errors
    ///
    /// As [`Client::next_frame`].
    pub fn status(&mut self) -> Result<Status> {
        let seq = self.take_seq();
        self.send(&Command::Status { client_pid: self.pid, seq, region: self.names.region.clone() })?;
        let mut buf = vec![0; self.max_payload()];
        let server = match self.next_frame(seq, &mut buf)? {
            Frame::Control(Reply::ServerStatus(server)) => server,
            Frame::Control(Reply::Error { reason, .. }) => {
                return Err(Error::Protocol(format!("server: {reason}")))
            }
            other => return Err(Error::Protocol(format!("{other:?} where a status should start"))),
        };
        let mut sessions = Vec::new();
        loop {
            match self.next_frame(seq, &mut buf)? {
                Frame::Control(Reply::SessionStatus(s)) if sessions.len() < MAX_STATUS_SESSIONS => {
                    sessions.push(s)
                }
                Frame::Control(Reply::StatusEnd { count }) if count == sessions.len() as u64 => {
                    return Ok(Status { server, sessions })
                }
                other => return Err(Error::Protocol(format!("{other:?} in a status"))),
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
