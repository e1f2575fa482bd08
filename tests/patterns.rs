//! Requested names that are patterns (`'logs/*.txt'`), a trailing slash,
//! and `--list PATTERN`: every way of naming files goes through the one
//! planner, so a pattern has what `-r` has: the listing's gaps named (exit
//! 1), names as bytes, one normalization; a pattern never leads outside the
//! root, and a name that holds a pattern's characters is fetched as it is.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use crate::util::{
    as_nobody, assert_no_leftovers, command, dir_entries, other_user_or_skip, received_line, wait_for_queue,
    Proc, Signal, TestEnv, SERVER, TIMEOUT,
};

/// The out dir as an argument.
fn out(env: &TestEnv) -> String {
    env.out().to_str().unwrap().to_owned()
}

/// A listing carries at most this many files (the server's walk stops
/// there and says so).
const LISTING_BOUND: usize = 100_000;

#[test]
fn a_pattern_over_more_files_than_a_listing_carries_names_the_gap_and_exits_1() {
    let env = TestEnv::new("pattern_past_the_listing_bound");
    let big = env.in_root("big");
    fs::create_dir(&big).unwrap();
    for i in 0..LISTING_BOUND + 50 {
        fs::File::create(big.join(format!("f{i:06}.dat"))).unwrap();
    }
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-o", &out(&env), "-q", "big/f0020??.dat"]);
    env.stop_server(&mut server);
    // Which 50 files the walk did not reach depends on the directory's
    // order: the run cannot know whether a match was among them, and says so.
    done.assert_code(1).check(
        done.stderr.contains(": skipped: the listing stops after 100000 files; this and the rest left out"),
        "the gap is named, with the bound",
    );
    let got = dir_entries(env.out());
    assert!(got.len() >= 99 && got.iter().all(|n| n.starts_with("f0020")), "{got:?}\n{done}");
    assert_no_leftovers(&env.names);
}

#[test]
fn a_pattern_names_a_directory_the_server_cannot_read_and_exits_1() {
    if !other_user_or_skip("a directory a server run as nobody cannot read") {
        return;
    }
    let env = TestEnv::new("pattern_unreadable_dir");
    env.create("logs/a.txt", b"a\n");
    env.create("logs/sub/b.txt", b"b\n");
    env.create("logs/locked/hidden.txt", b"hidden\n");
    env.open_to_others();
    let locked = env.in_root("logs/locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
    let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    let as_other =
        |args: &[&str]| Proc::spawn(as_nobody(&env.client_cmd(args)), Some(&env.names)).finish(TIMEOUT);
    let deep = as_other(&["-o", &out(&env), "logs/**/*.txt"]);
    let top = as_other(&["-o", &out(&env), "logs/*.txt"]);
    let listed = as_other(&["--list", "logs/**/*.txt"]);
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    deep.assert_code(1)
        .check(
            deep.stderr.contains("shm_client: logs/locked: skipped: could not be read: Permission denied"),
            "the directory a match could lie in is named",
        )
        .check(deep.stdout.contains(&received_line("logs/sub/b.txt", 2)), "the rest is fetched");
    assert_eq!(dir_entries(env.out()), ["a.txt", "b.txt"]);
    // `*` does not reach into logs/locked: nothing is missing there.
    top.assert_code(0).check(!top.stderr.contains("locked"), "a gap where no match could lie is not one");
    listed.assert_code(1).check(listed.stderr.contains("logs/locked: skipped"), "--list names it too");
    assert_no_leftovers(&env.names);
}

#[test]
fn a_pattern_asks_for_the_listed_bytes_of_names_that_are_not_utf8() {
    let env = TestEnv::new("pattern_names_as_bytes");
    let named: [(&[u8], &[u8]); 3] = [
        (b"d/bad_\xff.txt", b"invalid utf-8\n"),
        (b"d/bad_\xef\xbf\xbd.txt", b"the replacement character\n"),
        (b"e/x\xfe.dat", b"x\n"),
    ];
    for (name, contents) in named {
        let path = env.root().join(OsStr::from_bytes(name));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }
    let mut server = env.ready_server(&["--persistent"]);
    let bad = env.run_client(&["-o", &out(&env), "d/bad_*"]);
    let x = env.run_client(&["-o", &out(&env), "e/x*"]);
    env.stop_server(&mut server);
    bad.assert_code(0).check(!bad.stderr.contains("more than once"), "two files, each fetched once");
    x.assert_code(0);
    for (name, contents) in named {
        let last = name.rsplit(|&b| b == b'/').next().unwrap();
        let got = fs::read(env.out().join(OsStr::from_bytes(last)));
        assert_eq!(got.ok().as_deref(), Some(contents), "{}\n{bad}\n{x}", name.escape_ascii());
    }
    assert_no_leftovers(&env.names);
}

#[test]
fn a_pattern_is_normalized_as_every_path_and_braces_choose() {
    let env = TestEnv::new("pattern_normalized");
    env.create("logs/a.txt", b"a\n");
    env.create("logs/b.txt", b"bb\n");
    env.create("logs/c.txt", b"c\n");
    let mut server = env.ready_server(&["--persistent"]);
    let o = out(&env);
    let mut runs = Vec::new();
    for pattern in ["./logs/*.txt", "logs//*.txt", "logs/./*.txt"] {
        runs.push((pattern, env.run_client(&["-o", &o, pattern]), 3));
    }
    runs.push(("logs/{a,b}.txt", env.run_client(&["-o", &o, "logs/{a,b}.txt"]), 2));
    let listed = env.run_client(&["--list", "./logs/{a,c}.txt"]);
    env.stop_server(&mut server);
    for (pattern, done, files) in runs {
        done.assert_code(0).check(
            done.stderr.contains(&format!("{files} files: {files} delivered")),
            &format!("{pattern} fetches {files} files"),
        );
    }
    assert_eq!(dir_entries(env.out()), ["a.txt", "b.txt", "c.txt"]);
    listed.assert_code(0).assert_stdout_lines(&["2\tlogs/a.txt".into(), "2\tlogs/c.txt".into()]);
    assert_no_leftovers(&env.names);
}

#[test]
fn list_of_a_pattern_lists_what_a_fetch_of_it_fetches() {
    let env = TestEnv::new("list_of_a_pattern");
    env.create("dir0/a.txt", b"a\n");
    env.create("dir0/deep/b.txt", b"b\n");
    env.create("dir1/c.log", b"c\n");
    let mut server = env.ready_server(&["--persistent"]);
    let listed = env.run_client(&["--list", "dir0/*"]);
    let fetched = env.run_client(&["-o", &out(&env), "dir0/*"]);
    let across = env.run_client(&["--list", "dir?/*.*"]);
    let none = env.run_client(&["--list", "dir*/*.none"]);
    env.stop_server(&mut server);
    listed.assert_code(0).assert_stdout_lines(&["2\tdir0/a.txt".into()]);
    fetched.assert_code(0).assert_stdout_lines(&[received_line("dir0/a.txt", 2)]);
    across.assert_code(0).assert_stdout_lines(&["2\tdir0/a.txt".into(), "2\tdir1/c.log".into()]);
    none.assert_code(1)
        .check(none.stderr.contains("no file that matches dir*/*.none"), "says nothing matched");
    assert_no_leftovers(&env.names);
}

/// A name echoed in a message is cut in its middle past 200 bytes: `--list`
/// of a 100 KB pattern that matches nothing says so in a line one reads
/// (its first and last 100 bytes around `…`), and so does a warning. A
/// result line on stdout keeps the request whole, as a listing keeps its
/// paths. Before, the message repeated all 100 KB.
#[test]
fn a_message_cuts_a_long_name_in_its_middle() {
    let env = TestEnv::new("long_name_in_a_message");
    env.create("a.txt", b"a\n");
    let pattern = format!("{}*{}", "p".repeat(100_000), "q".repeat(99));
    let shown = format!("{}…*{}", "p".repeat(100), "q".repeat(99));
    let mut server = env.ready_server(&["--persistent"]);
    let listed = env.run_client(&["--list", &pattern]);
    let twice = env.run_client(&["-o", &out(&env), &pattern, &pattern]);
    env.stop_server(&mut server);
    listed.assert_code(1).assert_stdout_lines(&[]).assert_stderr_prefixed("shm_client: error: ").check(
        listed.stderr
            == format!(
                "shm_client: error: the server has no file that matches {shown}; see `shm_client --list` for what it has\n"
            ),
        "the pattern cut in its middle",
    );
    twice
        .assert_code(1)
        .check(
            twice
                .stderr
                .contains(&format!("shm_client: warning: {shown} named more than once; fetched once\n")),
            "a warning cuts it too",
        )
        .assert_stdout_lines(&[format!("{pattern}: not found on server")]);
    assert_no_leftovers(&env.names);
}

/// An entry a listing left out is said on stderr entry by entry, and
/// each by its whole path, as a result line names its file: two entries
/// of more than 200 bytes that differ only in their middle are two lines
/// one tells apart. Before, both were cut to their first and last 100
/// bytes and read alike: which directories were skipped could not be told.
#[test]
fn entries_left_out_are_named_whole_so_that_no_two_read_alike() {
    let env = TestEnv::new("left_out_named_whole");
    let (head, tail) = ("a".repeat(110), "z".repeat(110));
    // Past the walk's 64 levels: left out, whoever runs the server.
    let deep = |middle: &str| format!("{head}/{middle}/{}{tail}/f.txt", "d/".repeat(64));
    env.create(&deep("one"), b"one\n");
    env.create(&deep("two"), b"two\n");
    let mut server = env.ready_server(&["--persistent"]);
    let fetched = env.run_client(&["-r", "-o", &out(&env), "."]);
    let listed = env.run_client(&["--list"]);
    env.stop_server(&mut server);
    for done in [&fetched, &listed] {
        let skipped: Vec<&str> = done.stderr.lines().filter(|l| l.contains(": skipped: ")).collect();
        done.assert_code(1).check(
            skipped.len() == 2
                && skipped[0] != skipped[1]
                && skipped[0].contains(&format!("{head}/one/"))
                && skipped[1].contains(&format!("{head}/two/")),
            "each entry left out is named whole",
        );
    }
    assert_no_leftovers(&env.names);
}

#[test]
fn a_trailing_slash_names_the_directory_as_its_name_does() {
    let env = TestEnv::new("trailing_slash");
    env.create("dir0/a.txt", b"a\n");
    env.create("dir0/sub/b.txt", b"b\n");
    let mut server = env.ready_server(&["--persistent"]);
    let o = out(&env);
    let plain = env.run_client(&["-o", &o, "dir0"]);
    let slash = env.run_client(&["-o", &o, "dir0/"]);
    let tree = env.run_client(&["-o", &o, "-r", "dir0/"]);
    env.stop_server(&mut server);
    let hint =
        |name: &str| format!("{name}: refused by server: {name} is a directory; use -r to fetch a directory");
    plain.assert_code(1).assert_stdout_lines(&[hint("dir0")]);
    slash.assert_code(1).assert_stdout_lines(&[hint("dir0/")]);
    tree.assert_code(0);
    assert_eq!(fs::read(env.in_out("dir0/sub/b.txt")).unwrap(), b"b\n");
    assert_eq!(fs::read(env.in_out("dir0/a.txt")).unwrap(), b"a\n");
    assert_no_leftovers(&env.names);
}

/// A name with a trailing slash fetched as one file (no `-r`: a fetch,
/// `-O`, `--stdout`) is asked for with its slash, in one request that the
/// server's opener resolves as the kernel does: a directory is refused as
/// one, and the tree below it is never walked. Before, the client first
/// asked for the listing of everything below the name (a walk of up to
/// 100 000 files for a big tree) only to learn it was no file, then asked
/// for the name without its slash: a directory swapped for a file between
/// the two requests was fetched as that file.
#[test]
fn a_trailing_slash_is_asked_for_as_it_is_and_walks_no_tree() {
    let env = TestEnv::new("trailing_slash_one_request");
    for i in 0..200 {
        env.create(&format!("big/d{}/f{i:03}.txt", i % 10), b"x\n");
    }
    let mut server = env.ready_server(&["--persistent"]);
    let o = out(&env);
    let dest = env.in_out("renamed.txt");
    let fetched = env.run_client(&["-o", &o, "big/"]);
    let to = env.run_client(&["-O", dest.to_str().unwrap(), "big/d1/"]);
    let piped = env.run_client(&["--stdout", "big/./"]);
    env.stop_server(&mut server);
    let hint =
        |name: &str| format!("{name}: refused by server: {name} is a directory; use -r to fetch a directory");
    fetched.assert_code(1).assert_stdout_lines(&[hint("big/")]);
    to.assert_code(1).assert_stdout_lines(&[hint("big/d1/")]);
    piped.assert_code(1).assert_stdout_lines(&[]);
    let log = server.stderr();
    assert!(!log.contains("listing"), "no tree was walked for a name of one file\n{log}");
    assert!(env.out_entries().is_empty(), "nothing written: {:?}", env.out_entries());
    assert_no_leftovers(&env.names);
}

/// A trailing slash names a directory, as a shell reads it: `small.txt/`
/// (and `small.txt/.`) of a file fails that file, as `cp small.txt/ x`
/// says "Not a directory", in every mode (a fetch, `-r`, `--list`, `-O`).
/// Before, the slash was dropped and the file fetched or listed (exit 0).
#[test]
fn a_trailing_slash_after_a_file_name_says_not_a_directory() {
    let env = TestEnv::new("trailing_slash_file");
    env.create("small.txt", b"small\n");
    env.create("dir0/a.txt", b"a\n");
    let mut server = env.ready_server(&["--persistent"]);
    let o = out(&env);
    let plain = env.run_client(&["-o", &o, "small.txt/", "small.txt/.", "dir0/a.txt"]);
    let tree = env.run_client(&["-o", &o, "-r", "small.txt/"]);
    let listed = env.run_client(&["--list", "small.txt/"]);
    let dest = env.in_out("renamed.txt");
    let to = env.run_client(&["-O", dest.to_str().unwrap(), "small.txt/"]);
    let json = env.run_client(&["-o", &o, "--json", "small.txt/"]);
    env.stop_server(&mut server);
    plain.assert_code(1).assert_stdout_lines(&[
        "small.txt/: not a directory".into(),
        "small.txt/.: not a directory".into(),
        received_line("dir0/a.txt", 2),
    ]);
    tree.assert_code(1).assert_stdout_lines(&["small.txt/: not a directory".into()]);
    listed
        .assert_code(1)
        .assert_stdout_lines(&[])
        .check(listed.stderr.contains("shm_client: error: small.txt/: not a directory"), "--list says it");
    to.assert_code(1).assert_stdout_lines(&["small.txt/: not a directory".into()]);
    json.assert_code(1).check(
        json.stdout.contains(r#""request":"small.txt/","path":"small.txt/","result":"failed","bytes":0,"reason":"not_a_directory""#),
        "--json gives the reason",
    );
    assert_eq!(env.out_entries(), ["a.txt"], "nothing of small.txt written");
    assert_no_leftovers(&env.names);
}

#[test]
fn recursive_patterns_fetch_the_trees_they_match() {
    let env = TestEnv::new("recursive_patterns");
    env.create("dir0/a.txt", b"a\n");
    env.create("dir0/sub/b.txt", b"b\n");
    env.create("dir1/c.txt", b"c\n");
    env.create("other/d.txt", b"d\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-o", &out(&env), "-q", "-r", "dir*"]);
    env.stop_server(&mut server);
    done.assert_code(0);
    assert_eq!(dir_entries(env.out()), ["dir0", "dir1"]);
    assert_eq!(fs::read(env.in_out("dir0/sub/b.txt")).unwrap(), b"b\n");
    assert_eq!(fs::read(env.in_out("dir1/c.txt")).unwrap(), b"c\n");
    assert_no_leftovers(&env.names);
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

/// A pattern with a trailing slash names directories only, as a shell
/// reads `*/`: `-r '*/'` fetches the trees of the directories, not the
/// files beside them; without `-r` it fetches no file, and `--list '*/'`
/// lists none. Before, the slash was dropped and `*/` took the files at the
/// top (replacing local files of those names), never the directories.
/// Without `-r` each directory it matches is refused as `dir0` is.
#[test]
fn a_pattern_with_a_trailing_slash_matches_directories_only() {
    let env = TestEnv::new("pattern_trailing_slash");
    env.create("top.txt", b"top\n");
    env.create("dir0/a.txt", b"a\n");
    env.create("dir0/sub/b.txt", b"b\n");
    env.create("dir1/c.txt", b"c\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-o", &out(&env), "-r", "*/"]);
    done.assert_code(0);
    for rel in ["dir0/a.txt", "dir0/sub/b.txt", "dir1/c.txt"] {
        crate::util::assert_same_file(&env.in_root(rel), &env.in_out(rel));
    }
    assert_eq!(env.out_entries(), ["dir0", "dir1"], "no file beside the directories\n{done}");
    let done = env.run_client(&["-o", &out(&env), "*/"]);
    done.assert_code(1).assert_stdout_lines(&[
        "dir0: refused by server: dir0 is a directory; use -r to fetch a directory".to_owned(),
        "dir1: refused by server: dir1 is a directory; use -r to fetch a directory".to_owned(),
    ]);
    let listed = env.run_client(&["--list", "*/"]);
    listed.check(!listed.stdout.contains("top.txt"), "a file is no directory");
    env.stop_server(&mut server);
    assert_eq!(env.out_entries(), ["dir0", "dir1"]);
    assert_no_leftovers(&env.names);
}

/// A pattern given without `-r` that matches no file but matches
/// directories names each of them with the `-r` hint, as `dir0` named alone
/// is answered (and as `cp dir*` says it omits a directory). Before, it
/// said the pattern was not found on the server, which held the
/// directories it named; a pattern that matches nothing still says so.
#[test]
fn a_pattern_without_r_that_matches_only_directories_names_each_with_the_r_hint() {
    let env = TestEnv::new("pattern_only_dirs");
    env.create("top.txt", b"top\n");
    env.create("dir0/a.txt", b"a\n");
    env.create("dir1/sub/c.txt", b"c\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-o", &out(&env), "dir*"]);
    done.assert_code(1).assert_stdout_lines(&[
        "dir0: refused by server: dir0 is a directory; use -r to fetch a directory".to_owned(),
        "dir1: refused by server: dir1 is a directory; use -r to fetch a directory".to_owned(),
    ]);
    let json = env.run_client(&["--json", "-o", &out(&env), "dir1/*"]);
    json.assert_code(1)
        .check(json.stdout.contains(r#""path":"dir1/sub","result":"refused""#), "the directory, refused")
        .check(json.stdout.contains(r#""reason":"is_directory""#), "as a directory");
    let none = env.run_client(&["-o", &out(&env), "nothing*"]);
    none.assert_code(1).assert_stdout_lines(&["nothing*: not found on server".to_owned()]);
    assert!(env.out_entries().is_empty(), "nothing written");
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

/// `--help` and `--man` name every kind of pattern a fetch takes, as the
/// guide does: `*`, `?`, `[...]`, `**` and `{a,b}` (which fetches either).
/// Before, the two left out `{a,b}` and `**`, which the planner matched.
#[test]
fn help_and_man_name_every_pattern_a_fetch_takes() {
    for arg in ["--help", "--man"] {
        let mut cmd = command(crate::util::CLIENT, None);
        cmd.arg(arg);
        let done = Proc::spawn(cmd, None).finish(TIMEOUT);
        // roff writes ' as \*(Aq and - as \-.
        let text = done.stdout.replace("\\*(Aq", "'").replace("\\-", "-");
        done.assert_code(0);
        for pattern in ["'*'", "'?'", "'[...]'", "'**'", "'{a,b}'"] {
            done.check(text.contains(pattern), &format!("{arg} names {pattern}"));
        }
    }
    let env = TestEnv::new("brace_pattern");
    for name in ["a.txt", "b.txt", "c.txt"] {
        env.create(name, name.as_bytes());
    }
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-o", &out(&env), "{a,b}.txt"]);
    env.stop_server(&mut server);
    done.assert_code(0);
    assert_eq!(dir_entries(env.out()), ["a.txt", "b.txt"], "{{a,b}} fetches either\n{done}");
    assert_no_leftovers(&env.names);
}
