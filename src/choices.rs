//! The choices a fetch makes about its output, as the caller (or the
//! program's flags) sets them in [`FetchOptions`](crate::FetchOptions): one
//! enum per choice, no bools.

/// What name a fetched file gets below the output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputNames {
    /// The last component of the requested path (`d1/x` → `x`).
    #[default]
    Basename,
    /// The whole requested path, directories created as needed
    /// (`d1/x` → `d1/x`).
    Relative,
}

/// Whether a fetched file replaces a file of its name in the output
/// directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Clobber {
    /// Replace it atomically, keeping its permission bits (as `cp` does).
    #[default]
    Replace,
    /// Keep it: the fetched file fails with
    /// [`FailReason::OutputExists`](crate::FailReason::OutputExists).
    Keep,
    /// Keep it and skip the file, as `cp -n` does: the outcome is
    /// [`Outcome::Skipped`](crate::Outcome::Skipped) with
    /// [`SkipReason::Exists`](crate::SkipReason::Exists), a success.
    Skip,
}

/// Whether a cut-off transfer leaves its bytes for the next run to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Partial {
    /// Nothing partial is ever kept.
    #[default]
    Discard,
    /// Keep what arrived as a hidden partial file with a record of its
    /// source, and resume from it: `--continue`.
    Keep,
}

/// Which modification time a delivered file gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Times {
    /// The time it was written.
    #[default]
    Now,
    /// The source's, as `cp -p` does: `--preserve`.
    Preserve,
}

/// Whether a file is fetched when a copy of it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Update {
    /// Always.
    #[default]
    Always,
    /// Only when the copy is missing, differs in size or is older than the
    /// source, as `cp -u` does: `--update`. The server decides from the
    /// copy's size and mtime before it sends a byte.
    IfNewer,
}
