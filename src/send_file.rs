//! Serving one file through a session's [`Producer`]: open it with the
//! confined opener, stream it as Start, Data..., End with its checksum — or
//! answer why not (not found, refused, failed) with a reason code.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::stat::FileStat;
use xxhash_rust::xxh3::Xxh3;

use crate::error::Result;
use crate::protocol::{ReasonCode, Reply, MODE_BITS};
use crate::ring::Producer;
use crate::source::{FileKind, OpenFailure, Root};
use crate::stats::SessionStats;
use crate::IO_CHUNK;

/// What became of one file request, as far as the server knows.
#[derive(Debug)]
pub(crate) enum Served {
    /// Sent whole: this many bytes.
    Sent(u64),
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

/// Serves the file `path` below `root` as the answer to request `seq`,
/// reading through `buf`, and keeps `stats` up to date. Once `cancelled`
/// holds `seq` (the client's `Cancel`), the file ends at the next chunk with
/// an `Error` of [`ReasonCode::Cancelled`].
///
/// # Errors
///
/// What [`Producer::send`] returns: the client gone, the session stalled or
/// cancelled. A file that cannot be served is answered, not an error.
pub(crate) fn send_file(
    tx: &mut Producer,
    root: &Root,
    seq: u32,
    path: &str,
    buf: &mut Vec<u8>,
    stats: &SessionStats,
    cancelled: &AtomicU32,
) -> Result<Served> {
    let (mut file, st) = match root.open_file(path) {
        Ok(opened) => opened,
        Err(why) => return send_negative(tx, seq, refusal(path, why)),
    };
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let noted = Snapshot::of(&st);
    stats.begin(path, size);
    tx.send(seq, &Reply::Start { size, mode: st.st_mode & MODE_BITS })?;
    let mut hasher = Xxh3::new();
    // Read in large pieces and hand them out slot by slot: one read() per
    // IO_CHUNK bytes, not one per slot.
    buf.resize(IO_CHUNK, 0);
    let mut sent = 0u64;
    while sent < size {
        if cancelled.load(Ordering::Acquire) == seq {
            return send_negative(tx, seq, failed(ReasonCode::Cancelled, "cancelled by the client"));
        }
        let want = (size - sent).min(buf.len() as u64) as usize;
        let n = match file.read(&mut buf[..want]) {
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
        hasher.update(&buf[..n]);
        for piece in buf[..n].chunks(tx.max_payload()) {
            tx.send_data(seq, piece)?;
        }
        sent += n as u64;
        stats.advance(n as u64);
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
    tx.send(seq, &Reply::End { count: sent, checksum: hasher.digest() })?;
    Ok(Served::Sent(sent))
}

fn fstat(file: &File) -> nix::Result<FileStat> {
    nix::sys::stat::fstat(file)
}

/// What says a file changed: its size, modification and status-change
/// times, to the nanosecond.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    fn of(st: &FileStat) -> Snapshot {
        Snapshot {
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}
