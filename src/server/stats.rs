//! What a server has done and is doing: totals for its log and its
//! shutdown summary, and a live record per session, which `--status` reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::{truncate_utf8, ServerStatus, SessionKind, SessionStatus, MAX_STATUS_TEXT};
use crate::transfer::Meter;

/// A server's totals and its live sessions.
#[derive(Debug)]
pub(crate) struct ServerStats {
    started: Instant,
    root: String,
    persistent: bool,
    max_sessions: usize,
    /// Sessions opened.
    sessions: AtomicU64,
    /// Files sent whole.
    files: AtomicU64,
    /// Bytes of the files sent whole.
    bytes: AtomicU64,
    /// Files cut off after some of their bytes (the client left, a read
    /// failed, the file changed), and those bytes.
    cut_files: AtomicU64,
    cut_bytes: AtomicU64,
    /// Whether uploads are taken (`--accept`).
    accepting: bool,
    /// Uploads stored, and their bytes.
    received_files: AtomicU64,
    received_bytes: AtomicU64,
    /// Uploads cut off (the client left, the server stopped), and the
    /// bytes that had come.
    received_cut_files: AtomicU64,
    received_cut_bytes: AtomicU64,
    /// Live sessions by region name.
    live: Mutex<HashMap<String, Arc<SessionStats>>>,
}

impl ServerStats {
    pub fn new(root: String, persistent: bool, max_sessions: usize) -> ServerStats {
        ServerStats {
            started: Instant::now(),
            root,
            persistent,
            max_sessions,
            sessions: AtomicU64::new(0),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            cut_files: AtomicU64::new(0),
            cut_bytes: AtomicU64::new(0),
            accepting: false,
            received_files: AtomicU64::new(0),
            received_bytes: AtomicU64::new(0),
            received_cut_files: AtomicU64::new(0),
            received_cut_bytes: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// These totals for a server that takes uploads (`--accept`).
    #[must_use]
    pub fn accepting_uploads(mut self) -> ServerStats {
        self.accepting = true;
        self
    }

    /// Counts an upload cut off after `bytes` had come.
    pub fn count_received_cut(&self, bytes: u64) {
        self.received_cut_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.received_cut_files.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an upload stored whole, of `bytes`.
    pub fn count_received(&self, bytes: u64) {
        self.received_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.received_files.fetch_add(1, Ordering::Relaxed);
    }

    fn live(&self) -> MutexGuard<'_, HashMap<String, Arc<SessionStats>>> {
        // A panicking session thread cannot leave the map half-changed.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new session and returns its live record; an unlisted one
    /// (a status-only session) is neither counted nor shown.
    pub fn open(&self, region: &str, client_pid: u32, kind: SessionKind) -> Arc<SessionStats> {
        let session = Arc::new(SessionStats::new(client_pid, kind));
        if kind != SessionKind::Status {
            self.sessions.fetch_add(1, Ordering::Relaxed);
            self.live().insert(region.to_owned(), Arc::clone(&session));
        }
        session
    }

    /// Forgets a session that has ended.
    pub fn close(&self, region: &str) {
        self.live().remove(region);
    }

    /// Counts a file of which `bytes` were sent: served if `whole`, else
    /// (when any of it left) cut off.
    pub fn count(&self, bytes: u64, whole: bool) {
        if whole {
            self.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.files.fetch_add(1, Ordering::Relaxed);
        } else if bytes > 0 {
            self.cut_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.cut_files.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One line for the log when the server stops: the files sent whole
    /// and their bytes, then those cut off, if any, and their bytes.
    pub fn summary(&self) -> String {
        let uptime = self.started.elapsed();
        let cut = match self.cut_files.load(Ordering::Relaxed) {
            0 => String::new(),
            n => {
                let bytes = crate::text::byte_count(self.cut_bytes.load(Ordering::Relaxed));
                format!("; {n} file(s) cut off after {bytes} in all")
            }
        };
        let received = if self.accepting {
            let cut = match self.received_cut_files.load(Ordering::Relaxed) {
                0 => String::new(),
                n => {
                    let bytes = crate::text::byte_count(self.received_cut_bytes.load(Ordering::Relaxed));
                    format!("; {n} upload(s) cut off after {bytes} in all")
                }
            };
            format!(
                "; received {} file(s), {}{cut}",
                self.received_files.load(Ordering::Relaxed),
                crate::text::byte_count(self.received_bytes.load(Ordering::Relaxed))
            )
        } else {
            String::new()
        };
        format!(
            "served {} file(s), {}, in {} session(s) over {}{cut}{received}",
            self.files.load(Ordering::Relaxed),
            crate::text::byte_count(self.bytes.load(Ordering::Relaxed)),
            self.sessions.load(Ordering::Relaxed),
            crate::text::duration_text(uptime)
        )
    }

    /// The server's status and its sessions', leaving out the session
    /// `asking` (the one that asks), sorted by client pid.
    pub fn snapshot(&self, asking: &str) -> (ServerStatus, Vec<SessionStatus>) {
        let live = self.live();
        let mut sessions: Vec<SessionStatus> =
            live.iter().filter(|(region, _)| region.as_str() != asking).map(|(_, s)| s.status()).collect();
        sessions.sort_by_key(|s| s.client_pid);
        let server = ServerStatus {
            pid: std::process::id(),
            persistent: self.persistent,
            max_sessions: u32::try_from(self.max_sessions).unwrap_or(u32::MAX),
            open_sessions: u32::try_from(live.len()).unwrap_or(u32::MAX),
            uptime_ms: millis(self.started.elapsed()),
            sessions_total: self.sessions.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            accepting: self.accepting,
            received_files: self.received_files.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
            root: truncate_utf8(&self.root, MAX_STATUS_TEXT).to_owned(),
        };
        (server, sessions)
    }
}

/// One session's live record, written by its thread.
#[derive(Debug)]
pub(crate) struct SessionStats {
    pub client_pid: u32,
    /// Its direction: fetches, uploads, the status.
    kind: SessionKind,
    opened: Instant,
    /// The file being sent (or received, in an upload session) and its
    /// size; `None` between files.
    current: Mutex<Option<(String, u64, Instant)>>,
    /// Bytes of the current file sent so far.
    sent: AtomicU64,
    /// Bytes sent in this session.
    total: AtomicU64,
    /// Milliseconds from `opened` to the last frame handed over.
    last_frame_ms: AtomicU64,
    /// Whether the client said goodbye: its death after that is no surprise.
    goodbye: AtomicBool,
}

impl Meter for SessionStats {
    fn begin(&self, path: &str, size: u64) {
        self.sent.store(0, Ordering::Relaxed);
        *self.current() = Some((path.to_owned(), size, Instant::now()));
        self.touch();
    }

    fn advance(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
        self.total.fetch_add(n, Ordering::Relaxed);
        self.touch();
    }

    fn end(&self) -> u64 {
        *self.current() = None;
        self.sent.swap(0, Ordering::Relaxed)
    }
}

impl SessionStats {
    fn new(client_pid: u32, kind: SessionKind) -> SessionStats {
        SessionStats {
            client_pid,
            kind,
            opened: Instant::now(),
            current: Mutex::new(None),
            sent: AtomicU64::new(0),
            total: AtomicU64::new(0),
            last_frame_ms: AtomicU64::new(0),
            goodbye: AtomicBool::new(false),
        }
    }

    fn current(&self) -> MutexGuard<'_, Option<(String, u64, Instant)>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A frame moved now.
    pub fn touch(&self) {
        self.last_frame_ms.store(millis(self.opened.elapsed()), Ordering::Relaxed);
    }

    /// The client said goodbye.
    pub fn said_goodbye(&self) {
        self.goodbye.store(true, Ordering::Relaxed);
    }

    /// Whether the client said goodbye.
    pub fn has_said_goodbye(&self) -> bool {
        self.goodbye.load(Ordering::Relaxed)
    }

    /// Bytes sent in this session, and how long it has lasted.
    pub fn totals(&self) -> (u64, Duration) {
        (self.total.load(Ordering::Relaxed), self.opened.elapsed())
    }

    fn status(&self) -> SessionStatus {
        let age = millis(self.opened.elapsed());
        let current = self.current();
        let (path, size, file_ms) = match &*current {
            Some((path, size, since)) => (path.as_str(), *size, millis(since.elapsed())),
            None => ("", 0, 0),
        };
        SessionStatus {
            client_pid: self.client_pid,
            kind: self.kind,
            age_ms: age,
            idle_ms: age.saturating_sub(self.last_frame_ms.load(Ordering::Relaxed)),
            sent: self.sent.load(Ordering::Relaxed),
            size,
            file_ms,
            total: self.total.load(Ordering::Relaxed),
            path: truncate_utf8(path, MAX_STATUS_TEXT).to_owned(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_shows_live_sessions_but_the_asking_one() {
        let stats = ServerStats::new("/srv".into(), true, 4);
        let a = stats.open("/q.1.a", 1, SessionKind::Transfer);
        let _b = stats.open("/q.2.b", 2, SessionKind::Transfer);
        let _unlisted = stats.open("/q.3.c", 3, SessionKind::Status);
        let up = stats.open("/q.4.d", 4, SessionKind::Upload);
        a.begin("big.iso", 1000);
        a.advance(300);
        up.begin("in/x", 50);
        let (server, sessions) = stats.snapshot("/q.2.b");
        assert_eq!((server.open_sessions, server.sessions_total, server.max_sessions), (3, 3, 4));
        assert_eq!(sessions.len(), 2);
        assert_eq!((sessions[0].client_pid, sessions[0].sent, sessions[0].size), (1, 300, 1000));
        assert_eq!((sessions[0].path.as_str(), sessions[0].kind), ("big.iso", SessionKind::Transfer));
        assert_eq!((sessions[1].path.as_str(), sessions[1].kind), ("in/x", SessionKind::Upload));
        assert_eq!(a.end(), 300);
        stats.count(300, false);
        stats.close("/q.1.a");
        stats.close("/q.4.d");
        let (server, sessions) = stats.snapshot("");
        assert_eq!((server.open_sessions, server.bytes, server.files), (1, 0, 0));
        assert_eq!(sessions[0].path, "");
    }

    #[test]
    fn bytes_served_are_those_of_whole_files_and_cut_off_ones_count_apart() {
        let stats = ServerStats::new("/srv".into(), false, 1);
        stats.count(111, true);
        stats.count(0, false);
        assert!(stats.summary().starts_with("served 1 file(s), 111 bytes, in 0 session(s) over "));
        assert!(!stats.summary().contains("cut off"), "{}", stats.summary());
        stats.count(1_310_720, false);
        let summary = stats.summary();
        assert!(summary.starts_with("served 1 file(s), 111 bytes, in 0 session(s) over "), "{summary}");
        assert!(summary.ends_with("; 1 file(s) cut off after 1310720 bytes in all"), "{summary}");
    }
}
