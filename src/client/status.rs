//! What a server says of itself: a [`StatusSession`]'s (or a
//! [`Client`]'s) `status`, [`status_all`] (every server of this user) and
//! [`stop_server`].

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::client::config::ClientConfig;
use crate::client::fetch::Client;
use crate::client::link::Remote;
use crate::client::session::{find_server, liveness, no_room, Session};
use crate::error::{Error, Result};
use crate::os::liveness::{servers_of_this_user, FoundServer, ServerState};
use crate::os::queue;
use crate::protocol::Frame;
use crate::protocol::{Command, Reply, ServerStatus, SessionKind, SessionStatus, StopKind};
use crate::shm_region::ring::Consumer;

/// What a server says of itself and of its other live sessions
/// ([`StatusSession::status`], [`Client::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The server: pid, root, mode, limits, uptime and totals.
    pub server: ServerStatus,
    /// The other sessions, by client pid.
    pub sessions: Vec<SessionStatus>,
}

/// How long a server asked to stop at once may take before
/// [`stop_server`] calls it a timeout.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the server of `config.queue` to stop, and waits until it has:
/// [`StopKind::Now`] cancels its open sessions (it stops within a second);
/// [`StopKind::Drain`] lets them finish what they asked for, which may take
/// as long as their transfers, and is waited for without a limit (the
/// config's cancel flag ends the wait, not the drain).
///
/// # Errors
///
/// [`Error::NoServer`] when no server shows up within `config.wait`;
/// [`Error::QueueFull`] when its queue takes no message; [`Error::Timeout`]
/// when a server asked to stop now has not within 10 seconds;
/// [`Error::Cancelled`].
pub fn stop_server(config: &ClientConfig, kind: StopKind) -> Result<()> {
    let found = find_server(config, Instant::now(), &mut false)?;
    let alive = liveness(&found.watch);
    let stop = Command::Stop { client_pid: std::process::id(), kind };
    let never = AtomicBool::new(false);
    let cancel = config.cancel.as_deref().unwrap_or(&never);
    queue::send(&found.queue, &stop, cancel, &alive, config.wait).map_err(|e| no_room(e, config))?;
    let start = Instant::now();
    while found.watch.is_alive() {
        if config.cancelled() {
            return Err(Error::Cancelled);
        }
        if kind == StopKind::Now && start.elapsed() > STOP_TIMEOUT {
            return Err(Error::Timeout {
                what: format!("the server of {} did not stop", config.queue),
                after: start.elapsed(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// One server of this user found by [`status_all`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerReport {
    /// A live server holds the lock of `queue`: its status, or why it could
    /// not be had (busy, stopping, gone meanwhile).
    Live { queue: String, status: Result<Status> },
    /// Nobody holds the lock of `queue`: a dead server left it, and maybe
    /// its queue and sessions' objects (`shm_server --cleanup --all`).
    Dead { queue: String },
}

/// The status of every server of this user on this machine, found through
/// their lock objects in `/dev/shm`, sorted by queue: one status session
/// with each live one, 16 at a time (tried once, whatever `config.wait`; a
/// server that does not answer within 2 s, a stopped one, gets its error in
/// its report; `config.queue` is not used), and the dead ones' locks.
/// Another user's servers are never looked at.
///
/// # Errors
///
/// [`Error::Os`] when `/dev/shm` cannot be read; each live server's own
/// errors are in its [`ServerReport::Live`].
pub fn status_all(config: &ClientConfig) -> Result<Vec<ServerReport>> {
    let servers = servers_of_this_user()?;
    // All at once, each bounded: a stopped or stuck server costs at most
    // STATUS_ALL_LIMIT and holds up none of the others.
    let mut reports = Vec::with_capacity(servers.len());
    // A few at once, each bounded: a stopped or stuck server costs at most
    // STATUS_ALL_LIMIT and holds up no more than its batch.
    for batch in servers.chunks(STATUS_ALL_BATCH) {
        std::thread::scope(|scope| {
            let asked: Vec<_> = batch.iter().map(|server| scope.spawn(|| probe(config, server))).collect();
            reports.extend(asked.into_iter().map(|t| t.join().expect("a status probe does not panic")));
        });
    }
    Ok(reports)
}

/// One server's report for [`status_all`]: its status, asked once, within
/// [`STATUS_ALL_LIMIT`]; or that it is dead.
fn probe(config: &ClientConfig, server: &FoundServer) -> ServerReport {
    let queue = server.queue.clone();
    if server.state == ServerState::Dead {
        return ServerReport::Dead { queue };
    }
    let mut one = config.clone();
    one.queue = queue.clone();
    one.wait = Duration::ZERO;
    one.attach_timeout = one.attach_timeout.min(STATUS_ALL_LIMIT);
    one.stall_timeout = Some(one.stall_timeout.map_or(STATUS_ALL_LIMIT, |s| s.min(STATUS_ALL_LIMIT)));
    let status = StatusSession::connect(&one)
        .and_then(|mut session| session.status().and_then(|s| session.close().map(|()| s)));
    ServerReport::Live { queue, status }
}

/// Servers [`status_all`] asks at once.
const STATUS_ALL_BATCH: usize = 16;

/// How long [`status_all`] waits for one server to take its status session
/// and for each of its frames: a live server answers within moments.
const STATUS_ALL_LIMIT: Duration = Duration::from_secs(2);

/// A session that only asks the server what it is doing
/// ([`StatusSession::status`]): the server takes it even when it serves its
/// maximum of sessions, and it is not listed in the status. It has no
/// other method; the server refuses any other request on it.
///
/// # Examples
///
/// ```
/// use shmxfer::{ClientConfig, Server, StatusSession};
///
/// # fn main() -> Result<(), shmxfer::Error> {
/// let root = tempfile::tempdir().unwrap();
/// let queue = format!("/shmxfer_doc_status_session_{}", std::process::id());
/// let server = Server::builder().queue(&queue).root(root.path()).persistent().bind()?;
/// let serving = std::thread::spawn(move || server.run(Default::default()));
/// let mut session = StatusSession::connect(&ClientConfig::new(&queue))?;
/// assert_eq!(session.status()?.server.pid, std::process::id());
/// session.close()?;
/// shmxfer::stop_server(&ClientConfig::new(&queue), shmxfer::StopKind::Now)?;
/// serving.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
pub struct StatusSession {
    session: Session<Consumer>,
}

impl std::fmt::Debug for StatusSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("StatusSession");
        self.session.describe(&mut f);
        f.finish()
    }
}

impl StatusSession {
    /// As [`Client::connect`], for a status session.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect(config: &ClientConfig) -> Result<StatusSession> {
        Ok(StatusSession { session: Session::open_reading(config, SessionKind::Status)? })
    }

    /// As [`Client::connect_remote`], for a status session with the server
    /// on the host `remote` names (its relay runs as
    /// `shm_client --relay=status`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use shmxfer::remote::Remote;
    /// use shmxfer::{ClientConfig, StatusSession};
    ///
    /// let remote = Remote::new("build@farm7");
    /// let mut session = StatusSession::connect_remote(&ClientConfig::from_env(), &remote)?;
    /// println!("the server there has {} other sessions", session.status()?.sessions.len());
    /// session.close()?;
    /// # Ok::<(), shmxfer::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::connect_remote`].
    pub fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<StatusSession> {
        Ok(StatusSession { session: Session::open_remote(config, remote, SessionKind::Status)? })
    }

    /// Asks the server for its status: its pid, root, mode, uptime, sessions
    /// and totals, and what each other session is doing.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] or [`Error::Decode`] for an answer that breaks the
    /// protocol, [`Error::Busy`]; the session's [`Error::Stalled`],
    /// [`Error::Cancelled`], [`Error::PeerGone`], [`Error::SessionEnded`];
    /// [`Error::Timeout`] or [`Error::Os`] from the queue.
    pub fn status(&mut self) -> Result<Status> {
        self.session.status()
    }

    /// Ends the session, as [`Client::close`].
    ///
    /// # Errors
    ///
    /// As [`Client::close`].
    pub fn close(self) -> Result<()> {
        self.session.close()
    }
}

impl Session<Consumer> {
    /// Asks for the server's status and reads its answer, bounded as every
    /// answer is.
    ///
    /// # Errors
    ///
    /// As [`StatusSession::status`].
    pub(crate) fn status(&mut self) -> Result<Status> {
        let seq = self.take_seq();
        self.send_command(&Command::Status { client_pid: self.pid(), seq, region: self.region_name() })?;
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
                Frame::Control(Reply::SessionStatus(s)) => sessions.push(s),
                Frame::Control(Reply::StatusEnd { count }) if count == sessions.len() as u64 => {
                    return Ok(Status { server, sessions })
                }
                other => return Err(Error::Protocol(format!("{other:?} in a status"))),
            }
        }
    }
}

impl Client {
    /// [`StatusSession::connect`]: a session that only asks for the
    /// server's status.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    pub fn connect_for_status(config: &ClientConfig) -> Result<StatusSession> {
        StatusSession::connect(config)
    }

    /// Asks the server for its status: its pid, root, mode, uptime, sessions
    /// and totals, and what each other session is doing (a
    /// [`StatusSession`] asks without taking one of the server's sessions).
    ///
    /// # Errors
    ///
    /// As [`StatusSession::status`].
    pub fn status(&mut self) -> Result<Status> {
        self.session.status()
    }
}
