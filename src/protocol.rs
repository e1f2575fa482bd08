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

mod codes;
mod command;
mod fields;
mod frame;
mod limits;
mod remote_path;
#[cfg(test)]
mod tests;

pub use codes::*;
pub use command::*;
pub use fields::*;
pub use frame::*;
pub use limits::*;
pub use remote_path::AsRemotePath;
