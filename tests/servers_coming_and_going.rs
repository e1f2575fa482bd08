//! Servers that come and go, and how long a client waits for one: a server
//! replaced by a new one mid-file, a lock deleted under a running server, a
//! stopped server whose queue is full or that never takes the session, a
//! busy server (`--max-sessions`, the status sessions' own limit) and a
//! client with `--wait`. No wait is without a bound, and no server removes
//! another's objects.

use std::fs;
use std::time::{Duration, Instant};

use crate::util::{
    assert_client_objects_gone, assert_exit_within, assert_no_leftovers, assert_out_empty, fill_queue,
    holds_for, shm_path, stop, terminate, wait_for_queue, wait_until, Signal, TestEnv, DETECT, MIB, SLACK,
    TIMEOUT,
};

/// The session-start limit the tests give the client (`--attach-timeout`;
/// 10 s by default): a live server must take a new session within this long.
const ATTACH: &str = "1";
const ATTACH_TIME: Duration = Duration::from_secs(1);

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

#[test]
fn client_with_wait_waits_for_a_free_session_of_a_busy_server() {
    let env = TestEnv::new("rt_busy_wait");
    let big = fs::File::create(env.in_root("big.bin")).unwrap();
    big.set_len(32 << 20).unwrap();
    drop(big);
    env.create("small.txt", b"small\n");
    let mut server = env.ready_server(&["--persistent", "--max-sessions", "1"]);
    let mut first = env.fetch_with(&[], &["big.bin"]);
    env.wait_receiving(&mut first, "big.bin");
    first.signal(Signal::SIGSTOP);
    let mut second = env.fetch_with(&["--wait", "10"], &["small.txt"]);
    // It must still be waiting a moment later.
    let waited = !wait_until(Duration::from_millis(1500), || !second.is_running());
    first.signal(Signal::SIGCONT);
    let done = second.finish(TIMEOUT);
    first.finish(TIMEOUT);
    env.stop_server(&mut server);
    assert!(waited, "the second client did not wait for a free session\n{done}");
    done.assert_code(0)
        .check(done.stderr.matches("wait").count() == 1, "it says once that it waits for a free session");
    env.assert_delivered("small.txt");
    assert_no_leftovers(&env.names);
}

/// 13.13b: a refused `--status` names the limit of status sessions that
/// applied, not the 16 transfer sessions.
#[test]
fn refused_status_names_the_status_limit_not_the_session_limit() {
    let env = TestEnv::new("rt_status_limit");
    let mut server = env.ready_server(&["--persistent"]);
    let config = shmxfer::ClientConfig::new(env.names.queue());
    let mut holders = Vec::new();
    for i in 0..4 {
        let mut c = shmxfer::Client::connect_for_status(&config)
            .unwrap_or_else(|e| panic!("status session {i}: {e}"));
        c.status().unwrap_or_else(|e| panic!("status session {i} is served: {e}"));
        holders.push(c);
    }
    let s = env.run_client(&["--status"]);
    for c in holders {
        let _ = c.close();
    }
    env.stop_server(&mut server);
    s.check(s.code() != Some(0), "the extra --status fails")
        .check(!s.stderr.contains("16"), "the refusal does not name the 16-session limit")
        .check(s.stderr.contains('4'), "the refusal names the 4 status sessions");
    assert_no_leftovers(&env.names);
}

/// A reader of a file (`Client::fetch_reader`) whose server stops midway
/// fails, and every read after that fails too: its end of file means the
/// verified end, never a file cut off.
#[test]
fn a_file_reader_cut_off_by_its_server_keeps_failing_and_never_ends_as_if_whole() {
    use std::io::Read;
    let env = TestEnv::new("reader_cut_off");
    env.create_random("big.bin", 4 * MIB, 23);
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = shmxfer::Client::connect(&shmxfer::ClientConfig::new(env.names.queue())).unwrap();
    let mut reader = client.fetch_reader("big.bin").unwrap();
    let mut buf = [0u8; 4096];
    assert!(reader.read(&mut buf).unwrap() > 0, "the file starts");
    // The server waits for ring space: the client reads nothing meanwhile.
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
    let first = loop {
        match reader.read(&mut buf) {
            Ok(0) => panic!("a file cut off ended as if whole"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    for _ in 0..3 {
        let again = reader.read(&mut buf);
        assert!(again.is_err(), "after `{first}` a read gave {again:?}");
    }
    drop(reader);
    let _ = client.close();
    assert_no_leftovers(&env.names);
}
