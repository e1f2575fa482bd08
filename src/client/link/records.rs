//! The stream's records between a client and its relay.
//!
//! The stream is a sequence of records, each a `u32` little-endian length
//! then that many bytes of body. Every body starts with a magic and the
//! protocol version, and is decoded whole: a length over the bound of the
//! record due, a body cut short, a body that does not decode, or a record
//! of a kind not due at its place is a protocol error, and the side that
//! reads it ends the session. The stream is checked as strictly as the
//! region, and an answer is held to the same bounds: the client reads the
//! frames of both through one reader (`Session::next_frame`), which takes
//! no more frames of a kind in one answer than
//! [`FrameKind::most_per_answer`] allows (a listing's files and entries
//! left out, a status's sessions), so its memory stays bounded whatever a
//! relay sends.
//!
//! | kind     | client to relay                                   | relay to client |
//! |----------|---------------------------------------------------|-----------------|
//! | transfer | a [`Command`]: Get, List or Cancel                | frames          |
//! | status   | a [`Command`]: Status                             | frames          |
//! | upload   | a Put [`Command`], then its `Start`, `Data` frames and one `DataEnd` or `End` (or `Error`) frame | one answer record per Put |
//!
//! A *command* record is an encoded [`Command`] (magic `SXQ1`, at most
//! [`MAX_MSG_LEN`] bytes); the relay puts its own pid and region in and
//! keeps the sequence number (in an upload, each Put's must be new: not 0
//! and not the previous Put's, since the region's answer is read by it). A
//! *frame* record is a [`FrameHeader`] (magic `XF`) and its payload exactly
//! as they sit in a slot, at most one slot of the roomiest ring
//! ([`RELAY_MAX_PAYLOAD`]); relay to client they are every frame of the
//! answer up to its end (End, NotFound, Refused, Error, Busy, an up-to-date
//! Start, ListEnd, StatusEnd, DataEnd). In an upload, after a Put only
//! frames of its seq come, as in a fetch's answer: a `Start`, `Data`, then
//! one `DataEnd` or `End` (whose payload must decode), or one `Error` when
//! the client gives the file up (it changed while it was sent; the server
//! keeps nothing); the relay cuts each `Data` (and the data of a
//! `DataEnd`) to its own ring's slots, and the next record after the end
//! or the `Error` must be the next Put. An *answer* record (12 bytes: magic `XA`, the
//! version, a zero byte, the Put's seq and the region's answer word,
//! little-endian) is the server's answer to that Put, sent once, as soon as
//! the relay sees it in its region: it may come before the client's `End`
//! (a refusal; the client then stops sending data and sends its `End`). The
//! client takes no answer of another seq and decodes the word as it does
//! from a local region.

use crate::protocol::{FrameHeader, FrameKind, Reply, FRAME_HEADER_LEN, MAX_MSG_LEN, PROTOCOL_VERSION};
use crate::shm_region::Geometry;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvError, RecvTimeoutError, TryRecvError};
use std::time::Duration;

/// The largest payload a relayed frame carries: that of the roomiest ring
/// (one slot), so a relay's session of any geometry fits.
pub(crate) const RELAY_MAX_PAYLOAD: usize = Geometry::for_slots(1).max_payload();

/// The longest body of a record the relay sends: a frame.
pub(crate) const MAX_FRAME_RECORD: usize = FRAME_HEADER_LEN + RELAY_MAX_PAYLOAD;

/// The longest body of a command record the client sends.
pub(crate) const MAX_COMMAND_RECORD: usize = MAX_MSG_LEN;

/// The longest body of a record the client of an upload sends: a command
/// or a frame (each is then held to its own bound).
pub(crate) const MAX_UPLOAD_RECORD: usize =
    if MAX_COMMAND_RECORD > MAX_FRAME_RECORD { MAX_COMMAND_RECORD } else { MAX_FRAME_RECORD };

/// The magic of an answer record ("XA" little endian).
pub(crate) const ANSWER_MAGIC: u16 = u16::from_le_bytes(*b"XA");

/// The length of an answer record's body: magic, version, a zero byte,
/// seq, answer word.
pub(crate) const ANSWER_RECORD_LEN: usize = 12;

/// Writes `body` as one record.
pub(crate) fn write_record(out: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(body)
}

/// The body of the answer record of upload `seq`: the region's `word`.
pub(crate) fn encode_answer(seq: u32, word: u32) -> [u8; ANSWER_RECORD_LEN] {
    let mut out = [0u8; ANSWER_RECORD_LEN];
    out[0..2].copy_from_slice(&ANSWER_MAGIC.to_le_bytes());
    out[2] = PROTOCOL_VERSION;
    out[4..8].copy_from_slice(&seq.to_le_bytes());
    out[8..12].copy_from_slice(&word.to_le_bytes());
    out
}

/// The seq and answer word of an answer record's `body`, or what is wrong
/// with it. The word is the caller's to decode, as a region's is.
pub(crate) fn decode_answer(body: &[u8]) -> std::result::Result<(u32, u32), String> {
    let Ok(body) = <&[u8; ANSWER_RECORD_LEN]>::try_from(body) else {
        return Err(format!(
            "a record of {} bytes where an answer of {ANSWER_RECORD_LEN} was due",
            body.len()
        ));
    };
    let word = |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    let magic = u16::from_le_bytes([body[0], body[1]]);
    if magic != ANSWER_MAGIC {
        return Err(format!("not an answer: magic {magic:#06x}"));
    }
    if body[2] != PROTOCOL_VERSION {
        return Err(format!(
            "an answer of protocol version {}, this build speaks {PROTOCOL_VERSION}",
            body[2]
        ));
    }
    if body[3] != 0 {
        return Err("an answer with a reserved byte set".into());
    }
    Ok((word(4), word(8)))
}

/// Appends the record (length and body) of a frame of `kind`, `seq` and
/// `payload` to `out`.
pub(crate) fn frame_record(kind: FrameKind, seq: u32, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader { kind, len: payload.len() as u32, seq }.encode();
    out.extend_from_slice(&((FRAME_HEADER_LEN + payload.len()) as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// What reading one record found.
#[derive(Debug)]
pub(crate) enum Record {
    /// A body within the bound.
    Body(Vec<u8>),
    /// The stream ended cleanly, between records.
    End,
    /// The stream broke the framing (the text says how) or could not be read.
    Broken(String),
}

/// Reads one record of at most `max` bytes of body.
pub(crate) fn read_record(input: &mut impl Read, max: usize) -> Record {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Record::End,
            Ok(0) => {
                return Record::Broken(format!(
                    "the stream ended inside a record's length ({got} of 4 bytes)"
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Record::Broken(format!("reading the stream: {e}")),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Record::Broken(format!("a record of {len} bytes, more than the {max} allowed"));
    }
    let mut body = vec![0u8; len];
    match input.read_exact(&mut body) {
        Ok(()) => Record::Body(body),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Record::Broken(format!("the stream ended inside a record of {len} bytes"))
        }
        Err(e) => Record::Broken(format!("reading the stream: {e}")),
    }
}

/// Bytes of the stream read at once.
pub(crate) const READ_AHEAD: usize = 256 << 10;

/// Batches of records read ahead of their reader...
pub(crate) const BATCHES_AHEAD: usize = 1;

/// ...and most records in one batch: with the batch being read and what
/// is left of the one taken, about 128 records ahead at most (3 × 64 − 1
/// in the worst case), as many as were ahead one by one, so that an
/// upload refused midway (a full disk) has no more of its bytes in flight
/// than before.
const MOST_PER_BATCH: usize = 64;

/// Records read from a stream on a thread of their own ([`spawn_reader`]),
/// handed over in batches: every complete record the reader has buffered
/// goes at once, so a reader that waits is woken once per piece of the
/// stream, not once per record (a slot's size).
#[derive(Debug)]
pub(crate) struct Records {
    batches: Receiver<Vec<Record>>,
    pending: VecDeque<Record>,
}

impl Records {
    /// The next record, waiting for it.
    pub(crate) fn recv(&mut self) -> Result<Record, RecvError> {
        match self.pending.pop_front() {
            Some(record) => Ok(record),
            None => self.take(self.batches.recv()?).ok_or(RecvError),
        }
    }

    /// The next record, if one is here.
    pub(crate) fn try_recv(&mut self) -> Result<Record, TryRecvError> {
        match self.pending.pop_front() {
            Some(record) => Ok(record),
            None => self.take(self.batches.try_recv()?).ok_or(TryRecvError::Empty),
        }
    }

    /// The next record, waiting at most `timeout` for it.
    pub(crate) fn recv_timeout(&mut self, timeout: Duration) -> Result<Record, RecvTimeoutError> {
        match self.pending.pop_front() {
            Some(record) => Ok(record),
            None => self.take(self.batches.recv_timeout(timeout)?).ok_or(RecvTimeoutError::Timeout),
        }
    }

    /// The first record of `batch`, the rest kept for the next calls.
    fn take(&mut self, batch: Vec<Record>) -> Option<Record> {
        self.pending.extend(batch);
        self.pending.pop_front()
    }
}

/// Whether `buffered` (what a reader holds of the stream) starts with a
/// whole record, its length prefix included: reading it waits for nothing.
fn holds_a_record(buffered: &[u8]) -> bool {
    match buffered.get(..4) {
        Some(len) => {
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            buffered.len() >= 4 + len
        }
        None => false,
    }
}

/// Reads records of at most `max` bytes from `input` on a thread of its
/// own, until the stream ends or breaks (the last record sent).
pub(crate) fn spawn_reader(input: impl Read + Send + 'static, max: usize) -> Records {
    // Records are a slot's size: read the pipe in large pieces and hand
    // over every whole record read in a batch, so that neither end waits on
    // the other for each one. A record not yet whole in the buffer is never
    // waited for while others are held back: the batch goes first.
    let mut input = io::BufReader::with_capacity(READ_AHEAD, input);
    let (tx, batches) = mpsc::sync_channel(BATCHES_AHEAD);
    std::thread::spawn(move || loop {
        let mut batch = Vec::new();
        let last = loop {
            let record = read_record(&mut input, max);
            let last = !matches!(record, Record::Body(_));
            batch.push(record);
            if last || batch.len() >= MOST_PER_BATCH || !holds_a_record(input.buffer()) {
                break last;
            }
        };
        if tx.send(batch).is_err() || last {
            return;
        }
    });
    Records { batches, pending: VecDeque::new() }
}

/// Whether a frame of `kind` with `payload` ends the answer to its
/// request: an end, a refusal, a listing's end, or a Start that says the
/// copy is up to date (nothing follows it). A Start that does not decode is
/// the client's to judge; it ends nothing here.
pub(crate) fn ends_answer(kind: FrameKind, payload: &[u8]) -> bool {
    match kind {
        FrameKind::End
        | FrameKind::NotFound
        | FrameKind::Refused
        | FrameKind::Error
        | FrameKind::Busy
        | FrameKind::ListEnd
        | FrameKind::StatusEnd
        | FrameKind::DataEnd => true,
        FrameKind::Start => {
            matches!(Reply::decode(kind, payload), Ok(Reply::Start { flags, .. }) if flags.up_to_date())
        }
        _ => false,
    }
}
