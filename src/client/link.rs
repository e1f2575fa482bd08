//! The client's side of a relay (a session with a server on another host):
//! it runs `RSH HOST shm_client --relay[=KIND] --queue Q` ([`Link`]) and
//! speaks the session over the relay's stdin and stdout; [`crate::client::relay`]
//! is the other side. Also the stream's records, which both sides read and
//! write, and [`stop_remote_server`], which needs no relay.
//!
//! # The session's kind
//!
//! The relay learns it from its command line, before it reads a record:
//! `--relay` (or `--relay=transfer`) for fetches and listings,
//! `--relay=status`, `--relay=upload`. It must open the server's session
//! of that kind before anything comes (its wait for the server is what
//! tells "no server" at once), the kind never changes during the session,
//! and a record can then only be what that kind allows: no record says
//! what it is, its place in the stream does. The plain `--relay` of
//! earlier builds is the transfer relay it always was.
//!
//! # Records
//!
//! The stream's records, which both sides read and write: see [`records`].

use std::ffi::{OsStr, OsString};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Child, ChildStdin, Command as Process, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::config::ClientConfig;
use crate::error::{Error, RemoteFailure, Result};
use crate::os::names::validate_queue_name;
use crate::os::sys;
use crate::protocol::{
    Command, DataEnd, FrameHeader, FrameKind, Reply, SessionKind, StopKind, FRAME_HEADER_LEN,
};

/// `shm_client`'s exit status when it found no server within `--wait`
/// (the command line's contract): a relay that ends so found none.
const NO_SERVER_EXIT: i32 = 3;

/// A shell's exit status when it found no such command to run.
const NOT_FOUND_EXIT: i32 = 127;

/// ssh's exit status when it could not connect or log in (`shm_client`
/// never exits so).
const UNREACHABLE_EXIT: i32 = 255;

/// Records the client queues ahead of the relay's pipe.
const WRITE_AHEAD: usize = 128;

/// The longest pause of a client whose relay's pipe is full.
const FULL_PIPE_PAUSE: Duration = Duration::from_millis(2);

/// How long the client waits for a relay that was told to end before it
/// kills it.
const RELAY_EXIT_WAIT: Duration = Duration::from_secs(2);

/// How long a client whose relay stopped reading waits for what the relay
/// wrote last.
const LAST_WORDS_WAIT: Duration = Duration::from_millis(500);

/// How often waits on the stream look at the cancel flag.
const CANCEL_SLICE: Duration = Duration::from_millis(100);

/// How to reach a server on another host ([`Client::connect_remote`](crate::Client::connect_remote),
/// [`UploadSession::connect_remote`](crate::UploadSession::connect_remote),
/// [`StatusSession::connect_remote`](crate::StatusSession::connect_remote),
/// [`stop_remote_server`]): the host,
/// the remote-shell command that runs a program there, and the path of
/// `shm_client` on that host.
///
/// # Examples
///
/// ```no_run
/// use shmxfer::remote::Remote;
/// use shmxfer::{ClientConfig, StatusSession};
///
/// let remote = Remote::new("build@farm7")
///     .with_rsh(vec!["ssh".into(), "-i".into(), "/home/me/.ssh/farm".into()])
///     .with_remote_client("/opt/shmxfer/bin/shm_client");
/// let mut session = StatusSession::connect_remote(&ClientConfig::from_env(), &remote)?;
/// println!("the server there has {} other sessions", session.status()?.sessions.len());
/// session.close()?;
/// # Ok::<(), shmxfer::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Remote {
    /// The host, as the remote shell takes it (`[USER@]HOST`).
    pub host: String,
    /// The remote shell and its arguments (`["ssh", "-p", "2222"]`); the
    /// host and the relay's command follow them.
    pub rsh: Vec<OsString>,
    /// The `shm_client` to run on the host.
    pub remote_client: OsString,
}

impl Remote {
    /// `host` reached with `ssh`, running the `shm_client` of its `PATH`.
    pub fn new(host: impl Into<String>) -> Remote {
        Remote { host: host.into(), rsh: vec!["ssh".into()], remote_client: "shm_client".into() }
    }

    /// This remote reached with the remote shell `rsh` (its first word the
    /// program, the rest its arguments).
    #[must_use]
    pub fn with_rsh(mut self, rsh: Vec<OsString>) -> Remote {
        self.rsh = rsh;
        self
    }

    /// This remote running `path` as its `shm_client`.
    #[must_use]
    pub fn with_remote_client(mut self, path: impl Into<OsString>) -> Remote {
        self.remote_client = path.into();
        self
    }
}

/// `word` quoted for the remote host's shell, which reads the command line
/// the remote shell passes it: as it is when it holds only safe bytes.
fn shell_quoted(word: &OsStr) -> OsString {
    let safe = |b: &u8| b.is_ascii_alphanumeric() || b"/._-=:@,+%".contains(b);
    let bytes = word.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(safe) {
        return word.to_owned();
    }
    let mut out = b"'".to_vec();
    for &b in bytes {
        match b {
            b'\'' => out.extend_from_slice(b"'\\''"),
            b => out.push(b),
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// Seconds as `--wait` and `--stall-timeout` take them.
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// The relay's flag for a session of `kind` (the plain `--relay`: fetches).
fn relay_flag(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Transfer => "--relay",
        SessionKind::Status => "--relay=status",
        SessionKind::Upload => "--relay=upload",
    }
}

/// `RSH HOST WORDS…`, each word quoted for the host's shell; stderr is
/// this process's.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for an empty remote shell.
fn remote_command(remote: &Remote, words: &[OsString]) -> Result<(Process, String)> {
    let Some((program, args)) = remote.rsh.split_first() else {
        return Err(Error::InvalidConfig("an empty remote shell command".into()));
    };
    if remote.host.is_empty() || remote.host.starts_with('-') {
        // The remote shell would take it for one of its options.
        return Err(Error::InvalidConfig(format!(
            "host {:?}: give a host name ([USER@]HOST), not empty and not beginning with '-'",
            remote.host
        )));
    }
    let mut cmd = Process::new(program);
    cmd.args(args).arg(&remote.host).args(words.iter().map(|w| shell_quoted(w))).stderr(Stdio::inherit());
    Ok((cmd, program.to_string_lossy().into_owned()))
}

/// Writes the queued records to the relay's stdin, flushing whenever the
/// queue is empty, until the queue is closed (then stdin is) or a write
/// fails (returned).
fn spawn_writer(to: ChildStdin) -> (SyncSender<Vec<u8>>, JoinHandle<io::Result<()>>) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(WRITE_AHEAD);
    let writer = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(64 << 10, to);
        loop {
            let record = match rx.try_recv() {
                Ok(record) => record,
                Err(TryRecvError::Disconnected) => return out.flush(),
                Err(TryRecvError::Empty) => {
                    out.flush()?;
                    match rx.recv() {
                        Ok(record) => record,
                        Err(_) => return Ok(()),
                    }
                }
            };
            out.write_all(&record)?;
        }
    });
    (tx, writer)
}

/// Asks the server of `config.queue` on the host `remote` names to stop, as
/// [`stop_server`](crate::stop_server) does here: runs `RSH HOST
/// REMOTE_CLIENT --stop-server [--drain] --queue Q --wait W` (and
/// `--quiet` when the config has no wait notice) and waits for it; its
/// messages reach this process's stderr as they are. `Ok` once it
/// stopped the server; its other exit statuses are an [`Error::Remote`]
/// saying which ([`RemoteFailure`]).
///
/// # Examples
///
/// ```no_run
/// use shmxfer::remote::{stop_remote_server, Remote};
/// use shmxfer::{ClientConfig, StopKind};
///
/// stop_remote_server(&ClientConfig::from_env(), &Remote::new("build@farm7"), StopKind::Drain)?;
/// # Ok::<(), shmxfer::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidName`] for a bad queue name, [`Error::InvalidConfig`]
/// for an empty remote shell or a bad host, [`Error::Os`] when it cannot
/// be run, [`Error::Remote`] when it did not stop the server (no server
/// there, no `shm_client`, the host unreachable, another exit status, a
/// signal), [`Error::Cancelled`] (it is killed then).
pub fn stop_remote_server(config: &ClientConfig, remote: &Remote, kind: StopKind) -> Result<()> {
    validate_queue_name(&config.queue)?;
    let words: Vec<OsString> = [remote.remote_client.clone(), "--stop-server".into()]
        .into_iter()
        .chain((kind == StopKind::Drain).then(|| "--drain".into()))
        .chain(["--queue".into(), config.queue.clone().into(), "--wait".into(), secs(config.wait).into()])
        .chain(config.on_wait.is_none().then(|| "--quiet".into()))
        .collect();
    let (mut cmd, program) = remote_command(remote, &words)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::os_named("run", &program, e))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::os_named("wait for", &program, e))? {
            return stop_status(remote, &config.queue, status);
        }
        if config.cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the exit status of a remote `shm_client --stop-server` says.
fn stop_status(remote: &Remote, queue: &str, status: ExitStatus) -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let program = remote.remote_client.to_string_lossy();
    let failure = match (status.code(), status.signal()) {
        (Some(0), _) => return Ok(()),
        (Some(code), _) => known_failure(code, queue, &program).unwrap_or(RemoteFailure::Exited { code }),
        (None, signal) => RemoteFailure::Killed { signal: signal.unwrap_or(0) },
    };
    Err(Error::Remote { host: remote.host.clone(), failure })
}

/// What the exit status `code` of `program` run through the remote shell
/// for `queue` says went wrong, where it says something of its own.
fn known_failure(code: i32, queue: &str, program: &str) -> Option<RemoteFailure> {
    match code {
        NO_SERVER_EXIT => Some(RemoteFailure::NoServer { queue: queue.to_owned() }),
        NOT_FOUND_EXIT => Some(RemoteFailure::ClientNotFound { program: program.to_owned() }),
        UNREACHABLE_EXIT => Some(RemoteFailure::Unreachable),
        _ => None,
    }
}

/// The client's end of a relay: the child process (the remote shell), the
/// records queued for its stdin (written by a thread of their own, so that
/// a relay that stops reading holds no wait past the stall timeout or the
/// cancel flag), and the records read from its stdout.
#[derive(Debug)]
pub(crate) struct Link {
    host: String,
    /// The `shm_client` run there, as given.
    remote_client: String,
    queue: String,
    child: Child,
    to: Option<SyncSender<Vec<u8>>>,
    writer: Option<JoinHandle<io::Result<()>>>,
    from: Records,
    stall_timeout: Option<Duration>,
    cancel: Arc<AtomicBool>,
    /// The answer last received in an upload: its seq and word.
    answer: Option<(u32, u32)>,
    /// How [`Link::stop`] ends the relay.
    ending: Ending,
    /// Whether a record came from the relay: its exit status says why it
    /// could not start only before one did (after it, ssh's 255 is a
    /// dropped connection, the relay's 3 a queue that stayed full).
    heard: bool,
}

/// How [`Link::stop`] ends the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Its input is closed, and it is given [`RELAY_EXIT_WAIT`] to close
    /// its session and exit before it is killed.
    Graceful,
    /// It took or sent nothing for the stall timeout (stopped, stuck): it
    /// would not read the end of its input either, and is given only
    /// [`LAST_WORDS_WAIT`] (a relay that waited on a stalled server says
    /// so about then) before it is killed.
    Stalled,
}

impl Link {
    /// Starts `RSH HOST REMOTE_CLIENT --relay[=KIND] --queue Q --wait W
    /// --stall-timeout S` (and `--quiet` when the config has no wait
    /// notice) for a session of `kind`; the relay's stderr is this
    /// process's.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty remote shell, [`Error::Os`]
    /// when it cannot be started.
    pub(crate) fn start(
        remote: &Remote,
        config: &ClientConfig,
        kind: SessionKind,
        cancel: Arc<AtomicBool>,
    ) -> Result<Link> {
        let stall = config.stall_timeout.unwrap_or(Duration::ZERO);
        let words: Vec<OsString> = [
            remote.remote_client.clone(),
            relay_flag(kind).into(),
            "--queue".into(),
            config.queue.clone().into(),
            "--wait".into(),
            secs(config.wait).into(),
            "--stall-timeout".into(),
            secs(stall).into(),
        ]
        .into_iter()
        // A client that is not told when it waits has a quiet relay.
        .chain(config.on_wait.is_none().then(|| "--quiet".into()))
        .collect();
        let (mut cmd, program) = remote_command(remote, &words)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Error::os_named("run", &program, e))?;
        let (Some(to), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Protocol("the relay's pipes were not made".into()));
        };
        // Only the way the answers' data come: an upload's bytes in flight
        // (which a full disk stops) stay as they were.
        sys::widen_pipe(&out, sys::RELAY_PIPE_BYTES);
        let from = spawn_reader(out, MAX_FRAME_RECORD);
        let (to, writer) = spawn_writer(to);
        Ok(Link {
            host: remote.host.clone(),
            remote_client: remote.remote_client.to_string_lossy().into_owned(),
            queue: config.queue.clone(),
            child,
            to: Some(to),
            writer: Some(writer),
            from,
            stall_timeout: config.stall_timeout,
            cancel,
            answer: None,
            ending: Ending::Graceful,
            heard: false,
        })
    }

    /// Sends `cmd` to the relay.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`]; as [`Link::send_data`].
    pub(crate) fn send(&mut self, cmd: &Command) -> Result<()> {
        let bytes = cmd.encode()?;
        let mut record = Vec::with_capacity(4 + bytes.len());
        write_record(&mut record, &bytes).map_err(|e| Error::Protocol(format!("a command record: {e}")))?;
        self.push(record)
    }

    /// Sends a data frame of upload `seq` (at most [`RELAY_MAX_PAYLOAD`]
    /// bytes) to the relay.
    ///
    /// # Errors
    ///
    /// [`Error::PeerGone`] when the relay is gone, [`Error::Protocol`] when
    /// it broke the stream first, [`Error::Stalled`] when it took nothing
    /// for the stall timeout, [`Error::Cancelled`].
    pub(crate) fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        if bytes.len() > RELAY_MAX_PAYLOAD {
            return Err(Error::Protocol(format!("a data frame of {} bytes for a relay", bytes.len())));
        }
        let mut record = Vec::with_capacity(4 + FRAME_HEADER_LEN + bytes.len());
        frame_record(FrameKind::Data, seq, bytes, &mut record);
        self.push(record)
    }

    /// Sends the last data of upload `seq` and its end in one `DataEnd`
    /// frame (at most [`RELAY_MAX_PAYLOAD`] bytes with its trailer).
    ///
    /// # Errors
    ///
    /// As [`Link::send_data`].
    pub(crate) fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()> {
        if bytes.len() + DataEnd::TRAILER_LEN > RELAY_MAX_PAYLOAD {
            return Err(Error::Protocol(format!("a DataEnd frame of {} bytes for a relay", bytes.len())));
        }
        let mut payload = Vec::with_capacity(bytes.len() + DataEnd::TRAILER_LEN);
        payload.extend_from_slice(bytes);
        payload.extend_from_slice(&DataEnd::trailer(count, checksum));
        let mut record = Vec::with_capacity(4 + FRAME_HEADER_LEN + payload.len());
        frame_record(FrameKind::DataEnd, seq, &payload, &mut record);
        self.push(record)
    }

    /// Sends the control frame `reply` of upload `seq` to the relay.
    ///
    /// # Errors
    ///
    /// As [`Link::send_data`].
    pub(crate) fn send_reply(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        let mut payload = Vec::new();
        reply.encode_payload(&mut payload);
        let mut record = Vec::with_capacity(4 + FRAME_HEADER_LEN + payload.len());
        frame_record(reply.kind(), seq, &payload, &mut record);
        self.push(record)
    }

    /// Queues one record (length and body) for the relay's stdin, waiting
    /// while the queue is full within the stall timeout.
    fn push(&mut self, mut record: Vec<u8>) -> Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_micros(20);
        loop {
            let Some(to) = self.to.as_ref() else {
                return Err(Error::Protocol("the relay's input is closed".into()));
            };
            match to.try_send(record) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => record = back,
                Err(TrySendError::Disconnected(_)) => return Err(self.unwritable()),
            }
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let waited = started.elapsed();
            if self.stall_timeout.is_some_and(|limit| waited >= limit) {
                self.ending = Ending::Stalled;
                return Err(Error::Stalled { waited });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(FULL_PIPE_PAUSE);
        }
    }

    /// The relay's stdin could not be written: what the relay wrote before
    /// it went says more than the pipe.
    fn unwritable(&mut self) -> Error {
        let why = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e.to_string(),
            _ => "its input closed".to_owned(),
        };
        match self.from.recv_timeout(LAST_WORDS_WAIT) {
            Ok(Record::Broken(broke)) => self.broken(&broke),
            _ => self.gone(&format!("could not be written to ({why})")),
        }
    }

    /// The next record's body, waiting within the stall timeout.
    fn recv_body(&mut self) -> Result<Vec<u8>> {
        let started = Instant::now();
        let record = loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let slice = match self.stall_timeout {
                Some(limit) => {
                    let waited = started.elapsed();
                    if waited >= limit {
                        self.ending = Ending::Stalled;
                        return Err(Error::Stalled { waited });
                    }
                    (limit - waited).min(CANCEL_SLICE)
                }
                None => CANCEL_SLICE,
            };
            match self.from.recv_timeout(slice) {
                Ok(record) => break record,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Record::End,
            }
        };
        self.body_of(record)
    }

    /// The body of `record`, or the error of a stream that ended or broke.
    fn body_of(&mut self, record: Record) -> Result<Vec<u8>> {
        match record {
            Record::Body(body) => {
                self.heard = true;
                Ok(body)
            }
            Record::End => Err(self.gone("ended")),
            Record::Broken(why) => Err(self.broken(&why)),
        }
    }

    /// Reads the next frame: its header, its payload in `out[..len]`.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for a record that is not a frame,
    /// [`Error::PeerGone`] when the relay ended, [`Error::Stalled`] when
    /// nothing came for the stall timeout, [`Error::Cancelled`].
    pub(crate) fn recv_into(&mut self, out: &mut [u8]) -> Result<FrameHeader> {
        let body = self.recv_body()?;
        if body.len() < FRAME_HEADER_LEN {
            return Err(
                self.broken(&format!("a record of {} bytes, shorter than a frame header", body.len()))
            );
        }
        let header = FrameHeader::decode(&body[..FRAME_HEADER_LEN], RELAY_MAX_PAYLOAD.min(out.len()))
            .map_err(|e| self.broken(&format!("not a frame: {e}")))?;
        let payload = &body[FRAME_HEADER_LEN..];
        if payload.len() != header.len as usize {
            return Err(self.broken(&format!(
                "a frame of {} bytes in a record of {} payload bytes",
                header.len,
                payload.len()
            )));
        }
        out[..payload.len()].copy_from_slice(payload);
        Ok(header)
    }

    /// The server's answer word to upload `seq`, once the relay sent it;
    /// `None` while it has not (this does not wait).
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for a record that is not an answer to `seq`,
    /// [`Error::PeerGone`] when the relay ended.
    pub(crate) fn answer_to(&mut self, seq: u32) -> Result<Option<u32>> {
        if let Some((answered, word)) = self.answer {
            if answered == seq {
                return Ok(Some(word));
            }
        }
        let record = match self.from.try_recv() {
            Ok(record) => record,
            Err(TryRecvError::Empty) => return Ok(None),
            Err(TryRecvError::Disconnected) => Record::End,
        };
        let body = self.body_of(record)?;
        let (answered, word) = decode_answer(&body).map_err(|why| self.broken(&why))?;
        if answered != seq {
            return Err(self.broken(&format!("an answer to upload {answered} during upload {seq}")));
        }
        self.answer = Some((answered, word));
        Ok(Some(word))
    }

    /// The relay broke the stream: it is stopped.
    fn broken(&mut self, why: &str) -> Error {
        self.stop();
        Error::Protocol(format!("the relay on {} broke the stream: {why}", self.host))
    }

    /// The relay is gone, or going: how it ended, once it has (one that
    /// found no server says so).
    fn gone(&mut self, what: &str) -> Error {
        let status = self.stop();
        let code = status.and_then(|s| s.code()).filter(|_| !self.heard);
        if let Some(failure) = code.and_then(|c| known_failure(c, &self.queue, &self.remote_client)) {
            return Error::Remote { host: self.host.clone(), failure };
        }
        let how = status.map_or_else(|| "did not exit".to_owned(), describe_status);
        Error::PeerGone(format!("the relay on {} {what}: {how} (see its messages above)", self.host))
    }

    /// Closes the relay's input once what is queued is written (it closes
    /// its session and exits) and waits for it a little (less for one
    /// that stalled), then kills it. Its exit status, when it had one.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        drop(self.to.take());
        let wait = match self.ending {
            Ending::Graceful => RELAY_EXIT_WAIT,
            Ending::Stalled => LAST_WORDS_WAIT,
        };
        let until = Instant::now() + wait;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = self.child.kill();
                    return self.child.wait().ok();
                }
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An exit status in words.
fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

pub(crate) mod records;
pub(crate) use records::*;

#[cfg(test)]
mod tests;
