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
//! The tail of a Put: what it asks besides its path ([`PutFlags`]), then
//! the path below the server's `--accept` directory. The file's size, mode
//! and mtime come in the `Start` frame that opens its frames, as in a
//! fetch's answer:
//!
//! ```text
//!        0  u8   flags (bit 0: keep an existing name, bit 1: keep a copy
//!                that is up to date, bit 2: give the file the source's mtime)
//!        1  P - 1 bytes path (bytes, no NUL)
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
/// the `Error` frame that gives an upload up; version 5 an upload's frames
/// as a fetch's answer (a `Start` with the size, mode, flags and mtime
/// first, then `Data`, `DataEnd` or `End`, or `Error`), the `Put` with
/// its [`PutFlags`] only, and [`UploadAnswer::UpToDate`]. A peer of
/// another version is told so on its first message or frame
/// ([`DecodeError::UnsupportedVersion`]).
pub const PROTOCOL_VERSION: u8 = 5;
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

mod codes;
mod command;
mod fields;
mod frame;
#[cfg(test)]
mod tests;

pub use codes::*;
pub use command::*;
pub use fields::*;
pub use frame::*;
