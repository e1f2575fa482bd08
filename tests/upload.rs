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
    done.check(
        done.stderr.starts_with("shm_client: 3 files: 3 delivered; "),
        "a summary on stderr, as a fetch's",
    );
    for name in ["a.txt", "big.bin", "empty"] {
        assert_same_file(&src.join(name), &env.in_out(name));
    }
    let mode = fs::metadata(env.in_out("a.txt")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode & 0o7000, 0, "no setuid/setgid/sticky: {mode:o}");
    assert_eq!(env.out_entries(), ["a.txt", "big.bin", "empty"], "no temporary file left");
    let sub = env.run_client(&["--put", s(&big), "--to", "sub/deeper"]);
    sub.assert_code(0).check(sub.stderr.is_empty(), "no summary for one file");
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
    fs::write(src.join("b.txt"), b"nor this\n").unwrap();
    let done = env.run_client(&["--put", s(&src.join("a.txt")), s(&src.join("b.txt"))]);
    done.assert_code(1)
        .check(done.stderr.contains("shm_server --accept DIR"), "the message says how to take uploads")
        .check(
            done.stdout.contains("b.txt: not sent: the server takes no uploads"),
            "the file after it is named too, not left out without a word",
        );
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

/// `--put -r DIR`: the tree arrives below DIR's own name (as `scp -r`),
/// each symlink, FIFO and unreadable entry is named on stderr and not
/// sent (exit 1), and a symlink on the server's side is never followed.
#[test]
fn put_r_sends_a_tree_under_its_name_and_names_every_entry_it_skips() {
    let env = TestEnv::new("put_tree");
    let src = sources(&env);
    let photos = src.join("photos");
    fs::create_dir_all(photos.join("sub/deeper")).unwrap();
    fs::write(photos.join("a.jpg"), b"aaa\n").unwrap();
    write_random_file(&photos.join("sub/big.raw"), 3 * MIB, 9);
    fs::write(photos.join("sub/deeper/c.txt"), b"c\n").unwrap();
    let elsewhere = env.tmp().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("secret"), b"not to be sent\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, photos.join("link")).unwrap();
    nix::unistd::mkfifo(&photos.join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut server = accepting(&env);
    let done = env.run_client(&["--put", "-r", s(&photos), "--to", "in"]);
    done.assert_code(1)
        .check(done.stderr.contains(&format!("shm_client: {}/link: skipped: ", photos.display())), "link")
        .check(done.stderr.contains(&format!("shm_client: {}/pipe: skipped: ", photos.display())), "fifo")
        .check(
            done.stdout.contains(&format!("{}/a.jpg: sent 4 bytes → in/photos/a.jpg", photos.display())),
            "a",
        );
    for rel in ["a.jpg", "sub/big.raw", "sub/deeper/c.txt"] {
        assert_same_file(&photos.join(rel), &env.out().join("in/photos").join(rel));
    }
    assert_eq!(dir_entries(&env.out().join("in/photos")), ["a.jpg", "sub"], "no link, no fifo");
    assert_eq!(dir_entries(&elsewhere), ["secret"], "nothing written through a symlink");
    // A tree without skips is a success; `-r` before `--put` reads the same.
    fs::remove_file(photos.join("link")).unwrap();
    fs::remove_file(photos.join("pipe")).unwrap();
    env.run_client(&["-r", "--put", s(&photos)]).assert_code(0);
    assert_same_file(&photos.join("sub/deeper/c.txt"), &env.out().join("photos/sub/deeper/c.txt"));
    // A directory on the server that is a symlink is refused, never followed.
    std::os::unix::fs::symlink(&elsewhere, env.in_out("trap")).unwrap();
    let trapped = env.run_client(&["--put", "-r", s(&photos), "--to", "trap"]);
    trapped.assert_code(1).check(trapped.stdout.contains("refused by server"), "refused");
    assert_eq!(dir_entries(&elsewhere), ["secret"], "nothing written through the server's symlink");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A directory without `-r` is not sent, with a hint; two arguments that
/// would land on one remote path are refused before anything is sent
/// (exit 2, naming both).
#[test]
fn put_of_a_directory_needs_r_and_two_files_to_one_name_send_nothing() {
    let env = TestEnv::new("put_dir_needs_r");
    let src = sources(&env);
    fs::create_dir_all(src.join("d")).unwrap();
    fs::create_dir_all(src.join("e")).unwrap();
    fs::write(src.join("d/x"), b"d\n").unwrap();
    fs::write(src.join("e/x"), b"e\n").unwrap();
    fs::write(src.join("y"), b"y\n").unwrap();
    let mut server = accepting(&env);
    let dir = env.run_client(&["--put", s(&src.join("d")), s(&src.join("y"))]);
    dir.assert_code(1)
        .check(
            dir.stdout.contains(&format!("{}: not sent: a directory; use -r", src.join("d").display())),
            "hint",
        )
        .check(dir.stdout.contains("sent 2 bytes → y"), "the others still sent");
    fs::remove_file(env.in_out("y")).unwrap();
    let both = env.run_client(&["--put", s(&src.join("d/x")), s(&src.join("e/x"))]);
    both.assert_code(2)
        .check(both.stderr.contains(&src.join("d/x").display().to_string()), "names the first")
        .check(both.stderr.contains(&src.join("e/x").display().to_string()), "names the second");
    // With -r: two trees of one name.
    fs::create_dir_all(src.join("other/d")).unwrap();
    fs::write(src.join("other/d/x"), b"other\n").unwrap();
    let trees = env.run_client(&["--put", "-r", s(&src.join("d")), s(&src.join("other/d")), "--to", "z"]);
    trees.assert_code(2).check(trees.stderr.contains("would both be sent to z/d/x"), "the remote path");
    assert!(!env.in_out("z").exists(), "nothing sent before the check");
    assert_eq!(env.out_entries(), Vec::<String>::new(), "nothing sent by the refused runs");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// `--put --json`: an object per file with a fetch's field names, then a
/// summary object; nothing else on stdout.
#[test]
fn put_json_prints_an_object_per_file_and_a_summary() {
    let env = TestEnv::new("put_json");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"hello\n").unwrap();
    fs::write(src.join("b.txt"), b"kept\n").unwrap();
    fs::write(env.in_out("b.txt"), b"old\n").unwrap();
    fs::create_dir(env.in_out("c.txt")).unwrap();
    fs::write(src.join("c.txt"), b"c\n").unwrap();
    let mut server = accepting(&env);
    let (a, b, c) = (src.join("a.txt"), src.join("b.txt"), src.join("c.txt"));
    let done = env.run_client(&["--json", "--no-clobber", "--put", s(&a), s(&b), s(&c)]);
    done.assert_code(1);
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 4, "{done}");
    assert_eq!(lines[0]["request"], s(&src.join("a.txt")));
    assert_eq!(
        (&lines[0]["path"], &lines[0]["result"], &lines[0]["bytes"]),
        (&"a.txt".into(), &"delivered".into(), &6.into())
    );
    assert_eq!((&lines[1]["result"], &lines[1]["reason"]), (&"skipped".into(), &"exists".into()));
    assert_eq!((&lines[2]["result"], &lines[2]["reason"]), (&"refused".into(), &"is_directory".into()));
    assert!(lines[2]["message"].as_str().unwrap().contains("a directory"), "{done}");
    let summary = &lines[3]["summary"];
    assert_eq!(
        (&summary["files"], &summary["delivered"], &summary["skipped"], &summary["refused"]),
        (&3.into(), &1.into(), &1.into(), &1.into())
    );
    assert_eq!(summary["bytes"], 6);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The server's access log has a line per upload shaped as a fetch's:
/// client pid, path, result, bytes, time (and a rate for a stored one).
#[test]
fn the_access_log_has_a_line_per_upload_stored_skipped_or_refused() {
    let env = TestEnv::new("put_access_log");
    let src = sources(&env);
    write_random_file(&src.join("a.txt"), 8 * MIB, 17);
    fs::create_dir(env.in_out("dir")).unwrap();
    fs::write(src.join("dir"), b"x\n").unwrap();
    let mut server = accepting(&env);
    let stored = env.client(&["--put", s(&src.join("a.txt"))]);
    let stored_pid = stored.pid();
    let mut stored = stored;
    stored.finish(TIMEOUT).assert_code(0);
    let mut skipped = env.client(&["--no-clobber", "--put", s(&src.join("a.txt"))]);
    let skipped_pid = skipped.pid();
    skipped.finish(TIMEOUT).assert_code(0);
    let mut refused = env.client(&["--put", s(&src.join("dir"))]);
    let refused_pid = refused.pid();
    refused.finish(TIMEOUT).assert_code(1);
    env.stop_server(&mut server);
    let log = server.stderr();
    let line = |pid: u32, what: &str| {
        log.lines().find(|l| l.contains(&format!("client {pid}: {what}"))).map(str::to_owned)
    };
    let stored = format!("a.txt: received {} bytes in ", 8 * MIB);
    let ok = line(stored_pid, &stored).unwrap_or_else(|| panic!("stored\n{log}"));
    assert!(ok.ends_with("/s)"), "a rate: {ok}");
    line(skipped_pid, "a.txt: upload skipped after ").unwrap_or_else(|| panic!("skipped\n{log}"));
    let no = line(refused_pid, "dir: upload refused after ").unwrap_or_else(|| panic!("refused\n{log}"));
    assert!(no.contains("a directory has that name"), "why: {no}");
    // The stop's summary counts the one stored upload, apart from files served.
    let summary = log.lines().find(|l| l.contains("stopped: served ")).unwrap_or_else(|| panic!("{log}"));
    let received = format!("; received 1 file(s), {} bytes", 8 * MIB);
    assert!(summary.contains("served 0 file(s), 0 bytes") && summary.ends_with(&received), "{summary}");
    env.assert_no_leftovers();
}

/// `--status` of a server that takes uploads counts those it stored.
#[test]
fn status_counts_the_uploads_stored() {
    let env = TestEnv::new("put_status_counts");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"12345").unwrap();
    let mut server = accepting(&env);
    env.run_client(&["--put", s(&src.join("a.txt"))]).assert_code(0);
    env.run_client(&["--no-clobber", "--put", s(&src.join("a.txt"))]).assert_code(0);
    let text = env.run_client(&["--status"]);
    text.assert_code(0)
        .check(text.stdout.contains("sent 0 file(s), 0 bytes; received 1 file(s), 5 bytes"), "the counts");
    let json = env.run_client(&["--status", "--json"]);
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("one JSON object");
    let server_json = &value["server"];
    assert_eq!(
        (&server_json["accepting"], &server_json["received_files"], &server_json["received_bytes"]),
        (&true.into(), &1.into(), &5.into()),
        "{value}"
    );
    env.stop_server(&mut server);
    // A server without --accept says nothing of uploads.
    let mut plain = env.ready_server(&["--persistent"]);
    let text = env.run_client(&["--status"]);
    text.assert_code(0).check(!text.stdout.contains("received"), "no upload counts");
    env.stop_server(&mut plain);
    env.assert_no_leftovers();
}

/// `--status` names each session's direction; an upload in flight shows
/// with its file, its bytes so far and `upload`, in text and JSON.
#[test]
fn status_shows_an_upload_in_flight_with_its_direction() {
    let env = TestEnv::new("put_status");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, BIG, 13);
    let mut server = accepting(&env);
    let mut client = env.client(&["--put", s(&big)]);
    let pid = client.pid();
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(nix::sys::signal::Signal::SIGSTOP);
    let text = env.run_client(&["--status"]);
    let json = env.run_client(&["--status", "--json"]);
    client.signal(nix::sys::signal::Signal::SIGCONT);
    text.assert_code(0);
    let line =
        text.stdout.lines().find(|l| l.starts_with(&format!("client {pid}: big.bin: "))).unwrap_or_default();
    text.check(line.ends_with(" (upload)"), "the upload's line names its direction");
    let value: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("one JSON object");
    let session = value["sessions"].as_array().unwrap().iter().find(|s| s["client_pid"] == pid).cloned();
    let session = session.unwrap_or_else(|| panic!("the upload session listed\n{json}"));
    assert_eq!((&session["direction"], &session["path"]), (&"upload".into(), &"big.bin".into()));
    assert!(session["sent"].as_u64().unwrap() > 0, "{session}");
    client.finish(BIG_TIMEOUT).assert_code(0);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// In the default mode a client that sent a file is a client the server
/// waited for: once it leaves, the server stops, as after a fetch.
#[test]
fn a_default_mode_server_stops_after_the_last_uploading_client_leaves() {
    let env = TestEnv::new("put_default_mode");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"one\n").unwrap();
    let mut server = env.ready_server(&["--accept", s(env.out())]);
    env.run_client(&["--status"]).assert_code(0);
    assert!(server.is_running(), "a status alone does not end it");
    env.run_client(&["--put", s(&src.join("a.txt"))]).assert_code(0);
    let status = server.wait_timeout(TIMEOUT).expect("the server stops after the upload's goodbye");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let log = server.stderr();
    let first = log.lines().next().unwrap_or_default();
    assert!(first.contains(&format!(", taking uploads into {}", s(env.out()))), "the start line: {first}");
    assert_eq!(fs::read(env.in_out("a.txt")).unwrap(), b"one\n");
    env.assert_no_leftovers();
}

/// Starts `--put a.txt big.bin c.txt` (with `extra` options) and waits
/// until the server receives big.bin: the run to interrupt.
fn put_three_in_flight(env: &TestEnv, server: &mut crate::util::Proc, extra: &[&str]) -> crate::util::Proc {
    let src = sources(env);
    fs::write(src.join("a.txt"), b"first\n").unwrap();
    write_random_file(&src.join("big.bin"), BIG, 21);
    fs::write(src.join("c.txt"), b"third\n").unwrap();
    let (a, big, c) = (src.join("a.txt"), src.join("big.bin"), src.join("c.txt"));
    let mut args = extra.to_vec();
    args.extend(["--put", s(&a), s(&big), s(&c)]);
    let mut client = env.client(&args);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client
}

/// Ctrl-C during `--put a b c`: a line per file as a fetch prints them
/// (the one in flight cut off, the rest not sent), the summary, exit 130;
/// the server logs the upload stopped, counts it cut off, keeps nothing.
#[test]
fn an_interrupted_put_names_every_file_and_the_server_logs_the_upload_cut_off() {
    let env = TestEnv::new("put_sigint");
    let mut server = accepting(&env);
    let mut client = put_three_in_flight(&env, &mut server, &[]);
    let pid = client.pid();
    client.signal(crate::util::Signal::SIGINT);
    let done = client.finish(TIMEOUT);
    let src = sources(&env);
    done.assert_code(130);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{done}");
    assert_eq!(lines[0], format!("{}: sent 6 bytes → a.txt", src.join("a.txt").display()));
    let cut = format!("{}: failed: cut off after ", src.join("big.bin").display());
    done.check(lines[1].starts_with(&cut), "the file in flight cut off")
        .check(lines[1].ends_with(": interrupted; nothing kept"), "why, and nothing kept");
    assert_eq!(lines[2], format!("{}: not sent: interrupted", src.join("c.txt").display()));
    done.check(done.stderr.contains("shm_client: 3 files: 1 delivered"), "the summary")
        .check(done.stderr.contains("shm_client: error: interrupted"), "the error");
    let logged = wait_until(SLACK, || {
        server.stderr().lines().any(|l| {
            l.contains(&format!("client {pid}: big.bin: upload stopped after "))
                && l.ends_with(" bytes: the client left before the end")
        })
    });
    assert!(logged, "the access log names the upload stopped\n{}", server.stderr());
    env.stop_server(&mut server);
    let log = server.stderr();
    let summary = log.lines().find(|l| l.contains("stopped: served ")).unwrap_or_else(|| panic!("{log}"));
    assert!(summary.contains("; 1 upload(s) cut off after "), "counted cut off: {summary}");
    assert_eq!(env.out_entries(), ["a.txt"], "nothing of big.bin kept");
    env.assert_no_leftovers();
}

/// `--json` of an interrupted `--put`: the file in flight with the bytes
/// it had sent, an object for each file not sent, the summary.
#[test]
fn an_interrupted_put_json_gives_the_bytes_sent_and_an_object_per_file_not_sent() {
    let env = TestEnv::new("put_sigint_json");
    let mut server = accepting(&env);
    let mut client = put_three_in_flight(&env, &mut server, &["--json"]);
    client.signal(crate::util::Signal::SIGINT);
    let done = client.finish(TIMEOUT);
    done.assert_code(130);
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 4, "{done}");
    assert_eq!(lines[0]["result"], "delivered");
    assert_eq!((&lines[1]["path"], &lines[1]["result"]), (&"big.bin".into(), &"failed".into()));
    let bytes = lines[1]["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < BIG, "the bytes sent so far: {}", lines[1]);
    assert_eq!((&lines[2]["path"], &lines[2]["result"]), (&"c.txt".into(), &"skipped".into()));
    assert_eq!(lines[2]["message"], "not sent: interrupted");
    let summary = &lines[3]["summary"];
    assert_eq!(
        (&summary["files"], &summary["delivered"], &summary["failed"], &summary["not_fetched"]),
        (&3.into(), &1.into(), &1.into(), &1.into())
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The client killed mid-upload: the server logs the upload stopped,
/// counts it cut off and keeps nothing.
#[test]
fn a_put_killed_mid_upload_is_logged_and_counted_cut_off() {
    let env = TestEnv::new("put_sigkill");
    let mut server = accepting(&env);
    let mut client = put_three_in_flight(&env, &mut server, &[]);
    let pid = client.pid();
    client.kill();
    let logged = wait_until(DETECT + SLACK, || {
        server.stderr().lines().any(|l| l.contains(&format!("client {pid}: big.bin: upload stopped after ")))
    });
    assert!(logged, "the access log names the upload stopped\n{}", server.stderr());
    env.stop_server(&mut server);
    let log = server.stderr();
    let summary = log.lines().find(|l| l.contains("stopped: served ")).unwrap_or_else(|| panic!("{log}"));
    assert!(summary.contains("; 1 upload(s) cut off after "), "counted cut off: {summary}");
    assert_eq!(env.out_entries(), ["a.txt"], "nothing of big.bin kept");
    let _ = crate::util::wait_until(DETECT + SLACK, || env.names.client_regions().is_empty());
    env.assert_no_leftovers();
}

/// The server killed mid-`--put`: the file in flight cut off, the rest
/// not sent (session lost), the summary, exit 4.
#[test]
fn a_put_whose_server_dies_names_every_file_and_exits_4() {
    let env = TestEnv::new("put_server_killed");
    let mut server = accepting(&env);
    let mut client = put_three_in_flight(&env, &mut server, &[]);
    server.kill();
    let done = client.finish(TIMEOUT);
    done.assert_code(4);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{done}");
    done.check(lines[1].contains("big.bin: failed: cut off after "), "the file in flight")
        .check(lines[1].ends_with("; nothing kept"), "nothing kept")
        .check(lines[2].ends_with("c.txt: not sent: session lost"), "the rest")
        .check(done.stderr.contains("shm_client: 3 files: 1 delivered"), "the summary");
    env.names.remove_all();
}

/// `-o` means nothing to `--put`: refused by the parser, as `-u` is.
#[test]
fn put_with_an_out_dir_is_a_usage_error() {
    let env = TestEnv::new("put_out_dir");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"a\n").unwrap();
    let done = env.run_client(&["--put", s(&src.join("a.txt")), "-o", s(env.tmp())]);
    done.assert_code(2).check(done.stderr.contains("cannot be used with"), "clap's message");
    let long = env.run_client(&["--out-dir", s(env.tmp()), "--put", s(&src.join("a.txt"))]);
    long.assert_code(2);
}

/// `--put -r --json`: the entries a tree's walk leaves out (a FIFO, a
/// symlink) are `skipped` objects counted as `left_out` among `files`, as
/// a fetch's `-r` counts the entries its listing left out.
#[test]
fn put_r_json_counts_the_entries_left_out_among_the_files() {
    let env = TestEnv::new("put_tree_json");
    let src = sources(&env);
    let tree = src.join("t");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("a.txt"), b"a\n").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    nix::unistd::mkfifo(&tree.join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut server = accepting(&env);
    let done = env.run_client(&["--json", "--put", "-r", s(&tree)]);
    done.assert_code(1);
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 4, "{done}");
    let skipped = lines.iter().filter(|l| l["result"] == "skipped").count();
    assert_eq!(skipped, 2, "{done}");
    let summary = &lines[3]["summary"];
    assert_eq!(
        (&summary["files"], &summary["delivered"], &summary["left_out"], &summary["skipped"]),
        (&3.into(), &1.into(), &2.into(), &0.into()),
        "{done}"
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A missing file is said missing, not a clash with another file of its
/// name; the other is sent.
#[test]
fn a_missing_file_is_not_a_clash_with_one_of_its_name() {
    let env = TestEnv::new("put_missing_clash");
    let src = sources(&env);
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/x"), b"here\n").unwrap();
    let mut server = accepting(&env);
    let done = env.run_client(&["--put", s(&src.join("a/x")), s(&src.join("b/x"))]);
    done.assert_code(1).check(done.stdout.contains("a/x: sent 5 bytes → x"), "the one there is sent").check(
        done.stdout.contains("b/x: not sent: open ") && done.stdout.contains("No such file"),
        "the other missing",
    );
    assert_eq!(fs::read(env.in_out("x")).unwrap(), b"here\n");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// `--put FILE -O NAME` stores the one file under NAME (below `--to`), as
/// `scp a host:renamed.txt`; more than one FILE with `-O` is a usage error.
#[test]
fn put_with_dash_capital_o_stores_the_one_file_under_that_name() {
    let env = TestEnv::new("put_dash_o_renames");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"renamed\n").unwrap();
    fs::write(src.join("b.txt"), b"other\n").unwrap();
    let mut server = accepting(&env);
    let a = s(&src.join("a.txt")).to_owned();
    let done = env.run_client(&["--put", &a, "-O", "renamed.txt"]);
    done.assert_code(0).check(done.stdout.contains("→ renamed.txt"), "the line names where it went");
    assert_eq!(fs::read(env.in_out("renamed.txt")).unwrap(), b"renamed\n");
    env.run_client(&["--put", &a, "--to", "in", "-O", "x/y.txt"]).assert_code(0);
    assert_eq!(fs::read(env.in_out("in/x/y.txt")).unwrap(), b"renamed\n");
    let b = s(&src.join("b.txt")).to_owned();
    let two = env.run_client(&["--put", &a, &b, "-O", "one.txt"]);
    two.assert_code(2).check(two.stderr.contains("stores one FILE"), "says why");
    let mut entries = env.out_entries();
    entries.sort();
    assert_eq!(entries, ["in", "renamed.txt"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A readable file in /sys whose `fstat` says 4096 bytes while it holds
/// fewer, and the same bytes on two reads; `None` on a machine without one.
fn sysfs_file_whose_size_lies() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let candidates = [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/devices/system/cpu/online",
        "/sys/devices/system/cpu/possible",
        "/sys/class/net/lo/address",
        "/sys/kernel/profiling",
    ];
    candidates.iter().map(PathBuf::from).find(|path| {
        let (Ok(meta), Ok(first), Ok(second)) = (fs::metadata(path), fs::read(path), fs::read(path)) else {
            return false;
        };
        meta.size() == 4096 && !first.is_empty() && (first.len() as u64) < meta.size() && first == second
    })
}

/// A file in /proc says it has 0 bytes, one in /sys 4096 whatever it
/// holds. Uploaded, each is read to its end by the sender a fetch uses,
/// and stored with its real bytes: not an empty file ("sent 0 bytes",
/// exit 0), not "changed while it was sent".
#[test]
fn put_of_files_whose_size_lies_stores_their_real_bytes() {
    let env = TestEnv::new("put_sizeless");
    let mut server = accepting(&env);
    let mut files = vec![PathBuf::from("/proc/version")];
    match sysfs_file_whose_size_lies() {
        Some(file) => files.push(file),
        None => eprintln!("no readable /sys file of st_size 4096 here: its case is skipped"),
    }
    for file in &files {
        let expected = fs::read(file).unwrap();
        assert!(!expected.is_empty(), "{} holds something", file.display());
        let name = file.file_name().unwrap().to_str().unwrap();
        let done = env.run_client(&["--put", s(file)]);
        done.assert_code(0).assert_stdout_lines(&[format!(
            "{}: sent {} bytes → {name}",
            file.display(),
            expected.len()
        )]);
        assert_eq!(fs::read(env.in_out(name)).unwrap(), expected, "{}: its real bytes", file.display());
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// `--put -p` gives the stored file the source's mtime; `--put -u` skips a
/// file whose copy on the server has its size and is not older (a
/// success, the copy untouched), and sends one that is older or of
/// another size: the flags of a fetch, through the same sender.
#[test]
fn put_p_keeps_the_source_mtime_and_put_u_skips_a_copy_that_is_up_to_date() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new("put_update");
    let src = sources(&env);
    let file = src.join("a.txt");
    fs::write(&file, b"first\n").unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    fs::File::options().write(true).open(&file).unwrap().set_modified(old).unwrap();
    let mut server = accepting(&env);
    env.run_client(&["--put", "-p", s(&file)]).assert_code(0);
    let stored = env.in_out("a.txt");
    assert_eq!(fs::metadata(&stored).unwrap().modified().unwrap(), old, "-p: the source's mtime");
    let ino = fs::metadata(&stored).unwrap().ino();
    let skipped = env.run_client(&["--put", "-u", s(&file)]);
    skipped
        .assert_code(0)
        .assert_stdout_lines(&[format!("{}: skipped: up to date on the server", file.display())]);
    assert_eq!(fs::metadata(&stored).unwrap().ino(), ino, "the copy is left as it was");
    // Newer, same size: sent; without -p the copy gets the time it was written.
    fs::write(&file, b"later\n").unwrap();
    env.run_client(&["--put", "-u", s(&file)]).assert_code(0);
    assert_eq!(fs::read(&stored).unwrap(), b"later\n");
    assert_ne!(fs::metadata(&stored).unwrap().modified().unwrap(), old);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}
