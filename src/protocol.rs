//! The wire format: command-queue messages (client → server) and region frames
//! (server → client).
//!
//! Everything is encoded by hand in little endian. Every message and every frame
//! starts with a magic and a version. Decoding any byte string returns a value or
//! a typed [`DecodeError`]; it never panics and never allocates more than the
//! input's length. This module has no `unsafe`.
//!
//! # Command messages
//!
//! ```text
//! offset 0  u32  MSG_MAGIC ("SXQ1" little endian)
//!        4  u8   PROTOCOL_VERSION
//!        5  u8   kind (Open, Get, List, Close, Stop, Status, OpenStatus: an Open
//!                of a status session, Cancel, OpenUpload: an Open of an
//!                upload session, Put)
//!        6  u16  reserved, 0
//!        8  u32  client pid
//!       12  u32  seq (Get, List, Status, Cancel, Put), region size (Open,
//!                OpenStatus, OpenUpload)
//!                or stop kind (Stop: 0 now, 1 drain; see [`StopKind`]), else 0
//!       16  u16  region name length R (0 for Stop)
//!       18  u16  tail length P (Get: its fields and the path; List: 0 for the
//!                whole tree, else the prefix; Open, OpenStatus: the semaphore
//!                names; 0 for the others)
//!       20  R bytes region name (UTF-8, no NUL), then P bytes tail (a path is
//!                any bytes but NUL: a Unix file name is bytes)
//! ```
//!
//! The tail of a Get: where to start and on what condition, then the path
//! ([`GetCondition`]):
//!
//! ```text
//!        0  u64  offset: the first byte to send (0: the whole file)
//!        8  u8   condition (0 none, 1 if the source is the same, 2 unless
//!                the copy is up to date)
//!        9  u64  the stamp's size (0 without a condition)
//!       17  i64  the stamp's mtime in ns since the epoch (0 without one)
//!       25  P - 25 bytes path (bytes, no NUL)
//! ```
//!
//! The tail of a Put: the file's size, its permission bits and whether an
//! existing name is kept, then the path below the server's `--accept`
//! directory ([`PutIfExists`]):
//!
//! ```text
//!        0  u64  size
//!        8  u32  mode (permission bits, at most 0o7777)
//!       12  u8   flags (0 replace, 1 skip an existing name)
//!       13  P - 13 bytes path (bytes, no NUL)
//! ```
//!
//! The tail of an Open names the session's two semaphores, whose names have
//! random parts of their own (they cannot be derived from the region's):
//!
//! ```text
//!        0  u8   items name length I
//!        1  I bytes items semaphore name
//!    1 + I  u8   spaces name length S
//!    2 + I  S bytes spaces semaphore name          P = 2 + I + S
//! ```
//!
//! # Region frames
//!
//! Each slot of the ring holds one frame: a [`FRAME_HEADER_LEN`]-byte header and
//! a payload of at most the slot's payload capacity.
//!
//! ```text
//! offset 0  u16  FRAME_MAGIC ("XF")
//!        2  u8   PROTOCOL_VERSION
//!        3  u8   kind
//!        4  u32  payload length
//!        8  u32  seq (which request this answers)
//!       12  u32  reserved, 0
//! ```
//!
//! Payloads of the control frames are described on [`Reply`]; a `Data` frame's
//! payload is raw file bytes; a `DataEnd` frame's is the last raw bytes of a
//! file followed by what an `End` frame would carry ([`DataEnd`]).

use std::fmt;

/// Version of both the command messages and the region frames. Version 2
/// added the permission bits to `Start`; version 3 a [`ReasonCode`] before the
/// text of `Refused` and `Error`, the [`StartFlags`] and the mtime of
/// `Start`, the semaphore names in `Open`, paths as bytes (not only UTF-8),
/// the offset and [`GetCondition`] of `Get`, a prefix in `List`, mode and
/// mtime in `ListEntry`, the `ListSkipped` frame and both counts in
/// `ListEnd`, `Cancel`, the [`StopKind`] of `Stop`, and uploads (the upload
/// session's Open, `Put`); version 4 the `DataEnd` frame, the session kind
/// in `SessionStatus`, the uploads' flag and counts in `ServerStatus`, and
/// the `Error` frame that gives an upload up. A peer of another version
/// is told so on its first message or frame
/// ([`DecodeError::UnsupportedVersion`]).
pub const PROTOCOL_VERSION: u8 = 4;
/// First four bytes of every command message ("SXQ1").
pub const MSG_MAGIC: u32 = u32::from_le_bytes(*b"SXQ1");
/// First two bytes of every region frame ("XF").
pub const FRAME_MAGIC: u16 = u16::from_le_bytes(*b"XF");
/// Length of the fixed part of a command message.
pub const MSG_HEADER_LEN: usize = 20;
/// Length of a frame header in a slot.
pub const FRAME_HEADER_LEN: usize = 16;
/// Longest path a client may request, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest object name (region, semaphore, queue) including the leading `/`.
/// Linux allows 255 bytes for a file name in `/dev/shm`; semaphores lose four
/// of them to the `sem.` prefix, and one more is kept spare.
pub const MAX_NAME_LEN: usize = 250;
/// Largest command message this version ever sends. The Linux default for
/// `mq_msgsize` is 8192 bytes, so every message fits a default queue.
pub const MAX_MSG_LEN: usize = MSG_HEADER_LEN + MAX_NAME_LEN + GET_FIELDS_LEN + MAX_PATH_LEN;
/// Length of a Get's fields before its path: offset, condition, stamp.
const GET_FIELDS_LEN: usize = 25;
/// Longest tail of any message: a Get's fields and the longest path.
const MAX_TAIL_LEN: usize = GET_FIELDS_LEN + MAX_PATH_LEN;
/// Longest tail of an Open: two semaphore names, each after its length byte.
const MAX_OPEN_TAIL: usize = 2 * (1 + MAX_NAME_LEN);
const _: () = assert!(MAX_NAME_LEN <= u8::MAX as usize, "a name's length fits its length byte");
const _: () = assert!(MAX_OPEN_TAIL <= MAX_PATH_LEN, "an Open is no longer than a Get");
const _: () = assert!(MAX_MSG_LEN <= 8192, "every message fits a default queue");
/// Longest reason text in a `Refused` or `Error` frame.
pub const MAX_REASON_LEN: usize = 512;
/// The bits of a file mode a `Start` frame may carry: permissions, setuid,
/// setgid, sticky.
pub const MODE_BITS: u32 = 0o7777;
/// Most bytes the server sends of a file whose size it cannot know
/// beforehand ([`StartFlags::SIZE_UNKNOWN`]: procfs, sysfs, a size of 0);
/// past it the file fails with [`ReasonCode::TooLarge`].
pub const MAX_UNKNOWN_SIZE: u64 = 64 << 20;
/// Longest text (a root, a path) in a status frame; longer ones are cut.
pub const MAX_STATUS_TEXT: usize = 512;

/// Why a byte string is not a valid message or frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the fixed header or than the lengths it announces.
    Truncated { needed: usize, got: usize },
    /// More bytes than the header announces.
    TrailingBytes { expected: usize, got: usize },
    /// The magic does not match: not one of ours.
    BadMagic(u32),
    /// A version this build does not speak.
    UnsupportedVersion(u8),
    /// An unknown message or frame kind.
    UnknownKind(u8),
    /// A length field over its limit.
    TooLong { field: &'static str, len: usize, max: usize },
    /// A field that must be UTF-8 is not, or holds a NUL byte.
    BadText(&'static str),
    /// A field that must be present is empty, or one that must be empty is not.
    BadField(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, got } => {
                write!(f, "truncated: needs {needed} bytes, got {got}")
            }
            DecodeError::TrailingBytes { expected, got } => {
                write!(f, "{got} bytes where {expected} were announced")
            }
            DecodeError::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            DecodeError::UnsupportedVersion(v) => {
                write!(f, "protocol version {v}, this build speaks {PROTOCOL_VERSION}")
            }
            DecodeError::UnknownKind(k) => write!(f, "unknown kind {k}"),
            DecodeError::TooLong { field, len, max } => {
                write!(f, "{field} is {len} bytes, at most {max} allowed")
            }
            DecodeError::BadText(field) => write!(f, "{field} is not UTF-8 without NUL"),
            DecodeError::BadField(field) => write!(f, "{field} is malformed"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message cannot be encoded: it breaks a limit that decoding enforces,
/// so the peer would have to drop it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A text field over its limit.
    TooLong { field: &'static str, len: usize, max: usize },
    /// A text field holding a NUL byte.
    Nul(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong { field, len, max } => {
                write!(f, "{field} is {len} bytes, at most {max} allowed")
            }
            EncodeError::Nul(field) => write!(f, "{field} holds a NUL byte"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// What a session is for: it decides which requests the server takes on it
/// and which limit applies to opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// Fetches files and listings; at most `--max-sessions` at once.
    Transfer,
    /// Only asks for the status; taken even when the transfer sessions are
    /// all in use (a few at once).
    Status,
    /// Sends files to the server ([`Command::Put`]): the ring runs the other
    /// way, the client fills the slots and the server empties them, and the
    /// server answers each file in the region's header
    /// ([`UploadAnswer`]). Counts against `--max-sessions`.
    Upload,
}

impl SessionKind {
    /// Whether the session only asks for the status (and has room of its
    /// own beside the others).
    pub fn is_status(self) -> bool {
        self == SessionKind::Status
    }

    /// The kind's byte in a [`SessionStatus`] record.
    fn status_code(self) -> u8 {
        match self {
            SessionKind::Transfer => 0,
            SessionKind::Upload => 1,
            SessionKind::Status => 2,
        }
    }

    fn from_status_code(code: u8) -> Result<SessionKind, DecodeError> {
        match code {
            0 => Ok(SessionKind::Transfer),
            1 => Ok(SessionKind::Upload),
            2 => Ok(SessionKind::Status),
            _ => Err(DecodeError::BadField("session kind")),
        }
    }
}

/// Whether an uploaded file replaces a file of its name on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PutIfExists {
    /// Replace it atomically.
    #[default]
    Replace,
    /// Keep it and skip the upload (`--no-clobber`).
    Skip,
}

/// How the server answered one [`Command::Put`], in the region's header
/// (the ring runs from the client to the server in an upload session, so
/// no frame can carry it). Travels as one `u32`: the kind in the low byte,
/// a [`ReasonCode`] in the next for a refusal or a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadAnswer {
    /// Received, verified (count and xxh3) and named.
    Stored,
    /// Not written: the name exists and the client asked
    /// [`PutIfExists::Skip`].
    Skipped,
    /// The server does not take uploads (it was started without
    /// `--accept`).
    NotAccepting,
    /// The server will not write this path (it leads outside the
    /// directory, it is malformed).
    Refused(ReasonCode),
    /// Receiving or storing it failed on the server (a full disk, a
    /// checksum that does not match); nothing was left under its name.
    Failed(ReasonCode),
}

impl UploadAnswer {
    /// The answer's wire word (never 0: 0 means "no answer yet").
    pub fn code(self) -> u32 {
        match self {
            UploadAnswer::Stored => 1,
            UploadAnswer::Skipped => 2,
            UploadAnswer::NotAccepting => 3,
            UploadAnswer::Refused(code) => 4 | (code as u32) << 8,
            UploadAnswer::Failed(code) => 5 | (code as u32) << 8,
        }
    }

    /// The answer a wire word names.
    ///
    /// # Errors
    ///
    /// [`DecodeError::BadField`] for a word that names none.
    pub fn from_code(word: u32) -> Result<UploadAnswer, DecodeError> {
        let reason = || ReasonCode::from_u8((word >> 8) as u8);
        if word >> 16 != 0 {
            return Err(DecodeError::BadField("upload answer"));
        }
        Ok(match (word & 0xff, word >> 8) {
            (1, 0) => UploadAnswer::Stored,
            (2, 0) => UploadAnswer::Skipped,
            (3, 0) => UploadAnswer::NotAccepting,
            (4, _) => UploadAnswer::Refused(reason()?),
            (5, _) => UploadAnswer::Failed(reason()?),
            _ => return Err(DecodeError::BadField("upload answer")),
        })
    }
}

/// Why the server did not send a file, or stopped sending it: the code that
/// travels before the text of a `Refused` or `Error` frame, so that a client
/// decides on the code, never on the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReasonCode {
    /// The path leads outside the served directory (`..`, a symlink out).
    OutsideRoot = 1,
    /// The path names a directory.
    IsDirectory = 2,
    /// The path names something that is neither a regular file nor a
    /// directory (a FIFO, a device, a socket).
    NotRegular = 3,
    /// The server may not read it.
    PermissionDenied = 4,
    /// A name or the path is longer than the server's file system allows.
    NameTooLong = 5,
    /// The path is malformed.
    InvalidPath = 6,
    /// The file changed while it was sent (size, mtime or ctime moved).
    Changed = 7,
    /// Reading the file failed on the server.
    ReadFailed = 8,
    /// The request does not belong on this kind of session.
    WrongSession = 9,
    /// The server ran out of something (descriptors, memory).
    OutOfResources = 10,
    /// A file of unknown size went on past the 64 MiB the server reads of one.
    TooLarge = 11,
    /// The client cancelled the request ([`Command::Cancel`]).
    Cancelled = 12,
    /// Anything else; the text says what.
    Other = 255,
}

impl ReasonCode {
    fn from_u8(v: u8) -> Result<ReasonCode, DecodeError> {
        Ok(match v {
            1 => ReasonCode::OutsideRoot,
            2 => ReasonCode::IsDirectory,
            3 => ReasonCode::NotRegular,
            4 => ReasonCode::PermissionDenied,
            5 => ReasonCode::NameTooLong,
            6 => ReasonCode::InvalidPath,
            7 => ReasonCode::Changed,
            8 => ReasonCode::ReadFailed,
            9 => ReasonCode::WrongSession,
            10 => ReasonCode::OutOfResources,
            11 => ReasonCode::TooLarge,
            12 => ReasonCode::Cancelled,
            255 => ReasonCode::Other,
            _ => return Err(DecodeError::BadField("reason code")),
        })
    }
}

/// Why a listing left an entry out: the code that travels in a
/// `ListSkipped` frame, with a detail word beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipCode {
    /// It could not be examined, opened or read to its end; the detail is
    /// the `errno`.
    Unreadable = 1,
    /// A directory deeper than the walk descends; the detail is the limit.
    TooDeep = 2,
    /// The walk stopped here, at its file limit; the detail is the limit.
    OverLimit = 3,
    /// Its path is longer than a request or a frame carries; the detail is
    /// the limit. The path in the frame is cut to fit.
    TooLong = 4,
    /// The prefix leads outside the served directory.
    OutsideRoot = 5,
    /// The prefix is malformed.
    InvalidPath = 6,
}

impl SkipCode {
    fn from_u8(v: u8) -> Result<SkipCode, DecodeError> {
        Ok(match v {
            1 => SkipCode::Unreadable,
            2 => SkipCode::TooDeep,
            3 => SkipCode::OverLimit,
            4 => SkipCode::TooLong,
            5 => SkipCode::OutsideRoot,
            6 => SkipCode::InvalidPath,
            _ => return Err(DecodeError::BadField("skip code")),
        })
    }
}

/// A message on the command queue, from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Opens a session of `kind`: the server maps `region` (of `region_size`
    /// bytes) and opens the semaphores `items` and `spaces`, each named with
    /// a random part of its own.
    Open {
        client_pid: u32,
        region_size: u32,
        region: String,
        items: String,
        spaces: String,
        kind: SessionKind,
    },
    /// Asks for one file (its path: bytes, no NUL, not empty); the answer
    /// frames carry `seq`. The server sends its bytes from `offset` on (when
    /// `condition` allows; see [`GetCondition`]), and its `End` frame counts
    /// and hashes the whole file, the bytes before `offset` included.
    Get { client_pid: u32, seq: u32, region: String, path: Vec<u8>, offset: u64, condition: GetCondition },
    /// Asks for the list of served files at or below `prefix` (empty: the
    /// whole tree); the answer frames carry `seq`.
    List { client_pid: u32, seq: u32, region: String, prefix: Vec<u8> },
    /// Ends the session: the client's shutdown message.
    Close { client_pid: u32, region: String },
    /// Asks the server to stop, at once or after its open sessions
    /// ([`StopKind`]).
    Stop { client_pid: u32, kind: StopKind },
    /// Asks for the server's status; the answer frames carry `seq`.
    Status { client_pid: u32, seq: u32, region: String },
    /// Asks the server to stop sending the file of request `seq` (the client
    /// cannot keep it, a full disk say): the server ends that file with an
    /// `Error` frame of [`ReasonCode::Cancelled`] between two chunks, and the
    /// session goes on with the next request. A `seq` not being sent (done
    /// already, or not yet begun) is ignored.
    Cancel { client_pid: u32, seq: u32, region: String },
    /// On an upload session: the client sends the file `path` (bytes, no
    /// NUL, not empty; below the server's `--accept` directory) of `size`
    /// bytes and permission bits `mode`; its `Start`, `Data` and `End`
    /// frames, carrying `seq`, follow in the region, and the server answers
    /// in the region's header ([`UploadAnswer`]).
    Put {
        client_pid: u32,
        seq: u32,
        region: String,
        path: Vec<u8>,
        size: u64,
        mode: u32,
        if_exists: PutIfExists,
    },
}

/// A file's size and modification time as `fstat` tells them: what a
/// [`GetCondition`] compares and a `Start` frame reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stamp {
    pub size: u64,
    /// Nanoseconds since the epoch (negative before 1970).
    pub mtime_ns: i64,
}

/// On what condition a [`Command::Get`] is served as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GetCondition {
    /// None: the file from the offset (the whole file when the offset is
    /// past its end).
    #[default]
    Always,
    /// Resuming: the offset holds only if the source still has this size
    /// and mtime; otherwise the whole file is sent. The `Start` frame says
    /// which ([`StartFlags::FROM_OFFSET`]).
    IfSame(Stamp),
    /// `--update`: when the source has this size and is not newer than
    /// this mtime, the answer is a `Start` frame with
    /// [`StartFlags::UP_TO_DATE`] and nothing after it; otherwise the file.
    UnlessUpToDate(Stamp),
}

impl GetCondition {
    fn encode(self, out: &mut Vec<u8>) {
        let (kind, stamp) = match self {
            GetCondition::Always => (0u8, Stamp::default()),
            GetCondition::IfSame(stamp) => (1, stamp),
            GetCondition::UnlessUpToDate(stamp) => (2, stamp),
        };
        out.push(kind);
        out.extend_from_slice(&stamp.size.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<GetCondition, DecodeError> {
        let kind = r.u8()?;
        let stamp = Stamp { size: r.u64()?, mtime_ns: r.u64()? as i64 };
        Ok(match kind {
            0 if stamp == Stamp::default() => GetCondition::Always,
            1 => GetCondition::IfSame(stamp),
            2 => GetCondition::UnlessUpToDate(stamp),
            _ => return Err(DecodeError::BadField("get condition")),
        })
    }
}

/// How a server is asked to stop: by a `Stop` message (its seq word) or a
/// signal (`shm_server` maps SIGQUIT to [`StopKind::Drain`], SIGINT, SIGTERM
/// and SIGHUP to [`StopKind::Now`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    /// Cancel open sessions and stop (`shm_client --stop-server`).
    Now,
    /// Take no new session, let the open ones finish what they already
    /// asked for, then stop (`shm_client --stop-server --drain`).
    Drain,
}

impl StopKind {
    /// The word of a `Stop` message.
    fn code(self) -> u32 {
        match self {
            StopKind::Now => 0,
            StopKind::Drain => 1,
        }
    }

    /// The kind a `Stop` message's word names.
    fn from_code(code: u32) -> Result<StopKind, DecodeError> {
        match code {
            0 => Ok(StopKind::Now),
            1 => Ok(StopKind::Drain),
            _ => Err(DecodeError::BadField("stop kind")),
        }
    }
}

const KIND_OPEN: u8 = 1;
const KIND_GET: u8 = 2;
const KIND_LIST: u8 = 3;
const KIND_CLOSE: u8 = 4;
const KIND_STOP: u8 = 5;
const KIND_STATUS: u8 = 6;
const KIND_OPEN_STATUS: u8 = 7;
const KIND_CANCEL: u8 = 8;
const KIND_OPEN_UPLOAD: u8 = 9;
const KIND_PUT: u8 = 10;
/// Length of a Put's fields before its path: size, mode, flags.
const PUT_FIELDS_LEN: usize = 13;
const _: () = assert!(PUT_FIELDS_LEN <= GET_FIELDS_LEN, "a Put is no longer than a Get");

/// For the server's log (`-vv`): what the message asks, from whom.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Open { client_pid, region_size, region, kind: SessionKind::Transfer, .. } => {
                write!(f, "open from pid {client_pid}: region {region} ({region_size} bytes)")
            }
            Command::Open { client_pid, region_size, region, kind: SessionKind::Status, .. } => {
                write!(f, "open for the status from pid {client_pid}: region {region} ({region_size} bytes)")
            }
            Command::Open { client_pid, region_size, region, kind: SessionKind::Upload, .. } => {
                write!(f, "open for uploads from pid {client_pid}: region {region} ({region_size} bytes)")
            }
            Command::Put { client_pid, seq, region, path, size, .. } => write!(
                f,
                "put {} ({size} bytes) from pid {client_pid} (request {seq}, region {region})",
                crate::text::quote_bytes(path)
            ),
            Command::Get { client_pid, seq, region, path, offset, .. } => write!(
                f,
                "get {} from pid {client_pid} (request {seq}, region {region}{})",
                crate::text::quote_bytes(path),
                get_from_text(*offset)
            ),
            Command::List { client_pid, seq, region, prefix } if prefix.is_empty() => {
                write!(f, "list from pid {client_pid} (request {seq}, region {region})")
            }
            Command::List { client_pid, seq, region, prefix } => write!(
                f,
                "list {} from pid {client_pid} (request {seq}, region {region})",
                crate::text::quote_bytes(prefix)
            ),
            Command::Status { client_pid, seq, region } => {
                write!(f, "status from pid {client_pid} (request {seq}, region {region})")
            }
            Command::Close { client_pid, region } => {
                write!(f, "goodbye from pid {client_pid} (region {region})")
            }
            Command::Cancel { client_pid, seq, region } => {
                write!(f, "cancel of request {seq} from pid {client_pid} (region {region})")
            }
            Command::Stop { client_pid, kind: StopKind::Now } => write!(f, "stop from pid {client_pid}"),
            Command::Stop { client_pid, kind: StopKind::Drain } => {
                write!(f, "stop after the open sessions (drain) from pid {client_pid}")
            }
        }
    }
}

impl Command {
    /// The region this message is about, if any.
    pub fn region(&self) -> Option<&str> {
        match self {
            Command::Open { region, .. }
            | Command::Get { region, .. }
            | Command::List { region, .. }
            | Command::Status { region, .. }
            | Command::Cancel { region, .. }
            | Command::Put { region, .. }
            | Command::Close { region, .. } => Some(region),
            Command::Stop { .. } => None,
        }
    }

    /// Encodes the message.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] when a name or path breaks a limit that
    /// [`Command::decode`] would enforce, so that nothing is sent that the
    /// server would have to drop.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        // A tail of fields (an Open's names, a Get's fields and path).
        let mut fields = None;
        let (kind, pid, word, region, path) = match self {
            Command::Open { client_pid, region_size, region, items, spaces, kind } => {
                let kind = match kind {
                    SessionKind::Transfer => KIND_OPEN,
                    SessionKind::Status => KIND_OPEN_STATUS,
                    SessionKind::Upload => KIND_OPEN_UPLOAD,
                };
                fields = Some(encode_semaphore_names(items, spaces)?);
                (kind, *client_pid, *region_size, region.as_str(), &[][..])
            }
            Command::Get { client_pid, seq, region, path, offset, condition } => {
                fields = Some(encode_get_tail(*offset, *condition, path)?);
                (KIND_GET, *client_pid, *seq, region.as_str(), path.as_slice())
            }
            Command::List { client_pid, seq, region, prefix } => {
                (KIND_LIST, *client_pid, *seq, region.as_str(), prefix.as_slice())
            }
            Command::Close { client_pid, region } => (KIND_CLOSE, *client_pid, 0, region.as_str(), &[][..]),
            Command::Stop { client_pid, kind } => (KIND_STOP, *client_pid, kind.code(), "", &[][..]),
            Command::Status { client_pid, seq, region } => {
                (KIND_STATUS, *client_pid, *seq, region.as_str(), &[][..])
            }
            Command::Cancel { client_pid, seq, region } => {
                (KIND_CANCEL, *client_pid, *seq, region.as_str(), &[][..])
            }
            Command::Put { client_pid, seq, region, path, size, mode, if_exists } => {
                fields = Some(encode_put_tail(*size, *mode, *if_exists, path)?);
                (KIND_PUT, *client_pid, *seq, region.as_str(), path.as_slice())
            }
        };
        check_text("region name", region, MAX_NAME_LEN)?;
        check_bytes("path", path, MAX_PATH_LEN)?;
        let tail = fields.as_deref().unwrap_or(path);
        let mut out = Vec::with_capacity(MSG_HEADER_LEN + region.len() + tail.len());
        out.extend_from_slice(&MSG_MAGIC.to_le_bytes());
        out.push(PROTOCOL_VERSION);
        out.push(kind);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&pid.to_le_bytes());
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(&(region.len() as u16).to_le_bytes());
        out.extend_from_slice(&(tail.len() as u16).to_le_bytes());
        out.extend_from_slice(region.as_bytes());
        out.extend_from_slice(tail);
        Ok(out)
    }

    /// Decodes one message.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for anything that is not exactly one well-formed
    /// message of this version.
    pub fn decode(buf: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader::new(buf);
        let magic = r.u32()?;
        if magic != MSG_MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
        let version = r.u8()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = r.u8()?;
        if r.u16()? != 0 {
            return Err(DecodeError::BadField("reserved"));
        }
        let client_pid = r.u32()?;
        let word = r.u32()?;
        let region_len = usize::from(r.u16()?);
        let path_len = usize::from(r.u16()?);
        if region_len > MAX_NAME_LEN {
            return Err(DecodeError::TooLong { field: "region name", len: region_len, max: MAX_NAME_LEN });
        }
        if path_len > MAX_TAIL_LEN {
            return Err(DecodeError::TooLong { field: "path", len: path_len, max: MAX_TAIL_LEN });
        }
        let expected = MSG_HEADER_LEN + region_len + path_len;
        if buf.len() < expected {
            return Err(DecodeError::Truncated { needed: expected, got: buf.len() });
        }
        if buf.len() > expected {
            return Err(DecodeError::TrailingBytes { expected, got: buf.len() });
        }
        let region = text("region name", r.bytes(region_len)?)?;
        let tail = r.bytes(path_len)?;
        let needs_region = kind != KIND_STOP;
        if needs_region == region.is_empty() {
            return Err(DecodeError::BadField("region name"));
        }
        if let Some(kind) = open_kind(kind) {
            let (items, spaces) = decode_semaphore_names(tail)?;
            return Ok(Command::Open { client_pid, region_size: word, region, items, spaces, kind });
        }
        if kind == KIND_GET {
            let (offset, condition, path) = decode_get_tail(tail)?;
            return Ok(Command::Get { client_pid, seq: word, region, path, offset, condition });
        }
        if kind == KIND_PUT {
            let (size, mode, if_exists, path) = decode_put_tail(tail)?;
            return Ok(Command::Put { client_pid, seq: word, region, path, size, mode, if_exists });
        }
        let path = path_bytes("path", tail)?;
        let path_ok = match kind {
            KIND_LIST => true,
            _ => path.is_empty(),
        };
        if !path_ok {
            return Err(DecodeError::BadField("path"));
        }
        if kind == KIND_CLOSE && word != 0 {
            return Err(DecodeError::BadField("seq"));
        }
        Ok(match kind {
            KIND_LIST => Command::List { client_pid, seq: word, region, prefix: path },
            KIND_CLOSE => Command::Close { client_pid, region },
            KIND_STOP => Command::Stop { client_pid, kind: StopKind::from_code(word)? },
            KIND_STATUS => Command::Status { client_pid, seq: word, region },
            KIND_CANCEL => Command::Cancel { client_pid, seq: word, region },
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

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
    fn from_u8(v: u8) -> Result<FrameKind, DecodeError> {
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
    const KNOWN: u32 = 7;

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
    /// The server will not send this file.
    Refused {
        code: ReasonCode,
        reason: String,
    },
    /// Sending the file failed on the server's side.
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

/// What a server says of itself in answer to [`Command::Status`]. Payload:
/// `u32` pid, `u32` flags (bit 0: persistent, bit 1: accepting uploads; the
/// others 0), `u32` max_sessions, `u32` open_sessions, `u64` uptime_ms,
/// `u64` sessions_total, `u64` files, `u64` bytes, `u64` received_files,
/// `u64` received_bytes, then the root (UTF-8, at most [`MAX_STATUS_TEXT`]
/// bytes).
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
/// [`MAX_STATUS_TEXT`] bytes; empty between files).
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
            FrameKind::ListEntry => {
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
                Reply::ListEntry { size, mode, mtime_secs, mtime_nsec, path }
            }
            FrameKind::ListSkipped => {
                let code = SkipCode::from_u8(r.u8()?)?;
                if r.u8()? != 0 || r.u16()? != 0 {
                    return Err(DecodeError::BadField("reserved"));
                }
                let detail = r.u32()?;
                Reply::ListSkipped { code, detail, path: path_bytes("skipped path", r.rest())? }
            }
            FrameKind::ListEnd => Reply::ListEnd { files: r.u64()?, skipped: r.u64()? },
            FrameKind::ServerStatus => {
                let pid = r.u32()?;
                let flags = r.u32()?;
                if flags >> 2 != 0 {
                    return Err(DecodeError::BadField("status flags"));
                }
                let (persistent, accepting) = (flags & 1 != 0, flags & 2 != 0);
                Reply::ServerStatus(ServerStatus {
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
            FrameKind::SessionStatus => {
                let client_pid = r.u32()?;
                let word = r.u32()?;
                if word >> 8 != 0 {
                    return Err(DecodeError::BadField("reserved"));
                }
                let kind = SessionKind::from_status_code(word as u8)?;
                Reply::SessionStatus(SessionStatus {
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
            FrameKind::StatusEnd => Reply::StatusEnd { count: r.u64()? },
            FrameKind::Data | FrameKind::DataEnd => {
                return Err(DecodeError::BadField("data frame as control frame"))
            }
        };
        r.finish()?;
        Ok(reply)
    }
}

fn reason(bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.len() > MAX_REASON_LEN {
        return Err(DecodeError::TooLong { field: "reason", len: bytes.len(), max: MAX_REASON_LEN });
    }
    text("reason", bytes)
}

fn status_text(field: &'static str, bytes: &[u8]) -> Result<String, DecodeError> {
    if bytes.len() > MAX_STATUS_TEXT {
        return Err(DecodeError::TooLong { field, len: bytes.len(), max: MAX_STATUS_TEXT });
    }
    text(field, bytes)
}

/// The session kind an Open message of kind byte `kind` opens; `None` for
/// the other messages.
fn open_kind(kind: u8) -> Option<SessionKind> {
    match kind {
        KIND_OPEN => Some(SessionKind::Transfer),
        KIND_OPEN_STATUS => Some(SessionKind::Status),
        KIND_OPEN_UPLOAD => Some(SessionKind::Upload),
        _ => None,
    }
}

/// The tail of an Open: each semaphore name after its length byte.
/// The tail of a Get: its offset, its condition, its path.
fn encode_get_tail(offset: u64, condition: GetCondition, path: &[u8]) -> Result<Vec<u8>, EncodeError> {
    check_bytes("path", path, MAX_PATH_LEN)?;
    let mut out = Vec::with_capacity(GET_FIELDS_LEN + path.len());
    out.extend_from_slice(&offset.to_le_bytes());
    condition.encode(&mut out);
    out.extend_from_slice(path);
    Ok(out)
}

/// [`encode_get_tail`] undone: a path that is present, any bytes but NUL,
/// at most [`MAX_PATH_LEN`] bytes.
fn decode_get_tail(tail: &[u8]) -> Result<(u64, GetCondition, Vec<u8>), DecodeError> {
    if tail.is_empty() {
        return Err(DecodeError::BadField("path"));
    }
    let mut r = Reader::new(tail);
    let offset = r.u64()?;
    let condition = GetCondition::decode(&mut r)?;
    let path = path_bytes("path", r.rest())?;
    if path.is_empty() {
        return Err(DecodeError::BadField("path"));
    }
    Ok((offset, condition, path))
}

/// The tail of a Put: size, mode, flags (bit 0: skip an existing name),
/// then its path.
fn encode_put_tail(
    size: u64,
    mode: u32,
    if_exists: PutIfExists,
    path: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    check_bytes("path", path, MAX_PATH_LEN)?;
    let mut out = Vec::with_capacity(PUT_FIELDS_LEN + path.len());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(mode & MODE_BITS).to_le_bytes());
    out.push(match if_exists {
        PutIfExists::Replace => 0,
        PutIfExists::Skip => 1,
    });
    out.extend_from_slice(path);
    Ok(out)
}

/// [`encode_put_tail`] undone: a known flag, mode bits only, a path that
/// is present, any bytes but NUL, at most [`MAX_PATH_LEN`] bytes.
fn decode_put_tail(tail: &[u8]) -> Result<(u64, u32, PutIfExists, Vec<u8>), DecodeError> {
    let mut r = Reader::new(tail);
    let size = r.u64()?;
    let mode = r.u32()?;
    if mode & !MODE_BITS != 0 {
        return Err(DecodeError::BadField("mode"));
    }
    let if_exists = match r.u8()? {
        0 => PutIfExists::Replace,
        1 => PutIfExists::Skip,
        _ => return Err(DecodeError::BadField("put flags")),
    };
    let path = path_bytes("path", r.rest())?;
    if path.is_empty() {
        return Err(DecodeError::BadField("path"));
    }
    Ok((size, mode, if_exists, path))
}

/// `, from byte N` for a Get that starts past the beginning, for the log.
fn get_from_text(offset: u64) -> String {
    if offset == 0 {
        String::new()
    } else {
        format!(", from byte {offset}")
    }
}

fn encode_semaphore_names(items: &str, spaces: &str) -> Result<Vec<u8>, EncodeError> {
    check_text("items semaphore name", items, MAX_NAME_LEN)?;
    check_text("spaces semaphore name", spaces, MAX_NAME_LEN)?;
    let mut tail = Vec::with_capacity(2 + items.len() + spaces.len());
    for name in [items, spaces] {
        // At most MAX_NAME_LEN bytes, checked above: it fits the byte.
        tail.push(name.len() as u8);
        tail.extend_from_slice(name.as_bytes());
    }
    Ok(tail)
}

/// The two semaphore names of an Open's tail: each non-empty, at most
/// [`MAX_NAME_LEN`] bytes, UTF-8 without NUL, and nothing after them.
fn decode_semaphore_names(tail: &[u8]) -> Result<(String, String), DecodeError> {
    let mut r = Reader::new(tail);
    let mut name = |field: &'static str| -> Result<String, DecodeError> {
        let len = usize::from(r.u8()?);
        if len > MAX_NAME_LEN {
            return Err(DecodeError::TooLong { field, len, max: MAX_NAME_LEN });
        }
        let name = text(field, r.bytes(len)?)?;
        if name.is_empty() {
            return Err(DecodeError::BadField(field));
        }
        Ok(name)
    };
    let items = name("items semaphore name")?;
    let spaces = name("spaces semaphore name")?;
    r.finish()?;
    Ok((items, spaces))
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), EncodeError> {
    if s.len() > max {
        return Err(EncodeError::TooLong { field, len: s.len(), max });
    }
    if s.contains('\0') {
        return Err(EncodeError::Nul(field));
    }
    Ok(())
}

fn check_bytes(field: &'static str, b: &[u8], max: usize) -> Result<(), EncodeError> {
    if b.len() > max {
        return Err(EncodeError::TooLong { field, len: b.len(), max });
    }
    if b.contains(&0) {
        return Err(EncodeError::Nul(field));
    }
    Ok(())
}

/// A path field: any bytes but NUL, at most [`MAX_PATH_LEN`].
fn path_bytes(field: &'static str, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if bytes.len() > MAX_PATH_LEN {
        return Err(DecodeError::TooLong { field, len: bytes.len(), max: MAX_PATH_LEN });
    }
    if bytes.contains(&0) {
        return Err(DecodeError::BadText(field));
    }
    Ok(bytes.to_vec())
}

/// A requested path in the one form every request uses: `.` components and
/// empty ones (`//`, a trailing `/`) dropped, `..` kept (the server's
/// confined opener refuses it), a leading `/` kept (refused too). Nothing
/// left is `.`, the root.
///
/// ```text
/// ./sub//deep/  ->  sub/deep        .  ->  .        a/../b  ->  a/../b
/// ```
pub fn normalize_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    if path.starts_with(b"/") {
        out.push(b'/');
    }
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".") {
        if !out.is_empty() && out != b"/" {
            out.push(b'/');
        }
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

fn text(field: &'static str, bytes: &[u8]) -> Result<String, DecodeError> {
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::BadText(field))?;
    if s.contains('\0') {
        return Err(DecodeError::BadText(field));
    }
    Ok(s.to_owned())
}

/// Cuts `s` to at most `max` bytes without splitting a character.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end {
            Some(end) => {
                let out = &self.buf[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(DecodeError::Truncated { needed: self.pos.saturating_add(n), got: self.buf.len() }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { expected: self.pos, got: self.buf.len() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..64)
            .prop_map(move |cs| truncate_utf8(&cs.into_iter().collect::<String>(), max).to_owned())
    }

    fn nonempty_text(max: usize) -> impl Strategy<Value = String> {
        any_text(max).prop_map(|s| if s.is_empty() { "x".to_owned() } else { s })
    }

    /// Path bytes: anything but NUL, UTF-8 or not.
    fn any_path(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(1u8..=255, 0..64).prop_map(move |mut b| {
            b.truncate(max);
            b
        })
    }

    fn nonempty_path(max: usize) -> impl Strategy<Value = Vec<u8>> {
        any_path(max).prop_map(|p| if p.is_empty() { b"x".to_vec() } else { p })
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (
                (any::<u32>(), any::<u32>(), any_session_kind()),
                (nonempty_text(MAX_NAME_LEN), nonempty_text(MAX_NAME_LEN), nonempty_text(MAX_NAME_LEN))
            )
                .prop_map(|((client_pid, region_size, kind), (region, items, spaces))| {
                    Command::Open { client_pid, region_size, region, items, spaces, kind }
                }),
            (
                (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN), nonempty_path(MAX_PATH_LEN)),
                (any::<u64>(), any_get_condition())
            )
                .prop_map(|((client_pid, seq, region, path), (offset, condition))| {
                    Command::Get { client_pid, seq, region, path, offset, condition }
                }),
            (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN), any_path(MAX_PATH_LEN)).prop_map(
                |(client_pid, seq, region, prefix)| Command::List { client_pid, seq, region, prefix }
            ),
            (any::<u32>(), nonempty_text(MAX_NAME_LEN))
                .prop_map(|(client_pid, region)| Command::Close { client_pid, region }),
            (any::<u32>(), prop_oneof![Just(StopKind::Now), Just(StopKind::Drain)])
                .prop_map(|(client_pid, kind)| Command::Stop { client_pid, kind }),
            (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN))
                .prop_map(|(client_pid, seq, region)| Command::Status { client_pid, seq, region }),
            (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN))
                .prop_map(|(client_pid, seq, region)| Command::Cancel { client_pid, seq, region }),
            (
                (any::<u32>(), any::<u32>(), nonempty_text(MAX_NAME_LEN), nonempty_path(MAX_PATH_LEN)),
                (
                    any::<u64>(),
                    0u32..=MODE_BITS,
                    prop_oneof![Just(PutIfExists::Replace), Just(PutIfExists::Skip)]
                )
            )
                .prop_map(|((client_pid, seq, region, path), (size, mode, if_exists))| {
                    Command::Put { client_pid, seq, region, path, size, mode, if_exists }
                }),
        ]
    }

    fn any_get_condition() -> impl Strategy<Value = GetCondition> {
        let stamp = (any::<u64>(), any::<i64>()).prop_map(|(size, mtime_ns)| Stamp { size, mtime_ns });
        prop_oneof![
            Just(GetCondition::Always),
            stamp.clone().prop_map(GetCondition::IfSame),
            stamp.prop_map(GetCondition::UnlessUpToDate),
        ]
    }

    fn any_session_kind() -> impl Strategy<Value = SessionKind> {
        prop_oneof![Just(SessionKind::Transfer), Just(SessionKind::Status), Just(SessionKind::Upload)]
    }

    #[test]
    fn every_upload_answer_survives_its_word_and_no_other_word_is_one() {
        let answers = [
            UploadAnswer::Stored,
            UploadAnswer::Skipped,
            UploadAnswer::NotAccepting,
            UploadAnswer::Refused(ReasonCode::OutsideRoot),
            UploadAnswer::Failed(ReasonCode::Other),
        ];
        for answer in answers {
            assert_ne!(answer.code(), 0, "0 is no answer");
            assert_eq!(UploadAnswer::from_code(answer.code()), Ok(answer));
        }
        for word in [0, 6, 1 | 1 << 8, 4, 4 | 99 << 8, 1 << 16] {
            assert!(UploadAnswer::from_code(word).is_err(), "{word:#x}");
        }
    }

    fn any_code() -> impl Strategy<Value = ReasonCode> {
        (1u8..=255).prop_filter_map("a known code", |v| ReasonCode::from_u8(v).ok())
    }

    fn any_skip_code() -> impl Strategy<Value = SkipCode> {
        (1u8..=16).prop_filter_map("a known code", |v| SkipCode::from_u8(v).ok())
    }

    fn any_reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            (any::<u64>(), 0..=MODE_BITS, 0..=StartFlags::KNOWN, any::<i64>()).prop_map(
                |(size, mode, bits, mtime_ns)| Reply::Start {
                    size,
                    mode,
                    flags: StartFlags::from_bits(bits).unwrap(),
                    mtime_ns
                }
            ),
            (any::<u64>(), any::<u64>()).prop_map(|(count, checksum)| Reply::End { count, checksum }),
            Just(Reply::NotFound),
            (any_code(), any_text(MAX_REASON_LEN)).prop_map(|(code, reason)| Reply::Refused { code, reason }),
            (any_code(), any_text(MAX_REASON_LEN)).prop_map(|(code, reason)| Reply::Error { code, reason }),
            any::<u32>().prop_map(|max_sessions| Reply::Busy { max_sessions }),
            (any::<u64>(), 0..=MODE_BITS, any::<i64>(), 0..1_000_000_000u32, nonempty_path(MAX_PATH_LEN))
                .prop_map(|(size, mode, mtime_secs, mtime_nsec, path)| Reply::ListEntry {
                    size,
                    mode,
                    mtime_secs,
                    mtime_nsec,
                    path
                }),
            (any_skip_code(), any::<u32>(), any_path(MAX_PATH_LEN))
                .prop_map(|(code, detail, path)| Reply::ListSkipped { code, detail, path }),
            (any::<u64>(), any::<u64>()).prop_map(|(files, skipped)| Reply::ListEnd { files, skipped }),
            (
                (any::<u32>(), any::<bool>(), any::<u32>(), any::<u32>()),
                (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
                (any::<bool>(), any::<u64>(), any::<u64>()),
                any_text(MAX_STATUS_TEXT)
            )
                .prop_map(
                    |(
                        (pid, persistent, max_sessions, open_sessions),
                        (uptime_ms, sessions_total, files, bytes),
                        (accepting, received_files, received_bytes),
                        root,
                    )| {
                        Reply::ServerStatus(ServerStatus {
                            pid,
                            persistent,
                            max_sessions,
                            open_sessions,
                            uptime_ms,
                            sessions_total,
                            files,
                            bytes,
                            accepting,
                            received_files,
                            received_bytes,
                            root,
                        })
                    }
                ),
            (
                (any::<u32>(), any::<u64>(), any::<u64>(), any::<u64>()),
                (any::<u64>(), any::<u64>(), any::<u64>()),
                (any_text(MAX_STATUS_TEXT), any_session_kind())
            )
                .prop_map(
                    |((client_pid, age_ms, idle_ms, sent), (size, file_ms, total), (path, kind))| {
                        Reply::SessionStatus(SessionStatus {
                            client_pid,
                            kind,
                            age_ms,
                            idle_ms,
                            sent,
                            size,
                            file_ms,
                            total,
                            path,
                        })
                    }
                ),
            any::<u64>().prop_map(|count| Reply::StatusEnd { count }),
        ]
    }

    proptest! {
        #[test]
        fn command_round_trips(cmd in any_command()) {
            let bytes = cmd.encode().unwrap();
            prop_assert!(bytes.len() <= MAX_MSG_LEN);
            prop_assert_eq!(Command::decode(&bytes).unwrap(), cmd);
        }

        #[test]
        fn reply_round_trips(reply in any_reply(), seq in any::<u32>()) {
            let mut payload = Vec::new();
            reply.encode_payload(&mut payload);
            let header = FrameHeader { kind: reply.kind(), len: payload.len() as u32, seq };
            let decoded = FrameHeader::decode(&header.encode(), 4096).unwrap();
            prop_assert_eq!(decoded, header);
            prop_assert_eq!(Reply::decode(decoded.kind, &payload).unwrap(), reply);
        }

        #[test]
        fn command_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Command::decode(&bytes);
        }

        #[test]
        fn command_decode_never_panics_behind_a_valid_prefix(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            kind in 0u8..10,
        ) {
            let mut bytes = MSG_MAGIC.to_le_bytes().to_vec();
            bytes.push(PROTOCOL_VERSION);
            bytes.push(kind);
            bytes.extend_from_slice(&tail);
            if let Ok(cmd) = Command::decode(&bytes) {
                prop_assert_eq!(cmd.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn frame_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..5000) {
            if let Ok(h) = FrameHeader::decode(&bytes, max) {
                prop_assert!(h.len as usize <= max);
            }
        }

        #[test]
        fn reply_decode_never_panics(kind in 1u8..14, payload in proptest::collection::vec(any::<u8>(), 0..700)) {
            let kind = FrameKind::from_u8(kind).unwrap();
            let _ = Reply::decode(kind, &payload);
        }
    }

    #[test]
    fn an_unknown_reason_code_is_a_typed_error() {
        let payload = [200u8, b'x'];
        assert_eq!(Reply::decode(FrameKind::Refused, &payload), Err(DecodeError::BadField("reason code")));
        assert_eq!(Reply::decode(FrameKind::Error, &[]), Err(DecodeError::Truncated { needed: 1, got: 0 }));
    }

    #[test]
    fn wrong_magic_version_and_truncation_are_typed_errors() {
        let good = Command::Close { client_pid: 7, region: "/q.1.ab".into() }.encode().unwrap();
        assert_eq!(Command::decode(&[]), Err(DecodeError::Truncated { needed: 4, got: 0 }));
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(matches!(Command::decode(&bad), Err(DecodeError::BadMagic(_))));
        let mut bad = good.clone();
        bad[4] = PROTOCOL_VERSION + 1;
        assert_eq!(Command::decode(&bad), Err(DecodeError::UnsupportedVersion(PROTOCOL_VERSION + 1)));
        assert!(matches!(Command::decode(&good[..good.len() - 1]), Err(DecodeError::Truncated { .. })));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(Command::decode(&long), Err(DecodeError::TrailingBytes { .. })));
    }

    #[test]
    fn open_carries_both_semaphore_names_and_the_largest_fits_a_message() {
        let long = |c: char| format!("/{}", c.to_string().repeat(MAX_NAME_LEN - 1));
        let open = Command::Open {
            client_pid: 9,
            region_size: 4096,
            region: long('r'),
            items: long('i'),
            spaces: long('s'),
            kind: SessionKind::Transfer,
        };
        let bytes = open.encode().unwrap();
        assert_eq!(bytes.len(), MSG_HEADER_LEN + 3 * MAX_NAME_LEN + 2);
        assert!(bytes.len() <= MAX_MSG_LEN);
        assert_eq!(Command::decode(&bytes), Ok(open));
        let too_long = Command::Open {
            client_pid: 9,
            region_size: 4096,
            region: "/r".into(),
            items: format!("/{}", "i".repeat(MAX_NAME_LEN)),
            spaces: "/s".into(),
            kind: SessionKind::Status,
        };
        assert!(matches!(too_long.encode(), Err(EncodeError::TooLong { .. })));
    }

    #[test]
    fn an_open_without_both_semaphore_names_is_rejected() {
        let open = |items: &str, spaces: &str| {
            Command::Open {
                client_pid: 1,
                region_size: 4096,
                region: "/r".into(),
                items: items.into(),
                spaces: spaces.into(),
                kind: SessionKind::Transfer,
            }
            .encode()
            .unwrap()
        };
        assert_eq!(Command::decode(&open("", "/s")), Err(DecodeError::BadField("items semaphore name")));
        assert_eq!(Command::decode(&open("/i", "")), Err(DecodeError::BadField("spaces semaphore name")));
        // A tail with a byte after the names, its length field raised to match.
        let mut msg = open("/i", "/s");
        msg.push(b'x');
        let tail_len = u16::from_le_bytes([msg[18], msg[19]]) + 1;
        msg[18..20].copy_from_slice(&tail_len.to_le_bytes());
        assert!(matches!(Command::decode(&msg), Err(DecodeError::TrailingBytes { .. })));
        // A length byte that runs past the tail.
        let mut msg = open("/i", "/s");
        msg[MSG_HEADER_LEN + 2] = 200;
        assert!(matches!(Command::decode(&msg), Err(DecodeError::Truncated { .. })));
        // A Get's path where an Open's names belong.
        let mut msg = Command::Get {
            client_pid: 1,
            seq: 1,
            region: "/r".into(),
            path: "p".into(),
            offset: 0,
            condition: GetCondition::Always,
        }
        .encode()
        .unwrap();
        msg[5] = KIND_OPEN;
        assert!(Command::decode(&msg).is_err());
    }

    #[test]
    fn get_without_path_and_stop_with_region_are_rejected() {
        let mut msg = Command::List { client_pid: 1, seq: 1, region: "/r".into(), prefix: Vec::new() }
            .encode()
            .unwrap();
        msg[5] = KIND_GET;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("path")));
        msg[5] = KIND_STOP;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("region name")));
    }

    /// Found by `cargo fuzz run decode`: messages with non-zero bytes in
    /// fields their kind does not use decoded, and so did not encode back to
    /// themselves.
    #[test]
    fn unused_fields_must_be_zero() {
        // Found at version 1; byte 4 is the version.
        let mut msg = [83, 88, 81, 49, 1, 1, 0, 249, 0, 0, 0, 15, 63, 0, 0, 0, 2, 0, 0, 0, 1, 16];
        msg[4] = PROTOCOL_VERSION;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("reserved")));
        // Second run: a Stop message with a non-zero seq field (since the
        // seq word names the stop kind, one that names no kind).
        let mut msg = [83, 88, 81, 49, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0];
        msg[4] = PROTOCOL_VERSION;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("stop kind")));
        let mut header = FrameHeader { kind: FrameKind::End, len: 16, seq: 3 }.encode();
        header[15] = 1;
        assert_eq!(FrameHeader::decode(&header, 100), Err(DecodeError::BadField("reserved")));
    }

    #[test]
    fn get_carries_its_offset_and_condition_before_the_path() {
        let stamp = Stamp { size: 10, mtime_ns: -5 };
        let cmd = Command::Get {
            client_pid: 1,
            seq: 2,
            region: "/r".into(),
            path: b"dir/f".to_vec(),
            offset: 1 << 40,
            condition: GetCondition::IfSame(stamp),
        };
        let mut msg = cmd.encode().unwrap();
        assert_eq!(msg.len(), MSG_HEADER_LEN + 2 + GET_FIELDS_LEN + 5);
        assert_eq!(Command::decode(&msg), Ok(cmd));
        // An unknown condition, and a stamp beside no condition.
        let at = MSG_HEADER_LEN + 2 + 8;
        msg[at] = 3;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("get condition")));
        msg[at] = 0;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("get condition")));
        // The fields without a path.
        let tail_len = GET_FIELDS_LEN as u16;
        let mut msg = msg[..MSG_HEADER_LEN + 2 + GET_FIELDS_LEN].to_vec();
        msg[18..20].copy_from_slice(&tail_len.to_le_bytes());
        msg[at] = 2;
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("path")));
        // The longest path fits a default queue with its fields.
        let longest = Command::Get {
            client_pid: 1,
            seq: 2,
            region: "/".repeat(MAX_NAME_LEN),
            path: vec![b'p'; MAX_PATH_LEN],
            offset: 0,
            condition: GetCondition::UnlessUpToDate(stamp),
        };
        let msg = longest.encode().unwrap();
        assert_eq!(msg.len(), MAX_MSG_LEN);
        assert_eq!(Command::decode(&msg), Ok(longest));
    }

    #[test]
    fn stop_says_its_kind_in_the_seq_word_and_refuses_unknown_kinds() {
        for (kind, word) in [(StopKind::Now, 0u32), (StopKind::Drain, 1)] {
            let msg = Command::Stop { client_pid: 42, kind }.encode().unwrap();
            assert_eq!(msg[12..16], word.to_le_bytes());
            assert_eq!(Command::decode(&msg), Ok(Command::Stop { client_pid: 42, kind }));
        }
        let mut msg = Command::Stop { client_pid: 42, kind: StopKind::Drain }.encode().unwrap();
        msg[12..16].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Command::decode(&msg), Err(DecodeError::BadField("stop kind")));
    }

    #[test]
    fn start_carries_permission_bits_only() {
        let start = Reply::Start { size: 5, mode: 0o4755, flags: StartFlags::NONE, mtime_ns: -1 };
        let mut payload = Vec::new();
        start.encode_payload(&mut payload);
        assert_eq!(payload.len(), 24);
        assert_eq!(Reply::decode(FrameKind::Start, &payload), Ok(start));
        // A Start without its flags is short.
        assert!(matches!(
            Reply::decode(FrameKind::Start, &payload[..12]),
            Err(DecodeError::Truncated { .. })
        ));
        // A file type in the mode is not a permission bit.
        payload[8..12].copy_from_slice(&0o100644u32.to_le_bytes());
        assert_eq!(Reply::decode(FrameKind::Start, &payload), Err(DecodeError::BadField("file mode")));
        // A version-1 Start (the size alone) does not pass for this version's.
        assert!(matches!(Reply::decode(FrameKind::Start, &payload[..8]), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn start_says_whether_the_size_is_known_and_refuses_unknown_flags() {
        let start = Reply::Start { size: 0, mode: 0o444, flags: StartFlags::SIZE_UNKNOWN, mtime_ns: 7 };
        let mut payload = Vec::new();
        start.encode_payload(&mut payload);
        let decoded = Reply::decode(FrameKind::Start, &payload);
        assert_eq!(decoded, Ok(start));
        assert!(matches!(decoded, Ok(Reply::Start { flags, .. }) if flags.size_unknown()));
        payload[12..16].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(Reply::decode(FrameKind::Start, &payload), Err(DecodeError::BadField("start flags")));
    }

    #[test]
    fn status_frames_fit_the_smallest_slot_and_reject_unused_bits() {
        let server = Reply::ServerStatus(ServerStatus {
            pid: 1,
            persistent: true,
            max_sessions: 16,
            open_sessions: 2,
            uptime_ms: 5,
            sessions_total: 9,
            files: 3,
            bytes: 4,
            accepting: true,
            received_files: 5,
            received_bytes: 6,
            root: "r".repeat(MAX_STATUS_TEXT + 100),
        });
        let mut payload = Vec::new();
        server.encode_payload(&mut payload);
        let smallest = crate::shm_region::Geometry::for_slots(crate::shm_region::MAX_SLOTS).max_payload();
        assert!(payload.len() <= smallest, "{} > {smallest}", payload.len());
        let Ok(Reply::ServerStatus(back)) = Reply::decode(FrameKind::ServerStatus, &payload) else {
            panic!("does not decode")
        };
        assert_eq!(back.root.len(), MAX_STATUS_TEXT, "a long root is cut");
        assert!(back.accepting && (back.received_files, back.received_bytes) == (5, 6));
        payload[4] = 4;
        assert_eq!(
            Reply::decode(FrameKind::ServerStatus, &payload),
            Err(DecodeError::BadField("status flags"))
        );
        let session = Reply::SessionStatus(SessionStatus {
            client_pid: 1,
            kind: SessionKind::Upload,
            age_ms: 0,
            idle_ms: 0,
            sent: 0,
            size: 0,
            file_ms: 0,
            total: 0,
            path: "p".repeat(MAX_STATUS_TEXT),
        });
        let mut payload = Vec::new();
        session.encode_payload(&mut payload);
        assert!(payload.len() <= smallest, "{} > {smallest}", payload.len());
        assert_eq!(Reply::decode(FrameKind::SessionStatus, &payload), Ok(session.clone()));
        // A longer path is cut to the status text's bound, and still fits.
        let Reply::SessionStatus(mut long) = session.clone() else { unreachable!() };
        long.path = "p".repeat(MAX_PATH_LEN);
        let mut cut = Vec::new();
        Reply::SessionStatus(long).encode_payload(&mut cut);
        assert_eq!(cut, payload, "cut to MAX_STATUS_TEXT bytes");
        payload[4] = 3;
        assert_eq!(
            Reply::decode(FrameKind::SessionStatus, &payload),
            Err(DecodeError::BadField("session kind"))
        );
        payload[4] = 1;
        payload[5] = 1;
        assert_eq!(Reply::decode(FrameKind::SessionStatus, &payload), Err(DecodeError::BadField("reserved")));
    }

    #[test]
    fn oversized_frame_payload_is_rejected() {
        let h = FrameHeader { kind: FrameKind::Data, len: 2009, seq: 0 }.encode();
        assert!(matches!(FrameHeader::decode(&h, 2008), Err(DecodeError::TooLong { .. })));
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let path = vec![b'a'; MAX_PATH_LEN + 1];
        let get = |path: Vec<u8>| Command::Get {
            client_pid: 1,
            seq: 0,
            region: "/r".into(),
            path,
            offset: 0,
            condition: GetCondition::Always,
        };
        let cmd = get(path);
        assert!(matches!(cmd.encode(), Err(EncodeError::TooLong { field: "path", .. })));
        let cmd = get(b"a\0b".to_vec());
        assert_eq!(cmd.encode(), Err(EncodeError::Nul("path")));
    }

    #[test]
    fn paths_that_are_not_utf8_travel_as_they_are() {
        let path = b"bad_\xff\xfe.bin".to_vec();
        let cmd = Command::Get {
            client_pid: 1,
            seq: 2,
            region: "/r".into(),
            path: path.clone(),
            offset: 0,
            condition: GetCondition::Always,
        };
        assert_eq!(Command::decode(&cmd.encode().unwrap()), Ok(cmd));
        let entry = Reply::ListEntry { size: 1, mode: 0o644, mtime_secs: -1, mtime_nsec: 5, path };
        let mut payload = Vec::new();
        entry.encode_payload(&mut payload);
        assert_eq!(Reply::decode(FrameKind::ListEntry, &payload), Ok(entry));
        // A file type in the mode, or nanoseconds of a second or more, are refused.
        payload[8..12].copy_from_slice(&0o100644u32.to_le_bytes());
        assert_eq!(Reply::decode(FrameKind::ListEntry, &payload), Err(DecodeError::BadField("file mode")));
        payload[8..12].copy_from_slice(&0o644u32.to_le_bytes());
        payload[20..24].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        assert_eq!(Reply::decode(FrameKind::ListEntry, &payload), Err(DecodeError::BadField("mtime")));
        let skipped = [9u8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Reply::decode(FrameKind::ListSkipped, &skipped), Err(DecodeError::BadField("skip code")));
    }

    #[test]
    fn requested_paths_are_normalized_one_way() {
        for (given, want) in [
            ("./sub", "sub"),
            ("sub//deep", "sub/deep"),
            ("sub/deep/", "sub/deep"),
            ("./a/./b//c/", "a/b/c"),
            (".", "."),
            ("./", "."),
            ("a/../b", "a/../b"),
            ("/etc//passwd", "/etc/passwd"),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(given.as_bytes()), want.as_bytes(), "{given}");
        }
    }

    #[test]
    fn a_data_end_payload_splits_into_data_and_the_end_and_a_short_one_is_refused() {
        let mut payload = b"last bytes".to_vec();
        payload.extend_from_slice(&DataEnd::trailer(4106, 0xfeed_beef));
        assert_eq!(DataEnd::decode(&payload), Ok(DataEnd { len: 10, count: 4106, checksum: 0xfeed_beef }));
        let empty = DataEnd::trailer(0, 1);
        assert_eq!(DataEnd::decode(&empty), Ok(DataEnd { len: 0, count: 0, checksum: 1 }));
        for short in 0..DataEnd::TRAILER_LEN {
            assert!(matches!(DataEnd::decode(&payload[..short]), Err(DecodeError::Truncated { .. })));
        }
        assert_eq!(FrameKind::from_u8(14), Ok(FrameKind::DataEnd));
        assert!(Reply::decode(FrameKind::DataEnd, &payload).is_err(), "not a control frame");
    }
}
