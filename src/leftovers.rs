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
//! - a semaphore `<queue>.<pid>.<16 hex>.items` / `.spaces` (its random part
//!   is its own, so it names its creator, not its region): no region of
//!   process `pid` on this queue is in use by the rule above, and process
//!   `pid` does not exist or the semaphore is older than [`CREATION_GRACE`]
//!   (a client creates its semaphores before its region). A semaphore whose
//!   region is gone, or was never created, is so collected too.
//!
//! Only this user's regular files are touched: anything else under the
//! queue's names (a FIFO, a directory, another user's object) is skipped and
//! reported, never opened in a way that could block.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::liveness::{euid, process_exists, region_in_use, server_alive};
use crate::names::{lock_name, shm_file_name, validate_queue_name, ShmEntry};
use crate::semaphore::remove_semaphore;
use crate::shm_object::remove_shm;

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

fn collect_into(queue: &str, collected: &mut Collected) -> Result<()> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|e| Error::os_named("opendir", SHM_DIR, e))?;
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    // This user's regular files of the queue, each with whether it is past
    // the grace.
    let mut ours = Vec::new();
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
        ours.push((entry, path, old));
    }
    // Regions first: the pids with a region in use keep their semaphores.
    // Past the grace, a process with the creator's pid does not count: it
    // may be another one with a reused pid.
    let mut in_use = HashSet::new();
    for (entry, path, old) in &ours {
        let ShmEntry::Region { region, pid } = entry else { continue };
        match region_in_use(region, (!old).then_some(*pid)) {
            Ok(true) => {
                in_use.insert(*pid);
            }
            Ok(false) => {
                if remove_shm(region)? {
                    collected.removed.push(path.display().to_string());
                }
            }
            Err(e) => {
                // Not known to be dead: its creator's semaphores stay too.
                in_use.insert(*pid);
                collected.skipped.push(format!("{}: {e}", path.display()));
            }
        }
    }
    for (entry, path, old) in &ours {
        let ShmEntry::Semaphore { name, pid } = entry else { continue };
        let creator_may_be_starting = !old && process_exists(*pid);
        if !in_use.contains(pid) && !creator_may_be_starting && remove_semaphore(name)? {
            collected.removed.push(path.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    use super::*;
    use crate::names::{sem_file_name, SessionNames};
    use crate::semaphore::Semaphore;
    use crate::shm_region::{Geometry, Region};
    use crate::sys;

    fn unique_queue(tag: &str) -> String {
        format!("/sxleft_{tag}_{}_{:x}", std::process::id(), sys::random_u64().unwrap())
    }

    /// The pid of a process that has exited (and been reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A file in `/dev/shm` standing for a semaphore `name` of this user,
    /// made to look `age` old.
    fn semaphore_file(name: &str, age: Duration) -> std::path::PathBuf {
        let path = Path::new(SHM_DIR).join(sem_file_name(name));
        let file: File = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    #[test]
    fn a_dead_clients_semaphores_whose_region_never_came_are_collected() {
        let queue = unique_queue("orphan");
        let names = SessionNames::fresh(&queue, dead_pid()).unwrap();
        let items = semaphore_file(&names.items, Duration::ZERO);
        let spaces = semaphore_file(&names.spaces, Duration::ZERO);
        let collected = collect_dead_sessions(&queue).unwrap();
        assert!(!items.exists() && !spaces.exists(), "{collected:?}");
        let mut removed = collected.removed.clone();
        removed.sort();
        let mut expected = vec![items.display().to_string(), spaces.display().to_string()];
        expected.sort();
        assert_eq!(removed, expected);
    }

    #[test]
    fn the_semaphores_of_a_client_with_a_region_in_use_or_still_starting_stay() {
        let queue = unique_queue("live");
        let pid = std::process::id();
        // Old semaphores beside a locked region of their pid: a long session.
        let names = SessionNames::fresh(&queue, pid).unwrap();
        let region = Region::create(&names.region, Geometry::for_slots(2), pid).unwrap();
        let old_items = semaphore_file(&names.items, 2 * CREATION_GRACE);
        // A young semaphore of a live pid with no region yet: a client that
        // creates its semaphores first.
        let starting = SessionNames::fresh(&queue, pid).unwrap();
        let young = Semaphore::create_exclusive(&starting.items, 0).unwrap();
        let collected = collect_dead_sessions(&queue).unwrap();
        assert_eq!(collected, Collected::default());
        assert!(old_items.exists());
        // Once the region is gone, the old semaphore of the live pid (may be a
        // reused pid) is left over; the young one still is not.
        drop(region);
        let collected = collect_dead_sessions(&queue).unwrap();
        assert_eq!(collected.removed, vec![old_items.display().to_string()]);
        drop(young);
        assert_eq!(collect_dead_sessions(&queue).unwrap(), Collected::default());
    }

    #[test]
    fn a_dead_clients_region_and_semaphores_are_collected_each_by_its_own_name() {
        let queue = unique_queue("dead");
        let pid = dead_pid();
        let names = SessionNames::fresh(&queue, pid).unwrap();
        let region = Path::new(SHM_DIR).join(shm_file_name(&names.region));
        File::create_new(&region).unwrap();
        let items = semaphore_file(&names.items, Duration::ZERO);
        let collected = collect_dead_sessions(&queue).unwrap();
        assert!(!region.exists() && !items.exists(), "{collected:?}");
        assert_eq!(collected.removed.len(), 2, "{collected:?}");
    }
}
