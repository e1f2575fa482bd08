//! The server under a service manager: the time at the start of each log
//! line (`--log-time`) and systemd's readiness protocol (`NOTIFY_SOCKET`).

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::util::{
    command, split_log_time, wait_for_queue, Finished, Proc, Signal, TestEnv, SERVER, TIMEOUT,
};

/// A server command on the test's queue serving `env.root()`, with `args`.
fn server_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).args(args).current_dir(env.cwd());
    cmd
}

/// Runs a persistent server through one fetch and a stop; its output.
fn served_once(env: &TestEnv, mut cmd: Command) -> Finished {
    cmd.arg("--persistent");
    let mut server = Proc::spawn(cmd, Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    env.fetch(&["hello.txt"]).assert_code(0);
    env.stop_server(&mut server);
    server.snapshot()
}

#[test]
fn server_log_lines_begin_with_the_utc_time_to_the_millisecond() {
    let env = TestEnv::new("server_log_lines_begin_with_the_utc_time");
    env.create("hello.txt", b"hello\n");
    // A zone far from UTC (a POSIX TZ string, no tz database needed), so that
    // local time would be caught.
    let mut cmd = server_cmd(&env, &[]);
    cmd.env("TZ", "NPT-5:45");
    let before = SystemTime::now();
    let log = served_once(&env, cmd);
    let after = SystemTime::now();
    log.assert_log_prefixed("shm_server: ")
        .check(log.stderr.lines().count() >= 3, "a start line, an access line and a summary");
    // The stamp is cut to the millisecond, so it may lie up to 1 ms before `before`.
    let slack = Duration::from_secs(1);
    for line in log.stderr.lines() {
        let (at, _) = split_log_time(line).unwrap();
        log.check(
            at + slack >= before && at <= after + slack,
            &format!("the time of {line:?} is now, in UTC"),
        );
    }
    env.assert_no_leftovers();
}

#[test]
fn log_time_none_leaves_the_time_out_of_log_lines() {
    let env = TestEnv::new("log_time_none_leaves_the_time_out");
    env.create("hello.txt", b"hello\n");
    let log = served_once(&env, server_cmd(&env, &["--log-time", "none"]));
    log.assert_stderr_prefixed("shm_server: ")
        .check(log.stderr.lines().count() >= 3, "a start line, an access line and a summary")
        .check(log.stderr.lines().all(|l| split_log_time(l).is_none()), "no line begins with a time");
    env.assert_no_leftovers();
}

/// The next datagram on `socket` as text; fails (showing `server`) if none
/// arrives within `TIMEOUT`.
#[track_caller]
fn next_notification(socket: &UnixDatagram, server: &Proc) -> String {
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8(buf[..n].to_vec()).expect("a notification is text"),
        Err(e) => panic!("\n\n==========\nno notification within {TIMEOUT:?}: {e}\n{}", server.snapshot()),
    }
}

#[test]
fn server_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let env = TestEnv::new("server_tells_systemd_when_it_is_ready");
    env.create("hello.txt", b"hello\n");
    let socket_path = env.tmp().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut cmd = server_cmd(&env, &["--persistent"]);
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let mut server = Proc::spawn(cmd, Some(&env.names));

    let ready = next_notification(&socket, &server);
    let status = format!("STATUS=serving {} on {}", env.root().display(), env.names.queue());
    assert!(ready.lines().any(|l| l == "READY=1"), "READY=1 in {ready:?}\n{}", server.snapshot());
    assert!(ready.lines().any(|l| l == status), "{status:?} in {ready:?}\n{}", server.snapshot());
    assert!(env.names.queue_exists(), "the queue exists when READY=1 arrives");
    // Ready means serving: a client is served without waiting for the queue.
    env.fetch(&["hello.txt"]).assert_code(0);
    env.assert_delivered("hello.txt");

    env.stop_server(&mut server);
    let stopping = next_notification(&socket, &server);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "STOPPING=1 in {stopping:?}\n{}", server.snapshot());
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let more = socket.recv(&mut buf);
    assert!(
        more.is_err(),
        "nothing after STOPPING=1: {:?}",
        more.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
    env.assert_no_leftovers();
}

/// A notify socket whose queue is full (a listener that reads nothing):
/// the readiness message cannot go, the server warns and serves, and stops
/// on SIGTERM. Before, its send blocked before the first request was read:
/// the server served nothing and was deaf to SIGTERM.
#[test]
fn a_full_notify_socket_holds_up_neither_serving_nor_sigterm() {
    let env = TestEnv::new("full_notify_socket");
    env.create("hello.txt", b"hello\n");
    let socket_path = env.tmp().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    filler.connect(&socket_path).unwrap();
    let mut queued = 0;
    loop {
        match filler.send(b"STATUS=filling\n") {
            Ok(_) => queued += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the notify socket: {e}"),
        }
    }
    assert!(queued > 0, "the socket took datagrams before it was full");
    let mut cmd = server_cmd(&env, &["--persistent"]);
    cmd.env("NOTIFY_SOCKET", &socket_path);
    let mut server = Proc::spawn(cmd, Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    env.fetch(&["hello.txt"]).assert_code(0);
    env.assert_delivered("hello.txt");
    server.signal(Signal::SIGTERM);
    let done = server.finish(TIMEOUT);
    done.assert_code(0).check(
        done.stderr.contains("NOTIFY_SOCKET") && done.stderr.contains("its queue is full"),
        "a warning names the full notify socket",
    );
    drop(socket);
    env.assert_no_leftovers();
}
