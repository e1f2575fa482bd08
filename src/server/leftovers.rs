//! What dead processes of one queue left behind, and nothing that a live
//! process still uses — the POSIX counterpart of `ipcs`/`ipcrm`: the rules,
//! a running server's collection of dead sessions
//! ([`collect_dead_sessions`]), and `shm_server --cleanup` ([`cleanup`]),
//! which also removes a dead server's queue and lock.
//!
//! The queue and `<queue>.lock` are left over when no process holds the
//! lock's write lock.
//!
//! A session object is left over when its creator is gone for sure; whether
//! a process with the pid in its name exists is never asked (a client in
//! another pid namespace, a reused pid):
//! - a region `<queue>.<pid>.<16 hex>`: no process holds its write lock, and
//!   its header is published (a client locks its region before it publishes
//!   the header, and holds the lock while it lives) or it is older than
//!   [`CREATION_GRACE`] (the moment between a client's `shm_open` and its
//!   lock);
//! - a semaphore `<queue>.<pid>.<16 hex>.items` / `.spaces` (its random part
//!   is its own, so it names its creator, not its region): no region of the
//!   pid in its name may be in use, and either a dead region of that pid is
//!   at least as new as the semaphore (a client creates its semaphores
//!   before its region, so they were its), or the semaphore is older than
//!   [`CREATION_GRACE`]. A semaphore whose region is gone, or never came,
//!   is so collected too; the pid only groups objects, it is never asked
//!   whether such a process exists.
//!
//! Only this user's regular files are touched: anything else under the
//! queue's names (a FIFO, a directory, another user's object) is skipped and
//! reported, never opened in a way that could block.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::os::liveness::{euid, servers_of_this_user, DeadLock, Stale};
use crate::os::names::{lock_name, shm_file_name, validate_queue_name, ShmEntry, SHM_DIR};
use crate::os::queue::still_named;
use crate::os::semaphore::remove_semaphore;
use crate::os::shm_object::remove_shm;
use crate::shm_region::{region_state, RegionState};
use crate::text::quote_name;

/// How old an unlocked session object whose header is not published (or a
/// semaphore without its region) must be before it counts as left over.
pub const CREATION_GRACE: Duration = Duration::from_secs(10);

/// What a collection did, as lines to show: every name in them is quoted
/// as file names are quoted for people, as `ls` does (a queue name may hold
/// a newline).
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
                collected.removed.push(quote_name(&lock).into_owned());
            }
        }
        // No lock: a server creates its lock before its queue and removes
        // it after, so a queue seen while no lock is there is a dead one's.
        Ok(Stale::Absent) => remove_dead_queue(queue, &mut collected, || !lock_exists(queue))?,
        // A FIFO, a directory, another user's object or another program's
        // object named like the lock: left alone, and said so.
        Err(Error::BadObject { name, reason }) => {
            collected.skipped.push(format!("{}: {reason}", quote_name(&name)))
        }
        Err(e) => return Err(e),
    }
    collect_into(queue, &mut collected)?;
    Ok(collected)
}

/// [`cleanup`] for every queue of this user that has a server's lock
/// object in `/dev/shm` (as [`status_all`](crate::status::status_all) finds them): a dead server's queue
/// and lock go with its sessions' objects; a live server keeps its own and
/// loses only what its dead sessions left. Another user's objects are never
/// looked at. `shm_server --cleanup --all`.
///
/// # Errors
///
/// [`Error::Os`] when `/dev/shm` cannot be read or an object cannot be
/// removed.
pub fn cleanup_all() -> Result<Collected> {
    let mut collected = Collected::default();
    for server in servers_of_this_user()? {
        let one = cleanup(&server.queue)?;
        collected.removed.extend(one.removed);
        collected.skipped.extend(one.skipped);
    }
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
        Ok(()) => collected.removed.push(format!("queue {}", quote_name(queue))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::os_named("mq_unlink", queue, e)),
    }
    Ok(())
}

/// `path` as [`Collected`] shows it.
fn shown(path: &Path) -> String {
    quote_name(&path.to_string_lossy()).into_owned()
}

fn collect_into(queue: &str, collected: &mut Collected) -> Result<()> {
    let entries = std::fs::read_dir(SHM_DIR).map_err(|e| Error::os_named("opendir", SHM_DIR, e))?;
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    // This user's regular files of the queue, each with its mtime.
    let mut ours = Vec::new();
    for file_name in names {
        let Some(entry) = ShmEntry::parse(queue, &file_name) else { continue };
        let path = Path::new(SHM_DIR).join(&file_name);
        let Ok(meta) = path.symlink_metadata() else { continue };
        if !meta.file_type().is_file() || meta.uid() != euid() {
            if !matches!(entry, ShmEntry::Lock) {
                collected.skipped.push(format!("{}: not a regular file of this user", shown(&path)));
            }
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        ours.push((entry, path, modified));
    }
    let old =
        |modified: &SystemTime| SystemTime::now().duration_since(*modified).ok() >= Some(CREATION_GRACE);
    // Regions first. Per pid: whether a region may be in use (its
    // semaphores stay), and the newest dead region (semaphores no newer than
    // it were its creator's: they are made before the region).
    let mut in_use = HashSet::new();
    let mut newest_dead: HashMap<u32, SystemTime> = HashMap::new();
    for (entry, path, modified) in &ours {
        let ShmEntry::Region { region, pid } = entry else { continue };
        match region_state(region, old(modified)) {
            Ok(RegionState::Dead) => {
                if remove_shm(region)? {
                    collected.removed.push(shown(path));
                }
                let newest = newest_dead.entry(*pid).or_insert(*modified);
                *newest = (*newest).max(*modified);
            }
            Ok(RegionState::Gone) => {}
            Ok(RegionState::MayBeInUse) => {
                in_use.insert(*pid);
            }
            Err(e) => {
                // Not known to be dead: its creator's semaphores stay too.
                in_use.insert(*pid);
                collected.skipped.push(format!("{}: {e}", shown(path)));
            }
        }
    }
    for (entry, path, modified) in &ours {
        let ShmEntry::Semaphore { name, pid } = entry else { continue };
        if in_use.contains(pid) {
            continue;
        }
        let came_before_a_dead_region = newest_dead.get(pid).is_some_and(|dead| modified <= dead);
        if (came_before_a_dead_region || old(modified)) && remove_semaphore(name)? {
            collected.removed.push(shown(path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::{File, OpenOptions};
    use std::os::unix::fs::OpenOptionsExt;

    use super::*;
    use crate::os::names::{sem_file_name, SessionNames};
    use crate::os::semaphore::Semaphore;
    use crate::os::shm_object::ShmObject;
    use crate::os::sys;
    use crate::shm_region::{Geometry, Region};

    fn unique_queue(tag: &str) -> String {
        format!("/sxleft_{tag}_{}_{:x}", std::process::id(), sys::random_u64().unwrap())
    }

    /// A region name of a queue of its own, with the pid of this (live)
    /// process: the pid must not matter.
    fn region_of(tag: &str) -> (String, String) {
        let queue = unique_queue(tag);
        let region = format!("{queue}.{}.{:016x}", std::process::id(), sys::random_u64().unwrap());
        (queue, region)
    }

    /// An object under `region` as a client leaves it: `published` says
    /// whether its header's magic is there.
    fn left_region(region: &str, published: bool) -> ShmObject {
        let mut obj = ShmObject::create_exclusive(region, 4096).unwrap();
        if published {
            let magic = u32::from_le_bytes(*b"SXR1").to_ne_bytes();
            let mut bytes = vec![0u8; 4096];
            bytes[..4].copy_from_slice(&magic);
            obj.replace_contents(&bytes).unwrap();
        }
        obj.disown();
        obj
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
    fn names_in_what_a_cleanup_did_are_quoted_so_each_stays_one_line() {
        let queue = format!("{}\nremoved forged.lock", unique_queue("newline"));
        let name = lock_name(&queue);
        ShmObject::create_exclusive(&name, 0).unwrap().disown(); // a dead server's
        let collected = cleanup(&queue).unwrap();
        let lock = format!("{SHM_DIR}/{}", shm_file_name(&name));
        assert_eq!(collected.removed, vec![quote_name(&lock).into_owned()]);
        assert!(!collected.removed[0].contains('\n'), "{collected:?}");
    }

    #[test]
    fn a_fresh_region_without_a_lock_or_a_header_is_left_alone_whatever_its_pid() {
        // A client between its shm_open and its lock (or one in another pid
        // namespace): never removed within the grace.
        let (queue, region) = region_of("fresh");
        drop(left_region(&region, false));
        let collected = collect_dead_sessions(&queue).unwrap();
        assert!(collected.removed.is_empty(), "{collected:?}");
        assert_eq!(region_state(&region, false).unwrap(), RegionState::MayBeInUse);
        assert_eq!(region_state(&region, true).unwrap(), RegionState::Dead, "past the grace it is dead");
        remove_shm(&region).unwrap();
    }

    #[test]
    fn a_published_region_whose_lock_is_free_is_collected_and_a_locked_one_is_not() {
        let (queue, region) = region_of("published");
        let held = left_region(&region, true);
        assert!(sys::try_lock_exclusive(&held).unwrap());
        assert!(collect_dead_sessions(&queue).unwrap().removed.is_empty(), "its creator holds the lock");
        drop(held); // the creator dies: the lock goes, the name stays
        let collected = collect_dead_sessions(&queue).unwrap();
        assert_eq!(collected.removed.len(), 1, "{collected:?}");
        assert_eq!(region_state(&region, false).unwrap(), RegionState::Gone);
    }

    #[test]
    fn a_dead_clients_semaphores_whose_region_never_came_are_collected_past_the_grace() {
        let queue = unique_queue("orphan");
        let names = SessionNames::fresh(&queue, std::process::id()).unwrap();
        let young = semaphore_file(&names.items, Duration::ZERO);
        let items = semaphore_file(&names.spaces, 2 * CREATION_GRACE);
        let collected = collect_dead_sessions(&queue).unwrap();
        assert_eq!(
            collected.removed,
            vec![items.display().to_string()],
            "the young one may be a client starting"
        );
        assert!(young.exists());
        std::fs::remove_file(young).unwrap();
    }

    #[test]
    fn the_semaphores_of_a_client_with_a_region_in_use_stay() {
        let queue = unique_queue("live");
        let pid = std::process::id();
        // Old semaphores beside a locked region of their pid: a long session.
        let names = SessionNames::fresh(&queue, pid).unwrap();
        let region = Region::create(&names.region, Geometry::for_slots(2), pid).unwrap();
        let old_items = semaphore_file(&names.items, 2 * CREATION_GRACE);
        // A young semaphore of the same pid with no region yet: a client
        // that creates its semaphores first.
        let starting = SessionNames::fresh(&queue, pid).unwrap();
        let young = Semaphore::create_exclusive(&starting.items, 0).unwrap();
        assert_eq!(collect_dead_sessions(&queue).unwrap(), Collected::default());
        assert!(old_items.exists());
        // Once the region is gone, the old semaphore is left over; the young
        // one still is not.
        drop(region);
        let collected = collect_dead_sessions(&queue).unwrap();
        assert_eq!(collected.removed, vec![old_items.display().to_string()]);
        drop(young);
        assert_eq!(collect_dead_sessions(&queue).unwrap(), Collected::default());
    }

    #[test]
    fn a_dead_clients_semaphores_go_with_its_dead_region_at_once_but_newer_ones_stay() {
        let queue = unique_queue("dead");
        let pid = std::process::id();
        let names = SessionNames::fresh(&queue, pid).unwrap();
        let items = semaphore_file(&names.items, Duration::from_secs(1));
        drop(left_region(&names.region, true)); // published, unlocked: dead
                                                // A later client of the same pid (reused) that has made only its
                                                // semaphores so far: newer than the dead region.
        std::thread::sleep(Duration::from_millis(20));
        let later = SessionNames::fresh(&queue, pid).unwrap();
        let newer = semaphore_file(&later.items, Duration::ZERO);
        let mut collected = collect_dead_sessions(&queue).unwrap();
        collected.removed.sort();
        let region = Path::new(SHM_DIR).join(shm_file_name(&names.region));
        let mut expected = vec![region.display().to_string(), items.display().to_string()];
        expected.sort();
        assert_eq!(collected.removed, expected);
        assert!(newer.exists(), "a semaphore newer than the dead region is not its");
        std::fs::remove_file(newer).unwrap();
    }
}
