//! What a name selects from the server's tree: a file, a tree below a
//! named directory (`-r`), the files a pattern matches or, with `-r`, the
//! trees at what it matches, each read through the one listing reader with
//! every gap of that listing where a selected file could lie; the jobs of
//! what it selected ([`selected_jobs`]), and the one check of a name given
//! with a trailing `/` ([`Client::not_a_directory`]). A name leading
//! outside the served directory is never listed ([`leads_outside`]).

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use xxhash_rust::xxh3::Xxh3;

use crate::client::delivery::{read_start, too_long, Job};
use crate::client::fetch::Client;
use crate::client::listing::{Entry, Listing, Skipped};
use crate::client::pattern::{names_directory, Pattern};
use crate::error::Result;
use crate::fs::output::{OutputNames, OutputPath};
use crate::os::sys::IO_CHUNK;
use crate::protocol::{normalize_path, ReasonCode};
use crate::text::quote_bytes;
use crate::transfer::body::{self, read_body, Announced, FromStart, Incoming, Taking};
use crate::transfer::outcome::{FailReason, Outcome};

/// Whether `path` (normalized) leads outside the served directory: it is
/// absolute or has a `..` component. The server refuses any such path.
pub(super) fn leads_outside(path: &[u8]) -> bool {
    path.starts_with(b"/") || path.split(|&b| b == b'/').any(|part| part == b"..")
}

/// What one name selects from the server's tree, through the listing of
/// one directory.
#[derive(Debug, Clone, Copy)]
pub(super) enum Select<'a> {
    /// The directory (normalized) and everything below it (`-r`).
    Tree(&'a [u8]),
    /// The directory named with a trailing `/` ([`names_directory`];
    /// normalized) and everything below it: a file of that name is not a
    /// directory ([`Selected::not_a_directory`]), as a shell reads
    /// `small.txt/`.
    Dir(&'a [u8]),
    /// The files a pattern matches.
    Files(&'a Pattern),
    /// With `-r`, the trees at what a pattern matches: a file, or a
    /// directory with everything below it.
    Trees(&'a Pattern),
    /// The one file of exactly a pattern's name.
    Exact(&'a [u8]),
}

impl Select<'_> {
    /// Where the tree that takes the listed `path` starts, as the length of
    /// the leading part of `path` that names it (`path.len()` for a file
    /// named on its own; 0 for the whole tree, `.`); `None` when `path` is
    /// not selected.
    fn root_of(self, path: &[u8]) -> Option<usize> {
        match self {
            Select::Tree(b".") | Select::Dir(b".") => Some(0),
            Select::Tree(dir) | Select::Dir(dir) => Some(dir.len()),
            Select::Files(p) => p.matches_file(path).then_some(path.len()),
            Select::Trees(p) => p.root_of(path),
            Select::Exact(name) => (path == name).then_some(path.len()),
        }
    }

    /// Whether the entry `skip` the listing left out may be, or hold, a
    /// selected file: the copy lacks it. Where a listing stopped (at a
    /// limit), all that follows is missing, whatever its name.
    fn lacks(self, skip: &Skipped) -> bool {
        let path = skip.path_bytes();
        // The prefix itself, unreadable in a listing of the whole tree, has an empty path.
        if path.is_empty() || skip.reason == FailReason::OverLimit {
            return true;
        }
        match self {
            Select::Tree(_) | Select::Dir(_) => true,
            Select::Files(p) => p.may_hold(path),
            Select::Trees(p) => p.may_hold(path) || p.root_of(path).is_some(),
            Select::Exact(_) => false,
        }
    }
}

/// What one name selected: each file with where its tree starts
/// ([`Select::root_of`]), and every entry left out where a selected file
/// could lie (the listing's own gaps: unreadable, too deep, over a limit).
#[derive(Debug, Default)]
pub(super) struct Selected {
    files: Vec<(Entry, usize)>,
    skipped: Vec<Skipped>,
    /// A name given with a trailing `/` ([`Select::Dir`]) is a file on the
    /// server: nothing is selected.
    not_a_directory: bool,
    /// The directories a pattern given without `-r` matches, where it
    /// matches no file: each is refused as a directory named without `-r`
    /// is, never said to be missing.
    directories: Vec<Vec<u8>>,
}

/// What `how` selects, through the one listing reader
/// ([`Client::read_listing`]) of the directory that holds it all. A
/// pattern a file's name equals exactly stands for that file (with `-r`,
/// for the directory of that name too). A name given with a trailing `/`
/// that is a file on the server selects nothing: the one check of a
/// trailing slash, for every mode.
///
/// # Errors
///
/// What [`Client::read_listing`] returns.
pub(super) fn select(client: &mut Client, how: Select<'_>) -> Result<Selected> {
    let dir = match how {
        Select::Tree(dir) | Select::Dir(dir) | Select::Exact(dir) => dir,
        Select::Files(p) | Select::Trees(p) => p.dir(),
    };
    let listing = client.read_listing(dir)?;
    if matches!(how, Select::Dir(_)) && listing.files.iter().any(|e| e.path_bytes() == dir) {
        return Ok(Selected { not_a_directory: true, ..Selected::default() });
    }
    let how = match how {
        Select::Files(p)
            if !p.dirs_only() && listing.files.iter().any(|e| e.path_bytes() == p.text().as_bytes()) =>
        {
            Select::Exact(p.text().as_bytes())
        }
        Select::Trees(p) => {
            let name = p.text().as_bytes();
            // Of directories only: what lies below that name.
            let named = |e: &Entry| {
                crate::client::under_prefix(e.path_bytes(), name)
                    && !(p.dirs_only() && e.path_bytes() == name)
            };
            if listing.files.iter().any(named) {
                // Only what lies at or below that name.
                let (files, skipped) = (listing.files.into_iter().filter(named).collect(), Vec::new());
                return Ok(select_from(Listing { files, skipped }, Select::Tree(name)));
            }
            how
        }
        how => how,
    };
    let directories = match how {
        Select::Files(p) if !listing.files.iter().any(|e| how.root_of(e.path_bytes()).is_some()) => {
            p.directories(listing.files.iter().map(Entry::path_bytes))
        }
        _ => Vec::new(),
    };
    Ok(Selected { directories, ..select_from(listing, how) })
}

fn select_from(listing: Listing, how: Select<'_>) -> Selected {
    let files = listing.files.into_iter().filter_map(|e| Some((how.root_of(e.path_bytes())?, e)));
    Selected {
        files: files.map(|(root, e)| (e, root)).collect(),
        skipped: listing.skipped.into_iter().filter(|s| how.lacks(s)).collect(),
        not_a_directory: false,
        directories: Vec::new(),
    }
}

/// What becomes of a name given with a trailing `/` that is a file on the
/// server ([`Selected::not_a_directory`]).
fn not_a_directory() -> Outcome {
    Outcome::failed(FailReason::NotADirectory, "not a directory")
}

/// [`Client::list_bytes`]: the server's listing at or below `prefix`, or,
/// when `prefix` is a pattern, what a fetch of it selects.
///
/// # Errors
///
/// What [`Client::read_listing`] returns; [`Error::Failed`](crate::error::Error::Failed) with
/// [`FailReason::NotADirectory`] for a `prefix` given with a trailing `/`
/// that is a file on the server, with [`FailReason::PathTooLong`] for one
/// longer than a request carries (asked of no server).
pub(crate) fn list_named(client: &mut Client, prefix: &[u8]) -> Result<Listing> {
    let pattern = Pattern::parse(prefix);
    // A name no request carries fails as a fetch of it does (a pattern is
    // matched through the listing of its directory, and may be longer).
    if let (None, Some(too_long)) = (&pattern, crate::client::delivery::too_long(prefix)) {
        too_long.into_result(prefix)?;
    }
    let path = normalize_path(prefix);
    let how = match &pattern {
        Some(p) if !leads_outside(p.text().as_bytes()) => Select::Files(p),
        None if names_directory(prefix) && !leads_outside(&path) => Select::Dir(&path),
        // Refused by the server as any such path is.
        _ => return client.read_listing(prefix),
    };
    let Selected { files, skipped, not_a_directory: file, .. } = select(client, how)?;
    if file {
        not_a_directory().into_result(prefix)?;
    }
    Ok(Listing { files: files.into_iter().map(|(e, _)| e).collect(), skipped })
}

/// Where the listed `path` is written, its tree starting at `root` bytes
/// into it ([`Select::root_of`]): at its path from the root's parent
/// (`-r sub/deep` writes `deep/...`; a file named on its own, under its
/// name), or with [`OutputNames::Relative`] (and for the whole tree) at its
/// whole path.
fn local_path(path: &[u8], root: usize, names: OutputNames) -> Vec<u8> {
    if root == 0 || names == OutputNames::Relative {
        return path.to_vec();
    }
    let (dir, rest) = path.split_at(root.min(path.len()));
    let start = dir.iter().rposition(|&b| b == b'/').map_or(0, |slash| slash + 1);
    [&dir[start..], rest].concat()
}

fn as_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// The jobs of what the name `named` (as given) selected: every file at
/// [`local_path`], and every entry left out as an [`Outcome::LeftOut`]
/// result; [`Outcome::NotFound`] when it selected nothing. A listed path
/// with an empty, `.` or `..` component fails its file.
pub(super) fn selected_jobs(selected: Selected, named: &[u8], names: OutputNames) -> Vec<Job> {
    let Selected { files, skipped, not_a_directory: file, directories } = selected;
    if file {
        return vec![known(named, not_a_directory())];
    }
    if files.is_empty() && skipped.is_empty() {
        if directories.is_empty() {
            return vec![known(named, Outcome::NotFound)];
        }
        let refused = |dir: &Vec<u8>| {
            let text = format!("{} is a directory", quote_bytes(dir));
            known(dir, Outcome::Refused { reason: FailReason::IsDirectory, text })
        };
        return directories.iter().map(refused).collect();
    }
    let mut jobs = Vec::with_capacity(files.len() + skipped.len());
    for (Entry { path, size, .. }, root) in files {
        let path = path.into_os_string().into_vec();
        let local = local_path(&path, root, names);
        let out = OutputPath::below(&local);
        let known = out.is_err().then(|| {
            let text = "the server's path has an empty, '.' or '..' component; not written";
            Outcome::failed(FailReason::BadOutputName, text)
        });
        let named = named.to_vec();
        jobs.push(Job { remote: path, named, shown: as_path(&local), out, known, size: Some(size) });
    }
    for Skipped { path, reason, text } in skipped {
        let path = path.into_os_string().into_vec();
        let shown = if path.is_empty() { named.to_vec() } else { path.clone() };
        let known = Some(Outcome::LeftOut { reason, text });
        let (named, out) = (named.to_vec(), Err(String::new()));
        jobs.push(Job { remote: path, named, shown: as_path(&shown), out, known, size: None });
    }
    jobs
}

/// A job that gets `outcome` without a request, shown as it was named.
pub(super) fn known(f: &[u8], outcome: Outcome) -> Job {
    let (remote, named, shown) = (f.to_vec(), f.to_vec(), as_path(f));
    Job { remote, named, shown, out: Err(String::new()), known: Some(outcome), size: None }
}

impl Client {
    /// For a name given with a trailing `/` ([`names_directory`]; not the
    /// root, not leading outside the served directory, which the server
    /// refuses as it is): what becomes of it, one outcome that is never a
    /// file delivered. It is asked for with its slash, which the server's
    /// opener resolves as the kernel does, in one step: a directory is
    /// refused as one (`dir0/` as `dir0` is), a file is not found (and
    /// then said to be no directory, from its listing, which stops at the
    /// file), nothing else is opened. A server that took no notice of the
    /// slash and sent the file is stopped, and the file is no directory
    /// either. No tree below the name is ever walked for this, and what
    /// the name is between two requests cannot make a file come. `None`,
    /// without a request, for any other name.
    ///
    /// # Errors
    ///
    /// What [`Client::request`] and [`Client::read_listing`] return.
    pub(crate) fn not_a_directory(&mut self, name: &[u8]) -> Result<Option<Outcome>> {
        let path = normalize_path(name);
        if !names_directory(name) || path == b"." || leads_outside(&path) {
            return Ok(None);
        }
        let mut asked = path.clone();
        asked.push(b'/');
        if let Some(too_long) = too_long(&asked) {
            return Ok(Some(too_long));
        }
        let seq = self.request(&asked)?;
        let mut chunk = vec![0; IO_CHUNK + self.max_payload()];
        Ok(Some(match read_start(self, seq, &mut chunk)? {
            Ok(start) => {
                // Not a byte of it is taken: the server is told to stop and
                // what is in flight is read and dropped.
                let size = Announced::of(start.size, start.flags);
                let mut incoming = Incoming::new(seq, size, "server", 0, Xxh3::new());
                let stop = &mut |_: &[u8]| Taking::No(ReasonCode::Cancelled);
                read_body(
                    self,
                    &mut incoming,
                    &mut chunk,
                    FromStart::Take,
                    stop,
                    &mut |_| {},
                    body::Report::EachChunk,
                )?;
                not_a_directory()
            }
            Err(Outcome::NotFound) if select(self, Select::Dir(&path))?.not_a_directory => not_a_directory(),
            Err(outcome) => outcome,
        }))
    }
}
