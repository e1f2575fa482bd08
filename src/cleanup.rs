//! `shm_server --cleanup`: removes what dead servers and dead clients of one
//! queue left behind, and nothing that a live process still uses — the POSIX
//! counterpart of `ipcs`/`ipcrm`.
//!
//! An object is left over when its creator is gone:
//! - the queue and `<queue>.lock`: no process holds the lock's write lock;
//! - a region `<queue>.<pid>.<16 hex>`: no process holds its write lock and
//!   process `pid` does not exist (the second test covers the instant between
//!   a client creating the region and locking it);
//! - a semaphore `<region>.items` / `<region>.spaces`: its region is gone and
//!   process `pid` does not exist.

use std::path::Path;

use crate::error::{Error, Result};
use crate::server::{lock_name, validate_queue_name};
use crate::shm_region::{unlink_semaphore, unlink_shm, ShmObject};
use crate::sys;

/// Where Linux shows POSIX shared-memory objects and named semaphores.
pub const SHM_DIR: &str = "/dev/shm";

/// Removes the leftovers of `queue` and returns a description of each object
/// removed (`/dev/shm/...` paths, and `queue /name` for the queue).
///
/// # Errors
///
/// [`Error::InvalidName`] for a bad queue name; [`Error::Os`] when `/dev/shm`
/// cannot be read or an object cannot be removed.
pub fn cleanup(queue: &str) -> Result<Vec<String>> {
    validate_queue_name(queue)?;
    let base = &queue[1..];
    let mut removed = Vec::new();

    let lock = lock_name(queue);
    let server_alive = match ShmObject::open(&lock, false) {
        Ok(obj) => sys::is_write_locked(&obj).map_err(|e| Error::os_named("fcntl(F_OFD_GETLK)", &lock, e))?,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
        Err(e) => return Err(e),
    };
    if !server_alive {
        match posixmq::remove_queue(queue) {
            Ok(()) => removed.push(format!("queue {queue}")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(Error::os_named("mq_unlink", queue, e)),
        }
        if forget(unlink_shm(&lock))? {
            removed.push(format!("{SHM_DIR}/{}", &lock[1..]));
        }
    }

    let entries = std::fs::read_dir(SHM_DIR).map_err(|e| Error::os_named("opendir", SHM_DIR, e))?;
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for entry in names {
        if let Some((pid, _)) =
            entry.strip_prefix(base).and_then(|r| r.strip_prefix('.')).and_then(parse_session)
        {
            let region = format!("/{entry}");
            if region_in_use(&region, pid)? {
                continue;
            }
            if forget(unlink_shm(&region))? {
                removed.push(format!("{SHM_DIR}/{entry}"));
            }
            for suffix in ["items", "spaces"] {
                if forget(unlink_semaphore(&format!("{region}.{suffix}")))? {
                    removed.push(format!("{SHM_DIR}/sem.{entry}.{suffix}"));
                }
            }
        } else if let Some(rest) =
            entry.strip_prefix("sem.").and_then(|r| r.strip_prefix(base)).and_then(|r| r.strip_prefix('.'))
        {
            let Some(session) = rest.strip_suffix(".items").or_else(|| rest.strip_suffix(".spaces")) else {
                continue;
            };
            let Some((pid, _)) = parse_session(session) else { continue };
            let region_exists = Path::new(SHM_DIR).join(format!("{base}.{session}")).exists();
            if region_exists || process_exists(pid) {
                continue;
            }
            if forget(unlink_semaphore(&format!("/{}", &entry[4..])))? {
                removed.push(format!("{SHM_DIR}/{entry}"));
            }
        }
    }
    Ok(removed)
}

/// `<pid>.<16 hex digits>` → pid.
fn parse_session(s: &str) -> Option<(u32, u64)> {
    let (pid, random) = s.split_once('.')?;
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((pid.parse().ok()?, u64::from_str_radix(random, 16).ok()?))
}

fn region_in_use(region: &str, pid: u32) -> Result<bool> {
    let obj = match ShmObject::open(region, false) {
        Ok(obj) => obj,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(e),
    };
    let locked = sys::is_write_locked(&obj).map_err(|e| Error::os_named("fcntl(F_OFD_GETLK)", region, e))?;
    Ok(locked || process_exists(pid))
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true, // EPERM: it exists, it is just not ours
    }
}

/// Ok(true) when removed, Ok(false) when it was already gone.
fn forget(res: Result<()>) -> Result<bool> {
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_suffixes_parse_strictly() {
        assert_eq!(parse_session("12.00000000000000ff"), Some((12, 255)));
        for bad in ["12.ff", "x.00000000000000ff", ".00000000000000ff", "12.00000000000000fg", "lock"] {
            assert_eq!(parse_session(bad), None, "{bad}");
        }
    }
}
