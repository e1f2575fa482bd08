//! Uploads: `shm_client --put FILE… [--to DIR]` into a server started with
//! `--accept DIR`, with the guarantees of a fetch on the server's side.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::util::{
    assert_same_file, dir_entries, wait_until, write_random_file, TestEnv, BIG, BIG_TIMEOUT, DETECT, MIB,
    SLACK, TIMEOUT,
};

/// A directory of files to send beside the test's root and out dir.
fn sources(env: &TestEnv) -> PathBuf {
    let dir = env.tmp().join("src");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A server taking uploads into the out dir.
fn accepting(env: &TestEnv) -> crate::util::Proc {
    env.ready_server(&["--persistent", "--accept", s(env.out())])
}

#[test]
fn put_files_arrive_byte_identical_below_the_accept_dir_and_to_a_subdirectory() {
    let env = TestEnv::new("put_arrives");
    let src = sources(&env);
    let small = src.join("a.txt");
    fs::write(&small, b"hello upload\n").unwrap();
    let big = src.join("big.bin");
    write_random_file(&big, 5 * MIB, 7);
    let empty = src.join("empty");
    fs::write(&empty, b"").unwrap();
    // setuid and sticky never arrive.
    fs::set_permissions(&small, fs::Permissions::from_mode(0o4751)).unwrap();
    let mut server = accepting(&env);
    let done = env.run_client(&["--put", s(&small), s(&big), s(&empty)]);
    done.assert_code(0).assert_stdout_lines(&[
        format!("{}: sent 13 bytes → a.txt", small.display()),
        format!("{}: sent {} bytes → big.bin", big.display(), 5 * MIB),
        format!("{}: sent 0 bytes → empty", empty.display()),
    ]);
    for name in ["a.txt", "big.bin", "empty"] {
        assert_same_file(&src.join(name), &env.in_out(name));
    }
    let mode = fs::metadata(env.in_out("a.txt")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode & 0o7000, 0, "no setuid/setgid/sticky: {mode:o}");
    assert_eq!(env.out_entries(), ["a.txt", "big.bin", "empty"], "no temporary file left");
    let sub = env.run_client(&["--put", s(&big), "--to", "sub/deeper"]);
    sub.assert_code(0);
    assert_same_file(&big, &env.out().join("sub/deeper/big.bin"));
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_server_without_accept_refuses_every_put() {
    let env = TestEnv::new("put_not_accepted");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"nope\n").unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["--put", s(&src.join("a.txt"))]);
    done.assert_code(1)
        .check(done.stderr.contains("shm_server --accept DIR"), "the message says how to take uploads");
    assert!(env.out_entries().is_empty());
    assert!(dir_entries(env.root()).is_empty(), "nothing written into the served root");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn put_never_writes_outside_the_accept_dir() {
    let env = TestEnv::new("put_confined");
    let src = sources(&env);
    fs::write(src.join("x"), b"escape?\n").unwrap();
    let elsewhere = env.tmp().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.in_out("link")).unwrap();
    let before = dir_entries(env.tmp());
    let mut server = accepting(&env);
    let x = s(&src.join("x")).to_owned();
    for to in ["..", "../elsewhere", "/tmp", "a/../..", "link"] {
        let done = env.run_client(&["--put", &x, "--to", to]);
        done.assert_code(1).check(done.stdout.contains("refused by server"), "refused");
    }
    assert_eq!(dir_entries(env.tmp()), before, "nothing written beside the accept dir");
    assert!(dir_entries(&elsewhere).is_empty(), "no symlink followed");
    assert_eq!(env.out_entries(), ["link"]);
    // `--put ../x` reads ../x and writes its name, x, below the accept dir.
    fs::write(env.tmp().join("x"), b"from above\n").unwrap();
    env.run_client(&["--put", "../x"]).assert_code(0);
    assert_same_file(&env.tmp().join("x"), &env.in_out("x"));
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn put_with_no_clobber_keeps_an_existing_file_and_without_it_replaces_it() {
    let env = TestEnv::new("put_no_clobber");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"new\n").unwrap();
    fs::write(env.in_out("a.txt"), b"old\n").unwrap();
    let mut server = accepting(&env);
    let a = s(&src.join("a.txt")).to_owned();
    let kept = env.run_client(&["--no-clobber", "--put", &a]);
    kept.assert_code(0).assert_stdout_lines(&[format!("{a}: skipped: exists on the server")]);
    assert_eq!(fs::read(env.in_out("a.txt")).unwrap(), b"old\n");
    env.run_client(&["--put", &a]).assert_code(0);
    assert_eq!(fs::read(env.in_out("a.txt")).unwrap(), b"new\n");
    assert_eq!(env.out_entries(), ["a.txt"]);
    // A local file that is missing or not a regular file is not sent; the others are.
    let missing = s(&src.join("missing")).to_owned();
    let some = env.run_client(&["--put", &missing, s(&src), &a]);
    some.assert_code(1)
        .check(some.stdout.contains(&format!("{missing}: not sent:")), "the missing file named")
        .check(some.stdout.contains(&format!("{a}: sent 4 bytes → a.txt")), "the others still sent");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_client_killed_mid_upload_leaves_nothing_on_the_server() {
    let env = TestEnv::new("put_client_killed");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, BIG, 3);
    let mut server = accepting(&env);
    let mut client = env.client(&["--put", s(&big)]);
    // The server holds its unnamed file in the accept dir once data flows.
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.kill();
    let cleaned = wait_until(DETECT + SLACK, || env.names.client_regions().is_empty());
    assert!(cleaned, "the server removes what the dead client left: {:?}", env.names.shm_entries());
    assert!(
        wait_until(SLACK, || server.open_files_under(env.out()).is_empty()),
        "the server dropped the file it was receiving"
    );
    assert!(env.out_entries().is_empty(), "nothing under the final name: {:?}", env.out_entries());
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_server_killed_mid_upload_makes_the_client_exit_4_quickly() {
    let env = TestEnv::new("put_server_killed");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, BIG, 5);
    let mut server = accepting(&env);
    let mut client = env.client(&["--put", s(&big)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    server.kill();
    let killed = Instant::now();
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4);
    assert!(killed.elapsed() < DETECT, "noticed within {DETECT:?}: {:?}", killed.elapsed());
    assert!(env.out_entries().is_empty(), "nothing under the final name");
}
