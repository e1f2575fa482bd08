//! Everyday operation of the programs: listings and status queries that do
//! not end a default-mode server, a graceful stop that drains open
//! sessions, and `--status --all` / `--cleanup --all` over every server of
//! this user.

use std::time::{Duration, Instant};

use crate::util::{holds_for, wait_until, Proc, Signal, TestEnv, BIG_TIMEOUT, TIMEOUT};

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
    log.assert_code(0).check(log.stderr.contains("the open sessions are done; stopping"), "says why it stops");
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
