//! Serving one file through a session's [`Producer`]: open it with the
//! confined opener, stream it as Start, Data..., End with its checksum (the
//! End folded into the last data frame, `DataEnd`, where both fit one slot)
//! — or answer why not (not found, refused, failed) with a reason code.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::stat::FileStat;
use nix::sys::statfs::{
    FsType, BTRFS_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC,
    ISOFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, PROC_SUPER_MAGIC, SECURITYFS_MAGIC, SYSFS_MAGIC, TMPFS_MAGIC,
    TRACEFS_MAGIC, XFS_SUPER_MAGIC,
};
use xxhash_rust::xxh3::Xxh3;

use crate::error::Result;
use crate::fs::source::{FileKind, OpenFailure, Root, Snapshot};
use crate::os::sys::IO_CHUNK;
use crate::protocol::{
    DataEnd, GetCondition, ReasonCode, Reply, Stamp, StartFlags, MAX_UNKNOWN_SIZE, MODE_BITS,
};
use crate::shm_region::ring::Producer;
use crate::text::byte_count;
use crate::transfer::Meter;

/// What became of one file request, as far as the server knows.
#[derive(Debug)]
pub(crate) enum Served {
    /// Sent whole (from the offset asked for): this many bytes.
    Sent(u64),
    /// The client's copy is up to date: nothing sent.
    UpToDate,
    /// Answered with this negative reply (not found, refused, error).
    Answered(Reply),
}

/// A refusal with its code and the text beside it.
pub(crate) fn refused(code: ReasonCode, reason: impl Into<String>) -> Reply {
    Reply::Refused { code, reason: reason.into() }
}

/// A failure on the server's side with its code and the text beside it.
fn failed(code: ReasonCode, reason: impl Into<String>) -> Reply {
    Reply::Error { code, reason: reason.into() }
}

/// How the client is told that `path` was not opened.
fn refusal(path: &str, why: OpenFailure) -> Reply {
    match why {
        OpenFailure::Missing => Reply::NotFound,
        OpenFailure::OutsideRoot => {
            refused(ReasonCode::OutsideRoot, format!("{path} leads outside the served directory"))
        }
        OpenFailure::PermissionDenied => refused(ReasonCode::PermissionDenied, "permission denied"),
        OpenFailure::NameTooLong => refused(ReasonCode::NameTooLong, "name too long"),
        OpenFailure::InvalidPath => refused(ReasonCode::InvalidPath, "invalid path"),
        OpenFailure::OutOfResources(e) => {
            refused(ReasonCode::OutOfResources, format!("the server is out of resources: {e}"))
        }
        OpenFailure::WrongKind(kind) => {
            let code = match kind {
                FileKind::Directory => ReasonCode::IsDirectory,
                _ => ReasonCode::NotRegular,
            };
            refused(code, format!("{path} is {}", kind.text()))
        }
        OpenFailure::Os(e) => failed(ReasonCode::Other, format!("opening {path}: {e}")),
    }
}

/// Sends the answer that a file is not served (not found, refused, failed).
fn send_negative(tx: &mut Producer, seq: u32, reply: Reply) -> Result<Served> {
    tx.send(seq, &reply)?;
    Ok(Served::Answered(reply))
}

/// What a `Get` asks besides its path: from which byte, on what condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ask {
    pub(crate) offset: u64,
    pub(crate) condition: GetCondition,
}

/// One request for a file: its sequence number, its path (bytes, as the
/// client sent it), and what else it asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileRequest<'a> {
    pub(crate) seq: u32,
    pub(crate) path: &'a [u8],
    pub(crate) ask: Ask,
}

/// What [`Ask`] comes to for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// The client's copy is up to date: a `Start` with
    /// [`StartFlags::UP_TO_DATE`] and nothing else.
    UpToDate,
    /// Send from this byte on (0: the whole file), hashing the bytes before
    /// it too.
    From(u64),
}

impl Ask {
    /// The plan for a source of `stamp` and `size`. An offset holds only
    /// within a file of known size (and with [`GetCondition::IfSame`] only
    /// while the source has the stamp the client kept); a file of unknown
    /// size is never up to date.
    fn plan(self, stamp: Stamp, size: Size) -> Plan {
        let Size::Known(known) = size else {
            return Plan::From(0);
        };
        let offset = Plan::From(if self.offset <= known { self.offset } else { 0 });
        match self.condition {
            GetCondition::Always => offset,
            GetCondition::IfSame(kept) if kept == stamp => offset,
            GetCondition::IfSame(_) => Plan::From(0),
            GetCondition::UnlessUpToDate(copy)
                if copy.size == stamp.size && stamp.mtime_ns <= copy.mtime_ns =>
            {
                Plan::UpToDate
            }
            GetCondition::UnlessUpToDate(_) => offset,
        }
    }
}

/// The size and modification time of `st`, the time in ns since the epoch.
fn stamp_of(st: &FileStat) -> Stamp {
    let mtime_ns = st.st_mtime.saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec);
    Stamp { size: u64::try_from(st.st_size).unwrap_or(0), mtime_ns }
}

/// Serves the file `request.path` below `root` as the answer to request
/// `request.seq`, reading through `buf`, and keeps `stats` up to date. With
/// an offset (`request.ask`), the bytes before it are read and hashed but not sent: the `End`
/// frame counts and hashes the whole file. Once `cancelled` holds `seq` (the
/// client's `Cancel`), the file ends at the next chunk with an `Error` of
/// [`ReasonCode::Cancelled`].
///
/// # Errors
///
/// What [`Producer::send`] returns: the client gone, the session stalled or
/// cancelled. A file that cannot be served is answered, not an error.
pub(crate) fn send_file(
    tx: &mut Producer,
    root: &Root,
    request: FileRequest<'_>,
    buf: &mut Vec<u8>,
    stats: &dyn Meter,
    cancelled: &AtomicU32,
) -> Result<Served> {
    let FileRequest { seq, path: raw_path, ask } = request;
    // The path is bytes; its messages and the status show it as text.
    let shown = String::from_utf8_lossy(raw_path);
    let path: &str = &shown;
    let (mut file, st) = match root.open_file(raw_path) {
        Ok(opened) => opened,
        Err(why) => return send_negative(tx, seq, refusal(path, why)),
    };
    let stated = u64::try_from(st.st_size).unwrap_or(0);
    let (size, reads) = classify(&file, stated);
    let noted = Snapshot::of(&st);
    stats.begin(path, stated);
    let flags = match size {
        Size::Known(_) => StartFlags::NONE,
        Size::Unknown => StartFlags::SIZE_UNKNOWN,
    };
    let stamp = stamp_of(&st);
    let mode = st.st_mode & MODE_BITS;
    let offset = match ask.plan(stamp, size) {
        Plan::UpToDate => {
            let flags = flags.with(StartFlags::UP_TO_DATE);
            tx.send(seq, &Reply::Start { size: stated, mode, flags, mtime_ns: stamp.mtime_ns })?;
            return Ok(Served::UpToDate);
        }
        Plan::From(offset) => offset,
    };
    let flags = if offset > 0 { flags.with(StartFlags::FROM_OFFSET) } else { flags };
    tx.send(seq, &Reply::Start { size: stated, mode, flags, mtime_ns: stamp.mtime_ns })?;
    let mut hasher = Xxh3::new();
    // Read in large pieces and hand them out slot by slot: one read() per
    // IO_CHUNK bytes, not one per slot.
    buf.resize(IO_CHUNK, 0);
    let mut sent = 0u64;
    let max = tx.max_payload();
    // The last piece of a file of known size, held back in `buf` to go with
    // the end in one frame once the file is known not to have changed.
    let mut last: Option<std::ops::Range<usize>> = None;
    loop {
        // Known size: exactly that many bytes. Unknown: to the end of the
        // file, reading one byte past the bound to see it is passed.
        let left = match size {
            Size::Known(size) => size - sent,
            Size::Unknown => (MAX_UNKNOWN_SIZE + 1).saturating_sub(sent),
        };
        if left == 0 {
            break;
        }
        if cancelled.load(Ordering::Acquire) == seq {
            return send_negative(tx, seq, failed(ReasonCode::Cancelled, "cancelled by the client"));
        }
        let want = left.min(buf.len() as u64) as usize;
        if reads == Reads::MayBlock {
            // Whatever this read waits for (a FUSE daemon, a server across
            // the network), other sessions stream meanwhile.
            tx.yield_turn();
        }
        let n = match file.read(&mut buf[..want]) {
            Ok(0) if size == Size::Unknown => break,
            Ok(0) => {
                return send_negative(
                    tx,
                    seq,
                    failed(ReasonCode::Changed, format!("{path} shrank while it was sent")),
                )
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return send_negative(tx, seq, failed(ReasonCode::ReadFailed, format!("reading {path}: {e}")))
            }
        };
        if size == Size::Unknown && sent + n as u64 > MAX_UNKNOWN_SIZE {
            let most = byte_count(MAX_UNKNOWN_SIZE);
            let why = format!(
                "{path} has no size known beforehand and goes on past {most}, the most sent of such a file"
            );
            return send_negative(tx, seq, failed(ReasonCode::TooLarge, why));
        }
        hasher.update(&buf[..n]);
        // The bytes before the offset are hashed, not sent.
        let skip = offset.saturating_sub(sent).min(n as u64) as usize;
        let mut upto = n;
        if size == Size::Known(sent + n as u64) && n > skip {
            // Pieces are cut from `skip` on: the file's last is what is
            // left after whole slots, or a whole slot.
            let tail = match (n - skip) % max {
                0 => max,
                rest => rest,
            };
            if tail + DataEnd::TRAILER_LEN <= max {
                upto = n - tail;
                last = Some(upto..n);
            }
        }
        for piece in buf[skip..upto].chunks(max) {
            tx.send_data(seq, piece)?;
        }
        sent += n as u64;
        stats.advance((n - skip) as u64);
    }
    // Bytes rewritten in place or appended while we read would make a copy
    // that matches its checksum and still is not the file: like tar's "file
    // changed as we read it", such a file fails.
    match fstat(&file) {
        Ok(now) if Snapshot::of(&now) == noted => {}
        Ok(_) => {
            return send_negative(
                tx,
                seq,
                failed(ReasonCode::Changed, format!("{path} changed while it was sent")),
            )
        }
        Err(e) => {
            return send_negative(tx, seq, failed(ReasonCode::ReadFailed, format!("fstat {path}: {e}")))
        }
    }
    match last {
        Some(piece) => tx.send_data_end(seq, &buf[piece], sent, hasher.digest())?,
        None => tx.send(seq, &Reply::End { count: sent, checksum: hasher.digest() })?,
    }
    Ok(Served::Sent(sent - offset))
}

/// Whether the size `fstat` gives is the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    /// Exactly this many bytes are sent; fewer is a file that shrank.
    Known(u64),
    /// procfs, sysfs and the like (their files say 0 or 4096 whatever they
    /// hold), or a size of 0: read to the end, at most
    /// [`MAX_UNKNOWN_SIZE`] bytes, and the `End` count is the truth.
    Unknown,
}

/// Whether a read of the source returns soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// A local disk or memory file system: the session keeps its turn to
    /// stream across reads.
    Prompt,
    /// Anything else (FUSE, NFS, SMB, procfs, …): a read may block for
    /// long, so the session gives its turn back before each read.
    MayBlock,
}

/// File systems whose reads return soon: local disks and memory.
const PROMPT_FILE_SYSTEMS: &[FsType] = &[
    EXT4_SUPER_MAGIC, // also ext2 and ext3: one magic
    XFS_SUPER_MAGIC,
    BTRFS_SUPER_MAGIC,
    TMPFS_MAGIC,
    F2FS_SUPER_MAGIC,
    OVERLAYFS_SUPER_MAGIC,
    ISOFS_SUPER_MAGIC,
    FsType(0x7371_7368), // squashfs
    FsType(0x8584_58f6), // ramfs
    FsType(0x2fc1_2fc1), // zfs
];

/// Pseudo file systems whose files do not know their size.
const SIZELESS_FILE_SYSTEMS: &[FsType] =
    &[PROC_SUPER_MAGIC, SYSFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC, SECURITYFS_MAGIC, CGROUP2_SUPER_MAGIC];

/// What the file system of `file` (and `fstat`'s size `stated`) says about
/// reading it. A file system that cannot be told counts as one whose reads
/// may block.
fn classify(file: &File, stated: u64) -> (Size, Reads) {
    let fs = nix::sys::statfs::fstatfs(file).ok().map(|s| s.filesystem_type());
    let size = match fs {
        Some(t) if SIZELESS_FILE_SYSTEMS.contains(&t) => Size::Unknown,
        _ if stated == 0 => Size::Unknown,
        _ => Size::Known(stated),
    };
    let reads = match fs {
        Some(t) if PROMPT_FILE_SYSTEMS.contains(&t) => Reads::Prompt,
        _ => Reads::MayBlock,
    };
    (size, reads)
}

fn fstat(file: &File) -> nix::Result<FileStat> {
    nix::sys::stat::fstat(file)
}
