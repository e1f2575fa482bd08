//! Why a file did not arrive, or was skipped: the reasons a caller decides
//! on, the server's reason codes among them.

/// Why a file was refused, failed or was skipped: the server's reason
/// codes, the reasons a listing left an entry out, and the client's own
/// checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FailReason {
    // The server's reasons.
    /// The path leads outside the served directory.
    OutsideRoot,
    /// The path names a directory.
    IsDirectory,
    /// The path names neither a regular file nor a directory.
    NotRegular,
    /// The server may not read the file.
    PermissionDenied,
    /// A name or the path is longer than the server's file system allows.
    NameTooLong,
    /// The path is malformed.
    InvalidPath,
    /// The file changed on the server while it was sent.
    Changed,
    /// Reading the file failed on the server.
    ReadFailed,
    /// The request does not belong on this kind of session.
    WrongSession,
    /// The server ran out of descriptors or memory.
    OutOfResources,
    /// A file of unknown size (procfs, sysfs) went on past the 64 MiB
    /// sent of one.
    TooLarge,
    /// The sender stopped the file as its receiver asked.
    Cancelled,
    /// Another reason of the server's; its text says what.
    Server,
    // Why a listing left an entry out.
    /// The server could not examine, open or read it (a directory of
    /// mode 000, for one).
    Unreadable,
    /// A directory deeper than the server's listing descends.
    TooDeep,
    /// The server's listing stopped at its file limit before it.
    OverLimit,
    // The client's reasons.
    /// The requested (or listed) path is longer than the protocol carries.
    PathTooLong,
    /// The name, given with a trailing `/`, names a directory, and the
    /// server has a file of that name (`small.txt/`, as a shell reads it).
    NotADirectory,
    /// The path gives no name to write the file under (no file name, a
    /// `..` kept below the output directory, an empty, `.` or `..`
    /// component in a listed path).
    BadOutputName,
    /// Fewer or more bytes arrived than the server announced or counted.
    SizeMismatch,
    /// The bytes that arrived do not have the server's checksum.
    ChecksumMismatch,
    /// The output could not be written (the output directory, a full disk,
    /// a closed pipe).
    WriteFailed,
    /// The output exists and [`Clobber::Keep`](crate::choices::Clobber::Keep) keeps it.
    OutputExists,
    /// The server serves its maximum of sessions and turned this one away.
    ServerBusy,
    /// The session was lost (server gone, stalled, interrupted) while this
    /// file arrived; nothing of it is kept.
    SessionLost,
}

/// Why a file was skipped, a success (`Outcome::Skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SkipReason {
    /// The output exists and [`Clobber::Skip`](crate::choices::Clobber::Skip)
    /// keeps it (`--no-clobber`).
    Exists,
    /// The copy has the source's size and is not older
    /// ([`Update::IfNewer`](crate::choices::Update::IfNewer), `--update`).
    UpToDate,
}
