//! Runs of files: which files a fetch asks for (the named files, or the
//! trees below named directories), what became of each, and the summary.

use std::time::{Duration, Instant};

use crate::client::{Client, Entry};
use crate::delivery::{fetch_jobs, output_name, FetchOptions, Job, NoProgress, Progress};
use crate::error::{Error, Result};
use crate::outcome::{FailReason, Outcome};
use crate::output::{OutputNames, OutputPath};
use crate::text::human_size;

/// What became of one file of a run ([`Client::fetch_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileResult {
    /// The path asked of the server.
    pub path: String,
    /// The name the user reads: the output name, or for a tree the path
    /// below the output directory.
    pub name: String,
    /// What became of it.
    pub outcome: Outcome,
}

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
}

/// What a lost session left of a run ([`Report::lost`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Lost {
    /// Why the session was lost.
    pub error: Error,
    /// The file in progress, and how far it got (bytes received and its
    /// size) when it had started; nothing of it is kept.
    pub cut_off: Option<(String, Option<(u64, u64)>)>,
    /// The files never asked for, by name.
    pub not_fetched: Vec<String>,
}

/// The counts of a run, for a summary line ([`Report::summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Files asked for.
    pub asked: usize,
    /// Files delivered.
    pub delivered: usize,
    /// Files the server does not have.
    pub not_found: usize,
    /// Files the server refused.
    pub refused: usize,
    /// Files that failed (the one a lost session cut off included).
    pub failed: usize,
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
            (self.not_found, "not found"),
            (self.refused, "refused"),
            (self.failed, "failed"),
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
    /// Whether every file asked for was delivered and the session held.
    pub fn all_delivered(&self) -> bool {
        self.lost.is_none() && self.files.iter().all(|f| f.outcome.is_delivered())
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
                Outcome::NotFound => s.not_found += 1,
                Outcome::Refused { .. } => s.refused += 1,
                Outcome::Failed { .. } => s.failed += 1,
            }
        }
        if let Some(lost) = &self.lost {
            s.failed += usize::from(lost.cut_off.is_some());
            s.not_fetched = lost.not_fetched.len();
        }
        s.asked = s.delivered + s.not_found + s.refused + s.failed + s.not_fetched;
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

/// The jobs of a plain fetch: each file under its output name.
pub(crate) fn plain_jobs(paths: &[impl AsRef<str>], options: &FetchOptions) -> Vec<Job> {
    paths
        .iter()
        .map(|p| {
            let p = p.as_ref();
            Job {
                remote: p.to_owned(),
                shown: options.shown_name(p),
                out: options.output_path(p),
                known: None,
            }
        })
        .collect()
}

/// The jobs of a tree fetch: every listed file at or below each named path,
/// kept at its path relative to the named directory's parent (`sub/deep`
/// writes `deep/...`; `.` the whole tree), or with
/// [`OutputNames::Relative`] at its whole path (`sub/deep/...`). A listed
/// path with an empty, `.` or `..` component fails its file.
pub(crate) fn tree_jobs(listing: &[Entry], dirs: &[impl AsRef<str>], names: OutputNames) -> Vec<Job> {
    let mut jobs = Vec::new();
    for f in dirs {
        let f = f.as_ref();
        if f.starts_with('/') {
            // As the server refuses any absolute path it is asked for.
            let text =
                format!("{f} leads outside the served directory; name a directory below the server's root");
            let known = Some(Outcome::Refused { reason: FailReason::OutsideRoot, text });
            jobs.push(Job { remote: f.to_owned(), shown: f.to_owned(), out: Err(String::new()), known });
            continue;
        }
        let dir = f.trim_end_matches('/');
        let whole = dir == ".";
        // What replaces `dir` in the local path: its last component.
        let base = if whole { "" } else { dir.rsplit('/').next().unwrap_or(dir) };
        let before = jobs.len();
        for Entry { path, .. } in listing {
            let below = path.strip_prefix(dir).filter(|rest| rest.starts_with('/'));
            if !whole && path != dir && below.is_none() {
                continue;
            }
            let local = match below {
                _ if whole || names == OutputNames::Relative => path.clone(),
                Some(rest) => format!("{base}{rest}"),
                None => output_name(path).unwrap_or(path).to_owned(),
            };
            let out = OutputPath::below(&local);
            let known = out.is_err().then(|| {
                let text = "the server's path has an empty, '.' or '..' component; not written";
                Outcome::failed(FailReason::BadOutputName, text)
            });
            jobs.push(Job { remote: path.clone(), shown: local, out, known });
        }
        if jobs.len() == before {
            jobs.push(Job {
                remote: f.to_owned(),
                shown: f.to_owned(),
                out: Err(String::new()),
                known: Some(Outcome::NotFound),
            });
        }
    }
    jobs
}

/// A [`Progress`] that remembers how far the file in progress got.
struct Tracking<'a> {
    inner: &'a mut dyn Progress,
    current: Option<(u64, u64)>,
}

impl Progress for Tracking<'_> {
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
    let mut track = Tracking { inner: progress, current: None };
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
                files.push(FileResult { path: job.remote.clone(), name: job.shown.clone(), outcome });
                track.result(files.last().expect("just pushed"));
            }
            Some(Lost { error, cut_off: None, not_fetched: Vec::new() })
        }
        Err(error) => {
            let mut left = jobs[done..].iter();
            let cut_off = left.next().map(|job| (job.shown.clone(), got));
            Some(Lost { error, cut_off, not_fetched: left.map(|j| j.shown.clone()).collect() })
        }
    };
    Report { files, lost, elapsed: started.elapsed() }
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
        options.check(paths)?;
        let started = Instant::now();
        let jobs = plain_jobs(paths, options);
        Ok(run(self, &jobs, None, options, progress, started))
    }

    /// Fetches the directories `dirs` of the server's tree with everything
    /// below them (`.`: the whole tree), keeping their paths below
    /// `options.out_dir`: `sub` writes `sub/...`, and with
    /// [`OutputNames::Relative`] `sub/deep` writes `sub/deep/...` instead of
    /// `deep/...`. Directories are created one component at a time, never
    /// through a symlink. A name that matches nothing is
    /// [`Outcome::NotFound`]; an absolute one is refused.
    ///
    /// # Errors
    ///
    /// None of its own: as [`Client::fetch_files`], everything is in the
    /// [`Report`] (a listing that fails loses the session for every name).
    pub fn fetch_tree_with(
        &mut self,
        dirs: &[impl AsRef<str>],
        options: &FetchOptions,
        progress: &mut dyn Progress,
    ) -> Result<Report> {
        let started = Instant::now();
        let (jobs, early) = match self.list(None) {
            Ok(listing) => (tree_jobs(&listing, dirs, options.names), None),
            // Turned away or lost before the listing: a result for each name asked for.
            Err(e) => (plain_jobs(dirs, options), Some(e)),
        };
        Ok(run(self, &jobs, early, options, progress, started))
    }
}
