//! End-to-end transfers through the real `shm_server` and `shm_client`:
//! files of every size, many clients, the server's modes of running, the
//! received files' modes (the umask, as `cp`), the longest file name, and
//! a client out of file descriptors.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{
    assert_no_leftovers, assert_out_empty, assert_same_file, command, dir_entries, final_component,
    holds_for, new_dir, received_line, stop, Names, Proc, Signal, TestEnv, BIG, CLIENT, MIB, SERVER, SLOT,
    TIMEOUT,
};

/// How long a server may take to exit after its last client or a signal.
const SERVER_EXIT: Duration = Duration::from_secs(5);

/// Waits until `client` is receiving `final_name`, then stops it with
/// SIGSTOP, so the transfer is certainly in flight whatever the throughput.
/// The caller sends SIGCONT.
#[track_caller]
fn freeze_mid_transfer(env: &TestEnv, client: &mut Proc, final_name: &str) {
    env.wait_receiving(client, final_name);
    client.signal(Signal::SIGSTOP);
    assert!(
        client.is_running() && !env.in_out(final_name).exists() && env.is_receiving(client, final_name),
        "\n\n==========\nexpected the client to be stopped while receiving into a \
         temporary file in {:?}; it has open there {:?}; the dir holds {:?}\n{}",
        env.out(),
        client.open_files_under(env.out()),
        env.out_entries(),
        client.snapshot()
    );
    assert!(!env.names.client_regions().is_empty(), "no client region while a transfer is in flight");
}

#[test]
fn many_files_arrive_in_one_session() {
    let env = TestEnv::new("many_files_arrive_in_one_session");
    let mut rng = crate::util::Rng::new(7);
    let mut files = Vec::new();
    for i in 0..20 {
        let name = format!("file{i:02}.dat");
        let len = rng.range(0, 3 * SLOT as u64);
        env.create_random(&name, len, 100 + i);
        files.push((name, len));
    }
    // A chatty server: its output must not get in the way.
    let mut server = env.server(&["-v"]);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = files.iter().map(|(n, l)| received_line(n, *l)).collect();
    env.fetch(&names).assert_code(0).assert_stdout_lines(&want);
    for name in &names {
        env.assert_delivered(name);
    }
    assert_eq!(env.out_entries().len(), files.len(), "unexpected files in out dir");
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn missing_file_is_reported_and_the_others_still_arrive() {
    let env = TestEnv::new("missing_file_is_reported");
    env.create("a.txt", b"first\n");
    env.create("c.txt", b"third\n");
    let mut server = env.server(&[]);
    env.fetch(&["a.txt", "missing.txt", "c.txt"]).assert_code(1).assert_stdout_lines(&[
        received_line("a.txt", 6),
        "missing.txt: not found on server".to_string(),
        received_line("c.txt", 6),
    ]);
    env.assert_delivered("a.txt");
    env.assert_delivered("c.txt");
    assert!(!env.in_out("missing.txt").exists(), "a file was created for the missing one");
    assert_eq!(env.out_entries(), ["a.txt", "c.txt"]);
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn files_of_boundary_sizes_arrive_intact() {
    let env = TestEnv::new("files_of_boundary_sizes_arrive_intact");
    let slot = SLOT as u64;
    // The server reads IO_CHUNK bytes at a time and cuts them into slots.
    let chunk = shmxfer::testing::IO_CHUNK as u64;
    let sizes = [0, 1, slot - 1, slot, slot + 1, 4096, chunk - 1, chunk, chunk + 1, MIB + 7];
    let mut files = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let name = format!("size_{len}.bin");
        env.create_random(&name, *len, i as u64);
        files.push((name, *len));
    }
    let mut server = env.server(&[]);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let want: Vec<String> = files.iter().map(|(n, l)| received_line(n, *l)).collect();
    env.fetch(&names).assert_code(0).assert_stdout_lines(&want);
    for name in &names {
        env.assert_delivered(name);
    }
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn a_64_mib_file_arrives_intact() {
    let env = TestEnv::new("a_64_mib_file_arrives_intact");
    let len = 64 * MIB;
    env.create_random("big.bin", len, 64);
    let mut server = env.server(&[]);
    env.fetch_proc(&["big.bin"])
        .finish(Duration::from_secs(60))
        .assert_code(0)
        .assert_stdout_lines(&[received_line("big.bin", len)]);
    env.assert_delivered("big.bin");
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn client_started_before_the_server_waits_and_succeeds() {
    let env = TestEnv::new("client_started_before_the_server");
    env.create("hello.txt", b"hello\n");
    let out = env.out().to_str().unwrap().to_string();
    let mut client = env.client(&["--wait", "20", "-o", &out, "hello.txt"]);
    let waits = holds_for(Duration::from_millis(500), || client.is_running());
    assert!(waits, "\n\n==========\nclient gave up before the server started\n{}", client.snapshot());
    let mut server = env.server(&[]);
    let done = client.finish(TIMEOUT);
    done.assert_code(0)
        .assert_stdout_lines(&[received_line("hello.txt", 6)])
        .check(done.stderr.to_lowercase().contains("wait"), "stderr mentions that the client is waiting")
        .check(
            done.stderr.lines().filter(|l| l.to_lowercase().contains("wait")).count() == 1,
            "the client says only once that it is waiting",
        )
        .assert_stderr_prefixed("shm_client: ");
    env.assert_delivered("hello.txt");
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn client_with_wait_zero_and_no_server_exits_3_at_once() {
    let env = TestEnv::new("client_with_wait_zero_and_no_server");
    let done = env.run_client(&["--wait", "0", "hello.txt"]);
    done.assert_code(3)
        .check(done.elapsed < Duration::from_secs(2), "--wait 0 gives up quickly")
        .check(!done.stderr.is_empty(), "the client says why it gives up")
        .assert_stderr_prefixed("shm_client: ");
    assert_eq!(dir_entries(env.cwd()), Vec::<String>::new());
    env.assert_no_leftovers();
}

#[test]
fn client_with_wait_one_and_no_server_exits_3_after_about_a_second() {
    let env = TestEnv::new("client_with_wait_one_and_no_server");
    let done = env.run_client(&["--wait", "1", "hello.txt"]);
    done.assert_code(3).check(
        done.elapsed >= Duration::from_millis(900) && done.elapsed < Duration::from_secs(5),
        "--wait 1 gives up after about one second",
    );
    env.assert_no_leftovers();
}

#[test]
fn two_clients_at_once_are_served_by_a_persistent_server() {
    let env = TestEnv::new("two_clients_at_once");
    env.create_random("one.bin", 8 * MIB, 1);
    env.create_random("two.bin", 8 * MIB + 3, 2);
    let mut server = env.ready_server(&["--persistent"]);
    let out1 = env.tmp().join("out1");
    let out2 = env.tmp().join("out2");
    fs::create_dir(&out1).unwrap();
    fs::create_dir(&out2).unwrap();
    let mut c1 = env.client(&["-o", out1.to_str().unwrap(), "one.bin", "two.bin"]);
    let mut c2 = env.client(&["-o", out2.to_str().unwrap(), "two.bin", "one.bin"]);
    c1.finish(TIMEOUT)
        .assert_code(0)
        .assert_stdout_lines(&[received_line("one.bin", 8 * MIB), received_line("two.bin", 8 * MIB + 3)]);
    c2.finish(TIMEOUT)
        .assert_code(0)
        .assert_stdout_lines(&[received_line("two.bin", 8 * MIB + 3), received_line("one.bin", 8 * MIB)]);
    for out in [&out1, &out2] {
        assert_same_file(&env.in_root("one.bin"), &out.join("one.bin"));
        assert_same_file(&env.in_root("two.bin"), &out.join("two.bin"));
    }
    assert!(server.is_running(), "persistent server exited on its own");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn default_server_exits_by_itself_after_the_client_finishes() {
    let env = TestEnv::new("default_server_exits_by_itself");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["-q"]);
    env.fetch(&["hello.txt"]).assert_code(0);
    env.assert_delivered("hello.txt");
    let done = server.finish(SERVER_EXIT);
    done.assert_code(0);
    assert!(!env.names.queue_exists(), "queue left behind");
    env.assert_no_leftovers();
}

#[test]
fn default_server_finishes_open_sessions_before_exiting() {
    let env = TestEnv::new("default_server_finishes_open_sessions");
    env.create_random("big.bin", BIG, 259);
    env.create("small.txt", b"small\n");
    let mut server = env.ready_server(&[]);
    let mut first = env.fetch_proc(&["big.bin"]);
    freeze_mid_transfer(&env, &mut first, "big.bin");

    // A second client is served while the first one holds its session, and
    // its shutdown message does not end the server under the first.
    let second_out = env.tmp().join("second");
    fs::create_dir(&second_out).unwrap();
    let second = env.run_client(&["-o", second_out.to_str().unwrap(), "small.txt"]);
    let server_running = holds_for(Duration::from_millis(300), || server.is_running());
    first.signal(Signal::SIGCONT);
    second.assert_code(0).assert_stdout_lines(&[received_line("small.txt", 6)]);
    assert_same_file(&env.in_root("small.txt"), &second_out.join("small.txt"));
    assert!(server_running, "\n\n==========\nserver exited while a session was open\n{}", server.snapshot());

    first
        .finish(Duration::from_secs(60))
        .assert_code(0)
        .assert_stdout_lines(&[received_line("big.bin", BIG)]);
    env.assert_delivered("big.bin");
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn persistent_server_serves_clients_one_after_another_until_stopped() {
    let env = TestEnv::new("persistent_server_serves_clients");
    env.create("a.txt", b"alpha\n");
    env.create("b.txt", b"bravo!\n");
    let mut server = env.ready_server(&["--persistent"]);
    env.fetch(&["a.txt"]).assert_code(0).assert_stdout_lines(&[received_line("a.txt", 6)]);
    assert!(
        holds_for(Duration::from_millis(300), || server.is_running()),
        "\n\n==========\npersistent server exited after one client\n{}",
        server.snapshot()
    );
    env.fetch(&["b.txt"]).assert_code(0).assert_stdout_lines(&[received_line("b.txt", 7)]);
    env.assert_delivered("a.txt");
    env.assert_delivered("b.txt");
    let kept = holds_for(Duration::from_millis(300), || server.is_running());
    assert!(kept, "persistent server exited after two clients");
    assert!(env.names.queue_exists(), "persistent server's queue is gone");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn stop_server_without_a_server_exits_3() {
    let env = TestEnv::new("stop_server_without_a_server_exits_3");
    env.run_client(&["--wait", "0", "--stop-server"]).assert_code(3);
    env.assert_no_leftovers();
}

#[test]
fn list_prints_every_file_with_its_size() {
    let env = TestEnv::new("list_prints_every_file_with_its_size");
    env.create("alpha.txt", b"12345");
    env.create("empty.txt", b"");
    env.create("name with space.txt", b"spaced\n");
    env.create("subdir/nested.txt", b"nested file\n");
    env.create_random("zeta.bin", 5000, 3);
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["--list"]).assert_code(0).assert_stdout_lines(&[
        "5\talpha.txt".to_string(),
        "0\tempty.txt".to_string(),
        "7\tname with space.txt".to_string(),
        "12\tsubdir/nested.txt".to_string(),
        "5000\tzeta.bin".to_string(),
    ]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The sample files shipped in `files/`, relative to that directory.
const SHIPPED: [&str; 7] = [
    "binary.bin",
    "empty.txt",
    "hello.txt",
    "name with space.txt",
    "one_slot.bin",
    "one_slot_plus_one.bin",
    "subdir/nested.txt",
];

fn shipped_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("files")
}

#[test]
fn shipped_sample_files_have_the_documented_shape() {
    let root = shipped_root();
    let size = |rel: &str| fs::metadata(root.join(rel)).unwrap().len();
    assert_eq!(size("empty.txt"), 0);
    assert_eq!(size("one_slot.bin"), SLOT as u64);
    assert_eq!(size("one_slot_plus_one.bin"), SLOT as u64 + 1);
    let binary = fs::read(root.join("binary.bin")).unwrap();
    let mut seen = [false; 256];
    for b in &binary {
        seen[*b as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "binary.bin lacks some byte values");
}

#[test]
fn shipped_files_transfer_completely() {
    let env = TestEnv::new("shipped_files_transfer_completely");
    let root = shipped_root();
    let mut server = env.server_in(&root, &["--persistent"]);
    // The server may not be up yet: --list waits only when told to.
    let listing = env.run_client(&["--list", "--wait", "30"]);
    let want_listing: Vec<String> =
        SHIPPED.iter().map(|rel| format!("{}\t{rel}", fs::metadata(root.join(rel)).unwrap().len())).collect();
    listing.assert_code(0).assert_stdout_lines(&want_listing);
    let want: Vec<String> =
        SHIPPED.iter().map(|rel| received_line(rel, fs::metadata(root.join(rel)).unwrap().len())).collect();
    env.fetch(&SHIPPED).assert_code(0).assert_stdout_lines(&want);
    for rel in SHIPPED {
        assert_same_file(&root.join(rel), &env.in_out(final_component(rel)));
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn file_in_subdirectory_is_written_under_its_final_name() {
    let env = TestEnv::new("file_in_subdirectory");
    env.create("subdir/nested.txt", b"nested\n");
    let mut server = env.server(&[]);
    env.fetch(&["subdir/nested.txt"])
        .assert_code(0)
        .assert_stdout_lines(&[received_line("subdir/nested.txt", 7)]);
    assert_eq!(env.out_entries(), ["nested.txt"]);
    assert_same_file(&env.in_root("subdir/nested.txt"), &env.in_out("nested.txt"));
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn directories_and_paths_outside_the_root_are_refused() {
    let env = TestEnv::new("directories_and_paths_outside_the_root");
    env.create("subdir/nested.txt", b"nested\n");
    env.create("ok.txt", b"ok\n");
    fs::write(env.tmp().join("secret.txt"), b"outside the root\n").unwrap();
    let mut server = env.server(&[]);
    let done = env.fetch(&["subdir", "../secret.txt", "ok.txt"]);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    done.check(lines.len() == 3, "one line per requested file")
        .check(lines[0].starts_with("subdir: refused by server: "), "a directory is refused")
        .check(
            lines[1].starts_with("../secret.txt: refused by server: "),
            "a path escaping the root is refused",
        )
        .check(lines[2] == received_line("ok.txt", 3), "the good file arrives");
    assert_eq!(env.out_entries(), ["ok.txt"]);
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn quiet_client_prints_only_failures() {
    let env = TestEnv::new("quiet_client_prints_only_failures");
    env.create("a.txt", b"a\n");
    let mut server = env.server(&[]);
    let out = env.out().to_str().unwrap().to_string();
    env.run_client(&["-q", "-o", &out, "a.txt", "nope.txt"])
        .assert_code(1)
        .assert_stdout_lines(&["nope.txt: not found on server".to_string()]);
    env.assert_delivered("a.txt");
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn existing_file_in_out_dir_is_replaced() {
    let env = TestEnv::new("existing_file_in_out_dir_is_replaced");
    env.create("hello.txt", b"new contents\n");
    fs::write(env.in_out("hello.txt"), b"old contents that are longer\n").unwrap();
    let mut server = env.server(&[]);
    env.fetch(&["hello.txt"]).assert_code(0).assert_stdout_lines(&[received_line("hello.txt", 13)]);
    env.assert_delivered("hello.txt");
    assert_eq!(env.out_entries(), ["hello.txt"]);
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn no_clobber_skips_an_existing_file_and_exits_0() {
    let env = TestEnv::new("no_clobber_keeps_an_existing_file");
    env.create("hello.txt", b"new contents\n");
    env.create("other.txt", b"other\n");
    let old = b"old contents\n";
    fs::write(env.in_out("hello.txt"), old).unwrap();
    let mut server = env.server(&[]);
    let out = env.out().to_str().unwrap().to_string();
    let done = env.run_client(&["--no-clobber", "-o", &out, "hello.txt", "other.txt"]);
    done.assert_code(0);
    let lines: Vec<&str> = done.stdout.lines().collect();
    done.check(lines.len() == 2, "one line per requested file")
        .check(lines[0] == "hello.txt: skipped: exists", "the existing file is reported as skipped")
        .check(lines[1] == received_line("other.txt", 6), "a file that does not exist yet still arrives");
    assert_eq!(fs::read(env.in_out("hello.txt")).unwrap(), old);
    env.assert_delivered("other.txt");
    assert_eq!(env.out_entries(), ["hello.txt", "other.txt"]);
    server.finish(SERVER_EXIT).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn out_dir_given_with_dash_o_receives_the_files() {
    let env = TestEnv::new("out_dir_given_with_dash_o");
    env.create("hello.txt", b"hello\n");
    let custom = env.tmp().join("custom out");
    fs::create_dir(&custom).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-o", custom.to_str().unwrap(), "hello.txt"]).assert_code(0);
    assert_same_file(&env.in_root("hello.txt"), &custom.join("hello.txt"));
    assert_eq!(dir_entries(env.cwd()), Vec::<String>::new());
    env.run_client(&["--out-dir", custom.to_str().unwrap(), "hello.txt"]).assert_code(0);
    assert_same_file(&env.in_root("hello.txt"), &custom.join("hello.txt"));
    // Without -o the file goes to the working directory.
    env.run_client(&["hello.txt"]).assert_code(0);
    assert_same_file(&env.in_root("hello.txt"), &env.cwd().join("hello.txt"));
    assert_eq!(dir_entries(env.cwd()), ["hello.txt"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

fn client_interrupted_mid_transfer_exits_130_and_leaves_nothing(test: &str, signal: Signal) {
    let env = TestEnv::new(test);
    env.create_random("big.bin", BIG, 256);
    env.create("after.txt", b"still serving\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_proc(&["big.bin"]);
    freeze_mid_transfer(&env, &mut client, "big.bin");
    client.signal(signal);
    client.signal(Signal::SIGCONT);
    client.finish(Duration::from_secs(5)).assert_code(130);
    assert!(!env.in_out("big.bin").exists(), "an interrupted transfer left a file under the final name");
    assert_eq!(env.out_entries(), Vec::<String>::new(), "temporary file left");
    let left = env.names.client_regions();
    assert!(left.is_empty(), "client objects left: {left:?}");
    env.fetch(&["after.txt"]).assert_code(0).assert_stdout_lines(&[received_line("after.txt", 14)]);
    env.assert_delivered("after.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn sigint_to_client_mid_transfer_exits_130_and_leaves_nothing() {
    client_interrupted_mid_transfer_exits_130_and_leaves_nothing(
        "sigint_to_client_mid_transfer",
        Signal::SIGINT,
    );
}

#[test]
fn sigterm_to_client_mid_transfer_exits_130_and_leaves_nothing() {
    client_interrupted_mid_transfer_exits_130_and_leaves_nothing(
        "sigterm_to_client_mid_transfer",
        Signal::SIGTERM,
    );
}

fn idle_persistent_server_exits_0_on(test: &str, signal: Signal) {
    let env = TestEnv::new(test);
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    env.fetch(&["hello.txt"]).assert_code(0);
    server.signal(signal);
    server.finish(Duration::from_secs(2)).assert_code(0);
    env.assert_no_leftovers();
}

#[test]
fn idle_persistent_server_exits_0_on_sigint() {
    idle_persistent_server_exits_0_on("idle_persistent_server_sigint", Signal::SIGINT);
}

#[test]
fn idle_persistent_server_exits_0_on_sigterm() {
    idle_persistent_server_exits_0_on("idle_persistent_server_sigterm", Signal::SIGTERM);
}

#[test]
fn sigterm_to_server_mid_transfer_makes_the_client_exit_4() {
    let env = TestEnv::new("sigterm_to_server_mid_transfer");
    env.create_random("big.bin", BIG, 257);
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_proc(&["big.bin"]);
    freeze_mid_transfer(&env, &mut client, "big.bin");
    server.signal(Signal::SIGTERM);
    let server_done = server.finish(Duration::from_secs(2));
    client.signal(Signal::SIGCONT);
    server_done.assert_code(0);
    client.finish(TIMEOUT).assert_code(4);
    assert!(!env.in_out("big.bin").exists(), "a cut-off transfer left a file under the final name");
    assert_eq!(env.out_entries(), Vec::<String>::new(), "temporary file left");
    env.assert_no_leftovers();
}

#[test]
fn second_server_on_a_live_queue_exits_1_and_the_first_keeps_working() {
    let env = TestEnv::new("second_server_on_a_live_queue");
    env.create("hello.txt", b"hello\n");
    let mut first = env.ready_server(&["--persistent"]);
    let mut second = env.server(&["--persistent"]);
    let done = second.finish(Duration::from_secs(10));
    done.assert_code(1).check(done.stderr.contains("shm_server"), "the second server says why it stops");
    assert!(first.is_running(), "the first server died");
    assert!(env.names.queue_exists(), "the first server's queue is gone");
    env.fetch(&["hello.txt"]).assert_code(0).assert_stdout_lines(&[received_line("hello.txt", 6)]);
    env.assert_delivered("hello.txt");
    env.stop_server(&mut first);
    env.assert_no_leftovers();
}

#[test]
fn client_without_files_is_a_usage_error() {
    let env = TestEnv::new("client_without_files_is_a_usage_error");
    let done = env.run_client(&["--wait", "0"]);
    done.assert_code(2).check(!done.stderr.is_empty(), "usage is explained on stderr");
    env.assert_no_leftovers();
}

#[test]
fn unknown_flag_is_a_usage_error_for_both_programs() {
    let env = TestEnv::new("unknown_flag_is_a_usage_error");
    env.run_client(&["--no-such-flag", "x"]).assert_code(2);
    let mut server = env.server(&["--no-such-flag"]);
    server.finish(TIMEOUT).assert_code(2);
    env.assert_no_leftovers();
}

#[test]
fn busy_server_turns_away_an_extra_client() {
    let env = TestEnv::new("busy_server_turns_away_an_extra_client");
    env.create_random("big.bin", BIG, 258);
    env.create("small.txt", b"small\n");
    let mut server = env.ready_server(&["--persistent", "--max-sessions", "1"]);
    let mut first = env.fetch_proc(&["big.bin"]);
    freeze_mid_transfer(&env, &mut first, "big.bin");

    let extra_out = env.tmp().join("extra");
    fs::create_dir(&extra_out).unwrap();
    let extra = env.run_client(&["-o", extra_out.to_str().unwrap(), "small.txt"]);
    first.signal(Signal::SIGCONT);
    extra
        .assert_code(1)
        .check(extra.stderr.contains("busy"), "stderr says the server is busy")
        .assert_stderr_prefixed("shm_client: ");
    assert_eq!(dir_entries(&extra_out), Vec::<String>::new());

    first
        .finish(Duration::from_secs(60))
        .assert_code(0)
        .assert_stdout_lines(&[received_line("big.bin", BIG)]);
    env.assert_delivered("big.bin");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn shmxfer_queue_env_selects_the_queue_on_both_sides() {
    let env = TestEnv::new("shmxfer_queue_env_selects_the_queue");
    env.create("hello.txt", b"hello\n");
    let names: &Names = &env.names;

    let mut cmd = command(SERVER, None);
    cmd.env("SHMXFER_QUEUE", names.queue()).arg("--root").arg(env.root()).current_dir(env.cwd());
    let mut server = Proc::spawn(cmd, Some(names));
    crate::util::wait_for_queue(names, &mut server);

    let mut cmd = command(CLIENT, None);
    cmd.env("SHMXFER_QUEUE", names.queue()).arg("-o").arg(env.out()).arg("hello.txt").current_dir(env.cwd());
    Proc::spawn(cmd, Some(names))
        .finish(TIMEOUT)
        .assert_code(0)
        .assert_stdout_lines(&[received_line("hello.txt", 6)]);
    env.assert_delivered("hello.txt");
    server.finish(SERVER_EXIT).assert_code(0);
    assert_no_leftovers(names);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 6,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Sizes near multiples of the slot payload, several files per session.
    #[test]
    fn files_of_sizes_near_slot_multiples_arrive_intact(
        sizes in proptest::collection::vec((0u64..5, -2i64..=2), 1..5),
        seed in proptest::num::u64::ANY,
    ) {
        let env = TestEnv::new("files_of_sizes_near_slot_multiples");
        let mut files = Vec::new();
        for (i, (k, delta)) in sizes.iter().enumerate() {
            let len = (k * SLOT as u64).saturating_add_signed(*delta);
            let name = format!("f{i}_{len}.bin");
            env.create_random(&name, len, seed.wrapping_add(i as u64));
            files.push((name, len));
        }
        let mut server = env.server(&[]);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<String> = files.iter().map(|(n, l)| received_line(n, *l)).collect();
        env.fetch(&names).assert_code(0).assert_stdout_lines(&want);
        for name in &names {
            env.assert_delivered(name);
        }
        server.finish(SERVER_EXIT).assert_code(0);
        env.assert_no_leftovers();
    }
}

/// Root links each received file by its descriptor; another user cannot
/// (`AT_EMPTY_PATH` needs a capability) and links it through `/proc`: the
/// files arrive whole either way, and a replaced one too.
#[test]
fn files_arrive_whole_for_root_and_for_another_user_alike() {
    let env = TestEnv::new("link_by_fd_or_proc");
    env.create("a.txt", b"first\n");
    env.create("b.bin", &[7u8; 9000]);
    let mut server = env.ready_server(&["--persistent"]);
    env.fetch(&["a.txt", "b.bin"]).assert_code(0);
    env.assert_delivered("a.txt");
    env.assert_delivered("b.bin");
    env.stop_server(&mut server);
    if crate::util::other_user_or_skip("the same fetch as another user") {
        use crate::util::{as_nobody, command, wait_for_queue, Proc, SERVER};
        env.open_to_others();
        let mut cmd = command(SERVER, Some(&env.names));
        cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
        let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
        wait_for_queue(&env.names, &mut server);
        let other = env.tmp().join("other");
        fs::create_dir(&other).unwrap();
        std::os::unix::fs::chown(&other, Some(crate::util::NOBODY), Some(crate::util::NOBODY)).unwrap();
        let cmd = env.client_cmd(&["-o", other.to_str().unwrap(), "a.txt", "b.bin"]);
        for round in ["new names", "replaced"] {
            let done = Proc::spawn(as_nobody(&cmd), Some(&env.names)).finish(TIMEOUT);
            done.assert_code(0);
            assert_eq!(fs::read(other.join("a.txt")).unwrap(), b"first\n", "{round}");
            assert_eq!(fs::read(other.join("b.bin")).unwrap(), vec![7u8; 9000], "{round}");
        }
        let names: Vec<_> = fs::read_dir(&other).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary name left: {names:?}");
        server.signal(nix::sys::signal::Signal::SIGTERM);
        server.wait_timeout(TIMEOUT).expect("the server stops");
    }
    env.assert_no_leftovers();
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

/// 13.13: a client out of file descriptors says what ran out and what to
/// do, at once, with exit 4 (local trouble), and leaves nothing.
#[test]
fn client_out_of_file_descriptors_says_so_at_once_and_exits_4() {
    let env = TestEnv::new("rt_out_of_fds");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mut cmd = Command::new("bash");
    // 6: too few to open the session's objects (with one more, the session
    // opens and the file fails instead, exit 1, with the same advice).
    cmd.arg("-c")
        .arg(r#"ulimit -n 6 && exec "$@""#)
        .arg("bash")
        .arg(CLIENT)
        .arg("--queue")
        .arg(env.names.queue())
        .arg("-o")
        .arg(env.out())
        .arg("hello.txt")
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let started = Instant::now();
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    let took = started.elapsed();
    env.stop_server(&mut server);
    done.assert_code(4)
        .check(done.stderr.contains("Too many open files"), "it says what ran out")
        .check(done.stderr.contains("ulimit -n"), "it says to raise ulimit -n")
        .check(took < Duration::from_secs(5), "it fails at once, without waiting for --wait");
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}
