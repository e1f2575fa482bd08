//! Partial files kept for resuming (`--continue`): a cut-off transfer's
//! bytes as `.shmxfer-partial.<name>` beside where the file goes, and beside
//! it `.shmxfer-partial.<name>.source`, one line `SIZE MTIME_NS` recording
//! the source's size and mtime as its `Start` frame told them. The record
//! is named before the bytes get their name, so a partial without a record
//! is never resumed. A name too long for these prefixes keeps nothing.
//!
//! The client writing a partial holds its `flock()` lock for as long as it
//! has the file open (the kernel drops it when the client dies: a partial
//! a `SIGKILL` left is free again). A partial whose lock another holds is
//! a live transfer's: it is neither resumed nor removed, nor are its names
//! taken, whoever finds it (a second `-C` client of the same name, a fetch
//! that delivers that name, a record found unusable), so that a sink only
//! ever names or removes the file it wrote.

use super::*;

/// A partial file kept for resuming, found in the output directory: its
/// bytes (open, for reading and appending) and the source's stamp it was
/// cut from.
#[derive(Debug)]
pub struct Kept {
    file: File,
    /// Its record.
    record: Record,
    /// Its length: where the transfer resumes.
    pub len: u64,
    /// The source's size and mtime when it was cut off.
    pub stamp: Stamp,
}

/// What [`OutDir::kept`] finds for a file.
#[derive(Debug)]
pub enum Found {
    /// No record of a partial file: the file is fetched whole.
    Nothing,
    /// A partial file and its record, to be resumed if the source is
    /// still the one it was cut from.
    Kept(Kept),
    /// A partial file or record not to be trusted (not a regular file,
    /// another user's, writable by others, linked elsewhere, unreadable):
    /// the file is fetched whole, and the names are removed
    /// ([`OutDir::discard_kept`]), never written through.
    Unusable,
    /// A partial file that another client is writing now (it holds its
    /// lock): the file is fetched whole, and its names are left to it.
    Busy,
}

/// Whether `st` is a regular file of one link, owned by the effective
/// user and writable by no one else: a partial file (or record) this
/// user's client left, safe to resume.
fn is_own_file(st: &nix::sys::stat::FileStat) -> bool {
    is_users_file(st) && st.st_nlink == 1 && st.st_mode & 0o022 == 0
}

/// Whether `st` is a regular file owned by the effective user: the only
/// kind of file a client of this user can be writing as a partial.
fn is_users_file(st: &nix::sys::stat::FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_uid == nix::unistd::geteuid().as_raw()
}

/// Opens the name `name` of a partial file or record in `dir` for `access`
/// without following a symlink and without blocking (`O_NONBLOCK`: a FIFO
/// never hangs), and `fstat`s it: what is checked before anything under a
/// partial's names is trusted or looked at.
fn open_unfollowed(
    dir: &impl AsFd,
    name: &OsStr,
    access: OFlag,
) -> nix::Result<(OwnedFd, nix::sys::stat::FileStat)> {
    let flags = access | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, name, flags, Mode::empty())?;
    let st = nix::sys::stat::fstat(&fd)?;
    Ok((fd, st))
}

/// Takes the lock that makes this client the one writing `file`, a
/// partial file: `false` when another client holds it (or it cannot be
/// taken). It lasts while the file stays open.
fn claim(file: &impl AsFd) -> bool {
    crate::os::sys::try_flock_exclusive(file).unwrap_or(false)
}

/// Removes the partial file of `name` in `dir` and its record, unless
/// another client is writing the partial (holds its lock): `false` then,
/// and both are left. The one way a partial's names are removed but by
/// the sink that wrote it: its lock is held while they go, so no client
/// takes it meanwhile. Only a regular file of this user can be a partial
/// a client of this user writes: the lock of another user's file (any
/// user may lock a file of their own, named like a partial in a shared
/// directory) is not looked at; its names are removed where the
/// directory lets them go, as any other user's partial names are.
pub(super) fn remove_unless_written(dir: &impl AsFd, name: &OsStr) -> bool {
    let (partial, record) = (partial_name(name), record_name(name));
    // Held open (and locked, if it is this user's) while the names go.
    let held = open_unfollowed(dir, &partial, OFlag::O_RDONLY);
    if let Ok((fd, st)) = &held {
        if is_users_file(st) && !claim(fd) {
            return false;
        }
    }
    for name in [record, partial] {
        let _ = unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    true
}

/// The error of a partial file that another client is writing.
fn busy() -> io::Error {
    io::Error::new(io::ErrorKind::ResourceBusy, "another client is writing this file's partial file")
}

/// The mode a kept partial file has until it is delivered: the user's
/// alone, whatever the source's.
pub(super) const PARTIAL_MODE: u32 = 0o600;

/// The process's umask, as `/proc/self/status` tells it (read, never set:
/// setting it to read it would race with any file created meanwhile);
/// where it cannot be read, the strictest one.
pub(super) fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
            u32::from_str_radix(line.trim(), 8).ok()
        })
        .unwrap_or(0o077)
}

impl Kept {
    /// Reads the kept bytes from the start, handing them to `each` in
    /// pieces (to hash them again), and leaves the file at its end.
    ///
    /// # Errors
    ///
    /// The OS error from `read`; a file shorter than it was.
    pub fn read_through(&mut self, each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        use std::io::{Read, Seek};
        self.file.rewind()?;
        let mut buf = vec![0; crate::os::sys::IO_CHUNK];
        let mut left = self.len;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the partial file shrank"));
            }
            each(&buf[..n]);
            left -= n as u64;
        }
        self.file.set_len(self.len)
    }
}

/// The name of the partial file of `name`.
pub(super) fn partial_name(name: &OsStr) -> OsString {
    let mut partial = OsString::from(".shmxfer-partial.");
    partial.push(name);
    partial
}

/// The name of the record beside the partial file of `name`.
pub(super) fn record_name(name: &OsStr) -> OsString {
    let mut record = partial_name(name);
    record.push(".source");
    record
}

impl OutDir {
    /// What `--continue` finds for `out`: a partial file and its record
    /// that may be resumed, nothing (no record), or something under those
    /// names not to be resumed. Each name is opened without following a
    /// symlink and without blocking (`O_NONBLOCK`: a FIFO never hangs), and
    /// checked with `fstat`: only a regular file of one link, owned by the
    /// effective user and writable by no one else, is taken, and only if
    /// no other client is writing it (its lock is taken, and held by the
    /// [`Kept`]).
    pub fn kept(&self, out: &OutputPath) -> Found {
        let Ok(Some(dir)) = self.parent(out) else { return Found::Nothing };
        let open = |name: OsString, access: OFlag| open_unfollowed(&dir, &name, access);
        let mut record = match open(record_name(&out.name), OFlag::O_RDONLY) {
            Ok((fd, st)) if is_own_file(&st) => Record {
                name: Temp { name: record_name(&out.name), id: identity(&st) },
                file: File::from(fd),
            },
            Err(Errno::ENOENT) => return Found::Nothing,
            _ => return Found::Unusable,
        };
        let mut text = String::new();
        // A record is one short line; anything longer is not one.
        if io::Read::read_to_string(&mut io::Read::take(&mut record.file, 64), &mut text).is_err() {
            return Found::Unusable;
        }
        let mut words = text.split_whitespace();
        let size = words.next().and_then(|w| w.parse().ok());
        let mtime_ns = words.next().and_then(|w| w.parse().ok());
        let (Some(size), Some(mtime_ns)) = (size, mtime_ns) else { return Found::Unusable };
        let stamp = Stamp { size, mtime_ns };
        let (fd, st) = match open(partial_name(&out.name), OFlag::O_RDWR) {
            Ok((fd, st)) if is_own_file(&st) => (fd, st),
            _ => return Found::Unusable,
        };
        if !claim(&fd) {
            return Found::Busy;
        }
        // Appended to as any file is: blocking again.
        let blocking = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL).and_then(|flags| {
            let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
        });
        if blocking.is_err() {
            return Found::Unusable;
        }
        let len = u64::try_from(st.st_size).unwrap_or(0);
        Found::Kept(Kept { file: File::from(fd), record, len, stamp })
    }

    /// Removes the partial file of `out` and its record, if any, unless
    /// another client is writing it (a [`Kept`] of this client's is
    /// dropped first).
    pub fn discard_kept(&self, out: &OutputPath) {
        if let Ok(Some(dir)) = self.parent(out) {
            remove_unless_written(&dir, &out.name);
        }
    }

    /// Goes on writing the partial file `kept` for `out`: a sink whose
    /// bytes so far are the partial's; persisted, it takes the final name
    /// and the record goes, and the source's permission bits `mode` masked
    /// by the umask (as a new file gets them; the partial was the user's
    /// alone); dropped, both go.
    ///
    /// # Errors
    ///
    /// The OS error opening the directory.
    pub fn resume(&self, out: &OutputPath, kept: Kept, mode: u32) -> io::Result<Sink> {
        let dir = self.parent(out)?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        self.partial_sink(out, dir, kept.file, kept.record, Vec::new(), mode)
    }

    /// Starts a file for `out` that is kept for resuming if it is cut off
    /// ([`Partial::Keep`]), whatever cuts it: the record of the source's
    /// `stamp` is named first, then the file is created under its partial
    /// name (and its lock taken), so that from its first byte it survives
    /// even a `SIGKILL` or a power cut. Persisted, it takes its final name
    /// and the record goes; dropped without [`Sink::keep_partial`] (bytes
    /// that proved wrong), both go.
    ///
    /// # Errors
    ///
    /// The OS error making its directories, naming the record or creating
    /// the file (`ENAMETOOLONG` for a name too long for the prefix); kind
    /// `ResourceBusy` when another client is writing a partial of that
    /// name (its names are left to it).
    pub fn create_partial(&self, out: &OutputPath, mode: u32, stamp: Stamp) -> io::Result<Sink> {
        let (dir, depth) = self.reach(out)?;
        let mut made = Vec::new();
        let dir = make_dirs(dir, &out.dirs, depth, &mut made)?;
        let made = MadeGuard(made);
        let (partial, record) = (partial_name(&out.name), record_name(&out.name));
        // Whatever was there is not this transfer's: it goes first, unless
        // it is another client's live transfer.
        if !remove_unless_written(&dir, &out.name) {
            return Err(busy());
        }
        let record = write_record(&dir, record, stamp)?;
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(&dir, partial.as_os_str(), flags, Mode::from_bits_truncate(PARTIAL_MODE)) {
            Ok(fd) => fd,
            Err(e) => {
                record.remove_from(&dir);
                return Err(os(e));
            }
        };
        // Another client that found it first (between its naming and this
        // lock) resumes it: it is that client's now.
        if !claim(&fd) {
            return Err(busy());
        }
        self.partial_sink(out, dir, File::from(fd), record, made.keep(), mode)
    }

    /// A sink writing `file`, the partial file of `out` in `dir`, with its
    /// record beside it.
    fn partial_sink(
        &self,
        out: &OutputPath,
        dir: DirFd,
        file: File,
        record: Record,
        made: Vec<Made>,
        mode: u32,
    ) -> io::Result<Sink> {
        let temp = Temp::of(partial_name(&out.name), &file).map_err(os)?;
        Ok(Sink {
            file: Some(file),
            dir,
            depth: out.dirs.len(),
            made,
            temp: Some(temp),
            target: out.clone(),
            shown: self.path.join(out.shown_path()),
            record: Some(record),
            mode: Some(Mode::from_bits_truncate(mode & PERMISSIONS & !umask())),
            replaced: self.replaced,
            anchor: self.anchor.clone(),
            link_by_fd: Arc::clone(&self.link_by_fd),
        })
    }
}

/// Names the record of a partial file: one line, `SIZE MTIME_NS`, written
/// under a temporary name and renamed to `record` in `dir`; with the
/// identity of the file it names.
fn write_record(dir: &DirFd, record: OsString, stamp: Stamp) -> io::Result<Record> {
    let temp = temp_name()?;
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, temp.as_os_str(), flags, Mode::from_bits_truncate(PARTIAL_MODE)).map_err(os)?;
    let mut file = File::from(fd);
    let written = file.write_all(format!("{} {}\n", stamp.size, stamp.mtime_ns).as_bytes());
    let named = written.and_then(|()| Temp::of(record.clone(), &file).map_err(os)).and_then(|named| {
        renameat(dir, temp.as_os_str(), dir, record.as_os_str()).map(|()| named).map_err(os)
    });
    if named.is_err() {
        let _ = unlinkat(dir, temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
    }
    named.map(|name| Record { name, file })
}

impl Sink {
    /// Keeps what was written as the partial file of its target, for a
    /// later run to resume ([`Partial::Keep`]): a sink started as one
    /// ([`OutDir::create_partial`], [`OutDir::resume`]) was named so from
    /// its first byte, its record beside it, and both stay, the user's
    /// alone (mode 0600).
    ///
    /// # Errors
    ///
    /// Kind `Unsupported` for a sink not started as a partial file (the
    /// partial's names were another's, or too long for the prefix): it
    /// keeps nothing, as it never had the partial's names to keep.
    pub fn keep_partial(mut self) -> io::Result<()> {
        if self.temp.as_ref().map(|temp| temp.name.as_os_str())
            != Some(partial_name(&self.target.name).as_os_str())
        {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "not started as a partial file"));
        }
        (self.temp, self.record) = (None, None);
        self.made.clear();
        Ok(())
    }
}
