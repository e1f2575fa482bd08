//! Where a received file goes, as a path below the output directory
//! ([`OutputPath`]: plain components, bytes UTF-8 or not), and the one test
//! of a path that names a directory, not a file ([`names_a_directory`],
//! [`dest_parts`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::choices::OutputNames;

/// A path below the output directory: its directories (empty without
/// `-R`) and its file name, each a plain component (no `/`, `.` or `..`)
/// of any bytes but `/` and NUL, as a Unix name is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputPath {
    pub(super) dirs: Vec<OsString>,
    pub(super) name: OsString,
}

fn os_name(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_owned()
}

impl OutputPath {
    /// Where the requested `path` (bytes, UTF-8 or not) is written: under
    /// its final component, or with [`OutputNames::Relative`] under the
    /// whole path, relative to the output directory. The reason why not,
    /// for a path without a file name or, kept whole, with a `..`
    /// component.
    ///
    /// # Errors
    ///
    /// A message for the user.
    pub fn for_request(
        path: impl AsRef<[u8]>,
        names: OutputNames,
    ) -> std::result::Result<OutputPath, String> {
        let path = path.as_ref();
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').filter(|p| !p.is_empty() && *p != b".").collect();
        let Some((&name, dirs)) = parts.split_last() else {
            return Err("no file name in this path".into());
        };
        if name == b".." || path.ends_with(b"/") || path.ends_with(b"/.") {
            return Err("no file name in this path".into());
        }
        if names == OutputNames::Basename {
            return Ok(OutputPath { dirs: Vec::new(), name: os_name(name) });
        }
        if dirs.contains(&&b".."[..]) {
            return Err("a path with '..' cannot be kept below the output directory".into());
        }
        Ok(OutputPath { dirs: dirs.iter().map(|d| os_name(d)).collect(), name: os_name(name) })
    }

    /// The relative path `local` (bytes, UTF-8 or not), kept as it is:
    /// every component must be a plain name (not empty, `.` or `..`).
    ///
    /// # Errors
    ///
    /// A message for the user.
    pub fn below(local: impl AsRef<[u8]>) -> std::result::Result<OutputPath, String> {
        let local = local.as_ref();
        let parts: Vec<&[u8]> = local.split(|&b| b == b'/').collect();
        if parts.iter().any(|p| p.is_empty() || *p == b"." || *p == b".." || p.contains(&0)) {
            let shown = crate::text::quote_bytes(local);
            return Err(format!("{shown} has an empty, '.' or '..' component; not written"));
        }
        let (name, dirs) = parts.split_last().expect("split yields one part at least");
        Ok(OutputPath { dirs: dirs.iter().map(|d| os_name(d)).collect(), name: os_name(name) })
    }

    /// The file name.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The path relative to the output directory, as it is.
    pub fn shown_path(&self) -> PathBuf {
        let mut p: PathBuf = self.dirs.iter().collect();
        p.push(&self.name);
        p
    }

    /// The path as the user reads it, relative to the output directory
    /// (bytes that are not UTF-8 replaced by U+FFFD; [`OutputPath::shown_path`]
    /// keeps them).
    pub fn shown(&self) -> String {
        self.shown_path().to_string_lossy().into_owned()
    }
}

/// Whether `path` names a directory, not a file, whatever is there: it
/// ends in `/`, or its last component is `.` or `..` (as for `cp` and
/// `scp`). The one test of every path a file is to be written to (`-O
/// DEST`, `--put FILE -O NAME`).
pub fn names_a_directory(path: &Path) -> bool {
    let last = path.as_os_str().as_bytes().rsplit(|&b| b == b'/').next().unwrap_or_default();
    matches!(last, b"" | b"." | b"..")
}

/// The file name and the directory (`.` for a bare name) of `dest`, the
/// path one file is written to (`-O DEST`). A path ending in `/`, or whose
/// last component is `.` or `..`, names a directory, not a file, as for
/// `cp`: it has no file name here (`Path::file_name` would take `new` of
/// `new/`, or `d` of `d/.`). The name is bytes, UTF-8 or not, as a Unix
/// name is.
///
/// # Errors
///
/// A message for the user, naming `dest`.
pub fn dest_parts(dest: &Path) -> std::result::Result<(&OsStr, PathBuf), String> {
    if names_a_directory(dest) {
        return Err(format!("{}: not a file name (it names a directory)", dest.display()));
    }
    let name = dest.file_name().ok_or_else(|| format!("{}: no file name", dest.display()))?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((name, dir))
}
