//! The everyday fetch flags: `-O FILE`, `-C/--continue`, `-u/--update`,
//! `--no-clobber` skipping, `-p/--preserve`, patterns, `-R/--relative`
//! (never writing outside the out dir), and requests that name one path
//! twice or two paths onto one output name.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use crate::util::{
    assert_no_leftovers, assert_out_empty, assert_same_file, dir_entries, new_dir, received_line, stop,
    TestEnv, BIG, BIG_TIMEOUT, TIMEOUT,
};

/// The out dir as an argument.
fn out(env: &TestEnv) -> String {
    env.out().to_str().unwrap().to_owned()
}

#[test]
fn output_writes_the_one_file_to_the_path_given() {
    let env = TestEnv::new("output_writes_one_file");
    env.create("sub/hello.txt", b"hello\n");
    env.create("other.txt", b"other\n");
    let mut server = env.ready_server(&["--persistent"]);
    let dest = env.in_out("copy.txt");
    let done = env.run_client(&["-O", dest.to_str().unwrap(), "sub/hello.txt"]);
    done.assert_code(0)
        .assert_stdout_lines(&[format!("sub/hello.txt: received 6 bytes → {}", dest.display())]);
    assert_same_file(&env.in_root("sub/hello.txt"), &dest);
    assert_eq!(env.out_entries(), ["copy.txt"], "no temporary file left beside it");
    // `-O -` is --stdout.
    let streamed = env.run_client(&["-O", "-", "other.txt"]);
    streamed.assert_code(0).check(streamed.stdout == "other\n", "the bytes on stdout");
    // --no-clobber keeps the file there and skips.
    let kept = env.run_client(&["--no-clobber", "-O", dest.to_str().unwrap(), "other.txt"]);
    kept.assert_code(0).assert_stdout_lines(&["other.txt: skipped: exists".into()]);
    assert_same_file(&env.in_root("sub/hello.txt"), &dest);
    // One file only, and not with -o or -r: usage errors.
    for args in [
        vec!["-O", dest.to_str().unwrap(), "sub/hello.txt", "other.txt"],
        vec!["-O", dest.to_str().unwrap(), "-o", env.out().to_str().unwrap(), "other.txt"],
        vec!["-O", dest.to_str().unwrap(), "-r", "sub"],
    ] {
        let refused = env.run_client(&args);
        refused.assert_code(2).check(refused.stderr.contains("error:"), "a clap-style usage error");
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_keeps_a_cut_off_file_and_resumes_it_checking_the_whole() {
    let env = TestEnv::new("continue_resumes");
    env.create_random("big.bin", BIG, 21);
    let out = out(&env);
    let mut dead_server = env.ready_server(&["--persistent"]);
    let mut cut = env.client(&["-C", "-o", &out, "big.bin"]);
    env.wait_receiving(&mut cut, "big.bin");
    dead_server.kill();
    let cut = cut.finish(TIMEOUT);
    cut.assert_code(4)
        .check(cut.stdout.contains("kept: run it again with --continue"), "the kept part is named");
    let entries = env.out_entries();
    assert_eq!(
        entries,
        [".shmxfer-partial.big.bin", ".shmxfer-partial.big.bin.source"],
        "the partial and its record"
    );
    let kept = fs::metadata(env.in_out(".shmxfer-partial.big.bin")).unwrap().len();
    assert!(kept > 0 && kept < BIG, "a prefix is kept: {kept} of {BIG}");
    // The next run asks only for the rest, and checks the whole file.
    let mut server = env.ready_server(&["--persistent", "-vv"]);
    let resumed = env.client(&["-C", "-o", &out, "big.bin"]).finish(BIG_TIMEOUT);
    let line = format!("{} (resumed at {kept} bytes)", received_line("big.bin", BIG));
    resumed.assert_code(0).assert_stdout_lines(&[line]);
    env.assert_delivered("big.bin");
    assert_eq!(env.out_entries(), ["big.bin"], "the partial and its record are gone");
    // A partial whose source changed since starts over, saying so.
    fs::rename(env.in_out("big.bin"), env.in_out(".shmxfer-partial.big.bin")).unwrap();
    fs::write(env.in_out(".shmxfer-partial.big.bin.source"), format!("{BIG} 12345\n")).unwrap();
    let over = env.client(&["-C", "-o", &out, "big.bin"]).finish(BIG_TIMEOUT);
    over.assert_code(0).check(over.stderr.contains("big.bin: the source changed"), "starting over is said");
    env.assert_delivered("big.bin");
    assert_eq!(env.out_entries(), ["big.bin"]);
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains(&format!("from byte {kept}")), "the server was asked for the rest only:\n{log}");
    env.assert_no_leftovers();
}

#[test]
fn without_continue_a_cut_off_file_keeps_nothing() {
    let env = TestEnv::new("no_continue_keeps_nothing");
    env.create_random("big.bin", BIG, 22);
    let mut dead_server = env.ready_server(&["--persistent"]);
    let mut cut = env.fetch_proc(&["big.bin"]);
    env.wait_receiving(&mut cut, "big.bin");
    dead_server.kill();
    cut.finish(TIMEOUT).assert_code(4);
    assert!(env.out_entries().is_empty(), "{:?}", env.out_entries());
}

#[test]
fn update_skips_an_up_to_date_copy_and_fetches_a_changed_one() {
    let env = TestEnv::new("update_skips_up_to_date");
    env.create("a.txt", b"first\n");
    env.create("b.txt", b"bee\n");
    let out = out(&env);
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-o", &out, "a.txt"]).assert_code(0);
    let done = env.run_client(&["-u", "-o", &out, "a.txt", "b.txt"]);
    done.assert_code(0)
        .assert_stdout_lines(&["a.txt: skipped: up to date".into(), received_line("b.txt", 4)]);
    // Same size but the source is newer: fetched.
    let copy = fs::File::options().write(true).open(env.in_out("a.txt")).unwrap();
    copy.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
    env.create("a.txt", b"again\n");
    let done = env.run_client(&["--update", "-o", &out, "a.txt"]);
    done.assert_code(0).assert_stdout_lines(&[received_line("a.txt", 6)]);
    env.assert_delivered("a.txt");
    // A copy of another size: fetched, however new.
    fs::write(env.in_out("a.txt"), b"longer than the source\n").unwrap();
    env.run_client(&["-u", "-o", &out, "a.txt"])
        .assert_code(0)
        .assert_stdout_lines(&[received_line("a.txt", 6)]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn preserve_gives_the_copy_the_sources_mtime() {
    let env = TestEnv::new("preserve_keeps_mtime");
    let src = env.create("old.txt", b"old\n");
    let then = SystemTime::UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789);
    fs::File::options().write(true).open(&src).unwrap().set_modified(then).unwrap();
    let out = out(&env);
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-p", "-o", &out, "old.txt"]).assert_code(0);
    let (a, b) = (fs::metadata(&src).unwrap(), fs::metadata(env.in_out("old.txt")).unwrap());
    assert_eq!((b.mtime(), b.mtime_nsec()), (a.mtime(), a.mtime_nsec()));
    // Without -p the copy is new.
    let dest = env.in_out("new.txt");
    env.run_client(&["-O", dest.to_str().unwrap(), "old.txt"]).assert_code(0);
    assert!(fs::metadata(&dest).unwrap().modified().unwrap() > then);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn patterns_match_the_servers_tree_one_component_at_a_time() {
    let env = TestEnv::new("patterns_match_per_component");
    env.create("logs/a.txt", b"a\n");
    env.create("logs/b.txt", b"bb\n");
    env.create("logs/c.log", b"c\n");
    env.create("logs/deep/d.txt", b"d\n");
    env.create("odd[1].txt", b"odd\n");
    let out = out(&env);
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-o", &out, "logs/*.txt"]);
    done.assert_code(0)
        .assert_stdout_lines(&[received_line("logs/a.txt", 2), received_line("logs/b.txt", 3)]);
    assert_eq!(dir_entries(env.out()), ["a.txt", "b.txt"], "'*' does not cross '/'");
    // A file of exactly the pattern's name is fetched as it is.
    env.run_client(&["-o", &out, "odd[1].txt"]).assert_code(0);
    env.assert_delivered("odd[1].txt");
    // A pattern that matches nothing is not found.
    let none = env.run_client(&["-o", &out, "logs/*.none", "l?gs/c.*"]);
    none.assert_code(1)
        .assert_stdout_lines(&["logs/*.none: not found on server".into(), received_line("logs/c.log", 2)]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A directory where the file would go (`-o` with a directory of the file's
/// name, `-O DIR`) fails the file before any byte is asked for, as `cp`
/// does, not after the whole file has crossed.
#[test]
fn a_directory_in_the_way_fails_the_file_before_any_byte_is_sent() {
    let env = TestEnv::new("a_directory_in_the_way");
    env.create("hello.txt", b"hello\n");
    fs::create_dir(env.in_out("hello.txt")).unwrap();
    let dest = env.in_out("dir");
    fs::create_dir(&dest).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let into_dir = env.fetch(&["hello.txt"]);
    into_dir
        .assert_code(1)
        .check(into_dir.stdout.contains("is a directory"), "says a directory is in the way");
    let onto_dir = env.run_client(&["-O", dest.to_str().unwrap(), "hello.txt"]);
    onto_dir.assert_code(1).check(onto_dir.stdout.contains("is a directory"), "-O DIR says so too");
    assert!(dir_entries(&dest).is_empty(), "nothing written into the directory");
    env.stop_server(&mut server);
    let log = server.finish(TIMEOUT);
    log.check(!log.stderr.contains("hello.txt: sent"), "the server never sent the file");
    env.assert_no_leftovers();
}

#[test]
fn the_same_path_twice_is_fetched_once_with_a_warning() {
    let env = TestEnv::new("rt_same_path_twice");
    env.create("a", b"a\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch(&["a", "a"]);
    env.stop_server(&mut server);
    done.assert_code(0).check(done.stderr.contains("a"), "a warning names the repeated path");
    env.assert_delivered("a");
    assert_no_leftovers(&env.names);
}

/// A file named twice by two names (`sub/x ./sub/x`, or a pattern and one
/// of its matches) is fetched once, and the warning names the two names
/// asked for and the output name, not the output name alone. Before:
/// `nested.txt named more than once; fetched once`, naming neither.
#[test]
fn a_file_named_twice_is_warned_of_by_both_names_and_its_output_name() {
    let env = TestEnv::new("named_twice_by_two_names");
    env.create("subdir/nested.txt", b"n\n");
    env.create("other/nested.txt", b"o\n");
    let mut server = env.ready_server(&["--persistent"]);
    let cases = [
        (["subdir/nested.txt", "./subdir/nested.txt"], "subdir/nested.txt and ./subdir/nested.txt"),
        (["subdir/*.txt", "subdir/nested.txt"], "subdir/*.txt and subdir/nested.txt"),
    ];
    for (names, both) in cases {
        let done = env.fetch(&names);
        done.assert_code(0).check(
            done.stderr
                == format!(
                    "shm_client: warning: {both}: one file named more than once; fetched once, as nested.txt\n"
                ),
            "the warning names both names and the output name",
        );
        assert_eq!(done.stdout.lines().count(), 1, "fetched once\n{done}");
        assert_same_file(&env.in_root("subdir/nested.txt"), &env.in_out("nested.txt"));
    }
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// Colliding output names: two requests that map to the same output name are refused up
/// front, naming both, before any request (so even without a server).
#[test]
fn two_requests_with_the_same_output_name_are_refused_up_front_naming_both() {
    let env = TestEnv::new("same_output_name");
    env.create("d1/x", b"one\n");
    env.create("d2/x", b"two\n");
    // No server: a refusal up front is exit 2, not "no server" (3).
    let done = env.fetch_with(&["--wait", "0"], &["d1/x", "a.txt", "d2/x"]).finish(TIMEOUT);
    done.assert_code(2).check(
        done.stderr.contains("d1/x") && done.stderr.contains("d2/x"),
        "the refusal names both requests",
    );
    // With a server: still refused, nothing fetched.
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch(&["d1/x", "d2/x"]);
    done.assert_code(2).check(done.stderr.contains("-R"), "the refusal points at -R/--relative");
    assert_out_empty(&env);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// `-R/--relative` keeps the requested paths below the output directory,
/// creating directories as needed.
#[test]
fn relative_writes_each_path_below_the_out_dir_creating_directories() {
    let env = TestEnv::new("relative_paths");
    env.create("d1/x", b"one\n");
    env.create("d2/x", b"two\n");
    env.create("a/b/c.txt", b"deep\n");
    env.create("top.txt", b"top\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch_with(&["-R"], &["d1/x", "d2/x", "a/b/c.txt", "top.txt"]).finish(TIMEOUT);
    done.assert_code(0);
    for rel in ["d1/x", "d2/x", "a/b/c.txt", "top.txt"] {
        assert_same_file(&env.in_root(rel), &env.in_out(rel));
    }
    assert_eq!(env.out_entries(), ["a", "d1", "d2", "top.txt"]);
    // The long form; an existing directory is used as it is.
    let again = env.fetch_with(&["--relative"], &["d1/x"]).finish(TIMEOUT);
    again.assert_code(0);
    assert_same_file(&env.in_root("d1/x"), &env.in_out("d1/x"));
    // The same path twice under -R is fetched once, with a warning (issue 13.13c).
    let twice = env.fetch_with(&["-R"], &["d1/x", "./d1/x"]).finish(TIMEOUT);
    twice.assert_code(0).check(twice.stderr.contains("named more than once"), "a warning names it");
    assert_eq!(twice.stdout.lines().count(), 1, "fetched once\n{twice}");
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// `-R/--relative` never writes outside the output directory: symlinked
/// directories below it are not followed, `..` is not taken.
#[test]
fn relative_never_writes_outside_the_out_dir() {
    let env = TestEnv::new("relative_stays_inside");
    env.create("d1/x", b"one\n");
    env.create("a/b/c.txt", b"deep\n");
    env.create("ok.txt", b"ok\n");
    let elsewhere = new_dir(&env, "elsewhere");
    std::os::unix::fs::symlink(&elsewhere, env.in_out("d1")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.in_out("a")).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch_with(&["-R"], &["d1/x", "a/b/c.txt", "d1/../ok.txt", "ok.txt"]).finish(TIMEOUT);
    done.assert_code(1);
    assert!(
        dir_entries(&elsewhere).is_empty(),
        "written through a symlink: {:?}\n{done}",
        dir_entries(&elsewhere)
    );
    assert_same_file(&env.in_root("ok.txt"), &env.in_out("ok.txt"));
    for rel in ["d1/x", "a/b/c.txt"] {
        let line = format!("{rel}: ");
        let failed = done.stdout.lines().any(|l| l.starts_with(&line) && !l.contains("received"));
        assert!(failed, "{rel} was not reported as failed\n{done}");
    }
    // Nothing appeared beside the out dir either.
    let mut beside = dir_entries(env.tmp());
    beside.retain(|e| !["root", "out", "cwd", "elsewhere"].contains(&e.as_str()));
    assert!(beside.is_empty(), "written beside the out dir: {beside:?}");
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}
