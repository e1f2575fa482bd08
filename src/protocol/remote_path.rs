//! A path on the server as a caller names it ([`AsRemotePath`]): the one
//! conversion of every kind of name into the bytes a request carries.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// A path of a file on the server, as the requests carry it: bytes, as a
/// Unix file name is (the wire takes any bytes but NUL). Every parameter of
/// the library that names a remote file takes one, so that a name typed in
/// and a name a listing gave are passed alike:
///
/// - text: `&str`, `String`, `&String`;
/// - paths: `&Path`, `PathBuf`, `&OsStr`, `OsString`, such as a listed
///   [`Entry::path`](crate::Entry::path), which need not be UTF-8;
/// - bytes: `&[u8]`, `Vec<u8>`, `b"…"`, such as
///   [`Entry::path_bytes`](crate::Entry::path_bytes) or an
///   [`UploadItem`](crate::upload::UploadItem)'s remote path;
/// - a reference to, or a `Box`, `Rc`, `Arc` or `Cow` of, any of these.
///
/// A type of one's own that holds a name implements it by handing out
/// the name's bytes.
///
/// # Examples
///
/// ```
/// use std::ffi::OsStr;
/// use std::os::unix::ffi::OsStrExt;
/// use std::path::Path;
/// use shmxfer::AsRemotePath;
///
/// assert_eq!("sub/a.txt".as_remote_path(), b"sub/a.txt");
/// assert_eq!(String::from("a.txt").as_remote_path(), b"a.txt");
/// // A name that is not UTF-8 keeps its bytes.
/// let listed = Path::new(OsStr::from_bytes(b"bad_\xff.txt")).to_path_buf();
/// assert_eq!(listed.as_remote_path(), b"bad_\xff.txt");
/// assert_eq!(b"bad_\xff.txt".as_remote_path(), listed.as_remote_path());
/// ```
pub trait AsRemotePath {
    /// The path's bytes, as a request carries them.
    fn as_remote_path(&self) -> &[u8];
}

/// Text and paths: their bytes, through [`OsStr`] (on Unix, a name's bytes
/// as they are).
macro_rules! through_os_str {
    ($($t:ty),+) => {$(
        impl AsRemotePath for $t {
            fn as_remote_path(&self) -> &[u8] {
                AsRef::<OsStr>::as_ref(self).as_bytes()
            }
        }
    )+};
}

through_os_str!(str, String, OsStr, OsString, Path, PathBuf);

impl AsRemotePath for [u8] {
    fn as_remote_path(&self) -> &[u8] {
        self
    }
}

impl AsRemotePath for Vec<u8> {
    fn as_remote_path(&self) -> &[u8] {
        self
    }
}

impl<const N: usize> AsRemotePath for [u8; N] {
    fn as_remote_path(&self) -> &[u8] {
        self
    }
}

/// What a reference or a smart pointer points to.
macro_rules! through_pointer {
    ($($t:ty),+) => {$(
        impl<T: AsRemotePath + ?Sized> AsRemotePath for $t {
            fn as_remote_path(&self) -> &[u8] {
                (**self).as_remote_path()
            }
        }
    )+};
}

through_pointer!(&T, &mut T, Box<T>, Rc<T>, Arc<T>);

impl<T: AsRemotePath + ToOwned + ?Sized> AsRemotePath for Cow<'_, T> {
    fn as_remote_path(&self) -> &[u8] {
        (**self).as_remote_path()
    }
}
