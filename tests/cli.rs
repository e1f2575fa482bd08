//! The command lines of both programs: argument checks, usage and error
//! messages, and the client's conveniences (`-i`, summary, `--list PREFIX`,
//! `--human`, `--json`, quoted names).

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::{command, received_line, wait_child, Finished, Proc, TestEnv, CLIENT, SERVER, TIMEOUT};

/// Runs `cmd` to completion with the file `stdin` as its standard input.
fn run_with_stdin(mut cmd: std::process::Command, stdin: &std::path::Path) -> Finished {
    cmd.stdin(Stdio::from(fs::File::open(stdin).unwrap()));
    Proc::spawn(cmd, None).finish(TIMEOUT)
}

#[test]
fn both_programs_reject_a_queue_name_without_a_slash_with_exit_2() {
    for (bin, args) in [(SERVER, &["--queue", "noslash"][..]), (CLIENT, &["--queue", "noslash", "x"][..])] {
        let mut cmd = command(bin, None);
        cmd.args(args);
        let done = Proc::spawn(cmd, None).finish(TIMEOUT);
        done.assert_code(2)
            .check(done.stderr.contains("'noslash'"), "the message names the value")
            .check(done.stderr.contains("must start with '/'"), "the message says what is wrong");
    }
}

#[test]
fn a_queue_name_from_the_environment_is_checked_too() {
    let mut cmd = command(SERVER, None);
    cmd.env("SHMXFER_QUEUE", "no/slash");
    let done = Proc::spawn(cmd, None).finish(TIMEOUT);
    done.assert_code(2).check(done.stderr.contains("'no/slash'"), "the message names the value");
}

#[test]
fn a_negative_wait_is_told_it_cannot_be_negative() {
    let env = TestEnv::new("a_negative_wait_is_told_it_cannot_be_negative");
    let done = env.run_client(&["--wait", "-1", "hello.txt"]);
    done.assert_code(2)
        .check(done.stderr.contains("cannot be negative"), "says what is wrong")
        .check(!done.stderr.contains("-- -1"), "no advice to pass -1 as a file name");
    let done = env.run_client(&["--wait", "soon", "hello.txt"]);
    done.assert_code(2).check(done.stderr.contains("not a number of seconds"), "says what is wrong");
}

#[test]
fn usage_errors_show_every_form_and_never_call_the_queue_required() {
    let env = TestEnv::new("usage_errors_show_every_form");
    // SHMXFER_QUEUE set and nothing else: the queue is given, the files are not.
    let mut cmd = command(CLIENT, None);
    cmd.env("SHMXFER_QUEUE", env.names.queue());
    let done = Proc::spawn(cmd, None).finish(TIMEOUT);
    done.assert_code(2)
        .check(done.stderr.contains("Usage: shm_client [OPTIONS] [-r] FILE..."), "the usage of a fetch")
        .check(done.stderr.contains("--list [PREFIX]"), "the usage of --list")
        .check(!done.stderr.contains("--queue <NAME>"), "no --queue in the usage as if it were required");
    // --stop-server with a file: the usage line is the general one, not one
    // built from the arguments given.
    let done = env.run_client(&["--wait", "1", "hello.txt", "--stop-server"]);
    done.assert_code(2).check(done.stderr.contains("cannot be used with"), "says what conflicts").check(
        done.stderr.lines().filter(|l| l.contains("Usage:")).all(|l| !l.contains("--wait")),
        "the usage line is not built from the arguments given",
    );
    env.assert_no_leftovers();
}

#[test]
fn stop_server_and_list_try_once_unless_told_to_wait() {
    let env = TestEnv::new("stop_server_and_list_try_once");
    for args in [&["--stop-server"][..], &["--list"][..]] {
        let done = env.run_client(args);
        done.assert_code(3)
            .check(done.elapsed < Duration::from_secs(5), "no wait for a server")
            .check(done.stderr.contains("no server on queue"), "says there is no server")
            .check(done.stderr.contains("--wait"), "says how to wait for one");
    }
    let started = Instant::now();
    env.run_client(&["--list", "--wait", "0.5"]).assert_code(3);
    assert!(started.elapsed() >= Duration::from_millis(450), "--wait is honoured: {:?}", started.elapsed());
    env.assert_no_leftovers();
}

#[test]
fn a_client_turned_away_as_busy_prints_a_line_for_each_file() {
    let env = TestEnv::new("a_client_turned_away_as_busy");
    env.create("a.txt", b"a\n");
    let mut server = env.ready_server(&["--persistent", "--max-sessions", "1"]);
    // This process holds the only session.
    let config = shmxfer::ClientConfig::new(env.names.queue());
    let holder = shmxfer::Client::connect(&config).expect("the first session opens");

    let done = env.fetch(&["a.txt", "dir/b.txt", "c.txt"]);
    done.assert_code(1)
        .assert_stdout_lines(&[
            "a.txt: failed: server busy".to_string(),
            "dir/b.txt: failed: server busy".to_string(),
            "c.txt: failed: server busy".to_string(),
        ])
        .check(done.stderr.contains("server busy: it serves at most 1 session"), "stderr says why")
        .check(done.stderr.contains("3 files: 0 delivered, 3 failed"), "the summary counts them");
    assert!(env.out_entries().is_empty(), "{:?}", env.out_entries());

    holder.close().expect("the session closes");
    env.fetch(&["a.txt"]).assert_code(0).assert_stdout_lines(&[received_line("a.txt", 2)]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_missing_root_is_reported_once_with_what_to_do() {
    let env = TestEnv::new("a_missing_root_is_reported_once");
    let missing = env.tmp().join("nowhere");
    let done = env.server_in(&missing, &[]).finish(TIMEOUT);
    done.assert_code(1)
        .assert_log_prefixed("shm_server: error: ")
        .check(done.stderr.matches("No such file or directory").count() == 1, "the OS error once")
        .check(done.stderr.contains("nowhere"), "names the directory")
        .check(done.stderr.contains("--root"), "says what to do")
        .check(!done.stderr.contains("queue"), "does not blame the queue");
    env.assert_no_leftovers();
}

#[test]
fn a_second_server_says_how_to_stop_the_first() {
    let env = TestEnv::new("a_second_server_says_how_to_stop_the_first");
    let mut first = env.ready_server(&["--persistent"]);
    let done = env.server(&[]).finish(TIMEOUT);
    done.assert_code(1)
        .assert_log_prefixed("shm_server: error: ")
        .check(done.stderr.contains(&format!("pid {}", first.pid())), "names the live server")
        .check(done.stderr.contains("--stop-server"), "says what to do");
    env.stop_server(&mut first);
    env.assert_no_leftovers();
}

#[test]
fn input_lists_names_one_per_line_from_a_file_or_stdin() {
    let env = TestEnv::new("input_lists_names_one_per_line");
    env.create("hello.txt", b"hello\n");
    env.create("subdir/nested.txt", b"nested\n");
    env.create("name with space.txt", b"spaced\n");
    // The assignment's filelist.txt: names, a blank line, a DOS line end.
    let list = env.tmp().join("filelist.txt");
    fs::write(&list, "hello.txt\n\nsubdir/nested.txt\r\n  \nname with space.txt").unwrap();
    let mut server = env.ready_server(&["--persistent"]);

    let out = env.out().to_str().unwrap().to_owned();
    env.run_client(&["-o", &out, "-i", list.to_str().unwrap()]).assert_code(0).assert_stdout_lines(&[
        received_line("hello.txt", 6),
        received_line("subdir/nested.txt", 7),
        received_line("name with space.txt", 7),
    ]);
    for f in ["hello.txt", "subdir/nested.txt", "name with space.txt"] {
        env.assert_delivered(f);
    }

    // Standard input, after the names given as arguments.
    let names = env.tmp().join("names");
    fs::write(&names, "missing.txt\n").unwrap();
    let done = run_with_stdin(env.client_cmd(&["-o", &out, "--input", "-", "hello.txt"]), &names);
    done.assert_code(1).assert_stdout_lines(&[
        received_line("hello.txt", 6),
        "missing.txt: not found on server".to_string(),
    ]);

    // A list that cannot be read, or that names nothing, is a usage error.
    let done = env.run_client(&["-i", env.tmp().join("nolist").to_str().unwrap()]);
    done.assert_code(2).check(done.stderr.contains("nolist"), "names the list");
    let empty = env.tmp().join("empty.txt");
    fs::write(&empty, "\n\n").unwrap();
    let done = env.run_client(&["-i", empty.to_str().unwrap()]);
    done.assert_code(2).check(done.stderr.contains("names no file"), "says the list is empty");

    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_summary_follows_a_fetch_of_several_files_unless_quiet() {
    let env = TestEnv::new("a_summary_follows_a_fetch_of_several_files");
    env.create("a.txt", b"aaaa\n");
    env.create("b.txt", b"bbbbbb\n");
    let mut server = env.ready_server(&["--persistent"]);

    let done = env.fetch(&["a.txt", "b.txt", "nope.txt", "../x"]);
    done.assert_code(1).assert_stderr_prefixed("shm_client: ");
    let summary = done.stderr.lines().last().unwrap_or_default();
    done.check(
        summary.starts_with("shm_client: 4 files: 2 delivered, 1 not found, 1 refused; 12 B in "),
        "summary of counts and bytes",
    )
    .check(summary.ends_with("/s)"), "summary gives a rate");
    assert_eq!(done.stdout.lines().count(), 4, "one result line per file on stdout");

    let done = env.fetch(&["a.txt"]);
    done.assert_code(0).check(done.stderr.is_empty(), "no summary for one file");
    let done = env.fetch(&["-q", "a.txt", "nope.txt"]);
    done.assert_code(1)
        .check(done.stderr.is_empty(), "no summary with -q")
        .assert_stdout_lines(&["nope.txt: not found on server".to_string()]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn list_shows_only_the_part_of_the_tree_asked_for() {
    let env = TestEnv::new("list_shows_only_the_part_of_the_tree");
    env.create("sub/a.txt", b"a");
    env.create("sub/deep/b.txt", b"bb");
    env.create("subway/c.txt", b"ccc");
    env.create("top.txt", b"dddd");
    let mut server = env.ready_server(&["--persistent"]);

    let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    env.run_client(&["--list", "sub"])
        .assert_code(0)
        .assert_stdout_lines(&lines(&["1\tsub/a.txt", "2\tsub/deep/b.txt"]));
    env.run_client(&["--list", "sub/deep/"])
        .assert_code(0)
        .assert_stdout_lines(&lines(&["2\tsub/deep/b.txt"]));
    env.run_client(&["--list", "top.txt"]).assert_code(0).assert_stdout_lines(&lines(&["4\ttop.txt"]));
    // The prefix may follow other flags, as `ls -l sub` takes it; one only.
    let after = env.run_client(&["--list", "--human", "sub/deep"]);
    after.assert_code(0).check(
        after.stdout.contains("sub/deep/b.txt") && !after.stdout.contains("sub/a.txt"),
        "lists below the prefix only",
    );
    let two = env.run_client(&["--list", "sub", "top.txt"]);
    two.assert_code(2).check(two.stderr.contains("--list takes one PREFIX; 2 were given"), "says so");
    let drain = env.run_client(&["--drain"]);
    drain
        .assert_code(2)
        .check(drain.stderr.contains("--drain goes with --stop-server"), "says what it needs");
    env.run_client(&["--list"]).assert_code(0).assert_stdout_lines(&lines(&[
        "1\tsub/a.txt",
        "2\tsub/deep/b.txt",
        "3\tsubway/c.txt",
        "4\ttop.txt",
    ]));
    let done = env.run_client(&["--list", "su"]);
    done.assert_code(1)
        .assert_stdout_lines(&[])
        .check(done.stderr.contains("no file at or below su"), "says so");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn human_prints_sizes_in_binary_units() {
    let env = TestEnv::new("human_prints_sizes_in_binary_units");
    env.create("small.txt", b"12345");
    env.create_random("mid.bin", 1536, 1);
    env.create_random("big.bin", 3 << 20, 2);
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["--list", "--human"]).assert_code(0).assert_stdout_lines(&[
        "3.0 MiB\tbig.bin".to_string(),
        "1.5 KiB\tmid.bin".to_string(),
        // Right-aligned in a column as wide as the widest size.
        "    5 B\tsmall.txt".to_string(),
    ]);
    let out = env.out().to_str().unwrap().to_owned();
    let done = env.run_client(&["--human", "-o", &out, "big.bin", "small.txt"]);
    done.assert_code(0)
        .assert_stdout_lines(&[
            "big.bin: received 3.0 MiB".to_string(),
            "small.txt: received 5 B".to_string(),
        ])
        .check(done.stderr.contains("2 files: 2 delivered; 3.0 MiB in "), "the summary");
    env.assert_delivered("big.bin");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A name from the server's directory (anyone who writes there chooses
/// it) reaches the terminal escaped in every message that names it, not
/// only in result lines and listings: the server's refusal (`… is a
/// FIFO`, sent back as text), the client's own word on an output path
/// (`… is a directory; no file can be written there`). Before, both
/// carried the name's bytes as they are: ESC `[2J` cleared the screen of
/// whoever fetched, `\r` rewrote the line.
#[test]
fn a_name_from_the_server_reaches_the_terminal_escaped_in_every_message() {
    let env = TestEnv::new("server_names_escaped_in_messages");
    let (fifo, file) = ("f\x1b[2J\r.fifo", "e\x1b[2J\r.txt");
    crate::util::mkfifo(&env.in_root(fifo));
    env.create(file, b"x\n");
    fs::create_dir(env.in_out(file)).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();
    let text = env.run_client(&["-o", &out, fifo, file]);
    let json = env.run_client(&["--json", "-o", &out, fifo, file]);
    env.stop_server(&mut server);
    for done in [&text, &json] {
        done.assert_code(1).check(
            !done.stdout.contains(['\x1b', '\r']) && !done.stderr.contains(['\x1b', '\r']),
            "no raw ESC or CR in any line",
        );
    }
    text.check(
        text.stdout.contains("refused by server: ") && text.stdout.contains("is a directory; no file can be"),
        "both messages were given",
    );
    env.assert_no_leftovers();
}

#[test]
fn names_with_control_characters_are_quoted_as_ls_quotes_them() {
    let env = TestEnv::new("names_with_control_characters_are_quoted");
    env.create("odd\nname", b"1");
    env.create("tab\there", b"22");
    env.create("name with space.txt", b"333");
    env.create("'quoted'", b"4444");
    let mut server = env.ready_server(&["--persistent"]);

    let listed = env.run_client(&["--list"]);
    listed.assert_code(0).assert_stdout_lines(&[
        "4\t\"'quoted'\"".to_string(),
        "3\tname with space.txt".to_string(),
        "1\t'odd'$'\\n''name'".to_string(),
        "2\t'tab'$'\\t''here'".to_string(),
    ]);
    let out = env.out().to_str().unwrap().to_owned();
    env.run_client(&["-o", &out, "odd\nname", "tab\there"]).assert_code(0).assert_stdout_lines(&[
        "'odd'$'\\n''name': received 1 byte".to_string(),
        "'tab'$'\\t''here': received 2 bytes".to_string(),
    ]);
    env.assert_delivered("odd\nname");
    env.assert_delivered("tab\there");

    // What --list prints, pasted into a shell, names the file again.
    let quoted = listed.stdout.lines().nth(2).unwrap().split_once('\t').unwrap().1.to_owned();
    let echoed =
        std::process::Command::new("bash").arg("-c").arg(format!("printf %s {quoted}")).output().unwrap();
    assert_eq!(echoed.stdout, b"odd\nname");

    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn list_json_gives_every_name_and_size_escaped() {
    let env = TestEnv::new("list_json_gives_every_name_and_size");
    env.create("a\"b\\c\nd", b"1");
    env.create("sub/x.txt", b"22");
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["--list", "--json"]).assert_code(0).assert_stdout_lines(&[
        r#"{"files":[{"path":"a\"b\\c\nd","size":1},{"path":"sub/x.txt","size":2}]}"#.to_string(),
    ]);
    env.run_client(&["--list", "sub", "--json"])
        .assert_code(0)
        .assert_stdout_lines(&[r#"{"files":[{"path":"sub/x.txt","size":2}]}"#.to_string()]);
    let done = env.run_client(&["--json", "--stdout", "a.txt"]);
    done.assert_code(2).check(done.stderr.contains("--list"), "--json goes with --list, not --stdout");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn stdout_streams_one_file_and_nothing_else() {
    let env = TestEnv::new("stdout_streams_one_file");
    let big = env.create_random("sub/big.bin", 3 << 20, 7);
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);

    let done = env.run_client(&["--stdout", "sub/big.bin"]);
    done.assert_code(0).check(done.stderr.is_empty(), "nothing on stderr");
    // Proc keeps stdout as lossy text; compare the bytes through a file instead.
    let copy = env.tmp().join("copy.bin");
    let file = fs::File::create(&copy).unwrap();
    let status = env.client_cmd(&["--stdout", "sub/big.bin"]).stdout(file).status().unwrap();
    assert!(status.success(), "{status}");
    crate::util::assert_same_file(&big, &copy);
    assert!(
        env.out_entries().is_empty() && crate::util::dir_entries(env.cwd()).is_empty(),
        "no file written"
    );

    let done = env.run_client(&["--stdout", "nope.txt"]);
    done.assert_code(1)
        .assert_stdout_lines(&[])
        .check(done.stderr.contains("nope.txt: not found on server"), "the failure on stderr");
    let done = env.run_client(&["--stdout", "hello.txt", "sub/big.bin"]);
    done.assert_code(2).check(done.stderr.contains("one file"), "one file only");
    let done = env.run_client(&["--stdout", "--list"]);
    done.assert_code(2);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn stdout_reports_a_bad_checksum_after_the_bytes_left() {
    use crate::faults::{control, frame, hostile_server};
    use shmxfer::testing::protocol::{FrameKind, Reply, StartFlags};
    let env = TestEnv::new("stdout_reports_a_bad_checksum");
    let frames = vec![
        control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
        frame(FrameKind::Data, 1, b"four".to_vec()),
        control(Reply::End { count: 4, checksum: 12345 }, 1),
    ];
    let fake = hostile_server(&env, frames);
    let done = env.run_client(&["--stdout", "victim.bin"]);
    done.assert_code(1)
        .check(done.stdout == "four", "the bytes went out as they came")
        .check(done.stderr.contains("victim.bin: failed: checksum mismatch"), "the mismatch is reported");
    fake.join().unwrap();
    env.assert_no_leftovers();
}

#[test]
fn recursive_fetches_a_directory_keeping_its_paths() {
    let env = TestEnv::new("recursive_fetches_a_directory");
    env.create("sub/a.txt", b"a\n");
    env.create_random("sub/deep/b.bin", 100_000, 3);
    env.create("subway/c.txt", b"c\n");
    env.create("top.txt", b"top\n");
    let mut server = env.ready_server(&["--persistent"]);

    let out = env.out().to_str().unwrap().to_owned();
    let done = env.run_client(&["-r", "-o", &out, "sub", "top.txt", "none"]);
    done.assert_code(1).assert_stdout_lines(&[
        "sub/a.txt: received 2 bytes".to_string(),
        "sub/deep/b.bin: received 100000 bytes".to_string(),
        "top.txt: received 4 bytes".to_string(),
        "none: not found on server".to_string(),
    ]);
    for rel in ["sub/a.txt", "sub/deep/b.bin"] {
        crate::util::assert_same_file(&env.in_root(rel), &env.in_out(rel));
    }
    assert_eq!(env.out_entries(), ["sub", "top.txt"]);

    // The whole tree, into a directory of its own.
    let all = env.tmp().join("all");
    fs::create_dir(&all).unwrap();
    env.run_client(&["-r", "-q", "-o", all.to_str().unwrap(), "."]).assert_code(0).assert_stdout_lines(&[]);
    for rel in ["sub/a.txt", "sub/deep/b.bin", "subway/c.txt", "top.txt"] {
        crate::util::assert_same_file(&env.in_root(rel), &all.join(rel));
    }

    // A deeper directory lands under its own name; with -R under its whole path.
    for (flags, want, line) in [
        (&["-r"][..], "deep/b.bin", "sub/deep/b.bin: received 100000 bytes → deep/b.bin"),
        (&["-r", "-R"][..], "sub/deep/b.bin", "sub/deep/b.bin: received 100000 bytes"),
    ] {
        let to = env.tmp().join(format!("to{}", flags.len()));
        fs::create_dir(&to).unwrap();
        let mut args = flags.to_vec();
        args.extend(["-o", to.to_str().unwrap(), "sub/deep"]);
        env.run_client(&args).assert_code(0).assert_stdout_lines(&[line.to_string()]);
        crate::util::assert_same_file(&env.in_root("sub/deep/b.bin"), &to.join(want));
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn recursive_never_writes_through_a_symlink_in_the_out_dir() {
    let env = TestEnv::new("recursive_never_writes_through_a_symlink");
    env.create("sub/a.txt", b"a\n");
    let elsewhere = env.tmp().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.in_out("sub")).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();
    let done = env.run_client(&["-r", "-o", &out, "sub"]);
    done.assert_code(1).check(
        done.stdout.starts_with("sub/a.txt: failed: ") && done.stdout.contains("not a directory"),
        "the file fails: the symlink is in the way",
    );
    assert!(crate::util::dir_entries(&elsewhere).is_empty(), "nothing written through the symlink");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn recursive_refuses_listed_paths_that_would_leave_the_out_dir() {
    use crate::faults::{control, hostile_server};
    use shmxfer::testing::protocol::Reply;
    let env = TestEnv::new("recursive_refuses_listed_paths");
    let frames = vec![
        control(
            Reply::ListEntry {
                size: 4,
                mode: 0o644,
                mtime_secs: 0,
                mtime_nsec: 0,
                path: "sub/../../evil".into(),
            },
            1,
        ),
        control(
            Reply::ListEntry { size: 4, mode: 0o644, mtime_secs: 0, mtime_nsec: 0, path: "sub//x".into() },
            1,
        ),
        control(Reply::ListEnd { files: 2, skipped: 0 }, 1),
    ];
    let fake = hostile_server(&env, frames);
    let out = env.out().to_str().unwrap().to_owned();
    let done = env.run_client(&["-r", "-o", &out, "sub"]);
    done.assert_code(1).check(
        done.stdout.lines().count() == 2
            && done.stdout.lines().all(|l| l.contains(": failed: the server's path")),
        "both paths refused",
    );
    assert!(env.out_entries().is_empty(), "{:?}", env.out_entries());
    assert!(!env.tmp().join("evil").exists());
    fake.join().unwrap();
    env.assert_no_leftovers();
}

/// A writer that runs `at` once, when `after` bytes have come through.
struct Pause<F: FnMut()> {
    seen: usize,
    after: usize,
    at: Option<F>,
}

impl<F: FnMut()> std::io::Write for Pause<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.seen += buf.len();
        if self.seen >= self.after {
            if let Some(mut at) = self.at.take() {
                at();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn status_shows_the_server_and_each_live_session() {
    let env = TestEnv::new("status_shows_the_server_and_each_live_session");
    env.create_random("big.bin", 8 << 20, 5);
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent", "--max-sessions", "1"]);
    env.fetch(&["hello.txt"]).assert_code(0);

    // This process holds the only session, in the middle of big.bin, while
    // the status is asked for: a full server still answers it.
    let config = shmxfer::ClientConfig::new(env.names.queue());
    let mut holder = shmxfer::Client::connect(&config).expect("a session opens");
    let mut seen: Vec<Finished> = Vec::new();
    let outcome = {
        let mut writer = Pause {
            seen: 0,
            after: 1 << 20,
            at: Some(|| {
                seen.push(env.run_client(&["--status"]));
                seen.push(env.run_client(&["--status", "--json"]));
            }),
        };
        holder.fetch_to("big.bin", &mut writer).expect("big.bin arrives")
    };
    assert_eq!(outcome, shmxfer::Outcome::Delivered { bytes: 8 << 20 });
    holder.close().unwrap();

    let me = std::process::id();
    let text = &seen[0];
    text.assert_code(0);
    let lines: Vec<&str> = text.stdout.lines().collect();
    text.check(lines.len() == 3, "a server line, a sessions line, one line for the held session")
        .check(
            lines[0].starts_with(&format!("server pid {} on queue {}", server.pid(), env.names.queue())),
            "pid and queue",
        )
        .check(lines[0].contains("(persistent)"), "the mode")
        .check(
            lines[1].contains("1 open of 1 allowed") && lines[1].contains("sent 1 file(s), 6 bytes"),
            "limits and totals",
        )
        .check(lines[2].starts_with(&format!("client {me}: big.bin: ")), "the held session's file")
        .check(lines[2].contains(&format!(" of {} bytes, ", 8 << 20)), "its size")
        .check(lines[2].contains("/s, last frame "), "its rate and idle time");
    let json = &seen[1];
    json.assert_code(0)
        .check(
            json.stdout.starts_with(&format!("{{\"server\":{{\"pid\":{},", server.pid())),
            "the server object",
        )
        .check(
            json.stdout.contains("\"persistent\":true,\"max_sessions\":1,\"open_sessions\":1,"),
            "the mode and limit",
        )
        .check(
            json.stdout.contains(&format!(
                "\"sessions\":[{{\"client_pid\":{me},\"direction\":\"fetch\",\"path\":\"big.bin\","
            )),
            "the session",
        );

    // No server: one try, exit 3.
    env.stop_server(&mut server);
    env.run_client(&["--status"]).assert_code(3);
    env.assert_no_leftovers();
}

#[test]
fn server_logs_a_start_line_each_request_and_a_summary() {
    let env = TestEnv::new("server_logs_a_start_line_each_request");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let client = env.fetch(&["hello.txt", "nope.txt", "../x"]);
    client.assert_code(1);
    env.run_client(&["--list"]).assert_code(0);
    env.stop_server(&mut server);
    let log = server.snapshot();
    let pid = client_pid_of(&log.stderr, "hello.txt");
    log.assert_log_prefixed("shm_server: ")
        .check(
            log.stderr.lines().next().unwrap_or_default().contains(&format!(
                "on queue {} (pid {}",
                env.names.queue(),
                server.pid()
            )),
            "the start line names queue and pid",
        )
        .check(
            log.stderr.contains(&format!("client {pid}: hello.txt: sent 6 bytes in ")),
            "the delivered file",
        )
        .check(log.stderr.contains(&format!("client {pid}: nope.txt: not found\n")), "the missing file")
        .check(log.stderr.contains(&format!("client {pid}: ../x: refused: ")), "the refused path")
        .check(log.stderr.contains(": listing: 1 file(s)"), "the listing")
        .check(
            log.stderr.contains("stopped: served 1 file(s), 6 bytes, in 2 session(s) over "),
            "the summary",
        )
        .check(!log.stderr.contains("session /"), "no session life without -v");
    env.assert_no_leftovers();
}

/// The pid in the access-log line of `path`.
fn client_pid_of(log: &str, path: &str) -> u32 {
    let needle = format!(": {path}: ");
    let line =
        log.lines().find(|l| l.contains(&needle)).unwrap_or_else(|| panic!("no line for {path}:\n{log}"));
    let (_, rest) = crate::util::split_log_time(line).unwrap_or_else(|| panic!("no time in {line:?}"));
    rest.trim_start_matches("shm_server: client ").split(':').next().unwrap().parse().unwrap()
}

#[test]
fn server_log_levels_follow_v_q_and_rust_log() {
    let env = TestEnv::new("server_log_levels_follow_v_q_and_rust_log");
    env.create("hello.txt", b"hello\n");
    let run = |extra: &[&str], rust_log: Option<&str>| {
        let mut cmd = command(SERVER, Some(&env.names));
        cmd.arg("--root").arg(env.root()).args(extra).current_dir(env.cwd());
        if let Some(spec) = rust_log {
            cmd.env("RUST_LOG", spec);
        }
        let mut server = Proc::spawn(cmd, Some(&env.names));
        crate::util::wait_for_queue(&env.names, &mut server);
        env.fetch(&["hello.txt"]).assert_code(0);
        let done = server.finish(TIMEOUT);
        done.assert_code(0);
        done
    };
    let quiet = run(&["-q"], None);
    quiet.check(quiet.stderr.is_empty(), "-q: errors only");
    let verbose = run(&["-v"], None);
    verbose
        .check(verbose.stderr.contains("session /") && verbose.stderr.contains(" opened"), "-v: session life")
        .check(verbose.stderr.contains(": goodbye"), "-v: the goodbye")
        .check(!verbose.stderr.contains("queue: "), "-v: no queue traffic")
        .check(verbose.stderr.contains(": hello.txt: sent 6 bytes"), "-v: the access log too");
    let very = run(&["-vv"], None);
    very.check(very.stderr.contains(" opened"), "-vv: session life")
        .check(very.stderr.contains("queue: get hello.txt from pid "), "-vv: each queue message, readable")
        .check(very.stderr.contains("queue: goodbye from pid "), "-vv: the goodbye message")
        .check(!very.stderr.contains('{'), "-vv: no Rust structs");
    let warn_only = run(&[], Some("warn"));
    warn_only.check(warn_only.stderr.is_empty(), "RUST_LOG=warn: no info lines");
    let debug = run(&[], Some("shmxfer=debug"));
    debug.check(debug.stderr.contains(" opened"), "RUST_LOG=shmxfer=debug: debug lines of the library");
    let trace = run(&[], Some("shmxfer=trace"));
    trace.check(trace.stderr.contains("queue: get hello.txt"), "RUST_LOG=shmxfer=trace: the queue traffic");
    env.assert_no_leftovers();
}

#[test]
fn an_interrupted_client_is_logged_as_gone_after_its_goodbye_not_as_dead() {
    let env = TestEnv::new("an_interrupted_client_is_logged_as_gone");
    env.create_random("big.bin", 64 << 20, 9);
    let mut server = env.ready_server(&["--persistent", "-v"]);
    let mut client = env.fetch_proc(&["big.bin"]);
    let receiving = |c: &Proc| c.open_files_under(env.out()).iter().any(|(_, len)| *len > 0);
    assert!(crate::util::wait_until(TIMEOUT, || receiving(&client) || !client.is_running()));
    client.signal(crate::util::Signal::SIGINT);
    client.finish(TIMEOUT).assert_code(130);
    // The server notices within a wait slice.
    crate::util::wait_until(TIMEOUT, || server.stderr().contains("big.bin: stopped after "));
    env.stop_server(&mut server);
    let log = server.snapshot();
    log.check(!log.stderr.contains("died"), "not called dead")
        .check(log.stderr.contains("big.bin: stopped after "), "the access line says the file stopped")
        .check(log.stderr.contains("the client left"), "and why");
    env.assert_no_leftovers();
}

#[test]
fn both_programs_print_completions_and_a_man_page() {
    for (bin, name, flag) in [(SERVER, "shm_server", "--stall-timeout"), (CLIENT, "shm_client", "--stdout")] {
        let mut cmd = command(bin, None);
        cmd.args(["--completions", "bash"]);
        let done = Proc::spawn(cmd, None).finish(TIMEOUT);
        done.assert_code(0)
            .check(done.stdout.contains(&format!("_{name}()")), "a bash function")
            .check(done.stdout.contains(flag), "the options");
        let mut cmd = command(bin, None);
        cmd.arg("--man").env("SHMXFER_QUEUE", "/from_env");
        let done = Proc::spawn(cmd, None).finish(TIMEOUT);
        done.assert_code(0).check(done.stdout.contains(&format!(".TH {name} 1")), "a roff page");
        // Each example on lines of its own, which roff does not run together.
        done.check(done.stdout.contains(".SH \"EXAMPLES\"\n.TP\n\\fB"), "examples as tagged paragraphs")
            .check(!done.stdout.contains("Examples:"), "no examples left in running text")
            .check(done.stdout.contains(".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\n"), "an exit status section")
            .check(done.stdout.contains(".SH ENVIRONMENT\n.TP\n\\fBSHMXFER_QUEUE\\fR"), "the environment")
            .check(done.stdout.contains(&format!(".SH SYNOPSIS\n.nf\n{name} [OPTIONS]")), "the usage forms")
            .check(
                done.stdout.contains(if bin == SERVER { "\\-\\-queue NAME" } else { "\\-\\-list [PREFIX]" }),
                "with value names",
            );
    }
}

#[test]
fn status_does_not_count_as_the_last_client_of_a_default_mode_server() {
    let env = TestEnv::new("status_does_not_count_as_the_last_client");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&[]);
    let done = env.run_client(&["--status"]);
    done.assert_code(0).check(done.stdout.contains("(until the last client leaves)"), "the mode");
    assert!(server.wait_timeout(Duration::from_millis(500)).is_none(), "the server stopped after a status");
    env.fetch(&["hello.txt"]).assert_code(0);
    server.finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

/// The library's status session has no fetch method; a client that sends
/// a Get on one anyway (by the protocol) is refused by the server.
#[test]
fn a_status_session_gets_no_file() {
    use shmxfer::testing::protocol::{
        Command as Msg, FrameKind, GetCondition, ReasonCode, Reply, SessionKind,
    };
    let env = TestEnv::new("a_status_session_gets_no_file");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent", "--max-sessions", "1"]);
    let pid = std::process::id();
    let mut raw = crate::stalls::RawSession::open_kind(&env, pid, SessionKind::Status);
    let region = raw.region_name();
    let path = b"hello.txt".to_vec();
    raw.command(&Msg::Get {
        client_pid: pid,
        seq: 1,
        region,
        path,
        offset: 0,
        condition: GetCondition::Always,
    });
    let (header, payload) = raw.next_frame();
    assert_eq!((header.kind, header.seq), (FrameKind::Refused, 1));
    let refused = Reply::decode(header.kind, &payload).expect("a Refused frame");
    assert!(matches!(refused, Reply::Refused { code: ReasonCode::WrongSession, .. }), "{refused:?}");
    drop(raw);
    let config = shmxfer::ClientConfig::new(env.names.queue());
    let mut session = shmxfer::StatusSession::connect(&config).expect("a status session opens");
    let status = session.status().expect("the status");
    assert_eq!((status.server.open_sessions, status.server.max_sessions), (0, 1));
    session.close().unwrap();
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn the_root_or_an_empty_name_never_stands_for_the_whole_tree() {
    let env = TestEnv::new("the_root_or_an_empty_name");
    env.create("sub/a.txt", b"a\n");
    env.create("top.txt", b"top\n");
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();

    // An absolute path is refused, as the server refuses one for a plain fetch.
    for name in ["/", "/sub", "//"] {
        let done = env.run_client(&["-r", "-o", &out, name]);
        done.assert_code(1)
            .check(done.stdout.starts_with(&format!("{name}: refused by server: ")), "refused")
            .check(done.stdout.contains("leads outside the served directory"), "says why");
        let done = env.run_client(&["--list", name]);
        done.assert_code(1)
            .check(done.stdout.is_empty(), "nothing listed")
            .check(done.stderr.contains("leads outside the served directory"), "says why");
    }
    assert!(env.out_entries().is_empty(), "nothing fetched: {:?}", env.out_entries());

    // An empty name is a usage error, whatever the mode.
    for args in [&["-r", ""][..], &[""], &["--stdout", ""], &["--list", ""]] {
        let mut all = vec!["-o", &out];
        if args[0] == "--list" || args[0] == "--stdout" {
            all.clear();
        }
        all.extend_from_slice(args);
        let done = env.run_client(&all);
        done.assert_code(2)
            .check(done.stdout.is_empty(), "nothing on stdout")
            .check(done.stderr.contains("empty"), "says the name is empty");
    }
    assert!(env.out_entries().is_empty(), "nothing fetched: {:?}", env.out_entries());

    // What still means everything: no prefix, and '.'.
    for args in [&["--list"][..], &["--list", "."]] {
        let done = env.run_client(args);
        done.assert_code(0).assert_stdout_lines(&["2\tsub/a.txt".to_string(), "4\ttop.txt".to_string()]);
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_lost_session_still_prints_a_line_for_each_file() {
    use nix::sys::signal::Signal;
    let env = TestEnv::new("a_lost_session_still_prints_a_line");
    env.create_random("big.bin", 256 << 20, 7);
    env.create("a.txt", b"a\n");
    env.create("b.txt", b"b\n");
    let out = env.out().to_str().unwrap().to_owned();
    // The server dies mid-transfer: exit 4; SIGINT on the client: exit 130.
    for (victim_is_server, code, rest) in [(true, 4, "session lost"), (false, 130, "interrupted")] {
        let mut server = env.ready_server(&["--persistent"]);
        let mut client = env.client(&["-o", &out, "big.bin", "a.txt", "b.txt"]);
        env.wait_receiving(&mut client, "big.bin");
        if victim_is_server {
            server.kill();
        } else {
            client.signal(Signal::SIGINT);
        }
        let done = client.finish(TIMEOUT);
        done.assert_code(code);
        let lines: Vec<&str> = done.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "one line per file\n{done}");
        done.check(lines[0].starts_with("big.bin: failed: "), "the file in progress failed")
            .check(lines[0].ends_with("; nothing kept"), "says nothing is kept")
            .check(lines[0].contains(": failed: cut off after "), "says how far it got")
            .check(lines[1] == format!("a.txt: not fetched: {rest}"), "the next file was not fetched")
            .check(lines[2] == format!("b.txt: not fetched: {rest}"), "nor the last")
            .check(done.stderr.contains("3 files: 0 delivered, 1 failed, 2 not fetched"), "the summary");
        assert!(env.out_entries().is_empty(), "nothing kept: {:?}", env.out_entries());
        if victim_is_server {
            drop(server);
            env.names.remove_all();
        } else {
            env.stop_server(&mut server);
        }
    }
    env.assert_no_leftovers();
}

#[test]
fn input_messages_are_whole_prefixed_and_name_standard_input() {
    let env = TestEnv::new("input_messages_are_whole");
    let bad = env.tmp().join("bad");
    fs::write(&bad, b"nonutf\xff.txt\n").unwrap();
    let empty = env.tmp().join("empty");
    fs::write(&empty, b"\n").unwrap();
    let missing = env.tmp().join("nolist");
    for (args, stdin, want) in [
        (
            vec!["-i", "-"],
            &bad,
            "shm_client: error: standard input, line 1: the name is not UTF-8; file names must be UTF-8",
        ),
        (vec!["-i", "-"], &empty, "shm_client: error: standard input names no file to fetch"),
        (vec!["-i", missing.to_str().unwrap()], &empty, "shm_client: error: cannot read the names in "),
    ] {
        let done = run_with_stdin(env.client_cmd(&args), stdin);
        done.assert_code(2)
            .check(done.stderr.starts_with(want), "the whole message, prefixed with the program")
            .check(!done.stderr.contains("Usage:"), "no usage block for a bad list")
            .check(done.stderr.lines().count() == 1, "one line");
    }
    env.assert_no_leftovers();
}

#[test]
fn names_that_are_not_utf8_are_listed_quoted_but_must_be_utf8_on_the_command_line() {
    use std::os::unix::ffi::OsStrExt;
    let env = TestEnv::new("names_that_are_not_utf8");
    env.create("ok.txt", b"ok\n");
    let raw = std::ffi::OsStr::from_bytes(b"bad\xff.txt");
    fs::write(env.root().join(raw), b"bad\n").unwrap();
    fs::create_dir(env.root().join(std::ffi::OsStr::from_bytes(b"dir\xfe"))).unwrap();
    fs::write(env.root().join(std::ffi::OsStr::from_bytes(b"dir\xfe/inside.txt")), b"x\n").unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["--list"]);
    // A Unix name is bytes: listed, quoted as ls quotes it (octal escapes).
    done.assert_code(0).assert_stdout_lines(&[
        "4\t'bad'$'\\377''.txt'".to_string(),
        "2\t'dir'$'\\376''/inside.txt'".to_string(),
        "3\tok.txt".to_string(),
    ]);

    // A name given on the command line that is not UTF-8.
    let mut cmd = env.client_cmd(&["-o", env.out().to_str().unwrap()]);
    cmd.arg(raw);
    let done = Proc::spawn(cmd, None).finish(TIMEOUT);
    done.assert_code(2)
        .check(done.stderr.contains("file names (and queue names) must be UTF-8"), "says names must be UTF-8")
        .check(done.stderr.contains(r"bad\xff.txt"), "shows the name")
        .check(!done.stderr.contains("Usage:"), "no usage block");

    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(!log.contains("left out"), "the listing left nothing out\n{log}");
    env.assert_no_leftovers();
}

#[test]
fn stdout_stops_at_once_when_its_reader_goes_away() {
    let env = TestEnv::new("stdout_stops_at_once_when_its_reader_goes_away");
    let size: u64 = 256 << 20;
    env.create_random("big.bin", size, 13);
    let mut server = env.ready_server(&["--persistent"]);
    let mut cmd = crate::util::command("bash", None);
    cmd.arg("-c").arg(r#""$0" "$@" | head -c 10 >/dev/null; exit "${PIPESTATUS[0]}""#).arg(CLIENT).args([
        "--queue",
        env.names.queue(),
        "--stdout",
        "big.bin",
    ]);
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    done.assert_code(1)
        .check(done.stderr.contains("big.bin: writing to standard output: Broken pipe"), "says what happened")
        .check(!done.stderr.contains("interrupted"), "not taken for an interrupt");
    let noticed = crate::util::wait_until(TIMEOUT, || server.stderr().contains("big.bin: stopped after "));
    let log = server.stderr();
    assert!(noticed && log.contains("the client left"), "the server saw the client leave\n{log}");
    env.stop_server(&mut server);
    assert!(!log.contains(&format!("sent {size} bytes")), "the whole file was sent\n{log}");
    env.assert_no_leftovers();
}

#[test]
fn messages_read_well_and_say_what_to_do() {
    let env = TestEnv::new("messages_read_well_and_say_what_to_do");
    env.create("one.txt", b"1");
    env.create("sub/x.txt", b"x\n");
    env.create("odd\tname", b"odd\n");
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();
    // One byte is one byte; a directory asked for without -r says how.
    let done = env.run_client(&["-o", &out, "one.txt", "sub"]);
    done.assert_code(1).assert_stdout_lines(&[
        "one.txt: received 1 byte".to_string(),
        "sub: refused by server: sub is a directory; use -r to fetch a directory".to_string(),
    ]);
    // An output directory that cannot be made: what to do.
    let below_a_file = env.in_root("one.txt").join("sub");
    let done = env.run_client(&["-o", below_a_file.to_str().unwrap(), "one.txt"]);
    done.assert_code(1).check(
        done.stderr.contains(&format!("output directory {}: ", below_a_file.display()))
            && done.stderr.contains("; name another with -o"),
        "says what to do",
    );
    env.fetch(&["odd\tname"]).assert_code(0);
    env.stop_server(&mut server);
    // The server quotes names as the client does, and counts bytes right.
    let log = server.stderr();
    assert!(log.contains(": one.txt: sent 1 byte in "), "{log}");
    assert!(log.contains(": 'odd'$'\\t''name': sent 4 bytes"), "{log}");
    // A default-mode server that sent one byte says so in its session and summary lines.
    let mut server = env.ready_server(&["-v"]);
    env.fetch(&["one.txt"]).assert_code(0);
    let done = server.finish(TIMEOUT);
    done.assert_code(0)
        .check(done.stderr.contains(" closed: 1 byte in "), "the session's total")
        .check(done.stderr.contains("served 1 file(s), 1 byte, in 1 session(s)"), "the summary");

    // --cleanup with an option it does not take: the usage shows both forms.
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.args(["--cleanup", "--persistent"]);
    let done = Proc::spawn(cmd, None).finish(TIMEOUT);
    done.assert_code(2)
        .check(done.stderr.contains("Usage: shm_server [OPTIONS]"), "the general usage")
        .check(done.stderr.contains("shm_server --cleanup [--queue NAME]"), "and the --cleanup form");
    env.assert_no_leftovers();
}

#[test]
fn a_closed_stderr_changes_no_exit_status() {
    let env = TestEnv::new("a_closed_stderr_changes_no_exit_status");
    env.create("one.txt", b"1");
    let mut server = env.ready_server(&["--persistent"]);
    // Standard output and error are a pipe nobody reads any more: every
    // write fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = env.out().to_str().unwrap().to_owned();
    let mut cmd = env.client_cmd(&["-o", &out, "one.txt", "missing.txt"]);
    cmd.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = cmd.spawn().unwrap();
    let status = wait_child(&mut child, TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit 1 (a file not found), no panic");
    assert_eq!(fs::read(env.in_out("one.txt")).unwrap(), b"1");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A `SHMXFER_QUEUE` that is not UTF-8 is named by both programs, its bytes
/// escaped, as an argument that is not UTF-8 is. Before, the client said
/// `: not UTF-8; …`, naming nothing, and the server printed clap's
/// `invalid UTF-8 was detected in one or more arguments` with its usage.
#[test]
fn a_queue_variable_that_is_not_utf8_is_named_by_both_programs() {
    for (bin, arg) in [(CLIENT, "--list"), (SERVER, "--cleanup")] {
        let mut cmd = command(bin, None);
        cmd.env(
            "SHMXFER_QUEUE",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"/t_not_utf8\xff"),
        )
        .arg(arg);
        let done = Proc::spawn(cmd, None).finish(TIMEOUT);
        done.assert_code(2)
            .check(
                done.stderr.contains(
                    r"SHMXFER_QUEUE=/t_not_utf8\xff: not UTF-8; file names (and queue names) must be UTF-8",
                ),
                "names the variable and its bytes",
            )
            .check(!done.stderr.contains("Usage:"), "no usage block");
    }
}

/// Every byte a hostile server's reason carries that would move a cursor,
/// clear a screen or turn text around (ESC, CR, LF, C1 CSI, U+202E) reaches
/// neither stdout nor stderr raw, in text or `--json` (one valid JSON
/// record a line); a reason that is not UTF-8 is a protocol error.
#[test]
fn a_hostile_servers_reasons_reach_no_terminal_raw() {
    use crate::faults::{control, frame, hostile_server};
    use shmxfer::testing::protocol::{FrameKind, ReasonCode, Reply};
    let nasty = "x\x1b[2J\ry\nz\u{9b}31m\u{202e}txt.exe";
    // At the limit of a reason's length, every byte of it odd.
    let long = "\x1b".repeat(512);
    let raw = |s: &str| {
        !s.contains('\x1b') && !s.contains('\r') && !s.contains('\u{9b}') && !s.contains('\u{202e}')
    };
    let cases: Vec<(&str, Reply)> = vec![
        ("refused", Reply::Refused { code: ReasonCode::Other, reason: nasty.into() }),
        ("error", Reply::Error { code: ReasonCode::Other, reason: nasty.into() }),
        ("long", Reply::Refused { code: ReasonCode::Other, reason: long.clone() }),
    ];
    for (i, (what, reply)) in cases.into_iter().enumerate() {
        for json in [false, true] {
            let env = TestEnv::new(&format!("hostile_reason_{i}_{json}"));
            let fake = hostile_server(&env, vec![control(reply.clone(), 1)]);
            let out = env.out().to_str().unwrap().to_owned();
            let mut args = vec!["-o", &out, "victim.bin"];
            if json {
                args.insert(0, "--json");
            }
            let done = env.run_client(&args);
            done.assert_code(1)
                .check(raw(&done.stdout) && raw(&done.stderr), &format!("{what} json={json}: nothing raw"))
                .check(done.stdout.contains("victim.bin"), what);
            if json {
                for line in done.stdout.lines() {
                    let v: Result<serde_json::Value, _> = serde_json::from_str(line);
                    assert!(v.is_ok(), "{what}: not one JSON record: {line:?}");
                }
            } else {
                done.check(done.stdout.lines().count() == 1, &format!("{what}: one line"));
            }
            fake.join().unwrap();
            env.assert_no_leftovers();
        }
    }
    // Not UTF-8: a protocol error, said without the bytes.
    let env = TestEnv::new("hostile_reason_not_utf8");
    let payload = [&[ReasonCode::Other as u8][..], b"a\xff\x1b[2Jb"].concat();
    let fake = hostile_server(&env, vec![frame(FrameKind::Refused, 1, payload)]);
    let done = env.fetch(&["victim.bin"]);
    done.assert_code(4).check(raw(&done.stdout) && raw(&done.stderr), "not UTF-8: nothing raw");
    fake.join().unwrap();
    env.assert_no_leftovers();
}

/// A listing skip of a code this client does not know (a newer or a
/// hostile server) ends the session as a protocol error, no panic.
#[test]
fn an_unknown_skip_code_is_a_protocol_error() {
    use crate::faults::{frame, hostile_server};
    use shmxfer::testing::protocol::FrameKind;
    for args in [&["--list"][..], &["-r", "-o", "OUT", "sub"][..]] {
        let env = TestEnv::new(&format!("unknown_skip_code_{}", args.len()));
        let payload = [&[200u8, 0, 0, 0][..], &7u32.to_le_bytes(), b"sub/x"].concat();
        let fake = hostile_server(&env, vec![frame(FrameKind::ListSkipped, 1, payload)]);
        let out = env.out().to_str().unwrap().to_owned();
        let args: Vec<&str> = args.iter().map(|a| if *a == "OUT" { out.as_str() } else { a }).collect();
        let done = env.run_client(&args);
        done.assert_code(4)
            .check(done.stderr.contains("protocol"), "a protocol error")
            .check(!done.stderr.contains("panicked"), "no panic");
        fake.join().unwrap();
        env.assert_no_leftovers();
    }
}

/// A reason decoded with its odd characters escaped is still a reason: at
/// most `MAX_REASON_LEN` bytes, and encoded again (a relay passes it on)
/// it decodes to itself, as the fuzz target `decode` asserts of every
/// reply.
#[test]
fn an_escaped_reason_stays_within_its_limit_and_decodes_again_to_itself() {
    use shmxfer::testing::protocol::{FrameKind, ReasonCode, Reply};
    for body in ["\x1b".repeat(512), format!("{}\x1b", "a".repeat(509)), "é\r".repeat(170)] {
        let payload = [&[ReasonCode::Other as u8][..], body.as_bytes()].concat();
        for kind in [FrameKind::Refused, FrameKind::Error] {
            let reply = Reply::decode(kind, &payload).expect("decodes");
            let (Reply::Refused { reason, .. } | Reply::Error { reason, .. }) = &reply else { panic!() };
            assert!(reason.len() <= 512, "{} bytes", reason.len());
            assert!(!reason.contains('\x1b') && !reason.contains('\r'));
            let mut again = Vec::new();
            reply.encode_payload(&mut again);
            assert_eq!(Reply::decode(kind, &again).expect("re-decodes"), reply, "{body:?}");
        }
    }
}
