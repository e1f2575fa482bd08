//! The command queue: its limits, its creation by the server, its opening by
//! a client, and sending one message without waiting for ever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::warn;
use posixmq::PosixMq;

use crate::error::{Error, Result};
use crate::os::liveness::{check_queue_owner, euid, queue_identity};
use crate::os::liveness::{Liveness, WAIT_SLICE};
use crate::protocol::{Command, EncodeError, MAX_MSG_LEN};

/// Messages a queue holds: the Linux default (`/proc/sys/fs/mqueue/msg_default`,
/// and the most an unprivileged process may ask for, `msg_max`).
pub const QUEUE_CAPACITY: usize = 10;
/// Largest message the queue accepts: the longest command
/// (`MAX_MSG_LEN`, 1319 bytes) rounded up, a quarter of the Linux default
/// `msgsize_default` (8192). A queue's cost against the user's
/// `RLIMIT_MSGQUEUE` (819200 bytes by default) is about its capacity times
/// this: about 38 queues of this size fit, where 9 of the default's would.
pub const QUEUE_MSG_LEN: usize = 2048;

const _: () = assert!(MAX_MSG_LEN <= QUEUE_MSG_LEN);

/// Why [`send`] did not send: the cases a caller decides on have their own
/// variants.
#[derive(Debug)]
pub enum SendError {
    /// The queue stayed full for the whole limit.
    Full { waited: Duration },
    /// The cancel flag was set while the queue was full.
    Cancelled,
    /// The liveness check failed while the queue was full: the server is gone.
    Gone(Error),
    /// The message does not encode within the protocol's limits.
    Encode(EncodeError),
    /// `mq_send` failed.
    Os(std::io::Error),
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Error {
        match e {
            SendError::Full { waited } => {
                Error::Timeout { what: "the server's queue stayed full".into(), after: waited }
            }
            SendError::Cancelled => Error::Cancelled,
            SendError::Gone(e) => e,
            SendError::Encode(e) => Error::Encode(e),
            SendError::Os(e) => Error::os("mq_send", e),
        }
    }
}

/// Creates the queue `name` for the server that holds its lock (`O_EXCL`,
/// 0600). A queue that a dead server of this user left is removed first;
/// another user's queue is never touched.
///
/// # Errors
///
/// [`Error::BadObject`] for another user's queue; [`Error::Os`] with a hint
/// at the system limits when the queue cannot be created.
pub fn create(name: &str) -> Result<PosixMq> {
    match posixmq::OpenOptions::readonly().nonblocking().open(name) {
        Ok(stale) => {
            let (uid, _) = queue_identity(name, &stale)?;
            if uid != euid() {
                return Err(Error::BadObject {
                    name: name.to_owned(),
                    reason: format!("the queue belongs to uid {uid}; choose another queue"),
                });
            }
            drop(stale);
            match posixmq::remove_queue(name) {
                Ok(()) => warn!("removed queue {name} left by a server that is gone"),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::os_named("mq_unlink", name, e)),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::os_named("mq_open", name, e)),
    }
    posixmq::OpenOptions::readonly()
        .create_new()
        .mode(0o600)
        .capacity(QUEUE_CAPACITY)
        .max_msg_len(QUEUE_MSG_LEN)
        .open(name)
        .map_err(|e| create_error(name, e))
}

fn create_error(queue: &str, e: std::io::Error) -> Error {
    let hint = match e.raw_os_error() {
        Some(libc::EINVAL) => format!(
            " (the queue needs {QUEUE_CAPACITY} messages of {QUEUE_MSG_LEN} bytes; see /proc/sys/fs/mqueue/msg_max and msgsize_max)"
        ),
        Some(libc::EMFILE) => " (this user's queues are over RLIMIT_MSGQUEUE, by default 819200 bytes: about 38 \
            queues of this size; stop a server of this user or raise it with `ulimit -q`)"
            .to_owned(),
        Some(libc::ENOSPC) => {
            " (too many queues on the system: see /proc/sys/fs/mqueue/queues_max, default 256)".to_owned()
        }
        // Without a hint the error keeps its errno (EEXIST: a squatter).
        _ => return Error::os_named("mq_open", queue, e),
    };
    Error::os_named("mq_open", queue, std::io::Error::new(e.kind(), format!("{e}{hint}")))
}

/// Whether `name` still names the queue `mq` (a queue is replaced when a new
/// server takes over from a dead one).
pub fn still_named(name: &str, mq: &PosixMq) -> bool {
    let ours = queue_identity(name, mq).ok().map(|(_, ino)| ino);
    let named = posixmq::OpenOptions::readonly().nonblocking().open(name).ok();
    let named = named.and_then(|now| queue_identity(name, &now).ok()).map(|(_, ino)| ino);
    ours.is_some() && ours == named
}

/// Opens the queue `name` for sending: `None` when there is none. Only a
/// queue of this user or root is used.
///
/// # Errors
///
/// [`Error::BadObject`] for another user's queue; [`Error::Os`].
pub fn open_for_sending(name: &str) -> Result<Option<PosixMq>> {
    match posixmq::OpenOptions::writeonly().open(name) {
        Ok(mq) => {
            check_queue_owner(name, &mq)?;
            Ok(Some(mq))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::os_named("mq_open", name, e)),
    }
}

/// Sends one message, waiting in slices while the queue is full and
/// checking between slices for cancellation and the server's liveness. A
/// queue that stays full for `limit` (a stopped server, or one flooded by
/// others) ends the wait; a limit under one slice is one slice.
///
/// # Errors
///
/// [`SendError::Full`] after `limit`, [`SendError::Cancelled`],
/// [`SendError::Gone`] with the error of `alive`, [`SendError::Encode`],
/// [`SendError::Os`] from `mq_send`.
pub fn send(
    queue: &PosixMq,
    cmd: &Command,
    cancel: &AtomicBool,
    alive: &Liveness,
    limit: Duration,
) -> std::result::Result<(), SendError> {
    let bytes = cmd.encode().map_err(SendError::Encode)?;
    let start = Instant::now();
    let limit = limit.max(WAIT_SLICE);
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match queue.send_timeout(0, &bytes, left.clamp(Duration::from_millis(1), WAIT_SLICE)) {
            Ok(()) => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIMEDOUT) | Some(libc::EAGAIN)) => {
                if cancel.load(Ordering::Relaxed) {
                    return Err(SendError::Cancelled);
                }
                alive().map_err(SendError::Gone)?;
                if start.elapsed() >= limit {
                    return Err(SendError::Full { waited: start.elapsed() });
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                return Err(SendError::Os(std::io::Error::new(
                    e.kind(),
                    format!("{e}: the queue takes shorter messages than this {}-byte request", bytes.len()),
                )))
            }
            Err(e) => return Err(SendError::Os(e)),
        }
    }
}
