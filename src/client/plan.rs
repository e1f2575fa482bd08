//! Runs of files: the planner's flow of a fetch (each name as the jobs it
//! stands for, the one check that no two files go to one output, the run
//! and what a lost session cut off), with what a name selects from the
//! server's tree in [`mod@select`], which local files an upload sends
//! ([`upload`]), what became of each, and the summary ([`report`]).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

use crate::client::delivery::{fetch_jobs, FetchOptions, Job, NoProgress, Progress};
use crate::client::fetch::Client;
use crate::client::listing::Listing;
use crate::client::pattern::{names_directory, Pattern};
use crate::error::{Error, Result};
use crate::fs::output::{OutputNames, OutputPath};
use crate::protocol::{normalize_path, AsRemotePath};
use crate::text::quote_bytes;
use crate::transfer::outcome::{FailReason, FileResult, Outcome};

mod report;
mod select;
pub(crate) mod upload;

pub use report::{Lost, Repeated, Report, Summary};
use select::{known, leads_outside, select, selected_jobs, Select};

impl FetchOptions {
    /// Checks, before any request, that no two of `paths` would be written
    /// to the same output name. The same path named twice (`a a`, `a ./a`)
    /// is no conflict: it is fetched once.
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] naming the first two such paths.
    pub fn check(&self, paths: &[impl AsRemotePath]) -> Result<()> {
        // A pattern's outputs are known once it is matched.
        let files = paths.iter().map(|p| p.as_remote_path()).filter(|p| Pattern::parse(p).is_none());
        check_outputs(files.map(|p| plain_job(p, self)).collect(), self.names).map(|_| ())
    }
}

/// The job of a file named on its own: written under its output name,
/// asked of the server by its path, both from the path normalized
/// ([`normalize_path`]): `dir0/` is `dir0`.
fn plain_job(path: &[u8], options: &FetchOptions) -> Job {
    let remote = normalize_path(path);
    Job {
        shown: options.shown_name(&remote),
        out: options.output_path(&remote),
        remote,
        named: path.to_vec(),
        known: None,
        size: None,
    }
}

/// The job of the one file `path` written to a file named `name`
/// ([`Client::fetch_as_with`], [`Client::fetch_file`]), shown as `shown`;
/// `known`: what [`Client::not_a_directory`] found of it.
pub(crate) fn dest_job(path: &[u8], name: &OsStr, shown: PathBuf, known: Option<Outcome>) -> Job {
    Job {
        // A name refused as it is is shown as it was given.
        remote: if known.is_some() { path.to_vec() } else { normalize_path(path) },
        named: path.to_vec(),
        shown,
        out: OutputPath::below(name.as_bytes()),
        known,
        size: None,
    }
}

/// The jobs of a plain fetch: each file on its own ([`plain_job`]).
pub(crate) fn plain_jobs(paths: &[impl AsRemotePath], options: &FetchOptions) -> Vec<Job> {
    paths.iter().map(|p| plain_job(p.as_remote_path(), options)).collect()
}

/// The one check of every mode before any request: no two different paths
/// are written to one output path. A path asked for again with the same
/// output (`a a`, `a ./a`, a pattern and one of its matches, or a file of
/// two overlapping trees kept whole) is dropped, and the two names that
/// asked for it returned with its output name, to be fetched once.
///
/// # Errors
///
/// [`Error::SameOutput`] naming the first two paths that collide.
pub(crate) fn check_outputs(jobs: Vec<Job>, names: OutputNames) -> Result<(Vec<Job>, Vec<Repeated>)> {
    // Each output path taken: by which path, asked for by which name.
    let mut seen: HashMap<OutputPath, (Vec<u8>, Vec<u8>)> = HashMap::new();
    let mut kept = Vec::with_capacity(jobs.len());
    let mut repeated = Vec::new();
    for job in jobs {
        if let Ok(out) = &job.out {
            match seen.get(out) {
                Some((first, named)) if *first == job.remote => {
                    repeated.push(Repeated::new(named, &job.named, Some(job.shown)));
                    continue;
                }
                Some((first, _)) => {
                    return Err(Error::SameOutput {
                        first: quote_bytes(first).into_owned(),
                        second: quote_bytes(&job.remote).into_owned(),
                        output: out.shown(),
                        names,
                    })
                }
                None => {
                    seen.insert(out.clone(), (job.remote.clone(), job.named.clone()));
                }
            }
        }
        kept.push(job);
    }
    Ok((kept, repeated))
}

/// How a fetch reads the names it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// Files, or patterns matching files.
    Files,
    /// Directories with everything below them, or patterns matching them
    /// (`-r`).
    Trees,
}

/// The plan of a fetch: each name as the jobs it stands for, in the order
/// named, and the names given again (a tree or pattern named twice is
/// listed once; a file named twice is [`check_outputs`]'s to find). A
/// pattern or a tree is read through its listing ([`select()`]); a name that
/// leads outside the served directory is refused, as the server refuses it.
///
/// # Errors
///
/// What a listing returns (the session is then lost for every name).
fn plan(
    client: &mut Client,
    names: &[impl AsRemotePath],
    options: &FetchOptions,
    read: Names,
) -> Result<(Vec<Job>, Vec<Repeated>)> {
    let mut jobs = Vec::new();
    // Each path listed, and the name given that listed it.
    let mut listed: Vec<(Vec<u8>, &[u8])> = Vec::new();
    let mut repeated = Vec::new();
    for name in names {
        let name = name.as_remote_path();
        let pattern = Pattern::parse(name);
        let path = pattern.as_ref().map_or_else(|| normalize_path(name), |p| p.text().into());
        if read == Names::Files && pattern.is_none() {
            jobs.push(match client.not_a_directory(name)? {
                Some(outcome) => known(name, outcome),
                None => plain_job(name, options),
            });
            continue;
        }
        if leads_outside(&path) {
            let text = format!(
                "{} leads outside the served directory; name a path below the server's root",
                quote_bytes(name)
            );
            jobs.push(known(name, Outcome::Refused { reason: FailReason::OutsideRoot, text }));
            continue;
        }
        if let Some((_, first)) = listed.iter().find(|(done, _)| *done == path) {
            // A tree or a pattern: the same files, each under its own name.
            repeated.push(Repeated::new(first, name, None));
            continue;
        }
        let how = match (&pattern, read) {
            (Some(p), Names::Files) => Select::Files(p),
            (Some(p), Names::Trees) => Select::Trees(p),
            (None, _) if names_directory(name) => Select::Dir(&path),
            (None, _) => Select::Tree(&path),
        };
        let selected = select(client, how)?;
        jobs.extend(selected_jobs(selected, name, options.names));
        listed.push((path, name));
    }
    Ok((jobs, repeated))
}

/// A [`Progress`] that remembers how far the file in progress got.
struct Tracking<'a> {
    inner: &'a mut dyn Progress,
    current: Option<(u64, u64)>,
    /// Where the file in progress resumed, if it did.
    resumed: Option<u64>,
    kept: Option<u64>,
}

impl Progress for Tracking<'_> {
    fn planned(&mut self, files: usize) {
        self.inner.planned(files);
    }

    fn planned_sizes(&mut self, sizes: &[Option<u64>]) {
        self.inner.planned_sizes(sizes);
    }

    fn start(&mut self, name: &str, size: u64) {
        (self.current, self.resumed) = (Some((0, size)), None);
        self.inner.start(name, size);
    }

    fn resumed(&mut self, bytes: u64) {
        self.resumed = Some(bytes);
        self.inner.resumed(bytes);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some((got, _)) = &mut self.current {
            *got += bytes;
        }
        self.inner.advance(bytes);
    }

    fn finish(&mut self) {
        (self.current, self.resumed) = (None, None);
        self.inner.finish();
    }

    fn result(&mut self, file: &FileResult) {
        self.inner.result(file);
    }

    fn starting_over(&mut self, name: &str) {
        self.inner.starting_over(name);
    }

    fn partial_longer(&mut self, name: &str, kept: u64, size: u64) {
        self.inner.partial_longer(name, kept, size);
    }

    fn kept_partial(&mut self, bytes: u64) {
        self.kept = Some(bytes);
        // What is kept is how far the file got: the bytes that arrived
        // after the last write were not kept.
        if let Some((got, _)) = &mut self.current {
            *got = bytes;
        }
        self.inner.kept_partial(bytes);
    }

    fn partial_removed(&mut self, name: &str) {
        self.inner.partial_removed(name);
    }

    fn partial_busy(&mut self, name: &str) {
        self.inner.partial_busy(name);
    }
}

/// Fetches `jobs`, or gives every one the outcome of `early`, an error
/// that came before any of them.
fn run(
    client: &mut Client,
    jobs: &[Job],
    early: Option<Error>,
    options: &FetchOptions,
    progress: &mut dyn Progress,
    started: Instant,
) -> Report {
    let mut track = Tracking { inner: progress, current: None, resumed: None, kept: None };
    track.planned(jobs.len());
    track.planned_sizes(&jobs.iter().map(|j| j.size).collect::<Vec<_>>());
    let mut files = Vec::with_capacity(jobs.len());
    let fetched = match early {
        Some(e) => Err(e),
        None => fetch_jobs(client, jobs, options, &mut track, &mut files),
    };
    // The file in progress when the session was lost, how far it got and
    // where it resumed.
    let (got, resumed_at) = (track.current.take(), track.resumed.take());
    track.finish();
    let done = files.len();
    let lost = match fetched {
        Ok(()) => None,
        Err(error @ (Error::Busy { .. } | Error::Stopping { .. })) => {
            // Every file not yet reported gets its result, as any failed file does.
            for job in &jobs[done..] {
                let outcome = Outcome::failed(FailReason::ServerBusy, "server busy");
                files.push(FileResult {
                    path: job.remote_path(),
                    name: job.shown.clone(),
                    outcome,
                    resumed_at: None,
                });
                track.result(files.last().expect("just pushed"));
            }
            let (cut_off, not_fetched, requests) = (None, Vec::new(), Vec::new());
            Some(Lost { error, cut_off, not_fetched, kept: None, resumed_at: None, requests })
        }
        Err(error) => {
            let requests = jobs[done..].iter().map(Job::remote_path).collect();
            let mut left = jobs[done..].iter();
            let cut_off = left.next().map(|job| (job.shown.clone(), got));
            let not_fetched = left.map(|j| j.shown.clone()).collect();
            let resumed_at = resumed_at.filter(|_| got.is_some());
            Some(Lost { error, cut_off, not_fetched, kept: track.kept, resumed_at, requests })
        }
    };
    Report { files, lost, elapsed: started.elapsed(), repeated: Vec::new() }
}

impl Client {
    /// Fetches `paths` in order into `options.out_dir`, with a few requests
    /// in flight. Each file appears under its name only once its size and
    /// checksum are verified; a lost session leaves no partial file.
    ///
    /// Each path is normalized (empty and `.` components dropped:
    /// `./a` is `a`, `a//b` is `a/b`); a trailing `/` names a directory, as
    /// a shell reads it: `dir0/` is `dir0`, and a file named so
    /// (`small.txt/`) fails with [`FailReason::NotADirectory`], as
    /// [`Client::fetch_tree`], [`Client::list`] and the one-file fetches
    /// fail it. A path holding `*`, `?`, `[…]` or `{a,b}` is a
    /// pattern, matched as a shell matches, one component at a time (`*`
    /// does not cross `/`, `**` does, `{a,b}` chooses), against the
    /// listing of the directory before its first pattern component: the
    /// files it matches, each under its path's last component (its whole
    /// path with [`OutputNames::Relative`]), asked for by the bytes the
    /// listing gave. Every entry that listing left out where a match could
    /// lie (a directory the server cannot read, the files past its limit)
    /// gets an [`Outcome::LeftOut`] result; a pattern that matches nothing
    /// is [`Outcome::NotFound`]; a file of exactly the pattern's name is
    /// fetched as it is; a pattern leading outside the served directory
    /// is refused.
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] before any request when two paths would be
    /// written to one name (for patterns, once they are matched). Everything else is in the [`Report`]: a result
    /// per file, and [`Report::lost`] for a session-level failure.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::{Client, ClientConfig, FetchOptions, Outcome, Server};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// # let root = tempfile::tempdir().unwrap();
    /// # std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
    /// # let queue = format!("/shmxfer_doctest_fetch_files_{}", std::process::id());
    /// # let server = Server::builder()
    /// #     .queue(&queue)
    /// #     .root(root.path())
    /// #     .max_sessions(1)
    /// #     .stall_timeout(None)
    /// #     .bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    /// let out = tempfile::tempdir().unwrap();
    /// let mut client = Client::connect(&ClientConfig::new(&queue))?;
    /// let report = client.fetch_files(&["hello.txt", "nope"], &FetchOptions::new(out.path()))?;
    /// client.close()?;
    ///
    /// let files = report.into_result()?;
    /// assert_eq!(files[0].outcome, Outcome::Delivered { bytes: 6 });
    /// assert_eq!(files[1].outcome, Outcome::NotFound);
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_files(&mut self, paths: &[impl AsRemotePath], options: &FetchOptions) -> Result<Report> {
        self.fetch_files_with(paths, options, &mut NoProgress)
    }

    /// [`Client::fetch_files`], telling `progress` how each file arrives and
    /// each result as soon as it is known.
    ///
    /// # Errors
    ///
    /// As [`Client::fetch_files`].
    pub fn fetch_files_with(
        &mut self,
        paths: &[impl AsRemotePath],
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        self.fetch_planned(paths, options, progress, Names::Files)
    }

    /// Fetches the one file `path` to the file `dest`, as
    /// [`Client::fetch_files_with`] fetches into a directory and with its
    /// `options` (clobbering, resuming, times, updating; `options.out_dir`
    /// and `options.names` are not used): written beside `dest` and given
    /// its name only once verified. A `path` is never a pattern here; one
    /// given with a trailing `/` that is a file fails with
    /// [`FailReason::NotADirectory`].
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] with [`FailReason::BadOutputName`] when `dest` has
    /// no file name, or names a directory (it ends in `/`, `.` or `..`);
    /// everything else is in the [`Report`].
    pub fn fetch_as_with(
        &mut self,
        path: impl AsRemotePath,
        dest: impl AsRef<std::path::Path>,
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let started = Instant::now();
        let dest = dest.as_ref();
        let (name, dir) = crate::fs::output::dest_parts(dest)
            .map_err(|text| Error::Failed { reason: FailReason::BadOutputName, text })?;
        let mut options = options.clone();
        options.out_dir = dir;
        let path = path.as_remote_path();
        let (known, early) = match self.not_a_directory(path) {
            Ok(known) => (known, None),
            Err(e) => (None, Some(e)),
        };
        // Shown by the name the user gave it.
        let job = dest_job(path, name, dest.to_path_buf(), known);
        Ok(run(self, &[job], early, &options, progress, started))
    }

    /// Fetches the directories `dirs` of the server's tree with everything
    /// below them (`.`: the whole tree), keeping their paths below
    /// `options.out_dir`: `sub` writes `sub/...`, and with
    /// [`OutputNames::Relative`] `sub/deep` writes `sub/deep/...` instead of
    /// `deep/...`. Directories are created one component at a time, never
    /// through a symlink. A name that matches nothing is
    /// [`Outcome::NotFound`]; one leading outside the served directory is
    /// refused. Each name is normalized (`./sub`, `sub//deep/` are `sub`,
    /// `sub/deep`) and listed by the server below it; every entry the
    /// listing left out (unreadable, too deep, over a limit) gets an
    /// [`Outcome::LeftOut`] result, so that the report says what the copy
    /// lacks. A name that is a pattern (as for [`Client::fetch_files`])
    /// fetches the tree at each path it matches: a file, or a directory
    /// with everything below it (`-r 'dir*'` writes `dir0/...`).
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] after the listings and before any file is
    /// asked for, when two different files would be written to one path
    /// (`-r d1/x d2/x`, both holding `f`). Everything else is in the
    /// [`Report`], as for [`Client::fetch_files`] (a listing that fails
    /// loses the session for every name).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmxfer::{Client, ClientConfig, FetchOptions, Server};
    ///
    /// # fn main() -> Result<(), shmxfer::Error> {
    /// # let root = tempfile::tempdir().unwrap();
    /// # std::fs::create_dir_all(root.path().join("docs/deep")).unwrap();
    /// # std::fs::write(root.path().join("docs/a.txt"), b"a\n").unwrap();
    /// # std::fs::write(root.path().join("docs/deep/b.txt"), b"b\n").unwrap();
    /// # let queue = format!("/shmxfer_doctest_fetch_tree_{}", std::process::id());
    /// # let server = Server::builder().queue(&queue).root(root.path()).stall_timeout(None).bind()?;
    /// # let serving = std::thread::spawn(move || server.run(Default::default()));
    /// let out = tempfile::tempdir().unwrap();
    /// let mut client = Client::connect(&ClientConfig::new(&queue))?;
    /// let report = client.fetch_tree(&["docs"], &FetchOptions::new(out.path()))?;
    /// client.close()?;
    /// assert!(report.all_delivered());
    /// assert_eq!(std::fs::read(out.path().join("docs/deep/b.txt")).unwrap(), b"b\n");
    /// # serving.join().unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn fetch_tree(&mut self, dirs: &[impl AsRemotePath], options: &FetchOptions) -> Result<Report> {
        self.fetch_tree_with(dirs, options, &mut NoProgress)
    }

    /// [`Client::fetch_tree`], telling `progress` how each file arrives and
    /// each result as soon as it is known.
    ///
    /// # Errors
    ///
    /// As [`Client::fetch_tree`].
    pub fn fetch_tree_with(
        &mut self,
        dirs: &[impl AsRemotePath],
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        self.fetch_planned(dirs, options, progress, Names::Trees)
    }

    /// Plans the fetch of `names` read as `read` says ([`plan`]), checks
    /// its outputs and fetches it.
    fn fetch_planned(
        &mut self,
        names: &[impl AsRemotePath],
        options: &FetchOptions,
        progress: &mut dyn Progress,
        read: Names,
    ) -> Result<Report> {
        let started = Instant::now();
        let (jobs, mut repeated) = match plan(self, names, options, read) {
            Ok(planned) => planned,
            // Turned away or lost in a listing: a result for each name asked for.
            Err(e) => return Ok(run(self, &plain_jobs(names, options), Some(e), options, progress, started)),
        };
        let (jobs, more) = check_outputs(jobs, options.names)?;
        repeated.extend(more);
        let mut report = run(self, &jobs, None, options, progress, started);
        report.repeated = repeated;
        Ok(report)
    }
}

impl Client {
    /// Asks for the server's list of files, sorted by path: all of them, or
    /// with `prefix` the file `prefix` or those below the directory `prefix`
    /// (`"."` is the whole tree; `./sub`, `sub//deep/` mean `sub`,
    /// `sub/deep`; a `prefix` given with a trailing `/` names a directory:
    /// a file named so is an error). The server walks only below the prefix. What it left
    /// out (unreadable, too deep, over its limits) is in
    /// [`Listing::skipped`], entry by entry. A `prefix` that is a pattern
    /// (`*`, `?`, `[…]`, `{a,b}`) lists what a fetch of it would fetch: the
    /// files it matches, and what the listing left out where a match could
    /// lie (see [`Client::fetch_files`]).
    ///
    /// # Errors
    ///
    /// As [`Client::status`]; [`Error::Failed`] with
    /// [`FailReason::NotADirectory`] for a `prefix` given with a trailing
    /// `/` that is a file on the server (`small.txt/`), with
    /// [`FailReason::PathTooLong`] for a prefix (not a pattern) longer than the 1024 bytes
    /// a request carries (asked of no server); [`Error::Protocol`] for an entry outside the
    /// prefix asked for, or a listing of more than 100 000 files or
    /// 10 000 entries left out (more than a server sends: the listing ends
    /// there, whatever a server or relay sends).
    pub fn list(&mut self, prefix: Option<&str>) -> Result<Listing> {
        self.list_bytes(prefix.map(str::as_bytes))
    }

    /// [`Client::list`] for a prefix that is bytes (a name need not be UTF-8).
    ///
    /// # Errors
    ///
    /// As [`Client::list`].
    pub fn list_bytes(&mut self, prefix: Option<&[u8]>) -> Result<Listing> {
        select::list_named(self, prefix.unwrap_or(b"."))
    }
}
