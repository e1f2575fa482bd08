//! The names a received file holds in a directory before it gets its own
//! ([`Temp`]: a temporary name, or a partial's) and the record beside a
//! partial ([`Record`]), each kept with the file's identity, so that what
//! is renamed or removed under a name is that file; the short temporary
//! names themselves ([`temp_name`]). The identity ([`identity`]) is the
//! one every check of a file or directory here compares.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::os::sys;

/// The device and inode of a file or a directory: its identity, whatever
/// its name.
pub(super) fn identity(st: &nix::sys::stat::FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// A name the sink's file has in a directory (a temporary name, or a
/// partial's): the name and the file's identity, so that what is renamed
/// or removed under that name is this file, never one another process put
/// there since (a partial moved away during a long transfer and something
/// else named like it). The identity holds while the file is open (its
/// inode cannot be reused meanwhile). The check and the rename (or
/// unlink) are two calls: a process that may rename in that directory and
/// swaps the name in the microseconds between them still wins; no call
/// renames or unlinks only a given inode. A `SIGKILL` between them leaves
/// the partial and its record, which the next `-C` resumes.
#[derive(Debug, Clone)]
pub(super) struct Temp {
    pub(super) name: OsString,
    pub(super) id: (u64, u64),
}

impl Temp {
    /// `name`, a name of `file`.
    pub(super) fn of(name: OsString, file: &impl AsFd) -> nix::Result<Temp> {
        Ok(Temp { name, id: identity(&nix::sys::stat::fstat(file)?) })
    }

    /// Whether the name still names the file in `dir` (a symlink there is
    /// not followed: it does not).
    pub(super) fn names_it_in(&self, dir: &impl AsFd) -> bool {
        fstatat(dir, self.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| identity(&st) == self.id)
    }
}

/// The record beside a partial file: its name (with the identity of the
/// file it named), and that file, held open: while the sink lives its
/// inode is not freed, so no record another client writes under the name
/// meanwhile can take its inode number and pass for it.
#[derive(Debug)]
pub(super) struct Record {
    pub(super) name: Temp,
    pub(super) file: File,
}

impl Record {
    /// Removes the record's name from `dir` if it still names the record:
    /// one another client put there since is left to it.
    pub(super) fn remove_from(&self, dir: &impl AsFd) {
        if self.name.names_it_in(dir) {
            let _ = unlinkat(dir, self.name.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// A short temporary name: `.shmxfer.` and 16 random hex digits.
pub(super) fn temp_name() -> io::Result<OsString> {
    Ok(OsString::from(format!(".shmxfer.{:016x}", sys::random_u64()?)))
}
