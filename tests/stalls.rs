//! Stalled peers and `--stall-timeout`: a server stopped mid-file (both
//! directions), a client stopped mid-file, and upload sessions that go
//! silent hold the other side, and a session slot, no longer than the
//! stall timeout; nothing is kept of the file, and the server serves on.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use shmxfer::testing::names::SessionNames;
use shmxfer::testing::protocol::{
    Command as Msg, FrameHeader, FrameKind, PutFlags, Reply, SessionKind, StartFlags,
};
use shmxfer::testing::shm_region::{Geometry, Region, Semaphore};

use crate::direction::Direction;
use crate::util::{
    accepting, assert_client_objects_gone, assert_exit_within, assert_no_leftovers, assert_out_empty,
    assert_same_file, new_dir, s, sources, stop, wait_until, write_random_file, Signal, TestEnv, BIG, DETECT,
    SLACK, TIMEOUT,
};

/// The stall timeout the tests use, in seconds.
const STALL: &str = "2";
const STALL_TIME: Duration = Duration::from_secs(2);

/// Stalled peer (`--stall-timeout`): stopped clients lose their session slots
/// after the stall timeout, so `--max-sessions` stopped clients do not deny
/// the service; a stopped client finds its session ended when it resumes.
#[test]
fn stopped_clients_lose_their_slots_after_the_stall_timeout_and_find_their_session_ended() {
    let env = TestEnv::new("stopped_client_stall");
    env.create("small.txt", b"small\n");
    let args = ["--persistent", "--max-sessions", "1", "--stall-timeout", STALL];
    let (mut server, mut client) = env.big_transfer_in_flight(&args, &["--stall-timeout", STALL], 105);
    client.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    // The one slot is taken: clients are turned away ("busy") until the
    // server ends the stalled session.
    let out2 = new_dir(&env, "out2");
    let mut last = None;
    let served = wait_until(STALL_TIME + SLACK + Duration::from_secs(10), || {
        let done = env.fetch_into(&out2, &["--wait", "5"], &["small.txt"]).finish(TIMEOUT);
        let ok = done.code() == Some(0);
        last = Some(done);
        ok
    });
    let took = stopped.elapsed();
    assert!(
        served,
        "no other client was served while one was stopped\n{}\n{}",
        last.unwrap(),
        server.snapshot()
    );
    assert!(took >= STALL_TIME / 2, "served after {took:?}, before the stall timeout: busy was not tested");
    assert_same_file(&env.in_root("small.txt"), &out2.join("small.txt"));
    assert!(
        server.stderr().contains("stall"),
        "the server says why it ended the session\n{}",
        server.snapshot()
    );
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    assert_exit_within(&done, 4, TIMEOUT);
    done.check(!done.stderr.is_empty(), "the client says its session ended");
    assert_out_empty(&env);
    assert_client_objects_gone(&env.names);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// A client stopped mid-upload: the server's stall timeout ends the
/// session, drops the unnamed file, and nothing appears under the name.
#[test]
fn a_client_stopped_mid_upload_is_ended_by_the_stall_timeout() {
    let env = TestEnv::new("put_client_stopped");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, BIG, 11);
    let mut server = accepting(&env, &["--stall-timeout", "1"]);
    let mut client = env.client(&["--put", s(&big)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    let dropped = wait_until(DETECT + SLACK, || server.open_files_under(env.out()).is_empty());
    assert!(dropped, "the server still holds the upload: {:?}", server.open_files_under(env.out()));
    assert!(env.out_entries().is_empty(), "nothing under the final name: {:?}", env.out_entries());
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    done.check(done.code() != Some(0), "the client learns its session ended");
    assert!(env.out_entries().is_empty(), "nothing under the final name: {:?}", env.out_entries());
    // The server still takes uploads.
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    env.run_client(&["--put", s(&small)]).assert_code(0);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A session opened by the protocol by this test process (an upload
/// session, unless [`RawSession::open_kind`] says otherwise), which then
/// does only what the test tells it to: what a hostile client can send,
/// whatever the library's types allow.
pub(crate) struct RawSession {
    names: SessionNames,
    geometry: Geometry,
    region: Region,
    items: Semaphore,
    spaces: Semaphore,
    mq: posixmq::PosixMq,
    sent: u32,
    received: u32,
}

impl RawSession {
    fn open(env: &TestEnv, pid: u32) -> RawSession {
        RawSession::open_kind(env, pid, SessionKind::Upload)
    }

    pub(crate) fn open_kind(env: &TestEnv, pid: u32, kind: SessionKind) -> RawSession {
        let names = SessionNames::fresh(env.names.queue(), pid).unwrap();
        let geometry = Geometry::for_slots(2);
        let region = Region::create(&names.region, geometry, pid).unwrap();
        let items = Semaphore::create_exclusive(&names.items, 0).unwrap();
        let spaces = Semaphore::create_exclusive(&names.spaces, geometry.slots()).unwrap();
        let mq = posixmq::OpenOptions::writeonly().open(env.names.queue()).unwrap();
        let open = Msg::Open {
            client_pid: pid,
            region_size: geometry.region_size() as u32,
            region: names.region.clone(),
            items: names.items.clone(),
            spaces: names.spaces.clone(),
            kind,
        };
        mq.send(0, &open.encode().unwrap()).unwrap();
        assert!(wait_until(TIMEOUT, || region.server_pid() != 0), "the server never took the session");
        RawSession { names, geometry, region, items, spaces, mq, sent: 0, received: 0 }
    }

    /// Sends `cmd` on the server's queue.
    pub(crate) fn command(&self, cmd: &Msg) {
        self.mq.send(0, &cmd.encode().unwrap()).unwrap();
    }

    /// The region's name, as commands carry it.
    pub(crate) fn region_name(&self) -> String {
        self.names.region.clone()
    }

    /// The next frame the server wrote into the ring (a session whose ring
    /// runs to the client): its header and payload.
    pub(crate) fn next_frame(&mut self) -> (FrameHeader, Vec<u8>) {
        assert!(wait_until(TIMEOUT, || self.items.try_wait()), "the server sent no frame");
        let slot = self.received % self.geometry.slots();
        let header = FrameHeader::decode(&self.region.read_frame_header(slot), self.geometry.max_payload())
            .expect("a frame header");
        let mut payload = vec![0; header.len as usize];
        self.region.read_payload(slot, &mut payload);
        self.received += 1;
        self.spaces.post().unwrap();
        (header, payload)
    }

    fn put(&mut self, seq: u32, path: &[u8], size: u64) {
        let put = Msg::Put {
            client_pid: std::process::id(),
            seq,
            region: self.names.region.clone(),
            path: path.to_vec(),
            flags: PutFlags::NONE,
        };
        self.mq.send(0, &put.encode().unwrap()).unwrap();
        let mut start = Vec::new();
        Reply::Start { size, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }.encode_payload(&mut start);
        self.frame(FrameKind::Start, seq, &start);
    }

    fn data(&mut self, seq: u32, payload: &[u8]) {
        self.frame(FrameKind::Data, seq, payload);
    }

    fn frame(&mut self, kind: FrameKind, seq: u32, payload: &[u8]) {
        assert!(wait_until(TIMEOUT, || self.spaces.try_wait()), "the server took no frame");
        let header = FrameHeader { kind, len: payload.len() as u32, seq }.encode();
        self.region.write_frame(self.sent % self.geometry.slots(), &header, payload);
        self.sent += 1;
        self.items.post().unwrap();
    }
}

impl Drop for RawSession {
    fn drop(&mut self) {
        let close = Msg::Close { client_pid: std::process::id(), region: self.names.region.clone() };
        let _ = self.mq.send(0, &close.encode().unwrap());
        for name in [&self.names.region, &self.names.items, &self.names.spaces] {
            let _ = fs::remove_file(Path::new("/dev/shm").join(name.trim_start_matches('/')));
            let _ =
                fs::remove_file(Path::new("/dev/shm").join(format!("sem.{}", name.trim_start_matches('/'))));
        }
    }
}

/// With room for one session, a client that opens an upload session and
/// sends nothing, and one that announces u64::MAX bytes, sends one frame
/// and goes silent, each hold the slot only until the stall timeout: the
/// next client (waiting on busy) is served, `--status` copes with the
/// announced size meanwhile, and nothing is kept of the silent upload.
#[test]
fn silent_upload_sessions_hold_the_only_slot_no_longer_than_the_stall_timeout() {
    let env = TestEnv::new("put_silent_slot");
    let src = sources(&env);
    let small = src.join("small");
    fs::write(&small, b"served after the silent one\n").unwrap();
    let mut server = accepting(&env, &["--max-sessions", "1", "--stall-timeout", "1"]);
    let pid = std::process::id();
    for announce in [None, Some(u64::MAX)] {
        let mut raw = RawSession::open(&env, pid);
        if let Some(size) = announce {
            raw.put(1, b"endless.bin", size);
            raw.data(1, &[7; 1000]);
            assert!(wait_until(TIMEOUT, || !server.open_files_under(env.out()).is_empty()), "never received");
            for opts in [&["--status"][..], &["--status", "--json"][..]] {
                let status = env.run_client(opts);
                status
                    .check(status.code() == Some(0), "--status answers")
                    .check(!status.stderr.contains("panicked"), "no panic over a size of u64::MAX");
            }
        }
        let started = std::time::Instant::now();
        let done = env.run_client(&["--wait", "20", "--put", s(&small)]);
        done.assert_code(0);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1) + SLACK, "served after {took:?}");
        assert_eq!(env.out_entries(), ["small"], "nothing of the silent upload");
        fs::remove_file(env.in_out("small")).unwrap();
        drop(raw);
    }
    assert!(server.is_running());
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(!log.contains("panicked"), "{log}");
    env.assert_no_leftovers();
}

/// A server stopped (SIGSTOP) mid-file, in both directions: the client
/// gives up at its stall timeout with exit 4 and removes its own objects,
/// with no file under the final name; the server, resumed, drops what it
/// held of the file and serves the next client.
#[test]
fn stopped_server_ends_its_client_after_the_stall_timeout_with_exit_4() {
    for direction in Direction::BOTH {
        let env = TestEnv::new(&format!("stopped_server_stall_{}", direction.name()));
        let stall = ["--stall-timeout", STALL];
        let (mut server, mut client) = direction.big_transfer_in_flight(&env, &stall, &stall, 104);
        server.signal(Signal::SIGSTOP);
        let stopped = Instant::now();
        let done = client.finish(TIMEOUT);
        let took = stopped.elapsed();
        done.assert_code(4).check(done.stderr.contains("stall"), "the client says the session stalled");
        assert!(took <= STALL_TIME + SLACK, "client took {took:?} to give up on a stopped server\n{done}");
        assert!(took >= STALL_TIME / 2, "client gave up after {took:?}, before the stall timeout\n{done}");
        assert_out_empty(&env);
        assert_client_objects_gone(&env.names);
        server.signal(Signal::SIGCONT);
        assert!(
            wait_until(DETECT + SLACK, || server.open_files_under(env.out()).is_empty()),
            "the resumed server dropped the file it was receiving"
        );
        direction.client(&env, &[], &["small.txt"]).finish(TIMEOUT).assert_code(0);
        assert_same_file(&direction.source(&env, "small.txt"), &env.in_out("small.txt"));
        assert_eq!(env.out_entries(), ["small.txt"]);
        stop(&env, &mut server);
        env.assert_no_leftovers();
    }
}
