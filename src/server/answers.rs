//! A session's answers that are not a file: the listing (over the walk), the
//! status, and "busy" to a client over the session limit.

use log::{debug, info, warn};

use crate::error::{Error, Result};
use crate::fs::source::{OpenFailure, Root};
use crate::fs::walk::{Entry, Limits, Skip, SkipReason, Visit, Walk};
use crate::protocol::{normalize_path, Reply, SkipCode, MAX_LIST_FILES, MAX_LIST_SKIPPED, MAX_PATH_LEN};
use crate::server::stats::ServerStats;
use crate::shm_region::ring::Producer;
use crate::shm_region::{EndReason, Region};
use crate::text::quote_bytes;
use crate::transfer::codes::{os_error, wire_codes};

/// How far a listing walks: files at most (as many as a listing carries),
/// and how deep. Each level holds two descriptors while the walk is below
/// it; what lies deeper, or past the file limit, is reported skipped, entry
/// by entry.
const LIST_LIMITS: Limits = Limits { max_depth: 64, max_files: MAX_LIST_FILES };

/// Room in a `ListEntry` payload before the path: size, mode, mtime.
const ENTRY_HEAD: usize = 8 + 4 + 8 + 4;
/// Room in a `ListSkipped` payload before the path: code, reserved, detail.
const SKIP_HEAD: usize = 8;

/// One skip as it goes on the wire.
struct Skipped {
    code: SkipCode,
    detail: u32,
    path: Vec<u8>,
}

impl Skipped {
    fn from_walk(skip: Skip) -> Option<Skipped> {
        let (code, detail) = match skip.reason {
            // Symlinks (never followed), FIFOs, devices and sockets are not
            // served files: a listing does not list them, as it leaves
            // nothing out that a fetch would get.
            SkipReason::NotRegular(_) => return None,
            SkipReason::TooDeep => (SkipCode::TooDeep, LIST_LIMITS.max_depth as u32),
            SkipReason::OverLimit => (SkipCode::OverLimit, LIST_LIMITS.max_files as u32),
            SkipReason::Unreadable(e) => (SkipCode::Unreadable, e as i32 as u32),
        };
        Some(Skipped { code, detail, path: skip.path })
    }
}

/// What a listing found: its files (paths from the root) and its skips.
#[derive(Default)]
struct Found {
    files: Vec<Entry>,
    skips: Vec<Skipped>,
    not_regular: u64,
}

impl Found {
    /// Adds `skip`, unless the listing names as many as it carries
    /// ([`MAX_LIST_SKIPPED`]): the last one it names says so. Whether the
    /// walk goes on.
    fn skip(&mut self, skip: Skipped) -> bool {
        if self.skips.len() + 1 < MAX_LIST_SKIPPED {
            self.skips.push(skip);
            return true;
        }
        let (code, detail) = (SkipCode::TooManySkipped, MAX_LIST_SKIPPED as u32);
        self.skips.push(Skipped { code, detail, path: skip.path });
        false
    }

    /// Adds the file `entry`, or as skipped ([`SkipCode::TooLong`]) when its
    /// path is longer than `max_path`. Whether the walk goes on.
    fn file(&mut self, entry: Entry, max_path: usize) -> bool {
        if entry.path.len() > max_path {
            return self.skip(Skipped { code: SkipCode::TooLong, detail: max_path as u32, path: entry.path });
        }
        self.files.push(entry);
        true
    }
}

/// Walks what lies at or below `prefix` (normalized; `.` the whole tree),
/// every path relative to the root; a path longer than `max_path` is
/// skipped.
fn find(root: &Root, prefix: &[u8], max_path: usize) -> Found {
    let mut found = Found::default();
    let whole = prefix == b".";
    let skip = |code, detail| Skipped { code, detail, path: prefix.to_vec() };
    let start: &[u8] = if whole { b"" } else { prefix };
    if !whole {
        match root.open_file(prefix) {
            Ok((_, st)) => {
                let size = u64::try_from(st.st_size).unwrap_or(0);
                let mtime = (st.st_mtime, st.st_mtime_nsec);
                found.file(Entry { path: prefix.to_vec(), size, mode: st.st_mode, mtime }, max_path);
                return found;
            }
            Err(OpenFailure::WrongKind(crate::fs::source::FileKind::Directory)) => {}
            Err(OpenFailure::Missing | OpenFailure::WrongKind(_)) => return found,
            Err(failure) => {
                found.skip(opening_skip(root, &failure).map_or_else(
                    || skip(SkipCode::Unreadable, libc::EIO as u32),
                    |(code, detail)| skip(code, detail),
                ));
                return found;
            }
        }
    }
    let walk = match Walk::new(root, start, LIST_LIMITS) {
        Ok(walk) => walk,
        // Gone or replaced since it was opened as a directory.
        Err(OpenFailure::Missing | OpenFailure::WrongKind(_)) => return found,
        Err(failure) => {
            let (code, detail) =
                opening_skip(root, &failure).unwrap_or((SkipCode::Unreadable, libc::EIO as u32));
            found.skip(skip(code, detail));
            return found;
        }
    };
    let below = |mut path: Vec<u8>| {
        if whole {
            path
        } else {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.append(&mut path);
            full
        }
    };
    for visit in walk {
        let goes_on = match visit {
            Visit::File(mut entry) => {
                entry.path = below(entry.path);
                found.file(entry, max_path)
            }
            Visit::Skipped(mut s) => {
                // The start directory itself (unreadable to its end) has an empty path.
                s.path = if s.path.is_empty() { start.to_vec() } else { below(s.path) };
                match Skipped::from_walk(s) {
                    Some(s) => found.skip(s),
                    None => {
                        found.not_regular += 1;
                        true
                    }
                }
            }
        };
        if !goes_on {
            break;
        }
    }
    found
}

/// The skip code ([`wire_codes`]) and detail for a prefix that could not
/// be opened below `root`; `None` where nothing is left out (nothing
/// there, or not a directory). A name too long is so for the file system
/// (its limit, not the protocol's): the protocol carried the prefix.
fn opening_skip(root: &Root, failure: &OpenFailure) -> Option<(SkipCode, u32)> {
    let code = wire_codes(failure).skip?;
    let detail = match code {
        SkipCode::NameTooLong => root.name_max(),
        SkipCode::TooLong => MAX_PATH_LEN as u32,
        SkipCode::Unreadable => os_error(failure).raw_os_error().unwrap_or(libc::EIO) as u32,
        SkipCode::TooDeep
        | SkipCode::OverLimit
        | SkipCode::OutsideRoot
        | SkipCode::InvalidPath
        | SkipCode::TooManySkipped => 0,
    };
    Some((code, detail))
}

/// Sends the listing of what lies at or below `prefix` (empty: the whole
/// root) as the answer to request `seq`: every file, sorted by path, then
/// every entry left out with its reason, sorted by path; and logs it. An
/// entry whose path is too long for a request or for one frame is sent
/// as skipped ([`SkipCode::TooLong`]), its path cut to fit. It carries at
/// most [`MAX_LIST_FILES`] files and [`MAX_LIST_SKIPPED`] entries left out.
///
/// # Errors
///
/// What [`Producer::send`] returns.
pub(crate) fn send_listing(
    tx: &mut Producer,
    root: &Root,
    seq: u32,
    prefix: &[u8],
    client_pid: u32,
) -> Result<()> {
    let prefix = if prefix.is_empty() { b".".to_vec() } else { normalize_path(prefix) };
    let max_path = MAX_PATH_LEN.min(tx.max_payload() - ENTRY_HEAD);
    let Found { mut files, mut skips, not_regular } = find(root, &prefix, max_path);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut sent = 0u64;
    for entry in files {
        let (mtime_secs, nsec) = entry.mtime;
        let reply = Reply::ListEntry {
            size: entry.size,
            mode: entry.mode & crate::protocol::MODE_BITS,
            mtime_secs,
            mtime_nsec: u32::try_from(nsec).ok().filter(|&n| n < 1_000_000_000).unwrap_or(0),
            path: entry.path,
        };
        tx.send(seq, &reply)?;
        sent += 1;
    }
    skips.sort_by(|a, b| a.path.cmp(&b.path));
    let max_skip_path = MAX_PATH_LEN.min(tx.max_payload() - SKIP_HEAD);
    for skip in &skips {
        let path = skip.path[..skip.path.len().min(max_skip_path)].to_vec();
        tx.send(seq, &Reply::ListSkipped { code: skip.code, detail: skip.detail, path })?;
    }
    tx.send(seq, &Reply::ListEnd { files: sent, skipped: skips.len() as u64 })?;
    let shown = if prefix == b"." { String::new() } else { format!(" of {}", quote_bytes(&prefix)) };
    info!("client {client_pid}: listing{shown}: {sent} file(s)");
    if let Some(first) = skips.first() {
        warn!(
            "client {client_pid}: listing{shown}: left out {} entr{}, such as {} ({:?}); the client was told each",
            skips.len(),
            if skips.len() == 1 { "y" } else { "ies" },
            quote_bytes(&first.path),
            first.code
        );
    }
    if not_regular > 0 {
        debug!(
            "client {client_pid}: listing{shown}: {not_regular} symlink(s) and special file(s) not listed"
        );
    }
    Ok(())
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

/// Answers a client over the session limit, or one that comes while the
/// server drains: marks its region with `why` ([`EndReason::Busy`] or
/// [`EndReason::ServerStopping`]) before it publishes the server's pid (a
/// client that sees the pid sees why too, before it sends a request), and
/// puts a `Busy` frame in it, without waiting for a slot.
///
/// # Errors
///
/// [`Error::Protocol`] when the client's ring has no free slot; what
/// [`Producer::send`] returns.
pub(crate) fn answer_busy(mut producer: Producer, region: &Region, max: usize, why: EndReason) -> Result<()> {
    region.mark_ended(why);
    region.set_server_pid(std::process::id());
    if !producer.has_free_slot() {
        return Err(Error::Protocol("no free slot for the busy answer".into()));
    }
    producer.send(0, &Reply::Busy { max_sessions: u32::try_from(max).unwrap_or(u32::MAX) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreadable(path: &str) -> Skipped {
        Skipped { code: SkipCode::Unreadable, detail: libc::EACCES as u32, path: path.into() }
    }

    #[test]
    fn a_listing_names_no_more_entries_left_out_than_it_carries_and_says_where_it_stopped() {
        let mut found = Found::default();
        for i in 1..MAX_LIST_SKIPPED {
            assert!(found.skip(unreadable(&format!("d{i}"))));
        }
        assert!(!found.skip(unreadable("last")), "the walk stops");
        assert_eq!(found.skips.len(), MAX_LIST_SKIPPED);
        let last = found.skips.last().unwrap();
        assert_eq!(
            (last.code, last.detail, last.path.as_slice()),
            (SkipCode::TooManySkipped, 10_000, &b"last"[..])
        );
    }

    #[test]
    fn a_file_whose_path_is_too_long_for_a_frame_is_left_out() {
        let mut found = Found::default();
        let entry = |path: &str| Entry { path: path.into(), size: 0, mode: 0o644, mtime: (0, 0) };
        assert!(found.file(entry("short"), 8));
        assert!(found.file(entry("far too long"), 8));
        assert_eq!(found.files.len(), 1);
        assert_eq!((found.skips[0].code, found.skips[0].detail), (SkipCode::TooLong, 8));
    }
}
