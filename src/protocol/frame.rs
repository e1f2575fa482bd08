//! Region frames, sender → receiver: kinds, headers, the Start flags, the
//! control replies and the status records, and their codec.

use super::{codes::*, fields::*, limits::*};

/// The kind byte of a region frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A file follows: payload `size: u64`.
    Start = 1,
    /// File bytes: payload is raw data.
    Data = 2,
    /// The file is complete: payload `count: u64, xxh3_64: u64`.
    End = 3,
    /// The file does not exist ("FNF"): empty payload.
    NotFound = 4,
    /// The server will not serve this path: payload `code: u8` (a
    /// [`ReasonCode`]), then a UTF-8 reason.
    Refused = 5,
    /// The transfer failed on the server's side: payload `code: u8` (a
    /// [`ReasonCode`]), then a UTF-8 reason.
    Error = 6,
    /// The server has no room for another session: payload `max_sessions: u32`.
    Busy = 7,
    /// One served file: see [`Reply::ListEntry`].
    ListEntry = 8,
    /// End of a listing: payload `files: u64, skipped: u64`, the entries and
    /// the skips sent.
    ListEnd = 9,
    /// The server's status, first answer to `Status`: see [`ServerStatus`].
    ServerStatus = 10,
    /// One live session, next answers to `Status`: see [`SessionStatus`].
    SessionStatus = 11,
    /// End of a status: payload `count: u64`, the sessions listed.
    StatusEnd = 12,
    /// An entry a listing left out, and why: see [`Reply::ListSkipped`].
    ListSkipped = 13,
    /// The last bytes of a file and its end in one frame: payload is raw
    /// data, then `count: u64, xxh3_64: u64` as in `End` (see [`DataEnd`]).
    DataEnd = 14,
}

/// The end of a file folded into its last data frame: a `DataEnd` payload is
/// the data, then [`DataEnd::TRAILER_LEN`] bytes: the count and checksum an
/// `End` frame would carry. The checksum covers the file's bytes, data only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataEnd {
    /// Bytes of data at the front of the payload.
    pub len: u32,
    /// The file's bytes in all, as in [`Reply::End`].
    pub count: u64,
    /// As in [`Reply::End`].
    pub checksum: u64,
}

impl DataEnd {
    /// The bytes after the data.
    pub const TRAILER_LEN: usize = 16;

    /// The trailer of a `DataEnd` payload.
    pub fn trailer(count: u64, checksum: u64) -> [u8; DataEnd::TRAILER_LEN] {
        let mut out = [0; DataEnd::TRAILER_LEN];
        out[..8].copy_from_slice(&count.to_le_bytes());
        out[8..].copy_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Splits a `DataEnd` payload: the data is `payload[..len]`.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] for a payload shorter than the trailer.
    pub fn decode(payload: &[u8]) -> Result<DataEnd, DecodeError> {
        let Some(len) = payload.len().checked_sub(DataEnd::TRAILER_LEN) else {
            return Err(DecodeError::Truncated { needed: DataEnd::TRAILER_LEN, got: payload.len() });
        };
        let word = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&payload[at..at + 8]);
            u64::from_le_bytes(b)
        };
        Ok(DataEnd { len: len as u32, count: word(len), checksum: word(len + 8) })
    }
}

impl FrameKind {
    pub(super) fn from_u8(v: u8) -> Result<FrameKind, DecodeError> {
        Ok(match v {
            1 => FrameKind::Start,
            2 => FrameKind::Data,
            3 => FrameKind::End,
            4 => FrameKind::NotFound,
            5 => FrameKind::Refused,
            6 => FrameKind::Error,
            7 => FrameKind::Busy,
            8 => FrameKind::ListEntry,
            9 => FrameKind::ListEnd,
            10 => FrameKind::ServerStatus,
            11 => FrameKind::SessionStatus,
            12 => FrameKind::StatusEnd,
            13 => FrameKind::ListSkipped,
            14 => FrameKind::DataEnd,
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

/// Most files one listing carries: the server's walk stops after as many
/// (a [`SkipCode::OverLimit`] entry says where), and a client takes no
/// more [`FrameKind::ListEntry`] frames in one answer.
pub const MAX_LIST_FILES: usize = 100_000;

/// Most entries left out that one listing names: the server's walk stops
/// at the last (a [`SkipCode::TooManySkipped`] entry), and a client takes
/// no more [`FrameKind::ListSkipped`] frames in one answer.
pub const MAX_LIST_SKIPPED: usize = 10_000;

/// Most sessions one status lists beside the server's own: far more than
/// a server serves at once ([`FrameKind::SessionStatus`]).
pub const MAX_STATUS_SESSIONS: usize = 65_536;

impl FrameKind {
    /// The most frames of this kind that one answer carries, for the kinds
    /// an answer repeats: what a client holds of an answer stays bounded
    /// whatever its peer (a server or a relay) sends. The other kinds open
    /// or end an answer, or carry a file's bytes, which its size bounds.
    pub const fn most_per_answer(self) -> Option<(usize, &'static str)> {
        match self {
            FrameKind::ListEntry => Some((MAX_LIST_FILES, "files in one listing")),
            FrameKind::ListSkipped => Some((MAX_LIST_SKIPPED, "entries left out of one listing")),
            FrameKind::SessionStatus => Some((MAX_STATUS_SESSIONS, "sessions in one status")),
            FrameKind::Start
            | FrameKind::Data
            | FrameKind::End
            | FrameKind::NotFound
            | FrameKind::Refused
            | FrameKind::Error
            | FrameKind::Busy
            | FrameKind::ListEnd
            | FrameKind::ServerStatus
            | FrameKind::StatusEnd
            | FrameKind::DataEnd => None,
        }
    }
}

/// The frames of one answer counted against [`FrameKind::most_per_answer`]:
/// the one count every reader of answers keeps, local or through a relay.
#[derive(Debug, Default)]
pub(crate) struct AnswerCount {
    seq: u32,
    /// Frames of the answer to `seq`, by kind.
    counts: [usize; 16],
}

impl AnswerCount {
    /// Counts a frame of `kind` answering `seq`; a new `seq` starts a new
    /// answer (answers never interleave).
    ///
    /// # Errors
    ///
    /// A message naming the bound when this frame passes it.
    pub(crate) fn count(&mut self, seq: u32, kind: FrameKind) -> Result<(), String> {
        if seq != self.seq {
            *self = AnswerCount { seq, ..AnswerCount::default() };
        }
        let Some((most, what)) = kind.most_per_answer() else { return Ok(()) };
        let count = &mut self.counts[kind as usize];
        if *count >= most {
            return Err(format!("more than {most} {what}, the most one answer carries"));
        }
        *count += 1;
        Ok(())
    }
}

/// The fixed header at the start of every slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: FrameKind,
    /// Payload length in bytes.
    pub len: u32,
    /// The request this frame answers.
    pub seq: u32,
}

impl FrameHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[0..2].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        out[2] = PROTOCOL_VERSION;
        out[3] = self.kind as u8;
        out[4..8].copy_from_slice(&self.len.to_le_bytes());
        out[8..12].copy_from_slice(&self.seq.to_le_bytes());
        out
    }

    /// Decodes a header and checks its payload length against `max_payload`,
    /// the capacity of the slot it was read from.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for a short buffer, bad magic or version, an unknown
    /// kind, or a length over `max_payload`.
    pub fn decode(buf: &[u8], max_payload: usize) -> Result<FrameHeader, DecodeError> {
        let mut r = Reader::new(buf);
        let magic = r.u16()?;
        if magic != FRAME_MAGIC {
            return Err(DecodeError::BadMagic(u32::from(magic)));
        }
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = FrameKind::from_u8(r.u8()?)?;
        let len = r.u32()?;
        let seq = r.u32()?;
        if r.u32()? != 0 {
            return Err(DecodeError::BadField("reserved"));
        }
        if len as usize > max_payload {
            return Err(DecodeError::TooLong { field: "frame payload", len: len as usize, max: max_payload });
        }
        Ok(FrameHeader { kind, len, seq })
    }
}

/// What a `Start` frame says about the file besides its size and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartFlags(u32);

impl StartFlags {
    /// No flag: the size is the file's size, and the `End` count must
    /// match it.
    pub const NONE: StartFlags = StartFlags(0);
    /// The size is only what `fstat` said (procfs, sysfs, or 0): the server
    /// reads to the end of the file, at most [`MAX_UNKNOWN_SIZE`] bytes, and
    /// the `End` frame's count is the truth.
    pub const SIZE_UNKNOWN: StartFlags = StartFlags(1);
    /// The data frames begin at the `Get`'s offset: the bytes before it
    /// were skipped (but hashed: the `End` count and checksum cover the
    /// whole file). Without it the data begins at byte 0.
    pub const FROM_OFFSET: StartFlags = StartFlags(2);
    /// The `Get` asked [`GetCondition::UnlessUpToDate`] and the copy is up
    /// to date: nothing follows this frame.
    pub const UP_TO_DATE: StartFlags = StartFlags(4);
    /// Every flag this version knows; a frame with any other bit is refused.
    pub(super) const KNOWN: u32 = 7;

    /// Whether the size is not known beforehand.
    pub fn size_unknown(self) -> bool {
        self.0 & Self::SIZE_UNKNOWN.0 != 0
    }

    /// Whether the data begins at the `Get`'s offset.
    pub fn from_offset(self) -> bool {
        self.0 & Self::FROM_OFFSET.0 != 0
    }

    /// Whether the copy is up to date and nothing follows.
    pub fn up_to_date(self) -> bool {
        self.0 & Self::UP_TO_DATE.0 != 0
    }

    /// These flags and `other`'s.
    #[must_use]
    pub fn with(self, other: StartFlags) -> StartFlags {
        StartFlags(self.0 | other.0)
    }

    /// The flags as they travel.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Flags from their wire form: `None` when a bit is not known.
    pub fn from_bits(bits: u32) -> Option<StartFlags> {
        (bits & !Self::KNOWN == 0).then_some(StartFlags(bits))
    }
}

/// The payload of a control frame (every kind but `Data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A file follows: its size, its permission bits (`st_mode & 0o7777`)
    /// for the copy, which the client masks as `cp` does, its flags
    /// (whether the size is known, whether the data begins at the `Get`'s
    /// offset, whether the copy is up to date), and its modification time
    /// (for `--preserve`, `--update` and resuming). Payload: `u64` size,
    /// `u32` mode, `u32` flags, `i64` mtime in ns since the epoch.
    Start {
        size: u64,
        mode: u32,
        flags: StartFlags,
        mtime_ns: i64,
    },
    End {
        count: u64,
        checksum: u64,
    },
    NotFound,
    /// The server will not send this file. The reason is for a person:
    /// decoded with its odd characters escaped (`text::escape_odd`).
    Refused {
        code: ReasonCode,
        reason: String,
    },
    /// Sending the file failed on the sender's side; the reason decoded as
    /// [`Reply::Refused`]'s is.
    Error {
        code: ReasonCode,
        reason: String,
    },
    Busy {
        max_sessions: u32,
    },
    /// One served file. Payload: `u64` size, `u32` permission bits (`st_mode
    /// & 0o7777`), `i64` mtime seconds, `u32` mtime nanoseconds (below 10^9),
    /// then its path relative to the root (bytes, no NUL, not empty).
    ListEntry {
        size: u64,
        mode: u32,
        mtime_secs: i64,
        mtime_nsec: u32,
        path: Vec<u8>,
    },
    /// An entry the listing left out. Payload: `u8` [`SkipCode`], `u8`
    /// reserved (0), `u16` reserved (0), `u32` detail (the `errno` of
    /// `Unreadable`, the limit of the others, else 0), then its path
    /// relative to the root (bytes, no NUL; empty for the root itself).
    ListSkipped {
        code: SkipCode,
        detail: u32,
        path: Vec<u8>,
    },
    /// The end of a listing: how many entries and skips were sent.
    ListEnd {
        files: u64,
        skipped: u64,
    },
    ServerStatus(ServerStatus),
    SessionStatus(SessionStatus),
    StatusEnd {
        count: u64,
    },
}

/// What a server says of itself in answer to a status request. Payload:
/// `u32` pid, `u32` flags (bit 0: persistent, bit 1: accepting uploads; the
/// others 0), `u32` max_sessions, `u32` open_sessions, `u64` uptime_ms,
/// `u64` sessions_total, `u64` files, `u64` bytes, `u64` received_files,
/// `u64` received_bytes, then the root (UTF-8, at most 512 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub pid: u32,
    /// Serves until stopped (`--persistent`), not only until the last client leaves.
    pub persistent: bool,
    pub max_sessions: u32,
    /// Sessions open now (a status-only session is not one of them).
    pub open_sessions: u32,
    pub uptime_ms: u64,
    /// Sessions opened since the start.
    pub sessions_total: u64,
    /// Files sent whole since the start.
    pub files: u64,
    /// Bytes of file data sent since the start.
    pub bytes: u64,
    /// Takes uploads (`shm_server --accept DIR`).
    pub accepting: bool,
    /// Uploads stored since the start.
    pub received_files: u64,
    /// Bytes of the uploads stored since the start.
    pub received_bytes: u64,
    /// The served directory as the server was told it.
    pub root: String,
}

/// One live session in a status. Payload: `u32` client_pid, `u8` kind (0
/// transfer, 1 upload, 2 status: [`SessionKind`]; a server before the
/// kind sent 0), 3 bytes reserved (0), `u64` age_ms, `u64` idle_ms, `u64` sent, `u64` size, `u64` file_ms,
/// `u64` total, then the path of the file being sent (UTF-8, at most
/// 512 bytes; empty between files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub client_pid: u32,
    /// What the session is for: its direction ([`SessionKind::Transfer`]
    /// fetches, [`SessionKind::Upload`] sends to the server).
    pub kind: SessionKind,
    /// Since the session opened.
    pub age_ms: u64,
    /// Since the last frame of this session moved.
    pub idle_ms: u64,
    /// Bytes of the current file sent so far.
    pub sent: u64,
    /// Size of the current file.
    pub size: u64,
    /// Since the current file started.
    pub file_ms: u64,
    /// Bytes sent in this session.
    pub total: u64,
    /// The file being sent; empty between files.
    pub path: String,
}

impl Reply {
    /// The frame kind that carries this reply.
    pub fn kind(&self) -> FrameKind {
        match self {
            Reply::Start { .. } => FrameKind::Start,
            Reply::End { .. } => FrameKind::End,
            Reply::NotFound => FrameKind::NotFound,
            Reply::Refused { .. } => FrameKind::Refused,
            Reply::Error { .. } => FrameKind::Error,
            Reply::Busy { .. } => FrameKind::Busy,
            Reply::ListEntry { .. } => FrameKind::ListEntry,
            Reply::ListSkipped { .. } => FrameKind::ListSkipped,
            Reply::ListEnd { .. } => FrameKind::ListEnd,
            Reply::ServerStatus(_) => FrameKind::ServerStatus,
            Reply::SessionStatus(_) => FrameKind::SessionStatus,
            Reply::StatusEnd { .. } => FrameKind::StatusEnd,
        }
    }

    /// Appends the payload to `out`. Reason texts are cut to
    /// [`MAX_REASON_LEN`] bytes on a character boundary.
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Start { size, mode, flags, mtime_ns } => {
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&(mode & MODE_BITS).to_le_bytes());
                out.extend_from_slice(&flags.bits().to_le_bytes());
                out.extend_from_slice(&mtime_ns.to_le_bytes());
            }
            Reply::End { count, checksum } => {
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(&checksum.to_le_bytes());
            }
            Reply::NotFound => {}
            Reply::Refused { code, reason } | Reply::Error { code, reason } => {
                out.push(*code as u8);
                out.extend_from_slice(truncate_utf8(reason, MAX_REASON_LEN).as_bytes())
            }
            Reply::Busy { max_sessions } => out.extend_from_slice(&max_sessions.to_le_bytes()),
            Reply::ListEntry { size, mode, mtime_secs, mtime_nsec, path } => {
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&(mode & MODE_BITS).to_le_bytes());
                out.extend_from_slice(&mtime_secs.to_le_bytes());
                out.extend_from_slice(&mtime_nsec.to_le_bytes());
                out.extend_from_slice(path);
            }
            Reply::ListSkipped { code, detail, path } => {
                out.extend_from_slice(&[*code as u8, 0, 0, 0]);
                out.extend_from_slice(&detail.to_le_bytes());
                out.extend_from_slice(path);
            }
            Reply::ListEnd { files, skipped } => {
                out.extend_from_slice(&files.to_le_bytes());
                out.extend_from_slice(&skipped.to_le_bytes());
            }
            Reply::StatusEnd { count } => out.extend_from_slice(&count.to_le_bytes()),
            Reply::ServerStatus(s) => {
                out.extend_from_slice(&s.pid.to_le_bytes());
                let flags = u32::from(s.persistent) | u32::from(s.accepting) << 1;
                out.extend_from_slice(&flags.to_le_bytes());
                for word in [s.max_sessions, s.open_sessions] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                for word in
                    [s.uptime_ms, s.sessions_total, s.files, s.bytes, s.received_files, s.received_bytes]
                {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                out.extend_from_slice(truncate_utf8(&s.root, MAX_STATUS_TEXT).as_bytes());
            }
            Reply::SessionStatus(s) => {
                out.extend_from_slice(&s.client_pid.to_le_bytes());
                out.extend_from_slice(&[s.kind.status_code(), 0, 0, 0]);
                for word in [s.age_ms, s.idle_ms, s.sent, s.size, s.file_ms, s.total] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                out.extend_from_slice(truncate_utf8(&s.path, MAX_STATUS_TEXT).as_bytes());
            }
        }
    }

    /// Decodes the payload of a control frame of kind `kind`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] when the payload does not match its kind, and
    /// [`DecodeError::BadField`] for `Data`, which has no control payload.
    pub fn decode(kind: FrameKind, payload: &[u8]) -> Result<Reply, DecodeError> {
        let mut r = Reader::new(payload);
        let reply = match kind {
            FrameKind::Start => {
                let size = r.u64()?;
                let mode = r.u32()?;
                if mode & !MODE_BITS != 0 {
                    return Err(DecodeError::BadField("file mode"));
                }
                let flags = StartFlags::from_bits(r.u32()?).ok_or(DecodeError::BadField("start flags"))?;
                Reply::Start { size, mode, flags, mtime_ns: r.u64()? as i64 }
            }
            FrameKind::End => Reply::End { count: r.u64()?, checksum: r.u64()? },
            FrameKind::NotFound => Reply::NotFound,
            FrameKind::Refused => {
                Reply::Refused { code: ReasonCode::from_u8(r.u8()?)?, reason: reason(r.rest())? }
            }
            FrameKind::Error => {
                Reply::Error { code: ReasonCode::from_u8(r.u8()?)?, reason: reason(r.rest())? }
            }
            FrameKind::Busy => Reply::Busy { max_sessions: r.u32()? },
            FrameKind::ListEntry => decode_list_entry(&mut r)?,
            FrameKind::ListSkipped => {
                let code = SkipCode::from_u8(r.u8()?)?;
                if r.u8()? != 0 || r.u16()? != 0 {
                    return Err(DecodeError::BadField("reserved"));
                }
                let detail = r.u32()?;
                Reply::ListSkipped { code, detail, path: path_bytes("skipped path", r.rest())? }
            }
            FrameKind::ListEnd => Reply::ListEnd { files: r.u64()?, skipped: r.u64()? },
            FrameKind::ServerStatus => Reply::ServerStatus(decode_server_status(&mut r)?),
            FrameKind::SessionStatus => Reply::SessionStatus(decode_session_status(&mut r)?),
            FrameKind::StatusEnd => Reply::StatusEnd { count: r.u64()? },
            FrameKind::Data | FrameKind::DataEnd => {
                return Err(DecodeError::BadField("data frame as control frame"))
            }
        };
        r.finish()?;
        Ok(reply)
    }
}

/// A frame as the client reads it: data (the payload is in the caller's
/// buffer) or a decoded control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A data frame of this many bytes.
    Data(u32),
    /// A file's last data frame (its bytes at the front of the caller's
    /// buffer) and its end.
    DataEnd(DataEnd),
    /// Any other frame.
    Control(Reply),
}

impl Frame {
    /// The frame of `kind` with `payload`, as a receiver reads it: a data
    /// frame's bytes stay where they are (its length), the others decoded.
    ///
    /// # Errors
    ///
    /// The payload's [`DecodeError`].
    pub fn decode(kind: FrameKind, payload: &[u8]) -> Result<Frame, DecodeError> {
        Ok(match kind {
            FrameKind::Data => {
                Frame::Data(u32::try_from(payload.len()).map_err(|_| DecodeError::BadField("data length"))?)
            }
            FrameKind::DataEnd => Frame::DataEnd(DataEnd::decode(payload)?),
            kind => Frame::Control(Reply::decode(kind, payload)?),
        })
    }
}

/// The payload of a `ListEntry` frame after its kind.
fn decode_list_entry(r: &mut Reader<'_>) -> Result<Reply, DecodeError> {
    let size = r.u64()?;
    let mode = r.u32()?;
    if mode & !MODE_BITS != 0 {
        return Err(DecodeError::BadField("file mode"));
    }
    let mtime_secs = i64::from_le_bytes(r.array()?);
    let mtime_nsec = r.u32()?;
    if mtime_nsec >= 1_000_000_000 {
        return Err(DecodeError::BadField("mtime"));
    }
    let path = path_bytes("listed path", r.rest())?;
    if path.is_empty() {
        return Err(DecodeError::BadField("listed path"));
    }
    Ok(Reply::ListEntry { size, mode, mtime_secs, mtime_nsec, path })
}

/// The payload of a `ServerStatus` frame.
fn decode_server_status(r: &mut Reader<'_>) -> Result<ServerStatus, DecodeError> {
    let pid = r.u32()?;
    let flags = r.u32()?;
    if flags >> 2 != 0 {
        return Err(DecodeError::BadField("status flags"));
    }
    let (persistent, accepting) = (flags & 1 != 0, flags & 2 != 0);
    Ok(ServerStatus {
        pid,
        persistent,
        max_sessions: r.u32()?,
        open_sessions: r.u32()?,
        uptime_ms: r.u64()?,
        sessions_total: r.u64()?,
        files: r.u64()?,
        bytes: r.u64()?,
        accepting,
        received_files: r.u64()?,
        received_bytes: r.u64()?,
        root: status_text("root", r.rest())?,
    })
}

/// The payload of a `SessionStatus` frame.
fn decode_session_status(r: &mut Reader<'_>) -> Result<SessionStatus, DecodeError> {
    let client_pid = r.u32()?;
    let word = r.u32()?;
    if word >> 8 != 0 {
        return Err(DecodeError::BadField("reserved"));
    }
    let kind = SessionKind::from_status_code(word as u8)?;
    Ok(SessionStatus {
        client_pid,
        kind,
        age_ms: r.u64()?,
        idle_ms: r.u64()?,
        sent: r.u64()?,
        size: r.u64()?,
        file_ms: r.u64()?,
        total: r.u64()?,
        path: status_text("session path", r.rest())?,
    })
}

/// A reason as a peer sent it, for a person to read: checked as any text
/// is, and its odd characters (controls, direction overrides) escaped, so
/// that whatever the peer or a name it quotes put there reaches no
/// terminal as it is (`ESC [2J`, `\r`), in at most [`MAX_REASON_LEN`]
/// bytes, as every reason is.
pub(super) fn reason(bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.len() > MAX_REASON_LEN {
        return Err(DecodeError::TooLong { field: "reason", len: bytes.len(), max: MAX_REASON_LEN });
    }
    // Escaped, it is still a reason: within the limit (a relay or a log
    // passes it on), cut between two escapes where they made it longer.
    let text = text("reason", bytes)?;
    Ok(crate::text::escape_odd_within(&text, MAX_REASON_LEN))
}

pub(super) fn status_text(field: &'static str, bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.len() > MAX_STATUS_TEXT {
        return Err(DecodeError::TooLong { field, len: bytes.len(), max: MAX_STATUS_TEXT });
    }
    text(field, bytes)
}
