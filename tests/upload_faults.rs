//! Uploads under load and hostile clients: two clients putting one name at
//! once, thousands of tiny puts and many clients, a sparse 1 TiB file, and
//! garbage written raw into an upload session's ring. Every file said
//! stored is whole, nothing else is kept, and the server serves on.

use std::fs;
use std::time::Duration;

use shmxfer::testing::names::SessionNames;
use shmxfer::testing::protocol::{
    Command as Msg, FrameHeader, FrameKind, PutFlags, Reply, SessionKind, StartFlags, FRAME_HEADER_LEN,
};
use shmxfer::testing::shm_region::{Geometry, Region, Semaphore};

use crate::util::{
    accepting, assert_same_file, command, s, sources, stopped_at_syscall, wait_for_queue, wait_until,
    write_random_file, Proc, Signal, TestEnv, TracedChild, BIG_TIMEOUT, DETECT, MIB, SERVER, SLACK, TIMEOUT,
};

/// Two clients putting the same name at once: the name ends up as one of
/// the two files, whole, and no temporary name stays.
#[test]
fn two_clients_putting_one_name_leave_one_whole_file() {
    let env = TestEnv::new("put_same_name");
    let (a, b) = (env.tmp().join("a"), env.tmp().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    write_random_file(&a.join("same.bin"), 8 * MIB, 21);
    write_random_file(&b.join("same.bin"), 8 * MIB, 22);
    let mut server = accepting(&env, &[]);
    for _ in 0..3 {
        let mut one = env.client(&["--put", s(&a.join("same.bin"))]);
        let mut two = env.client(&["--put", s(&b.join("same.bin"))]);
        one.finish(BIG_TIMEOUT).assert_code(0);
        two.finish(BIG_TIMEOUT).assert_code(0);
        let got = fs::read(env.in_out("same.bin")).unwrap();
        let whole =
            got == fs::read(a.join("same.bin")).unwrap() || got == fs::read(b.join("same.bin")).unwrap();
        assert!(whole, "the name holds one of the two files, whole");
        assert_eq!(env.out_entries(), ["same.bin"], "no temporary name left");
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// Thousands of tiny puts in one session and many clients at once: every
/// file is stored whole, the server stays up and keeps no temporary name.
#[test]
fn many_tiny_puts_and_many_clients_at_once_are_all_stored() {
    let env = TestEnv::new("put_many_tiny");
    let src = sources(&env);
    let mut names = Vec::new();
    for i in 0..1500 {
        let f = src.join(format!("t{i:04}"));
        fs::write(&f, format!("{i}\n")).unwrap();
        names.push(s(&f).to_owned());
    }
    let mut server = accepting(&env, &["--max-sessions", "4"]);
    let mut args = vec!["-q", "--put", "-r", s(&src)];
    let one = env.run_client(&args);
    one.assert_code(0);
    let stored = crate::util::dir_entries(&env.in_out("src"));
    assert_eq!(stored.len(), 1500, "every tiny file stored");
    // Eight clients at once on four slots, each with its own target.
    args.truncate(2);
    let clients: Vec<Proc> = (0..8)
        .map(|c| {
            let to = format!("c{c}");
            let mut a: Vec<&str> = vec!["-q", "--wait", "20", "--to", &to, "--put"];
            a.extend(names[..100].iter().map(String::as_str));
            env.client(&a)
        })
        .collect();
    for mut c in clients {
        c.finish(TIMEOUT).assert_code(0);
    }
    for c in 0..8 {
        assert_eq!(crate::util::dir_entries(&env.in_out(&format!("c{c}"))).len(), 100);
    }
    assert!(server.is_running());
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A huge file (a sparse 1 TiB): the server reserves nothing ahead of the
/// data (its file grows with what arrived) and its memory stays small.
#[test]
fn a_huge_put_reserves_neither_disk_nor_memory() {
    let env = TestEnv::new("put_huge");
    let src = sources(&env);
    let huge = src.join("huge");
    fs::File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--put", s(&huge)]);
    let receiving = wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "huge") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    std::thread::sleep(Duration::from_millis(300));
    for (path, len) in server.open_files_under(env.out()) {
        assert!(len < 64 << 30, "{path:?} is {len} bytes: reserved ahead of the data");
    }
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(rss_kib < 256 * 1024, "the server holds {rss_kib} KiB");
    client.kill();
    assert!(wait_until(DETECT + SLACK, || server.open_files_under(env.out()).is_empty()));
    assert!(env.out_entries().is_empty(), "nothing under the final name: {:?}", env.out_entries());
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

type RawFrame = ([u8; FRAME_HEADER_LEN], Vec<u8>);

fn frame(kind: FrameKind, seq: u32, payload: Vec<u8>) -> RawFrame {
    (FrameHeader { kind, len: payload.len() as u32, seq }.encode(), payload)
}

/// The `Start` frame of upload 1: `size` bytes, `flags`.
fn start_frame(size: u64, flags: StartFlags) -> RawFrame {
    let mut payload = Vec::new();
    Reply::Start { size, mode: 0o644, flags, mtime_ns: 0 }.encode_payload(&mut payload);
    frame(FrameKind::Start, 1, payload)
}

/// A hostile client: opens an upload session by the protocol, announces
/// `victim.bin`, then writes `frames` raw into its ring and
/// waits until the server's log says it is done with the file or the
/// session, then says goodbye and removes its objects.
fn hostile_upload(env: &TestEnv, server: &Proc, frames: Vec<RawFrame>) {
    let pid = std::process::id();
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
        kind: SessionKind::Upload,
    };
    mq.send(0, &open.encode().unwrap()).unwrap();
    assert!(wait_until(TIMEOUT, || region.server_pid() != 0), "the server never took the session");
    let before = server.stderr().len();
    let put = Msg::Put {
        client_pid: pid,
        seq: 1,
        region: names.region.clone(),
        path: b"victim.bin".to_vec(),
        flags: PutFlags::NONE,
    };
    mq.send(0, &put.encode().unwrap()).unwrap();
    let slots = geometry.slots();
    for (i, (header, payload)) in frames.into_iter().enumerate() {
        let free = wait_until(TIMEOUT, || spaces.try_wait() || region.ended().is_some());
        assert!(free, "the server took no frame");
        if region.ended().is_some() {
            break;
        }
        let payload = &payload[..payload.len().min(geometry.max_payload())];
        region.write_frame(i as u32 % slots, &header, payload);
        items.post().unwrap();
    }
    let ended = format!("client {pid}: session ");
    let done = wait_until(TIMEOUT, || {
        let log = server.stderr();
        log[before..].contains("victim.bin") || log[before..].contains(&ended)
    });
    assert!(done, "the server never ended the file or the session\n{}", server.stderr());
    let close = Msg::Close { client_pid: pid, region: names.region.clone() };
    let _ = mq.send(0, &close.encode().unwrap());
}

/// Garbage in an upload session's ring (a header of noise, a frame of
/// another request, a fetch's frame kind, more bytes than announced, a
/// wrong checksum): the server logs it, keeps nothing, and goes on
/// serving other clients.
#[test]
fn garbage_frames_in_an_upload_ring_leave_nothing_and_the_server_serves_on() {
    let end = |count: u64, checksum: u64| {
        let mut payload = Vec::new();
        Reply::End { count, checksum }.encode_payload(&mut payload);
        frame(FrameKind::End, 1, payload)
    };
    let start = |size: u64| start_frame(size, StartFlags::NONE);
    let long_header = {
        let mut h = FrameHeader { kind: FrameKind::Data, len: 8, seq: 1 }.encode();
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        (h, vec![])
    };
    let cases: Vec<(&str, Vec<RawFrame>)> = vec![
        ("garbage header", vec![start(4), ([0xee; FRAME_HEADER_LEN], vec![])]),
        ("length over the slot", vec![start(4), long_header]),
        ("another request's frame", vec![start(4), frame(FrameKind::Data, 9, vec![1; 4])]),
        ("data before the Start", vec![frame(FrameKind::Data, 1, vec![1; 4]), end(4, 0)]),
        ("a second Start", vec![start(4), start(4)]),
        ("a Start that resumes", vec![start_frame(4, StartFlags::FROM_OFFSET)]),
        ("more bytes than announced", vec![start(4), frame(FrameKind::Data, 1, vec![1; 100]), end(100, 0)]),
        ("a wrong checksum", vec![start(4), frame(FrameKind::Data, 1, vec![1; 4]), end(4, 12345)]),
        (
            "an end of garbage",
            vec![start(4), frame(FrameKind::Data, 1, vec![1; 4]), frame(FrameKind::End, 1, vec![7; 3])],
        ),
    ];
    let env = TestEnv::new("put_garbage");
    let src = sources(&env);
    let mut server = accepting(&env, &[]);
    for (i, (what, frames)) in cases.into_iter().enumerate() {
        hostile_upload(&env, &server, frames);
        assert!(env.out_entries().is_empty(), "{what}: the accept dir holds {:?}", env.out_entries());
        assert!(server.is_running(), "{what}: the server died\n{}", server.snapshot());
        // Another client is served meanwhile.
        let good = src.join(format!("good{i}"));
        fs::write(&good, what.as_bytes()).unwrap();
        env.run_client(&["--put", s(&good)]).assert_code(0);
        fs::remove_file(env.in_out(&format!("good{i}"))).unwrap();
    }
    let log = server.stderr();
    let me = format!("client {}", std::process::id());
    assert!(log.lines().filter(|l| l.contains(&me)).count() >= 7, "each case logged\n{log}");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// An upload interrupted after its every byte and its end left, before the
/// server's answer came: the server may still store it, and here does (it
/// is stopped as it names the file, and goes on once the client has
/// gone), so the client says that it may have, not that nothing was kept:
/// `FILE: unconfirmed: all 6 bytes sent; the server's answer did not come:
/// interrupted; it may have stored it as a.txt`, exit 130 as for any
/// interrupted run, `"result": "unconfirmed"` with `--json`. Before:
/// `cut off after 6 B of 6 B: interrupted; nothing kept`, while the
/// server's log said `a.txt: received 6 bytes` and the file was there.
#[test]
#[cfg_attr(not(tests_with_strace), ignore = "needs strace: stops the server as it names the upload")]
fn an_upload_interrupted_before_the_servers_answer_may_have_been_stored() {
    let env = TestEnv::new("put_unanswered");
    let local = sources(&env).join("a.txt");
    fs::write(&local, b"hello\n").unwrap();
    for json in [false, true] {
        // The server names an upload with linkat(2) once its bytes checked
        // out, then answers: stopped there, it has stored the file and not
        // yet answered.
        let mut cmd = command(SERVER, Some(&env.names));
        cmd.args(["--root", s(env.root()), "--persistent", "--accept", s(env.out())]).current_dir(env.cwd());
        let mut server = Proc::spawn(stopped_at_syscall(&cmd, "linkat"), Some(&env.names));
        wait_for_queue(&env.names, &mut server);
        let stopped = TracedChild::of(&server);
        let mut args = vec!["--put", s(&local)];
        if json {
            args.push("--json");
        }
        let mut client = env.client(&args);
        let held = wait_until(TIMEOUT, || stopped.is_stopped() && env.in_out("a.txt").exists());
        assert!(held, "the server never stopped as it named the file\n{}", server.snapshot());
        client.signal(Signal::SIGINT);
        let done = client.finish(TIMEOUT);
        done.assert_code(130).check(!done.stdout.contains("nothing kept"), "not said to be kept nowhere");
        if json {
            done.check(
                done.stdout.contains(r#""result":"unconfirmed","bytes":6"#),
                "unconfirmed, 6 bytes sent",
            )
            .check(done.stdout.contains("it may have stored it as a.txt"), "the message says so");
        } else {
            done.assert_stdout_lines(&[format!(
                "{}: unconfirmed: all 6 bytes sent; the server's answer did not come: interrupted; \
                 it may have stored it as a.txt",
                s(&local)
            )]);
        }
        // It had: the server goes on and keeps the file, whole.
        stopped.signal(Signal::SIGCONT);
        let logged = wait_until(TIMEOUT, || server.stderr().contains("a.txt: received 6 bytes"));
        assert!(logged, "the server did not store it\n{}", server.snapshot());
        assert_same_file(&local, &env.in_out("a.txt"));
        env.stop_server(&mut server);
        fs::remove_file(env.in_out("a.txt")).unwrap();
    }
    env.assert_no_leftovers();
}
