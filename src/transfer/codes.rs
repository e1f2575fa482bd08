//! The tables between a failure and the wire's codes, each written once and
//! exhaustive (no `_` arm: a failure or a code that nobody mapped does not
//! compile): from a failure to open, read or write a file ([`OpenFailure`],
//! whichever side met it) to the codes the wire carries ([`wire_codes`]), and
//! from those codes to the [`FailReason`] a caller decides on. The OS error
//! a failure stands for ([`os_error`]) sits beside them.

use std::io;

use crate::fs::source::{FileKind, OpenFailure};
use crate::protocol::{ReasonCode, SkipCode};
use crate::reason::FailReason;

/// The wire's codes for one failure: what a file's answer carries, and
/// what a listing's skipped entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireCodes {
    /// The code of a file's refusal or failure; `None`: not found.
    pub(crate) reason: Option<ReasonCode>,
    /// The code of a listing's skipped entry; `None`: not listed as
    /// skipped (nothing there, or not a directory to list).
    pub(crate) skip: Option<SkipCode>,
}

/// The one table from a failure to open, read or write a file to the
/// wire's codes: a fetch's refusal, an upload's answer and a listing's
/// skipped entry all take their code here.
pub(crate) fn wire_codes(failure: &OpenFailure) -> WireCodes {
    let (reason, skip) = match failure {
        OpenFailure::Missing => (None, None),
        OpenFailure::OutsideRoot => (Some(ReasonCode::OutsideRoot), Some(SkipCode::OutsideRoot)),
        OpenFailure::PermissionDenied => (Some(ReasonCode::PermissionDenied), Some(SkipCode::Unreadable)),
        OpenFailure::NameTooLong => (Some(ReasonCode::NameTooLong), Some(SkipCode::NameTooLong)),
        OpenFailure::InvalidPath => (Some(ReasonCode::InvalidPath), Some(SkipCode::InvalidPath)),
        OpenFailure::OutOfResources(_) => (Some(ReasonCode::OutOfResources), Some(SkipCode::Unreadable)),
        OpenFailure::WrongKind(FileKind::Directory) => (Some(ReasonCode::IsDirectory), None),
        OpenFailure::WrongKind(
            FileKind::Regular
            | FileKind::Symlink
            | FileKind::Fifo
            | FileKind::Device
            | FileKind::Socket
            | FileKind::Unknown,
        ) => (Some(ReasonCode::NotRegular), None),
        OpenFailure::Os(_) => (Some(ReasonCode::Other), Some(SkipCode::Unreadable)),
    };
    WireCodes { reason, skip }
}

/// The code of a failed create, write or rename of a received file (`None`
/// for nothing there: the directory went away), through [`wire_codes`].
pub(crate) fn io_reason(e: &io::Error) -> Option<ReasonCode> {
    wire_codes(&OpenFailure::of_io(e)).reason
}

/// A failure as the OS error it stands for: the words of a local file's
/// failure on the client, the `errno` of a listing's unreadable entry.
pub(crate) fn os_error(failure: &OpenFailure) -> io::Error {
    let errno = match failure {
        OpenFailure::Missing => libc::ENOENT,
        OpenFailure::OutsideRoot => return io::Error::other("a symbolic link on the way; not followed"),
        OpenFailure::PermissionDenied => libc::EACCES,
        OpenFailure::NameTooLong => libc::ENAMETOOLONG,
        OpenFailure::InvalidPath => libc::EINVAL,
        OpenFailure::OutOfResources(e) | OpenFailure::Os(e) => match e.raw_os_error() {
            Some(errno) => errno,
            None => return io::Error::new(e.kind(), e.to_string()),
        },
        OpenFailure::WrongKind(FileKind::Directory) => libc::EISDIR,
        OpenFailure::WrongKind(
            kind @ (FileKind::Regular
            | FileKind::Symlink
            | FileKind::Fifo
            | FileKind::Device
            | FileKind::Socket
            | FileKind::Unknown),
        ) => return io::Error::other(format!("{}, not a regular file", kind.text())),
    };
    io::Error::from_raw_os_error(errno)
}

/// The one table from a file's reason code to the reason a caller decides
/// on.
impl From<ReasonCode> for FailReason {
    fn from(code: ReasonCode) -> FailReason {
        match code {
            ReasonCode::OutsideRoot => FailReason::OutsideRoot,
            ReasonCode::IsDirectory => FailReason::IsDirectory,
            ReasonCode::NotRegular => FailReason::NotRegular,
            ReasonCode::PermissionDenied => FailReason::PermissionDenied,
            ReasonCode::NameTooLong => FailReason::NameTooLong,
            ReasonCode::InvalidPath => FailReason::InvalidPath,
            ReasonCode::Changed => FailReason::Changed,
            ReasonCode::ReadFailed => FailReason::ReadFailed,
            ReasonCode::WrongSession => FailReason::WrongSession,
            ReasonCode::OutOfResources => FailReason::OutOfResources,
            ReasonCode::TooLarge => FailReason::TooLarge,
            ReasonCode::Cancelled => FailReason::Cancelled,
            ReasonCode::Other => FailReason::Server,
        }
    }
}

/// The one table from a listing's skip code to the reason a caller decides
/// on.
impl From<SkipCode> for FailReason {
    fn from(code: SkipCode) -> FailReason {
        match code {
            SkipCode::Unreadable => FailReason::Unreadable,
            SkipCode::TooDeep => FailReason::TooDeep,
            SkipCode::OverLimit => FailReason::OverLimit,
            SkipCode::TooLong => FailReason::PathTooLong,
            SkipCode::OutsideRoot => FailReason::OutsideRoot,
            SkipCode::InvalidPath => FailReason::InvalidPath,
            SkipCode::TooManySkipped => FailReason::OverLimit,
            SkipCode::NameTooLong => FailReason::NameTooLong,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_gets_the_same_code_whichever_side_met_it() {
        let code = |errno: i32| io_reason(&io::Error::from_raw_os_error(errno));
        assert_eq!(code(libc::ENOSPC), Some(ReasonCode::OutOfResources));
        assert_eq!(code(libc::EDQUOT), Some(ReasonCode::OutOfResources));
        assert_eq!(code(libc::EROFS), Some(ReasonCode::PermissionDenied));
        assert_eq!(code(libc::ENAMETOOLONG), Some(ReasonCode::NameTooLong));
        assert_eq!(code(libc::ELOOP), Some(ReasonCode::OutsideRoot));
        assert_eq!(code(libc::EISDIR), Some(ReasonCode::IsDirectory));
        assert_eq!(code(libc::EIO), Some(ReasonCode::Other));
        assert_eq!(code(libc::ENOENT), None, "nothing there");
        // A directory component not followed carries its kind, no errno.
        let moved = io::Error::new(io::ErrorKind::NotADirectory, "sub is a symlink; not followed");
        assert_eq!(io_reason(&moved), Some(ReasonCode::OutsideRoot));
        let held = io::Error::new(io::ErrorKind::AlreadyExists, "a FIFO holds the name; not replaced");
        assert_eq!(io_reason(&held), Some(ReasonCode::NotRegular));
        let codes = wire_codes(&OpenFailure::PermissionDenied);
        assert_eq!(
            (codes.reason, codes.skip),
            (Some(ReasonCode::PermissionDenied), Some(SkipCode::Unreadable))
        );
        assert_eq!(os_error(&OpenFailure::NameTooLong).raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn only_the_code_of_another_reason_is_the_servers() {
        // Before, every code the table forgot (too large, cancelled) became
        // `FailReason::Server` and still compiled.
        assert_eq!(FailReason::from(ReasonCode::TooLarge), FailReason::TooLarge);
        assert_eq!(FailReason::from(ReasonCode::Cancelled), FailReason::Cancelled);
        assert_eq!(FailReason::from(ReasonCode::Other), FailReason::Server);
        assert_eq!(FailReason::from(SkipCode::TooLong), FailReason::PathTooLong);
        // A name the file system refuses is not a path the protocol cannot
        // carry: before, a name of 300 bytes was said longer than 1024.
        assert_eq!(wire_codes(&OpenFailure::NameTooLong).skip, Some(SkipCode::NameTooLong));
        assert_eq!(FailReason::from(SkipCode::NameTooLong), FailReason::NameTooLong);
    }
}
