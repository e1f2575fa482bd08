//! One file's way through a ring, the same in either direction: the one
//! sender (an opened source → frames, [`send_file`]), the one body reader
//! (frames → counted, bounded, hashed bytes, [`body`]), what became of the
//! file ([`outcome`]; why one did not arrive is [`crate::reason`], a leaf),
//! and the one table from a failure to the wire's codes and from them to a
//! reason ([`codes`]). Each role only says where its frames come from or
//! go: the server's fetch ([`crate::server::serve_file`]) and upload
//! ([`crate::server::upload`]), the client's fetch ([`crate::client`]) and
//! upload ([`crate::upload`]).

pub(crate) mod body;
pub(crate) mod codes;
pub(crate) mod outcome;
pub(crate) mod send_file;

/// What a transfer tells about its progress as it goes, for whoever keeps
/// count: the server's live record of a session implements it (which
/// `--status` reads).
pub(crate) trait Meter {
    /// A file of `size` bytes starts.
    fn begin(&self, path: &str, size: u64);
    /// `n` more bytes were handed over.
    fn advance(&self, n: u64);
    /// The current file is done; returns the bytes of it that moved.
    fn end(&self) -> u64;
}
