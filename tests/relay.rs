//! Fetching from another host: `shm_client -H HOST` through a remote shell
//! that runs `shm_client --relay` there. No network: the "remote shell" is a
//! script that drops the host and runs the command here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::util::{wait_until, TestEnv, BIG, BIG_TIMEOUT, CLIENT, MIB, TIMEOUT};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Writes the executable script `name` into the test's temp dir.
fn script(env: &TestEnv, name: &str, body: &str) -> PathBuf {
    let path = env.tmp().join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A remote shell that runs the command on this host, as the host would.
fn local_rsh(env: &TestEnv) -> PathBuf {
    script(env, "rsh", "shift\nexec \"$@\"\n")
}

#[test]
fn files_fetched_through_a_relay_arrive_byte_identical() {
    let env = TestEnv::new("relay_fetch");
    env.create_random("big.bin", 5 * MIB, 11);
    env.create("a.txt", b"over there\n");
    fs::set_permissions(env.in_root("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    env.create("sub/c.txt", b"deeper\n");
    let rsh = local_rsh(&env);
    let mut server = env.ready_server(&["--persistent"]);
    let remote = ["-H", "somehost", "--rsh", s(&rsh), "--remote-client", CLIENT];
    let mut args = vec!["-o", s(env.out())];
    args.extend_from_slice(&remote);
    args.extend_from_slice(&["big.bin", "a.txt", "sub/c.txt"]);
    let done = env.run_client(&args);
    done.assert_code(0).assert_stdout_lines(&[
        format!("big.bin: received {} bytes", 5 * MIB),
        "a.txt: received 11 bytes".to_owned(),
        "sub/c.txt: received 7 bytes → c.txt".to_owned(),
    ]);
    env.assert_delivered("big.bin");
    env.assert_delivered("a.txt");
    env.assert_delivered("sub/c.txt");
    let mode = fs::metadata(env.in_out("a.txt")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the mode arrives as a local fetch delivers it");
    assert_eq!(env.out_entries(), ["a.txt", "big.bin", "c.txt"], "no temporary file left");
    // A missing file is reported as a local fetch reports it.
    let mut missing = vec!["-o", s(env.out())];
    missing.extend_from_slice(&remote);
    missing.push("nope");
    let gone = env.run_client(&missing);
    gone.assert_code(1).check(gone.stdout.contains("nope: not found"), "not found, as locally");
    // --list goes through the relay too.
    let mut list = vec!["--list"];
    list.extend_from_slice(&remote);
    let listed = env.run_client(&list);
    listed.assert_code(0).check(
        listed.stdout.contains("big.bin") && listed.stdout.contains("sub/c.txt"),
        "the listing names the server's files",
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn the_remote_shell_comes_from_shmxfer_rsh_and_is_split_as_a_shell_splits() {
    let env = TestEnv::new("relay_env_rsh");
    env.create("a.txt", b"by the environment\n");
    // The remote shell takes an argument of its own before the host.
    let rsh = script(&env, "rsh with space", "test \"$1\" = '-p 2222' || exit 9\nshift 2\nexec \"$@\"\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mut cmd =
        env.client_cmd(&["-o", s(env.out()), "-H", "me@somehost", "--remote-client", CLIENT, "a.txt"]);
    cmd.env("SHMXFER_RSH", format!("'{}' '-p 2222'", rsh.display()));
    let done = crate::util::Proc::spawn(cmd, None).finish(TIMEOUT);
    done.assert_code(0);
    env.assert_delivered("a.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn the_remote_client_path_is_the_one_run() {
    let env = TestEnv::new("relay_remote_client");
    env.create("a.txt", b"x\n");
    let rsh = local_rsh(&env);
    // A wrapper that leaves a mark, then runs the real client.
    let mark = env.tmp().join("ran");
    let wrapper = script(&env, "my_client", &format!("touch '{}'\nexec '{CLIENT}' \"$@\"\n", mark.display()));
    let mut server = env.ready_server(&["--persistent"]);
    let args = ["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--remote-client", s(&wrapper), "a.txt"];
    env.run_client(&args).assert_code(0);
    assert!(mark.exists(), "--remote-client names the program run on the host");
    env.assert_delivered("a.txt");
    // Without it, the shm_client of the host's PATH runs: here none.
    let mut cmd = env.client_cmd(&["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "a.txt"]);
    cmd.env("PATH", "/nonexistent");
    let failed = crate::util::Proc::spawn(cmd, None).finish(TIMEOUT);
    failed.assert_code(4).check(failed.stderr.contains("relay on h"), "the message names the relay's host");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_relay_that_sends_garbage_ends_the_session_with_a_clear_message() {
    let env = TestEnv::new("relay_garbage");
    let rsh = script(&env, "rsh", "echo garbage\n");
    let done = env.run_client(&["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "a.txt"]);
    done.assert_code(4).check(
        done.stderr.contains("the relay on h broke the stream"),
        "the message says the relay broke the stream",
    );
    // One that keeps reading after its garbage fails the same way.
    let reading = script(&env, "rsh2", "echo garbage\nexec cat >/dev/null\n");
    let done = env.run_client(&["-o", s(env.out()), "-H", "h", "--rsh", s(&reading), "a.txt"]);
    done.assert_code(4).check(done.stderr.contains("broke the stream"), "garbage is a broken stream");
    assert!(env.out_entries().is_empty(), "nothing written");
}

#[test]
fn a_relay_without_a_server_passes_on_its_message_and_status() {
    let env = TestEnv::new("relay_no_server");
    let rsh = local_rsh(&env);
    let args =
        ["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--remote-client", CLIENT, "--wait", "0", "a.txt"];
    let done = env.run_client(&args);
    done.assert_code(4)
        .check(done.stderr.contains("no server on queue"), "the relay's own message reaches the user")
        .check(done.stderr.contains("exit status 3"), "and its exit status");
    assert!(env.out_entries().is_empty());
    env.assert_no_leftovers();
}

#[test]
fn a_relay_killed_mid_file_ends_the_fetch_and_keeps_nothing_partial() {
    let env = TestEnv::new("relay_killed");
    env.create_random("big.bin", BIG, 5);
    let pid_file = env.tmp().join("relay.pid");
    // `exec` keeps the shell's pid: the relay's.
    let rsh = script(&env, "rsh", &format!("shift\necho $$ > '{}'\nexec \"$@\"\n", pid_file.display()));
    let mut server = env.ready_server(&["--persistent"]);
    let args = ["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--remote-client", CLIENT, "big.bin"];
    let mut client = env.client(&args);
    env.wait_receiving(&mut client, "big.bin");
    assert!(wait_until(TIMEOUT, || fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))));
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the relay");
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4).check(done.stderr.contains("the relay on h"), "the message names the relay");
    assert!(env.out_entries().is_empty(), "no partial file, under any name: {:?}", env.out_entries());
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_fetch_cut_by_its_relay_resumes_with_continue_through_another() {
    let env = TestEnv::new("relay_resume");
    env.create_random("big.bin", BIG, 6);
    let pid_file = env.tmp().join("relay.pid");
    let rsh = script(&env, "rsh", &format!("shift\necho $$ > '{}'\nexec \"$@\"\n", pid_file.display()));
    let mut server = env.ready_server(&["--persistent"]);
    let args = ["-C", "-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--remote-client", CLIENT, "big.bin"];
    let mut client = env.client(&args);
    env.wait_receiving(&mut client, "big.bin");
    assert!(wait_until(TIMEOUT, || fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))));
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the relay");
    client.finish(BIG_TIMEOUT).assert_code(4);
    let kept = env.out_entries();
    assert!(
        kept.iter().any(|n| n == ".shmxfer-partial.big.bin") && !kept.iter().any(|n| n == "big.bin"),
        "with -C the partial is kept, under its partial name only: {kept:?}"
    );
    let done = env.client(&args).finish(BIG_TIMEOUT);
    done.assert_code(0);
    env.assert_delivered("big.bin");
    assert_eq!(env.out_entries(), ["big.bin"], "the partial and its record are gone");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_relay_that_sends_nothing_ends_the_session_at_the_stall_timeout() {
    let env = TestEnv::new("relay_stalled");
    let rsh = script(&env, "rsh", "exec sleep 30\n");
    let started = std::time::Instant::now();
    let done =
        env.run_client(&["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--stall-timeout", "1", "a.txt"]);
    done.assert_code(4).check(done.stderr.contains("--stall-timeout"), "the message names the stall timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "ended at the stall timeout");
    assert!(env.out_entries().is_empty());
}

#[test]
fn update_through_a_relay_skips_an_up_to_date_copy_and_goes_on() {
    let env = TestEnv::new("relay_update");
    env.create("a.txt", b"first\n");
    env.create("b.txt", b"bee\n");
    let rsh = local_rsh(&env);
    let mut server = env.ready_server(&["--persistent"]);
    let remote =
        ["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--remote-client", CLIENT, "--stall-timeout", "5"];
    let mut first = remote.to_vec();
    first.push("a.txt");
    env.run_client(&first).assert_code(0);
    // An up-to-date answer is a Start and nothing after it: the relay
    // passes it on and takes the next request.
    let mut again = remote.to_vec();
    again.extend_from_slice(&["-u", "a.txt", "b.txt"]);
    env.run_client(&again)
        .assert_code(0)
        .assert_stdout_lines(&["a.txt: skipped: up to date".into(), "b.txt: received 4 bytes".into()]);
    env.assert_delivered("b.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn trees_patterns_and_one_output_path_go_through_a_relay() {
    let env = TestEnv::new("relay_tree");
    env.create("tree/x.txt", b"x\n");
    env.create("tree/deep/y.txt", b"yy\n");
    env.create("logs/a.log", b"a\n");
    env.create("logs/b.log", b"bb\n");
    let rsh = local_rsh(&env);
    let mut server = env.ready_server(&["--persistent"]);
    let remote = ["-H", "h", "--rsh", s(&rsh), "--remote-client", CLIENT];
    let mut tree = vec!["-o", s(env.out()), "-r", "-R"];
    tree.extend_from_slice(&remote);
    tree.push("tree");
    env.run_client(&tree).assert_code(0);
    let mut pattern = vec!["-o", s(env.out()), "-R"];
    pattern.extend_from_slice(&remote);
    pattern.push("logs/*.log");
    env.run_client(&pattern).assert_code(0);
    for rel in ["tree/x.txt", "tree/deep/y.txt", "logs/a.log", "logs/b.log"] {
        crate::util::assert_same_file(&env.in_root(rel), &env.out().join(rel));
    }
    let dest = env.tmp().join("one.txt");
    let mut one = vec!["-O", s(&dest)];
    one.extend_from_slice(&remote);
    one.push("tree/x.txt");
    env.run_client(&one).assert_code(0);
    crate::util::assert_same_file(&env.in_root("tree/x.txt"), &dest);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}
