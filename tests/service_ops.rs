//! Everyday operation of the programs: listings and status queries that do
//! not end a default-mode server, a graceful stop that drains open
//! sessions, and `--status --all` / `--cleanup --all` over every server of
//! this user.

use std::time::{Duration, Instant};

use crate::util::{holds_for, wait_until, Proc, Signal, TestEnv, BIG_TIMEOUT, CLIENT, SERVER, TIMEOUT};

#[test]
fn list_and_status_leave_a_default_mode_server_serving_until_a_fetch() {
    let env = TestEnv::new("list_and_status_leave_a_default_server");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&[]);
    env.run_client(&["--list"]).assert_code(0).assert_stdout_lines(&["6\thello.txt".to_owned()]);
    env.run_client(&["--status"]).assert_code(0);
    env.run_client(&["--list", "--json"]).assert_code(0);
    assert!(
        holds_for(Duration::from_millis(500), || server.is_running() && env.names.queue_exists()),
        "a listing or a status is not the default mode's last client\n{}",
        server.snapshot()
    );
    // The client that fetches is the last one: the server stops after it.
    env.fetch(&["hello.txt"]).assert_code(0);
    env.assert_delivered("hello.txt");
    server.finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

/// Starts a persistent server and a client fetching `big.bin` (then
/// `hello.txt`), and stops the client (SIGSTOP) once the transfer is in
/// flight: its session stays open as long as the test wants.
fn stopped_client_mid_transfer(env: &TestEnv) -> (Proc, Proc) {
    env.create("hello.txt", b"hello\n");
    let (server, mut client) = env.big_transfer_in_flight(&["--persistent"], &["hello.txt"], 12);
    client.signal(Signal::SIGSTOP);
    (server, client)
}

#[test]
fn stop_server_drain_finishes_open_sessions_refuses_new_ones_and_exits_0() {
    let env = TestEnv::new("stop_server_drain_finishes_open_sessions");
    let (mut server, mut fetching) = stopped_client_mid_transfer(&env);
    let mut stopping = env.client(&["--stop-server", "--drain"]);
    assert!(
        wait_until(TIMEOUT, || server.stderr().contains("stop after the open sessions requested by pid")),
        "the server begins to drain\n{}",
        server.snapshot()
    );
    // A new client is turned away, told why.
    let refused = env.fetch(&["hello.txt"]);
    refused
        .assert_code(1)
        .assert_stdout_lines(&["hello.txt: failed: server busy".to_owned()])
        .check(refused.stderr.contains("is stopping"), "says the server is stopping");
    assert!(
        holds_for(Duration::from_millis(300), || server.is_running() && stopping.is_running()),
        "the server waits for its open session\n{}",
        server.snapshot()
    );
    // The open session gets everything it had asked for.
    fetching.signal(Signal::SIGCONT);
    fetching.finish(BIG_TIMEOUT).assert_code(0);
    env.assert_delivered("big.bin");
    env.assert_delivered("hello.txt");
    stopping.finish(TIMEOUT).assert_code(0);
    let log = server.finish(TIMEOUT);
    log.assert_code(0)
        .check(log.stderr.contains("the open sessions are done; stopping"), "says why it stops");
    env.assert_no_leftovers();
}

#[test]
fn sigterm_during_a_sigquit_drain_stops_the_server_at_once() {
    let env = TestEnv::new("sigterm_during_a_sigquit_drain");
    let (mut server, mut fetching) = stopped_client_mid_transfer(&env);
    server.signal(Signal::SIGQUIT);
    assert!(
        wait_until(TIMEOUT, || server.stderr().contains("a signal asked to drain")),
        "SIGQUIT begins a drain\n{}",
        server.snapshot()
    );
    assert!(
        holds_for(Duration::from_millis(300), || server.is_running()),
        "a drain waits for the open session\n{}",
        server.snapshot()
    );
    let refused = env.fetch(&["hello.txt"]);
    refused.assert_code(1).check(refused.stderr.contains("is stopping"), "a new client is told why");
    server.signal(Signal::SIGTERM);
    let started = Instant::now();
    server.finish(TIMEOUT).assert_code(0);
    assert!(started.elapsed() < Duration::from_secs(5), "SIGTERM ends the drain at once");
    fetching.signal(Signal::SIGCONT);
    let lost = fetching.finish(TIMEOUT);
    lost.assert_code(4).check(lost.stderr.contains("server stopped"), "the cancelled client says why");
    env.assert_no_leftovers();
}

/// The scenario of `status_all_lists_live_and_dead_servers_and_cleanup_all_removes_the_dead`,
/// run in a `/dev/shm` of its own, so that `--cleanup --all` sees no other
/// test's servers: two persistent servers, one killed.
const ALL_SCENARIO: &str = r#"
set -e
mount -t tmpfs tmpfs /dev/shm
S=$1 C=$2 A=$3 B=$4 R=$5
"$S" --queue "$A" --root "$R" --persistent -q & a=$!
"$S" --queue "$B" --root "$R" --persistent -q & b=$!
"$C" --queue "$A" --status --wait 20 > /dev/null
"$C" --queue "$B" --status --wait 20 > /dev/null
echo "pids $a $b"
kill -9 $a
wait $a || true
echo "== status"
"$C" --status --all
echo "== json"
"$C" --status --all --json
echo "== cleanup"
"$S" --cleanup --all
echo "== after"
"$C" --status --all --json
"$C" --queue "$B" --stop-server --wait 5 -q
wait $b
echo "== shm"
ls -A /dev/shm
echo "== end"
"#;

#[test]
fn status_all_lists_live_and_dead_servers_and_cleanup_all_removes_the_dead() {
    let env = TestEnv::new("status_all_lists_live_and_dead");
    let (a, b) = (format!("{}_a", env.names.queue()), format!("{}_b", env.names.queue()));
    let root = env.root().to_str().expect("utf-8 temp path").to_owned();
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c", ALL_SCENARIO, "sh", SERVER, CLIENT])
        .args([&a, &b, &root]);
    let done = Proc::spawn(cmd, None).finish(TIMEOUT);
    if done.code() != Some(0) && done.stderr.contains("unshare") {
        eprintln!("skipped: needs a mount namespace of its own (unshare): {}", done.stderr);
        return;
    }
    done.assert_code(0);
    let section = |name: &str| -> Vec<&str> {
        let start = done.stdout.find(&format!("== {name}\n")).expect("section") + name.len() + 4;
        done.stdout[start..].lines().take_while(|l| !l.starts_with("== ")).collect()
    };
    let pids: Vec<&str> = done.stdout.lines().next().unwrap().split(' ').skip(1).collect();
    let status = section("status");
    // Sorted by queue: the dead `_a`, then a blank line, then `_b`'s block.
    done.check(
        status[0].starts_with(&format!("dead server on queue {a}: "))
            && status[0].contains("--cleanup --all"),
        "the killed server is listed as dead, with what to do",
    )
    .check(status[1].is_empty(), "a blank line between servers")
    .check(
        status[2].starts_with(&format!("server pid {} on queue {b}, serving ", pids[1])),
        "the live server's block, as --status prints it",
    )
    .check(status[3].starts_with("sessions: 0 open of 16 allowed"), "its sessions");
    let json: Vec<serde_json::Value> =
        section("json").iter().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    done.check(json.len() == 2, "one object per server")
        .check(json[0]["queue"] == a.as_str() && json[0]["state"] == "dead", "the dead one")
        .check(json[1]["queue"] == b.as_str() && json[1]["state"] == "live", "the live one")
        .check(
            json[1]["server"]["pid"].as_u64().map(|p| p.to_string()).as_deref() == Some(pids[1]),
            "with --status --json's fields",
        )
        .check(json[1]["sessions"].as_array().is_some_and(|s| s.is_empty()), "and its sessions");
    let cleanup = section("cleanup");
    let lock_a = format!("removed /dev/shm/{}.lock", &a[1..]);
    done.check(cleanup.contains(&format!("removed queue {a}").as_str()), "the dead server's queue goes")
        .check(cleanup.contains(&lock_a.as_str()), "and its lock")
        .check(cleanup.iter().all(|l| !l.contains(&b)), "the live server keeps its own");
    let after = section("after");
    done.check(after.len() == 1 && after[0].contains(&b), "only the live server is left");
    done.check(section("shm").is_empty(), "nothing is left in /dev/shm");
    assert!(!crate::util::queue_exists(&a) && !crate::util::queue_exists(&b), "the queues are gone");
}
