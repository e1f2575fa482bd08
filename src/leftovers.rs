//! Finding and removing what dead sessions of one queue left in `/dev/shm`,
//! with the liveness rules below; used by `--cleanup` and by a running
//! server, which collects by itself.
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
use crate::liveness::{euid, process_exists, region_in_use};
use crate::names::{shm_file_name, SessionNames, ShmEntry};
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

pub(crate) fn collect_into(queue: &str, collected: &mut Collected) -> Result<()> {
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
        match entry {
            ShmEntry::Lock => {}
            ShmEntry::Region { region, pid } => match region_in_use(&region, if old { 0 } else { pid }) {
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
