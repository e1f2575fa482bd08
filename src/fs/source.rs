//! The one confined opener of the server: everything below the served root —
//! a file to fetch, a directory to list or walk — is opened here, through
//! directory descriptors, never by re-resolving a path from `/`.
//!
//! A path is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
//! relative to the root's descriptor: no absolute path, no `..` escape, no
//! symlink that leaves the root, no magic link. On a kernel without
//! `openat2` it is walked by hand, one `openat(O_NOFOLLOW)` per component, so
//! that no symlink is followed at all. A walk descends one name at a time
//! with `openat(dirfd, name, O_DIRECTORY | O_NOFOLLOW)`.
//!
//! Files are opened `O_RDONLY | O_NONBLOCK | O_NOCTTY`: a FIFO does not block
//! the open, a terminal does not become the controlling one, and nothing is
//! read before `fstat` says the descriptor is a regular file. No `/proc` is
//! needed.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::error::{Error, Result};

/// What says a file changed while it was read (a fetch's source on the
/// server, an upload's on the client): its size, modification and
/// status-change times, to the nanosecond.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    pub(crate) fn of(st: &FileStat) -> Snapshot {
        Snapshot {
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// The kind of a file, as `fstat` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    Device,
    Socket,
    Unknown,
}

impl FileKind {
    /// The kind of the file `st` describes.
    pub fn of(st: &FileStat) -> FileKind {
        match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => FileKind::Regular,
            SFlag::S_IFDIR => FileKind::Directory,
            SFlag::S_IFLNK => FileKind::Symlink,
            SFlag::S_IFIFO => FileKind::Fifo,
            SFlag::S_IFCHR | SFlag::S_IFBLK => FileKind::Device,
            SFlag::S_IFSOCK => FileKind::Socket,
            _ => FileKind::Unknown,
        }
    }

    /// `a directory`, `a FIFO`, ... for messages.
    pub fn text(self) -> &'static str {
        match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a FIFO",
            FileKind::Device => "a device",
            FileKind::Socket => "a socket",
            FileKind::Unknown => "not a regular file",
        }
    }
}

/// Why a path below the root was not opened.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Nothing by that name (`ENOENT`, `ENOTDIR`).
    Missing,
    /// The path leaves the root: absolute, `..`, a symlink out (`EXDEV`,
    /// `ELOOP`).
    OutsideRoot,
    /// `EACCES`, `EPERM`, `EROFS`.
    PermissionDenied,
    /// `ENAMETOOLONG`.
    NameTooLong,
    /// A NUL byte, or another path the kernel calls invalid (`EINVAL`).
    InvalidPath,
    /// Out of descriptors, memory or room (`EMFILE`, `ENFILE`, `ENOMEM`,
    /// `ENOSPC`, `EDQUOT`).
    OutOfResources(io::Error),
    /// Opened, but not of the kind asked for (`EISDIR`: a directory).
    WrongKind(FileKind),
    /// Anything else.
    Os(io::Error),
}

impl OpenFailure {
    /// The one sorting of an OS error met opening, reading or writing a
    /// file, whichever side: what the wire's codes are given from
    /// ([`crate::transfer::codes`]).
    pub(crate) fn from_errno(e: Errno) -> OpenFailure {
        match e {
            Errno::ENOENT | Errno::ENOTDIR => OpenFailure::Missing,
            Errno::EXDEV | Errno::ELOOP => OpenFailure::OutsideRoot,
            Errno::EACCES | Errno::EPERM | Errno::EROFS => OpenFailure::PermissionDenied,
            Errno::ENAMETOOLONG => OpenFailure::NameTooLong,
            Errno::EINVAL => OpenFailure::InvalidPath,
            Errno::EISDIR => OpenFailure::WrongKind(FileKind::Directory),
            Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::ENOSPC | Errno::EDQUOT => {
                OpenFailure::OutOfResources(e.into())
            }
            e => OpenFailure::Os(e.into()),
        }
    }

    /// An I/O error (a create, a write, a rename; a directory component of
    /// an output path) sorted as [`OpenFailure::from_errno`] sorts its
    /// `errno`; one that carries none, by its kind: `NotADirectory` is a
    /// component that is a symlink or not a directory (not followed), or a
    /// directory moved away: the file would land outside where it was
    /// meant to go.
    pub(crate) fn of_io(e: &io::Error) -> OpenFailure {
        if let Some(errno) = e.raw_os_error() {
            return OpenFailure::from_errno(Errno::from_raw(errno));
        }
        let copy = || io::Error::new(e.kind(), e.to_string());
        match e.kind() {
            io::ErrorKind::NotADirectory => OpenFailure::OutsideRoot,
            io::ErrorKind::NotFound => OpenFailure::Missing,
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                OpenFailure::PermissionDenied
            }
            io::ErrorKind::InvalidFilename => OpenFailure::NameTooLong,
            io::ErrorKind::IsADirectory => OpenFailure::WrongKind(FileKind::Directory),
            // A device, a FIFO or a socket holds an output's name: never
            // replaced ([`Sink::persist`](crate::fs::output::Sink::persist)).
            io::ErrorKind::AlreadyExists => OpenFailure::WrongKind(FileKind::Unknown),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::OutOfMemory => {
                OpenFailure::OutOfResources(copy())
            }
            _ => OpenFailure::Os(copy()),
        }
    }
}

/// The served directory, open: every open below it goes through here.
#[derive(Debug)]
pub(crate) struct Root {
    dir: File,
}

impl Root {
    /// Opens the directory `path` to serve.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when it cannot be opened or is not a directory.
    pub fn open(path: &Path) -> Result<Root> {
        let shown = path.display().to_string();
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = retry(|| nix::fcntl::open(path, flags, Mode::empty())).map_err(|e| {
            let e = io::Error::from(e);
            Error::os_named("open root", &shown, e)
        })?;
        Ok(Root { dir: File::from(fd) })
    }

    /// The longest name (one path component, in bytes) the file system of
    /// the served directory takes (`NAME_MAX`: 255 on Linux's file
    /// systems): a longer one is nowhere below the root.
    pub fn name_max(&self) -> u32 {
        let max = nix::unistd::fpathconf(&self.dir, nix::unistd::PathconfVar::NAME_MAX);
        max.ok().flatten().and_then(|n| u32::try_from(n).ok()).unwrap_or(255)
    }

    /// Opens the regular file `path` below the root for reading, and its
    /// `fstat`.
    ///
    /// # Errors
    ///
    /// An [`OpenFailure`] saying why not; [`OpenFailure::WrongKind`] for
    /// anything that is not a regular file (it is opened, never read).
    pub fn open_file(&self, path: impl AsRef<[u8]>) -> std::result::Result<(File, FileStat), OpenFailure> {
        self.open_file_resolved(path.as_ref(), ResolveFlag::empty())
    }

    /// As [`Root::open_file`], following no symlink at all, not even one
    /// that stays below the root (`RESOLVE_NO_SYMLINKS`): a file of a tree
    /// that was walked without following any, opened again to be sent.
    ///
    /// # Errors
    ///
    /// As [`Root::open_file`]; a symlink on the way is
    /// [`OpenFailure::OutsideRoot`].
    pub fn open_file_no_symlinks(
        &self,
        path: impl AsRef<[u8]>,
    ) -> std::result::Result<(File, FileStat), OpenFailure> {
        self.open_file_resolved(path.as_ref(), ResolveFlag::RESOLVE_NO_SYMLINKS)
    }

    fn open_file_resolved(
        &self,
        path: &[u8],
        resolve: ResolveFlag,
    ) -> std::result::Result<(File, FileStat), OpenFailure> {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let fd = self.open_beneath(path, flags, resolve).map_err(|e| match e {
            // A symlink refused on the way (RESOLVE_NO_SYMLINKS).
            Errno::ELOOP if !resolve.is_empty() => OpenFailure::OutsideRoot,
            e => OpenFailure::from_errno(e),
        })?;
        let st = retry(|| nix::sys::stat::fstat(&fd)).map_err(|e| OpenFailure::Os(e.into()))?;
        match FileKind::of(&st) {
            FileKind::Regular => Ok((File::from(fd), st)),
            kind => Err(OpenFailure::WrongKind(kind)),
        }
    }

    /// Opens the directory `path` below the root (`""`: the root itself),
    /// for a walk.
    ///
    /// # Errors
    ///
    /// An [`OpenFailure`] saying why not.
    pub fn open_dir(&self, path: impl AsRef<[u8]>) -> std::result::Result<OwnedFd, OpenFailure> {
        let path = path.as_ref();
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        if path.is_empty() {
            // A fresh open file description: a duplicate of the root's
            // descriptor would share its reading position with every walk.
            return retry(|| nix::fcntl::openat(&self.dir, ".", flags, Mode::empty()))
                .map_err(OpenFailure::from_errno);
        }
        self.open_beneath(path, flags, ResolveFlag::empty()).map_err(|e| match e {
            Errno::ENOTDIR => OpenFailure::WrongKind(FileKind::Unknown),
            e => OpenFailure::from_errno(e),
        })
    }

    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, or by hand where
    /// the kernel lacks it.
    /// `more` adds resolve flags (`RESOLVE_NO_SYMLINKS`).
    fn open_beneath(&self, path: &[u8], flags: OFlag, more: ResolveFlag) -> nix::Result<OwnedFd> {
        if path.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS | more);
        match retry(|| nix::fcntl::openat2(&self.dir, path, how)) {
            Err(Errno::ENOSYS) => open_beneath_by_hand(&self.dir, path, flags),
            other => other,
        }
    }
}

/// Walks `path` one component at a time, `O_NOFOLLOW` on each: no symlink
/// is followed, not even one that stays inside.
fn open_beneath_by_hand(root: &impl AsFd, path: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    let parts: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").collect();
    if path.starts_with(b"/") || parts.contains(&&b".."[..]) || parts.is_empty() {
        return Err(Errno::EXDEV);
    }
    let mut dir =
        root.as_fd().try_clone_to_owned().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    // A trailing `/` (or `/.`) names a directory, as the kernel reads it:
    // a file there is ENOTDIR.
    let directory =
        if path.ends_with(b"/") || path.ends_with(b"/.") { OFlag::O_DIRECTORY } else { OFlag::empty() };
    for (i, part) in parts.iter().enumerate() {
        let f = if i + 1 == parts.len() {
            flags | OFlag::O_NOFOLLOW | directory
        } else {
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC
        };
        dir = retry(|| nix::fcntl::openat(&dir, *part, f, Mode::empty()))?;
    }
    Ok(dir)
}

/// Opens the directory `name` inside the open directory `dir`, never
/// following a symlink: a directory swapped for one fails (`ELOOP`,
/// `ENOTDIR`).
///
/// # Errors
///
/// The `errno` of `openat`.
pub(crate) fn open_child_dir(dir: &impl AsFd, name: &CStr) -> nix::Result<OwnedFd> {
    let flags =
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    retry(|| nix::fcntl::openat(dir, name, flags, Mode::empty()))
}

/// The `fstatat` of `name` inside the open directory `dir`, not following a
/// symlink.
///
/// # Errors
///
/// The `errno` of `fstatat`.
pub(crate) fn stat_child(dir: &impl AsFd, name: &CStr) -> nix::Result<FileStat> {
    retry(|| nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW))
}

/// Runs `f` again while it fails with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        std::fs::create_dir_all(root_path.join("sub")).unwrap();
        std::fs::write(root_path.join("ok"), b"x").unwrap();
        std::fs::write(root_path.join("sub/inner"), b"y").unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("../secret", root_path.join("link")).unwrap();
        nix::unistd::mkfifo(&root_path.join("fifo"), Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
        let root = Root::open(&root_path).unwrap();
        (dir, root)
    }

    #[test]
    fn escapes_are_refused_with_and_without_openat2() {
        let (_dir, root) = tree();
        assert!(root.open_file("ok").is_ok());
        assert!(root.open_file("sub/inner").is_ok());
        for bad in ["../secret", "/etc/passwd", "link", "a/../../secret", "sub/../../secret"] {
            assert!(
                matches!(root.open_file(bad), Err(OpenFailure::OutsideRoot | OpenFailure::Missing)),
                "{bad} must be refused"
            );
            let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK;
            let by_hand = open_beneath_by_hand(&root.dir, bad.as_bytes(), flags);
            assert!(by_hand.is_err(), "{bad} must be refused by hand");
        }
        assert!(open_beneath_by_hand(&root.dir, b"sub/inner", OFlag::O_RDONLY).is_ok());
    }

    /// `ok/` names a directory: a file there is no file to open, with the
    /// kernel's resolution and by hand alike; `sub/` is the directory.
    #[test]
    fn a_trailing_slash_never_opens_a_file() {
        let (_dir, root) = tree();
        for name in ["ok/", "ok/.", "sub/inner/"] {
            assert!(matches!(root.open_file(name), Err(OpenFailure::Missing)), "{name}");
            let by_hand = open_beneath_by_hand(&root.dir, name.as_bytes(), OFlag::O_RDONLY);
            assert_eq!(by_hand.err(), Some(Errno::ENOTDIR), "{name} by hand");
        }
        assert!(matches!(root.open_file("sub/"), Err(OpenFailure::WrongKind(FileKind::Directory))));
        assert!(open_beneath_by_hand(&root.dir, b"sub/", OFlag::O_RDONLY).is_ok());
    }

    #[test]
    fn a_fifo_or_a_directory_is_opened_without_blocking_and_refused() {
        let (_dir, root) = tree();
        assert!(matches!(root.open_file("fifo"), Err(OpenFailure::WrongKind(FileKind::Fifo))));
        assert!(matches!(root.open_file("sub"), Err(OpenFailure::WrongKind(FileKind::Directory))));
        assert!(matches!(root.open_file("nope"), Err(OpenFailure::Missing)));
        assert!(matches!(root.open_file("a\0b"), Err(OpenFailure::InvalidPath)));
        assert!(root.open_dir("sub").is_ok());
        assert!(root.open_dir("").is_ok());
        assert!(matches!(root.open_dir("ok"), Err(OpenFailure::WrongKind(_))));
    }

    #[test]
    fn a_child_directory_that_is_a_symlink_is_not_followed() {
        let (dir, root) = tree();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("root/up")).unwrap();
        let fd = root.open_dir("").unwrap();
        assert!(open_child_dir(&fd, c"sub").is_ok());
        assert!(matches!(open_child_dir(&fd, c"up"), Err(Errno::ENOTDIR | Errno::ELOOP)));
        let st = stat_child(&fd, c"up").unwrap();
        assert_eq!(FileKind::of(&st), FileKind::Symlink);
    }
}
