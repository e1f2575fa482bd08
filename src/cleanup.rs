//! Collecting what dead servers and dead clients of one queue left behind,
//! and nothing that a live process still uses — the POSIX counterpart of
//! `ipcs`/`ipcrm`. `shm_server --cleanup` runs [`cleanup`]; a running server
//! collects dead sessions by itself ([`crate::leftovers`]).
//!
//! The queue and `<queue>.lock` are left over when no process holds the
//! lock's write lock; session objects follow the rules of
//! [`crate::leftovers`].

use crate::error::{Error, Result};
use crate::leftovers::{collect_into, Collected, SHM_DIR};
use crate::liveness::server_alive;
use crate::names::{lock_name, shm_file_name, validate_queue_name};
use crate::shm_object::remove_shm;

/// Removes the leftovers of `queue`: a dead server's queue and lock, and
/// dead sessions' objects.
///
/// # Errors
///
/// [`Error::InvalidName`] for a bad queue name; [`Error::Os`] when `/dev/shm`
/// cannot be read or an object cannot be removed.
pub fn cleanup(queue: &str) -> Result<Collected> {
    validate_queue_name(queue)?;
    let mut collected = Collected::default();
    match server_alive(queue) {
        Ok(true) => {}
        Ok(false) => {
            match posixmq::remove_queue(queue) {
                Ok(()) => collected.removed.push(format!("queue {queue}")),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(Error::os_named("mq_unlink", queue, e)),
            }
            if remove_shm(&lock_name(queue))? {
                collected.removed.push(format!("{SHM_DIR}/{}", shm_file_name(&lock_name(queue))));
            }
        }
        Err(Error::BadObject { name, reason }) => collected.skipped.push(format!("{name}: {reason}")),
        Err(e) => return Err(e),
    }
    collect_into(queue, &mut collected)?;
    Ok(collected)
}
