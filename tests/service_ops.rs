//! Everyday operation of the programs: listings and status queries that do
//! not end a default-mode server, a graceful stop that drains open
//! sessions, and `--status --all` / `--cleanup --all` over every server of
//! this user.

use std::time::Duration;

use crate::util::{holds_for, TestEnv, TIMEOUT};

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
