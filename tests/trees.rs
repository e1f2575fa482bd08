//! Trees and listings: `-r`, `--list` and `--put -r` over odd trees (too
//! deep, unreadable, names that are not UTF-8, entries a walk skips, two
//! trees onto one output path, paths with `.` and `//`) and trees changed
//! under the walk: every gap is named with exit 1, and nothing from outside
//! the root, or through a symlink, is listed, read or sent.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crate::util::{
    accepting, as_nobody, assert_no_leftovers, assert_out_empty, assert_same_file, command,
    other_user_or_skip, s, sources, terminate, wait_for_queue, wait_until, write_random_file, Proc, Signal,
    TestEnv, MIB, SERVER, TIMEOUT,
};

/// A path `depth` directories deep ending in `file`.
fn deep_path(depth: usize, file: &str) -> String {
    let mut p: Vec<String> = (0..depth).map(|i| format!("d{i}")).collect();
    p.push(file.to_owned());
    p.join("/")
}

#[test]
fn recursive_fetch_names_a_file_too_deep_to_fetch_and_exits_1() {
    let env = TestEnv::new("rt_recursive_too_deep");
    env.create("top.txt", b"top\n");
    let deep = deep_path(35, "deepest_file.txt");
    env.create(&deep, b"deep\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch_with(&["-r"], &["."]).finish(TIMEOUT);
    let deep_copied = env.in_out(&deep).is_file();
    if !deep_copied {
        done.assert_code(1).check(
            done.stderr.contains("deepest_file.txt") || done.stderr.contains("d34"),
            "the client names the entry it skipped on stderr",
        );
    }
    let list = env.run_client(&["--list", "."]);
    if !list.stdout.contains("deepest_file.txt") {
        list.assert_code(1).check(
            list.stderr.contains("deepest_file.txt") || list.stderr.contains("d34"),
            "--list names the entry it skipped on stderr",
        );
    }
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn recursive_fetch_names_an_unreadable_directory_and_exits_1() {
    if !other_user_or_skip("unreadable directory of a server run as nobody") {
        return;
    }
    let env = TestEnv::new("rt_recursive_unreadable");
    env.create("top.txt", b"top\n");
    env.create("locked_dir/hidden.txt", b"hidden\n");
    env.open_to_others();
    fs::set_permissions(env.in_root("locked_dir"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
    let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    let out = env.out().to_str().unwrap().to_owned();
    let as_other =
        |args: &[&str]| Proc::spawn(as_nobody(&env.client_cmd(args)), Some(&env.names)).finish(TIMEOUT);
    let done = as_other(&["-o", &out, "-r", "."]);
    let list = as_other(&["--list", "."]);
    terminate(&mut server);
    fs::set_permissions(env.in_root("locked_dir"), fs::Permissions::from_mode(0o755)).unwrap();
    done.assert_code(1)
        .check(done.stderr.contains("locked_dir"), "the client names the unreadable directory");
    list.assert_code(1).check(list.stderr.contains("locked_dir"), "--list names the unreadable directory");
    assert_no_leftovers(&env.names);
}

#[test]
fn recursive_fetch_writes_names_that_are_not_utf8() {
    let env = TestEnv::new("rt_recursive_not_utf8");
    env.create("plain.txt", b"plain\n");
    let odd: [&[u8]; 2] = [b"bad_\xff\xfe.bin", b"latin1_\xe9t\xe9.txt"];
    for (i, name) in odd.iter().enumerate() {
        fs::write(env.root().join(OsStr::from_bytes(name)), format!("odd {i}\n")).unwrap();
    }
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch_with(&["-r"], &["."]).finish(TIMEOUT);
    let list = env.run_client(&["--list", "."]);
    env.stop_server(&mut server);
    done.assert_code(0);
    for name in odd {
        let name = OsStr::from_bytes(name);
        let got = env.out().join(name);
        assert!(got.is_file(), "{name:?} was not written to the out dir\n{done}");
        assert_same_file(&env.root().join(name), &got);
    }
    list.check(list.stdout.lines().count() == 3, "--list shows all three files, odd names included");
    assert_no_leftovers(&env.names);
}

#[test]
fn recursive_fetch_of_two_trees_with_the_same_output_path_is_refused_naming_both() {
    let env = TestEnv::new("rt_recursive_same_output");
    env.create("d1/x/f", b"one\n");
    env.create("d2/x/f", b"two\n");
    let mut server = env.ready_server(&["--persistent"]);
    // The shape of the refusal without -r.
    let plain = env.fetch(&["d1/x/f", "d2/x/f"]);
    plain.assert_code(2);
    let done = env.fetch_with(&["-r"], &["d1/x", "d2/x"]).finish(TIMEOUT);
    env.stop_server(&mut server);
    done.assert_code(2)
        .check(done.stderr.contains("d1/x/f") && done.stderr.contains("d2/x/f"), "the refusal names both")
        .check(
            done.stderr.contains("would both be written to"),
            "the refusal has the shape of the one without -r",
        )
        .check(!done.stdout.contains("received"), "nothing was fetched");
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}

#[test]
fn recursive_and_list_accept_paths_with_dot_and_doubled_slashes() {
    let env = TestEnv::new("rt_dot_paths");
    env.create("sub/deep/n.txt", b"n\n");
    let mut server = env.ready_server(&["--persistent"]);
    let plain = env.fetch(&["./sub/deep/n.txt"]);
    plain.assert_code(0);
    let dot = env.fetch_with(&["-r"], &["./sub"]).finish(TIMEOUT);
    let dot_ok = env.in_out("sub/deep/n.txt").is_file();
    let _ = fs::remove_dir_all(env.in_out("sub"));
    let double = env.fetch_with(&["-r"], &["sub//deep"]).finish(TIMEOUT);
    let double_ok = env.in_out("deep/n.txt").is_file();
    let list = env.run_client(&["--list", "./sub"]);
    env.stop_server(&mut server);
    dot.assert_code(0).check(dot_ok, "-r ./sub writes sub/deep/n.txt");
    double.assert_code(0).check(double_ok, "-r sub//deep writes deep/n.txt");
    list.assert_code(0).check(list.stdout.contains("sub/deep/n.txt"), "--list ./sub lists sub/deep/n.txt");
    assert_no_leftovers(&env.names);
}

#[test]
fn listing_never_shows_a_name_from_outside_the_root_while_a_directory_is_swapped_for_a_symlink() {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    let env = TestEnv::new("rt_list_swap");
    let outside = env.tmp().join("outside");
    fs::create_dir(&outside).unwrap();
    let bait = format!("bait_{}_{}.txt", std::process::id(), env.names.stem().len());
    fs::write(outside.join(&bait), b"secret\n").unwrap();
    env.create("sub/inner.txt", b"inner\n");
    std::os::unix::fs::symlink(&outside, env.in_root("link")).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let (a, b) = (env.in_root("sub"), env.in_root("link"));
    let swapper = thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            let _ = renameat2(AT_FDCWD, &a, AT_FDCWD, &b, RenameFlags::RENAME_EXCHANGE);
        }
    });
    let mut leaked = None;
    for _ in 0..150 {
        let list = env.run_client(&["--list"]);
        if list.stdout.contains(&bait) {
            leaked = Some(list);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
    if let Some(list) = leaked {
        panic!("a listing showed {bait}, a file outside the root\n{list}");
    }
}

/// A `-r` tree of odd entries: a symlink out, a FIFO, a tree deeper than
/// the walk descends, a path longer than a request carries, names with a
/// newline, not UTF-8, of 255 bytes. Each entry not sent is named, the
/// run goes on to the last file, exits 1, and the server holds exactly
/// the files said sent.
#[test]
fn put_r_of_odd_entries_names_each_skip_and_sends_the_rest() {
    let env = TestEnv::new("put_r_odd");
    let src = sources(&env);
    let tree = src.join("t");
    let outside = env.tmp().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside\n").unwrap();
    fs::create_dir_all(&tree).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("out")).unwrap();
    nix::unistd::mkfifo(&tree.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let mut deep = tree.join("deep");
    for _ in 0..70 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"too deep\n").unwrap();
    let mut long = tree.join("long");
    for _ in 0..4 {
        long.push("l".repeat(255));
    }
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("far"), b"too long a path\n").unwrap();
    fs::write(tree.join("new\nline"), b"nl\n").unwrap();
    fs::write(tree.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"latin\n").unwrap();
    fs::write(tree.join("n".repeat(255)), b"255\n").unwrap();
    fs::write(tree.join("z_last"), b"last\n").unwrap();
    let mut server = accepting(&env, &[]);
    let done = env.run_client(&["--put", "-r", s(&tree)]);
    done.assert_code(1);
    for skipped in
        ["t/out: skipped: a symbolic link", "t/fifo: skipped: a FIFO", "deeper than", "longer than the 1024"]
    {
        done.check(done.stderr.contains(skipped), skipped);
    }
    done.check(done.stdout.contains("sent 5 bytes → t/z_last"), "the run goes on to the last file");
    let got = env.in_out("t");
    assert_eq!(fs::read(got.join("new\nline")).unwrap(), b"nl\n");
    assert_eq!(fs::read(got.join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap(), b"latin\n");
    assert_eq!(fs::read(got.join("n".repeat(255))).unwrap(), b"255\n");
    assert!(!got.join("out").exists() && !got.join("fifo").exists() && !got.join("long").exists());
    let sent = done.stdout.lines().filter(|l| l.contains(": sent ")).count();
    assert_eq!(sent, 4, "{done}");
    let walk = Command::new("find").arg(&got).args(["-type", "f"]).output().unwrap();
    assert_eq!(
        walk.stdout.iter().filter(|&&b| b == b'\0' || b == b'\n').count(),
        5,
        "the newline name counts twice"
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A `-r` tree changed between the walk and the sending of its files (the
/// client stopped while its first, big file goes): a directory swapped
/// for a symlink out of the tree and one to another directory of the tree,
/// a file removed, a file grown. Nothing is read through a symlink, every
/// file not sent is named, exit 1, and the grown file's line reports the
/// bytes that were sent and stored.
#[test]
fn put_r_of_a_tree_changed_under_the_walk_follows_no_symlink() {
    let env = TestEnv::new("put_r_changed");
    let src = sources(&env);
    let tree = src.join("t");
    let outside = env.tmp().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("x"), b"outside\n").unwrap();
    for d in ["b/sub", "e/sub", "f", "c", "d"] {
        fs::create_dir_all(tree.join(d)).unwrap();
    }
    write_random_file(&tree.join("a.bin"), 8 * MIB, 61);
    fs::write(tree.join("b/sub/x"), b"b's own\n").unwrap();
    fs::write(tree.join("e/sub/x"), b"e's own\n").unwrap();
    fs::write(tree.join("f/x"), b"f's, not e's\n").unwrap();
    fs::write(tree.join("c/gone"), b"soon gone\n").unwrap();
    fs::write(tree.join("d/grow"), b"short\n").unwrap();
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--put", "-r", s(&tree)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "a.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    fs::rename(tree.join("b/sub"), tree.join("b/parked")).unwrap();
    std::os::unix::fs::symlink(&outside, tree.join("b/sub")).unwrap();
    fs::rename(tree.join("e/sub"), tree.join("e/parked")).unwrap();
    std::os::unix::fs::symlink("../f", tree.join("e/sub")).unwrap();
    fs::remove_file(tree.join("c/gone")).unwrap();
    fs::write(tree.join("d/grow"), b"grown much longer\n").unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    done.assert_code(1);
    for name in ["t/b/sub/x", "t/e/sub/x", "t/c/gone"] {
        done.check(done.stderr.contains(&format!("{name}: skipped")), name);
    }
    done.check(done.stdout.contains("sent 18 bytes → t/d/grow"), "the bytes that were sent");
    assert_eq!(fs::read(env.in_out("t/d/grow")).unwrap(), b"grown much longer\n");
    for name in ["t/b/sub/x", "t/e/sub/x", "t/c/gone"] {
        assert!(!env.in_out(name).exists(), "{name} stored: {:?}", fs::read(env.in_out(name)));
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A name longer than the server's file system takes (a component of 300
/// bytes: Linux's file systems take 255) asked of `--list`, `-r` or a
/// pattern is left out for that limit: `NAME: skipped: a name in it is
/// longer than the 255 bytes the server's file system allows`, exit 1,
/// `"reason": "name_too_long"` with `--json`. Before, it was said to be a
/// path `longer than 1024 bytes (shown cut)`, the protocol's limit, which
/// it was not: the request had carried it whole.
#[test]
fn a_listing_of_a_name_too_long_for_the_file_system_says_that_limit() {
    let env = TestEnv::new("list_name_too_long");
    env.create("subdir/a.txt", b"a\n");
    let name_max = nix::unistd::pathconf(env.root(), nix::unistd::PathconfVar::NAME_MAX).unwrap().unwrap();
    let long = format!("subdir/{}", "n".repeat(300));
    let why =
        format!("skipped: a name in it is longer than the {name_max} bytes the server's file system allows");
    let mut server = env.ready_server(&["--persistent"]);
    let out = s(env.out()).to_owned();
    let pattern = format!("{long}/*");
    for args in [vec!["--list", &long], vec!["-o", &out, "-r", &long], vec!["-o", &out, &pattern]] {
        let done = env.run_client(&args);
        done.assert_code(1)
            .check(done.stderr.contains(&why), "the file system's limit on a name")
            .check(!done.stderr.contains("1024"), "not the protocol's on a path");
    }
    let json = env.run_client(&["--list", "--json", &long]);
    json.assert_code(1).check(json.stdout.contains(r#""reason":"name_too_long""#), "its reason");
    env.stop_server(&mut server);
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}

/// `--list` of a prefix longer than the 1024 bytes a request carries fails
/// as a fetch of that name does (`path is 1100 bytes, at most 1024
/// allowed`, exit 1), asked of no server, and the server keeps serving.
/// Before, `cannot encode the request`, exit 4, as if the session were lost.
#[test]
fn a_list_prefix_longer_than_a_request_carries_fails_as_a_fetch_of_it_does() {
    let env = TestEnv::new("list_prefix_too_long");
    env.create("a.txt", b"a\n");
    let mut server = env.ready_server(&["--persistent"]);
    let long = "p".repeat(1100);
    for args in [vec!["--list", &long], vec!["--list", "--json", &long]] {
        let done = env.run_client(&args);
        done.assert_code(1)
            .check(done.stderr.contains("path is 1100 bytes, at most 1024 allowed"), "says the limit")
            .check(!done.stderr.contains("cannot encode"), "no session was lost");
    }
    env.run_client(&["--list"]).assert_code(0).assert_stdout_lines(&["2\ta.txt".to_owned()]);
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}
