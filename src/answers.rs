//! A session's answers that are not a file: the listing (over the walk), the
//! status, and "busy" to a client over the session limit.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use log::{debug, info, warn};

use crate::error::{Error, Result};
use crate::names::SessionNames;
use crate::pacing::Pacing;
use crate::protocol::{Reply, MAX_PATH_LEN};
use crate::ring::Producer;
use crate::sessions::attach;
use crate::shm_region::{EndReason, Region};
use crate::source::Root;
use crate::stats::ServerStats;
use crate::walk::{Limits, SkipReason, Visit, Walk};

/// How far a listing walks: files at most, and how deep.
const LIST_LIMITS: Limits = Limits { max_depth: 32, max_files: 100_000 };

/// What a listing left out, for the server's log.
#[derive(Debug, Default)]
struct LeftOut {
    /// Files and directories whose names are not UTF-8 (a directory counts once).
    not_utf8: u64,
    /// The first of them, bytes that are not printable ASCII escaped.
    example: String,
    /// Paths too long for the protocol.
    too_long: u64,
    /// Directories deeper than the limit, not descended.
    too_deep: u64,
    /// Whether the walk stopped at its file limit.
    over_limit: bool,
    /// Entries that could not be examined or read, and the first of them.
    unreadable: u64,
    unreadable_example: String,
    /// Symlinks (never followed), FIFOs, devices, sockets.
    not_regular: u64,
}

/// Sends the listing of the whole root as the answer to request `seq`, and
/// logs it: the count, and what was left out.
///
/// # Errors
///
/// What [`Producer::send`] returns.
pub(crate) fn send_listing(tx: &mut Producer, root: &Root, seq: u32, client_pid: u32) -> Result<()> {
    let mut entries = Vec::new();
    let mut left_out = LeftOut::default();
    match Walk::new(root, "", LIST_LIMITS) {
        Ok(walk) => {
            for visit in walk {
                match visit {
                    Visit::File(entry) => match String::from_utf8(entry.path) {
                        Ok(path) if path.len() <= MAX_PATH_LEN => entries.push((path, entry.size)),
                        Ok(_) => left_out.too_long += 1,
                        // The walk reports names that are not UTF-8 as skipped.
                        Err(_) => left_out.not_utf8 += 1,
                    },
                    Visit::Skipped(skip) => left_out.note(&skip.path, &skip.reason),
                }
            }
        }
        Err(e) => warn!("client {client_pid}: listing: cannot open the served directory: {e:?}"),
    }
    entries.sort();
    let mut count = 0u64;
    for (path, size) in entries {
        // size (8 bytes) and path: entries too long for one slot are skipped.
        if 8 + path.len() > tx.max_payload() {
            left_out.too_long += 1;
            continue;
        }
        tx.send(seq, &Reply::ListEntry { size, path })?;
        count += 1;
    }
    tx.send(seq, &Reply::ListEnd { count })?;
    info!("client {client_pid}: listing: {count} file(s)");
    left_out.log(client_pid);
    Ok(())
}

impl LeftOut {
    fn note(&mut self, path: &[u8], reason: &SkipReason) {
        match reason {
            SkipReason::NotUtf8 => {
                if self.not_utf8 == 0 {
                    self.example = format!("\"{}\"", path.escape_ascii());
                }
                self.not_utf8 += 1;
            }
            SkipReason::TooDeep => self.too_deep += 1,
            SkipReason::OverLimit => self.over_limit = true,
            SkipReason::Unreadable(e) => {
                if self.unreadable == 0 {
                    self.unreadable_example = format!("\"{}\" ({})", path.escape_ascii(), e.desc());
                }
                self.unreadable += 1;
            }
            SkipReason::NotRegular(_) => self.not_regular += 1,
        }
    }

    fn log(&self, pid: u32) {
        if self.not_utf8 > 0 {
            warn!(
                "client {pid}: listing: left out {} name(s) that are not UTF-8, such as {}; \
                 only UTF-8 names can be listed or fetched: rename them",
                self.not_utf8, self.example
            );
        }
        if self.too_long > 0 {
            warn!("client {pid}: listing: left out {} path(s) too long to list", self.too_long);
        }
        if self.too_deep > 0 {
            let what = if self.too_deep == 1 { "directory" } else { "directories" };
            warn!(
                "client {pid}: listing: left out {} {what} more than {} levels deep",
                self.too_deep, LIST_LIMITS.max_depth
            );
        }
        if self.over_limit {
            warn!("client {pid}: listing: stopped after {} files", LIST_LIMITS.max_files);
        }
        if self.unreadable > 0 {
            let what = if self.unreadable == 1 { "entry" } else { "entries" };
            warn!(
                "client {pid}: listing: left out {} {what} that could not be read, such as {}",
                self.unreadable, self.unreadable_example
            );
        }
        if self.not_regular > 0 {
            debug!("client {pid}: listing: left out {} symlink(s) and special file(s)", self.not_regular);
        }
    }
}

/// Sends the server's status and its other sessions' as the answer to
/// request `seq` of the session of `region`.
///
/// # Errors
///
/// What [`Producer::send`] returns.
pub(crate) fn send_status(tx: &mut Producer, stats: &ServerStats, region: &str, seq: u32) -> Result<()> {
    let (server, sessions) = stats.snapshot(region);
    let count = sessions.len() as u64;
    tx.send(seq, &Reply::ServerStatus(server))?;
    for session in sessions {
        tx.send(seq, &Reply::SessionStatus(session))?;
    }
    tx.send(seq, &Reply::StatusEnd { count })
}

/// Answers a client over the session limit: marks its region "busy"
/// ([`EndReason::Busy`]) and puts a `Busy` frame in it, without waiting for
/// a slot.
///
/// # Errors
///
/// As [`attach`]; [`Error::Protocol`] when the client's ring has no free slot.
pub(crate) fn answer_busy(
    names: &SessionNames,
    region_size: u32,
    client_pid: u32,
    max: usize,
    pacing: &Pacing,
) -> Result<()> {
    // Marked before `attach` publishes the pid: a client that sees the pid
    // sees "busy" too, before it sends a request.
    Region::open(&names.region, region_size, client_pid)?.mark_ended(EndReason::Busy);
    let mut producer = attach(names, region_size, client_pid, &Arc::new(AtomicBool::new(false)), pacing)?;
    if !producer.has_free_slot() {
        return Err(Error::Protocol("no free slot for the busy answer".into()));
    }
    producer.send(0, &Reply::Busy { max_sessions: u32::try_from(max).unwrap_or(u32::MAX) })
}
