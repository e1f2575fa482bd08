//! The walk of a tree below the served root, for a listing (and a recursive
//! fetch): an iterator of regular files and of entries skipped, each with its
//! reason, so that no skip is silent.
//!
//! The walk descends through directory descriptors only: each directory is
//! opened by name inside its parent's descriptor with `O_NOFOLLOW`
//! ([`crate::fs::source::open_child_dir`]), and each entry is examined with
//! `fstatat(AT_SYMLINK_NOFOLLOW)` inside it. No path is resolved again, so a
//! directory swapped for a symlink between `readdir` and the descent is not
//! followed: it is skipped.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use nix::dir::{Dir, OwningIter};
use nix::errno::Errno;

use crate::fs::source::{open_child_dir, stat_child, FileKind, OpenFailure, Root};

/// How far a walk goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Directory levels below the start descended at most.
    pub max_depth: usize,
    /// Regular files reported at most; the walk stops after them.
    pub max_files: usize,
}

/// A regular file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its path relative to the start of the walk, `/` between components:
    /// bytes, as a Unix name is (UTF-8 or not).
    pub path: Vec<u8>,
    pub size: u64,
    /// The permission bits and file type (`st_mode`).
    pub mode: u32,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, i64),
}

/// Why an entry was not reported as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SkipReason {
    /// Not a regular file or a directory: a symlink (never followed), a FIFO,
    /// a device, a socket.
    NotRegular(FileKind),
    /// A directory deeper than [`Limits::max_depth`], not descended.
    TooDeep,
    /// The walk stopped here: [`Limits::max_files`] files were reported.
    OverLimit,
    /// It could not be examined or opened (or a directory could not be
    /// read to its end); the `errno`. A directory that turned into a symlink
    /// after it was examined lands here (`ENOTDIR`).
    Unreadable(Errno),
}

/// An entry the walk did not report as a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skip {
    /// Its path relative to the start of the walk.
    pub path: Vec<u8>,
    pub reason: SkipReason,
}

/// What the walk yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Visit {
    File(Entry),
    Skipped(Skip),
}

/// One open directory of the walk.
struct Level {
    /// The directory's descriptor, for opening and examining its entries.
    fd: OwnedFd,
    /// Its entries, read through a descriptor of its own.
    entries: OwningIter,
    /// Its path relative to the start, with a trailing `/` unless empty.
    prefix: Vec<u8>,
    depth: usize,
}

impl std::fmt::Debug for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Level").field("prefix", &self.prefix.escape_ascii().to_string()).finish()
    }
}

/// A depth-first walk; entries come in directory order.
#[derive(Debug)]
pub(crate) struct Walk {
    stack: Vec<Level>,
    limits: Limits,
    files: usize,
    /// Set once [`SkipReason::OverLimit`] was reported: nothing follows.
    stopped: bool,
}

impl Walk {
    /// Starts a walk of the directory `start` below `root` (`""`: the root).
    ///
    /// # Errors
    ///
    /// An [`OpenFailure`] when `start` cannot be opened as a directory.
    pub fn new(root: &Root, start: impl AsRef<[u8]>, limits: Limits) -> Result<Walk, OpenFailure> {
        let fd = root.open_dir(start)?;
        let level = Level::open(fd, Vec::new(), 0).map_err(|e| OpenFailure::Os(e.into()))?;
        Ok(Walk { stack: vec![level], limits, files: 0, stopped: false })
    }
}

impl Level {
    fn open(fd: OwnedFd, prefix: Vec<u8>, depth: usize) -> nix::Result<Level> {
        // The listing reads through a second descriptor, so that `fd` stays
        // an `OwnedFd` to open and examine entries by.
        let reader = fd.try_clone().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        let entries = Dir::from_fd(reader)?.into_iter();
        Ok(Level { fd, entries, prefix, depth })
    }
}

impl Iterator for Walk {
    type Item = Visit;

    fn next(&mut self) -> Option<Visit> {
        loop {
            if self.stopped {
                return None;
            }
            let level = self.stack.last_mut()?;
            let entry = match level.entries.next() {
                None => {
                    self.stack.pop();
                    continue;
                }
                Some(Err(e)) => {
                    let path = level.prefix.clone();
                    self.stack.pop();
                    return Some(skipped(path, SkipReason::Unreadable(e)));
                }
                Some(Ok(entry)) => entry,
            };
            let name = entry.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let mut path = level.prefix.clone();
            path.extend_from_slice(bytes);
            let name: CString = name.to_owned();
            let st = match stat_child(&level.fd, &name) {
                Ok(st) => st,
                // Gone since it was listed: nothing to report.
                Err(Errno::ENOENT) => continue,
                Err(e) => return Some(skipped(path, SkipReason::Unreadable(e))),
            };
            match FileKind::of(&st) {
                FileKind::Regular => {
                    if self.files >= self.limits.max_files {
                        self.stopped = true;
                        return Some(skipped(path, SkipReason::OverLimit));
                    }
                    self.files += 1;
                    return Some(Visit::File(Entry {
                        path,
                        size: u64::try_from(st.st_size).unwrap_or(0),
                        mode: st.st_mode,
                        mtime: (st.st_mtime, st.st_mtime_nsec),
                    }));
                }
                FileKind::Directory => {
                    let depth = level.depth + 1;
                    if depth > self.limits.max_depth {
                        return Some(skipped(path, SkipReason::TooDeep));
                    }
                    let opened = open_child_dir(&level.fd, &name)
                        .and_then(|fd| Level::open(fd, [path.as_slice(), b"/"].concat(), depth));
                    match opened {
                        Ok(child) => self.stack.push(child),
                        Err(Errno::ENOENT) => {}
                        Err(e) => return Some(skipped(path, SkipReason::Unreadable(e))),
                    }
                }
                kind => return Some(skipped(path, SkipReason::NotRegular(kind))),
            }
        }
    }
}

fn skipped(path: Vec<u8>, reason: SkipReason) -> Visit {
    Visit::Skipped(Skip { path, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    const WIDE: Limits = Limits { max_depth: 32, max_files: 1000 };

    type Files = Vec<(String, u64)>;
    type Skips = Vec<(String, SkipReason)>;

    fn walk(root: &Path, limits: Limits) -> (Files, Skips) {
        let root = Root::open(root).unwrap();
        let (mut files, mut skips) = (Vec::new(), Vec::new());
        for visit in Walk::new(&root, "", limits).unwrap() {
            match visit {
                Visit::File(e) => files.push((String::from_utf8(e.path).unwrap(), e.size)),
                Visit::Skipped(s) => skips.push((s.path.escape_ascii().to_string(), s.reason)),
            }
        }
        files.sort();
        skips.sort_by(|a, b| a.0.cmp(&b.0));
        (files, skips)
    }

    #[test]
    fn a_symlink_to_a_directory_outside_is_reported_skipped_not_descended() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), b"s").unwrap();
        std::fs::write(root.join("top"), b"12").unwrap();
        std::fs::write(root.join("a/b/deep"), b"123").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("a/escape")).unwrap();
        std::os::unix::fs::symlink("top", root.join("same")).unwrap();
        let (files, skips) = walk(&root, WIDE);
        assert_eq!(files, [("a/b/deep".to_owned(), 3), ("top".to_owned(), 2)]);
        assert_eq!(
            skips,
            [
                ("a/escape".to_owned(), SkipReason::NotRegular(FileKind::Symlink)),
                ("same".to_owned(), SkipReason::NotRegular(FileKind::Symlink)),
            ]
        );
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_after_it_was_opened_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret"), b"s").unwrap();
        let opened = Root::open(&root).unwrap();
        let fd = opened.open_dir("").unwrap();
        // Between the listing of the root and the descent into `d`.
        std::fs::remove_dir(root.join("d")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("d")).unwrap();
        assert!(matches!(open_child_dir(&fd, c"d"), Err(Errno::ENOTDIR | Errno::ELOOP)));
        let (files, skips) = walk(&root, WIDE);
        assert!(files.is_empty(), "{files:?}");
        assert_eq!(skips, [("d".to_owned(), SkipReason::NotRegular(FileKind::Symlink))]);
    }

    #[test]
    fn a_root_can_be_walked_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        let root = Root::open(dir.path()).unwrap();
        for _ in 0..3 {
            assert_eq!(Walk::new(&root, "", WIDE).unwrap().count(), 1);
        }
    }

    #[test]
    fn too_deep_directories_and_files_over_the_limit_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("1/2/3")).unwrap();
        std::fs::write(root.join("1/f"), b"").unwrap();
        std::fs::write(root.join("1/2/3/g"), b"").unwrap();
        let (files, skips) = walk(root, Limits { max_depth: 2, max_files: 1000 });
        assert_eq!(files, [("1/f".to_owned(), 0)]);
        assert_eq!(skips, [("1/2/3".to_owned(), SkipReason::TooDeep)]);

        for name in ["a", "b", "c"] {
            std::fs::write(root.join(name), b"").unwrap();
        }
        let (files, skips) = walk(root, Limits { max_depth: 32, max_files: 2 });
        assert_eq!(files.len(), 2);
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].1, SkipReason::OverLimit);
    }

    #[test]
    fn names_that_are_not_utf8_are_walked_as_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"").unwrap();
        std::fs::create_dir(root.join(std::ffi::OsStr::from_bytes(b"dir\xfe"))).unwrap();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"dir\xfe/in")), b"").unwrap();
        std::fs::write(root.join("ok"), b"").unwrap();
        let root = Root::open(root).unwrap();
        let mut files: Vec<Vec<u8>> = Vec::new();
        for visit in Walk::new(&root, "", WIDE).unwrap() {
            match visit {
                Visit::File(e) => files.push(e.path),
                Visit::Skipped(s) => panic!("{s:?} skipped"),
            }
        }
        files.sort();
        assert_eq!(files, [&b"bad\xff"[..], b"dir\xfe/in", b"ok"]);
    }

    #[test]
    fn an_unreadable_directory_is_reported() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            return; // root reads it anyway
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("locked")).unwrap();
        std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
        let (_, skips) = walk(root, WIDE);
        std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(skips, [("locked".to_owned(), SkipReason::Unreadable(Errno::EACCES))]);
    }
}
