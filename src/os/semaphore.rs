//! A named POSIX semaphore, open: created in place under its final name by
//! its creator, opened by name by the peer; posted, tried and waited on with
//! a monotonic deadline.

use std::ffi::CString;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::os::names::validate_name;
use crate::os::owned_name::{self, ObjectKind, OnDrop, OwnedName};
use crate::os::shm_object::ShmObject;
use crate::os::sys::{self, SemHandle};

/// Removes the named semaphore `name`: `Ok(false)` when there was none.
///
/// # Errors
///
/// [`Error::Os`] from `sem_unlink` other than `ENOENT`.
pub fn remove_semaphore(name: &str) -> Result<bool> {
    owned_name::unlink(ObjectKind::Semaphore, name)
}

/// A named POSIX semaphore, open. The creator unlinks it on drop.
#[derive(Debug)]
pub struct Semaphore {
    // Declared first: the semaphore is closed before its name (if ours) is
    // unlinked.
    sem: SemHandle,
    name: OwnedName,
}

/// What a timed wait on a semaphore ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The count was decremented.
    Acquired,
    /// The time ran out.
    TimedOut,
    /// A signal arrived; the caller decides whether to wait again.
    Interrupted,
}

impl Semaphore {
    /// Creates `name` with `O_EXCL`, mode 0600, and the count `value`.
    ///
    /// `sem_open(O_CREAT)` would build the semaphore in a temporary file
    /// `sem.XXXXXX` and then link it under its name: a process killed in
    /// between leaves a file nobody can trace to its queue. Instead the
    /// file is created under its final name (where glibc keeps a named
    /// semaphore: `/dev/shm/sem.<name>`), its memory reserved and the
    /// semaphore initialised in place; then it is opened as any existing
    /// semaphore. Whatever a kill leaves is named after its session and
    /// collected with it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from the calls (`EEXIST` if the name is taken).
    pub fn create_exclusive(name: &str, value: u32) -> Result<Semaphore> {
        validate_name(name)?;
        // `sem.` adds four bytes: a valid semaphore name (at most
        // MAX_NAME_LEN bytes) still gives a legal file name.
        let file = CString::new(format!("/sem.{}", name.trim_start_matches('/'))).map_err(|_| {
            Error::InvalidName { name: name.to_owned(), reason: "must not contain NUL".into() }
        })?;
        let mut obj = ShmObject::create_exclusive_named(file, std::mem::size_of::<libc::sem_t>())?;
        sys::init_shared_semaphore(&obj, value).map_err(|e| Error::os_named("sem_init", name, e))?;
        let sem = Self::open_as(name, OnDrop::Unlink)?;
        // The semaphore's handle unlinks the name from now on.
        obj.disown();
        Ok(sem)
    }

    /// Opens an existing semaphore.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sem_open` (`ENOENT` when it does not exist).
    pub fn open(name: &str) -> Result<Semaphore> {
        Self::open_as(name, OnDrop::Keep)
    }

    fn open_as(name: &str, on_drop: OnDrop) -> Result<Semaphore> {
        let cname = validate_name(name)?;
        let sem = SemHandle::open(&cname).map_err(|e| Error::os_named("sem_open", name, e))?;
        Ok(Semaphore { sem, name: OwnedName::new(cname, ObjectKind::Semaphore, on_drop) })
    }

    /// Gives up the creator's duty to unlink the name on drop.
    pub fn disown(&mut self) {
        self.name.disown();
    }

    /// Increments the count, waking one waiter.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sem_post` (`EOVERFLOW`).
    pub fn post(&self) -> Result<()> {
        self.sem.post().map_err(|e| Error::os_named("sem_post", self.name(), e))
    }

    /// Decrements the count if it is above zero, without waiting.
    pub fn try_wait(&self) -> bool {
        self.sem.try_wait()
    }

    /// Waits at most `timeout` to decrement the count. The deadline is taken
    /// on the monotonic clock: setting the wall clock does not move it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sem_clockwait` other than a timeout or a signal.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<WaitOutcome> {
        match self.sem.wait_for(timeout) {
            Ok(()) => Ok(WaitOutcome::Acquired),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIMEDOUT) => Ok(WaitOutcome::TimedOut),
                Some(libc::EINTR) => Ok(WaitOutcome::Interrupted),
                _ => Err(Error::os_named("sem_clockwait", self.name(), e)),
            },
        }
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::names;

    fn unique(tag: &str) -> String {
        format!("/sxunit_{tag}_{}_{:x}", std::process::id(), sys::random_u64().unwrap())
    }

    #[test]
    fn a_semaphore_of_the_longest_name_can_be_made() {
        let stem = unique("longsem");
        let name = format!("{stem}{}", "x".repeat(names::MAX_NAME_LEN - stem.len()));
        assert_eq!(name.len(), names::MAX_NAME_LEN);
        let sem = Semaphore::create_exclusive(&name, 1).unwrap();
        assert!(Semaphore::open(&name).unwrap().try_wait());
        drop(sem);
        assert!(Semaphore::open(&name).is_err(), "unlinked on drop");
    }

    #[test]
    fn semaphores_count_and_time_out() {
        let name = unique("sem");
        let a = Semaphore::create_exclusive(&name, 1).unwrap();
        // Made under its final name, where glibc keeps it, 0600.
        let file = std::path::Path::new("/dev/shm").join(format!("sem.{}", &name[1..]));
        let meta = std::fs::metadata(&file).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), std::mem::size_of::<libc::sem_t>() as u64);
        assert!(Semaphore::create_exclusive(&name, 0).is_err());
        let b = Semaphore::open(&name).unwrap();
        assert!(b.try_wait());
        assert!(!b.try_wait());
        assert_eq!(b.wait_timeout(Duration::from_millis(10)).unwrap(), WaitOutcome::TimedOut);
        a.post().unwrap();
        assert_eq!(b.wait_timeout(Duration::from_millis(10)).unwrap(), WaitOutcome::Acquired);
        drop(a);
        assert!(Semaphore::open(&name).is_err());
    }

    #[test]
    fn a_timed_wait_lasts_about_its_timeout_on_the_monotonic_clock() {
        let name = unique("semclock");
        let sem = Semaphore::create_exclusive(&name, 0).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(sem.wait_timeout(Duration::from_millis(50)).unwrap(), WaitOutcome::TimedOut);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // A timeout too long to add to the clock still waits, and still
        // takes a count at once.
        sem.post().unwrap();
        assert_eq!(sem.wait_timeout(Duration::MAX).unwrap(), WaitOutcome::Acquired);
    }
}
