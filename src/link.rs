//! The client's side of a relay (fetching from a server on another host):
//! it runs `RSH HOST shm_client --relay --queue Q` ([`Link`]) and speaks the
//! session's command messages and frames over the relay's stdin and stdout;
//! [`crate::relay`] is the other side. Also the stream's records, which both
//! sides read and write.
//!
//! The stream is a sequence of records, each a `u32` little-endian length
//! then that many bytes of body. Client to relay, a body is an encoded
//! [`Command`] (a Get, List or Cancel; it starts with its magic and
//! version); relay to client, it is a [`FrameHeader`] and its payload
//! exactly as they sit in a slot. A length over the largest message or
//! frame, a body cut short, or a body that does not decode is a protocol
//! error: the stream is checked as strictly as the region.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::{Child, ChildStdin, Command as Process, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::protocol::{Command, FrameHeader, FrameKind, Reply, FRAME_HEADER_LEN, MAX_MSG_LEN};
use crate::shm_region::Geometry;

/// The largest payload a relayed frame carries: that of the roomiest ring
/// (one slot), so a relay's session of any geometry fits.
pub(crate) const RELAY_MAX_PAYLOAD: usize = Geometry::for_slots(1).max_payload();

/// The longest body of a record the relay sends: a frame.
pub(crate) const MAX_FRAME_RECORD: usize = FRAME_HEADER_LEN + RELAY_MAX_PAYLOAD;

/// The longest body of a record the client sends: a command message.
pub(crate) const MAX_COMMAND_RECORD: usize = MAX_MSG_LEN;

/// How long the client waits for a relay that was told to end before it
/// kills it.
const RELAY_EXIT_WAIT: Duration = Duration::from_secs(2);

/// How long a client whose relay stopped reading waits for what the relay
/// wrote last.
const LAST_WORDS_WAIT: Duration = Duration::from_millis(500);

/// How often waits on the stream look at the cancel flag.
const CANCEL_SLICE: Duration = Duration::from_millis(100);

/// How to reach a server on another host ([`Client::connect_remote`](crate::Client::connect_remote)): the
/// host, the remote-shell command that runs a program there, and the path
/// of `shm_client` on that host.
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

/// Writes `body` as one record.
pub(crate) fn write_record(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(body)
}

/// What reading one record found.
#[derive(Debug)]
pub(crate) enum Record {
    /// A body within the bound.
    Body(Vec<u8>),
    /// The stream ended cleanly, between records.
    End,
    /// The stream broke the framing (the text says how) or could not be read.
    Broken(String),
}

/// Reads one record of at most `max` bytes of body.
fn read_record(input: &mut impl Read, max: usize) -> Record {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Record::End,
            Ok(0) => {
                return Record::Broken(format!(
                    "the stream ended inside a record's length ({got} of 4 bytes)"
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Record::Broken(format!("reading the stream: {e}")),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Record::Broken(format!("a record of {len} bytes, more than the {max} allowed"));
    }
    let mut body = vec![0u8; len];
    match input.read_exact(&mut body) {
        Ok(()) => Record::Body(body),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Record::Broken(format!("the stream ended inside a record of {len} bytes"))
        }
        Err(e) => Record::Broken(format!("reading the stream: {e}")),
    }
}

/// Reads records of at most `max` bytes from `input` on a thread of its
/// own, until the stream ends or breaks (the last record sent).
pub(crate) fn spawn_reader(mut input: impl Read + Send + 'static, max: usize) -> Receiver<Record> {
    // A few records ahead: the pipe holds more.
    let (tx, rx) = mpsc::sync_channel(8);
    std::thread::spawn(move || loop {
        let record = read_record(&mut input, max);
        let last = !matches!(record, Record::Body(_));
        if tx.send(record).is_err() || last {
            return;
        }
    });
    rx
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

/// The client's end of a relay: the child process (the remote shell), its
/// stdin for commands, and the records read from its stdout.
#[derive(Debug)]
pub(crate) struct Link {
    host: String,
    child: Child,
    to: Option<ChildStdin>,
    from: Receiver<Record>,
    stall_timeout: Option<Duration>,
    cancel: Arc<AtomicBool>,
}

impl Link {
    /// Starts `RSH HOST REMOTE_CLIENT --relay --queue Q --wait W
    /// --stall-timeout S` (and `--quiet` when the config has no wait
    /// notice); the relay's stderr is this process's.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an empty remote shell, [`Error::Os`]
    /// when it cannot be started.
    pub(crate) fn start(remote: &Remote, config: &ClientConfig, cancel: Arc<AtomicBool>) -> Result<Link> {
        let Some((program, args)) = remote.rsh.split_first() else {
            return Err(Error::InvalidConfig("an empty remote shell command".into()));
        };
        let stall = config.stall_timeout.unwrap_or(Duration::ZERO);
        let words: Vec<OsString> = [
            remote.remote_client.clone(),
            "--relay".into(),
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
        .collect::<Vec<OsString>>()
        .iter()
        .map(|w| shell_quoted(w))
        .collect();
        let mut child = Process::new(program)
            .args(args)
            .arg(&remote.host)
            .args(&words)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::os_named("run", &program.to_string_lossy(), e))?;
        let (Some(to), Some(out)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Protocol("the relay's pipes were not made".into()));
        };
        let from = spawn_reader(out, MAX_FRAME_RECORD);
        Ok(Link {
            host: remote.host.clone(),
            child,
            to: Some(to),
            from,
            stall_timeout: config.stall_timeout,
            cancel,
        })
    }

    /// Sends `cmd` to the relay.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`]; [`Error::PeerGone`] when the relay is gone.
    pub(crate) fn send(&mut self, cmd: &Command) -> Result<()> {
        let bytes = cmd.encode()?;
        let Some(to) = self.to.as_mut() else {
            return Err(Error::Protocol("the relay's input is closed".into()));
        };
        match write_record(to, &bytes).and_then(|()| to.flush()) {
            Ok(()) => Ok(()),
            // What the relay wrote before it went says more than the pipe.
            Err(e) => match self.from.recv_timeout(LAST_WORDS_WAIT) {
                Ok(Record::Broken(why)) => Err(self.broken(&why)),
                _ => Err(self.gone(&format!("could not be written to ({e})"))),
            },
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
        let started = Instant::now();
        let record = loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let slice = match self.stall_timeout {
                Some(limit) => {
                    let waited = started.elapsed();
                    if waited >= limit {
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
        let body = match record {
            Record::Body(body) => body,
            Record::End => return Err(self.gone("ended")),
            Record::Broken(why) => return Err(self.broken(&why)),
        };
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

    /// The relay broke the stream: it is stopped.
    fn broken(&mut self, why: &str) -> Error {
        self.stop();
        Error::Protocol(format!("the relay on {} broke the stream: {why}", self.host))
    }

    /// The relay is gone, or going: how it ended, once it has.
    fn gone(&mut self, what: &str) -> Error {
        let status = self.stop();
        let how = status.map_or_else(|| "did not exit".to_owned(), describe_status);
        Error::PeerGone(format!("the relay on {} {what}: {how} (see its messages above)", self.host))
    }

    /// Closes the relay's input (it closes its session and exits) and waits
    /// for it a little, then kills it. Its exit status, when it had one.
    pub(crate) fn stop(&mut self) -> Option<ExitStatus> {
        drop(self.to.take());
        let until = Instant::now() + RELAY_EXIT_WAIT;
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

/// Whether a frame of `kind` with `payload` ends the answer to its
/// request: an end, a refusal, a listing's end, or a Start that says the
/// copy is up to date (nothing follows it). A Start that does not decode is
/// the client's to judge; it ends nothing here.
pub(crate) fn ends_answer(kind: FrameKind, payload: &[u8]) -> bool {
    match kind {
        FrameKind::End
        | FrameKind::NotFound
        | FrameKind::Refused
        | FrameKind::Error
        | FrameKind::Busy
        | FrameKind::ListEnd
        | FrameKind::DataEnd => true,
        FrameKind::Start => {
            matches!(Reply::decode(kind, payload), Ok(Reply::Start { flags, .. }) if flags.up_to_date())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_bounded() {
        let mut stream = Vec::new();
        write_record(&mut stream, b"abc").unwrap();
        write_record(&mut stream, b"").unwrap();
        let mut input = &stream[..];
        assert!(matches!(read_record(&mut input, 3), Record::Body(b) if b == b"abc"));
        assert!(matches!(read_record(&mut input, 3), Record::Body(b) if b.is_empty()));
        assert!(matches!(read_record(&mut input, 3), Record::End));
        let mut over = &stream[..];
        assert!(matches!(read_record(&mut over, 2), Record::Broken(why) if why.contains("more than")));
        let mut cut = &stream[..5];
        assert!(matches!(read_record(&mut cut, 3), Record::Broken(why) if why.contains("inside a record")));
        let mut garbage = &b"garbage\n"[..];
        assert!(matches!(read_record(&mut garbage, MAX_FRAME_RECORD), Record::Broken(_)));
    }

    #[test]
    fn the_relayed_payload_bound_holds_every_geometry() {
        for slots in 1..=crate::shm_region::MAX_SLOTS {
            assert!(Geometry::for_slots(slots).max_payload() <= RELAY_MAX_PAYLOAD);
        }
    }

    #[test]
    fn words_are_quoted_for_the_remote_shell_only_when_needed() {
        assert_eq!(shell_quoted(OsStr::new("/usr/bin/shm_client")), "/usr/bin/shm_client");
        assert_eq!(shell_quoted(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quoted(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(shell_quoted(OsStr::new("")), "''");
    }
}
