//! The directories a fetch's files last went into, kept open for the next
//! file: a tree's files come directory by directory, so most files reach
//! theirs with no system call, and a new directory costs one `openat`
//! below its parent instead of one per component from the top.
//!
//! Only for an output directory that is the user's own: the server's
//! `--accept` directory reaches each file's directory anew, so that a
//! directory moved out of it by someone else is never written into again.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError};

/// Most directories kept open: deeper ones are reached from the deepest
/// kept (a deep tree never holds more descriptors than this).
const MOST_KEPT: usize = 32;

/// The chain of directories last reached below the output directory:
/// `chain[i]` is the directory named `chain[i].0` in `chain[i - 1]` (in the
/// output directory for `i == 0`), open.
#[derive(Debug, Default)]
pub(super) struct Reached {
    chain: Mutex<Vec<(OsString, Arc<OwnedFd>)>>,
}

impl Reached {
    /// The deepest kept directory on the way to `dirs`: how many of `dirs`
    /// it stands for (0: none kept), and its descriptor.
    pub(super) fn deepest_of(&self, dirs: &[OsString]) -> (usize, Option<Arc<OwnedFd>>) {
        let chain = self.chain.lock().unwrap_or_else(PoisonError::into_inner);
        let common = chain.iter().zip(dirs).take_while(|((kept, _), wanted)| kept == *wanted).count();
        (common, common.checked_sub(1).map(|last| Arc::clone(&chain[last].1)))
    }

    /// Keeps `opened`, the directories opened below the first `from` of
    /// the chain (those reached with [`Reached::deepest_of`]), in place of
    /// whatever the chain held below them.
    pub(super) fn keep(&self, from: usize, opened: Vec<(OsString, Arc<OwnedFd>)>) {
        let mut chain = self.chain.lock().unwrap_or_else(PoisonError::into_inner);
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
