//! Where received files go. The output directory is opened once, and every
//! later step is relative to that descriptor: creating the temporary file,
//! creating the directories `-R/--relative` asks for, and giving the verified
//! file its name. A directory swapped for a symlink mid-transfer therefore
//! changes nothing, and no path component below the output directory is
//! ever followed through a symlink.
//!
//! Temporary names are short (`.shmxfer.<16 hex>`), whatever the final
//! name: they fit wherever a legal file name fits.
//!
//! A cut-off transfer is kept for resuming only when asked
//! ([`Partial::Keep`], `--continue`): its bytes as
//! `.shmxfer-partial.<name>` beside where the file goes, and beside it
//! `.shmxfer-partial.<name>.source`, one line `SIZE MTIME_NS` recording
//! the source's size and mtime as its `Start` frame told them. The record
//! is written (to a temporary name, renamed) before the bytes get their
//! name, so a partial without a record is never resumed. A name too long
//! for these prefixes keeps nothing.
//!
//! Beside this file: a path below the output directory ([`path`]), the
//! names a file holds before its own ([`temp`]), partial files
//! ([`partial`]), the directories kept open ([`reached`]) and the anchor
//! of a directory others write into ([`anchor`]).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode};
use nix::unistd::{linkat, unlinkat, UnlinkatFlags};

pub use crate::choices::{Clobber, OutputNames, Partial, Times, Update};
use crate::error::{Error, Result};
use crate::protocol::Stamp;

mod anchor;
mod partial;
mod path;
mod reached;
mod temp;
use anchor::Anchor;
use partial::record_name;
pub use partial::{Found, Kept};
pub use path::{dest_parts, names_a_directory, OutputPath};
use reached::{KeptDir, Reached};
use temp::{identity, temp_name, Record, Temp};

/// The permission bits a received file may get: never setuid, setgid or
/// sticky.
const PERMISSIONS: u32 = 0o777;

fn os(e: Errno) -> io::Error {
    io::Error::from(e)
}

/// The output directory, open.
#[derive(Debug)]
pub struct OutDir {
    /// Shared with the sinks of files that go straight into it: no
    /// descriptor is duplicated per file.
    fd: Arc<OwnedFd>,
    path: PathBuf,
    /// Whose replaced file lends the new one its permission bits.
    replaced: ReplacedMode,
    /// For a directory others write into: what each file's directory is
    /// checked against before and after the file is named.
    anchor: Option<Anchor>,
    /// Whether unnamed files may be linked by their descriptor
    /// (`AT_EMPTY_PATH`, which takes `CAP_DAC_READ_SEARCH`), shared with the
    /// sinks: cleared at the first `ENOENT`, after which they are linked
    /// through `/proc/self/fd`.
    link_by_fd: Arc<AtomicBool>,
    /// The directories last reached, kept open for the next file; none in
    /// a directory others write into (see [`reached`]).
    reached: Option<Reached>,
}

/// Which file under a target name lends its permission bits to the file
/// that replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplacedMode {
    /// Any regular file, as `cp` keeps the mode of the file it overwrites
    /// (a fetch: the user's own output directory).
    Kept,
    /// Only a file of this effective user (`uid`): a file someone else
    /// planted (world-writable, say) lends nothing, and the new file gets
    /// the bits it was created with (the server's `--accept` directory).
    KeptIfOwn { uid: u32 },
}

/// An error saying the directory a file goes into is no longer where it
/// was opened (kind `NotADirectory`, as a component not followed is: the
/// file would land outside the directory tree it was meant for).
fn moved(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::NotADirectory, what)
}

/// The directory a file goes into: the output directory itself, shared,
/// or a subdirectory opened for it (shared too: handing it on costs no
/// system call).
#[derive(Debug, Clone)]
enum DirFd {
    Top(Arc<OwnedFd>),
    Below(Arc<OwnedFd>),
}

/// A directory a sink made for its file, removed again if the file is
/// never named there (nothing is kept of a transfer that did not
/// complete, not even the directories made for it).
#[derive(Debug)]
struct Made {
    parent: DirFd,
    name: OsString,
}

/// How a directory below the output directory is opened: never through a
/// symlink.
const DIR_FLAGS: OFlag =
    OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_NOFOLLOW).union(OFlag::O_CLOEXEC);

/// A new file in `dir`, with permission bits `mode`: unnamed
/// (`O_TMPFILE`) where the filesystem can, else under a temporary name
/// (which comes with it).
fn start_file(dir: &DirFd, mode: Mode) -> nix::Result<(OwnedFd, Option<OsString>)> {
    let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
    match openat(dir, ".", flags | OFlag::O_TMPFILE, mode) {
        Ok(fd) => Ok((fd, None)),
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
            let flags = flags | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
            let mut tries = 0;
            loop {
                let name = temp_name().map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
                match openat(dir, name.as_os_str(), flags, mode) {
                    Ok(fd) => break Ok((fd, Some(name))),
                    Err(Errno::EEXIST) if tries < 8 => tries += 1,
                    Err(e) => break Err(e),
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Whether `dir` was removed (it has no links left).
fn is_removed(dir: &impl AsFd) -> bool {
    nix::sys::stat::fstat(dir).is_ok_and(|st| st.st_nlink == 0)
}

/// Directories below the output directory as a message names them:
/// joined by `/`, quoted as every message quotes a name (they came from
/// the server).
fn quote_dirs(dirs: &[OsString]) -> String {
    let joined = dirs.iter().collect::<PathBuf>();
    crate::text::quote_bytes(joined.as_os_str().as_bytes()).into_owned()
}

/// The error of opening `dirs[..=i]`, one component at a time.
fn component_error(dirs: &[OsString], i: usize, e: Errno) -> io::Error {
    let shown = quote_dirs(&dirs[..=i]);
    match e {
        Errno::ELOOP | Errno::ENOTDIR => {
            let why = format!("{shown} is a symlink or not a directory; not followed");
            io::Error::new(io::ErrorKind::NotADirectory, why)
        }
        e => io::Error::new(os(e).kind(), format!("{shown}: {}", os(e))),
    }
}

/// Opens `dirs[from..]` below `dir`, making each that is missing (and
/// noting it in `made`); another process that removes one again each time
/// (or puts something there and takes it away) gets a few more tries,
/// then an answer that says so.
fn make_dirs(mut dir: DirFd, dirs: &[OsString], from: usize, made: &mut Vec<Made>) -> io::Result<DirFd> {
    for (i, component) in dirs.iter().enumerate().skip(from) {
        let mut next = openat(&dir, component.as_os_str(), DIR_FLAGS, Mode::empty());
        let mut tries = 0;
        while matches!(next, Err(Errno::ENOENT)) {
            if tries == 8 {
                let shown = quote_dirs(&dirs[..=i]);
                return Err(moved(format!("{shown} was removed each time it was made")));
            }
            tries += 1;
            match mkdirat(&dir, component.as_os_str(), Mode::from_bits_truncate(0o777)) {
                Ok(()) => made.push(Made { parent: dir.clone(), name: component.clone() }),
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(os(e)),
            }
            next = openat(&dir, component.as_os_str(), DIR_FLAGS, Mode::empty());
        }
        dir = DirFd::Below(Arc::new(next.map_err(|e| component_error(dirs, i, e))?));
    }
    Ok(dir)
}

impl AsFd for DirFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Top(fd) => fd.as_fd(),
            DirFd::Below(fd) => fd.as_fd(),
        }
    }
}

impl OutDir {
    /// Opens `path`, which must be a directory (symlinks to one included:
    /// the user named it).
    ///
    /// # Errors
    ///
    /// The OS error, `ENOTDIR` for anything but a directory.
    pub fn open(path: &Path) -> io::Result<OutDir> {
        let fd =
            openat(AT_FDCWD, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(os)?;
        Ok(OutDir {
            fd: Arc::new(fd),
            path: path.to_owned(),
            replaced: ReplacedMode::Kept,
            anchor: None,
            link_by_fd: Arc::new(AtomicBool::new(true)),
            reached: Some(Reached::default()),
        })
    }

    /// Opens `path` as [`OutDir::open`] does, for files that others send
    /// (the server's `--accept` directory): a file replaced there lends
    /// its permission bits only when it is this user's own, and a file is
    /// named only while its directory is still in place below this one,
    /// checked before and after the naming ([`Sink::persist`]).
    ///
    /// # Errors
    ///
    /// As [`OutDir::open`].
    pub fn accepting(path: &Path) -> io::Result<OutDir> {
        let uid = nix::unistd::geteuid().as_raw();
        let dir = OutDir::open(path)?;
        let anchor = Anchor { fd: Arc::clone(&dir.fd), path: dir.path.clone() };
        Ok(OutDir { replaced: ReplacedMode::KeptIfOwn { uid }, anchor: Some(anchor), reached: None, ..dir })
    }

    /// Whether the directory opened at the start is still the one at its
    /// path (the path followed as it was when opened: it may be a symlink
    /// the user named) and not removed.
    ///
    /// # Errors
    ///
    /// Why not (kind `NotADirectory`), or the OS error of `stat`.
    pub fn check_in_place(&self) -> io::Result<()> {
        Anchor { fd: Arc::clone(&self.fd), path: self.path.clone() }.check_in_place()
    }

    /// Whether the directory opened at the start was removed since (it has
    /// no links left): nothing can be created in it any more.
    pub fn is_removed(&self) -> bool {
        nix::sys::stat::fstat(&self.fd).is_ok_and(|st| st.st_nlink == 0)
    }

    /// Whether something exists under `out` (a symlink counts; it is not
    /// followed).
    pub fn exists(&self, out: &OutputPath) -> bool {
        match self.parent(out) {
            Ok(Some(dir)) => fstatat(&dir, out.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok(),
            Ok(None) => false,
            Err(_) => false,
        }
    }

    /// Whether a directory (not a symlink to one) stands at `out`: no file
    /// can be named there.
    pub fn is_directory(&self, out: &OutputPath) -> bool {
        match self.parent(out) {
            Ok(Some(dir)) => fstatat(&dir, out.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR),
            _ => false,
        }
    }

    /// The deepest existing directory of `out`'s path, opened one
    /// component at a time without following symlinks (from the deepest
    /// one kept open on the way, [`reached`]), and how many of `out`'s
    /// directories it is below this one.
    fn reach(&self, out: &OutputPath) -> io::Result<(DirFd, usize)> {
        let (from, kept) = self.reached.as_ref().map_or((0, None), |r| r.deepest_of(&*self.fd, &out.dirs));
        let mut dir = kept.clone().map_or_else(|| DirFd::Top(Arc::clone(&self.fd)), DirFd::Below);
        let mut opened = Vec::new();
        let mut depth = out.dirs.len();
        for (i, component) in out.dirs.iter().enumerate().skip(from) {
            match openat(&dir, component.as_os_str(), DIR_FLAGS, Mode::empty()) {
                Ok(fd) => {
                    let fd = Arc::new(fd);
                    if self.reached.is_some() {
                        let id = nix::sys::stat::fstat(&*fd).map_err(os)?;
                        opened.push(KeptDir {
                            name: component.clone(),
                            fd: Arc::clone(&fd),
                            id: identity(&id),
                        });
                    }
                    dir = DirFd::Below(fd);
                }
                Err(Errno::ENOENT) => {
                    depth = i;
                    break;
                }
                Err(e) => return Err(component_error(&out.dirs, i, e)),
            }
        }
        if let (Some(reached), false) = (&self.reached, opened.is_empty()) {
            reached.keep(from, kept.as_ref(), opened);
        }
        Ok((dir, depth))
    }

    /// The directory `out` goes into, if it exists: opened one component
    /// at a time without following symlinks.
    fn parent(&self, out: &OutputPath) -> io::Result<Option<DirFd>> {
        let (dir, depth) = self.reach(out)?;
        Ok((depth == out.dirs.len()).then_some(dir))
    }

    /// Starts a file for `out` whose source has permission bits `mode`: an
    /// unnamed file (`O_TMPFILE`) where the filesystem can, else a named
    /// temporary file, created with `mode` masked by the umask and without
    /// setuid, setgid and sticky bits.
    ///
    /// # Errors
    ///
    /// The OS error, with the directory component it is about.
    pub fn create(&self, out: &OutputPath, mode: u32) -> io::Result<Sink> {
        // The file starts in the deepest directory of its path that exists;
        // the missing ones are made when it is named (same filesystem: no
        // mount point can be among directories not made yet).
        let mode = Mode::from_bits_truncate(mode & PERMISSIONS);
        let (mut dir, mut depth) = self.reach(out)?;
        let (fd, name) = match start_file(&dir, mode) {
            // A directory kept open was removed since: reached anew (and
            // made again when the file is named), as if never kept.
            Err(Errno::ENOENT | Errno::EPERM) if self.reached.is_some() && is_removed(&dir) => {
                self.reached.as_ref().map(Reached::forget);
                (dir, depth) = self.reach(out)?;
                start_file(&dir, mode)
            }
            started => started,
        }
        .map_err(|e| self.creation_error(out, &dir, e))?;
        let temp = name.map(|name| Temp::of(name, &fd)).transpose().map_err(os)?;
        Ok(Sink {
            file: Some(File::from(fd)),
            dir,
            depth,
            made: Vec::new(),
            temp,
            target: out.clone(),
            shown: self.path.join(out.shown_path()),
            record: None,
            mode: None,
            replaced: self.replaced,
            anchor: self.anchor.clone(),
            link_by_fd: Arc::clone(&self.link_by_fd),
        })
    }

    /// The error of creating a file for `out` in `dir`: `e`, unless `dir`
    /// was removed meanwhile (a file cannot be created in a removed
    /// directory: `ENOENT` or `EPERM` say it badly), which it says.
    fn creation_error(&self, out: &OutputPath, dir: &DirFd, e: Errno) -> io::Error {
        if matches!(dir, DirFd::Top(_)) || !nix::sys::stat::fstat(dir).is_ok_and(|st| st.st_nlink == 0) {
            return os(e);
        }
        let shown = quote_dirs(&out.dirs);
        moved(format!("{shown} was removed while the file was created there"))
    }
}

/// What `st` is when it is a device, a FIFO or a socket: something a file
/// is never renamed over.
fn special_kind(st: &nix::sys::stat::FileStat) -> Option<&'static str> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => Some("a character device"),
        libc::S_IFBLK => Some("a block device"),
        libc::S_IFIFO => Some("a FIFO"),
        libc::S_IFSOCK => Some("a socket"),
        _ => None,
    }
}

impl OutDir {
    /// The size and mtime of the regular file at `out`, if there is one
    /// (a symlink is not followed and counts as none).
    pub fn stamp(&self, out: &OutputPath) -> Option<Stamp> {
        let dir = self.parent(out).ok()??;
        let st = fstatat(&dir, out.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        (st.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| Stamp {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: st.st_mtime.saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec),
        })
    }
}

impl Made {
    /// Removes the directory if it is (still) empty.
    fn undo(&self) {
        let _ = unlinkat(&self.parent, self.name.as_os_str(), UnlinkatFlags::RemoveDir);
    }
}

/// Directories made for a file not started yet: removed again unless
/// [`MadeGuard::keep`] takes them.
#[derive(Debug)]
struct MadeGuard(Vec<Made>);

impl MadeGuard {
    fn keep(mut self) -> Vec<Made> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for MadeGuard {
    fn drop(&mut self) {
        self.0.iter().rev().for_each(Made::undo);
    }
}

/// A file being received. Dropped before [`Sink::persist`], it leaves
/// nothing: an unnamed file vanishes, a named one is removed.
#[derive(Debug)]
pub struct Sink {
    /// Written in [`crate::os::sys::IO_CHUNK`] pieces by the caller; `None` once
    /// persisted.
    file: Option<File>,
    /// The deepest directory of the target's path that existed when the
    /// file was started (the target's own directory once it is made).
    dir: DirFd,
    /// How many of the target's directories `dir` is below the output
    /// directory: the rest are made when the file is named.
    depth: usize,
    /// The directories made for the file, innermost last: removed again
    /// (when empty) if the file is never named.
    made: Vec<Made>,
    /// The name of a named temporary file in `dir`; `None` for an unnamed
    /// one.
    temp: Option<Temp>,
    target: OutputPath,
    shown: PathBuf,
    /// The record of a partial file, removed with it, and only while its
    /// name still names it: another client may have taken the name (the
    /// partial moved away, or named, and a new transfer begun under it).
    record: Option<Record>,
    /// The permission bits a resumed partial file gets when it is named;
    /// `None` for a file created with them.
    mode: Option<Mode>,
    /// Whose file under the target name lends the new one its bits.
    replaced: ReplacedMode,
    /// The directory the target's directory must still be below when the
    /// file is named (a directory others write into).
    anchor: Option<Anchor>,
    /// The output directory's `link_by_fd`, shared.
    link_by_fd: Arc<AtomicBool>,
}

impl Sink {
    /// Appends `bytes` to the file.
    ///
    /// # Errors
    ///
    /// The OS error from `write`.
    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.write_all(bytes),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// Gives the verified file its final name, replacing an existing file
    /// atomically (keeping that file's permission bits, as `cp` does)
    /// unless [`Clobber::Keep`].
    ///
    /// # Errors
    ///
    /// [`Error::Os`] naming the target; with [`Clobber::Keep`], `EEXIST`
    /// when the name exists.
    pub fn persist(mut self, clobber: Clobber) -> Result<()> {
        let no_clobber = matches!(clobber, Clobber::Keep | Clobber::Skip);
        let shown = self.shown.display().to_string();
        let failed = |op: &'static str| {
            let shown = shown.clone();
            move |e: Errno| Error::os_named(op, &shown, os(e))
        };
        let file = self.file.take().ok_or_else(|| failed("write")(Errno::EBADF))?;
        let name = self.target.name.clone();
        if let Some(mode) = self.mode {
            fchmod(&file, mode).map_err(failed("chmod"))?;
        }
        let named_in = |e: io::Error| Error::os_named("name", &shown, e);
        if let Some(anchor) = &self.anchor {
            anchor.check_below(&self.target.dirs[..self.depth], &self.dir).map_err(named_in)?;
        }
        let dir = self.target_dir().map_err(named_in)?;
        // A name that could not be given because its directory was removed
        // meanwhile (replaced by another rename) says so.
        let failed = |op: &'static str| {
            let (shown, removed) =
                (shown.clone(), || nix::sys::stat::fstat(&dir).is_ok_and(|st| st.st_nlink == 0));
            move |e: Errno| match e {
                Errno::ENOENT if removed() => {
                    let why = format!("the directory of {shown} was removed while the file was named");
                    Error::os_named(op, &shown, moved(why))
                }
                e => Error::os_named(op, &shown, os(e)),
            }
        };
        if self.temp.is_none() {
            // Most names are new: one link, one directory operation, as a
            // plain create would be. Only an existing name takes the longer
            // way below (its permission bits, a rename over it).
            match self.link_unnamed(&file, &dir, &name) {
                Ok(()) => return self.named(&dir, &file),
                Err(Errno::EEXIST) if !no_clobber => {}
                Err(e) => return Err(failed("link")(e)),
            }
        }
        self.before_replacing(&dir, &file, no_clobber)?;
        let (temp, temp_dir) = match self.temp.clone() {
            Some(temp) if temp.names_it_in(&self.dir) => (temp.name, self.dir.clone()),
            Some(temp) => {
                // Not this file's any more: left to whoever put it there.
                self.temp = None;
                let why = format!(
                    "{} was moved or replaced while the file was written there; not named",
                    crate::text::quote_bytes(temp.name.as_bytes())
                );
                return Err(Error::os_named("rename", &shown, io::Error::other(why)));
            }
            None if no_clobber => {
                self.link_unnamed(&file, &dir, &name).map_err(failed("link"))?;
                return self.named(&dir, &file);
            }
            None => {
                // Link under a temporary name beside it, then rename over.
                let temp = temp_name().map_err(|e| Error::os("getrandom", e))?;
                self.link_unnamed(&file, &dir, &temp).map_err(failed("link"))?;
                // Now a named temporary file, in the target's directory.
                self.dir = dir.clone();
                self.temp = Some(Temp::of(temp.clone(), &file).map_err(failed("fstat"))?);
                (temp, dir.clone())
            }
        };
        if no_clobber {
            linkat(&temp_dir, temp.as_os_str(), &dir, name.as_os_str(), AtFlags::empty())
                .map_err(failed("link"))?;
        } else {
            renameat(&temp_dir, temp.as_os_str(), &dir, name.as_os_str()).map_err(failed("rename"))?;
            self.temp = None;
        }
        // A temporary name still there is removed on drop.
        self.named(&dir, &file)
    }

    /// What is checked of the entry at the target's name in `dir` before
    /// `file` takes the name: with `no_clobber` there must be none (else
    /// `EEXIST`); a device, a FIFO or a socket is never replaced (only ever
    /// a regular file, or a symlink itself); a regular file replaced lends
    /// `file` its permission bits, as `cp` keeps them (in a directory others
    /// write into, only a file of this user does).
    fn before_replacing(&self, dir: &DirFd, file: &File, no_clobber: bool) -> Result<()> {
        let shown = self.shown.display().to_string();
        let existing = fstatat(dir, self.target.name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        if no_clobber && existing.is_some() {
            return Err(Error::os_named("link", &shown, os(Errno::EEXIST)));
        }
        if let Some(kind) = existing.as_ref().and_then(special_kind) {
            let why = format!("{shown} is {kind}; not replaced");
            return Err(Error::os_named("rename", &shown, io::Error::new(io::ErrorKind::AlreadyExists, why)));
        }
        let lends = |st: &nix::sys::stat::FileStat| match self.replaced {
            ReplacedMode::Kept => true,
            ReplacedMode::KeptIfOwn { uid } => st.st_uid == uid,
        };
        if let Some(st) = existing.filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && lends(st)) {
            let keep = Mode::from_bits_truncate(st.st_mode & PERMISSIONS);
            fchmod(file, keep).map_err(|e| Error::os_named("chmod", &shown, os(e)))?;
        }
        Ok(())
    }

    /// The target's own directory, its missing directories made.
    fn target_dir(&mut self) -> io::Result<DirFd> {
        make_dirs(self.dir.clone(), &self.target.dirs, self.depth, &mut self.made)
    }

    /// What follows the naming of `file` in `dir`: in a directory others
    /// write into, the check that `dir` was still in place when the file
    /// got its name, else the name is taken back (a file is reported
    /// stored only where it was meant to go); in the user's own, the
    /// removal of a partial file left for that name by an earlier run cut
    /// off (it belonged to that transfer, which this one completed), unless
    /// another client is writing it now.
    fn named(&mut self, dir: &DirFd, file: &File) -> Result<()> {
        let name = self.target.name.clone();
        if let Some(anchor) = &self.anchor {
            if let Err(e) = anchor.check_below(&self.target.dirs, dir) {
                let ours = nix::sys::stat::fstat(file).ok().map(|st| identity(&st));
                let there = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).ok();
                if ours.is_some() && there.map(|st| identity(&st)) == ours {
                    let _ = unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
                }
                return Err(Error::os_named("name", &self.shown.display().to_string(), e));
            }
        } else {
            match self.record.take() {
                // This file's own record, if it is still there.
                Some(record) => record.remove_from(dir),
                // A partial is never named before its record: where none
                // is, nothing more is looked for.
                None if fstatat(dir, record_name(&name).as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok() =>
                {
                    partial::remove_unless_written(dir, &name);
                }
                None => {}
            }
        }
        self.made.clear();
        Ok(())
    }

    /// Gives the unnamed file `file` the name `name` in the sink's directory.
    fn link_unnamed(&self, file: &File, dir: &DirFd, name: &(impl AsRef<OsStr> + ?Sized)) -> nix::Result<()> {
        let name = name.as_ref();
        if self.link_by_fd.load(Ordering::Relaxed) {
            // One call, no path through procfs; without the capability it
            // fails with ENOENT, and this directory's files go by /proc.
            match linkat(file, "", dir, name, AtFlags::AT_EMPTY_PATH) {
                Err(Errno::ENOENT) => self.link_by_fd.store(false, Ordering::Relaxed),
                done => return done,
            }
        }
        let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        linkat(AT_FDCWD, proc_path.as_str(), dir, name, AtFlags::AT_SYMLINK_FOLLOW)
    }
}

impl Sink {
    /// Gives the file the modification time `mtime_ns` (ns since the
    /// epoch), its access time now: `--preserve`, before it is named.
    ///
    /// # Errors
    ///
    /// The OS error from `futimens`.
    pub fn set_mtime(&self, mtime_ns: i64) -> io::Result<()> {
        let file = self.file.as_ref().ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        let secs = mtime_ns.div_euclid(1_000_000_000);
        let nanos = mtime_ns.rem_euclid(1_000_000_000);
        let mtime = nix::sys::time::TimeSpec::new(secs, nanos);
        nix::sys::stat::futimens(file, &nix::sys::time::TimeSpec::UTIME_NOW, &mtime).map_err(os)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.as_ref().filter(|temp| temp.names_it_in(&self.dir)) {
            let _ = unlinkat(self.dir.as_fd(), temp.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        // A resumed partial that is gone (named, or failed) takes its record.
        if let Some(record) = &self.record {
            record.remove_from(&self.dir);
        }
        // Directories made for a file never named go too, innermost first.
        self.made.iter().rev().for_each(Made::undo);
    }
}

#[cfg(test)]
mod tests;
