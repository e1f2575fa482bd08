//! What dead processes of one queue left behind, and nothing that a live
//! process still uses — the POSIX counterpart of `ipcs`/`ipcrm`: the rules,
//! a running server's collection of dead sessions
//! ([`collect_dead_sessions`]), and `shm_server --cleanup` ([`cleanup`]),
//! which also removes a dead server's queue and lock.
//!
//! The queue and `<queue>.lock` are left over when no process holds the
//! lock's write lock.
//!
//! A session object is left over when its creator is gone:
//! - a region `<queue>.<pid>.<16 hex>`: no process holds its write lock, and
//!   process `pid` does not exist or the region is older than
//!   [`CREATION_GRACE`] (the instant between a client creating its region
//!   and locking it);
//! - a semaphore `<region>.items` / `.spaces`: its region is gone, and
//!   process `pid` does not exist or the semaphore is older than
//!   [`CREATION_GRACE`].
//!
//! Only this user's regular files are touched: anything else under the
//! queue's names (a FIFO, a directory, another user's object) is skipped and
//! reported, never opened in a way that could block.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::liveness::{euid, process_exists, region_in_use, DeadLock, Stale};
use crate::queue::still_named;
use crate::names::{lock_name, shm_file_name, validate_queue_name, SessionNames, ShmEntry};
use crate::owned_name::remove_session;
use crate::semaphore::remove_semaphore;

/// Where Linux shows POSIX shared-memory objects and named semaphores.
pub const SHM_DIR: &str = "/dev/shm";

/// How old an unlocked session object must be before it counts as left
/// over even though a process with its creator's pid exists.
pub const CREATION_GRACE: Duration = Duration::from_secs(10);

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Objects removed: `/dev/shm/...` paths, and `queue /name` for the queue.
    pub removed: Vec<String>,
    /// Entries under the queue's names that were left alone, and why.
    pub skipped: Vec<String>,
}

/// Removes the objects of dead sessions of `queue` (not the queue or the
/// lock): what a running server does by itself.
///
/// # Errors
///
/// [`Error::Os`] when `/dev/shm` cannot be read or an object cannot be
/// removed.
pub fn collect_dead_sessions(queue: &str) -> Result<Collected> {
    let mut collected = Collected::default();
    collect_into(queue, &mut collected)?;
    Ok(collected)
}

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
    match DeadLock::take(queue) {
        Ok(Stale::Held { .. }) => {}
        Ok(Stale::Dead(dead)) => {
            // While this holds the dead lock, no server can take the queue
            // over: the queue seen now is the dead server's.
            remove_dead_queue(queue, &mut collected, || dead.still_named())?;
            let lock = format!("{SHM_DIR}/{}", shm_file_name(&lock_name(queue)));
            if dead.remove()? {
                collected.removed.push(lock);
            }
        }
        // No lock: a server creates its lock before its queue and removes
        // it after, so a queue seen while no lock is there is a dead one's.
        Ok(Stale::Absent) => remove_dead_queue(queue, &mut collected, || !lock_exists(queue))?,
        Err(Error::BadObject { name, reason }) => collected.skipped.push(format!("{name}: {reason}")),
        Err(e) => return Err(e),
    }
    collect_into(queue, &mut collected)?;
    Ok(collected)
}

/// Whether anything is named like the lock of `queue`.
fn lock_exists(queue: &str) -> bool {
    Path::new(SHM_DIR).join(shm_file_name(&lock_name(queue))).symlink_metadata().is_ok()
}

/// Removes the queue judged dead: the one open now, if `still_dead` holds
/// once it is open, and only while the name still names it (inode checked).
fn remove_dead_queue(queue: &str, collected: &mut Collected, still_dead: impl Fn() -> bool) -> Result<()> {
    let mq = match posixmq::OpenOptions::readonly().nonblocking().open(queue) {
        Ok(mq) => mq,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::os_named("mq_open", queue, e)),
    };
    if !still_dead() || !still_named(queue, &mq) {
        return Ok(());
    }
    match posixmq::remove_queue(queue) {
        Ok(()) => collected.removed.push(format!("queue {queue}")),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::os_named("mq_unlink", queue, e)),
    }
    Ok(())
}

fn collect_into(queue: &str, collected: &mut Collected) -> Result<()> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|e| Error::os_named("opendir", SHM_DIR, e))?;
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for file_name in names {
        let Some(entry) = ShmEntry::parse(queue, &file_name) else { continue };
        let path = Path::new(SHM_DIR).join(&file_name);
        let Ok(meta) = path.symlink_metadata() else { continue };
        if !meta.file_type().is_file() || meta.uid() != euid() {
            if !matches!(entry, ShmEntry::Lock) {
                collected.skipped.push(format!("{}: not a regular file of this user", path.display()));
            }
            continue;
        }
        let old = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok())
            >= Some(CREATION_GRACE);
        // Past the grace, a process with the creator's pid does not count:
        // it may be another one with a reused pid.
        match entry {
            ShmEntry::Lock => {}
            ShmEntry::Region { region, pid } => match region_in_use(&region, (!old).then_some(pid)) {
                Ok(true) => {}
                Ok(false) => {
                    let removed = remove_session(&SessionNames::for_region(&region))?;
                    collected.removed.extend(removed.iter().map(|f| format!("{SHM_DIR}/{f}")));
                }
                Err(e) => collected.skipped.push(format!("{}: {e}", path.display())),
            },
            ShmEntry::Semaphore { name, region, pid } => {
                let region_exists = Path::new(SHM_DIR).join(shm_file_name(&region)).exists();
                let creator_may_be_starting = !old && process_exists(pid);
                if !region_exists && !creator_may_be_starting && remove_semaphore(&name)? {
                    collected.removed.push(path.display().to_string());
                }
            }
        }
    }
    Ok(())
}
