//! A POSIX shared-memory object (`shm_open`), open: created exclusively and
//! sized by its creator, or opened and checked by anyone else.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::os::names::{self, validate_name};
use crate::os::owned_name::{self, ObjectKind, OnDrop, OwnedName};
use crate::os::sys::retry_if_interrupted;

/// How an existing object is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading only (`O_RDONLY`).
    ReadOnly,
    /// Reading and writing (`O_RDWR`).
    ReadWrite,
}

impl Access {
    fn flags(self) -> OFlag {
        match self {
            Access::ReadOnly => OFlag::O_RDONLY,
            Access::ReadWrite => OFlag::O_RDWR,
        }
    }
}

/// Removes the shared-memory object `name`: `Ok(false)` when there was none.
///
/// # Errors
///
/// [`Error::Os`] from `shm_unlink` other than `ENOENT`.
pub fn remove_shm(name: &str) -> Result<bool> {
    owned_name::unlink(ObjectKind::Shm, name)
}

/// A POSIX shared-memory object, open. The creator unlinks it on drop.
#[derive(Debug)]
pub struct ShmObject {
    fd: OwnedFd,
    name: OwnedName,
}

impl ShmObject {
    /// Creates `name` with `O_EXCL`, mode 0600, and sets its size.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_open` (`EEXIST` if the name is taken) or from
    /// sizing it.
    pub fn create_exclusive(name: &str, size: usize) -> Result<ShmObject> {
        Self::create_exclusive_named(validate_name(name)?, size)
    }

    /// As [`ShmObject::create_exclusive`], for a name already made into a C
    /// string (and checked by the caller).
    pub(crate) fn create_exclusive_named(cname: CString, size: usize) -> Result<ShmObject> {
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        let obj = Self::open_named(cname, flags, OnDrop::Unlink)?;
        obj.set_len(size)?;
        obj.reserve(size)?;
        Ok(obj)
    }

    /// Opens an existing object without waiting (`O_NONBLOCK`: a FIFO put
    /// in its place cannot block us) and checks with `fstat` that it is a
    /// regular file.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_open` (`ENOENT` when it does not exist);
    /// [`Error::BadObject`] when it is not a regular file.
    pub fn open(name: &str, access: Access) -> Result<ShmObject> {
        let obj = Self::open_named(validate_name(name)?, access.flags() | OFlag::O_NONBLOCK, OnDrop::Keep)?;
        let meta = obj.stat()?;
        if !meta.file_type().is_file() {
            return Err(Error::BadObject {
                name: names::shm_path(name),
                reason: "not a regular file".into(),
            });
        }
        Ok(obj)
    }

    fn open_named(cname: CString, flags: OFlag, on_drop: OnDrop) -> Result<ShmObject> {
        let mode = Mode::S_IRUSR | Mode::S_IWUSR;
        let fd = retry_if_interrupted(|| {
            nix::sys::mman::shm_open(cname.as_c_str(), flags | OFlag::O_CLOEXEC, mode)
        })
        .map_err(|e| Error::os_named("shm_open", cname.to_str().unwrap_or("?"), e))?;
        Ok(ShmObject { fd, name: OwnedName::new(cname, ObjectKind::Shm, on_drop) })
    }

    fn set_len(&self, size: usize) -> Result<()> {
        let len = off_t(size, self.name())?;
        retry_if_interrupted(|| nix::unistd::ftruncate(&self.fd, len))
            .map_err(|e| Error::os_named("ftruncate", self.name(), e))
    }

    /// Reserves the memory of the first `size` bytes (`posix_fallocate`):
    /// `ftruncate` alone leaves a sparse object, and touching a page that
    /// a full `/dev/shm` cannot back kills the process with SIGBUS. Reserved,
    /// a full `/dev/shm` is an `ENOSPC` error here instead.
    fn reserve(&self, size: usize) -> Result<()> {
        if size == 0 {
            return Ok(());
        }
        let len = off_t(size, self.name())?;
        retry_if_interrupted(|| nix::fcntl::posix_fallocate(&self.fd, 0, len)).map_err(|source| {
            let why = format!("reserving {size} bytes: {source}");
            Error::os_named("posix_fallocate", self.name(), io::Error::new(source.kind(), why))
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Size, owner and mode from `fstat`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `fstat`.
    pub fn stat(&self) -> Result<std::fs::Metadata> {
        let file = std::fs::File::from(self.try_clone_fd()?);
        file.metadata().map_err(|e| Error::os_named("fstat", self.name(), e))
    }

    /// A second descriptor of the same open object.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `dup`.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.fd.try_clone().map_err(|e| Error::os("dup", e))
    }

    /// Replaces the object's contents with `bytes` (used for the server's
    /// pid in its lock object).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `ftruncate` or `pwrite`.
    pub fn replace_contents(&self, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.set_len(bytes.len())?;
        let file = std::fs::File::from(self.try_clone_fd()?);
        file.write_all_at(bytes, 0).map_err(|e| Error::os_named("pwrite", self.name(), e))
    }

    /// Gives up the creator's duty to unlink the name on drop: the caller
    /// decides when to remove it.
    pub fn disown(&mut self) {
        self.name.disown();
    }

    /// Unlinks the name now, if this handle created it; drop will not
    /// unlink again.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_unlink` other than `ENOENT`.
    pub fn remove(&mut self) -> Result<()> {
        self.name.remove()
    }
}

impl AsFd for ShmObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// `size` as a file offset.
fn off_t(size: usize, name: &str) -> Result<libc::off_t> {
    libc::off_t::try_from(size)
        .map_err(|_| Error::os_named("ftruncate", name, io::Error::from_raw_os_error(libc::EFBIG)))
}
