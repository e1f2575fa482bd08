//! The client's results as JSON lines (`--json` on a fetch): an object per
//! requested file, then one summary object.

use crate::{FailReason, FileResult, Outcome, SkipReason, Summary};
use serde::Serialize;

/// Why a file did not arrive, or was skipped by choice: a snake_case code.
#[derive(Debug, Serialize, Clone, Copy)]
#[serde(untagged)]
pub enum Why {
    Fail(FailReason),
    Skip(SkipReason),
}

/// One file's object, its fields in this order.
#[derive(Serialize)]
struct FileJson<'a> {
    /// The path asked of the server: its UTF-8 text (bytes that are not
    /// UTF-8 as U+FFFD), and its bytes in `request_bytes` when it is not
    /// UTF-8, as the listing JSON gives `path_bytes`.
    request: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_bytes: Option<&'a [u8]>,
    /// The output path below the output directory, the same way.
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<&'a [u8]>,
    result: &'a str,
    bytes: u64,
    /// A resumed file: the bytes its partial file kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    resumed_at: Option<u64>,
    /// A file cut off with `-C`: the bytes its partial file keeps for the
    /// next run.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Why>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// A path's text, and its bytes when they are not UTF-8.
fn text_and_bytes(bytes: &[u8]) -> (String, Option<&[u8]>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), None),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), Some(bytes)),
    }
}

/// What a line says beside its result: the bytes, and a partial file's
/// figures (`resumed_at`, `kept`), none by default.
#[derive(Default, Clone, Copy)]
struct Figures {
    bytes: u64,
    resumed_at: Option<u64>,
    kept: Option<u64>,
}

/// `{"request": …, "path": …, "result": …, "bytes": N[, "resumed_at": N,
/// "kept": N, "reason": …, "message": …]}`: the one maker of a file's line,
/// fetched, uploaded or cut off.
fn line(
    request: &[u8],
    path: &[u8],
    result: &str,
    figures: Figures,
    reason: Option<Why>,
    message: Option<&str>,
) -> String {
    let (request, request_bytes) = text_and_bytes(request);
    let (path, path_bytes) = text_and_bytes(path);
    let Figures { bytes, resumed_at, kept } = figures;
    super::to_json(&FileJson {
        request,
        request_bytes,
        path,
        path_bytes,
        result,
        bytes,
        resumed_at,
        kept,
        reason,
        message,
    })
}

/// [`line`] of a file that moved no byte: its result and why.
fn object(request: &[u8], path: &[u8], result: &str, why: (Why, &str)) -> String {
    line(request, path, result, Figures::default(), Some(why.0), Some(why.1))
}

/// The line of one file's result.
pub fn file_line(file: &FileResult) -> String {
    use std::os::unix::ffi::OsStrExt;
    let (request, path) = (file.path.as_os_str().as_bytes(), file.name.as_os_str().as_bytes());
    match &file.outcome {
        Outcome::Delivered { bytes } => {
            let figures = Figures { bytes: *bytes, resumed_at: file.resumed_at, kept: None };
            line(request, path, "delivered", figures, None, None)
        }
        Outcome::NotFound => line(request, path, "not_found", Figures::default(), None, None),
        Outcome::Refused { reason, text } => object(request, path, "refused", (Why::Fail(*reason), text)),
        Outcome::Failed { reason, text } => object(request, path, "failed", (Why::Fail(*reason), text)),
        // Left out by the server's listing: never asked for.
        Outcome::LeftOut { reason, text } => object(request, path, "skipped", (Why::Fail(*reason), text)),
        Outcome::Skipped { reason: why @ SkipReason::Exists } => {
            object(request, path, "skipped", (Why::Skip(*why), "exists"))
        }
        Outcome::Skipped { reason: why @ SkipReason::UpToDate } => {
            object(request, path, "skipped", (Why::Skip(*why), "up to date"))
        }
    }
}

/// The line of one file of an upload (`--put --json`): the local path as
/// `request`, the path below the server's `--accept` directory as `path`,
/// the fields of a fetch's line.
pub fn upload_line(
    request: &[u8],
    path: &[u8],
    result: &str,
    bytes: u64,
    reason: Option<Why>,
    message: Option<&str>,
) -> String {
    line(request, path, result, Figures { bytes, ..Figures::default() }, reason, message)
}

/// The line of a file a lost session cut off (`failed`, with where it
/// had resumed and what its partial file keeps, if anything) or never
/// asked for (`skipped`), both with the reason `session_lost`.
pub fn lost_line(request: &[u8], path: &[u8], cut_off: Option<&crate::Lost>, message: &str) -> String {
    let figures = Figures {
        bytes: 0,
        resumed_at: cut_off.and_then(|lost| lost.resumed_at),
        kept: cut_off.and_then(|lost| lost.kept),
    };
    let result = if cut_off.is_some() { "failed" } else { "skipped" };
    line(request, path, result, figures, Some(Why::Fail(FailReason::SessionLost)), Some(message))
}

/// For `skip_serializing_if`: nothing counted (no byte, no file).
fn is_zero<N: Default + PartialEq>(n: &N) -> bool {
    *n == N::default()
}

/// `{"summary": {"files": N, "delivered": N, …, "bytes": N, "seconds": S}}`
pub fn summary_line(s: &Summary) -> String {
    #[derive(Serialize)]
    struct Counts {
        files: usize,
        delivered: usize,
        not_found: usize,
        refused: usize,
        failed: usize,
        /// Uploads sent whole whose answer never came.
        #[serde(skip_serializing_if = "is_zero")]
        unconfirmed: usize,
        skipped: usize,
        left_out: usize,
        not_fetched: usize,
        bytes: u64,
        /// Delivered, and of a file a lost session cut off, less what
        /// resumed files had kept from earlier runs: in this run (with
        /// --put: sent).
        received: u64,
        /// What resumed files had kept from earlier runs (`-C`).
        #[serde(skip_serializing_if = "is_zero")]
        resumed: u64,
        /// Of the cut-off file, kept for --continue.
        #[serde(skip_serializing_if = "Option::is_none")]
        kept: Option<u64>,
        seconds: f64,
    }
    #[derive(Serialize)]
    struct Line {
        summary: Counts,
    }
    let summary = Counts {
        files: s.asked,
        delivered: s.delivered,
        not_found: s.not_found,
        refused: s.refused,
        failed: s.failed,
        unconfirmed: s.unconfirmed,
        skipped: s.skipped,
        left_out: s.left_out,
        not_fetched: s.not_fetched,
        bytes: s.bytes,
        received: s.received,
        resumed: s.resumed,
        kept: s.kept,
        // To the millisecond.
        seconds: (s.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
    };
    super::to_json(&Line { summary })
}
