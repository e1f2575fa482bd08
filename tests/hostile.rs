//! Compound faults, servers that come and go, and hostile local users: each
//! case is played from the outside with the real binaries, and the test
//! asserts what must hold: no wait without a bound, nothing left behind,
//! only one's own objects, output the user can trust, and no changed source
//! passing as verified.
//!
//! Another user is uid/gid 65534 through `setpriv`; those tests, and those
//! that need a private mount namespace for a full `/dev/shm`, print
//! "skipped: not root" and return when not run as root.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    as_nobody, assert_no_leftovers, assert_same_file, command, dir_entries, holds_for, is_root, root_or_skip,
    wait_for_queue, wait_until, Finished, Names, Proc, Signal, TestEnv, BIG, BIG_TIMEOUT, CLIENT,
    COLLECT_EVERY, DETECT, NOBODY, SERVER, SLACK, TIMEOUT,
};

/// The stall timeout the tests use, in seconds.
const STALL: &str = "2";
const STALL_TIME: Duration = Duration::from_secs(2);
/// The session-start limit the tests give the client (`--attach-timeout`;
/// 10 s by default): a live server must take a new session within this long.
const ATTACH: &str = "1";
const ATTACH_TIME: Duration = Duration::from_secs(1);
/// A pid that names objects no live process holds.
const DEAD_PID: u32 = 999_999;

/// Runs `cmd` to completion (at most `TIMEOUT`) and fails unless it exits 0.
#[track_caller]
fn run_ok(mut cmd: Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

/// Keeps the names of `env` from being cleaned up while the test runs: a
/// [`Proc`] of these names removes whatever is left under them when it is
/// the last one dropped, and a test that plants another user's objects
/// must see what the programs do to them, not what the fixture does.
fn hold_names(env: &TestEnv) -> Proc {
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    Proc::spawn(cmd, Some(&env.names))
}

/// Path of `name` in `/dev/shm`.
fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// A FIFO at `/dev/shm/<name>`, made by another user when we are root.
fn foreign_fifo(name: &str) -> PathBuf {
    let path = shm_path(name);
    let mut cmd = Command::new("mkfifo");
    cmd.arg("-m").arg("0666").arg(&path);
    run_ok(if is_root() { as_nobody(&cmd) } else { cmd });
    path
}

/// Session object names of a client `pid` of `names`' queue: region, items,
/// spaces, as they appear in `/dev/shm`.
fn session_entries(names: &Names, pid: u32, hex: &str) -> [String; 3] {
    let region = format!("{}.{pid}.{hex}", names.stem());
    [format!("sem.{region}.items"), format!("sem.{region}.spaces"), region]
}

/// A fresh directory `name` in the test's temporary directory.
fn new_dir(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.tmp().join(name);
    fs::create_dir(&dir).expect("create dir");
    dir
}

/// Stops a persistent server through the client and checks it exited 0.
#[track_caller]
fn stop(env: &TestEnv, server: &mut Proc) {
    env.stop_server(server);
}

/// Stops a server with SIGTERM and checks it exited 0.
#[track_caller]
fn terminate(server: &mut Proc) {
    server.signal(Signal::SIGCONT);
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
}

/// Fills the queue of `names` with small garbage messages until it is
/// full; returns how many went in.
fn fill_queue(names: &Names) -> usize {
    let mq = posixmq::OpenOptions::writeonly().nonblocking().open(names.queue()).expect("open the queue");
    let mut sent = 0;
    loop {
        match mq.send(0, b"filler") {
            Ok(()) => sent += 1,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return sent,
            Err(e) => panic!("filling {}: {e}", names.queue()),
        }
    }
}

/// A persistent server of user [`NOBODY`] on the test's queue, once its
/// queue exists (the test's directories opened to that user first).
fn persistent_server_of_another_user(env: &TestEnv) -> Proc {
    env.open_to_others();
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
    let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    server
}

/// Fails unless `done` exited with `code` within `bound`.
#[track_caller]
fn assert_exit_within(done: &Finished, code: i32, bound: Duration) {
    done.assert_code(code);
    assert!(done.elapsed <= bound, "took {:?}, allowed {bound:?}\n{done}", done.elapsed);
}

/// Fails unless `done` found no server it may use (exit 3, or 4 for an
/// object it refuses) within `bound`.
#[track_caller]
fn assert_no_server(done: &Finished, bound: Duration) {
    assert!(matches!(done.code(), Some(3) | Some(4)), "expected exit 3 or 4\n{done}");
    assert!(done.elapsed <= bound, "took {:?}, allowed {bound:?}\n{done}", done.elapsed);
}

/// Fails unless the out dir of `env` is empty.
#[track_caller]
fn assert_out_empty(env: &TestEnv) {
    assert!(env.out_entries().is_empty(), "out dir holds {:?}", env.out_entries());
}

/// Waits until no client region of `names` is left.
#[track_caller]
fn assert_client_objects_gone(names: &Names) {
    let gone = wait_until(TIMEOUT, || names.client_regions().is_empty());
    assert!(gone, "client objects left: {:?}", names.shm_entries());
}

// ---------------------------------------------------------------------------
// Hangs
// ---------------------------------------------------------------------------

/// Replaced server: the client's server is SIGKILLed and a new server takes the
/// queue at once. The new server holds the queue's lock, but the session
/// belonged to the dead one: the client must notice it died.
#[test]
fn client_whose_server_was_replaced_by_a_new_one_notices_its_server_died() {
    let env = TestEnv::new("replaced_server");
    env.create("small.txt", b"small\n");
    let (mut first, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 101);
    // Freeze the client so that the new server is in place before it can
    // look at its server again.
    client.signal(Signal::SIGSTOP);
    first.kill();
    let mut second = env.ready_server(&["--persistent"]);
    client.signal(Signal::SIGCONT);
    let resumed = Instant::now();
    let done = client.finish(TIMEOUT);
    let took = resumed.elapsed();
    done.assert_code(4).check(done.stderr.contains("server"), "the client says its server is gone");
    assert!(took <= DETECT, "client took {took:?} to notice its server died\n{done}");
    assert_out_empty(&env);
    assert_client_objects_gone(&env.names);
    // The new server is undisturbed.
    env.fetch(&["small.txt"]).assert_code(0);
    env.assert_delivered("small.txt");
    stop(&env, &mut second);
    assert_no_leftovers(&env.names);
}

/// Stopped server: a stopped server whose queue is full. The client's send must
/// give up within `--wait` and exit 3.
#[test]
fn full_queue_of_a_stopped_server_ends_the_client_with_exit_3_within_its_wait() {
    let env = TestEnv::new("full_queue_stopped_server");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    server.signal(Signal::SIGSTOP);
    let filled = fill_queue(&env.names);
    assert!(filled > 0, "the queue took no message");
    let done = env.fetch_with(&["--wait", "2"], &["hello.txt"]).finish(TIMEOUT);
    assert_exit_within(&done, 3, Duration::from_secs(2) + SLACK);
    assert_out_empty(&env);
    assert_client_objects_gone(&env.names);
    server.signal(Signal::SIGCONT);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Stopped server, one that belongs to another user.
#[test]
fn full_queue_of_another_users_stopped_server_ends_the_client_within_its_wait() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("full_queue_foreign_server");
    env.create("hello.txt", b"hello\n");
    let mut server = persistent_server_of_another_user(&env);
    server.signal(Signal::SIGSTOP);
    assert!(fill_queue(&env.names) > 0, "the queue took no message");
    // Either the queue stays full for --wait, or the client refuses another
    // user's queue at once: never a wait without a bound.
    let done = env.fetch_with(&["--wait", "2"], &["hello.txt"]).finish(TIMEOUT);
    assert_no_server(&done, Duration::from_secs(2) + SLACK);
    assert_out_empty(&env);
    assert_client_objects_gone(&env.names);
    terminate(&mut server);
    assert_no_leftovers(&env.names);
}

/// Stopped server: a stopped server with room in its queue takes the Open message
/// but never the session: the client gives up within the session-start
/// limit (or its `--wait`), removing its objects.
#[test]
fn stopped_server_that_never_takes_the_session_ends_the_client_within_the_start_limit() {
    let env = TestEnv::new("stopped_server_never_takes_session");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    server.signal(Signal::SIGSTOP);
    let done = env.fetch_with(&["--wait", "2", "--attach-timeout", ATTACH], &["hello.txt"]).finish(TIMEOUT);
    assert!(matches!(done.code(), Some(3) | Some(4)), "expected exit 3 or 4\n{done}");
    assert!(done.elapsed >= ATTACH_TIME, "gave up after {:?}, before the start limit\n{done}", done.elapsed);
    assert!(done.elapsed <= ATTACH_TIME + SLACK, "took {:?}\n{done}", done.elapsed);
    assert_out_empty(&env);
    assert_client_objects_gone(&env.names);
    server.signal(Signal::SIGCONT);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Not a file under our names: another user puts a FIFO where the server's lock belongs. Nobody
/// may block on it: the client reports no server at once, a server refuses
/// the queue, and the FIFO is left alone.
#[test]
fn fifo_in_place_of_the_lock_blocks_neither_client_nor_server() {
    let env = TestEnv::new("fifo_lock");
    let _hold = hold_names(&env);
    env.create("hello.txt", b"hello\n");
    let fifo = foreign_fifo(&format!("{}.lock", env.names.stem()));
    for wait in ["0", "1"] {
        let done = env.fetch_with(&["--wait", wait], &["hello.txt"]).finish(TIMEOUT);
        assert_no_server(&done, Duration::from_secs(1) + SLACK);
    }
    let done = env.server(&[]).finish(TIMEOUT);
    assert_exit_within(&done, 1, SLACK);
    done.check(done.stderr.contains(".lock"), "the server names the object it refuses");
    let kept = fs::symlink_metadata(&fifo).expect("the FIFO is left alone");
    assert!(kept.file_type().is_fifo(), "the FIFO was replaced");
    fs::remove_file(&fifo).unwrap();
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}

/// Not a file under our names: FIFOs named like the lock and like a dead session's objects
/// make `--cleanup` neither hang nor stop: it skips them with a message.
#[test]
fn cleanup_skips_fifos_named_like_objects_without_blocking() {
    let env = TestEnv::new("cleanup_fifos");
    let _hold = hold_names(&env);
    let mut fifos = vec![foreign_fifo(&format!("{}.lock", env.names.stem()))];
    for name in session_entries(&env.names, DEAD_PID, "0123456789abcdef") {
        fifos.push(foreign_fifo(&name));
    }
    let done = env.cleanup().finish(TIMEOUT);
    assert!(done.elapsed <= SLACK, "--cleanup took {:?}\n{done}", done.elapsed);
    done.assert_code(0);
    if is_root() {
        // Another user's objects are never removed.
        for fifo in &fifos {
            assert!(fs::symlink_metadata(fifo).is_ok(), "--cleanup removed another user's {fifo:?}\n{done}");
        }
    }
    for fifo in &fifos {
        let _ = fs::remove_file(fifo);
    }
    assert_no_leftovers(&env.names);
}

/// Not a file under our names: an Open message naming a FIFO (made by another user) does not
/// block the server, which keeps serving.
#[test]
fn open_message_naming_a_fifo_does_not_block_the_server() {
    let env = TestEnv::new("open_names_fifo");
    let _hold = hold_names(&env);
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let pid = std::process::id();
    let hex = "fedcba9876543210";
    let mut fifos = Vec::new();
    for name in session_entries(&env.names, pid, hex) {
        fifos.push(foreign_fifo(&name));
    }
    let region = format!("{}.{pid}.{hex}", env.names.queue());
    let open = shmxfer::testing::protocol::Command::Open {
        client_pid: pid,
        region_size: 4096,
        items: format!("{region}.items"),
        spaces: format!("{region}.spaces"),
        region,
        kind: shmxfer::testing::protocol::SessionKind::Transfer,
    }
    .encode()
    .unwrap();
    let mq = posixmq::OpenOptions::writeonly().open(env.names.queue()).expect("open queue");
    mq.send(0, &open).expect("send open");
    let done = env.fetch_with(&["--wait", "5"], &["hello.txt"]).finish(Duration::from_secs(20));
    done.assert_code(0);
    env.assert_delivered("hello.txt");
    stop(&env, &mut server);
    for fifo in &fifos {
        let _ = fs::remove_file(fifo);
    }
    assert_no_leftovers(&env.names);
}

/// Not a file under our names: a directory named like a dead session makes `--cleanup` neither
/// fail nor skip the real leftovers beside it.
#[test]
fn cleanup_skips_a_directory_named_like_a_session_and_removes_the_real_leftovers() {
    let env = TestEnv::new("cleanup_dir_like_session");
    env.create_random("big.bin", BIG, 103);
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_proc(&["big.bin"]);
    env.wait_receiving(&mut client, "big.bin");
    // Both die before either notices: a queue, a lock, a region and two
    // semaphores stay behind.
    server.signal(Signal::SIGSTOP);
    client.kill();
    server.kill();
    assert_eq!(env.names.client_regions().len(), 1, "{:?}", env.names.shm_entries());
    // Sorted before the real region, so a walk meets it first.
    let dir = shm_path(&format!("{}.{}.0000000000000000", env.names.stem(), DEAD_PID - 1));
    fs::create_dir(&dir).unwrap();
    let done = env.cleanup().finish(TIMEOUT);
    let _ = fs::remove_dir(&dir);
    assert!(done.elapsed <= SLACK, "--cleanup took {:?}\n{done}", done.elapsed);
    done.assert_code(0);
    assert!(!env.names.queue_exists(), "the dead server's queue is left\n{done}");
    assert!(env.names.shm_entries().is_empty(), "left: {:?}\n{done}", env.names.shm_entries());
    assert_no_leftovers(&env.names);
}

/// Stalled peer (`--stall-timeout`): a stopped server holds its client no
/// longer than the stall timeout; the client exits 4 saying so, with no
/// partial file and its objects removed, and the server serves on after
/// SIGCONT.
#[test]
fn stopped_server_ends_its_client_after_the_stall_timeout_with_exit_4() {
    let env = TestEnv::new("stopped_server_stall");
    env.create("small.txt", b"small\n");
    let stall = ["--persistent", "--stall-timeout", STALL];
    let (mut server, mut client) = env.big_transfer_in_flight(&stall, &["--stall-timeout", STALL], 104);
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
    env.fetch(&["small.txt"]).assert_code(0);
    env.assert_delivered("small.txt");
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

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

// ---------------------------------------------------------------------------
// Leaks
// ---------------------------------------------------------------------------

/// Leftovers of the dead: a client SIGKILLed mid-file and its server SIGKILLed before it
/// noticed. The next server on the queue collects what they left, by
/// itself, and logs it.
#[test]
fn next_server_collects_what_a_killed_client_and_its_killed_server_left() {
    let env = TestEnv::new("both_killed_collected");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 106);
    server.signal(Signal::SIGSTOP);
    client.kill();
    server.kill();
    let dead = env.names.client_regions();
    assert_eq!(dead.len(), 1, "{:?}", env.names.shm_entries());
    let mut next = env.ready_server(&["--persistent"]);
    let lock = format!("{}.lock", env.names.stem());
    let collected = wait_until(Duration::from_secs(10), || env.names.shm_entries() == [lock.clone()]);
    assert!(collected, "left: {:?}\n{}", env.names.shm_entries(), next.snapshot());
    // The log line follows the removal.
    let logged = wait_until(TIMEOUT, || next.stderr().contains(&dead[0]));
    assert!(logged, "the server logs what it removed\n{}", next.snapshot());
    stop(&env, &mut next);
    assert_no_leftovers(&env.names);
}

/// Leftovers of the dead: a client SIGKILLed after creating its objects but before its
/// Open message went out (the queue was full). The running server never
/// hears of it, and still collects its objects while it runs.
#[test]
fn running_server_collects_objects_of_a_client_killed_before_it_sent_open() {
    let env = TestEnv::new("killed_before_open");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent", "--collect-every", COLLECT_EVERY]);
    server.signal(Signal::SIGSTOP);
    fill_queue(&env.names);
    let mut client = env.fetch_with(&["--wait", "30"], &["hello.txt"]);
    // region, two semaphores and the server's lock
    let created = wait_until(TIMEOUT, || env.names.shm_entries().len() == 4);
    assert!(created, "the client did not create its objects: {:?}", env.names.shm_entries());
    client.kill();
    server.signal(Signal::SIGCONT);
    let dead = env.names.client_regions();
    assert_eq!(dead.len(), 1);
    // A new session, served, gives the server an occasion to collect.
    let out2 = new_dir(&env, "out2");
    env.fetch_into(&out2, &[], &["hello.txt"]).finish(TIMEOUT).assert_code(0);
    let lock = format!("{}.lock", env.names.stem());
    let collected = wait_until(Duration::from_secs(10), || env.names.shm_entries() == [lock.clone()]);
    assert!(collected, "left: {:?}\n{}", env.names.shm_entries(), server.snapshot());
    // The log line follows the removal.
    let logged = wait_until(TIMEOUT, || server.stderr().contains(&dead[0]));
    assert!(logged, "the server logs what it removed\n{}", server.snapshot());
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Full `/dev/shm`: `/dev/shm` is full (a private mount namespace with a small
/// tmpfs, filled up after the server started). The client's new region
/// reserves its memory, so it gets a clear ENOSPC error, never SIGBUS, and
/// leaves nothing behind.
#[test]
fn full_dev_shm_is_a_clear_error_not_sigbus_and_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("full_dev_shm");
    env.create("hello.txt", b"hello\n");
    let script = r#"
        set -u
        mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 90
        "$SERVER" --queue "$Q" --root "$ROOT" --persistent &
        spid=$!
        i=0
        while [ ! -e "/dev/shm/$STEM.lock" ]; do
            sleep 0.05; i=$((i + 1)); [ $i -gt 600 ] && exit 91
        done
        sleep 0.3
        dd if=/dev/zero of=/dev/shm/filler bs=4096 2>/dev/null
        "$CLIENT" --queue "$Q" -o "$OUT" --wait 5 hello.txt
        echo "client-exit=$?"
        rm -f /dev/shm/filler
        for e in /dev/shm/* /dev/shm/.[!.]*; do [ -e "$e" ] && echo "left=${e#/dev/shm/}"; done
        kill -TERM $spid
        wait $spid
        echo "server-exit=$?"
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
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    done.assert_code(0);
    let value = |key: &str| done.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
    let client_exit: i32 = value("client-exit=").and_then(|v| v.parse().ok()).expect("client exit status");
    assert_ne!(client_exit, 135, "the client died of SIGBUS\n{done}");
    assert!(client_exit != 0 && client_exit < 128, "client exit {client_exit}\n{done}");
    done.check(done.stderr.contains("No space left on device"), "the client names ENOSPC");
    let left: Vec<String> =
        done.stdout.lines().filter_map(|l| l.strip_prefix("left=")).map(str::to_owned).collect();
    let lock = format!("{}.lock", env.names.stem());
    assert_eq!(left, [lock], "left in the full /dev/shm besides the server's lock\n{done}");
    assert_eq!(value("server-exit=").as_deref(), Some("0"), "{done}");
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}

// ---------------------------------------------------------------------------
// Security
// ---------------------------------------------------------------------------

/// Whose lock and queue: another user creates the lock object (mode 0666) before the
/// server starts. The server must not adopt it: it refuses, naming it, and
/// leaves it alone.
#[test]
fn server_never_adopts_a_lock_another_user_created() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("foreign_lock");
    let _hold = hold_names(&env);
    let lock = shm_path(&format!("{}.lock", env.names.stem()));
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("umask 0 && : > \"$1\"").arg("sh").arg(&lock);
    run_ok(as_nobody(&cmd));
    assert_eq!(fs::metadata(&lock).unwrap().uid(), NOBODY);
    let done = env.server(&["--persistent"]).finish(TIMEOUT);
    assert_exit_within(&done, 1, SLACK);
    done.check(done.stderr.contains(".lock"), "the server names the object it refuses");
    let meta = fs::metadata(&lock).expect("the foreign lock is left alone");
    assert_eq!(meta.uid(), NOBODY, "the foreign lock was replaced");
    assert!(!env.names.queue_exists(), "the server created its queue beside a foreign lock");
    fs::remove_file(&lock).unwrap();
    assert_no_leftovers(&env.names);
}

/// Whose lock and queue: the lock of a running server is deleted and a second server
/// starts beside it. When the first exits it must not unlink the second's
/// queue and lock by name.
#[test]
fn server_whose_lock_was_deleted_never_removes_the_objects_of_the_next_server() {
    let env = TestEnv::new("deleted_lock");
    env.create("hello.txt", b"hello\n");
    let mut first = env.ready_server(&["--persistent"]);
    let lock = shm_path(&format!("{}.lock", env.names.stem()));
    fs::remove_file(&lock).unwrap();
    let mut second = env.server(&["--persistent"]);
    let took_over = wait_until(Duration::from_secs(5), || lock.exists() || !second.is_running());
    assert!(took_over, "the second server neither started nor refused\n{}", second.snapshot());
    if !second.is_running() {
        // Refusing is fine too, as long as the first is undisturbed.
        second.finish(TIMEOUT).assert_code(1);
        env.fetch(&["hello.txt"]).assert_code(0);
        stop(&env, &mut first);
        assert_no_leftovers(&env.names);
        return;
    }
    wait_for_queue(&env.names, &mut second);
    // The second server settles before the first goes.
    let settled = holds_for(Duration::from_millis(300), || second.is_running());
    assert!(settled, "the second server exited\n{}", second.snapshot());
    terminate(&mut first);
    assert!(lock.exists(), "the first server unlinked the second server's lock\n{}", first.snapshot());
    assert!(
        env.names.queue_exists(),
        "the first server unlinked the second server's queue\n{}",
        first.snapshot()
    );
    env.fetch(&["hello.txt"]).assert_code(0);
    env.assert_delivered("hello.txt");
    stop(&env, &mut second);
    assert_no_leftovers(&env.names);
}

/// Whose lock and queue: a root client never talks to another user's queue: it says whose
/// it is and exits 3 within its `--wait`.
#[test]
fn root_client_does_not_talk_to_another_users_queue() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("foreign_queue");
    env.create("hello.txt", b"hello\n");
    let mut server = persistent_server_of_another_user(&env);
    let done = env.fetch_with(&["--wait", "2"], &["hello.txt"]).finish(TIMEOUT);
    assert_no_server(&done, Duration::from_secs(2) + SLACK);
    done.check(
        done.stderr.contains(&NOBODY.to_string()) || done.stderr.contains("nobody"),
        "the client says whose queue it is",
    );
    assert_out_empty(&env);
    terminate(&mut server);
    assert_no_leftovers(&env.names);
}

/// Runs a client fetching `files` into `out` under `umask` and checks it
/// delivered them all.
#[track_caller]
fn fetch_with_umask(env: &TestEnv, umask: &str, out: &Path, files: &[&str]) {
    let mut args = vec!["-c", "umask \"$0\" && exec \"$@\"", umask, CLIENT, "--queue", env.names.queue()];
    args.extend(["-o", out.to_str().unwrap()]);
    args.extend_from_slice(files);
    let mut cmd = Command::new("sh");
    cmd.args(&args).env_remove("SHMXFER_QUEUE").current_dir(env.cwd());
    Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT).assert_code(0);
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}")).mode() & 0o7777
}

/// File modes: a new file gets the source's permission bits masked by the
/// umask, never setuid, setgid or sticky; a replaced file keeps its mode,
/// as `cp` does.
#[test]
fn received_files_get_the_source_mode_masked_by_the_umask_and_replaced_ones_keep_theirs() {
    let env = TestEnv::new("received_modes");
    let sources: [(&str, u32); 6] = [
        ("private.txt", 0o600),
        ("script.sh", 0o755),
        ("shared.txt", 0o666),
        ("setuid.bin", 0o4755),
        ("setgid.bin", 0o2750),
        ("sticky.txt", 0o1644),
    ];
    let mut sources = sources.to_vec();
    for (name, mode) in &mut sources {
        let path = env.create(name, name.as_bytes());
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
        // Without privileges the kernel may drop setgid: test what it kept.
        *mode = mode_of(&path);
    }
    let names: Vec<&str> = sources.iter().map(|(n, _)| *n).collect();
    let mut server = env.ready_server(&["--persistent"]);
    for (umask, out) in [("022", new_dir(&env, "out022")), ("077", new_dir(&env, "out077"))] {
        fetch_with_umask(&env, umask, &out, &names);
        let mask = u32::from_str_radix(umask, 8).unwrap();
        for &(name, mode) in &sources {
            assert_same_file(&env.in_root(name), &out.join(name));
            let want = mode & 0o777 & !mask;
            let got = mode_of(&out.join(name));
            assert_eq!(got, want, "{name}: source {mode:o}, umask {umask}: got {got:o}, want {want:o} as cp");
        }
    }
    // Replacing keeps the mode of the file replaced, whatever the source's.
    let out = new_dir(&env, "replaced");
    for (name, mode) in [("private.txt", 0o644), ("shared.txt", 0o600), ("script.sh", 0o700)] {
        let path = out.join(name);
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fetch_with_umask(&env, "022", &out, &["private.txt", "shared.txt", "script.sh"]);
    for (name, mode) in [("private.txt", 0o644), ("shared.txt", 0o600), ("script.sh", 0o700)] {
        assert_same_file(&env.in_root(name), &out.join(name));
        let got = mode_of(&out.join(name));
        assert_eq!(got, mode, "{name}: replaced a {mode:o} file, got {got:o}; cp keeps the mode");
    }
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Output directory swapped: the output directory is swapped for a symlink while a file
/// arrives. The file still lands in the directory the client opened at the
/// start, never in the symlink's target.
#[test]
fn out_dir_swapped_for_a_symlink_mid_transfer_does_not_redirect_the_file() {
    let env = TestEnv::new("out_dir_swapped");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 109);
    client.signal(Signal::SIGSTOP);
    let moved = env.tmp().join("out.moved");
    let elsewhere = new_dir(&env, "elsewhere");
    fs::rename(env.out(), &moved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.out()).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    assert!(
        dir_entries(&elsewhere).is_empty(),
        "the file went through the symlink: {:?}\n{done}",
        dir_entries(&elsewhere)
    );
    done.assert_code(0);
    assert_same_file(&env.in_root("big.bin"), &moved.join("big.bin"));
    assert_eq!(dir_entries(&moved), ["big.bin"]);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

// ---------------------------------------------------------------------------
// Silent wrong copies
// ---------------------------------------------------------------------------

/// Stops a big transfer mid-file, lets `change` alter the source, resumes,
/// and checks the file fails as changed while it was sent, with nothing
/// under its final name.
fn changed_source_fails(test: &str, seed: u64, change: impl FnOnce(&Path)) {
    let env = TestEnv::new(test);
    env.create("small.txt", b"small\n");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], seed);
    client.signal(Signal::SIGSTOP);
    // Past the granularity of file times: time itself is what is waited for.
    thread::sleep(Duration::from_millis(50));
    change(&env.in_root("big.bin"));
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(1).check(done.stdout.contains("changed while it was sent"), "the file fails as changed");
    assert_out_empty(&env);
    // The session goes on: the next file arrives.
    env.fetch(&["small.txt"]).assert_code(0);
    assert_eq!(env.out_entries(), ["small.txt"]);
    assert!(server.stderr().contains("changed"), "the server logs the change\n{}", server.snapshot());
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Source changed while sent: bytes rewritten in place while the file is sent.
#[test]
fn source_rewritten_in_place_while_sent_fails_and_leaves_no_file() {
    changed_source_fails("source_rewritten", 110, |path| {
        let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all(&[0x5a; 4096]).unwrap();
    });
}

/// Source changed while sent: the file grows while it is sent.
#[test]
fn source_appended_to_while_sent_fails_and_leaves_no_file() {
    changed_source_fails("source_appended", 111, |path| {
        let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(&[0xa5; 1 << 20]).unwrap();
    });
}

/// Colliding output names: two requests that map to the same output name are refused up
/// front, naming both, before any request (so even without a server).
#[test]
fn two_requests_with_the_same_output_name_are_refused_up_front_naming_both() {
    let env = TestEnv::new("same_output_name");
    env.create("d1/x", b"one\n");
    env.create("d2/x", b"two\n");
    // No server: a refusal up front is exit 2, not "no server" (3).
    let done = env.fetch_with(&["--wait", "0"], &["d1/x", "a.txt", "d2/x"]).finish(TIMEOUT);
    done.assert_code(2).check(
        done.stderr.contains("d1/x") && done.stderr.contains("d2/x"),
        "the refusal names both requests",
    );
    // With a server: still refused, nothing fetched.
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch(&["d1/x", "d2/x"]);
    done.assert_code(2).check(done.stderr.contains("-R"), "the refusal points at -R/--relative");
    assert_out_empty(&env);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// `-R/--relative` keeps the requested paths below the output directory,
/// creating directories as needed.
#[test]
fn relative_writes_each_path_below_the_out_dir_creating_directories() {
    let env = TestEnv::new("relative_paths");
    env.create("d1/x", b"one\n");
    env.create("d2/x", b"two\n");
    env.create("a/b/c.txt", b"deep\n");
    env.create("top.txt", b"top\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch_with(&["-R"], &["d1/x", "d2/x", "a/b/c.txt", "top.txt"]).finish(TIMEOUT);
    done.assert_code(0);
    for rel in ["d1/x", "d2/x", "a/b/c.txt", "top.txt"] {
        assert_same_file(&env.in_root(rel), &env.in_out(rel));
    }
    assert_eq!(env.out_entries(), ["a", "d1", "d2", "top.txt"]);
    // The long form; an existing directory is used as it is.
    let again = env.fetch_with(&["--relative"], &["d1/x"]).finish(TIMEOUT);
    again.assert_code(0);
    assert_same_file(&env.in_root("d1/x"), &env.in_out("d1/x"));
    // The same path twice under -R is fetched once, with a warning (issue 13.13c).
    let twice = env.fetch_with(&["-R"], &["d1/x", "./d1/x"]).finish(TIMEOUT);
    twice.assert_code(0).check(twice.stderr.contains("named more than once"), "a warning names it");
    assert_eq!(twice.stdout.lines().count(), 1, "fetched once\n{twice}");
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// `-R/--relative` never writes outside the output directory: symlinked
/// directories below it are not followed, `..` is not taken.
#[test]
fn relative_never_writes_outside_the_out_dir() {
    let env = TestEnv::new("relative_stays_inside");
    env.create("d1/x", b"one\n");
    env.create("a/b/c.txt", b"deep\n");
    env.create("ok.txt", b"ok\n");
    let elsewhere = new_dir(&env, "elsewhere");
    std::os::unix::fs::symlink(&elsewhere, env.in_out("d1")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.in_out("a")).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch_with(&["-R"], &["d1/x", "a/b/c.txt", "d1/../ok.txt", "ok.txt"]).finish(TIMEOUT);
    done.assert_code(1);
    assert!(
        dir_entries(&elsewhere).is_empty(),
        "written through a symlink: {:?}\n{done}",
        dir_entries(&elsewhere)
    );
    assert_same_file(&env.in_root("ok.txt"), &env.in_out("ok.txt"));
    for rel in ["d1/x", "a/b/c.txt"] {
        let line = format!("{rel}: ");
        let failed = done.stdout.lines().any(|l| l.starts_with(&line) && !l.contains("received"));
        assert!(failed, "{rel} was not reported as failed\n{done}");
    }
    // Nothing appeared beside the out dir either.
    let mut beside = dir_entries(env.tmp());
    beside.retain(|e| !["root", "out", "cwd", "elsewhere"].contains(&e.as_str()));
    assert!(beside.is_empty(), "written beside the out dir: {beside:?}");
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Longest file name: a file whose name has 255 bytes (the most a name may have) can
/// be fetched, and fetched again over the first copy.
#[test]
fn a_file_with_a_255_byte_name_can_be_fetched_and_replaced() {
    let env = TestEnv::new("longest_name");
    let name = format!("{}.txt", "n".repeat(251));
    assert_eq!(name.len(), 255);
    env.create(&name, b"first\n");
    let mut server = env.ready_server(&["--persistent"]);
    env.fetch(&[&name]).assert_code(0);
    env.assert_delivered(&name);
    env.create(&name, b"second, longer\n");
    env.fetch(&[&name]).assert_code(0);
    env.assert_delivered(&name);
    assert_eq!(env.out_entries(), std::slice::from_ref(&name), "litter in the out dir");
    // And under --no-clobber the existing copy stays, without litter.
    env.fetch_proc(&["--no-clobber", &name]).finish(TIMEOUT).assert_code(0);
    assert_eq!(env.out_entries(), std::slice::from_ref(&name));
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}
