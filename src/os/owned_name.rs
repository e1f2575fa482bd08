//! Removing the names of POSIX objects: the name a creator's handle unlinks
//! when it drops (`OwnedName`), unlinking by name, and removing a whole
//! session's objects ([`remove_session`]).

use std::ffi::{CStr, CString};

use crate::error::{Error, Result};
use crate::os::names::{self, validate_name, SessionNames};
use crate::os::sys;

/// Which namespace a name lives in, and so which call unlinks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObjectKind {
    /// A shared-memory object (`shm_unlink`).
    Shm,
    /// A named semaphore (`sem_unlink`).
    Semaphore,
}

impl ObjectKind {
    /// The call that unlinks a name of this kind, for error messages.
    fn unlink_call(self) -> &'static str {
        match self {
            ObjectKind::Shm => "shm_unlink",
            ObjectKind::Semaphore => "sem_unlink",
        }
    }

    fn unlink(self, name: &CStr) -> std::io::Result<()> {
        match self {
            ObjectKind::Shm => sys::retry_if_interrupted(|| nix::sys::mman::shm_unlink(name)),
            ObjectKind::Semaphore => sys::sem_unlink(name),
        }
    }
}

/// What a handle does with its object's name when it drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDrop {
    /// Unlinks it: the handle created the object.
    Unlink,
    /// Leaves it: the handle only opened the object, or its creator gave up
    /// the duty.
    Keep,
}

/// A name that its creator removes: the creator's handle unlinks it when it
/// drops; a handle that only opened the object never does.
#[derive(Debug)]
pub(crate) struct OwnedName {
    name: CString,
    kind: ObjectKind,
    on_drop: OnDrop,
}

impl OwnedName {
    /// The name `name` (already validated) of an object of `kind`.
    pub(crate) fn new(name: CString, kind: ObjectKind, on_drop: OnDrop) -> OwnedName {
        OwnedName { name, kind, on_drop }
    }

    /// The name as text.
    pub(crate) fn as_str(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    /// Gives up the duty to unlink the name on drop.
    pub(crate) fn disown(&mut self) {
        self.on_drop = OnDrop::Keep;
    }

    /// Unlinks the name now if this handle is to unlink it; drop will not
    /// unlink again.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from the unlink other than `ENOENT`.
    pub(crate) fn remove(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.on_drop, OnDrop::Keep) == OnDrop::Unlink {
            unlink(self.kind, self.as_str())?;
        }
        Ok(())
    }
}

impl Drop for OwnedName {
    fn drop(&mut self) {
        if self.on_drop == OnDrop::Unlink {
            let _ = self.kind.unlink(&self.name);
        }
    }
}

/// Unlinks the object `name` of `kind`; `Ok(false)` when it was already gone.
///
/// # Errors
///
/// [`Error::InvalidName`]; [`Error::Os`] from the unlink other than `ENOENT`.
pub(crate) fn unlink(kind: ObjectKind, name: &str) -> Result<bool> {
    let cname = validate_name(name)?;
    match kind.unlink(&cname) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(Error::os_named(kind.unlink_call(), name, e)),
    }
}

/// Removes a session's region and semaphores, and returns the `/dev/shm`
/// file names of those that were there. For the objects of a client that is
/// gone: it can no longer remove them itself.
///
/// # Errors
///
/// [`Error::Os`] from an unlink other than `ENOENT`; the others are still
/// tried.
pub fn remove_session(names: &SessionNames) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut first_error = None;
    let results = [
        (unlink(ObjectKind::Shm, &names.region), names::shm_file_name(&names.region).to_owned()),
        (unlink(ObjectKind::Semaphore, &names.items), names::sem_file_name(&names.items)),
        (unlink(ObjectKind::Semaphore, &names.spaces), names::sem_file_name(&names.spaces)),
    ];
    for (res, file) in results {
        match res {
            Ok(true) => removed.push(file),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}
