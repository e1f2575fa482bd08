//! Fetching from another host: `shm_client -H HOST` through a remote shell
//! that runs `shm_client --relay` there. No network: the "remote shell" is a
//! script that drops the host and runs the command here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmxfer::testing::protocol::{Command as Msg, FrameHeader, FrameKind, PutFlags, Reply, StartFlags};

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
    // A local run's code for no server: 3.
    done.assert_code(3)
        .check(done.stderr.contains("no server on queue"), "the relay's own message reaches the user")
        .check(done.stderr.contains("exit status 3"), "and its exit status")
        .check(
            done.stderr.contains(&format!("no server on queue {} on h", env.names.queue())),
            "the client's message names the host and the queue",
        );
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

/// `s` with every run of digits (and of the dots between them) as `#`: the
/// shape of a status, whatever its numbers.
fn shape(s: &str) -> String {
    let mut out = String::new();
    let mut in_number = false;
    for c in s.chars() {
        let digit = c.is_ascii_digit() || (in_number && c == '.');
        if digit && !in_number {
            out.push('#');
        } else if !digit {
            out.push(c);
        }
        in_number = digit;
    }
    out
}

/// The arguments that reach this host through the local remote shell.
fn remote_args(rsh: &Path) -> Vec<&str> {
    vec!["-H", "h", "--rsh", s(rsh), "--remote-client", CLIENT]
}

/// A server that takes uploads into `tmp()/accept`.
fn accepting(env: &TestEnv) -> (crate::util::Proc, PathBuf) {
    let accept = env.tmp().join("accept");
    fs::create_dir_all(&accept).unwrap();
    (env.ready_server(&["--persistent", "--accept", s(&accept)]), accept)
}

#[test]
fn status_and_its_json_through_a_relay_have_the_local_shape() {
    let env = TestEnv::new("relay_status");
    let rsh = local_rsh(&env);
    let mut server = env.ready_server(&["--persistent"]);
    for json in [false, true] {
        let mut local = vec!["--status"];
        local.extend(json.then_some("--json"));
        let mut remote = local.clone();
        remote.extend(remote_args(&rsh));
        let here = env.run_client(&local);
        here.assert_code(0);
        let there = env.run_client(&remote);
        there.assert_code(0).check(there.stderr.is_empty(), "nothing on stderr");
        assert_eq!(shape(&there.stdout), shape(&here.stdout), "json {json}: the local status's shape");
        let pid = format!("{}", server.pid());
        assert!(there.stdout.contains(&pid), "the server's pid: {}", there.stdout);
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn files_put_through_a_relay_arrive_byte_identical_with_to_and_no_clobber() {
    let env = TestEnv::new("relay_put");
    let rsh = local_rsh(&env);
    let src = env.tmp().join("src");
    fs::create_dir_all(&src).unwrap();
    let big = src.join("big.bin");
    crate::util::write_random_file(&big, 5 * MIB, 21);
    let small = src.join("a.txt");
    fs::write(&small, b"from here\n").unwrap();
    let (mut server, accept) = accepting(&env);
    let mut put = vec!["--put", s(&big), s(&small), "--to", "in/box"];
    put.extend(remote_args(&rsh));
    env.run_client(&put).assert_code(0).assert_stdout_lines(&[
        format!("{}: sent {} bytes → in/box/big.bin", s(&big), 5 * MIB),
        format!("{}: sent 10 bytes → in/box/a.txt", s(&small)),
    ]);
    crate::util::assert_same_file(&big, &accept.join("in/box/big.bin"));
    crate::util::assert_same_file(&small, &accept.join("in/box/a.txt"));
    // --no-clobber keeps what is there; without it the file is replaced.
    fs::write(&small, b"changed\n").unwrap();
    let mut kept = vec!["--no-clobber", "--put", s(&small), "--to", "in/box"];
    kept.extend(remote_args(&rsh));
    env.run_client(&kept)
        .assert_code(0)
        .assert_stdout_lines(&[format!("{}: skipped: exists on the server", s(&small))]);
    assert_eq!(fs::read(accept.join("in/box/a.txt")).unwrap(), b"from here\n");
    let mut replaced = vec!["--put", s(&small), "--to", "in/box"];
    replaced.extend(remote_args(&rsh));
    env.run_client(&replaced).assert_code(0);
    assert_eq!(fs::read(accept.join("in/box/a.txt")).unwrap(), b"changed\n");
    // A refusal comes back as it does locally, and the next file still goes.
    fs::create_dir_all(accept.join("d/a.txt")).unwrap();
    let mut refused = vec!["--put", s(&small), "--to", "d"];
    refused.extend(remote_args(&rsh));
    let done = env.run_client(&refused);
    done.assert_code(1).check(done.stdout.contains("refused by server"), "the refusal, as locally");
    assert_eq!(crate::util::dir_entries(&accept.join("in/box")), ["a.txt", "big.bin"], "nothing else left");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// Through a relay as locally: a file of /proc (its `fstat` says 0
/// bytes) is stored with its real bytes, `-p` keeps the source's mtime and
/// `-u` skips a copy that is up to date.
#[test]
fn a_proc_file_and_put_u_p_go_through_a_relay_as_locally() {
    let env = TestEnv::new("relay_put_sizeless");
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    let version = fs::read("/proc/version").unwrap();
    let mut put = vec!["--put", "/proc/version"];
    put.extend(remote_args(&rsh));
    env.run_client(&put)
        .assert_code(0)
        .assert_stdout_lines(&[format!("/proc/version: sent {} bytes → version", version.len())]);
    assert_eq!(fs::read(accept.join("version")).unwrap(), version);
    let file = env.tmp().join("a.txt");
    fs::write(&file, b"kept time\n").unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    fs::File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
    for (flag, line) in [("-p", "sent 10 bytes → a.txt"), ("-u", "skipped: up to date on the server")] {
        let mut args = vec!["--put", flag, s(&file)];
        args.extend(remote_args(&rsh));
        env.run_client(&args).assert_code(0).assert_stdout_lines(&[format!("{}: {line}", s(&file))]);
        assert_eq!(fs::metadata(accept.join("a.txt")).unwrap().modified().unwrap(), old, "{flag}");
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_relay_killed_mid_upload_leaves_nothing_on_the_server_and_the_client_exits_4() {
    let env = TestEnv::new("relay_put_killed");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 8);
    let pid_file = env.tmp().join("relay.pid");
    let rsh = script(&env, "rsh", &format!("shift\necho $$ > '{}'\nexec \"$@\"\n", pid_file.display()));
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    assert!(wait_until(TIMEOUT, || fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))));
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill the relay");
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4).check(done.stderr.contains("the relay on h"), "the message names the relay");
    let cleaned =
        wait_until(crate::util::DETECT + crate::util::SLACK, || env.names.client_regions().is_empty());
    assert!(cleaned, "the server removes what the killed relay left: {:?}", env.names.shm_entries());
    assert!(
        wait_until(crate::util::SLACK, || server.open_files_under(&accept).is_empty()),
        "the server dropped the file it was receiving"
    );
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under any name");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_server_killed_mid_upload_on_the_remote_host_ends_the_client_with_4() {
    let env = TestEnv::new("relay_put_server_killed");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 9);
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    server.kill();
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4).check(done.stderr.contains("the relay on h"), "the message names the relay");
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under any name");
    env.cleanup().finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn a_relay_that_sends_garbage_during_an_upload_ends_it_with_a_clear_message() {
    let env = TestEnv::new("relay_put_garbage");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, 4 * MIB, 10);
    // Unframed bytes, then a well-framed record that is no answer, each
    // after the upload's first bytes came.
    for (name, garbage, what) in [
        ("rsh", "echo garbage", "more than the"),
        ("rsh2", "printf '\\014\\000\\000\\000garbagegarba'", "not an answer"),
    ] {
        let rsh = script(&env, name, &format!("head -c 100000 >/dev/null\n{garbage}\nexec cat >/dev/null\n"));
        let done = env.run_client(&["--put", s(&big), "-H", "h", "--rsh", s(&rsh)]);
        done.assert_code(4)
            .check(done.stderr.contains("the relay on h broke the stream"), "the relay broke the stream")
            .check(done.stderr.contains(what), what);
    }
}

#[test]
fn stop_server_through_a_relay_stops_the_server_on_the_host() {
    let env = TestEnv::new("relay_stop");
    let rsh = local_rsh(&env);
    let mut server = env.ready_server(&["--persistent"]);
    let mut stop = vec!["--stop-server"];
    stop.extend(remote_args(&rsh));
    let done = env.run_client(&stop);
    done.assert_code(0).check(
        done.stderr.contains(&format!("the server on queue {} stopped", env.names.queue())),
        "the host's message passed on",
    );
    server.finish(TIMEOUT).assert_code(0);
    assert!(!env.names.queue_exists(), "the queue is gone");
    // With --drain, and then with no server left: its exit status passed on.
    let mut again = env.ready_server(&["--persistent"]);
    let mut drain = stop.clone();
    drain.push("--drain");
    env.run_client(&drain).assert_code(0);
    again.finish(TIMEOUT).assert_code(0);
    let none = env.run_client(&stop);
    none.assert_code(3).check(none.stderr.contains("no server on queue"), "the host's message");
    env.assert_no_leftovers();
}

#[test]
fn no_server_on_the_remote_host_exits_3_naming_the_host_and_the_queue() {
    let env = TestEnv::new("relay_none_there");
    let rsh = local_rsh(&env);
    let file = env.tmp().join("a.txt");
    fs::write(&file, b"x\n").unwrap();
    let expected = format!("no server on queue {} on h", env.names.queue());
    let cases: [&[&str]; 4] = [&["--status"], &["--status", "--json"], &["--put", s(&file)], &["--list"]];
    for mode in cases {
        let mut args = mode.to_vec();
        args.extend(remote_args(&rsh));
        args.extend(["--wait", "0"]);
        let done = env.run_client(&args);
        done.assert_code(3).check(done.stderr.contains(&expected), &expected);
    }
    // A remote shell that finds no shm_client there, or cannot reach the
    // host: said so, with what to do, exit 4 (the session was lost).
    let mut missing =
        vec!["--status", "-H", "h", "--rsh", s(&rsh), "--remote-client", "/nonexistent/shm_client"];
    missing.extend(["--wait", "0"]);
    let done = env.run_client(&missing);
    done.assert_code(4)
        .check(done.stderr.contains("found no /nonexistent/shm_client to run there"), "names the program")
        .check(done.stderr.contains("--remote-client PATH"), "says what to do");
    let unreachable = script(&env, "rsh255", "exit 255\n");
    let mut args = vec!["--list", "-H", "h", "--rsh", s(&unreachable), "--remote-client", CLIENT];
    args.extend(["--wait", "0"]);
    let done = env.run_client(&args);
    done.assert_code(4).check(done.stderr.contains("could not reach h"), "says the remote shell failed");
    let mut stop =
        vec!["--stop-server", "-H", "h", "--rsh", s(&rsh), "--remote-client", "/nonexistent/shm_client"];
    stop.extend(["--wait", "0"]);
    let done = env.run_client(&stop);
    done.assert_code(4).check(done.stderr.contains("--remote-client PATH"), "--stop-server says so too");
    // A host the remote shell would take for an option is refused: exit 2,
    // nothing run.
    let marker = env.tmp().join("ran");
    let hostile = format!("-oProxyCommand=touch {}", s(&marker));
    for host in [hostile.as_str(), ""] {
        let host = format!("--host={host}");
        let done = env.run_client(&["--list", &host, "--remote-client", CLIENT]);
        done.assert_code(2).check(done.stderr.contains("not beginning with '-'"), "says why");
    }
    assert!(!marker.exists(), "the remote shell never ran");
    env.assert_no_leftovers();
}

/// Stops the client mid-upload through a relay, lets `change` alter its
/// source, resumes it: the file fails as changed while it was sent, the
/// server keeps nothing of it, and the next file of the run still arrives
/// through the same relay session. The twin of the local test in
/// `changing_sources.rs`.
fn changed_upload_through_a_relay_fails(test: &str, seed: u64, change: impl FnOnce(&Path)) {
    let env = TestEnv::new(test);
    let src = env.tmp().join("src");
    fs::create_dir_all(&src).unwrap();
    let big = src.join("big.bin");
    crate::util::write_random_file(&big, BIG, seed);
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--put", s(&big), s(&small)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    // Past the granularity of file times.
    std::thread::sleep(std::time::Duration::from_millis(50));
    change(&big);
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(1)
        .check(done.stdout.contains(&format!("{}: failed: ", big.display())), "the file fails")
        .check(done.stdout.contains("changed while it was sent"), "as changed while it was sent")
        .check(done.stdout.contains("sent 6 bytes → small"), "the relay session goes on");
    assert_eq!(crate::util::dir_entries(&accept), ["small"], "nothing kept under the changed file's name");
    assert!(server.open_files_under(&accept).is_empty(), "the server holds nothing");
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains("big.bin: upload failed after ") && log.contains("changed"), "logged\n{log}");
    env.assert_no_leftovers();
}

fn run_ok(cmd: &mut std::process::Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}: {status}");
}

#[test]
fn a_file_rewritten_in_place_while_it_is_uploaded_through_a_relay_fails_and_the_run_goes_on() {
    changed_upload_through_a_relay_fails("relay_put_rewritten", 51, |path| {
        run_ok(
            std::process::Command::new("dd")
                .args(["if=/dev/zero", "bs=4096", "count=1", "conv=notrunc", "status=none"])
                .arg(format!("of={}", path.display())),
        );
    });
}

#[test]
fn a_file_truncated_while_it_is_uploaded_through_a_relay_fails_and_the_run_goes_on() {
    changed_upload_through_a_relay_fails("relay_put_truncated", 52, |path| {
        run_ok(std::process::Command::new("truncate").args(["-s", "1M"]).arg(path));
    });
}

/// Every JSON line of `stdout` with the summary's `seconds` taken out: what
/// a run prints whatever its timing.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| {
            let mut value: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            if let Some(summary) = value.get_mut("summary").and_then(serde_json::Value::as_object_mut) {
                summary.remove("seconds");
            }
            value
        })
        .collect()
}

/// `--put -r` through a relay: the tree arrives byte-identical, the
/// symlink and the FIFO are named on stderr as locally (exit 1), and
/// `--json` prints the objects a local run prints, skips and `--no-clobber`
/// included.
#[test]
fn put_r_through_a_relay_sends_the_tree_names_its_skips_and_prints_the_local_json() {
    let env = TestEnv::new("relay_put_tree");
    let src = env.tmp().join("src");
    let photos = src.join("photos");
    fs::create_dir_all(photos.join("sub/deeper")).unwrap();
    fs::write(photos.join("a.jpg"), b"aaa\n").unwrap();
    crate::util::write_random_file(&photos.join("sub/big.raw"), 3 * MIB, 19);
    fs::write(photos.join("sub/deeper/c.txt"), b"c\n").unwrap();
    let elsewhere = env.tmp().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("secret"), b"not to be sent\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, photos.join("link")).unwrap();
    nix::unistd::mkfifo(&photos.join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    let mut tree = vec!["--put", "-r", s(&photos), "--to", "in"];
    tree.extend(remote_args(&rsh));
    let done = env.run_client(&tree);
    done.assert_code(1)
        .check(done.stderr.contains(&format!("shm_client: {}/link: skipped: ", photos.display())), "link")
        .check(done.stderr.contains(&format!("shm_client: {}/pipe: skipped: ", photos.display())), "fifo")
        .check(
            done.stdout.contains(&format!("{}/a.jpg: sent 4 bytes → in/photos/a.jpg", photos.display())),
            "a",
        );
    for rel in ["a.jpg", "sub/big.raw", "sub/deeper/c.txt"] {
        crate::util::assert_same_file(&photos.join(rel), &accept.join("in/photos").join(rel));
    }
    assert_eq!(crate::util::dir_entries(&accept.join("in/photos")), ["a.jpg", "sub"], "no link, no fifo");
    assert_eq!(crate::util::dir_entries(&elsewhere), ["secret"], "nothing written through a symlink");
    // --json, locally and through the relay, into a fresh directory and
    // then again with --no-clobber (every file skipped as existing).
    for extra in [&[][..], &["--no-clobber"][..]] {
        let mut local = vec!["--json", "--put", "-r", s(&photos), "--to", "j"];
        local.extend_from_slice(extra);
        if extra.is_empty() {
            let _ = fs::remove_dir_all(accept.join("j"));
        }
        let here = env.run_client(&local);
        here.assert_code(1);
        if extra.is_empty() {
            fs::remove_dir_all(accept.join("j")).unwrap();
        }
        let mut remote = local.clone();
        remote.extend(remote_args(&rsh));
        let there = env.run_client(&remote);
        there.assert_code(1);
        let (want, got) = (json_lines(&here.stdout), json_lines(&there.stdout));
        assert!(want.len() >= 6, "a line per file and skip, and a summary\n{here}");
        assert_eq!(got, want, "{extra:?}: the objects of a local run\n{there}");
        assert_eq!(there.stderr, here.stderr, "{extra:?}: the messages of a local run");
        for rel in ["a.jpg", "sub/big.raw", "sub/deeper/c.txt"] {
            crate::util::assert_same_file(&photos.join(rel), &accept.join("j/photos").join(rel));
        }
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The relay stopped (SIGSTOP) mid-upload: the client gives up at its
/// stall timeout with exit 4 and says so; the relay is ended, and the
/// server keeps nothing and takes the next upload.
#[test]
fn a_relay_stopped_mid_upload_ends_the_client_at_its_stall_timeout_and_leaves_nothing() {
    let env = TestEnv::new("relay_put_stopped");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 53);
    let pid_file = env.tmp().join("relay.pid");
    let rsh = script(&env, "rsh", &format!("shift\necho $$ > '{}'\nexec \"$@\"\n", pid_file.display()));
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--stall-timeout", "1", "--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    assert!(wait_until(TIMEOUT, || fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))));
    let relay = Pid::from_raw(fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap());
    kill(relay, Signal::SIGSTOP).expect("stop the relay");
    let stopped = std::time::Instant::now();
    let done = client.finish(TIMEOUT);
    let took = stopped.elapsed();
    // Resumed or gone: the client may have ended it already.
    let _ = kill(relay, Signal::SIGCONT);
    done.assert_code(4)
        .check(done.stderr.contains("--stall-timeout"), "the message names the stall timeout")
        .check(done.stdout.contains("nothing kept"), "and what became of the file")
        .check(!done.stderr.contains("partial"), "an upload has no partial file");
    assert!(
        took >= std::time::Duration::from_millis(500),
        "gave up after {took:?}, before the stall timeout"
    );
    // The stall timeout, and a stalled relay is not waited for long.
    assert!(took <= std::time::Duration::from_secs(2) + crate::util::SLACK, "took {took:?} to give up");
    let relay_gone = wait_until(crate::util::SLACK, || kill(relay, None).is_err());
    assert!(relay_gone, "the relay is ended with its client");
    assert!(
        wait_until(crate::util::DETECT + crate::util::SLACK, || server.open_files_under(&accept).is_empty()),
        "the server dropped the file it was receiving"
    );
    let cleaned =
        wait_until(crate::util::DETECT + crate::util::SLACK, || env.names.client_regions().is_empty());
    assert!(cleaned, "the relay's objects are gone: {:?}", env.names.shm_entries());
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under any name");
    let small = env.tmp().join("small");
    fs::write(&small, b"after\n").unwrap();
    let mut again = vec!["--put", s(&small)];
    again.extend(remote_args(&rsh));
    env.run_client(&again).assert_code(0);
    assert_eq!(crate::util::dir_entries(&accept), ["small"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// `--put` takes none of a fetch's delivery flags, here or through `-H`:
/// clap's usage error, exit 2, nothing started.
#[test]
fn put_refuses_the_flags_of_a_fetch_locally_and_through_a_relay() {
    let env = TestEnv::new("relay_put_flags");
    let file = env.tmp().join("a.txt");
    fs::write(&file, b"x\n").unwrap();
    let rsh = script(&env, "rsh", "echo ran >&2\nexit 9\n");
    let dest = env.tmp().join("dest");
    // (`-O NAME` names where the one file is stored: not refused.)
    for flag in [&["-C"][..], &["--continue"], &["--stdout"]] {
        for through in [false, true] {
            let mut args = vec!["--put", s(&file)];
            args.extend_from_slice(flag);
            if through {
                args.extend(["-H", "h", "--rsh", s(&rsh)]);
            }
            let done = env.run_client(&args);
            done.assert_code(2)
                .check(done.stderr.starts_with("error: the argument '"), "clap's message")
                .check(done.stderr.contains("cannot be used with"), "says what conflicts")
                .check(done.stderr.contains("Usage: shm_client"), "and the usage")
                .check(!done.stderr.contains("ran"), "no remote shell started");
            assert!(!dest.exists(), "{flag:?}: nothing written");
        }
    }
    env.assert_no_leftovers();
}

/// `--put` through a relay that finds no server: no file reached a server,
/// so none is "cut off after 3 B of 3 B"; each is not sent, and the summary
/// says so (not "not fetched").
#[test]
fn put_through_a_relay_that_finds_no_server_names_every_file_not_sent() {
    let env = TestEnv::new("relay_put_none_there");
    let rsh = local_rsh(&env);
    let (h, i) = (env.tmp().join("h.txt"), env.tmp().join("i.txt"));
    fs::write(&h, b"hi\n").unwrap();
    fs::write(&i, b"yo\n").unwrap();
    let mut args = vec!["--put", s(&h), s(&i), "--wait", "0"];
    args.extend(remote_args(&rsh));
    let done = env.run_client(&args);
    done.assert_code(3)
        .assert_stdout_lines(&[
            format!("{}: not sent: the server could not be reached", s(&h)),
            format!("{}: not sent: the server could not be reached", s(&i)),
        ])
        .check(done.stderr.contains("2 files: 0 delivered, 2 not sent;"), "the summary counts them not sent")
        .check(!done.stderr.contains("not fetched"), "an upload's summary says nothing of fetching");
    env.assert_no_leftovers();
}

/// A relay on the other end that plays a server: it writes `frames` (of
/// request 1) and ends. The records go through a file, so that any number
/// of them is written as fast as the client reads.
fn playing_relay(env: &TestEnv, frames: &[(FrameKind, Vec<u8>)]) -> PathBuf {
    let mut stream = Vec::new();
    for (kind, payload) in frames {
        let record = frame_record(*kind, 1, payload);
        stream.extend_from_slice(&(record.len() as u32).to_le_bytes());
        stream.extend_from_slice(&record);
    }
    let records = env.tmp().join("records");
    fs::write(&records, stream).unwrap();
    script(env, "rsh", &format!("cat '{}'\n", records.display()))
}

fn start_payload(size: u64, flags: StartFlags) -> Vec<u8> {
    let mut payload = Vec::new();
    Reply::Start { size, mode: 0o644, flags, mtime_ns: 0 }.encode_payload(&mut payload);
    payload
}

/// The relay ends after 100 of a file's 1000 bytes: the line of the file
/// cut off counts the 100 that came (it said 0: the bytes were told in
/// pieces of 1 MiB).
#[test]
fn a_fetch_cut_off_counts_the_bytes_that_came() {
    let env = TestEnv::new("relay_cut_count");
    let rsh = playing_relay(
        &env,
        &[(FrameKind::Start, start_payload(1000, StartFlags::NONE)), (FrameKind::Data, vec![7; 100])],
    );
    let done = env.run_client(&["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "a.txt"]);
    done.assert_code(4).check(
        done.stdout.starts_with("a.txt: failed: cut off after 100 B of 1000 B: "),
        "the bytes that came",
    );
    assert!(env.out_entries().is_empty(), "nothing kept");
}

/// A server (here a relay playing one) that sends more than the 64 MiB a
/// file of unknown size may have is named so, not "more than the announced
/// an unknown size bytes".
#[test]
fn more_than_a_file_of_unknown_size_may_have_is_named_so() {
    let env = TestEnv::new("relay_unknown_over");
    let chunk = 4000;
    let mut frames = vec![(FrameKind::Start, start_payload(0, StartFlags::SIZE_UNKNOWN))];
    let pieces = (64 * MIB) as usize / chunk + 1;
    frames.extend(std::iter::repeat_n((FrameKind::Data, vec![1u8; chunk]), pieces));
    let rsh = playing_relay(&env, &frames);
    let done = env.client(&["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "a.txt"]).finish(BIG_TIMEOUT);
    done.assert_code(4)
        .check(
            done.stderr.contains("server sent more than the 67108864 bytes a file of unknown size may have"),
            "names the bound of a file of unknown size",
        )
        .check(!done.stderr.contains("an unknown size bytes"), "no broken sentence");
    assert!(env.out_entries().is_empty(), "nothing kept");
}

/// A stream of upload records: each body with its length before it.
fn records(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for body in bodies {
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

fn put_record(seq: u32, path: &[u8]) -> Vec<u8> {
    Msg::Put { client_pid: 1, seq, region: "/unused".into(), path: path.to_vec(), flags: PutFlags::NONE }
        .encode()
        .unwrap()
}

/// The `Start` frame of upload `seq`: `size` bytes.
fn start_record(seq: u32, size: u64) -> Vec<u8> {
    let mut start = Vec::new();
    Reply::Start { size, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }.encode_payload(&mut start);
    frame_record(FrameKind::Start, seq, &start)
}

fn frame_record(kind: FrameKind, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut body = FrameHeader { kind, len: payload.len() as u32, seq }.encode().to_vec();
    body.extend_from_slice(payload);
    body
}

fn end_record(seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut end = Vec::new();
    Reply::End { count: payload.len() as u64, checksum: xxhash_rust::xxh3::xxh3_64(payload) }
        .encode_payload(&mut end);
    frame_record(FrameKind::End, seq, &end)
}

/// Runs `shm_client --relay=upload` on the test's queue with `input` as
/// its stdin (no `-H`: a hostile client speaking to it directly); its
/// stdout goes to a file, whose bytes are returned with how it ended.
fn hostile_relay(env: &TestEnv, name: &str, input: &[u8]) -> (crate::util::Finished, Vec<u8>) {
    let (stdin, stdout) = (env.tmp().join(format!("{name}.in")), env.tmp().join(format!("{name}.out")));
    fs::write(&stdin, input).unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$CLIENT\" --relay=upload --queue \"$Q\" --wait 5 --stall-timeout 5 <\"$IN\" >\"$OUT\"")
        .env("CLIENT", CLIENT)
        .env("Q", env.names.queue())
        .env("IN", &stdin)
        .env("OUT", &stdout)
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let done = crate::util::Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    (done, fs::read(&stdout).unwrap())
}

/// The answer records in a relay's `stdout`: seq and word each.
fn answers(stdout: &[u8]) -> Vec<(u32, u32)> {
    let word = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    stdout
        .chunks(16)
        .map(|r| {
            assert_eq!((r.len(), word(r, 0)), (16, 12), "an answer record: {stdout:?}");
            assert_eq!(&r[4..6], b"XA", "an answer record: {stdout:?}");
            (word(r, 8), word(r, 12))
        })
        .collect()
}

/// A hostile client on an upload relay's stdin: garbage, a record over
/// the bound, a frame of another request, a frame before any Put, an End
/// that does not decode, a stream cut inside an upload. Each time the
/// relay exits non-zero naming what was wrong, the server keeps nothing
/// under the name or beside the accept dir, and it goes on serving.
#[test]
fn a_hostile_client_on_an_upload_relay_ends_it_and_the_server_keeps_nothing() {
    let env = TestEnv::new("relay_put_hostile");
    env.create("a.txt", b"still served\n");
    let (mut server, accept) = accepting(&env);
    let beside = crate::util::dir_entries(env.tmp());
    let data = vec![7u8; 100];
    let over = u32::MAX.to_le_bytes().to_vec();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", b"garbage bytes, no record at all\n".to_vec(), "more than the"),
        ("over the bound", [over, vec![0; 16]].concat(), "more than the"),
        (
            "another request's frame",
            records(&[
                put_record(1, b"victim.bin"),
                start_record(1, 100),
                frame_record(FrameKind::Data, 2, &data),
            ]),
            "a frame of request 2 during upload 1",
        ),
        (
            "a frame before any Put",
            records(&[frame_record(FrameKind::Data, 1, &data)]),
            "where a Put was due",
        ),
        (
            "an End that does not decode",
            records(&[
                put_record(1, b"victim.bin"),
                start_record(1, 100),
                frame_record(FrameKind::Data, 1, &data),
                frame_record(FrameKind::End, 1, &[7; 3]),
            ]),
            "an End frame",
        ),
        (
            "cut inside an upload",
            records(&[
                put_record(1, b"victim.bin"),
                start_record(1, 100),
                frame_record(FrameKind::Data, 1, &data),
            ]),
            "it ended inside upload 1",
        ),
        (
            "a Put out of the directory, cut",
            records(&[put_record(1, b"../escape"), start_record(1, 100)]),
            "inside upload 1",
        ),
        (
            "a Put of request 0",
            records(&[put_record(0, b"victim.bin"), start_record(0, 0)]),
            "which is no new request",
        ),
        (
            "a request's seq again",
            records(&[
                put_record(1, b"first.bin"),
                start_record(1, 0),
                end_record(1, b""),
                put_record(1, b"victim.bin"),
                start_record(1, 0),
            ]),
            "a Put of request 1, which is no new request",
        ),
    ];
    for (i, (what, input, says)) in cases.into_iter().enumerate() {
        let (done, _) = hostile_relay(&env, &format!("case{i}"), &input);
        done.check(done.code().is_some_and(|c| c != 0), &format!("{what}: the relay fails"))
            .check(done.stderr.contains("shm_client: error: "), &format!("{what}: with a message"))
            .check(done.stderr.contains(says), &format!("{what}: {says}"));
        assert!(
            wait_until(crate::util::SLACK, || server.open_files_under(&accept).is_empty()),
            "{what}: the server dropped what it was receiving"
        );
        // `first.bin` is a whole upload before the fault: stored.
        let _ = fs::remove_file(accept.join("first.bin"));
        assert!(crate::util::dir_entries(&accept).is_empty(), "{what}: nothing under any name");
        assert_eq!(
            crate::util::dir_entries(env.tmp())
                .into_iter()
                .filter(|e| !e.starts_with("case"))
                .collect::<Vec<_>>(),
            beside,
            "{what}: nothing beside the accept dir"
        );
        assert!(server.is_running(), "{what}: the server died\n{}", server.snapshot());
        env.fetch(&["a.txt"]).assert_code(0);
        env.assert_delivered("a.txt");
        fs::remove_file(env.in_out("a.txt")).unwrap();
    }
    // A whole upload of `../escape`: refused by the server (the relay passes
    // its answer on; the client's exit then says so), nothing written.
    let escape = records(&[
        put_record(1, b"../escape"),
        start_record(1, 100),
        frame_record(FrameKind::Data, 1, &data),
        end_record(1, &data),
    ]);
    let (done, stdout) = hostile_relay(&env, "case_escape", &escape);
    done.assert_code(0);
    let [(1, word)] = answers(&stdout)[..] else { panic!("one answer to upload 1: {stdout:?}") };
    let answer = shmxfer::upload::UploadAnswer::from_code(word).unwrap();
    assert!(matches!(answer, shmxfer::upload::UploadAnswer::Refused(_)), "refused: {answer:?}");
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing in the accept dir");
    assert!(!env.tmp().join("escape").exists(), "nothing beside it");
    // The relay's own stream is whole: a good upload still goes.
    let good = records(&[
        put_record(1, b"good.bin"),
        start_record(1, 100),
        frame_record(FrameKind::Data, 1, &data),
        end_record(1, &data),
    ]);
    let (done, stdout) = hostile_relay(&env, "case_good", &good);
    done.assert_code(0);
    assert_eq!(answers(&stdout), [(1, shmxfer::upload::UploadAnswer::Stored.code())]);
    assert_eq!(fs::read(accept.join("good.bin")).unwrap(), data);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The client killed mid-upload through a relay: the relay sees its
/// stream end inside the upload and ends, and the server keeps nothing.
#[test]
fn a_client_killed_mid_upload_through_a_relay_leaves_nothing_on_the_server() {
    let env = TestEnv::new("relay_put_client_killed");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 54);
    let pid_file = env.tmp().join("relay.pid");
    let rsh = script(&env, "rsh", &format!("shift\necho $$ > '{}'\nexec \"$@\"\n", pid_file.display()));
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    assert!(wait_until(TIMEOUT, || fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n'))));
    let relay = Pid::from_raw(fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap());
    client.kill();
    assert!(wait_until(crate::util::SLACK, || kill(relay, None).is_err()), "the relay ends with its stream");
    assert!(
        wait_until(crate::util::DETECT + crate::util::SLACK, || server.open_files_under(&accept).is_empty()),
        "the server dropped the file it was receiving"
    );
    let cleaned =
        wait_until(crate::util::DETECT + crate::util::SLACK, || env.names.client_regions().is_empty());
    assert!(cleaned, "the relay's objects are gone: {:?}", env.names.shm_entries());
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under any name");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The client stopped mid-upload through a relay: the server's stall
/// timeout ends the session and drops the file; the client, resumed,
/// learns its session ended; the server takes the next upload.
#[test]
fn a_client_stopped_mid_upload_through_a_relay_is_ended_by_the_servers_stall_timeout() {
    let env = TestEnv::new("relay_put_client_stopped");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 55);
    let rsh = local_rsh(&env);
    let accept = env.tmp().join("accept");
    fs::create_dir_all(&accept).unwrap();
    let mut server = env.ready_server(&["--persistent", "--accept", s(&accept), "--stall-timeout", "1"]);
    let mut args = vec!["--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    let dropped =
        wait_until(crate::util::DETECT + crate::util::SLACK, || server.open_files_under(&accept).is_empty());
    assert!(dropped, "the server still holds the upload: {:?}", server.open_files_under(&accept));
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under the final name");
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    done.assert_code(4).check(done.stderr.contains("the relay on h"), "the message names the relay");
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under the final name");
    let small = env.tmp().join("small");
    fs::write(&small, b"after\n").unwrap();
    let mut again = vec!["--put", s(&small)];
    again.extend(remote_args(&rsh));
    env.run_client(&again).assert_code(0);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The server stopped mid-upload behind a relay: the relay gives up at
/// the stall timeout it was given, the client ends with 4 naming the
/// relay; the server, resumed, keeps nothing and takes the next upload.
#[test]
fn a_server_stopped_mid_upload_behind_a_relay_ends_the_client_at_the_stall_timeout() {
    let env = TestEnv::new("relay_put_server_stopped");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 56);
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--stall-timeout", "1", "--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    server.signal(Signal::SIGSTOP);
    let stopped = std::time::Instant::now();
    let done = client.finish(TIMEOUT);
    let took = stopped.elapsed();
    server.signal(Signal::SIGCONT);
    done.assert_code(4).check(done.stderr.contains("stall"), "the session stalled");
    assert!(
        took >= std::time::Duration::from_millis(500),
        "gave up after {took:?}, before the stall timeout"
    );
    assert!(took <= std::time::Duration::from_secs(4) + crate::util::SLACK, "took {took:?} to give up");
    assert!(
        wait_until(crate::util::DETECT + crate::util::SLACK, || server.open_files_under(&accept).is_empty()),
        "the resumed server dropped the file it was receiving"
    );
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under the final name");
    let small = env.tmp().join("small");
    fs::write(&small, b"after\n").unwrap();
    let mut again = vec!["--put", s(&small)];
    again.extend(remote_args(&rsh));
    env.run_client(&again).assert_code(0);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A big file refused through a relay (a directory has its name): the
/// refusal comes back at once, the client stops sending (what was in
/// flight is drained, not streamed to the end), and the next file goes.
#[test]
fn a_big_file_refused_through_a_relay_stops_its_data_and_the_next_file_goes() {
    let env = TestEnv::new("relay_put_refused_big");
    let src = env.tmp().join("src");
    fs::create_dir_all(&src).unwrap();
    let big = src.join("big.bin");
    crate::util::write_random_file(&big, BIG, 57);
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    fs::create_dir(accept.join("big.bin")).unwrap();
    let mut args = vec!["--put", s(&big), s(&small)];
    args.extend(remote_args(&rsh));
    let done = env.run_client(&args);
    done.assert_code(1)
        .check(done.stdout.contains("a directory has that name on the server"), "refused, as locally")
        .check(done.stdout.contains("sent 6 bytes → small"), "the next file goes");
    assert_eq!(crate::util::dir_entries(&accept), ["big.bin", "small"]);
    assert!(crate::util::dir_entries(&accept.join("big.bin")).is_empty(), "the directory left as it was");
    env.stop_server(&mut server);
    let log = server.stderr();
    let after: u64 = log
        .lines()
        .find_map(|l| l.split("big.bin: upload refused after ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the refusal logged\n{log}"));
    assert!(after < 4 * MIB, "{after} bytes streamed after the refusal\n{log}");
    env.assert_no_leftovers();
}

/// Ctrl-C on the client mid-upload through a relay: the relay sees the
/// client's stream end between records, which is the client leaving, not
/// a protocol error; the server logs the upload stopped and keeps nothing.
#[test]
fn a_client_interrupted_mid_upload_through_a_relay_is_no_protocol_error() {
    let env = TestEnv::new("relay_put_client_sigint");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 57);
    let relay_err = env.tmp().join("relay.err");
    let rsh = script(&env, "rsh", &format!("shift\nexec \"$@\" 2>'{}'\n", relay_err.display()));
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--put", s(&big)];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGINT);
    client.finish(TIMEOUT).assert_code(130);
    let logged = wait_until(crate::util::DETECT + crate::util::SLACK, || {
        server.stderr().contains("big.bin: upload stopped after ")
    });
    assert!(logged, "the server logs the upload stopped\n{}", server.stderr());
    let said = fs::read_to_string(&relay_err).unwrap_or_default();
    assert!(!said.contains("protocol error"), "the relay calls no protocol error: {said}");
    assert!(said.lines().count() <= 1, "one line at most: {said}");
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under any name");
    assert!(
        wait_until(crate::util::DETECT + crate::util::SLACK, || env.names.client_regions().is_empty()),
        "the relay's objects are gone"
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The client stopped mid-upload while its relay runs on: the relay gives
/// up at the stall timeout it was given (the server's is far longer) and
/// leaves, so the session it held on the server ends.
#[test]
fn an_upload_relay_whose_client_stops_sending_leaves_at_its_stall_timeout() {
    let env = TestEnv::new("relay_put_relay_gives_up");
    let big = env.tmp().join("big.bin");
    crate::util::write_random_file(&big, BIG, 57);
    let rsh = local_rsh(&env);
    let (mut server, accept) = accepting(&env);
    let mut args = vec!["--put", s(&big), "--stall-timeout", "1"];
    args.extend(remote_args(&rsh));
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(&accept, "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    let relays =
        std::process::Command::new("pgrep").arg("-P").arg(client.pid().to_string()).output().unwrap();
    let relay: i32 =
        String::from_utf8_lossy(&relays.stdout).trim().parse().expect("the relay is the client's child");
    client.signal(Signal::SIGSTOP);
    let left = wait_until(crate::util::DETECT + crate::util::SLACK, || {
        // Gone, or a zombie its stopped parent has not reaped.
        fs::read_to_string(format!("/proc/{relay}/stat")).map_or(true, |st| st.contains(") Z "))
    });
    assert!(left, "the relay still runs with its client stopped");
    let dropped = wait_until(crate::util::DETECT, || server.open_files_under(&accept).is_empty());
    assert!(dropped, "the server still holds the upload");
    client.signal(Signal::SIGCONT);
    client.finish(TIMEOUT).assert_code(4);
    assert!(crate::util::dir_entries(&accept).is_empty(), "nothing under the final name");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A relay (or a server behind it) that sends list entries, or entries
/// left out, without end: the listing ends at its bound with an error
/// naming it, and the client's memory stays bounded (it used to grow by
/// ~90 MB/s until the kernel's OOM killer took it). The relay script
/// writes the same records again and again and notes the client's peak
/// memory (`VmHWM`) after each round.
#[test]
fn a_relay_that_sends_list_entries_without_end_ends_the_listing_at_its_bound() {
    let env = TestEnv::new("relay_endless_listing");
    let path = vec![b'x'; 200];
    let mut entry = Vec::new();
    Reply::ListEntry { size: 1, mode: 0o644, mtime_secs: 0, mtime_nsec: 0, path: path.clone() }
        .encode_payload(&mut entry);
    let mut skip = Vec::new();
    let code = shmxfer::testing::protocol::SkipCode::Unreadable;
    Reply::ListSkipped { code, detail: 13, path }.encode_payload(&mut skip);
    for (name, kind, payload, args, bound) in [
        ("entries", FrameKind::ListEntry, entry, &["--list"][..], "more than 100000 files in one listing"),
        (
            "skips",
            FrameKind::ListSkipped,
            skip,
            &["-r", "."][..],
            "more than 10000 entries left out of one listing",
        ),
    ] {
        let round = records(&vec![frame_record(kind, 1, &payload); 10_000]);
        let chunk = env.tmp().join(format!("{name}.records"));
        fs::write(&chunk, round).unwrap();
        let hwm = env.tmp().join(format!("{name}.hwm"));
        // 100 rounds (a million records) at most: past every bound, and an
        // end to the test on a build without one.
        let body = format!(
            "i=0\nwhile [ $i -lt 100 ] && cat '{}'; do\n  i=$((i+1))\n  grep VmHWM /proc/$PPID/status >> '{}' || exit 0\ndone\nexec sleep 5\n",
            chunk.display(),
            hwm.display()
        );
        let rsh = script(&env, &format!("rsh_{name}"), &body);
        let mut cmd = vec!["-o", s(env.out()), "-H", "h", "--rsh", s(&rsh), "--stall-timeout", "3"];
        cmd.extend_from_slice(args);
        let done = env.run_client(&cmd);
        done.assert_code(4).check(done.stderr.contains(bound), "the error names the bound");
        let peak_kib = fs::read_to_string(&hwm)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        assert!(peak_kib < 200 * 1024, "{name}: the client grew to {peak_kib} KiB\n{done}");
    }
    assert!(dir_is_empty(env.out()), "nothing written");
    env.assert_no_leftovers();
}

fn dir_is_empty(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}
