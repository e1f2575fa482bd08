//! Every object name of the project, in one place: the queue, the server's
//! lock object, a session's region and semaphores; how each is built from the
//! queue name, validated and parsed back.
//!
//! ```text
//! /shmxfer                                   the command queue (mq)
//! /shmxfer.lock                              the server's liveness lock  (/dev/shm/shmxfer.lock)
//! /shmxfer.<pid>.<16 hex>                    a client's region           (/dev/shm/shmxfer.<pid>.<hex>)
//! /shmxfer.<pid>.<16 hex>.items              its "frame ready" semaphore (/dev/shm/sem.shmxfer.…)
//! /shmxfer.<pid>.<16 hex>.spaces             its "slot free" semaphore
//! ```
//!
//! Names derived from a queue keep its stem, so that leftovers can be traced
//! to their queue and collected by its next server.

use std::ffi::CString;

use crate::error::{Error, Result};
use crate::sys;

/// Longest object name (region, semaphore, queue) including the leading `/`.
/// Linux allows 255 bytes for a file name in `/dev/shm`; semaphores lose four
/// of them to the `sem.` prefix, and one more is kept spare.
pub const MAX_NAME_LEN: usize = 250;

/// What a session adds to the queue name at most: `.<pid>.<16 hex>.spaces`.
const LONGEST_SESSION_SUFFIX: &str = ".4294967295.0123456789abcdef.spaces";

/// Longest queue name: what is left of [`MAX_NAME_LEN`] once the longest
/// session suffix is added.
pub const MAX_QUEUE_LEN: usize = MAX_NAME_LEN - LONGEST_SESSION_SUFFIX.len();

/// Suffix of the server's lock object.
const LOCK_SUFFIX: &str = ".lock";
/// Suffixes of a session's two semaphores.
const ITEMS_SUFFIX: &str = ".items";
const SPACES_SUFFIX: &str = ".spaces";

/// Checks a POSIX IPC object name: a leading `/`, no other `/`, no NUL, not
/// `/`, `/.` or `/..`, at most [`MAX_NAME_LEN`] bytes. Returns it as a C
/// string for the calls that take one.
///
/// # Errors
///
/// [`Error::InvalidName`] saying what is wrong.
pub fn validate_name(name: &str) -> Result<CString> {
    check_shape(name, MAX_NAME_LEN)?;
    CString::new(name).map_err(|_| invalid(name, "must not contain NUL"))
}

/// Checks a queue name: an object name short enough to leave room for the
/// session objects derived from it ([`MAX_QUEUE_LEN`] bytes).
///
/// # Errors
///
/// [`Error::InvalidName`] saying what is wrong.
pub fn validate_queue_name(queue: &str) -> Result<()> {
    check_shape(queue, MAX_QUEUE_LEN)?;
    if queue.contains('\0') {
        return Err(invalid(queue, "must not contain NUL"));
    }
    Ok(())
}

fn check_shape(name: &str, max: usize) -> Result<()> {
    if !name.starts_with('/') {
        return Err(invalid(name, "must start with '/'"));
    }
    if name[1..].contains('/') {
        return Err(invalid(name, "must not contain '/' after the first character"));
    }
    if matches!(name, "/" | "/." | "/..") {
        return Err(invalid(name, "needs a name after '/'"));
    }
    if name.len() > max {
        return Err(invalid(name, &format!("is {} bytes, at most {max} allowed", name.len())));
    }
    Ok(())
}

fn invalid(name: &str, reason: &str) -> Error {
    Error::InvalidName { name: name.to_owned(), reason: reason.to_owned() }
}

/// The name of the liveness lock object of `queue`: `<queue>.lock`.
pub fn lock_name(queue: &str) -> String {
    format!("{queue}{LOCK_SUFFIX}")
}

/// The object names of one client session, all derived from its queue name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNames {
    /// The region: `<queue>.<pid>.<16 hex digits>`.
    pub region: String,
    /// The "a frame is ready" semaphore: `<region>.items`.
    pub items: String,
    /// The "a slot is free" semaphore: `<region>.spaces`.
    pub spaces: String,
}

impl SessionNames {
    /// Fresh, unguessable names for a session of process `pid` on `queue`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the kernel gives no random bytes.
    pub fn fresh(queue: &str, pid: u32) -> Result<SessionNames> {
        let random = sys::random_u64().map_err(|e| Error::os("getrandom", e))?;
        Ok(SessionNames::for_region(&format!("{queue}.{pid}.{random:016x}")))
    }

    /// The semaphore names that belong to `region`.
    pub fn for_region(region: &str) -> SessionNames {
        SessionNames {
            region: region.to_owned(),
            items: format!("{region}{ITEMS_SUFFIX}"),
            spaces: format!("{region}{SPACES_SUFFIX}"),
        }
    }

    /// The pid named in a region name of `queue`, when `region` has exactly
    /// the form `<queue>.<pid>.<16 hex digits>`. The server maps, and
    /// leftovers are collected, only for names of this form.
    pub fn region_pid(queue: &str, region: &str) -> Option<u32> {
        parse_session_suffix(region.strip_prefix(queue)?.strip_prefix('.')?)
    }

    /// Whether `region` is a session region of `queue` created by `pid`.
    pub fn is_session_of(queue: &str, pid: u32, region: &str) -> bool {
        SessionNames::region_pid(queue, region) == Some(pid)
    }
}

/// What one entry of `/dev/shm` is, as far as the objects of one queue go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShmEntry {
    /// `<queue>.lock`: the server's lock object.
    Lock,
    /// A session region, with its creator's pid.
    Region { region: String, pid: u32 },
    /// A session semaphore (`sem.<region>.items` or `.spaces`), with the
    /// object name of the semaphore, its region's name and the creator's pid.
    Semaphore { name: String, region: String, pid: u32 },
}

impl ShmEntry {
    /// Classifies the `/dev/shm` file name `file_name` for `queue`; `None`
    /// when it is not an object of this queue.
    pub fn parse(queue: &str, file_name: &str) -> Option<ShmEntry> {
        let name = format!("/{}", file_name.strip_prefix("sem.").unwrap_or(file_name));
        let is_sem = file_name.starts_with("sem.");
        if !is_sem && name == lock_name(queue) {
            return Some(ShmEntry::Lock);
        }
        if !is_sem {
            let pid = SessionNames::region_pid(queue, &name)?;
            return Some(ShmEntry::Region { region: name, pid });
        }
        let region = name.strip_suffix(ITEMS_SUFFIX).or_else(|| name.strip_suffix(SPACES_SUFFIX))?;
        let pid = SessionNames::region_pid(queue, region)?;
        Some(ShmEntry::Semaphore { region: region.to_owned(), name, pid })
    }
}

/// `<pid>.<16 hex digits>` → pid.
fn parse_session_suffix(s: &str) -> Option<u32> {
    let (pid, random) = s.split_once('.')?;
    if random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The `/dev/shm` file name of the shared-memory object `name`.
pub fn shm_file_name(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// Where the shared-memory object `name` shows in the file system, for
/// messages that tell a person what to look at or remove.
pub fn shm_path(name: &str) -> String {
    format!("/dev/shm/{}", shm_file_name(name))
}

/// The `/dev/shm` file name of the named semaphore `name`.
pub fn sem_file_name(name: &str) -> String {
    format!("sem.{}", shm_file_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_validated() {
        for bad in ["noslash", "/a/b", "/", "/..", "/a\0b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_name(&format!("/{}", "x".repeat(300))).is_err());
        assert!(validate_name("/shmxfer").is_ok());
    }

    #[test]
    fn queue_names_leave_room_for_the_longest_session_object() {
        let longest = format!("/{}", "q".repeat(MAX_QUEUE_LEN - 1));
        validate_queue_name(&longest).unwrap();
        let spaces = SessionNames::for_region(&format!("{longest}.4294967295.0123456789abcdef")).spaces;
        assert!(validate_name(&spaces).is_ok());
        assert_eq!(MAX_QUEUE_LEN, 215);
        // Every over-long name is told the queue limit, not the object limit.
        for len in [MAX_QUEUE_LEN + 1, 220, 301] {
            let err = validate_queue_name(&format!("/{}", "q".repeat(len - 1))).unwrap_err().to_string();
            assert!(err.contains(&format!("is {len} bytes, at most {MAX_QUEUE_LEN} allowed")), "{err}");
        }
    }

    #[test]
    fn only_session_names_of_this_queue_and_pid_are_accepted() {
        assert!(SessionNames::is_session_of("/q", 12, "/q.12.0123456789abcdef"));
        for bad in [
            "/q.13.0123456789abcdef",
            "/q.12.0123",
            "/r.12.0123456789abcdef",
            "/q.lock",
            "/q.12.0123456789abcdeg",
            "/q.x.0123456789abcdef",
            "/q..0123456789abcdef",
        ] {
            assert!(!SessionNames::is_session_of("/q", 12, bad), "{bad}");
        }
    }

    #[test]
    fn shm_entries_are_classified_per_queue() {
        let q = "/q";
        assert_eq!(ShmEntry::parse(q, "q.lock"), Some(ShmEntry::Lock));
        assert_eq!(
            ShmEntry::parse(q, "q.7.00000000000000ff"),
            Some(ShmEntry::Region { region: "/q.7.00000000000000ff".into(), pid: 7 })
        );
        assert_eq!(
            ShmEntry::parse(q, "sem.q.7.00000000000000ff.items"),
            Some(ShmEntry::Semaphore {
                name: "/q.7.00000000000000ff.items".into(),
                region: "/q.7.00000000000000ff".into(),
                pid: 7
            })
        );
        for other in
            ["qq.lock", "sem.q.lock", "q.7.ff", "sem.q.7.00000000000000ff.other", "r.7.00000000000000ff"]
        {
            assert_eq!(ShmEntry::parse(q, other), None, "{other}");
        }
    }
}
