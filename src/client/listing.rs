//! What a listing carries: the files below a path ([`Entry`]) and each
//! entry the server left out with its reason ([`Skipped`]), bounded per
//! answer; and [`Client::list`], which reads one.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::client::fetch::Client;
use crate::error::{Error, Result};
use crate::protocol::Frame;
use crate::protocol::{normalize_path, Reply, SkipCode};
use crate::transfer::outcome::FailReason;

/// One file the server serves ([`Client::list`]).
///
/// Its path is bytes, as a Unix file name is: [`Entry::path_bytes`] gives
/// them, [`Entry::path`] a `Path` of them, and
/// `shm_client` shows them quoted as `ls` quotes. With the `serde`
/// feature an entry serializes as `{"path": "...", "size": N}`, where `path`
/// is the UTF-8 text (bytes that are not UTF-8 replaced by U+FFFD), followed
/// by `"path_bytes": [..]`, the bytes as numbers, only when the name is not
/// UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// Its path below the server's root.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// When it was last modified.
    pub mtime: SystemTime,
}

impl Entry {
    /// Its path below the server's root, as the bytes of its name.
    pub fn path_bytes(&self) -> &[u8] {
        self.path.as_os_str().as_bytes()
    }
}

/// An entry a listing left out, and why ([`Listing::skipped`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Skipped {
    /// Its path below the server's root (the root itself: empty).
    pub path: PathBuf,
    /// Why: [`FailReason::Unreadable`], [`FailReason::TooDeep`],
    /// [`FailReason::OverLimit`], [`FailReason::PathTooLong`],
    /// [`FailReason::OutsideRoot`] or [`FailReason::InvalidPath`].
    pub reason: FailReason,
    /// The reason in words.
    pub text: String,
}

impl Skipped {
    /// Its path below the server's root, as the bytes of its name.
    pub fn path_bytes(&self) -> &[u8] {
        self.path.as_os_str().as_bytes()
    }
}

/// What [`Client::list`] got: every file, and every entry the server left
/// out with its reason. A listing with nothing skipped is complete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Listing {
    /// The files, sorted by path.
    pub files: Vec<Entry>,
    /// The entries left out, sorted by path.
    pub skipped: Vec<Skipped>,
}

impl Listing {
    /// Whether nothing was left out.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty()
    }
}

#[cfg(feature = "serde")]
fn serialize_path<S: serde::ser::SerializeStruct>(
    s: &mut S,
    path: &std::path::Path,
) -> std::result::Result<(), S::Error> {
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            s.serialize_field("path", text)?;
            s.skip_field("path_bytes")
        }
        Err(_) => {
            s.serialize_field("path", &String::from_utf8_lossy(bytes))?;
            s.serialize_field("path_bytes", bytes)
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Entry", 3)?;
        serialize_path(&mut s, &self.path)?;
        s.serialize_field("size", &self.size)?;
        s.end()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Skipped {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Skipped", 4)?;
        serialize_path(&mut s, &self.path)?;
        s.serialize_field("reason", &self.reason)?;
        s.serialize_field("text", &self.text)?;
        s.end()
    }
}

/// Whether the listed `path` is `prefix` or lies below the directory
/// `prefix` (`.`: anything).
pub(crate) fn under_prefix(path: &[u8], prefix: &[u8]) -> bool {
    prefix == b"." || path == prefix || (path.starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
}

/// A skip as the server sent it, in the client's terms: its reason
/// ([`FailReason::from`] the code) and its words.
fn skipped(code: SkipCode, detail: u32, path: Vec<u8>) -> Skipped {
    let text = match code {
        SkipCode::Unreadable => {
            let errno = i32::try_from(detail).unwrap_or(libc::EIO);
            format!("could not be read: {}", std::io::Error::from_raw_os_error(errno))
        }
        SkipCode::TooDeep => format!("a directory more than {detail} levels deep; not descended"),
        SkipCode::OverLimit => format!("the listing stops after {detail} files; this and the rest left out"),
        SkipCode::TooLong => format!("path longer than {detail} bytes (shown cut)"),
        SkipCode::NameTooLong => {
            format!("a name in it is longer than the {detail} bytes the server's file system allows")
        }
        SkipCode::OutsideRoot => "leads outside the served directory".to_owned(),
        SkipCode::InvalidPath => "invalid path".to_owned(),
        SkipCode::TooManySkipped => {
            format!("the listing names at most {detail} entries left out; this and the rest left out")
        }
    };
    Skipped { path: PathBuf::from(OsString::from_vec(path)), reason: code.into(), text }
}

impl Client {
    /// The server's listing at or below `prefix` as it sent it: the one
    /// reader of listings, for every mode (`--list`, `-r`, patterns).
    ///
    /// # Errors
    ///
    /// As [`Client::list`].
    pub(crate) fn read_listing(&mut self, prefix: &[u8]) -> Result<Listing> {
        let prefix = normalize_path(prefix);
        let seq = self.request_list(&prefix)?;
        let mut buf = vec![0; self.max_payload()];
        let mut out = Listing::default();
        loop {
            match self.next_frame(seq, &mut buf)? {
                Frame::Control(Reply::ListEntry { size, mode, mtime_secs, mtime_nsec, path }) => {
                    if !under_prefix(&path, &prefix) {
                        let path = crate::text::quote_bytes(&path).into_owned();
                        return Err(Error::Protocol(format!("listed {path}, outside the prefix asked for")));
                    }
                    let since = Duration::new(mtime_secs.unsigned_abs(), mtime_nsec);
                    let mtime = if mtime_secs >= 0 {
                        SystemTime::UNIX_EPOCH.checked_add(since)
                    } else {
                        SystemTime::UNIX_EPOCH.checked_sub(since)
                    };
                    let path = PathBuf::from(OsString::from_vec(path));
                    out.files.push(Entry {
                        path,
                        size,
                        mode,
                        mtime: mtime.unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
                Frame::Control(Reply::ListSkipped { code, detail, path }) => {
                    out.skipped.push(skipped(code, detail, path));
                }
                Frame::Control(Reply::ListEnd { files, skipped })
                    if files == out.files.len() as u64 && skipped == out.skipped.len() as u64 =>
                {
                    return Ok(out)
                }
                Frame::Control(Reply::ListEnd { files, skipped }) => {
                    let (got, left) = (out.files.len(), out.skipped.len());
                    return Err(Error::Protocol(format!(
                        "listing ended at {files} entries and {skipped} skipped, received {got} and {left}"
                    )));
                }
                Frame::Control(Reply::Error { reason, .. }) => {
                    return Err(Error::Protocol(format!("server: {reason}")))
                }
                other => return Err(Error::Protocol(format!("{other:?} in a listing"))),
            }
        }
    }
}
