//! Attacks on the newest features from the outside: a hostile local user,
//! a lying partial file or record (`-C`), odd output paths (`-O`),
//! patterns, and odd objects in `/dev/shm` for `--status --all` and
//! `--cleanup --all`. A test marked `ignore = "attack: …"` reproduces a
//! defect and asserts the behaviour that should be; the others guard
//! what holds.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::util::{command, received_line, TestEnv, SERVER};

/// The out dir as an argument.
fn out(env: &TestEnv) -> String {
    env.out().to_str().unwrap().to_owned()
}

/// The record `-C` keeps beside a partial: `SIZE MTIME_NS` of `source`.
fn record_of(source: &Path) -> String {
    let meta = fs::metadata(source).unwrap();
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    format!("{} {mtime_ns}\n", meta.len())
}

/// Lays a partial of `name` holding `prefix` with a record of `source`'s
/// stamp in the out dir, as a cut-off `-C` run leaves them.
fn lay_partial(env: &TestEnv, name: &str, prefix: &[u8], source: &Path) {
    fs::write(env.in_out(&format!(".shmxfer-partial.{name}")), prefix).unwrap();
    fs::write(env.in_out(&format!(".shmxfer-partial.{name}.source")), record_of(source)).unwrap();
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// A pseudo-random body of `len` bytes.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[test]
fn continue_with_a_fifo_as_the_partials_record_does_not_hang() {
    let env = TestEnv::new("attack_fifo_record");
    env.create("f.txt", b"hello\n");
    mkfifo(&env.in_out(".shmxfer-partial.f.txt.source"));
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.client(&["-C", "-o", &out(&env), "f.txt"]);
    let Some(_) = client.wait_timeout(Duration::from_secs(5)) else {
        client.kill();
        panic!("-C blocked opening a FIFO named like the record\n{}", client.snapshot());
    };
    client.snapshot().assert_code(0).assert_stdout_lines(&[received_line("f.txt", 6)]);
    env.assert_delivered("f.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_with_a_fifo_as_the_partial_does_not_hang() {
    let env = TestEnv::new("attack_fifo_partial");
    let src = env.create("f.txt", b"hello\n");
    mkfifo(&env.in_out(".shmxfer-partial.f.txt"));
    fs::write(env.in_out(".shmxfer-partial.f.txt.source"), record_of(&src)).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.client(&["-C", "-o", &out(&env), "f.txt"]).finish(Duration::from_secs(10));
    done.assert_code(0).assert_stdout_lines(&[received_line("f.txt", 6)]);
    env.assert_delivered("f.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_never_writes_through_a_partial_linked_outside_the_out_dir() {
    let env = TestEnv::new("attack_hardlinked_partial");
    let whole = body(100_000);
    let src = env.create("f.bin", &whole);
    let outside = env.tmp().join("outside.bin");
    fs::write(&outside, &whole[..40_000]).unwrap();
    fs::hard_link(&outside, env.in_out(".shmxfer-partial.f.bin")).unwrap();
    fs::write(env.in_out(".shmxfer-partial.f.bin.source"), record_of(&src)).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-C", "-o", &out(&env), "f.bin"]).assert_code(0);
    env.assert_delivered("f.bin");
    env.stop_server(&mut server);
    assert_eq!(
        fs::read(&outside).unwrap().len(),
        40_000,
        "a file outside the out dir was written through the partial's other link"
    );
}

#[test]
fn continue_never_follows_a_partial_or_record_that_is_a_symlink() {
    let env = TestEnv::new("attack_symlinked_partial");
    let whole = body(50_000);
    let src = env.create("f.bin", &whole);
    let outside = env.tmp().join("outside.bin");
    fs::write(&outside, &whole[..20_000]).unwrap();
    let record = env.tmp().join("record");
    fs::write(&record, record_of(&src)).unwrap();
    std::os::unix::fs::symlink(&outside, env.in_out(".shmxfer-partial.f.bin")).unwrap();
    fs::write(env.in_out(".shmxfer-partial.f.bin.source"), record_of(&src)).unwrap();
    std::os::unix::fs::symlink(&outside, env.in_out(".shmxfer-partial.g.bin")).unwrap();
    std::os::unix::fs::symlink(&record, env.in_out(".shmxfer-partial.g.bin.source")).unwrap();
    env.create("g.bin", &whole);
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-C", "-o", &out(&env), "f.bin", "g.bin"]).assert_code(0);
    env.assert_delivered("f.bin");
    env.assert_delivered("g.bin");
    env.stop_server(&mut server);
    assert_eq!(fs::read(&outside).unwrap(), &whole[..20_000], "the symlink's target is untouched");
    assert_eq!(fs::read_to_string(&record).unwrap(), record_of(&src));
    for name in ["f.bin", "g.bin"] {
        assert!(fs::symlink_metadata(env.in_out(name)).unwrap().is_file(), "{name} is a file of its own");
    }
}

#[test]
fn continue_with_a_lying_partial_or_record_never_delivers_a_wrong_file() {
    let env = TestEnv::new("attack_lying_partial");
    let whole = body(30_000);
    let src = env.create("long.bin", &whole);
    // A partial longer than the source, whose record is right: starts over.
    let mut longer = whole.clone();
    longer.extend_from_slice(b"more bytes than the source has");
    lay_partial(&env, "long.bin", &longer, &src);
    // A partial of the right length but wrong bytes, record right: fails
    // its check and goes.
    let wrong = env.create("wrong.bin", &whole);
    lay_partial(&env, "wrong.bin", &body(10_000).iter().map(|b| !b).collect::<Vec<_>>(), &wrong);
    // A record that lies about the size or the mtime: starts over.
    env.create("small.bin", &whole);
    fs::write(env.in_out(".shmxfer-partial.small.bin"), &whole[..5_000]).unwrap();
    fs::write(env.in_out(".shmxfer-partial.small.bin.source"), "5000 1\n").unwrap();
    let future = env.create("future.bin", &whole);
    fs::write(env.in_out(".shmxfer-partial.future.bin"), &whole[..5_000]).unwrap();
    let size = fs::metadata(&future).unwrap().len();
    fs::write(env.in_out(".shmxfer-partial.future.bin.source"), format!("{size} 9999999999999999999\n"))
        .unwrap();
    // A record of garbage: not a record.
    env.create("junk.bin", &whole);
    fs::write(env.in_out(".shmxfer-partial.junk.bin"), &whole[..5_000]).unwrap();
    fs::write(env.in_out(".shmxfer-partial.junk.bin.source"), "-1 x\n").unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&[
        "-C",
        "-o",
        &out(&env),
        "long.bin",
        "wrong.bin",
        "small.bin",
        "future.bin",
        "junk.bin",
    ]);
    env.stop_server(&mut server);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines[0], received_line("long.bin", 30_000));
    assert!(lines[1].starts_with("wrong.bin: failed"), "{done}");
    assert_eq!(
        &lines[2..],
        [
            received_line("small.bin", 30_000),
            received_line("future.bin", 30_000),
            received_line("junk.bin", 30_000)
        ]
    );
    for name in ["long.bin", "small.bin", "future.bin", "junk.bin"] {
        env.assert_delivered(name);
    }
    let entries = env.out_entries();
    assert!(!entries.contains(&"wrong.bin".to_owned()), "no wrong file under its name: {entries:?}");
    assert!(
        !entries.iter().any(|e| e.starts_with(".shmxfer-partial.wrong.bin")),
        "a partial that failed its check goes: {entries:?}"
    );
}

#[test]
fn continue_after_the_source_changed_with_the_same_size_and_mtime_never_delivers_a_mix() {
    let env = TestEnv::new("attack_touched_source");
    let old = body(60_000);
    let src = env.create("f.bin", &old);
    let stamp = record_of(&src);
    let meta = fs::metadata(&src).unwrap();
    // The source rewritten (same size) and its mtime set back, as touch -d does.
    let new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
    fs::write(&src, &new).unwrap();
    let then = std::time::UNIX_EPOCH + Duration::new(meta.mtime() as u64, meta.mtime_nsec() as u32);
    fs::File::options().write(true).open(&src).unwrap().set_modified(then).unwrap();
    assert_eq!(record_of(&src), stamp);
    fs::write(env.in_out(".shmxfer-partial.f.bin"), &old[..25_000]).unwrap();
    fs::write(env.in_out(".shmxfer-partial.f.bin.source"), stamp).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-C", "-o", &out(&env), "f.bin"]);
    let entries = env.out_entries();
    if done.code() == Some(0) {
        env.assert_delivered("f.bin");
    } else {
        done.assert_code(1);
        assert!(entries.is_empty(), "neither a mixed file nor the partial is left: {entries:?}");
        // The next run gets it whole.
        env.run_client(&["-C", "-o", &out(&env), "f.bin"]).assert_code(0);
        env.assert_delivered("f.bin");
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_never_resumes_another_users_partial_in_a_shared_directory() {
    use crate::util::{other_user_or_skip, NOBODY};
    if !other_user_or_skip("another user's partial in a sticky directory") {
        return;
    }
    let env = TestEnv::new("attack_foreign_partial");
    env.open_to_others();
    // The out dir is shared as /tmp is: world-writable and sticky.
    fs::set_permissions(env.out(), fs::Permissions::from_mode(0o1777)).unwrap();
    let whole = body(80_000);
    let src = env.create("f.bin", &whole);
    // The other user lays a partial (a true prefix: the source is readable)
    // and its record, both theirs and writable by them.
    lay_partial(&env, "f.bin", &whole[..30_000], &src);
    for name in [".shmxfer-partial.f.bin", ".shmxfer-partial.f.bin.source"] {
        let path = env.in_out(name);
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    }
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-C", "-o", &out(&env), "f.bin"]).assert_code(0);
    env.stop_server(&mut server);
    env.assert_delivered("f.bin");
    let meta = fs::metadata(env.in_out("f.bin")).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o022),
        (0, 0),
        "the delivered file is the client's, not writable by the user who laid the partial"
    );
}

/// `/dev/shm/<stem>.lock` of `env`'s queue.
fn lock_path(env: &TestEnv) -> std::path::PathBuf {
    Path::new("/dev/shm").join(format!("{}.lock", env.names.stem()))
}

/// `shm_server --queue Q --cleanup` for `env`'s queue, run without the
/// fixture's removal of the queue's names when it ends.
fn cleanup_queue(env: &TestEnv) -> crate::util::Finished {
    let mut cmd = command(SERVER, None);
    cmd.args(["--queue", env.names.queue(), "--cleanup"]);
    crate::util::Proc::spawn(cmd, None).finish(Duration::from_secs(10))
}

/// The queues `--status --all --json` reports, with their state.
fn status_all_json(env: &TestEnv) -> String {
    let mut cmd = command(crate::util::CLIENT, None);
    cmd.args(["--status", "--all", "--json"]);
    let done = crate::util::Proc::spawn(cmd, None).finish(Duration::from_secs(10));
    done.assert_code(0);
    done.stdout.lines().filter(|l| l.contains(env.names.queue())).collect::<Vec<_>>().join("\n")
}

/// Lays `make` under `env`'s lock name, checks that `--status --all`
/// does not list it and `--cleanup` leaves it (exit 0), and removes it.
fn odd_lock_is_left_alone(env: &TestEnv, make: impl FnOnce(&Path)) {
    let lock = lock_path(env);
    make(&lock);
    assert_eq!(status_all_json(env), "", "not a lock of this user: not listed");
    let done = cleanup_queue(env);
    let kept = lock.symlink_metadata().is_ok();
    let _ = fs::remove_file(&lock).or_else(|_| fs::remove_dir(&lock));
    done.assert_code(0);
    assert!(kept, "never removed by --cleanup\n{done}");
}

#[test]
fn status_all_and_cleanup_leave_a_fifo_or_another_users_file_named_like_a_lock() {
    let env = TestEnv::new("attack_odd_locks");
    odd_lock_is_left_alone(&env, mkfifo);
    if crate::util::other_user_or_skip("another user's lock") {
        odd_lock_is_left_alone(&env, |lock| {
            fs::write(lock, b"1\n").unwrap();
            std::os::unix::fs::chown(lock, Some(crate::util::NOBODY), None).unwrap();
        });
    }
}

#[test]
fn cleanup_skips_a_directory_named_like_the_lock() {
    let env = TestEnv::new("attack_dir_lock");
    odd_lock_is_left_alone(&env, |lock| fs::create_dir(lock).unwrap());
}

#[test]
fn cleanup_never_removes_an_object_of_another_program_named_like_a_lock() {
    let env = TestEnv::new("attack_foreign_program_lock");
    let lock = lock_path(&env);
    // Another program of this user keeps an object of its own, mode 0644,
    // that it holds with flock(): not a shmxfer lock (mode 0600, a pid).
    fs::write(&lock, b"state of another program\n").unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o644)).unwrap();
    let held = fs::File::open(&lock).unwrap();
    let held = nix::fcntl::Flock::lock(held, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let listed = status_all_json(&env);
    let done = cleanup_queue(&env);
    let kept = lock.symlink_metadata().is_ok();
    drop(held);
    let _ = fs::remove_file(&lock);
    assert_eq!(listed, "", "not a server's lock: not listed as a dead server");
    assert!(kept, "another program's object was removed\n{done}");
    done.assert_code(0);
    assert!(done.stderr.contains("left alone"), "--cleanup says it left it alone\n{done}");
}

#[test]
fn status_all_quotes_a_queue_name_that_holds_a_newline() {
    let env = TestEnv::new("attack_newline_queue");
    // A dead server's lock (mode 0600, empty) of a queue named with a
    // newline and what looks like a second line of the listing.
    let stem = format!("{}\ndead server on queue forged", env.names.stem());
    let lock = Path::new("/dev/shm").join(format!("{stem}.lock"));
    fs::File::create(&lock).unwrap();
    fs::set_permissions(&lock, fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = command(crate::util::CLIENT, None);
    cmd.args(["--status", "--all"]);
    let done = crate::util::Proc::spawn(cmd, None).finish(Duration::from_secs(10));
    let _ = fs::remove_file(&lock);
    done.assert_code(0);
    let quoted = format!("'/{}'$'\\n''dead server on queue forged'", env.names.stem());
    assert!(
        done.stdout.contains(&format!("dead server on queue {quoted}: ")),
        "quoted as a file name\n{done}"
    );
    assert!(!done.stdout.lines().any(|l| l.starts_with("dead server on queue forged")), "{done}");
}

#[test]
fn output_with_a_trailing_slash_never_writes_a_file_of_that_name() {
    let env = TestEnv::new("attack_output_trailing_slash");
    env.create("a.txt", b"a\n");
    let mut server = env.ready_server(&["--persistent"]);
    let dest = format!("{}/new/", out(&env));
    let done = env.run_client(&["-O", &dest, "a.txt"]);
    env.stop_server(&mut server);
    assert_ne!(done.code(), Some(0), "a path naming a directory that is not there fails\n{done}");
    assert!(env.out_entries().is_empty(), "nothing written: {:?}", env.out_entries());
}

#[test]
fn output_to_a_symlink_a_fifo_or_a_directory_never_writes_through_it() {
    let env = TestEnv::new("attack_output_odd_dest");
    env.create("a.txt", b"a\n");
    let outside = env.tmp().join("outside.txt");
    fs::write(&outside, b"keep\n").unwrap();
    std::os::unix::fs::symlink(&outside, env.in_out("link")).unwrap();
    mkfifo(&env.in_out("fifo"));
    fs::create_dir(env.in_out("dir")).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    // A symlink is replaced by the file (never written through).
    let d = env.in_out("link");
    env.client(&["-u", "-p", "-O", d.to_str().unwrap(), "a.txt"])
        .finish(Duration::from_secs(10))
        .assert_code(0);
    assert!(fs::symlink_metadata(&d).unwrap().is_file(), "the link replaced by the file");
    // A FIFO is written into when someone reads it, never replaced: with
    // no reader, nothing is written and it stays.
    let d = env.in_out("fifo");
    env.client(&["-u", "-p", "-O", d.to_str().unwrap(), "a.txt"])
        .finish(Duration::from_secs(10))
        .assert_code(1);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::symlink_metadata(&d).unwrap().file_type().is_fifo(), "the FIFO stays");
    let d = env.in_out("dir");
    env.client(&["-O", d.to_str().unwrap(), "a.txt"]).finish(Duration::from_secs(10)).assert_code(1);
    env.stop_server(&mut server);
    assert_eq!(fs::read(&outside).unwrap(), b"keep\n", "the symlink's target is untouched");
    assert_eq!(crate::util::dir_entries(&d), Vec::<String>::new());
}

#[test]
fn patterns_never_leave_the_root_and_a_literal_star_is_fetched_as_it_is() {
    let env = TestEnv::new("attack_patterns");
    env.create("*", b"star\n");
    env.create("[x", b"bracket\n");
    env.create("sub/s.txt", b"s\n");
    fs::write(env.tmp().join("secret.txt"), b"secret\n").unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let o = out(&env);
    env.run_client(&["-o", &o, "*"]).assert_code(0).assert_stdout_lines(&[received_line("*", 5)]);
    env.run_client(&["-o", &o, "[x"]).assert_code(0);
    for pattern in ["../*", "sub/../../*.txt", "/*", "sub/*/../../../*"] {
        let escape = env.run_client(&["-o", &o, pattern]);
        escape.assert_code(1).check(
            escape.stdout.contains("refused by server")
                && escape.stdout.contains("leads outside the served directory"),
            "refused as such a path is, not 'not found'",
        );
        assert_eq!(env.out_entries(), ["*", "[x"], "{escape}");
    }
    env.stop_server(&mut server);
}

/// A partial longer than its source, whose record says the source did not
/// change: not resumed, and the message says why (before, it said that the
/// source changed, which it had not).
#[test]
fn a_partial_longer_than_its_unchanged_source_is_named_so_and_the_file_starts_over() {
    let env = TestEnv::new("attack_partial_longer");
    let whole = body(100);
    let src = env.create("f.bin", &whole);
    lay_partial(&env, "f.bin", &body(200), &src);
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-C", "-o", &out(&env), "f.bin"]);
    done.assert_code(0)
        .assert_stdout_lines(&[received_line("f.bin", 100)])
        .check(
            done.stderr.contains(
                "f.bin: the partial file (200 B) is longer than the source (100 B), which did not change; starting over"
            ),
            "says the partial is longer than the source",
        )
        .check(!done.stderr.contains("the source changed"), "not that the source changed");
    env.assert_delivered("f.bin");
    assert_eq!(env.out_entries(), ["f.bin"], "the partial and its record are gone");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}
