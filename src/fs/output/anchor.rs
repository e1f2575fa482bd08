//! The anchor of a directory that others write into (the server's
//! `--accept` directory): a file is named there only while its directory
//! is still in place below it, checked before and after the naming.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::openat;
use nix::sys::stat::Mode;

use super::temp::identity;
use super::{moved, os, DirFd, DIR_FLAGS};

/// For a directory that others write into (`--accept`): the directory
/// itself as it was opened, which a file's directory must still be below
/// when the file is named, and after.
#[derive(Debug, Clone)]
pub(super) struct Anchor {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) path: PathBuf,
}

impl Anchor {
    /// Whether the directory opened is still the one at its path (the
    /// path followed as it was when opened: it may be a symlink the user
    /// named) and not removed.
    pub(super) fn check_in_place(&self) -> io::Result<()> {
        let shown = self.path.display();
        let open = nix::sys::stat::fstat(&self.fd).map_err(os)?;
        let there = match nix::sys::stat::stat(&self.path) {
            Ok(st) => Some(st),
            Err(Errno::ENOENT | Errno::ENOTDIR) => None,
            Err(e) => return Err(os(e)),
        };
        if open.st_nlink == 0 || there.is_none_or(|st| identity(&st) != identity(&open)) {
            return Err(moved(format!("the directory {shown} was moved or removed since it was opened")));
        }
        Ok(())
    }

    /// Checks that `dir` is still this directory's `dirs`, reached from
    /// it one component at a time without following a symlink, and this
    /// directory still in place: another process that moved a directory
    /// of the path away (out of this directory, say) does not get a file
    /// named there.
    pub(super) fn check_below(&self, dirs: &[OsString], dir: &DirFd) -> io::Result<()> {
        self.check_in_place()?;
        let gone = || {
            let shown = super::quote_dirs(dirs);
            moved(format!("{shown} was moved, removed or replaced while the file was received"))
        };
        let mut now = DirFd::Top(Arc::clone(&self.fd));
        for component in dirs {
            now = match openat(&now, component.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => DirFd::Below(Arc::new(fd)),
                Err(_) => return Err(gone()),
            };
        }
        let (now, then) = (nix::sys::stat::fstat(&now).map_err(os)?, nix::sys::stat::fstat(dir).map_err(os)?);
        if then.st_nlink == 0 || identity(&now) != identity(&then) {
            return Err(gone());
        }
        Ok(())
    }
}
