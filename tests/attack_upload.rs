//! Attacks on uploads (`shm_client --put` into `shm_server --accept DIR`)
//! from the outside: odd targets, stopped and racing clients, a huge file,
//! a full file system.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use shmxfer::testing::names::SessionNames;
use shmxfer::testing::protocol::{
    Command as Msg, FrameHeader, FrameKind, PutFlags, Reply, SessionKind, StartFlags, FRAME_HEADER_LEN,
};
use shmxfer::testing::shm_region::{Geometry, Region, Semaphore};

use crate::util::{
    assert_same_file, wait_until, write_random_file, Proc, TestEnv, BIG, BIG_TIMEOUT, CLIENT, DETECT, MIB,
    SERVER, SLACK, TIMEOUT,
};

fn sources(env: &TestEnv) -> PathBuf {
    let dir = env.tmp().join("src");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn accepting(env: &TestEnv, extra: &[&str]) -> Proc {
    let mut args = vec!["--persistent", "--accept", s(env.out())];
    args.extend_from_slice(extra);
    env.ready_server(&args)
}

/// A directory at the target name: refused as a directory at once (the
/// data is not sent), the directory and its contents left as they were.
#[test]
fn put_onto_an_existing_directory_is_refused_as_a_directory() {
    let env = TestEnv::new("put_onto_dir");
    let src = sources(&env);
    fs::write(src.join("d"), b"not a dir\n").unwrap();
    fs::create_dir(env.in_out("d")).unwrap();
    fs::write(env.in_out("d/inside"), b"kept\n").unwrap();
    let mut server = accepting(&env, &[]);
    let d = s(&src.join("d")).to_owned();
    for opts in [&[][..], &["--no-clobber"][..]] {
        let mut args = opts.to_vec();
        args.extend(["--put", &d]);
        let done = env.run_client(&args);
        done.assert_code(1)
            .check(done.stdout.contains("refused by server"), "refused, not failed after the data")
            .check(done.stdout.contains("a directory has that name on the server"), "says why");
    }
    assert!(env.in_out("d").is_dir());
    assert_eq!(fs::read(env.in_out("d/inside")).unwrap(), b"kept\n");
    assert_eq!(env.out_entries(), ["d"], "no temporary name left");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A FIFO at the target name is never opened (no hang) nor replaced: the
/// upload is refused, and skipped with `--no-clobber`.
#[test]
fn put_onto_a_fifo_never_opens_nor_replaces_it() {
    let env = TestEnv::new("put_onto_fifo");
    let src = sources(&env);
    fs::write(src.join("p"), b"over the fifo\n").unwrap();
    nix::unistd::mkfifo(&env.in_out("p"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut server = accepting(&env, &[]);
    let p = s(&src.join("p")).to_owned();
    let kept = env.run_client(&["--no-clobber", "--put", &p]);
    kept.assert_code(0).check(kept.stdout.contains("skipped: exists on the server"), "kept");
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(env.in_out("p")).unwrap().file_type().is_fifo());
    let refused = env.run_client(&["--put", &p]);
    refused.assert_code(1).check(refused.stdout.contains("refused by server"), "refused");
    assert!(fs::symlink_metadata(env.in_out("p")).unwrap().file_type().is_fifo(), "still the FIFO");
    assert_eq!(env.out_entries(), ["p"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A regular file where a directory of `--to` should be, a name too long
/// for the file system, and a name that is not UTF-8.
#[test]
fn put_odd_names_are_refused_or_kept_as_bytes() {
    let env = TestEnv::new("put_odd_names");
    let src = sources(&env);
    fs::write(src.join("x"), b"x\n").unwrap();
    fs::write(env.in_out("file"), b"a file\n").unwrap();
    let odd = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::write(&odd, b"latin-1\n").unwrap();
    let mut server = accepting(&env, &[]);
    let x = s(&src.join("x")).to_owned();
    let under_file = env.run_client(&["--put", &x, "--to", "file"]);
    under_file.assert_code(1).check(under_file.stdout.contains("refused by server"), "refused");
    let long = "n".repeat(300);
    let too_long = env.run_client(&["--put", &x, "--to", &long]);
    too_long.assert_code(1).check(too_long.stdout.contains("a name too long"), "says why");
    let mut cmd = env.client_cmd(&[]);
    cmd.arg("--put").arg(&odd);
    Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT).assert_code(0);
    assert_eq!(fs::read(env.out().join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap(), b"latin-1\n");
    assert_eq!(fs::read(env.in_out("file")).unwrap(), b"a file\n");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
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

/// An upload into a full file system (a 1 MiB tmpfs as the accept dir, in
/// a mount namespace of its own): the file fails with "ran out of room",
/// nothing is left in the directory, the server keeps running, and a
/// small file still fits afterwards. The failed write is answered at once,
/// so the client does not stream the rest of the file.
#[test]
fn put_into_a_full_file_system_fails_and_leaves_nothing() {
    full_disk_put("put_full_disk", false);
}

/// The relay twin: the same upload through `-H` (a remote shell that runs
/// the relay here), answered at the failed write through the relay.
#[test]
fn put_through_a_relay_into_a_full_file_system_fails_and_leaves_nothing() {
    full_disk_put("put_full_disk_relay", true);
}

/// Uploads 16 MiB into a 1 MiB tmpfs `--accept` directory (in a private
/// mount namespace), then a small file; through a relay when `relayed`.
fn full_disk_put(test: &str, relayed: bool) {
    let env = TestEnv::new(test);
    let src = sources(&env);
    let rsh = env.tmp().join("rsh");
    fs::write(&rsh, "#!/bin/sh\nshift\nexec \"$@\"\n").unwrap();
    fs::set_permissions(&rsh, fs::Permissions::from_mode(0o755)).unwrap();
    let remote =
        if relayed { format!("-H h --rsh {} --remote-client {CLIENT}", s(&rsh)) } else { String::new() };
    write_random_file(&src.join("big.bin"), 16 * MIB, 31);
    fs::write(src.join("small"), b"fits\n").unwrap();
    let script = r#"
        mount -t tmpfs -o size=1m none "$OUT" || exit 90
        "$SERVER" --queue "$Q" --persistent --accept "$OUT" --root "$ROOT" 2>"$LOG" &
        spid=$!
        i=0
        while [ ! -e "/dev/shm/$STEM.lock" ]; do
            sleep 0.05; i=$((i + 1)); [ $i -gt 600 ] && exit 91
        done
        sleep 0.3
        "$CLIENT" --queue "$Q" --wait 5 $REMOTE --put "$SRC/big.bin"
        echo "big-exit=$?"
        for e in "$OUT"/* "$OUT"/.[!.]*; do [ -e "$e" ] && echo "left=${e#$OUT/}"; done
        "$CLIENT" --queue "$Q" --wait 5 $REMOTE --put "$SRC/small"
        echo "small-exit=$?"
        for e in "$OUT"/* "$OUT"/.[!.]*; do [ -e "$e" ] && echo "after=${e#$OUT/}"; done
        kill -TERM $spid
        wait $spid
        echo "server-exit=$?"
        sed -n 's/.*upload failed after \([0-9]*\) bytes.*/failed-after=\1/p' "$LOG"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .env("SERVER", SERVER)
        .env("CLIENT", CLIENT)
        .env("Q", env.names.queue())
        .env("STEM", env.names.stem())
        .env("ROOT", env.root())
        .env("OUT", env.out())
        .env("SRC", &src)
        .env("LOG", env.tmp().join("server.log"))
        .env("REMOTE", remote)
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    done.assert_code(0);
    let value = |key: &str| done.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
    assert_eq!(value("big-exit=").as_deref(), Some("1"), "{done}");
    done.check(done.stdout.contains("ran out of room"), "the client says the server's disk is full");
    let lines = |key: &str| done.stdout.lines().filter_map(|l| l.strip_prefix(key)).collect::<Vec<_>>();
    assert!(lines("left=").is_empty(), "nothing left in the full directory\n{done}");
    assert_eq!(value("small-exit=").as_deref(), Some("0"), "{done}");
    assert_eq!(lines("after="), ["small"], "{done}");
    assert_eq!(value("server-exit=").as_deref(), Some("0"), "{done}");
    // Answered at the failed write: the client stops sending the rest.
    let after: u64 = value("failed-after=").and_then(|v| v.parse().ok()).expect("the failure logged");
    assert!(after < 4 * MIB, "{after} bytes streamed into a full disk of 1 MiB\n{done}");
    env.assert_no_leftovers();
}

/// Stops the client mid-upload, lets `change` alter its source, resumes
/// it: the file fails as changed while it was sent, the server keeps
/// nothing under its name and the session goes on.
fn changed_upload_fails(test: &str, seed: u64, change: impl FnOnce(&Path)) {
    let env = TestEnv::new(test);
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, BIG, seed);
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--put", s(&big), s(&small)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    // Past the granularity of file times.
    std::thread::sleep(Duration::from_millis(50));
    // Another process writes the file: `change` runs in a child of its own.
    change(&big);
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(1)
        .check(done.stdout.contains(&format!("{}: failed: ", big.display())), "the file fails")
        .check(done.stdout.contains("changed while it was sent"), "as changed while it was sent")
        .check(done.stdout.contains("sent 6 bytes → small"), "the session goes on");
    assert_eq!(env.out_entries(), ["small"], "nothing kept under the changed file's name");
    assert!(server.open_files_under(env.out()).is_empty(), "the server holds nothing");
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains("big.bin: upload failed after ") && log.contains("changed"), "logged\n{log}");
    env.assert_no_leftovers();
}

fn run_ok(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}: {status}");
}

#[test]
fn a_file_rewritten_in_place_while_it_is_uploaded_fails_and_leaves_nothing() {
    changed_upload_fails("put_rewritten", 41, |path| {
        // Same size, other bytes, from another process.
        run_ok(
            Command::new("dd")
                .args(["if=/dev/zero", "bs=4096", "count=1", "conv=notrunc", "status=none"])
                .arg(format!("of={}", path.display())),
        );
    });
}

#[test]
fn a_file_truncated_while_it_is_uploaded_fails_and_leaves_nothing() {
    changed_upload_fails("put_truncated", 42, |path| {
        run_ok(Command::new("truncate").args(["-s", "1M"]).arg(path));
    });
}

/// A server stopped (SIGSTOP) mid-upload: the client gives up at its
/// stall timeout with exit 4 and removes its own objects; the server,
/// resumed, keeps nothing and serves the next client.
#[test]
fn a_server_stopped_mid_upload_ends_the_client_at_its_stall_timeout() {
    let env = TestEnv::new("put_server_stopped");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, BIG, 43);
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--stall-timeout", "1", "--put", s(&big)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    server.signal(Signal::SIGSTOP);
    let stopped = std::time::Instant::now();
    let done = client.finish(TIMEOUT);
    let took = stopped.elapsed();
    done.assert_code(4).check(done.stderr.contains("stall"), "the client says the session stalled");
    assert!(took >= Duration::from_millis(500), "gave up after {took:?}, before the stall timeout\n{done}");
    assert!(took <= Duration::from_secs(1) + SLACK, "took {took:?} to give up\n{done}");
    let pid = format!(".{}.", client.pid());
    let own: Vec<String> = env.names.shm_entries().into_iter().filter(|e| e.contains(&pid)).collect();
    assert!(own.is_empty(), "the client's objects are gone: {own:?}");
    server.signal(Signal::SIGCONT);
    assert!(
        wait_until(DETECT + SLACK, || server.open_files_under(env.out()).is_empty()),
        "the resumed server dropped the file it was receiving"
    );
    assert!(env.out_entries().is_empty(), "nothing under the final name: {:?}", env.out_entries());
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    env.run_client(&["--put", s(&small)]).assert_code(0);
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

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owner_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().uid()
}

fn ino_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().ino()
}

/// Stored files: setuid, setgid and sticky stripped; a file of another
/// user (world-writable) under the target name lends the new file neither
/// its owner nor its mode, and `--no-clobber` keeps it as it was.
#[test]
fn put_over_another_users_file_takes_neither_its_owner_nor_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    if !crate::util::other_user_or_skip("another user's file under the target name") {
        return;
    }
    let env = TestEnv::new("put_perm_other");
    let src = sources(&env);
    let suid = src.join("suid");
    fs::write(&suid, b"setuid source\n").unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o6755)).unwrap();
    let theirs = src.join("theirs");
    fs::write(&theirs, b"mine now\n").unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o640)).unwrap();
    let planted = env.in_out("theirs");
    fs::write(&planted, b"planted by nobody\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(crate::util::NOBODY), Some(crate::util::NOBODY)).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o4777)).unwrap();
    let mut server = accepting(&env, &[]);
    let kept = env.run_client(&["--no-clobber", "--put", s(&theirs)]);
    kept.assert_code(0).check(kept.stdout.contains("skipped: exists on the server"), "kept");
    assert_eq!(fs::read(&planted).unwrap(), b"planted by nobody\n");
    assert_eq!((owner_of(&planted), mode_of(&planted)), (crate::util::NOBODY, 0o4777));
    env.run_client(&["--put", s(&suid), s(&theirs)]).assert_code(0);
    assert_eq!(mode_of(&env.in_out("suid")) & 0o7000, 0, "no setuid, setgid or sticky");
    assert_eq!(fs::read(&planted).unwrap(), b"mine now\n");
    assert_eq!(owner_of(&planted), 0, "the new file is the server's");
    let mode = mode_of(&planted);
    assert_eq!(mode & 0o7022, 0, "{mode:o}: the other user's world-writable mode is not taken");
    assert_eq!(env.out_entries(), ["suid", "theirs"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A hard link to a file outside the accept dir under the target name:
/// replacing it replaces the name, never writes through the link; with
/// `--no-clobber` the link stays as it was.
#[test]
fn put_over_a_hard_link_to_an_outside_file_never_writes_through_it() {
    let env = TestEnv::new("put_hardlink");
    let src = sources(&env);
    let outside = env.tmp().join("outside");
    fs::create_dir(&outside).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, b"outside, untouched\n").unwrap();
    let linked = env.in_out("linked");
    fs::hard_link(&secret, &linked).unwrap();
    let new = src.join("linked");
    fs::write(&new, b"the upload\n").unwrap();
    let mut server = accepting(&env, &[]);
    env.run_client(&["--no-clobber", "--put", s(&new)]).assert_code(0);
    assert_eq!(ino_of(&linked), ino_of(&secret), "--no-clobber keeps the link");
    env.run_client(&["--put", s(&new)]).assert_code(0);
    assert_eq!(fs::read(&secret).unwrap(), b"outside, untouched\n");
    assert_eq!(fs::read(&linked).unwrap(), b"the upload\n");
    assert_ne!(ino_of(&linked), ino_of(&secret));
    assert_eq!(env.out_entries(), ["linked"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// Loops until `stop`, swapping `dir` for a symlink to `outside` and back
/// (the real directory parked beside it under `parked`).
fn swap_for_symlink(dir: PathBuf, parked: PathBuf, outside: PathBuf, stop: Arc<AtomicBool>) -> usize {
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        if fs::rename(&dir, &parked).is_ok() {
            let _ = std::os::unix::fs::symlink(&outside, &dir);
            std::thread::yield_now();
            let _ = fs::remove_file(&dir);
            let _ = fs::rename(&parked, &dir);
        }
        rounds += 1;
    }
    rounds
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Another process swaps a directory of the target path for a symlink to
/// outside, over and over, while files are put below it: nothing lands
/// outside, every file said sent is in the accept dir, whole, and every
/// other is refused by the server.
#[test]
fn a_directory_swapped_for_a_symlink_during_uploads_never_leads_outside() {
    let env = TestEnv::new("put_swap_race");
    let src = sources(&env);
    let outside = env.tmp().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::create_dir_all(env.in_out("in/sub")).unwrap();
    let mut files = Vec::new();
    for i in 0..40 {
        let f = src.join(format!("f{i:02}"));
        write_random_file(&f, 20_000 + i * 1000, 100 + i);
        files.push(s(&f).to_owned());
    }
    let mut server = accepting(&env, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (dir, parked) = (env.in_out("in/sub"), env.in_out("in/parked"));
        let (outside, stop) = (outside.clone(), Arc::clone(&stop));
        std::thread::spawn(move || swap_for_symlink(dir, parked, outside, stop))
    };
    let mut args = vec!["--to", "in/sub", "--put"];
    args.extend(files.iter().map(String::as_str));
    let mut rounds = 0;
    for _ in 0..3 {
        let done = env.run_client(&args);
        done.check(matches!(done.code(), Some(0 | 1)), "each file answered");
        for line in done.stdout.lines() {
            let sent = line.contains(": sent ");
            let refused = line.contains("refused by server") && line.contains("outside");
            let log = server.stderr();
            let why: Vec<&str> = log.lines().filter(|l| l.contains("upload failed")).collect();
            assert!(sent || refused, "neither sent nor refused as outside: {line}\n{done}\n{why:#?}");
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(
        crate::util::dir_entries(&outside).is_empty(),
        "written outside: {:?}",
        crate::util::dir_entries(&outside)
    );
    // Every name holds a whole file (the last one stored).
    let sub = env.in_out("in/sub");
    for i in 0..40u64 {
        let name = format!("f{i:02}");
        if sub.join(&name).exists() {
            assert_same_file(&src.join(&name), &sub.join(&name));
        }
    }
    let stray: Vec<String> =
        crate::util::dir_entries(&sub).into_iter().filter(|e| !e.starts_with('f')).collect();
    assert!(stray.is_empty(), "temporary names left: {stray:?}");
    println!("{rounds} runs, {swaps} swaps");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The accept dir renamed away while a file is being received (and
/// another directory made at its path): the file is not stored in the
/// moved directory nor in the new one, and the client is told it would
/// land outside the server's --accept directory.
#[test]
fn the_accept_dir_renamed_away_mid_upload_keeps_nothing_there() {
    let env = TestEnv::new("put_accept_moved");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, 8 * MIB, 51);
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--put", s(&big)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    let moved = env.tmp().join("moved");
    fs::rename(env.out(), &moved).unwrap();
    fs::create_dir(env.out()).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    done.assert_code(1).check(done.stdout.contains("refused by server"), "refused");
    assert!(
        crate::util::dir_entries(&moved).is_empty(),
        "stored in the moved dir: {:?}",
        crate::util::dir_entries(&moved)
    );
    assert!(env.out_entries().is_empty(), "{:?}", env.out_entries());
    // The server stays up and answers the next client the same way.
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    let next = env.run_client(&["--put", s(&small)]);
    next.assert_code(1).check(next.stdout.contains("refused by server"), "refused");
    assert!(crate::util::dir_entries(&moved).is_empty());
    assert!(server.is_running());
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains("--accept directory"), "the log says why\n{log}");
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

/// A `-r` tree of odd entries: a symlink out, a FIFO, a tree deeper than
/// the walk descends, a path longer than a request carries, names with a
/// newline, not UTF-8, of 255 bytes. Each entry not sent is named, the
/// run goes on to the last file, exits 1, and the server holds exactly
/// the files said sent.
#[test]
fn put_r_of_odd_entries_names_each_skip_and_sends_the_rest() {
    let env = TestEnv::new("put_r_odd");
    let src = sources(&env);
    let tree = src.join("t");
    let outside = env.tmp().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside\n").unwrap();
    fs::create_dir_all(&tree).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("out")).unwrap();
    nix::unistd::mkfifo(&tree.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut deep = tree.join("deep");
    for _ in 0..70 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"too deep\n").unwrap();
    let mut long = tree.join("long");
    for _ in 0..4 {
        long.push("l".repeat(255));
    }
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("far"), b"too long a path\n").unwrap();
    fs::write(tree.join("new\nline"), b"nl\n").unwrap();
    fs::write(tree.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"latin\n").unwrap();
    fs::write(tree.join("n".repeat(255)), b"255\n").unwrap();
    fs::write(tree.join("z_last"), b"last\n").unwrap();
    let mut server = accepting(&env, &[]);
    let done = env.run_client(&["--put", "-r", s(&tree)]);
    done.assert_code(1);
    for skipped in
        ["t/out: skipped: a symbolic link", "t/fifo: skipped: a FIFO", "deeper than", "longer than the 1024"]
    {
        done.check(done.stderr.contains(skipped), skipped);
    }
    done.check(done.stdout.contains("sent 5 bytes → t/z_last"), "the run goes on to the last file");
    let got = env.in_out("t");
    assert_eq!(fs::read(got.join("new\nline")).unwrap(), b"nl\n");
    assert_eq!(fs::read(got.join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap(), b"latin\n");
    assert_eq!(fs::read(got.join("n".repeat(255))).unwrap(), b"255\n");
    assert!(!got.join("out").exists() && !got.join("fifo").exists() && !got.join("long").exists());
    let sent = done.stdout.lines().filter(|l| l.contains(": sent ")).count();
    assert_eq!(sent, 4, "{done}");
    let walk = Command::new("find").arg(&got).args(["-type", "f"]).output().unwrap();
    assert_eq!(
        walk.stdout.iter().filter(|&&b| b == b'\0' || b == b'\n').count(),
        5,
        "the newline name counts twice"
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A `-r` tree changed between the walk and the sending of its files (the
/// client stopped while its first, big file goes): a directory swapped
/// for a symlink out of the tree and one to another directory of the tree,
/// a file removed, a file grown. Nothing is read through a symlink, every
/// file not sent is named, exit 1, and the grown file's line reports the
/// bytes that were sent and stored.
#[test]
fn put_r_of_a_tree_changed_under_the_walk_follows_no_symlink() {
    let env = TestEnv::new("put_r_changed");
    let src = sources(&env);
    let tree = src.join("t");
    let outside = env.tmp().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("x"), b"outside\n").unwrap();
    for d in ["b/sub", "e/sub", "f", "c", "d"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    write_random_file(&tree.join("a.bin"), 8 * MIB, 61);
    fs::write(tree.join("b/sub/x"), b"b's own\n").unwrap();
    fs::write(tree.join("e/sub/x"), b"e's own\n").unwrap();
    fs::write(tree.join("f/x"), b"f's, not e's\n").unwrap();
    fs::write(tree.join("c/gone"), b"soon gone\n").unwrap();
    fs::write(tree.join("d/grow"), b"short\n").unwrap();
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--put", "-r", s(&tree)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "a.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    fs::rename(tree.join("b/sub"), tree.join("b/parked")).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("b/sub")).unwrap();
    fs::rename(tree.join("e/sub"), tree.join("e/parked")).unwrap();
    std::os::unix::fs::symlink("../f", tree.join("e/sub")).unwrap();
    fs::remove_file(tree.join("c/gone")).unwrap();
    fs::write(tree.join("d/grow"), b"grown much longer\n").unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    done.assert_code(1);
    for name in ["t/b/sub/x", "t/e/sub/x", "t/c/gone"] {
        done.check(done.stderr.contains(&format!("{name}: skipped")), name);
    }
    done.check(done.stdout.contains("sent 18 bytes → t/d/grow"), "the bytes that were sent");
    assert_eq!(fs::read(env.in_out("t/d/grow")).unwrap(), b"grown much longer\n");
    for name in ["t/b/sub/x", "t/e/sub/x", "t/c/gone"] {
        assert!(!env.in_out(name).exists(), "{name} stored: {:?}", fs::read(env.in_out(name)));
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A `--to` whose directory is a regular file, or a symlink, on the
/// server: the client's line gives the true reason (not followed), not
/// only "outside the --accept directory".
#[test]
fn put_to_a_file_or_a_symlink_says_the_directory_is_not_followed() {
    let env = TestEnv::new("put_to_not_dir");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"a\n").unwrap();
    fs::write(env.in_out("x"), b"a file\n").unwrap();
    let elsewhere = env.tmp().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.in_out("trap")).unwrap();
    let mut server = accepting(&env, &[]);
    let a = s(&src.join("a.txt")).to_owned();
    for to in ["x", "trap"] {
        let done = env.run_client(&["--put", &a, "--to", to]);
        done.assert_code(1)
            .check(done.stdout.contains(&format!("refused by server: {to}/a.txt: ")), "refused")
            .check(done.stdout.contains("a symlink or not a directory"), "the true reason");
    }
    assert_eq!(fs::read(env.in_out("x")).unwrap(), b"a file\n");
    assert!(crate::util::dir_entries(&elsewhere).is_empty(), "nothing written through the symlink");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}
