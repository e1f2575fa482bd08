//! Runs of files: which files a fetch asks for (the named files, or the
//! trees below named directories), what became of each, and the summary.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::delivery::{fetch_jobs, FetchOptions, Job, NoProgress, Progress};
use crate::client::{Client, Entry, Listing, Skipped};
use crate::error::{Error, Result};
use crate::fs::output::{OutputNames, OutputPath};
use crate::protocol::normalize_path;
use crate::text::{human_size, quote_bytes};
use crate::transfer::outcome::{FailReason, FileResult, Outcome};

/// How a run of files went: a result per file that got one, in order, and
/// what a lost session left.
#[derive(Debug)]
#[non_exhaustive]
pub struct Report {
    /// A result per file that got one, in the order asked for.
    pub files: Vec<FileResult>,
    /// The session was lost (server gone, stalled, protocol error,
    /// interrupt): why, and the files it cut off.
    pub lost: Option<Lost>,
    /// How long the run took.
    pub elapsed: Duration,
    /// Paths named more than once (`a a`), each fetched once, as `cp` does:
    /// the names, in the order asked for, once per repetition.
    pub repeated: Vec<PathBuf>,
}

/// What a lost session left of a run ([`Report::lost`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Lost {
    /// Why the session was lost.
    pub error: Error,
    /// The file in progress, and how far it got (bytes received and its
    /// size) when it had started; nothing of it is kept.
    pub cut_off: Option<(PathBuf, Option<(u64, u64)>)>,
    /// The files never asked for, by name.
    pub not_fetched: Vec<PathBuf>,
    /// The bytes of the cut-off file kept for resuming
    /// ([`Partial::Keep`](crate::Partial::Keep)); `None`: nothing kept.
    pub kept: Option<u64>,
    /// The paths asked of the server (normalized, as [`FileResult::path`])
    /// of the file cut off, when there is one, then of the files never
    /// asked for: one per name of [`Lost::cut_off`] and
    /// [`Lost::not_fetched`], in that order.
    pub requests: Vec<PathBuf>,
}

/// The counts of a run, for a summary line ([`Report::summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Files asked for.
    pub asked: usize,
    /// Files delivered.
    pub delivered: usize,
    /// Files skipped by choice (`--no-clobber`, `--update`).
    pub skipped: usize,
    /// Files the server does not have.
    pub not_found: usize,
    /// Files the server refused.
    pub refused: usize,
    /// Files that failed (the one a lost session cut off included).
    pub failed: usize,
    /// Entries a recursive fetch's listing left out (never asked for).
    pub left_out: usize,
    /// Files never asked for.
    pub not_fetched: usize,
    /// Bytes delivered.
    pub bytes: u64,
    /// How long the run took.
    pub elapsed: Duration,
}

/// `7 files: 5 delivered, 1 not found, 1 failed; 2.0 MiB in 0.04 s (50.0 MiB/s)`
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![format!("{} delivered", self.delivered)];
        for (n, what) in [
            (self.skipped, "skipped"),
            (self.not_found, "not found"),
            (self.refused, "refused"),
            (self.failed, "failed"),
            (self.left_out, "left out"),
            (self.not_fetched, "not fetched"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { human_size((self.bytes as f64 / secs) as u64) } else { "-".into() };
        write!(
            f,
            "{} files: {}; {} in {secs:.2} s ({rate}/s)",
            self.asked,
            parts.join(", "),
            human_size(self.bytes)
        )
    }
}

impl Report {
    /// Whether every file asked for was delivered (or skipped by choice:
    /// `--no-clobber`, `--update`) and the session held.
    pub fn all_delivered(&self) -> bool {
        self.lost.is_none() && self.files.iter().all(|f| f.outcome.is_success())
    }

    /// The counts of the run.
    pub fn summary(&self) -> Summary {
        let mut s = Summary { elapsed: self.elapsed, ..Summary::default() };
        for f in &self.files {
            match &f.outcome {
                Outcome::Delivered { bytes } => {
                    s.delivered += 1;
                    s.bytes += bytes;
                }
                Outcome::Skipped { .. } => s.skipped += 1,
                Outcome::NotFound => s.not_found += 1,
                Outcome::Refused { .. } => s.refused += 1,
                Outcome::Failed { .. } => s.failed += 1,
                Outcome::LeftOut { .. } => s.left_out += 1,
            }
        }
        if let Some(lost) = &self.lost {
            s.failed += usize::from(lost.cut_off.is_some());
            s.not_fetched = lost.not_fetched.len();
        }
        s.asked = s.delivered + s.skipped + s.not_found + s.refused + s.failed + s.left_out + s.not_fetched;
        s
    }

    /// The per-file results, or the error that lost the session.
    ///
    /// # Errors
    ///
    /// [`Lost::error`] when the session was lost.
    pub fn into_result(self) -> Result<Vec<FileResult>> {
        match self.lost {
            Some(lost) => Err(lost.error),
            None => Ok(self.files),
        }
    }
}

impl FetchOptions {
    /// Checks, before any request, that no two of `paths` would be written
    /// to the same output name. The same path named twice (`a a`, `a ./a`)
    /// is no conflict: it is fetched once.
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] naming the first two such paths.
    pub fn check(&self, paths: &[impl AsRef<str>]) -> Result<()> {
        check_outputs(plain_jobs(paths, self), self.names).map(|_| ())
    }
}

/// The jobs of a plain fetch: each file under its output name, asked of
/// the server by its normalized path ([`normalize_path`]). The output name
/// comes from the path as given: `dir/` names no file.
pub(crate) fn plain_jobs(paths: &[impl AsRef<str>], options: &FetchOptions) -> Vec<Job> {
    paths
        .iter()
        .map(|p| {
            let p = p.as_ref();
            Job {
                remote: normalize_path(p.as_bytes()),
                shown: options.shown_name(p).into(),
                out: options.output_path(p),
                known: None,
            }
        })
        .collect()
}

/// The one check of every mode before any request: no two different paths
/// are written to one output path. A path asked for again with the same
/// output (`a a`, or a file of two overlapping trees kept whole) is dropped,
/// and its name returned, to be fetched once.
///
/// # Errors
///
/// [`Error::SameOutput`] naming the first two paths that collide.
pub(crate) fn check_outputs(jobs: Vec<Job>, names: OutputNames) -> Result<(Vec<Job>, Vec<PathBuf>)> {
    let mut seen: HashMap<OutputPath, Vec<u8>> = HashMap::new();
    let mut kept = Vec::with_capacity(jobs.len());
    let mut repeated = Vec::new();
    for job in jobs {
        if let Ok(out) = &job.out {
            match seen.get(out) {
                Some(first) if *first == job.remote => {
                    repeated.push(job.shown);
                    continue;
                }
                Some(first) => {
                    return Err(Error::SameOutput {
                        first: quote_bytes(first).into_owned(),
                        second: quote_bytes(&job.remote).into_owned(),
                        output: out.shown(),
                        names,
                    })
                }
                None => {
                    seen.insert(out.clone(), job.remote.clone());
                }
            }
        }
        kept.push(job);
    }
    Ok((kept, repeated))
}

/// Whether the requested `name` is a pattern: it holds `*`, `?` or `[`.
pub(crate) fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// The directories of `pattern` before its first component with a
/// metacharacter, where its matches lie: `logs/2024` for
/// `logs/2024/*.txt`; `None` when the first component has one.
fn literal_dir(pattern: &str) -> Option<String> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let first = parts.iter().position(|p| is_pattern(p))?;
    let dir = parts[..first].iter().filter(|p| !p.is_empty() && **p != ".").copied().collect::<Vec<_>>();
    (!dir.is_empty()).then(|| dir.join("/"))
}

/// What the requested `names` stand for, each as the path to ask for or
/// an outcome known already: a name as it is, unless it is a pattern and
/// no file of exactly that name exists: then the listed files it matches,
/// in the listing's order, component by component as a shell matches
/// (`*` does not cross `/`); a pattern that matches nothing is not found.
fn expand_patterns(client: &mut Client, names: &[impl AsRef<str>]) -> Result<Vec<(String, Option<Outcome>)>> {
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref();
        if is_pattern(name) && (name.starts_with('/') || name.split('/').any(|part| part == "..")) {
            // As the server refuses any such path it is asked for.
            let text = format!("{name} leads outside the served directory");
            out.push((name.to_owned(), Some(Outcome::Refused { reason: FailReason::OutsideRoot, text })));
            continue;
        }
        let glob = globset::GlobBuilder::new(name).literal_separator(true).backslash_escape(true).build();
        let (true, Ok(glob)) = (is_pattern(name), glob) else {
            out.push((name.to_owned(), None));
            continue;
        };
        let matcher = glob.compile_matcher();
        let listing = client.list(literal_dir(name).as_deref())?;
        if listing.files.iter().any(|e| e.path.as_os_str() == name) {
            out.push((name.to_owned(), None));
            continue;
        }
        let before = out.len();
        let matched = listing.files.into_iter().filter(|e| matcher.is_match(&e.path));
        out.extend(matched.map(|e| (e.path.to_string_lossy().into_owned(), None)));
        if out.len() == before {
            out.push((name.to_owned(), Some(Outcome::NotFound)));
        }
    }
    Ok(out)
}

/// Where the listed `path` at or below the named directory `dir` is
/// written: at its path relative to `dir`'s parent (`sub/deep` writes
/// `deep/...`; `.` the whole tree), or with [`OutputNames::Relative`] at
/// its whole path; `dir` itself (a file) under its last component.
fn local_path(path: &[u8], dir: &[u8], names: OutputNames) -> Vec<u8> {
    let whole = dir == b".";
    if whole || names == OutputNames::Relative {
        return path.to_vec();
    }
    let last = |p: &[u8]| p.rsplit(|&b| b == b'/').next().unwrap_or(p).to_vec();
    match path.strip_prefix(dir).filter(|rest| rest.starts_with(b"/")) {
        Some(rest) => [last(dir).as_slice(), rest].concat(),
        None => last(path),
    }
}

fn as_path(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// The jobs of a tree fetch of the named directory `dir` (normalized) from
/// its listing: every listed file at [`local_path`], and every entry the
/// listing left out as an [`Outcome::Skipped`] result. A listed path with
/// an empty, `.` or `..` component fails its file.
fn tree_jobs(listing: Listing, dir: &[u8], names: OutputNames) -> Vec<Job> {
    let mut jobs = Vec::new();
    for Entry { path, .. } in listing.files {
        let path = path.into_os_string().into_vec();
        let local = local_path(&path, dir, names);
        let out = OutputPath::below(&local);
        let known = out.is_err().then(|| {
            let text = "the server's path has an empty, '.' or '..' component; not written";
            Outcome::failed(FailReason::BadOutputName, text)
        });
        jobs.push(Job { remote: path, shown: as_path(&local), out, known });
    }
    for Skipped { path, reason, text } in listing.skipped {
        let path = path.into_os_string().into_vec();
        let shown = if path.is_empty() { dir.to_vec() } else { local_path(&path, dir, names) };
        let known = Some(Outcome::LeftOut { reason, text });
        jobs.push(Job { remote: path, shown: as_path(&shown), out: Err(String::new()), known });
    }
    jobs
}

/// A job that gets `outcome` without a request, shown as it was named.
fn named(f: &[u8], outcome: Outcome) -> Job {
    Job { remote: f.to_vec(), shown: as_path(f), out: Err(String::new()), known: Some(outcome) }
}

/// A [`Progress`] that remembers how far the file in progress got.
struct Tracking<'a> {
    inner: &'a mut dyn Progress,
    current: Option<(u64, u64)>,
    kept: Option<u64>,
}

impl Progress for Tracking<'_> {
    fn planned(&mut self, files: usize) {
        self.inner.planned(files);
    }

    fn start(&mut self, name: &str, size: u64) {
        self.current = Some((0, size));
        self.inner.start(name, size);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some((got, _)) = &mut self.current {
            *got += bytes;
        }
        self.inner.advance(bytes);
    }

    fn finish(&mut self) {
        self.current = None;
        self.inner.finish();
    }

    fn result(&mut self, file: &FileResult) {
        self.inner.result(file);
    }

    fn starting_over(&mut self, name: &str) {
        self.inner.starting_over(name);
    }

    fn kept_partial(&mut self, bytes: u64) {
        self.kept = Some(bytes);
        self.inner.kept_partial(bytes);
    }

    fn partial_removed(&mut self, name: &str) {
        self.inner.partial_removed(name);
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
    let mut track = Tracking { inner: progress, current: None, kept: None };
    track.planned(jobs.len());
    let mut files = Vec::with_capacity(jobs.len());
    let fetched = match early {
        Some(e) => Err(e),
        None => fetch_jobs(client, jobs, options, &mut track, &mut files),
    };
    // The file in progress when the session was lost, and how far it got.
    let got = track.current.take();
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
            Some(Lost { error, cut_off: None, not_fetched: Vec::new(), kept: None, requests: Vec::new() })
        }
        Err(error) => {
            let requests = jobs[done..].iter().map(Job::remote_path).collect();
            let mut left = jobs[done..].iter();
            let cut_off = left.next().map(|job| (job.shown.clone(), got));
            let not_fetched = left.map(|j| j.shown.clone()).collect();
            Some(Lost { error, cut_off, not_fetched, kept: track.kept, requests })
        }
    };
    Report { files, lost, elapsed: started.elapsed(), repeated: Vec::new() }
}

impl Client {
    /// Fetches `paths` in order into `options.out_dir`, with a few requests
    /// in flight. Each file appears under its name only once its size and
    /// checksum are verified; a lost session leaves no partial file.
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] before any request when two paths would be
    /// written to one name. Everything else is in the [`Report`]: a result
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
    pub fn fetch_files(&mut self, paths: &[impl AsRef<str>], options: &FetchOptions) -> Result<Report> {
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
        paths: &[impl AsRef<str>],
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let started = Instant::now();
        if !paths.iter().any(|p| is_pattern(p.as_ref())) {
            let (jobs, repeated) = check_outputs(plain_jobs(paths, options), options.names)?;
            let mut report = run(self, &jobs, None, options, progress, started);
            report.repeated = repeated;
            return Ok(report);
        }
        let expanded = match expand_patterns(self, paths) {
            Ok(expanded) => expanded,
            // Turned away or lost before the listing: a result for each name asked for.
            Err(e) => return Ok(run(self, &plain_jobs(paths, options), Some(e), options, progress, started)),
        };
        let mut jobs = Vec::with_capacity(expanded.len());
        for (path, known) in expanded {
            let mut job = plain_jobs(&[&path], options).remove(0);
            if let Some(known) = known {
                job.shown = path.into();
                job.known = Some(known);
            }
            jobs.push(job);
        }
        let (jobs, repeated) = check_outputs(jobs, options.names)?;
        let mut report = run(self, &jobs, None, options, progress, started);
        report.repeated = repeated;
        Ok(report)
    }

    /// Fetches the one file `path` to the file `dest`, as
    /// [`Client::fetch_files_with`] fetches into a directory and with its
    /// `options` (clobbering, resuming, times, updating; `options.out_dir`
    /// and `options.names` are not used): written beside `dest` and given
    /// its name only once verified. A `path` is never a pattern here.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] with [`FailReason::BadOutputName`] when `dest` has
    /// no file name (or one that is not UTF-8), or names a directory (it
    /// ends in `/`, `.` or `..`); everything else is in the [`Report`].
    pub fn fetch_as_with(
        &mut self,
        path: &str,
        dest: &std::path::Path,
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let started = Instant::now();
        let (name, dir) = crate::fs::output::dest_parts(dest)
            .map_err(|text| Error::Failed { reason: FailReason::BadOutputName, text })?;
        let mut options = options.clone();
        options.out_dir = dir;
        let job = Job {
            remote: normalize_path(path.as_bytes()),
            // The name the user gave it.
            shown: dest.to_path_buf(),
            out: OutputPath::below(name.as_bytes()),
            known: None,
        };
        Ok(run(self, &[job], None, &options, progress, started))
    }

    /// Fetches the directories `dirs` of the server's tree with everything
    /// below them (`.`: the whole tree), keeping their paths below
    /// `options.out_dir`: `sub` writes `sub/...`, and with
    /// [`OutputNames::Relative`] `sub/deep` writes `sub/deep/...` instead of
    /// `deep/...`. Directories are created one component at a time, never
    /// through a symlink. A name that matches nothing is
    /// [`Outcome::NotFound`]; an absolute one is refused. Each name is
    /// normalized (`./sub`, `sub//deep/` are `sub`, `sub/deep`) and listed
    /// by the server below it; every entry the listing left out
    /// (unreadable, too deep, over a limit) gets an [`Outcome::Skipped`]
    /// result, so that the report says what the copy lacks.
    ///
    /// # Errors
    ///
    /// [`Error::SameOutput`] after the listings and before any file is
    /// asked for, when two different files would be written to one path
    /// (`-r d1/x d2/x`, both holding `f`). Everything else is in the
    /// [`Report`], as for [`Client::fetch_files`] (a listing that fails
    /// loses the session for every name).
    pub fn fetch_tree_with(
        &mut self,
        dirs: &[impl AsRef<str>],
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let started = Instant::now();
        let mut repeated = Vec::new();
        // Each directory as named (for its messages) and normalized.
        let mut named_dirs: Vec<(&[u8], Vec<u8>)> = Vec::new();
        for f in dirs {
            let f = f.as_ref().as_bytes();
            let dir = normalize_path(f);
            if named_dirs.iter().any(|(_, d)| *d == dir) {
                repeated.push(as_path(f));
            } else {
                named_dirs.push((f, dir));
            }
        }
        let mut jobs = Vec::new();
        let mut early = None;
        for (f, dir) in &named_dirs {
            if dir.starts_with(b"/") {
                // As the server refuses any absolute path it is asked for.
                let text = format!(
                    "{} leads outside the served directory; name a directory below the server's root",
                    quote_bytes(f)
                );
                jobs.push(named(f, Outcome::Refused { reason: FailReason::OutsideRoot, text }));
                continue;
            }
            if early.is_some() {
                break;
            }
            match self.list_bytes(Some(dir)) {
                Ok(listing) if listing.files.is_empty() && listing.skipped.is_empty() => {
                    jobs.push(named(f, Outcome::NotFound))
                }
                Ok(listing) => jobs.extend(tree_jobs(listing, dir, options.names)),
                Err(e) => early = Some(e),
            }
        }
        if let Some(e) = early {
            // Turned away or lost in a listing: a result for each name asked for.
            let jobs = plain_jobs(dirs, options);
            return Ok(run(self, &jobs, Some(e), options, progress, started));
        }
        let (jobs, more) = check_outputs(jobs, options.names)?;
        repeated.extend(more);
        let mut report = run(self, &jobs, None, options, progress, started);
        report.repeated = repeated;
        Ok(report)
    }
}
