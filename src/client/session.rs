//! The session core every kind of session is made of: find a live server,
//! open a session (create the region and semaphores, send Open, wait until
//! the server takes it) or start a relay, send commands, read the answer's
//! frames or fill the ring, say goodbye. [`Client`](crate::Client),
//! [`UploadSession`](crate::UploadSession) and
//! [`StatusSession`](crate::StatusSession) each hold one and give it only
//! their own methods; the relay opens one of any kind ([`open`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use posixmq::PosixMq;

use crate::client::config::{ClientConfig, Waiting};
use crate::client::link::{Link, Remote, RELAY_MAX_PAYLOAD};
use crate::error::{Error, Result, SessionEnd};
use crate::os::liveness::ServerWatch;
use crate::os::names::{create_under_fresh_name, validate_queue_name, SessionNames, SessionObject};
use crate::os::queue::{self, SendError};
use crate::os::semaphore::Semaphore;
use crate::protocol::{AnswerCount, Command, Frame, FrameHeader, FrameKind, Reply, SessionKind};
use crate::shm_region::pacing::Pacing;
use crate::shm_region::ring::{Consumer, Liveness, Producer, RingSems};
use crate::shm_region::{EndReason, Geometry, Region};
use crate::transfer::send_file::FrameSink;

/// The region a command sent to a relay names: the relay puts in its own.
const RELAYED_REGION: &str = "/relayed";

/// A live session with a server, whose own end of the ring is an `E`: a
/// [`Consumer`] when the server's answers come to it as frames (fetches,
/// listings, status), a [`Producer`] when it sends files to the server
/// (uploads). Which commands it sends is its owner's business.
pub(crate) struct Session<E> {
    queue_name: String,
    transport: Transport<E>,
    cancel: Arc<AtomicBool>,
    next_seq: u32,
    /// The frames of the answer being read, against their bounds.
    answer: AnswerCount,
    /// How long a request may wait for room in a full queue: the stall
    /// timeout, for a full queue is a session where nothing moves.
    send_limit: Duration,
    /// This process's id, named in every message.
    pid: u32,
}

/// How the session reaches the server: through its own region and the
/// server's queue, or through a relay on the server's host. The two
/// channels of every kind of session.
enum Transport<E> {
    Local(Local<E>),
    Relay(Link),
}

/// A session of this machine: its way to the server and its end of the
/// ring.
struct Local<E> {
    to_server: ToServer,
    end: E,
}

/// The server's queue and the names of the session's objects. Dropped
/// before the session was closed, it tells the server the session ends
/// (without waiting).
struct ToServer {
    queue: PosixMq,
    names: SessionNames,
    /// Whether the server that took the session lives; checked while a send
    /// waits.
    server_alive: Liveness,
    pid: u32,
    closed: bool,
}

impl Drop for ToServer {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Best effort: tell the server the session ends, without waiting.
        if let Ok(bytes) =
            (Command::Close { client_pid: self.pid, region: self.names.region.clone() }).encode()
        {
            let _ = self.queue.send_timeout(0, &bytes, Duration::from_millis(10));
        }
    }
}

/// The client's end of a ring: it empties the slots ([`Consumer`]) or fills
/// them ([`Producer`]).
pub(crate) trait RingEnd {
    /// The region the ring lives in.
    fn region(&self) -> &Region;
    /// The largest payload one frame of the ring carries.
    fn max_payload(&self) -> usize;
}

impl RingEnd for Consumer {
    fn region(&self) -> &Region {
        Consumer::region(self)
    }

    fn max_payload(&self) -> usize {
        Consumer::max_payload(self)
    }
}

impl RingEnd for Producer {
    fn region(&self) -> &Region {
        Producer::region(self)
    }

    fn max_payload(&self) -> usize {
        Producer::max_payload(self)
    }
}

/// A session opened for any kind ([`open`], the relay's): its ring runs to
/// the client, or (an upload session) to the server.
pub(crate) enum Opened {
    Reads(Session<Consumer>),
    Writes(Session<Producer>),
}

/// Opens a session of `kind`, as the relay does for whichever kind its
/// command line names; the public types each open their own.
///
/// # Errors
///
/// As [`Session::open_reading`].
pub(crate) fn open(config: &ClientConfig, kind: SessionKind) -> Result<Opened> {
    match kind {
        SessionKind::Upload => Session::open_upload(config).map(Opened::Writes),
        SessionKind::Transfer | SessionKind::Status => Session::open_reading(config, kind).map(Opened::Reads),
    }
}

/// Creates a session's objects, each exclusively under a fresh name of its
/// own (a name found taken is replaced, [`create_under_fresh_name`]): first
/// both semaphores, then the region with its liveness lock, so that once the
/// region shows in `/dev/shm` nothing of the session is left to take.
///
/// # Errors
///
/// [`Error::Os`] from the creations (`EEXIST` only after
/// [`MAX_NAME_TRIES`](crate::os::names::MAX_NAME_TRIES) names taken).
fn create_session_objects(
    queue: &str,
    pid: u32,
    geometry: Geometry,
) -> Result<(SessionNames, Arc<Region>, RingSems)> {
    let (items, items_sem) =
        create_under_fresh_name(SessionObject::Items, queue, pid, |n| Semaphore::create_exclusive(n, 0))?;
    let (spaces, spaces_sem) = create_under_fresh_name(SessionObject::Spaces, queue, pid, |n| {
        Semaphore::create_exclusive(n, geometry.slots())
    })?;
    let (region, made) =
        create_under_fresh_name(SessionObject::Region, queue, pid, |n| Region::create(n, geometry, pid))?;
    let sems = RingSems { items: items_sem, spaces: spaces_sem };
    Ok((SessionNames { region, items, spaces }, Arc::new(made), sems))
}

/// The queue of a live server and a watch on that server.
pub(crate) struct Found {
    pub(crate) queue: PosixMq,
    pub(crate) watch: Arc<ServerWatch>,
}

/// Looks for a live server on `config.queue`, retrying with a growing
/// back-off until `config.wait` (counted from `started`) runs out. The
/// config's wait notice is told the first time it has to wait, and only
/// then (`told` remembers it across calls).
pub(crate) fn find_server(config: &ClientConfig, started: Instant, told: &mut bool) -> Result<Found> {
    validate_queue_name(&config.queue)?;
    let mut backoff = Duration::from_millis(5);
    loop {
        if config.cancelled() {
            return Err(Error::Cancelled);
        }
        if let Some(found) = try_find_server(&config.queue)? {
            return Ok(found);
        }
        let waited = started.elapsed();
        if waited >= config.wait {
            return Err(Error::NoServer { queue: config.queue.clone(), waited });
        }
        if !*told {
            *told = true;
            if let Some(tell) = &config.on_wait {
                tell(&config.queue, config.wait, Waiting::Server);
            }
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

pub(crate) fn liveness(watch: &Arc<ServerWatch>) -> Liveness {
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
            // Only a session whose wait ran out goes on after "busy": the
            // Busy frame that follows ends it with the server's limit.
            None | Some(EndReason::Busy) => watch.check(),
            Some(EndReason::ServerStopping) => Err(Error::SessionEnded(SessionEnd::ServerStopping)),
            Some(EndReason::Stalled) => Err(Error::SessionEnded(SessionEnd::ClientStalled)),
            Some(EndReason::Idle) => Err(Error::SessionEnded(SessionEnd::ClientIdle)),
        }
    })
}

/// A queue that stayed full while the client looked for a session: no
/// server that takes requests.
pub(crate) fn no_room(e: SendError, config: &ClientConfig) -> Error {
    match e {
        SendError::Full { waited } => Error::QueueFull { queue: config.queue.clone(), waited },
        e => e.into(),
    }
}

/// Why an Open went unanswered in a way that calls for another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The server went away before it took the session (a server in its
    /// default mode that was just finishing).
    ServerGone,
    /// A new server replaced the queue the Open went into (it took over from
    /// a dead one just then).
    QueueReplaced,
    /// The server took the session only to turn it away as busy.
    Busy,
}

/// Waits until the server has mapped the region (it writes its pid into the
/// header), polling with a short growing pause.
fn wait_attached(
    region: &Region,
    watch: &ServerWatch,
    cancel: &dyn Fn() -> bool,
    attach_timeout: Duration,
    queue_still_ours: impl Fn() -> bool,
) -> Result<std::result::Result<(), Retry>> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(20);
    while region.server_pid() == 0 {
        if cancel() {
            return Err(Error::Cancelled);
        }
        if !watch.is_alive() {
            return Ok(Err(Retry::ServerGone));
        }
        if !queue_still_ours() {
            return Ok(Err(Retry::QueueReplaced));
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
    if region.ended() == Some(EndReason::Busy) {
        return Ok(Err(Retry::Busy));
    }
    Ok(Ok(()))
}

/// The longest pause between two tries of a client that a busy server
/// turned away: each try costs the server an attach and a log line.
const BUSY_RETRY_MAX: Duration = Duration::from_millis(500);

/// Sleeps `pause` in short slices, or returns [`Error::Cancelled`] as soon
/// as `cancel` says so.
fn pause_unless_cancelled(pause: Duration, cancel: &dyn Fn() -> bool) -> Result<()> {
    let until = Instant::now() + pause;
    loop {
        if cancel() {
            return Err(Error::Cancelled);
        }
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

/// A client turned away as busy: its pause before the next try, and
/// whether it told its caller it waits.
struct BusyRetry {
    pause: Duration,
    told: bool,
}

impl BusyRetry {
    /// Tells the caller (the first time) that it waits for a free session,
    /// then pauses, at most `left`.
    fn pause(&mut self, config: &ClientConfig, left: Duration, cancelled: &dyn Fn() -> bool) -> Result<()> {
        if !std::mem::replace(&mut self.told, true) {
            if let Some(tell) = &config.on_wait {
                tell(&config.queue, left, Waiting::FreeSession);
            }
        }
        pause_unless_cancelled(self.pause.min(left), cancelled)?;
        self.pause = (self.pause * 2).min(BUSY_RETRY_MAX);
        Ok(())
    }
}

impl Session<Consumer> {
    /// Finds a live server (waiting up to `config.wait`), creates the
    /// session objects and opens a session of `kind`, its ring running to
    /// the client (an upload session's is turned round by
    /// [`Session::open_upload`] once the server took it).
    ///
    /// # Errors
    ///
    /// [`Error::NoServer`], [`Error::QueueFull`], [`Error::Cancelled`],
    /// [`Error::Timeout`] when the server does not take the session,
    /// [`Error::InvalidName`] for a bad queue name, [`Error::BadObject`] for
    /// another user's queue, [`Error::OtherUsersServer`] for a server of
    /// another user that this one may not reach, [`Error::Os`] for the objects.
    pub(crate) fn open_reading(config: &ClientConfig, kind: SessionKind) -> Result<Session<Consumer>> {
        let started = Instant::now();
        let cancel = config.cancel.clone().unwrap_or_default();
        let mut told = false;
        let mut busy = BusyRetry { pause: Duration::from_millis(20), told: false };
        // This client's own: its ring end spins with no other client's.
        let pacing = Pacing::new(config.spin_budget);
        loop {
            let found = find_server(config, started, &mut told)?;
            let pid = std::process::id();
            let geometry = Geometry::for_slots(config.slots);
            let (names, region, sems) = create_session_objects(&config.queue, pid, geometry)?;
            let alive = liveness(&found.watch);
            let (client_pid, region_size) = (pid, geometry.region_size() as u32);
            let SessionNames { region: name, items, spaces } = names.clone();
            let open = Command::Open { client_pid, region_size, region: name, items, spaces, kind };
            // The rest of the wait: a stopped server's full queue is no server.
            let left = config.wait.saturating_sub(started.elapsed());
            queue::send(&found.queue, &open, &cancel, &alive, left).map_err(|e| no_room(e, config))?;
            let cancelled = || cancel.load(Ordering::Relaxed);
            let still_named = || queue::still_named(&config.queue, &found.queue);
            match wait_attached(&region, &found.watch, &cancelled, config.attach_timeout, still_named)? {
                Ok(()) => {}
                Err(Retry::Busy) => {
                    let left = config.busy_wait.saturating_sub(started.elapsed());
                    if !left.is_zero() {
                        // Our objects are dropped here; a new session is asked
                        // for after a pause, within the wait.
                        drop((region, sems));
                        busy.pause(config, left, &cancelled)?;
                        continue;
                    }
                    // The wait ran out: the session goes on, and its first
                    // frame, "busy", ends it as it always did.
                }
                Err(retry) => {
                    // Our objects are dropped here, and we look for a server again.
                    log::debug!("open on {} not taken ({retry:?}); looking for a server again", config.queue);
                    continue;
                }
            }
            let alive = session_liveness(&found.watch, &region);
            let end = Consumer::new(region, sems, Arc::clone(&cancel), alive, &pacing)
                .with_stall_timeout(config.stall_timeout);
            let server_alive = liveness(&found.watch);
            let to_server = ToServer { queue: found.queue, names, server_alive, pid, closed: false };
            return Ok(Session::new(config, Transport::Local(Local { to_server, end }), cancel));
        }
    }

    /// Reads the next frame, which must answer `seq`, copying its payload
    /// straight out of the ring into the front of `out`. A data frame's
    /// payload is left in `out[..len]`; control frames are decoded. A busy
    /// answer ends the session. `out` should hold [`Session::max_payload`]
    /// bytes: a longer frame is a decoding error.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::Decode`], [`Error::Protocol`] for a frame of
    /// another request or one past its kind's bound in an answer
    /// ([`FrameKind::most_per_answer`]), and the ring's errors: [`Error::Stalled`],
    /// [`Error::Cancelled`], [`Error::PeerGone`], [`Error::SessionEnded`].
    pub(crate) fn next_frame(&mut self, seq: u32, out: &mut [u8]) -> Result<Frame> {
        let header = self.next_raw_frame(out)?;
        let payload = &out[..header.len as usize];
        if header.kind == FrameKind::Busy {
            if let Reply::Busy { max_sessions } = Reply::decode(header.kind, payload)? {
                return Err(self.busy(max_sessions));
            }
        }
        if header.seq != seq {
            return Err(Error::Protocol(format!("frame for request {}, expected {seq}", header.seq)));
        }
        self.answer.count(seq, header.kind).map_err(Error::Protocol)?;
        Ok(Frame::decode(header.kind, payload)?)
    }

    /// Reads the next frame as it is: its header, its payload in
    /// `out[..len]`.
    ///
    /// # Errors
    ///
    /// As [`Session::next_frame`], but for a frame of another request or a
    /// busy answer, which are the caller's to judge.
    pub(crate) fn next_raw_frame(&mut self, out: &mut [u8]) -> Result<FrameHeader> {
        match &mut self.transport {
            Transport::Local(local) => local.end.recv_into(out),
            Transport::Relay(link) => link.recv_into(out),
        }
    }

    /// Why the server answered "busy": it is stopping (it marked the region
    /// so before the answer, [`Error::Stopping`]) or full.
    fn busy(&self, max_sessions: u32) -> Error {
        match self.region().and_then(Region::ended) {
            Some(EndReason::ServerStopping) => Error::Stopping { queue: self.queue_name.clone() },
            _ => Error::Busy { max_sessions },
        }
    }

    /// This session with its ring turned round, from the server to it.
    fn turn_round(self, stall_timeout: Option<Duration>) -> Session<Producer> {
        let Session { queue_name, transport, cancel, next_seq, answer, send_limit, pid } = self;
        let transport = match transport {
            Transport::Local(Local { to_server, end }) => {
                Transport::Local(Local { to_server, end: end.turn_round().with_stall_timeout(stall_timeout) })
            }
            Transport::Relay(link) => Transport::Relay(link),
        };
        Session { queue_name, transport, cancel, next_seq, answer, send_limit, pid }
    }
}

impl Session<Producer> {
    /// As [`Session::open_reading`], for a session that sends files to the
    /// server: its ring turned round once the server took it.
    ///
    /// # Errors
    ///
    /// As [`Session::open_reading`]; [`Error::Busy`] or [`Error::Stopping`]
    /// when the server turned it away.
    pub(crate) fn open_upload(config: &ClientConfig) -> Result<Session<Producer>> {
        let mut session = Session::open_reading(config, SessionKind::Upload)?;
        let ended = session.region().and_then(Region::ended);
        if matches!(ended, Some(EndReason::Busy | EndReason::ServerStopping)) {
            // Not taken: the "busy" frame, and its error.
            let mut out = vec![0u8; session.max_payload()];
            session.next_frame(0, &mut out)?;
            return Err(Error::Protocol("a refused upload session answered no busy frame".into()));
        }
        Ok(session.turn_round(config.stall_timeout))
    }

    /// The server's answer word to upload `seq`, once it answered
    /// (unchecked: from the region, or from the relay's stream). Does not
    /// wait.
    ///
    /// # Errors
    ///
    /// Through a relay: [`Error::Protocol`] for a record that is no answer
    /// to `seq`, [`Error::PeerGone`] when the relay ended.
    pub(crate) fn answer_to(&mut self, seq: u32) -> Result<Option<u32>> {
        match &mut self.transport {
            Transport::Local(local) => Ok(local.end.region().answer_to(seq)),
            Transport::Relay(link) => link.answer_to(seq),
        }
    }
}

/// An upload's frames: into the session's ring or its relay, stopped by
/// the server's answer when it comes before the end (a refusal, a failure
/// for good, a copy up to date).
impl FrameSink for Session<Producer> {
    fn max_payload(&self) -> usize {
        Session::max_payload(self)
    }

    fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        match &mut self.transport {
            Transport::Local(local) => local.end.send(seq, reply),
            Transport::Relay(link) => link.send_reply(seq, reply),
        }
    }

    fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        match &mut self.transport {
            Transport::Local(local) => local.end.send_data(seq, bytes),
            Transport::Relay(link) => link.send_data(seq, bytes),
        }
    }

    fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()> {
        match &mut self.transport {
            Transport::Local(local) => local.end.send_data_end(seq, bytes, count, checksum),
            Transport::Relay(link) => link.send_data_end(seq, bytes, count, checksum),
        }
    }

    fn yield_turn(&mut self) {}

    fn stop_asked(&mut self, seq: u32) -> Result<bool> {
        Ok(self.answer_to(seq)?.is_some())
    }
}

impl<E: RingEnd> Session<E> {
    fn new(config: &ClientConfig, transport: Transport<E>, cancel: Arc<AtomicBool>) -> Session<E> {
        Session {
            queue_name: config.queue.clone(),
            transport,
            cancel,
            next_seq: 1,
            answer: AnswerCount::default(),
            send_limit: config.stall_timeout.unwrap_or(Duration::MAX),
            pid: std::process::id(),
        }
    }

    /// Opens a session of `kind` with the server of `config.queue` on the
    /// host `remote` names: runs its `shm_client --relay[=KIND]` through the
    /// remote shell, and speaks the session through the relay's stdin and
    /// stdout. The relay waits up to `config.wait` for the server there;
    /// whether it found one shows at the first request (a relay that found
    /// none ends the session with [`Error::PeerGone`], naming the host and
    /// the queue).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad queue name, [`Error::InvalidConfig`]
    /// for an empty remote shell, [`Error::Os`] when it cannot be run.
    pub(crate) fn open_remote(
        config: &ClientConfig,
        remote: &Remote,
        kind: SessionKind,
    ) -> Result<Session<E>> {
        validate_queue_name(&config.queue)?;
        let cancel = config.cancel.clone().unwrap_or_default();
        let link = Link::start(remote, config, kind, Arc::clone(&cancel))?;
        Ok(Session::new(config, Transport::Relay(link), cancel))
    }

    /// The largest payload one frame carries.
    pub(crate) fn max_payload(&self) -> usize {
        match &self.transport {
            Transport::Local(local) => local.end.max_payload(),
            Transport::Relay(_) => RELAY_MAX_PAYLOAD,
        }
    }

    /// The session's region; a session through a relay has none here.
    fn region(&self) -> Option<&Region> {
        match &self.transport {
            Transport::Local(local) => Some(local.end.region()),
            Transport::Relay(_) => None,
        }
    }

    /// Whether the server that took the session still lives.
    pub(crate) fn server_alive(&self) -> Result<()> {
        match &self.transport {
            Transport::Local(local) => (local.to_server.server_alive)(),
            // The relay watches its server; its stream says when it is gone.
            Transport::Relay(_) => Ok(()),
        }
    }

    /// This process's id, as commands carry it.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The name of the session's region, as commands carry it (a relay puts
    /// in its own).
    pub(crate) fn region_name(&self) -> String {
        match &self.transport {
            Transport::Local(local) => local.to_server.names.region.clone(),
            Transport::Relay(_) => RELAYED_REGION.to_owned(),
        }
    }

    /// Whether the caller cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// How long a wait for the server may last when nothing moves: the
    /// stall timeout.
    pub(crate) fn stall_limit(&self) -> Duration {
        self.send_limit
    }

    /// Sends `cmd` to the server (or the relay).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the queue stays full for the stall timeout,
    /// [`Error::Cancelled`], [`Error::PeerGone`], [`Error::Encode`],
    /// [`Error::Os`] from `mq_send`.
    pub(crate) fn send_command(&mut self, cmd: &Command) -> Result<()> {
        match &mut self.transport {
            Transport::Local(local) => {
                let to = &local.to_server;
                Ok(queue::send(&to.queue, cmd, &self.cancel, &to.server_alive, self.send_limit)?)
            }
            Transport::Relay(link) => link.send(cmd),
        }
    }

    /// The relay's forwarding: sends a Get, List, Cancel, Status or Put that
    /// came over a relay's stream as this session's own (its pid and
    /// region), keeping its sequence number, so its answer goes to the
    /// relay's client. Which of them a relay of a kind takes is the relay's
    /// to check.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for any other command; as [`Session::send_command`].
    pub(crate) fn forward(&mut self, cmd: Command) -> Result<()> {
        let (client_pid, region) = (self.pid, self.region_name());
        let own = match cmd {
            Command::Get { seq, path, offset, condition, .. } => {
                Command::Get { client_pid, seq, region, path, offset, condition }
            }
            Command::List { seq, prefix, .. } => Command::List { client_pid, seq, region, prefix },
            Command::Cancel { seq, .. } => Command::Cancel { client_pid, seq, region },
            Command::Status { seq, .. } => Command::Status { client_pid, seq, region },
            Command::Put { seq, path, flags, .. } => Command::Put { client_pid, seq, region, path, flags },
            other => return Err(Error::Protocol(format!("a relay forwards no {other}"))),
        };
        self.send_command(&own)
    }

    /// The sequence number of the next request.
    pub(crate) fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        seq
    }

    /// Sends the shutdown message. Dropping the session instead unlinks its
    /// objects and says goodbye without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] or [`Error::Timeout`] from the queue,
    /// [`Error::PeerGone`], [`Error::Cancelled`].
    pub(crate) fn close(mut self) -> Result<()> {
        match &mut self.transport {
            Transport::Local(local) => local.to_server.closed = true,
            Transport::Relay(link) => {
                // The end of its input closes the relay's session.
                link.stop();
                return Ok(());
            }
        }
        self.send_command(&Command::Close { client_pid: self.pid, region: self.region_name() })
    }

    /// The session's fields for its owner's `Debug`.
    pub(crate) fn describe(&self, f: &mut std::fmt::DebugStruct<'_, '_>) {
        f.field("queue", &self.queue_name);
        match &self.transport {
            Transport::Local(local) => f.field("region", &local.to_server.names.region),
            Transport::Relay(link) => f.field("relay", link),
        };
    }
}
