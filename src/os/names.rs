//! Every object name of the project, in one place: the queue, the server's
//! lock object, a session's region and semaphores; how each is built from the
//! queue name, validated and parsed back.
//!
//! ```text
//! /shmxfer                                   the command queue (mq)
//! /shmxfer.lock                              the server's liveness lock  (/dev/shm/shmxfer.lock)
//! /shmxfer.<pid>.<16 hex: R>                 a client's region           (/dev/shm/shmxfer.<pid>.<R>)
//! /shmxfer.<pid>.<16 hex: I>.items           its "frame ready" semaphore (/dev/shm/sem.shmxfer.<pid>.<I>.items)
//! /shmxfer.<pid>.<16 hex: S>.spaces          its "slot free" semaphore   (/dev/shm/sem.shmxfer.<pid>.<S>.spaces)
//! ```
//!
//! R, I and S are drawn independently ([`SessionNames::fresh`]): no name of
//! a session can be derived from another one already visible in `/dev/shm`,
//! so a local user who watches it cannot create a session's name first. A
//! name found taken is replaced by a fresh one ([`create_under_fresh_name`]),
//! never opened. The server learns all three names from the client's `Open`
//! message and accepts them only in these forms, for that client's pid
//! ([`SessionNames::of_client`]).
//!
//! Names derived from a queue keep its stem and the creator's pid, so that
//! leftovers can be traced to their queue and their creator, each object by
//! its own name, and collected by the queue's next server.

use std::ffi::CString;

use crate::error::{Error, Result};
use crate::os::sys;

/// The queue both programs use unless told otherwise.
pub const DEFAULT_QUEUE: &str = "/shmxfer";
/// The environment variable that overrides [`DEFAULT_QUEUE`] on both sides.
pub const QUEUE_ENV: &str = "SHMXFER_QUEUE";

/// The queue the environment names: [`QUEUE_ENV`] when set, else
/// [`DEFAULT_QUEUE`]. A value that is not UTF-8 is never taken for unset
/// (the programs refuse it): its bad bytes become U+FFFD, a queue no server
/// of the programs serves, so that a client finds no server rather than
/// another server's files.
pub fn queue_from_env() -> String {
    queue_from(std::env::var_os(QUEUE_ENV))
}

/// [`queue_from_env`] of the variable's value.
fn queue_from(value: Option<std::ffi::OsString>) -> String {
    match value {
        Some(value) => value.to_string_lossy().into_owned(),
        None => DEFAULT_QUEUE.to_owned(),
    }
}

/// Where Linux shows POSIX shared-memory objects and named semaphores.
pub const SHM_DIR: &str = "/dev/shm";

pub use crate::protocol::MAX_NAME_LEN;

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

/// How many names a creation draws before it gives up: each one taken (a
/// local user may create a name it has seen, never one it cannot predict)
/// is replaced by a fresh one.
pub const MAX_NAME_TRIES: usize = 8;

/// One of the three objects of a session; each has a name of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionObject {
    /// The shared region: `<queue>.<pid>.<16 hex>`.
    Region,
    /// The "a frame is ready" semaphore: `<queue>.<pid>.<16 hex>.items`.
    Items,
    /// The "a slot is free" semaphore: `<queue>.<pid>.<16 hex>.spaces`.
    Spaces,
}

impl SessionObject {
    /// What the name of this object ends with after its random part.
    fn suffix(self) -> &'static str {
        match self {
            SessionObject::Region => "",
            SessionObject::Items => ITEMS_SUFFIX,
            SessionObject::Spaces => SPACES_SUFFIX,
        }
    }

    /// A fresh, unguessable name of this object for a session of process
    /// `pid` on `queue`: `<queue>.<pid>.<16 hex><suffix>`, the random part
    /// drawn for this name alone.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the kernel gives no random bytes.
    pub fn fresh_name(self, queue: &str, pid: u32) -> Result<String> {
        let random = sys::random_u64().map_err(|e| Error::os("getrandom", e))?;
        Ok(format!("{queue}.{pid}.{random:016x}{}", self.suffix()))
    }

    /// The pid named in `name` when it has exactly the form of this object's
    /// names on `queue`.
    pub fn pid_in(self, queue: &str, name: &str) -> Option<u32> {
        let rest = name.strip_prefix(queue)?.strip_prefix('.')?.strip_suffix(self.suffix())?;
        parse_session_suffix(rest)
    }
}

/// Creates an object under a fresh name of `object` (`create` is called with
/// the name and must create exclusively, `O_EXCL`), drawing a new name each
/// time one is found taken (`EEXIST`), at most [`MAX_NAME_TRIES`] names.
/// An object found under a name is never opened: whoever made it keeps it.
///
/// # Errors
///
/// What `create` returned for the last name tried, or any other error at
/// once.
pub fn create_under_fresh_name<T>(
    object: SessionObject,
    queue: &str,
    pid: u32,
    mut create: impl FnMut(&str) -> Result<T>,
) -> Result<(String, T)> {
    let mut tries = 0;
    loop {
        let name = object.fresh_name(queue, pid)?;
        tries += 1;
        match create(&name) {
            Ok(made) => return Ok((name, made)),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) && tries < MAX_NAME_TRIES => {
                log::debug!("{name} is taken; drawing another name");
            }
            Err(e) => return Err(e),
        }
    }
}

/// The object names of one client session: each of the form of its object
/// (see the fields), with a random part of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNames {
    /// The region: `<queue>.<pid>.<16 hex digits>`.
    pub region: String,
    /// The "a frame is ready" semaphore: `<queue>.<pid>.<16 hex digits>.items`.
    pub items: String,
    /// The "a slot is free" semaphore: `<queue>.<pid>.<16 hex digits>.spaces`.
    pub spaces: String,
}

impl SessionNames {
    /// Fresh, unguessable names for a session of process `pid` on `queue`,
    /// a random part drawn for each. (A client creates its objects with
    /// [`create_under_fresh_name`], which draws again for a name found taken.)
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the kernel gives no random bytes.
    pub fn fresh(queue: &str, pid: u32) -> Result<SessionNames> {
        Ok(SessionNames {
            region: SessionObject::Region.fresh_name(queue, pid)?,
            items: SessionObject::Items.fresh_name(queue, pid)?,
            spaces: SessionObject::Spaces.fresh_name(queue, pid)?,
        })
    }

    /// The names an `Open` message of process `pid` gave, when each has
    /// exactly the form of its object on `queue` with that pid; `None`
    /// otherwise. The server maps and opens nothing else.
    pub fn of_client(
        queue: &str,
        pid: u32,
        region: String,
        items: String,
        spaces: String,
    ) -> Option<SessionNames> {
        let ours = |object: SessionObject, name: &str| object.pid_in(queue, name) == Some(pid);
        (ours(SessionObject::Region, &region)
            && ours(SessionObject::Items, &items)
            && ours(SessionObject::Spaces, &spaces))
        .then_some(SessionNames { region, items, spaces })
    }

    /// The pid named in a region name of `queue`, when `region` has exactly
    /// the form `<queue>.<pid>.<16 hex digits>`. The server maps, and
    /// leftovers are collected, only for names of this form.
    pub fn region_pid(queue: &str, region: &str) -> Option<u32> {
        SessionObject::Region.pid_in(queue, region)
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
    /// A session semaphore (`sem.<queue>.<pid>.<16 hex>.items` or
    /// `.spaces`), with the object name of the semaphore and its creator's
    /// pid (its region has a name of its own, not derived from this one).
    Semaphore { name: String, pid: u32 },
}

impl ShmEntry {
    /// Classifies the `/dev/shm` file name `file_name` for `queue`; `None`
    /// when it is not an object of this queue.
    pub fn parse(queue: &str, file_name: &str) -> Option<ShmEntry> {
        let Some(sem) = file_name.strip_prefix("sem.") else {
            let name = format!("/{file_name}");
            if name == lock_name(queue) {
                return Some(ShmEntry::Lock);
            }
            let pid = SessionNames::region_pid(queue, &name)?;
            return Some(ShmEntry::Region { region: name, pid });
        };
        let name = format!("/{sem}");
        let pid =
            [SessionObject::Items, SessionObject::Spaces].into_iter().find_map(|o| o.pid_in(queue, &name))?;
        Some(ShmEntry::Semaphore { name, pid })
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
    fn a_queue_from_the_environment_that_is_not_utf8_is_not_the_default() {
        use std::os::unix::ffi::OsStringExt;
        assert_eq!(queue_from(None), DEFAULT_QUEUE);
        assert_eq!(queue_from(Some("/mine".into())), "/mine");
        assert_eq!(queue_from(Some("".into())), "", "an empty value is refused later, as the programs do");
        let bad = std::ffi::OsString::from_vec(b"/mine\xff".to_vec());
        assert_eq!(queue_from(Some(bad)), "/mine\u{FFFD}");
    }

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
        let spaces = format!("{longest}.4294967295.0123456789abcdef.spaces");
        assert_eq!(SessionObject::Spaces.pid_in(&longest, &spaces), Some(u32::MAX));
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
            Some(ShmEntry::Semaphore { name: "/q.7.00000000000000ff.items".into(), pid: 7 })
        );
        assert_eq!(
            ShmEntry::parse(q, "sem.q.8.0123456789abcdef.spaces"),
            Some(ShmEntry::Semaphore { name: "/q.8.0123456789abcdef.spaces".into(), pid: 8 })
        );
        for other in [
            "qq.lock",
            "sem.q.lock",
            "q.7.ff",
            "sem.q.7.00000000000000ff.other",
            "sem.q.7.00000000000000ff",
            "q.7.00000000000000ff.items",
            "sem.q.7.00000000000000ff.items.spaces",
            "r.7.00000000000000ff",
        ] {
            assert_eq!(ShmEntry::parse(q, other), None, "{other}");
        }
    }

    /// The random part of a session name: the 16 hex digits after the pid.
    fn random_part(name: &str) -> &str {
        let rest =
            name.strip_suffix(ITEMS_SUFFIX).or_else(|| name.strip_suffix(SPACES_SUFFIX)).unwrap_or(name);
        &rest[rest.len() - 16..]
    }

    #[test]
    fn fresh_session_names_have_random_parts_of_their_own() {
        let (q, pid) = ("/q", 42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..64 {
            let names = SessionNames::fresh(q, pid).unwrap();
            assert_eq!(SessionObject::Region.pid_in(q, &names.region), Some(pid), "{names:?}");
            assert_eq!(SessionObject::Items.pid_in(q, &names.items), Some(pid), "{names:?}");
            assert_eq!(SessionObject::Spaces.pid_in(q, &names.spaces), Some(pid), "{names:?}");
            // Neither semaphore can be derived from the region's name.
            assert_ne!(names.items, format!("{}{ITEMS_SUFFIX}", names.region));
            assert_ne!(names.spaces, format!("{}{SPACES_SUFFIX}", names.region));
            // No random part is shared, within a session or across sessions.
            for name in [&names.region, &names.items, &names.spaces] {
                assert!(seen.insert(random_part(name).to_owned()), "{name} repeats a random part");
            }
            assert!(SessionNames::of_client(q, pid, names.region, names.items, names.spaces).is_some());
        }
    }

    #[test]
    fn open_names_are_accepted_only_in_their_own_form_for_the_clients_pid() {
        let ok = |r: &str, i: &str, s: &str| SessionNames::of_client("/q", 12, r.into(), i.into(), s.into());
        let (r, i, s) =
            ("/q.12.0123456789abcdef", "/q.12.00000000000000aa.items", "/q.12.00000000000000bb.spaces");
        assert_eq!(ok(r, i, s), Some(SessionNames { region: r.into(), items: i.into(), spaces: s.into() }));
        for (r2, i2, s2) in [
            ("/q.13.0123456789abcdef", i, s),
            (r, "/q.13.00000000000000aa.items", s),
            (r, i, "/q.13.00000000000000bb.spaces"),
            (r, "/q.12.00000000000000aa.spaces", s),
            (r, i, "/q.12.00000000000000bb.items"),
            (r, "/q.12.00000000000000aa", s),
            (r, "/r.12.00000000000000aa.items", s),
            (r, "/q.lock", s),
            (i, i, s),
        ] {
            assert_eq!(ok(r2, i2, s2), None, "{r2} {i2} {s2}");
        }
    }

    #[test]
    fn a_taken_name_is_replaced_by_a_fresh_one_a_bounded_number_of_times() {
        let taken = || Err::<(), _>(Error::os("shm_open", std::io::Error::from_raw_os_error(libc::EEXIST)));
        let mut tried = Vec::new();
        let (name, ()) = create_under_fresh_name(SessionObject::Items, "/q", 3, |name| {
            tried.push(name.to_owned());
            if tried.len() < 3 {
                taken()
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(tried.len(), 3);
        assert_eq!(tried.last(), Some(&name));
        assert_eq!(tried.iter().collect::<std::collections::HashSet<_>>().len(), 3, "{tried:?}");
        let mut calls = 0;
        let err = create_under_fresh_name(SessionObject::Region, "/q", 3, |_| {
            calls += 1;
            taken()
        })
        .unwrap_err();
        assert_eq!((calls, err.raw_os_error()), (MAX_NAME_TRIES, Some(libc::EEXIST)));
        // Any other error ends the creation at once.
        let mut calls = 0;
        let err = create_under_fresh_name(SessionObject::Spaces, "/q", 3, |_| {
            calls += 1;
            Err::<(), _>(Error::os("shm_open", std::io::Error::from_raw_os_error(libc::EACCES)))
        })
        .unwrap_err();
        assert_eq!((calls, err.raw_os_error()), (1, Some(libc::EACCES)));
    }
}
