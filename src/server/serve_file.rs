//! The server's side of a fetch: one requested file opened with the
//! confined opener ([`Root::open_file`]) and sent through the one sender
//! ([`send_source`]) into the session's producer, or answered why not
//! (not found, or a refusal with its reason code). The client's side of the
//! same frames is the one body reader ([`crate::transfer::body`]).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::Result;
use crate::fs::source::{OpenFailure, Root};
use crate::protocol::{ReasonCode, Reply};
use crate::shm_region::ring::Producer;
use crate::transfer::codes::{os_error, wire_codes};
use crate::transfer::send_file::{send_source, Ask, FrameSink, Sent, Source};
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

/// How the client is told that `path` was not opened: not found, or the
/// code of [`wire_codes`] with its words; a refusal, but for an OS error
/// the opener does not sort (a failure on the server's side).
fn refusal(path: &str, why: OpenFailure) -> Reply {
    let Some(code) = wire_codes(&why).reason else { return Reply::NotFound };
    let reason = match &why {
        OpenFailure::OutsideRoot => format!("{path} leads outside the served directory"),
        OpenFailure::PermissionDenied => "permission denied".into(),
        OpenFailure::NameTooLong => "name too long".into(),
        OpenFailure::InvalidPath => "invalid path".into(),
        OpenFailure::OutOfResources(e) => format!("the server is out of resources: {e}"),
        OpenFailure::WrongKind(kind) => format!("{path} is {}", kind.text()),
        OpenFailure::Missing | OpenFailure::Os(_) => format!("opening {path}: {}", os_error(&why)),
    };
    if matches!(why, OpenFailure::Os(_)) {
        Reply::Error { code, reason }
    } else {
        Reply::Refused { code, reason }
    }
}

/// One request for a file: its sequence number, its path (bytes, as the
/// client sent it), and what else it asks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileRequest<'a> {
    pub(crate) seq: u32,
    pub(crate) path: &'a [u8],
    pub(crate) ask: Ask,
}

/// A fetch's frames: into the session's producer, stopped by the client's
/// `Cancel` of the request.
struct Fetch<'a> {
    tx: &'a mut Producer,
    cancelled: &'a AtomicU32,
}

impl FrameSink for Fetch<'_> {
    fn max_payload(&self) -> usize {
        self.tx.max_payload()
    }

    fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        self.tx.send(seq, reply)
    }

    fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        self.tx.send_data(seq, bytes)
    }

    fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()> {
        self.tx.send_data_end(seq, bytes, count, checksum)
    }

    fn yield_turn(&mut self) {
        self.tx.yield_turn();
    }

    fn stop_asked(&mut self, seq: u32) -> Result<bool> {
        Ok(self.cancelled.load(Ordering::Acquire) == seq)
    }
}

/// Serves the file `request.path` below `root` as the answer to request
/// `request.seq` through [`send_source`], reading through `buf`, and keeps
/// `stats` up to date. Once `cancelled` holds `seq` (the client's
/// `Cancel`), the file ends at the next chunk with an `Error` of
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
    // The path is bytes; the status shows it as text.
    let shown = String::from_utf8_lossy(raw_path);
    let path: &str = &shown;
    let (mut file, st) = match root.open_file(raw_path) {
        Ok(opened) => opened,
        Err(why) => {
            // Named in the refusal as every message names a file: quoted.
            let reply = refusal(&crate::text::quote_bytes(raw_path), why);
            tx.send(seq, &reply)?;
            return Ok(Served::Answered(reply));
        }
    };
    let source = Source { file: &mut file, st, shown: path };
    let mut out = Fetch { tx, cancelled };
    Ok(match send_source(&mut out, seq, source, ask, buf, stats)? {
        Sent::Whole(n) => Served::Sent(n),
        Sent::UpToDate => Served::UpToDate,
        Sent::GaveUp { reply, .. } => Served::Answered(reply),
    })
}
