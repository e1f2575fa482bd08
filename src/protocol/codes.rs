//! The codes both sides agree on: what a session is for, what an upload
//! does with an existing name, and why a file was refused or skipped.

use super::limits::*;

/// What a session is for: it decides which requests the server takes on it
/// and which limit applies to opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// Fetches files and listings; at most `--max-sessions` at once.
    Transfer,
    /// Only asks for the status; taken even when the transfer sessions are
    /// all in use (a few at once).
    Status,
    /// Sends files to the server (one upload request per file): the ring runs the other
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
    pub(super) fn status_code(self) -> u8 {
        match self {
            SessionKind::Transfer => 0,
            SessionKind::Upload => 1,
            SessionKind::Status => 2,
        }
    }

    pub(super) fn from_status_code(code: u8) -> Result<SessionKind, DecodeError> {
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

/// What a `Command::Put` asks besides its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PutFlags(u8);

impl PutFlags {
    /// None: an existing name is replaced, the file gets the time it was
    /// written.
    pub const NONE: PutFlags = PutFlags(0);
    /// A file of that name is kept and the upload skipped
    /// ([`UploadAnswer::Skipped`], `--no-clobber`).
    pub const SKIP_EXISTING: PutFlags = PutFlags(1);
    /// A file of that name with the source's size and not older than it is
    /// kept and the upload skipped ([`UploadAnswer::UpToDate`], `--update`);
    /// a source of unknown size is never up to date.
    pub const UNLESS_UP_TO_DATE: PutFlags = PutFlags(2);
    /// The stored file gets the source's mtime (its `Start` frame's,
    /// `--preserve`).
    pub const KEEP_MTIME: PutFlags = PutFlags(4);
    /// Every flag this version knows; a Put with any other bit is refused.
    pub(super) const KNOWN: u8 = 7;

    /// These flags and `other`'s.
    #[must_use]
    pub fn with(self, other: PutFlags) -> PutFlags {
        PutFlags(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub fn has(self, other: PutFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether an existing name is kept ([`PutFlags::SKIP_EXISTING`]).
    pub fn if_exists(self) -> PutIfExists {
        if self.has(PutFlags::SKIP_EXISTING) {
            PutIfExists::Skip
        } else {
            PutIfExists::Replace
        }
    }

    /// The flags as they travel.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Flags from their wire form: `None` when a bit is not known.
    pub fn from_bits(bits: u8) -> Option<PutFlags> {
        (bits & !Self::KNOWN == 0).then_some(PutFlags(bits))
    }
}

impl From<PutIfExists> for PutFlags {
    fn from(if_exists: PutIfExists) -> PutFlags {
        match if_exists {
            PutIfExists::Replace => PutFlags::NONE,
            PutIfExists::Skip => PutFlags::SKIP_EXISTING,
        }
    }
}

/// How the server answered one upload request, in the region's header
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
    /// Not written: the file there has the source's size and is not older,
    /// and the client asked so ([`Update::IfNewer`](crate::Update::IfNewer)).
    UpToDate,
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
            UploadAnswer::UpToDate => 6,
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
            (6, 0) => UploadAnswer::UpToDate,
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
    /// The client cancelled the request.
    Cancelled = 12,
    /// Anything else; the text says what.
    Other = 255,
}

impl ReasonCode {
    pub(super) fn from_u8(v: u8) -> Result<ReasonCode, DecodeError> {
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
    /// The walk stopped here: the listing had named as many entries left
    /// out as one listing carries (`MAX_LIST_SKIPPED`); the detail is
    /// that limit.
    TooManySkipped = 7,
    /// A name in the prefix asked for is longer than the server's file
    /// system takes (`ENAMETOOLONG`): no file there can have it. The detail
    /// is that limit (`NAME_MAX`, 255 bytes on Linux's file systems).
    NameTooLong = 8,
}

impl SkipCode {
    pub(super) fn from_u8(v: u8) -> Result<SkipCode, DecodeError> {
        Ok(match v {
            1 => SkipCode::Unreadable,
            2 => SkipCode::TooDeep,
            3 => SkipCode::OverLimit,
            4 => SkipCode::TooLong,
            5 => SkipCode::OutsideRoot,
            6 => SkipCode::InvalidPath,
            7 => SkipCode::TooManySkipped,
            8 => SkipCode::NameTooLong,
            _ => return Err(DecodeError::BadField("skip code")),
        })
    }
}
