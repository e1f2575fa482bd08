//! The requesting role's transport: find a live server, open a session
//! (create the region and semaphores, send Open, wait until the server takes
//! it), send requests, read the answer frames, say goodbye. What to do with
//! the frames is [`crate::client::delivery`]'s business.

pub(crate) mod config;
pub(crate) mod delivery;
pub(crate) mod link;
mod listing;
pub(crate) mod pattern;
pub(crate) mod plan;
pub(crate) mod relay;
mod single;
mod status;
pub(crate) mod upload;

pub(crate) use listing::under_prefix;
pub use listing::{Entry, Listing, Skipped};
pub use single::{fetch, FileReader};
pub use status::{status_all, stop_server, ServerReport, Status};

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use posixmq::PosixMq;

use crate::client::link::{Link, Remote, RELAY_MAX_PAYLOAD};
use crate::error::{Error, Result, SessionEnd};
use crate::os::liveness::{servers_of_this_user, FoundServer, ServerState, ServerWatch};
use crate::os::names::{create_under_fresh_name, validate_queue_name, SessionNames, SessionObject};
use crate::os::queue::{self, SendError};
use crate::os::semaphore::Semaphore;
use crate::protocol::{
    normalize_path, AnswerCount, Command, DataEnd, FrameHeader, FrameKind, GetCondition, PutFlags, Reply,
    ServerStatus, SessionKind, SessionStatus, SkipCode, StopKind,
};
use crate::shm_region::pacing::Pacing;
use crate::shm_region::ring::{Consumer, Liveness, Producer, RingSems};
use crate::shm_region::{EndReason, Geometry, Region};
use crate::transfer::outcome::FailReason;

pub use crate::client::config::{
    ClientConfig, ClientConfigBuilder, WaitNotice, Waiting, DEFAULT_STALL_TIMEOUT, DEFAULT_WAIT,
};

/// A frame as the client reads it: data (the payload is in the caller's
/// buffer) or a decoded control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A data frame of this many bytes.
    Data(u32),
    /// A file's last data frame (its bytes at the front of the caller's
    /// buffer) and its end.
    DataEnd(DataEnd),
    /// Any other frame.
    Control(Reply),
}

/// The region a command sent to a relay names: the relay puts in its own.
const RELAYED_REGION: &str = "/relayed";

/// A live session with a server: [`Client::connect`] opens it, the
/// `fetch` methods, [`Client::list`] and [`Client::status`] use it,
/// [`Client::close`] (or dropping it) ends it and removes its objects.
pub struct Client {
    queue_name: String,
    transport: Transport,
    cancel: Arc<AtomicBool>,
    next_seq: u32,
    /// The frames of the answer being read, against their bounds.
    answer: AnswerCount,
    closed: bool,
    /// How long a request may wait for room in a full queue: the stall
    /// timeout, for a full queue is a session where nothing moves.
    send_limit: Duration,
    /// This process's id, named in every message.
    pid: u32,
}

/// How the client reaches the server: through its own region and the
/// server's queue, or through a relay on the server's host
/// ([`Client::connect_remote`]).
enum Transport {
    Local(Local),
    Relay(Link),
}

/// A session of this machine: the server's queue, the client's end of the
/// ring and the names of its objects.
struct Local {
    queue: PosixMq,
    end: ClientEnd,
    names: SessionNames,
    /// Whether the server that took the session lives; checked while a send
    /// waits.
    server_alive: Liveness,
}

/// Where an upload session's frames go ([`Client::producer`]): its ring's
/// producer, or its relay's stream. A local upload fills the slots as it
/// always did; only the match is added.
pub(crate) enum Upstream<'a> {
    Ring(&'a mut Producer),
    Relay(&'a mut Link),
}

impl Upstream<'_> {
    /// Sends a data frame of at most [`Client::max_payload`] bytes.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_data`]; through a relay, its stream's errors.
    pub(crate) fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        match self {
            Upstream::Ring(p) => p.send_data(seq, bytes),
            Upstream::Relay(link) => link.send_data(seq, bytes),
        }
    }

    /// Sends a control frame.
    ///
    /// # Errors
    ///
    /// As [`Upstream::send_data`].
    pub(crate) fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        match self {
            Upstream::Ring(p) => p.send(seq, reply),
            Upstream::Relay(link) => link.send_reply(seq, reply),
        }
    }

    /// Sends a file's last bytes and its end in one frame.
    ///
    /// # Errors
    ///
    /// As [`Upstream::send_data`].
    pub(crate) fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()> {
        match self {
            Upstream::Ring(p) => p.send_data_end(seq, bytes, count, checksum),
            Upstream::Relay(link) => link.send_data_end(seq, bytes, count, checksum),
        }
    }
}

/// The client's end of its ring: it empties the slots, or in an upload
/// session (turned round once the server took it) fills them.
#[derive(Debug)]
enum ClientEnd {
    Reads(Consumer),
    Writes(Producer),
}

impl ClientEnd {
    fn region(&self) -> &Region {
        match self {
            ClientEnd::Reads(c) => c.region(),
            ClientEnd::Writes(p) => p.region(),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Client");
        f.field("queue", &self.queue_name);
        match &self.transport {
            Transport::Local(local) => f.field("region", &local.names.region),
            Transport::Relay(link) => f.field("relay", link),
        };
        f.finish()
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
struct Found {
    queue: PosixMq,
    watch: Arc<ServerWatch>,
}

/// Looks for a live server on `config.queue`, retrying with a growing
/// back-off until `config.wait` (counted from `started`) runs out. The
/// config's wait notice is told the first time it has to wait, and only
/// then (`told` remembers it across calls).
fn find_server(config: &ClientConfig, started: Instant, told: &mut bool) -> Result<Found> {
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
fn no_room(e: SendError, config: &ClientConfig) -> Error {
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

impl Client {
    /// Finds a live server (waiting up to `config.wait`), creates the session
    /// objects and opens a transfer session.
    ///
    /// # Errors
    ///
    /// [`Error::NoServer`], [`Error::QueueFull`], [`Error::Cancelled`],
    /// [`Error::Timeout`] when the server does not take the session,
    /// [`Error::InvalidName`] for a bad queue name, [`Error::BadObject`] for
    /// another user's queue, [`Error::OtherUsersServer`] for a server of
    /// another user that this one may not reach, [`Error::Os`] for the objects.
    pub fn connect(config: &ClientConfig) -> Result<Client> {
        Client::open(config, SessionKind::Transfer)
    }

    /// As [`Client::connect`], for a session that only asks for
    /// [`Client::status`]: the server takes it even when it serves its
    /// maximum of sessions, and it is not listed in the status. Other
    /// requests on it are refused by the server.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect_for_status(config: &ClientConfig) -> Result<Client> {
        Client::open(config, SessionKind::Status)
    }

    /// Opens a session of `kind`: [`Client::connect`] and
    /// [`Client::connect_for_status`] are this with a fixed kind.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn open(config: &ClientConfig, kind: SessionKind) -> Result<Client> {
        let started = Instant::now();
        let cancel = config.cancel.clone().unwrap_or_default();
        let mut told = false;
        let mut told_busy = false;
        let mut busy_pause = Duration::from_millis(20);
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
                        if !std::mem::replace(&mut told_busy, true) {
                            if let Some(tell) = &config.on_wait {
                                tell(&config.queue, left, Waiting::FreeSession);
                            }
                        }
                        drop((region, sems));
                        pause_unless_cancelled(busy_pause.min(left), &cancelled)?;
                        busy_pause = (busy_pause * 2).min(BUSY_RETRY_MAX);
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
            let consumer = Consumer::new(region, sems, Arc::clone(&cancel), alive, &pacing)
                .with_stall_timeout(config.stall_timeout);
            // An upload session's ring runs to the server once it is taken;
            // one answered "busy" keeps reading, for the one frame that says so.
            let taken =
                !matches!(consumer.region().ended(), Some(EndReason::Busy | EndReason::ServerStopping));
            let end = match kind {
                SessionKind::Upload if taken => {
                    ClientEnd::Writes(consumer.turn_round().with_stall_timeout(config.stall_timeout))
                }
                _ => ClientEnd::Reads(consumer),
            };
            let local = Local { queue: found.queue, end, names, server_alive: liveness(&found.watch) };
            let mut client = Client {
                queue_name: config.queue.clone(),
                transport: Transport::Local(local),
                cancel,
                next_seq: 1,
                answer: AnswerCount::default(),
                closed: false,
                send_limit: config.stall_timeout.unwrap_or(Duration::MAX),
                pid,
            };
            if kind == SessionKind::Upload && !taken {
                // The "busy" frame: its error.
                let mut out = vec![0u8; client.max_payload()];
                client.next_frame(0, &mut out)?;
                return Err(Error::Protocol("a refused upload session answered no busy frame".into()));
            }
            return Ok(client);
        }
    }

    /// Opens a transfer session with the server of `config.queue` on the
    /// host `remote` names: runs its `shm_client --relay` through the
    /// remote shell, and speaks the session through the relay's stdin and
    /// stdout. The relay waits up to `config.wait` for the server there;
    /// whether it found one shows at the first request (a relay that found
    /// none ends the session with [`Error::PeerGone`], naming the host and
    /// the queue). Fetches and listings go through it;
    /// [`Client::open_remote`] opens the other kinds.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use shmxfer::remote::Remote;
    /// use shmxfer::{Client, ClientConfig, FetchOptions};
    ///
    /// let remote = Remote::new("build@farm7").with_rsh(vec!["ssh".into(), "-p".into(), "2222".into()]);
    /// let mut client = Client::connect_remote(&ClientConfig::from_env(), &remote)?;
    /// let report = client.fetch_files(&["results.tar"], &FetchOptions::new("out"))?;
    /// assert!(report.all_delivered());
    /// client.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad queue name, [`Error::InvalidConfig`]
    /// for an empty remote shell, [`Error::Os`] when it cannot be run.
    pub fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<Client> {
        Client::open_remote(config, remote, SessionKind::Transfer)
    }

    /// As [`Client::connect_remote`], for a session of `kind`: the relay
    /// runs as `shm_client --relay=status` or `--relay=upload` and opens a
    /// session of that kind with the server on its host, so that
    /// [`Client::status`] (a [`SessionKind::Status`] session) and
    /// [`Client::put_file`] (a [`SessionKind::Upload`] one) work as they do
    /// here.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use shmxfer::remote::Remote;
    /// use shmxfer::upload::{PutIfExists, UploadAnswer};
    /// use shmxfer::{Client, ClientConfig, SessionKind};
    ///
    /// let remote = Remote::new("build@farm7");
    /// let mut client = Client::open_remote(&ClientConfig::from_env(), &remote, SessionKind::Upload)?;
    /// let answer = client.put_file("report.txt", "inbox/report.txt", PutIfExists::Skip)?;
    /// assert!(matches!(answer, UploadAnswer::Stored | UploadAnswer::Skipped));
    /// client.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::connect_remote`].
    pub fn open_remote(config: &ClientConfig, remote: &Remote, kind: SessionKind) -> Result<Client> {
        validate_queue_name(&config.queue)?;
        let cancel = config.cancel.clone().unwrap_or_default();
        let link = Link::start(remote, config, kind, Arc::clone(&cancel))?;
        Ok(Client {
            queue_name: config.queue.clone(),
            transport: Transport::Relay(link),
            cancel,
            next_seq: 1,
            answer: AnswerCount::default(),
            closed: false,
            send_limit: config.stall_timeout.unwrap_or(Duration::MAX),
            pid: std::process::id(),
        })
    }

    /// The largest payload one frame carries.
    pub(crate) fn max_payload(&self) -> usize {
        match &self.transport {
            Transport::Local(Local { end: ClientEnd::Reads(c), .. }) => c.max_payload(),
            Transport::Local(Local { end: ClientEnd::Writes(p), .. }) => p.max_payload(),
            Transport::Relay(_) => RELAY_MAX_PAYLOAD,
        }
    }

    /// Where an upload session's frames go: its ring, or its relay.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] on a session not opened for uploads.
    pub(crate) fn producer(&mut self) -> Result<Upstream<'_>> {
        match &mut self.transport {
            Transport::Local(Local { end: ClientEnd::Writes(p), .. }) => Ok(Upstream::Ring(p)),
            Transport::Relay(link) if link.kind() == SessionKind::Upload => Ok(Upstream::Relay(link)),
            _ => Err(Error::Protocol("this session was not opened for uploads".into())),
        }
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

    /// The session's region.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for a session through a relay, which has none here.
    pub(crate) fn region(&self) -> Result<&Region> {
        match &self.transport {
            Transport::Local(local) => Ok(local.end.region()),
            Transport::Relay(_) => {
                Err(Error::Protocol("a session through a relay has no region here".into()))
            }
        }
    }

    /// Whether the server that took the session still lives.
    pub(crate) fn server_alive(&self) -> Result<()> {
        match &self.transport {
            Transport::Local(local) => (local.server_alive)(),
            // The relay watches its server; its stream says when it is gone.
            Transport::Relay(_) => Ok(()),
        }
    }

    /// The name of the session's region, as commands carry it (a relay puts
    /// in its own).
    fn region_name(&self) -> String {
        match &self.transport {
            Transport::Local(local) => local.names.region.clone(),
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

    /// Announces the upload of `path` as `flags` ask; its frames carry the
    /// returned sequence number.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub(crate) fn request_put(&mut self, path: &[u8], flags: PutFlags) -> Result<u32> {
        let seq = self.take_seq();
        let (client_pid, region, path) = (self.pid, self.region_name(), path.to_vec());
        self.send(&Command::Put { client_pid, seq, region, path, flags })?;
        Ok(seq)
    }

    fn send(&mut self, cmd: &Command) -> Result<()> {
        match &mut self.transport {
            Transport::Local(local) => {
                Ok(queue::send(&local.queue, cmd, &self.cancel, &local.server_alive, self.send_limit)?)
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
    /// [`Error::Protocol`] for any other command; as [`Client::request`].
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
        self.send(&own)
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
    /// [`Error::Timeout`] when the queue stays full for the stall timeout,
    /// [`Error::Cancelled`], [`Error::PeerGone`], [`Error::Encode`],
    /// [`Error::Os`] from `mq_send`.
    pub(crate) fn request(&mut self, path: &[u8]) -> Result<u32> {
        self.request_from(path, 0, GetCondition::Always)
    }

    /// [`Client::request`] for the bytes from `offset` on, on `condition`
    /// (resuming, `--update`).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub(crate) fn request_from(&mut self, path: &[u8], offset: u64, condition: GetCondition) -> Result<u32> {
        let seq = self.take_seq();
        let region = self.region_name();
        let path = path.to_vec();
        self.send(&Command::Get { client_pid: self.pid, seq, region, path, offset, condition })?;
        Ok(seq)
    }

    /// Asks the server to stop sending the file of request `seq`: it ends it
    /// with an `Error` frame of [`ReasonCode::Cancelled`](crate::protocol::ReasonCode)
    /// at its next chunk (or, when it was done already, with its `End`).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub(crate) fn cancel_request(&mut self, seq: u32) -> Result<()> {
        self.send(&Command::Cancel { client_pid: self.pid, seq, region: self.region_name() })
    }

    /// Asks for the server's listing at or below `prefix` (normalized;
    /// `.`: all of it); its frames will carry the returned sequence number.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    fn request_list(&mut self, prefix: &[u8]) -> Result<u32> {
        let seq = self.take_seq();
        let prefix = if prefix == b"." { Vec::new() } else { prefix.to_vec() };
        self.send(&Command::List { client_pid: self.pid, seq, region: self.region_name(), prefix })?;
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
        match header.kind {
            FrameKind::Data => return Ok(Frame::Data(header.len)),
            FrameKind::DataEnd => return Ok(Frame::DataEnd(DataEnd::decode(payload)?)),
            _ => {}
        }
        Ok(Frame::Control(Reply::decode(header.kind, payload)?))
    }

    /// Reads the next frame as it is: its header, its payload in
    /// `out[..len]`.
    ///
    /// # Errors
    ///
    /// As [`Client::next_frame`], but for a frame of another request or a
    /// busy answer, which are the caller's to judge.
    pub(crate) fn next_raw_frame(&mut self, out: &mut [u8]) -> Result<FrameHeader> {
        match &mut self.transport {
            Transport::Local(Local { end: ClientEnd::Reads(consumer), .. }) => consumer.recv_into(out),
            Transport::Local(_) => Err(Error::Protocol("an upload session reads no frames".into())),
            Transport::Relay(link) => link.recv_into(out),
        }
    }

    /// Why the server answered "busy": it is stopping (it marked the region
    /// so before the answer, [`Error::Stopping`]) or full.
    fn busy(&self, max_sessions: u32) -> Error {
        match self.region().ok().and_then(Region::ended) {
            Some(EndReason::ServerStopping) => Error::Stopping { queue: self.queue_name.clone() },
            _ => Error::Busy { max_sessions },
        }
    }

    /// Sends the shutdown message. Dropping the client unlinks its objects
    /// (and says goodbye without waiting).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] or [`Error::Timeout`] from the queue,
    /// [`Error::PeerGone`], [`Error::Cancelled`].
    pub fn close(mut self) -> Result<()> {
        self.closed = true;
        if let Transport::Relay(link) = &mut self.transport {
            // The end of its input closes the relay's session.
            link.stop();
            return Ok(());
        }
        self.send(&Command::Close { client_pid: self.pid, region: self.region_name() })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Best effort: tell the server the session ends, without waiting
        // (a relay is told by the end of its input, when its link drops).
        if let Transport::Local(local) = &self.transport {
            if let Ok(bytes) =
                (Command::Close { client_pid: self.pid, region: local.names.region.clone() }).encode()
            {
                let _ = local.queue.send_timeout(0, &bytes, Duration::from_millis(10));
            }
        }
    }
}
