//! The one sender of a file, for both directions ([`send_source`]): an
//! opened source streamed as Start, Data..., End with its checksum (the End
//! folded into the last data frame, `DataEnd`, where both fit one slot), or
//! given up with an `Error` frame. The server's fetch
//! ([`crate::server::serve_file`]: open it with the confined opener, or
//! answer why not with a reason code) and the client's upload
//! ([`crate::upload`]) each only say where the frames go ([`FrameSink`])
//! and who is told of the bytes ([`Meter`]).

use std::fs::File;
use std::io::Read;

use nix::sys::stat::FileStat;
use nix::sys::statfs::{
    FsType, BTRFS_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC,
    ISOFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, PROC_SUPER_MAGIC, SECURITYFS_MAGIC, SYSFS_MAGIC, TMPFS_MAGIC,
    TRACEFS_MAGIC, XFS_SUPER_MAGIC,
};
use xxhash_rust::xxh3::Xxh3;

use crate::error::Result;
use crate::fs::source::Snapshot;
use crate::os::sys::IO_CHUNK;
use crate::protocol::{
    DataEnd, GetCondition, ReasonCode, Reply, Stamp, StartFlags, MAX_UNKNOWN_SIZE, MODE_BITS,
};
use crate::text::{byte_count, quote_name};
use crate::transfer::Meter;

/// What a `Get` asks besides its path: from which byte, on what condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Ask {
    pub(crate) offset: u64,
    pub(crate) condition: GetCondition,
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
            GetCondition::UnlessUpToDate(copy) if up_to_date(copy, stamp) => Plan::UpToDate,
            GetCondition::UnlessUpToDate(_) => offset,
        }
    }
}

/// The size and modification time of `st`, the time in ns since the epoch.
fn stamp_of(st: &FileStat) -> Stamp {
    let mtime_ns = st.st_mtime.saturating_mul(1_000_000_000).saturating_add(st.st_mtime_nsec);
    Stamp { size: u64::try_from(st.st_size).unwrap_or(0), mtime_ns }
}

/// The size and mtime of a copy that is up to date with a source of
/// `source`'s: the same size, and not older. The one rule of `--update`,
/// whichever side holds the copy.
pub(crate) fn up_to_date(copy: Stamp, source: Stamp) -> bool {
    copy.size == source.size && source.mtime_ns <= copy.mtime_ns
}

/// Where a sender's frames go, and how its receiver asks it to stop: the
/// server's producer for a fetch, the client's upstream (its ring's
/// producer, or its relay's stream) for an upload.
pub(crate) trait FrameSink {
    /// The largest payload one frame carries.
    fn max_payload(&self) -> usize;
    /// Sends a control frame.
    fn send(&mut self, seq: u32, reply: &Reply) -> Result<()>;
    /// Sends a data frame of at most [`FrameSink::max_payload`] bytes.
    fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()>;
    /// Sends a file's last bytes and its end in one frame; `bytes` leave
    /// room for [`DataEnd::TRAILER_LEN`] in one frame.
    fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()>;
    /// Gives back the turn to stream before a read that may block for long.
    fn yield_turn(&mut self);
    /// Whether the receiver asked that the file of `seq` stop: the
    /// client's `Cancel` of a fetch, the server's early answer to an upload.
    fn stop_asked(&mut self, seq: u32) -> Result<bool>;
}

/// A source, opened (by the confined opener, or as the user named it) and
/// found a regular file: its descriptor, its `fstat` before the first
/// byte, and the name its receiver knows it by (in messages).
pub(crate) struct Source<'a> {
    pub(crate) file: &'a mut File,
    pub(crate) st: FileStat,
    pub(crate) shown: &'a str,
}

/// How a sent file ended, as far as its sender knows.
#[derive(Debug)]
pub(crate) enum Sent {
    /// Sent whole (from the offset asked for): this many bytes.
    Whole(u64),
    /// The receiver's copy is up to date: only the `Start` was sent.
    UpToDate,
    /// Given up with this `Error` frame: the receiver asked it stopped, the
    /// source changed, grew past the bound of a file of unknown size, or a
    /// read failed (`read`: its OS error).
    GaveUp { reply: Reply, read: Option<std::io::Error> },
}

impl Sent {
    fn gave_up(code: ReasonCode, reason: String) -> Sent {
        Sent::GaveUp { reply: Reply::Error { code, reason }, read: None }
    }
}

/// The one sender, for both directions: the file of `source` as request
/// `seq` through `out`, reading through `buf` and telling `meter`. A
/// `Start` frame (its size, mode, mtime, and whether that size is known:
/// [`StartFlags::SIZE_UNKNOWN`] for procfs, sysfs and the like, whose
/// `fstat` says 0 or 4096 whatever they hold, and for a size of 0), the
/// data, and an `End` with the count and xxh3 of the whole file (folded
/// into the last data frame where both fit); a file of unknown size is
/// read to its end, at most [`MAX_UNKNOWN_SIZE`] bytes. With an offset
/// (`ask`), the bytes before it are read and hashed but not sent. The file
/// is given up with an `Error` frame when the receiver asks it stopped
/// ([`ReasonCode::Cancelled`], looked at before each read), when it
/// shrinks or its size, mtime or ctime moved by the end (like tar's "file
/// changed as we read it": [`ReasonCode::Changed`]), when it goes past the
/// bound ([`ReasonCode::TooLarge`]), or when a read fails
/// ([`ReasonCode::ReadFailed`]).
///
/// # Errors
///
/// What `out` returns: the receiver gone, the session stalled or
/// cancelled. A file given up is answered, not an error.
pub(crate) fn send_source(
    out: &mut impl FrameSink,
    seq: u32,
    source: Source<'_>,
    ask: Ask,
    buf: &mut Vec<u8>,
    meter: &dyn Meter,
) -> Result<Sent> {
    let Source { file, st, shown: path } = source;
    // As the reasons sent back name it: quoted, as every message does.
    let named = quote_name(path);
    let stated = u64::try_from(st.st_size).unwrap_or(0);
    let (size, reads) = classify(file, stated);
    let noted = Snapshot::of(&st);
    meter.begin(path, stated);
    let Some(offset) = start(out, seq, &st, size, ask)? else { return Ok(Sent::UpToDate) };
    let mut hasher = Xxh3::new();
    // Read in large pieces and hand them out slot by slot: one read() per
    // IO_CHUNK bytes, not one per slot.
    buf.resize(IO_CHUNK, 0);
    let mut sent = 0u64;
    let max = out.max_payload();
    // The last piece of a file of known size, held back in `buf` to go with
    // the end in one frame once the file is known not to have changed.
    let mut last: Option<std::ops::Range<usize>> = None;
    loop {
        let left = size.left(sent);
        if left == 0 {
            break;
        }
        if out.stop_asked(seq)? {
            let stopped = Sent::gave_up(ReasonCode::Cancelled, "cancelled by the receiver".into());
            return give_up(out, seq, stopped);
        }
        let want = left.min(buf.len() as u64) as usize;
        if reads == Reads::MayBlock {
            // Whatever this read waits for (a FUSE daemon, a server across
            // the network), other sessions stream meanwhile.
            out.yield_turn();
        }
        let n = match read_piece(file, &mut buf[..want], size, sent, &named) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(gave_up) => return give_up(out, seq, gave_up),
        };
        hasher.update(&buf[..n]);
        // The bytes before the offset are hashed, not sent.
        let skip = offset.saturating_sub(sent).min(n as u64) as usize;
        let mut upto = n;
        if let Some(tail) = held_back(size, sent + n as u64, n - skip, max) {
            upto = n - tail;
            last = Some(upto..n);
        }
        // Told per frame: a session whose reader is slow shows its bytes
        // moving in `--status`, not one step per read.
        for piece in buf[skip..upto].chunks(max) {
            out.send_data(seq, piece)?;
            meter.advance(piece.len() as u64);
        }
        sent += n as u64;
    }
    // Bytes rewritten in place or appended while we read would make a copy
    // that matches its checksum and still is not the file: like tar's "file
    // changed as we read it", such a file fails.
    if let Err(gave_up) = unchanged(file, noted, &named) {
        return give_up(out, seq, gave_up);
    }
    match last {
        Some(piece) => {
            out.send_data_end(seq, &buf[piece.clone()], sent, hasher.digest())?;
            meter.advance(piece.len() as u64);
        }
        None => out.send(seq, &Reply::End { count: sent, checksum: hasher.digest() })?,
    }
    Ok(Sent::Whole(sent - offset))
}

/// Sends the `Start` frame of the file of `st` (of `size`) as `ask`
/// plans it: the offset to send from, or `None` when the receiver's copy
/// is up to date and the `Start` says so.
fn start(out: &mut impl FrameSink, seq: u32, st: &FileStat, size: Size, ask: Ask) -> Result<Option<u64>> {
    let stated = u64::try_from(st.st_size).unwrap_or(0);
    let flags = match size {
        Size::Known(_) => StartFlags::NONE,
        Size::Unknown => StartFlags::SIZE_UNKNOWN,
    };
    let stamp = stamp_of(st);
    let mode = st.st_mode & MODE_BITS;
    let (flags, offset) = match ask.plan(stamp, size) {
        Plan::UpToDate => (flags.with(StartFlags::UP_TO_DATE), None),
        Plan::From(0) => (flags, Some(0)),
        Plan::From(offset) => (flags.with(StartFlags::FROM_OFFSET), Some(offset)),
    };
    out.send(seq, &Reply::Start { size: stated, mode, flags, mtime_ns: stamp.mtime_ns })?;
    Ok(offset)
}

/// Reads the next piece of the file into `buf`: `Some(n)` bytes, `None`
/// at the end of a file of unknown size, or why the file is given up (it
/// shrank, a read failed, a file of unknown size went past its bound).
fn read_piece(
    file: &mut File,
    buf: &mut [u8],
    size: Size,
    sent: u64,
    path: &str,
) -> std::result::Result<Option<usize>, Sent> {
    let n = loop {
        match file.read(buf) {
            Ok(0) if size == Size::Unknown => return Ok(None),
            Ok(0) => {
                let why = format!("{path} changed while it was sent: it shrank");
                return Err(Sent::gave_up(ReasonCode::Changed, why));
            }
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let reply =
                    Reply::Error { code: ReasonCode::ReadFailed, reason: format!("reading {path}: {e}") };
                return Err(Sent::GaveUp { reply, read: Some(e) });
            }
        }
    };
    if size == Size::Unknown && sent + n as u64 > MAX_UNKNOWN_SIZE {
        let most = byte_count(MAX_UNKNOWN_SIZE);
        let why = format!(
            "{path} has no size known beforehand and goes on past {most}, the most sent of such a file"
        );
        return Err(Sent::gave_up(ReasonCode::TooLarge, why));
    }
    Ok(Some(n))
}

/// How many bytes at the end of a piece of `to_send` bytes (after the
/// `read` bytes of a file of `size` so far) are held back to go with the
/// end in one frame: the file's last piece, what is left after whole
/// slots of `max` bytes (or a whole slot), where it and the end fit one
/// slot; `None` for any other piece.
fn held_back(size: Size, read: u64, to_send: usize, max: usize) -> Option<usize> {
    if size != Size::Known(read) || to_send == 0 {
        return None;
    }
    let tail = match to_send % max {
        0 => max,
        rest => rest,
    };
    (tail + DataEnd::TRAILER_LEN <= max).then_some(tail)
}

/// Whether the file is as its `noted` snapshot was before the first byte:
/// bytes rewritten in place or appended while it was read would make a
/// copy that matches its checksum and still is not the file.
fn unchanged(file: &File, noted: Snapshot, path: &str) -> std::result::Result<(), Sent> {
    match nix::sys::stat::fstat(file) {
        Ok(now) if Snapshot::of(&now) == noted => Ok(()),
        Ok(_) => Err(Sent::gave_up(ReasonCode::Changed, format!("{path} changed while it was sent"))),
        Err(e) => {
            let reply = Reply::Error { code: ReasonCode::ReadFailed, reason: format!("fstat {path}: {e}") };
            Err(Sent::GaveUp { reply, read: Some(e.into()) })
        }
    }
}

/// Sends the `Error` frame of a file given up.
fn give_up(out: &mut impl FrameSink, seq: u32, gave_up: Sent) -> Result<Sent> {
    if let Sent::GaveUp { reply, .. } = &gave_up {
        out.send(seq, reply)?;
    }
    Ok(gave_up)
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

impl Size {
    /// The bytes still to read after `sent`: exactly the rest of a known
    /// size; to the end of a file of unknown size, one byte past the bound
    /// to see it is passed.
    fn left(self, sent: u64) -> u64 {
        match self {
            Size::Known(size) => size - sent,
            Size::Unknown => (MAX_UNKNOWN_SIZE + 1).saturating_sub(sent),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Frames sent, and what the meter heard, in order.
    #[derive(Default)]
    struct Log {
        events: RefCell<Vec<String>>,
    }

    impl FrameSink for &Log {
        fn max_payload(&self) -> usize {
            1000
        }

        fn send(&mut self, _seq: u32, reply: &Reply) -> Result<()> {
            self.events.borrow_mut().push(format!("{:?}", reply.kind()));
            Ok(())
        }

        fn send_data(&mut self, _seq: u32, bytes: &[u8]) -> Result<()> {
            self.events.borrow_mut().push(format!("data {}", bytes.len()));
            Ok(())
        }

        fn send_data_end(&mut self, _seq: u32, bytes: &[u8], _count: u64, _checksum: u64) -> Result<()> {
            self.events.borrow_mut().push(format!("data end {}", bytes.len()));
            Ok(())
        }

        fn yield_turn(&mut self) {}

        fn stop_asked(&mut self, _seq: u32) -> Result<bool> {
            Ok(false)
        }
    }

    impl Meter for Log {
        fn begin(&self, _path: &str, _size: u64) {}

        fn advance(&self, n: u64) {
            self.events.borrow_mut().push(format!("told {n}"));
        }

        fn end(&self) -> u64 {
            0
        }
    }

    #[test]
    fn the_meter_hears_of_each_frame_as_it_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 2500]).unwrap();
        let mut file = File::open(&path).unwrap();
        let st = nix::sys::stat::fstat(&file).unwrap();
        let log = Log::default();
        let source = Source { file: &mut file, st, shown: "f" };
        let sent = send_source(&mut &log, 1, source, Ask::default(), &mut Vec::new(), &log).unwrap();
        assert!(matches!(sent, Sent::Whole(2500)), "{sent:?}");
        let events = log.events.borrow();
        assert_eq!(
            &events[1..],
            ["data 1000", "told 1000", "data 1000", "told 1000", "data end 500", "told 500"],
            "a slow receiver's session shows its bytes frame by frame: {events:?}"
        );
    }
}
