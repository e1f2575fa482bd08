//! The wire format's version, magics and limits, and the errors of
//! encoding and decoding.

use std::fmt;

/// Version of both the command messages and the region frames. Version 2
/// added the permission bits to `Start`; version 3 a `ReasonCode` before the
/// text of `Refused` and `Error`, the `StartFlags` and the mtime of
/// `Start`, the semaphore names in `Open`, paths as bytes (not only UTF-8),
/// the offset and `GetCondition` of `Get`, a prefix in `List`, mode and
/// mtime in `ListEntry`, the `ListSkipped` frame and both counts in
/// `ListEnd`, `Cancel`, the `StopKind` of `Stop`, and uploads (the upload
/// session's Open, `Put`); version 4 the `DataEnd` frame, the session kind
/// in `SessionStatus`, the uploads' flag and counts in `ServerStatus`, and
/// the `Error` frame that gives an upload up; version 5 an upload's frames
/// as a fetch's answer (a `Start` with the size, mode, flags and mtime
/// first, then `Data`, `DataEnd` or `End`, or `Error`), the `Put` with
/// its `PutFlags` only, and `UploadAnswer::UpToDate`. A peer of
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
pub(super) const GET_FIELDS_LEN: usize = 25;
/// Longest tail of any message: a Get's fields and the longest path.
pub(super) const MAX_TAIL_LEN: usize = GET_FIELDS_LEN + MAX_PATH_LEN;
/// Longest tail of an Open: two semaphore names, each after its length byte.
pub(super) const MAX_OPEN_TAIL: usize = 2 * (1 + MAX_NAME_LEN);
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
    /// A field that must not be empty is (the path of a `Get` or a `Put`).
    Empty(&'static str),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong { field, len, max } => {
                write!(f, "{field} is {len} bytes, at most {max} allowed")
            }
            EncodeError::Nul(field) => write!(f, "{field} holds a NUL byte"),
            EncodeError::Empty(field) => write!(f, "{field} is empty"),
        }
    }
}

impl std::error::Error for EncodeError {}
