//! The library's error type.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::choices::OutputNames;
use crate::protocol::{DecodeError, EncodeError};
use crate::reason::FailReason;

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a transfer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed: the operation, the object it was about (if any)
    /// and the OS error. It displays the operation and the object; the OS
    /// error is its [`source`](std::error::Error::source).
    Os { op: &'static str, name: Option<String>, source: io::Error },
    /// An object name breaks the naming rules.
    InvalidName { name: String, reason: String },
    /// A client's region failed the server's checks.
    BadRegion { name: String, reason: String },
    /// An object in `/dev/shm` or the queue namespace is not what it should
    /// be (not a regular file, another user's): refused, never waited on.
    BadObject { name: String, reason: String },
    /// A peer sent bytes that do not decode.
    Decode(DecodeError),
    /// A message could not be encoded within the protocol's limits.
    Encode(EncodeError),
    /// A peer sent valid frames in an order or with values the protocol
    /// does not allow.
    Protocol(String),
    /// No frame moved in a session for this long (the stall timeout): the
    /// peer lives but does not take part (stopped, or stuck).
    Stalled { waited: Duration },
    /// A bounded wait ran out: what was waited for, and for how long.
    Timeout { what: String, after: Duration },
    /// The peer process died or went away mid-session.
    PeerGone(String),
    /// The server ended this client's session on its own, and said why.
    SessionEnded(SessionEnd),
    /// A signal (SIGINT/SIGTERM) asked us to stop.
    Cancelled,
    /// No live server on the queue within the wait time.
    NoServer { queue: String, waited: Duration },
    /// Another live server owns the queue.
    ServerRunning { queue: String, pid: Option<u32> },
    /// The server serves its maximum number of sessions.
    Busy { max_sessions: u32 },
    /// The server of the queue runs as another user, whose queue and lock
    /// (mode 0600) this process may not open: no server it can use.
    OtherUsersServer { queue: String, uid: u32, user: Option<String> },
    /// The server is stopping (`shm_client --stop-server --drain`,
    /// SIGQUIT): it finishes its open sessions and takes no new one.
    Stopping { queue: String },
    /// A configuration value is out of its range.
    InvalidConfig(String),
    /// The local file of an upload could not be opened, examined or read
    /// (not there, not a regular file, unreadable): the operation, the
    /// file, and the OS error (its [`source`](std::error::Error::source)).
    /// The session goes on with the next file.
    LocalFile { op: &'static str, path: String, source: io::Error },
    /// The relay on another host (`-H`) could not serve: the remote shell
    /// could not run it or reach the host, or it found no server there.
    Remote { host: String, failure: RemoteFailure },
    /// The server's queue stayed full for this long: the server takes no
    /// requests (it is stopped, or others flood it).
    QueueFull { queue: String, waited: Duration },
    /// Two requested paths would be written to the same output name.
    SameOutput { first: String, second: String, output: String, names: OutputNames },
    /// Two different local files of an upload would be sent to one path
    /// below the server's `--accept` directory: the two files and that
    /// path ([`UploadPlan`](crate::upload::UploadPlan)).
    SameRemote { first: PathBuf, second: PathBuf, remote: Vec<u8> },
    /// The file `path` asked for is not on the server
    /// ([`Outcome::into_result`](crate::Outcome::into_result)).
    NotFound { path: std::path::PathBuf },
    /// The server would not send (or, for an upload, take) the file: why,
    /// and its words. Made by
    /// [`Outcome::into_result`](crate::Outcome::into_result), the `text`
    /// begins with the file's path: `refused by server: ../x.txt: it would
    /// be written outside …`.
    Refused { reason: FailReason, text: String },
    /// The file did not arrive intact, or could not be written: why, and
    /// what happened. Made by
    /// [`Outcome::into_result`](crate::Outcome::into_result), the `text`
    /// begins with the file's path, as [`Error::Refused`]'s does.
    Failed { reason: FailReason, text: String },
}

/// Why a relay on another host could not serve ([`Error::Remote`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// The relay found no server on `queue` within its wait (its exit
    /// status 3).
    NoServer { queue: String },
    /// The remote shell found no `program` to run (exit status 127).
    ClientNotFound { program: String },
    /// The remote shell could not reach the host or log in (ssh's exit
    /// status 255).
    Unreachable,
    /// The remote `shm_client --stop-server` ended with this exit status
    /// (its own failure: a usage error, a server of another user, ...).
    Exited { code: i32 },
    /// The remote command was killed by a signal.
    Killed { signal: i32 },
}

/// Why the server ended a client's session on its own
/// ([`Error::SessionEnded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionEnd {
    /// The server was told to stop (a signal, or a stop request) and
    /// cancelled the session.
    ServerStopping,
    /// The client took no frame for the server's stall timeout.
    ClientStalled,
    /// The client sent no request for the server's stall timeout.
    ClientIdle,
}

impl Error {
    pub(crate) fn os(op: &'static str, source: io::Error) -> Error {
        Error::Os { op, name: None, source }
    }

    pub(crate) fn os_named(op: &'static str, name: &str, source: io::Error) -> Error {
        Error::Os { op, name: Some(name.to_owned()), source }
    }

    /// [`Error::LocalFile`]: `op` on the upload's local file `path` failed.
    pub(crate) fn local(op: &'static str, path: &str, source: io::Error) -> Error {
        Error::LocalFile { op, path: path.to_owned(), source }
    }

    /// The error and its causes on one line, `a: b: c`: for a message built
    /// inside the library (a file's outcome).
    pub(crate) fn with_causes(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            line.push_str(": ");
            line.push_str(&c.to_string());
            cause = c.source();
        }
        line
    }

    /// The raw OS error number, for an [`Error::Os`].
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// `{}` shows what failed; `{:#}` adds the OS error behind it, for one-line
/// logs (as `anyhow` does): `shm_open /q.1.ab: File exists (os error 17)`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, name, source } => {
                // A file's name is any bytes but NUL: quoted, as every
                // message quotes one.
                match name {
                    Some(name) => write!(f, "{op} {}", crate::text::quote_name(name))?,
                    None => write!(f, "{op}")?,
                }
                if f.alternate() {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
            Error::LocalFile { op, path, source } => {
                write!(f, "{op} {}", crate::text::quote_name(path))?;
                if f.alternate() {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
            Error::InvalidName { name, reason } => write!(f, "invalid object name {name:?}: {reason}"),
            Error::BadRegion { name, reason } => write!(f, "region {name} refused: {reason}"),
            Error::BadObject { name, reason } => write!(f, "{name}: {reason}"),
            Error::Decode(e) => write!(f, "protocol error: {e}"),
            Error::Encode(e) => write!(f, "cannot encode the request: {e}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Stalled { waited } => {
                write!(
                    f,
                    "no frame moved for {:.0} s: the peer is stopped or stuck; session ended",
                    waited.as_secs_f64()
                )
            }
            Error::Timeout { what, after } => write!(f, "{what} (waited {:.1} s)", after.as_secs_f64()),
            Error::PeerGone(what) => write!(f, "{what}"),
            Error::SessionEnded(end) => session_end(f, *end),
            Error::NotFound { path } => {
                write!(f, "{}: not found", crate::text::quote_bytes(path.as_os_str().as_encoded_bytes()))
            }
            Error::Refused { text, .. } => write!(f, "refused by server: {text}"),
            Error::Failed { text, .. } => write!(f, "failed: {text}"),
            Error::Cancelled => write!(f, "interrupted"),
            Error::NoServer { queue, waited } => {
                write!(f, "no server on queue {queue} (waited {:.1} s)", waited.as_secs_f64())
            }
            Error::ServerRunning { queue, pid: Some(pid) } => {
                write!(f, "another server (pid {pid}) is serving queue {queue}")
            }
            Error::ServerRunning { queue, pid: None } => write!(f, "another server is serving queue {queue}"),
            Error::OtherUsersServer { queue, uid, user } => other_users_server(f, queue, *uid, user.as_deref()),
            Error::QueueFull { queue, waited } => write!(
                f,
                "the server on queue {queue} takes no requests: its queue stayed full for {:.1} s",
                waited.as_secs_f64()
            ),
            Error::SameOutput { first, second, output, .. } => {
                write!(f, "{first} and {second} would both be written to {output}")
            }
            Error::SameRemote { first, second, remote } => same_remote(f, first, second, remote),
            Error::Busy { max_sessions } => {
                write!(f, "server busy: it serves at most {max_sessions} session(s) at once; try again later")
            }
            Error::Stopping { queue } => write!(
                f,
                "the server on queue {queue} is stopping: it finishes its open sessions and takes no new one; \
                 try again once a server runs"
            ),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::Remote { host, failure } => remote_failure(f, host, failure),
        }
    }
}

/// What [`Error::OtherUsersServer`] says: whose server it is, and what to
/// do (run the client as that user, or start a server of one's own).
fn other_users_server(f: &mut fmt::Formatter<'_>, queue: &str, uid: u32, user: Option<&str>) -> fmt::Result {
    let who = user.map_or_else(|| format!("uid {uid}"), |u| format!("{u} (uid {uid})"));
    let run_as = user.map_or_else(|| format!("uid {uid}"), |u| format!("sudo -u {u} …"));
    write!(
        f,
        "the server on queue {queue} runs as {who}, and its queue and lock are open to that user \
         only; run the client as that user ({run_as}), or start a server of your own on another \
         queue (--queue)"
    )
}

/// What [`Error::Remote`] says of a relay on `host` that could not serve.
fn remote_failure(f: &mut fmt::Formatter<'_>, host: &str, failure: &RemoteFailure) -> fmt::Result {
    match failure {
        RemoteFailure::NoServer { queue } => write!(
            f,
            "no server on queue {queue} on {host}: shm_client there found none it could reach within \
                 its wait (exit status 3; see its message above)"
        ),
        RemoteFailure::ClientNotFound { program } => write!(
            f,
            "the relay on {host} did not start: the remote shell found no {program} to run there \
                 (exit status 127; see its message above)"
        ),
        RemoteFailure::Exited { code } => {
            write!(f, "shm_client on {host} ended with exit status {code} (see its message above)")
        }
        RemoteFailure::Killed { signal } => {
            write!(f, "shm_client on {host} was killed by signal {signal}")
        }
        RemoteFailure::Unreachable => write!(
            f,
            "the remote shell could not reach {host} or log in there (exit status 255; see its \
                 message above)"
        ),
    }
}

/// What [`Error::SessionEnded`] says of the server's reason.
fn session_end(f: &mut fmt::Formatter<'_>, end: SessionEnd) -> fmt::Result {
    match end {
        SessionEnd::ServerStopping => {
            write!(f, "the server stopped and cancelled this session")
        }
        SessionEnd::ClientStalled => write!(
            f,
            "the server ended this session: this client took no frame for the server's stall timeout"
        ),
        SessionEnd::ClientIdle => write!(
            f,
            "the server ended this session: this client sent no request for the server's stall timeout"
        ),
    }
}

/// What [`Error::SameRemote`] says: the two local files and the remote
/// path, each quoted as names are.
fn same_remote(f: &mut fmt::Formatter<'_>, first: &Path, second: &Path, remote: &[u8]) -> fmt::Result {
    use crate::text::quote_bytes;
    let (first, second) = (
        quote_bytes(first.as_os_str().as_encoded_bytes()),
        quote_bytes(second.as_os_str().as_encoded_bytes()),
    );
    write!(f, "{first} and {second} would both be sent to {}", quote_bytes(remote))
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } | Error::LocalFile { source, .. } => Some(source),
            // Their message already says what the inner error says: a
            // chain printed whole (`{:#}`) says it once.
            _ => None,
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Error {
        Error::Decode(e)
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Error {
        Error::Encode(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_shows_its_source_once_and_only_when_asked() {
        let e = Error::os_named("shm_open", "/q.1.ab", io::Error::from_raw_os_error(libc::EEXIST));
        assert_eq!(e.to_string(), "shm_open /q.1.ab");
        assert_eq!(
            format!("{e:#}"),
            format!("shm_open /q.1.ab: {}", io::Error::from_raw_os_error(libc::EEXIST))
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
