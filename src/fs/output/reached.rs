//! The directories a fetch's files last went into, kept open for the next
//! file: a tree's files come directory by directory, so most files reach
//! theirs with one `fstatat` per directory of their path (each kept
//! directory still the one at its name in its parent) and no `openat`, and
//! a new directory costs one `openat` below its parent instead of one per
//! component from the top.
//!
//! A kept directory that is no longer at its name (moved, out of the
//! output directory say, removed, or replaced by a symlink or a file) is
//! dropped with those below it and reached anew: a file goes where its
//! name is when it is started, as if nothing were kept.
//!
//! Only for an output directory that is the user's own: the server's
//! `--accept` directory reaches each file's directory anew, so that a
//! directory moved out of it by someone else is never written into again.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, PoisonError};

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;

use super::temp::identity;

/// Most directories kept open: deeper ones are reached from the deepest
/// kept (a deep tree never holds more descriptors than this).
const MOST_KEPT: usize = 32;

/// A directory kept open: its name in its parent, its descriptor and its
/// identity (device and inode) when it was opened.
#[derive(Debug)]
pub(super) struct KeptDir {
    pub(super) name: OsString,
    pub(super) fd: Arc<OwnedFd>,
    pub(super) id: (u64, u64),
}

/// The chain of directories last reached below the output directory:
/// `chain[i]` is the directory named `chain[i].name` in `chain[i - 1]` (in
/// the output directory for `i == 0`), open.
#[derive(Debug, Default)]
pub(super) struct Reached {
    chain: Mutex<Vec<KeptDir>>,
}

/// Whether `kept` is still the directory at its name in `parent` (a
/// symlink there is not followed: it is not).
fn still_there(parent: &impl AsFd, kept: &KeptDir) -> bool {
    fstatat(parent, kept.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR && identity(&st) == kept.id)
}

impl Reached {
    /// The deepest kept directory on the way to `dirs` below `top` (the
    /// output directory) that is still at its name, each one above it too:
    /// how many of `dirs` it stands for (0: none kept), and its
    /// descriptor. The kept directories found moved are forgotten.
    pub(super) fn deepest_of(&self, top: &impl AsFd, dirs: &[OsString]) -> (usize, Option<Arc<OwnedFd>>) {
        let mut chain = self.chain.lock().unwrap_or_else(PoisonError::into_inner);
        let common = chain.iter().zip(dirs).take_while(|(kept, wanted)| kept.name == **wanted).count();
        let mut valid = 0;
        while valid < common {
            let there = match valid.checked_sub(1) {
                None => still_there(top, &chain[valid]),
                Some(parent) => still_there(&*chain[parent].fd, &chain[valid]),
            };
            if !there {
                chain.truncate(valid);
                break;
            }
            valid += 1;
        }
        (valid, valid.checked_sub(1).map(|last| Arc::clone(&chain[last].fd)))
    }

    /// Keeps `opened`, the directories opened below the first `from` of
    /// the chain (those reached with [`Reached::deepest_of`], the last of
    /// them `below`), in place of whatever the chain held below them;
    /// nothing if the chain changed meanwhile.
    pub(super) fn keep(&self, from: usize, below: Option<&Arc<OwnedFd>>, opened: Vec<KeptDir>) {
        let mut chain = self.chain.lock().unwrap_or_else(PoisonError::into_inner);
        let same = match (from.checked_sub(1), below) {
            (None, None) => true,
            (Some(last), Some(below)) => chain.get(last).is_some_and(|kept| Arc::ptr_eq(&kept.fd, below)),
            _ => false,
        };
        if !same {
            return;
        }
        chain.truncate(from);
        chain.extend(opened);
        chain.truncate(MOST_KEPT);
    }

    /// Forgets every directory kept: one may have been moved or removed
    /// since (a file could not be created in it).
    pub(super) fn forget(&self) {
        self.chain.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}
