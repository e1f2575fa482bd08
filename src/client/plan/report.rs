//! How a run of files went: a result per file, what a lost session left,
//! and the counts for a summary line.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::text::human_size;
use crate::transfer::outcome::{FileResult, Outcome};

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
    /// Files named more than once (`a a`, `a ./a`, a pattern and the name
    /// of one of its matches), each fetched once, as `cp` does: the two
    /// names that asked for each, in the order asked for, once per
    /// repetition.
    pub repeated: Vec<Repeated>,
}

/// A file (or a tree's or a pattern's files) named a second time in a run,
/// fetched once ([`Report::repeated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Repeated {
    /// The name that asked for it first, as given (a path, or the pattern
    /// or tree that matched it).
    pub first: PathBuf,
    /// The name that asked for it again, as given.
    pub again: PathBuf,
    /// The name it is written under, below the output directory; `None`
    /// for a tree or a pattern named twice, whose files keep their own.
    pub output: Option<PathBuf>,
}

impl Repeated {
    pub(crate) fn new(first: &[u8], again: &[u8], output: Option<PathBuf>) -> Repeated {
        let path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
        Repeated { first: path(first), again: path(again), output }
    }
}

/// What a lost session left of a run ([`Report::lost`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Lost {
    /// Why the session was lost.
    pub error: Error,
    /// The file in progress, and how far it got (bytes received and its
    /// size) when it had started: with [`Lost::kept`], the bytes kept.
    pub cut_off: Option<(PathBuf, Option<(u64, u64)>)>,
    /// The files never asked for, by name.
    pub not_fetched: Vec<PathBuf>,
    /// The bytes of the cut-off file kept for resuming
    /// ([`Partial::Keep`](crate::Partial::Keep)); `None`: nothing kept.
    pub kept: Option<u64>,
    /// Where the cut-off file resumed a partial file an earlier run kept:
    /// the first of its bytes in [`Lost::cut_off`], which did not arrive in
    /// this run; `None`: it did not resume.
    pub resumed_at: Option<u64>,
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
    /// Uploads whose every byte and end left and whose answer never came
    /// (the session was lost first): the server may have stored them.
    pub unconfirmed: usize,
    /// Files never asked for (never sent, in a run of uploads).
    pub not_fetched: usize,
    /// Bytes delivered.
    pub bytes: u64,
    /// Bytes received in this run (a run of uploads: sent): those
    /// delivered, and those of a file a lost session cut off
    /// ([`Lost::cut_off`]), less what each had kept from an earlier run where
    /// it resumed ([`Summary::resumed`]).
    pub received: u64,
    /// Bytes that files resumed from partial files earlier runs kept (`-C`):
    /// delivered or kept, but not received in this run.
    pub resumed: u64,
    /// The bytes of the cut-off file kept for resuming ([`Lost::kept`]).
    pub kept: Option<u64>,
    /// How long the run took.
    pub elapsed: Duration,
    /// Which way the files went: what the files never handed over are
    /// called.
    direction: Direction,
}

/// Which way the files of a run go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Direction {
    /// Fetched: a file never asked for is `not fetched`.
    #[default]
    Fetch,
    /// Uploaded: a file never sent is `not sent`.
    Upload,
}

impl Summary {
    /// The summary of a run of uploads (`--put`): its files never sent
    /// ([`Summary::not_fetched`]) are `not sent`.
    #[must_use]
    pub fn of_uploads(mut self) -> Summary {
        self.direction = Direction::Upload;
        self
    }
}

/// `7 files: 5 delivered, 1 not found, 1 failed; 2.0 MiB in 0.04 s (50.0 MiB/s)`;
/// when a lost session cut a file off, what was received and what of it was
/// delivered and kept: `2 files: 0 delivered, 1 failed, 1 not fetched; 24.4 MiB
/// received in 1.60 s (15.2 MiB/s), 0 B of it delivered, 24.4 MiB kept` (a
/// run of uploads: `sent`, the bytes that left); when
/// files resumed, what they had already: `2 files: 2 delivered; 18.9 MiB
/// received in 0.41 s (46.1 MiB/s) besides 28.8 MiB resumed, 47.7 MiB
/// delivered`. The rate is that of the bytes received.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![format!("{} delivered", self.delivered)];
        for (n, what) in [
            (self.skipped, "skipped"),
            (self.not_found, "not found"),
            (self.refused, "refused"),
            (self.failed, "failed"),
            (self.unconfirmed, "unconfirmed"),
            (self.left_out, "left out"),
            (
                self.not_fetched,
                match self.direction {
                    Direction::Fetch => "not fetched",
                    Direction::Upload => "not sent",
                },
            ),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { human_size((self.received as f64 / secs) as u64) } else { "-".into() };
        let (asked, parts, received) = (self.asked, parts.join(", "), human_size(self.received));
        if self.received == self.bytes && self.kept.is_none() && self.resumed == 0 {
            return write!(f, "{asked} files: {parts}; {received} in {secs:.2} s ({rate}/s)");
        }
        let delivered = human_size(self.bytes);
        let moved = match self.direction {
            Direction::Fetch => "received",
            Direction::Upload => "sent",
        };
        write!(f, "{asked} files: {parts}; {received} {moved} in {secs:.2} s ({rate}/s)")?;
        match self.resumed {
            0 => write!(f, ", {delivered} of it delivered")?,
            resumed => write!(f, " besides {} resumed, {delivered} delivered", human_size(resumed))?,
        }
        match self.kept {
            Some(kept) => write!(f, ", {} kept", human_size(kept)),
            None => Ok(()),
        }
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
                    s.resumed += f.resumed_at.unwrap_or(0);
                }
                Outcome::Skipped { .. } => s.skipped += 1,
                Outcome::NotFound => s.not_found += 1,
                Outcome::Refused { .. } => s.refused += 1,
                Outcome::Failed { .. } => s.failed += 1,
                Outcome::LeftOut { .. } => s.left_out += 1,
            }
        }
        let mut got = s.bytes;
        if let Some(lost) = &self.lost {
            s.failed += usize::from(lost.cut_off.is_some());
            s.not_fetched = lost.not_fetched.len();
            got += lost.cut_off.as_ref().and_then(|(_, got)| *got).map_or(0, |(got, _)| got);
            s.resumed += lost.resumed_at.unwrap_or(0);
            s.kept = lost.kept;
        }
        s.received = got.saturating_sub(s.resumed);
        s.asked = s.delivered
            + s.skipped
            + s.not_found
            + s.refused
            + s.failed
            + s.unconfirmed
            + s.left_out
            + s.not_fetched;
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
