//! One file's body as every receiver takes it: the client's fetch (to a
//! file, to a writer, or as a reader) and the server's upload. The data
//! frames that follow a `Start` are counted against the bound it announced
//! ([`Announced`]), hashed where they land, and written in [`IO_CHUNK`]
//! pieces, up to the sender's `End` (or `DataEnd`), whose count and
//! checksum then decide ([`Announced::verify`]); or the sender's `Error`.
//! A receiver that stops taking the file tells its sender
//! ([`FrameSource::stop_sending`]) and reads what is in flight to the end,
//! dropping it, so the session goes on with the next file.
//!
//! The sender's side is [`crate::transfer::send_file`]; the two meet only
//! in the frames.

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::os::sys::IO_CHUNK;
use crate::protocol::{Frame, ReasonCode, Reply, StartFlags, MAX_UNKNOWN_SIZE};
use crate::text::byte_count;

/// Where a receiver's frames come from: the client's session (its ring,
/// or a relay's link) or the server's end of an upload's ring.
pub(crate) trait FrameSource {
    /// Reads the next frame of request `seq`: a data frame's bytes into
    /// `buf[..len]`, other frames decoded.
    ///
    /// # Errors
    ///
    /// A frame of another request, one that does not decode, or what the
    /// channel's waits return: the session ends.
    fn next_frame(&mut self, seq: u32, buf: &mut [u8]) -> Result<Frame>;

    /// Tells the sender of request `seq` to stop: the receiver no longer
    /// takes the file, for `why` (a fetch's cancel carries no code; an
    /// upload's answer does).
    ///
    /// # Errors
    ///
    /// The channel's, when the sender cannot be told.
    fn stop_sending(&mut self, seq: u32, why: ReasonCode) -> Result<()>;
}

/// Whether the output of a file still takes its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taking {
    Yes,
    /// It failed for this reason: the file is dropped.
    No(ReasonCode),
}

/// The sender's last word on a file it sent whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct End {
    /// The bytes it sent.
    pub count: u64,
    /// Their xxh3-64.
    pub checksum: u64,
}

/// One frame of a file's body, as [`Incoming::next`] reads it.
#[derive(Debug)]
pub(crate) enum Piece {
    /// `len` bytes of the file at the front of the buffer, counted and
    /// (when asked) hashed; with the last of them, the sender's [`End`].
    Data { len: usize, end: Option<End> },
    /// The sender gave the file up midway: its code and words.
    GivenUp { code: ReasonCode, reason: String },
}

/// A file's body as it arrives: the bound its `Start` announced, the
/// bytes so far and their hash (a resumed file's kept prefix first).
pub(crate) struct Incoming {
    seq: u32,
    size: Announced,
    sender: &'static str,
    received: u64,
    hasher: Xxh3,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("seq", &self.seq)
            .field("size", &self.size)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// The body of request `seq`, whose `Start` announced `size`, sent by
    /// `sender` (named in errors), after `received` bytes already in
    /// `hasher` (none for a whole file).
    pub(crate) fn new(
        seq: u32,
        size: Announced,
        sender: &'static str,
        received: u64,
        hasher: Xxh3,
    ) -> Incoming {
        Incoming { seq, size, sender, received, hasher }
    }

    /// The bytes received so far, a kept prefix included.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Reads the next frame into `buf`: data counted against the bound and,
    /// with `hash`, hashed there (the bytes that will be written; dropped
    /// bytes need no hash).
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for more bytes than the bound, an empty data
    /// frame, or a frame that has no place in a body; the source's errors.
    pub(crate) fn next(&mut self, frames: &mut dyn FrameSource, buf: &mut [u8], hash: bool) -> Result<Piece> {
        let (len, end) = match frames.next_frame(self.seq, buf)? {
            // No sender sends one: it would move nothing and count against
            // no bound, so a peer could keep a session busy for ever.
            Frame::Data(0) => return Err(Error::Protocol("an empty data frame inside a file".into())),
            Frame::Data(len) => (len as usize, None),
            Frame::DataEnd(last) => {
                (last.len as usize, Some(End { count: last.count, checksum: last.checksum }))
            }
            Frame::Control(Reply::End { count, checksum }) => (0, Some(End { count, checksum })),
            Frame::Control(Reply::Error { code, reason }) => return Ok(Piece::GivenUp { code, reason }),
            other => return Err(Error::Protocol(format!("{other:?} inside a file"))),
        };
        self.received += len as u64;
        if self.received > self.size.limit() {
            return Err(Error::Protocol(self.size.exceeded(self.sender)));
        }
        if hash {
            self.hasher.update(&buf[..len]);
        }
        Ok(Piece::Data { len, end })
    }

    /// Whether the whole file came as it was sent ([`Announced::verify`]).
    ///
    /// # Errors
    ///
    /// Which of count and checksum is wrong.
    pub(crate) fn verify(&self, end: End) -> std::result::Result<(), Mismatch> {
        self.size.verify(end.count, end.checksum, self.received, self.hasher.digest())
    }
}

/// How a file's body ended ([`read_body`]).
#[derive(Debug)]
pub(crate) enum Body {
    /// The sender's end came and every byte was written: its [`End`], the
    /// bytes received, and whether they are the file it sent.
    Ended { end: End, received: u64, verdict: std::result::Result<(), Mismatch> },
    /// The sender gave the file up midway: its code and words.
    GivenUp(ReasonCode, String),
    /// The output stopped taking bytes, and the file was dropped: what
    /// arrived after that was read and dropped.
    Dropped,
}

/// Whether the receiver takes a file from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FromStart {
    Take,
    /// It does not, and its sender has been told already.
    Drop,
}

/// How often [`read_body`] tells its listener of the bytes that came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// With each frame: a live record (the server's, which `--status`
    /// reads; the time of its last call is the session's last frame), so
    /// that a slow sender is seen moving.
    EachFrame,
    /// In [`IO_CHUNK`] steps: a progress bar, which redraws at each call.
    EachChunk,
}

/// Reads the body of `incoming` from `frames` up to its end, handing the
/// bytes to `write` (what came is then [`Incoming::received`]).
///
/// Each data frame is copied once, from the channel straight into `chunk`
/// (memory the sender cannot reach; at least [`IO_CHUNK`] and one frame
/// long), hashed there while it is in cache, and handed to `write` in
/// [`IO_CHUNK`] pieces and the rest at the end: the checksum covers exactly
/// the bytes written. `advance` hears of the bytes as they come, as often
/// as `report` asks (never fewer than a file's written bytes less one
/// piece), and of the rest at the end, errors included.
///
/// When `write` stops taking bytes, the sender is told
/// ([`FrameSource::stop_sending`]); the frames still in flight up to its
/// end are read and dropped, and the body is [`Body::Dropped`].
///
/// # Errors
///
/// As [`Incoming::next`]: the session ends.
pub(crate) fn read_body(
    frames: &mut dyn FrameSource,
    incoming: &mut Incoming,
    chunk: &mut [u8],
    from_start: FromStart,
    write: &mut dyn FnMut(&[u8]) -> Taking,
    advance: &mut dyn FnMut(u64),
    report: Report,
) -> Result<Body> {
    let step = match report {
        Report::EachFrame => 1,
        Report::EachChunk => IO_CHUNK as u64,
    };
    let mut unreported = 0u64;
    // Tells `advance` of the bytes not told yet, if there are any.
    let mut tell = |unreported: &mut u64| {
        if *unreported > 0 {
            advance(std::mem::take(unreported));
        }
    };
    // chunk[..fill] waits to be written.
    let mut fill = 0;
    let mut taking = from_start == FromStart::Take;
    loop {
        let before = incoming.received();
        let piece = incoming.next(frames, &mut chunk[fill..], taking);
        unreported += incoming.received() - before;
        let (len, end) = match piece {
            Ok(Piece::Data { len, end }) => (len, end),
            Ok(Piece::GivenUp { code, reason }) => {
                tell(&mut unreported);
                return Ok(if taking { Body::GivenUp(code, reason) } else { Body::Dropped });
            }
            Err(e) => {
                // The bytes that came count, for the line of a file cut off.
                tell(&mut unreported);
                return Err(e);
            }
        };
        if taking {
            fill += len;
            if fill >= IO_CHUNK {
                let took = write(&chunk[..IO_CHUNK]);
                chunk.copy_within(IO_CHUNK..fill, 0);
                fill -= IO_CHUNK;
                if let Taking::No(why) = took {
                    taking = false;
                    if let Err(e) = frames.stop_sending(incoming.seq, why) {
                        tell(&mut unreported);
                        return Err(e);
                    }
                }
            }
        }
        if unreported >= step {
            tell(&mut unreported);
        }
        let Some(end) = end else { continue };
        tell(&mut unreported);
        // The answer to a stop (or the end the sender reached before it
        // saw it), or the last piece not taken: dropped.
        if !taking || write(&chunk[..fill]) != Taking::Yes {
            return Ok(Body::Dropped);
        }
        let verdict = incoming.verify(end);
        return Ok(Body::Ended { end, received: incoming.received(), verdict });
    }
}

/// A file's size as its `Start` frame tells it (a fetch's, or an
/// upload's on the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announced {
    /// The file has exactly this many bytes; the `End` count must match.
    Exactly(u64),
    /// The size was not known to the server (procfs, sysfs, or `fstat`
    /// said 0): it read to the end, and the `End` count is the truth; what
    /// `fstat` said rides along for the progress bar.
    Unknown { told: u64 },
}

impl Announced {
    pub(crate) fn of(size: u64, flags: StartFlags) -> Announced {
        if flags.size_unknown() {
            Announced::Unknown { told: size }
        } else {
            Announced::Exactly(size)
        }
    }

    /// The most bytes that may arrive.
    pub(crate) fn limit(self) -> u64 {
        match self {
            Announced::Exactly(size) => size,
            Announced::Unknown { .. } => MAX_UNKNOWN_SIZE,
        }
    }

    /// Whether the sender's final count is the size it announced.
    pub(crate) fn agrees(self, count: u64) -> bool {
        match self {
            Announced::Exactly(size) => count == size,
            Announced::Unknown { .. } => count <= MAX_UNKNOWN_SIZE,
        }
    }

    /// Whether the whole file came as it was sent, for either direction's
    /// receiver: the sender's `count` against the bytes `received` and this
    /// size, then its `checksum` against the `digest` of exactly the bytes
    /// written.
    ///
    /// # Errors
    ///
    /// Which of the two is wrong.
    pub(crate) fn verify(
        self,
        count: u64,
        checksum: u64,
        received: u64,
        digest: u64,
    ) -> Result<(), Mismatch> {
        if count != received || !self.agrees(count) {
            return Err(Mismatch::Size);
        }
        if checksum != digest {
            return Err(Mismatch::Checksum);
        }
        Ok(())
    }

    /// What is wrong with more bytes than [`Announced::limit`], coming
    /// from `sender` ("server", "client").
    pub(crate) fn exceeded(self, sender: &str) -> String {
        match self {
            Announced::Exactly(size) => format!("{sender} sent more than the announced {}", byte_count(size)),
            Announced::Unknown { .. } => format!(
                "{sender} sent more than the {} a file of unknown size may have",
                byte_count(MAX_UNKNOWN_SIZE)
            ),
        }
    }

    /// The size as the `Start` frame carried it.
    pub(crate) fn told(self) -> u64 {
        match self {
            Announced::Exactly(size) | Announced::Unknown { told: size } => size,
        }
    }
}

/// Why a received file is not the file sent ([`Announced::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// The count, the bytes received and the announced size disagree.
    Size,
    /// The checksum of the bytes written is not the sender's.
    Checksum,
}

impl std::fmt::Display for Announced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Announced::Exactly(size) => write!(f, "{size}"),
            Announced::Unknown { .. } => write!(f, "an unknown size"),
        }
    }
}

#[cfg(test)]
mod tests;
