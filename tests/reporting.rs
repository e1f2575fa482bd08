//! What the client reports: JSON lines of a fetch, result lines that name
//! the requested path, long and aligned listings, the progress bars, and
//! how both programs behave when their output goes away.

use std::fs;
use std::os::unix::ffi::OsStrExt;

use serde_json::Value;

use crate::util::{TestEnv, CLIENT};

/// Every line of `stdout`, each parsed as JSON.
#[track_caller]
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{stdout}")))
        .collect()
}

#[test]
fn fetch_json_gives_an_object_per_file_then_a_summary() {
    let env = TestEnv::new("fetch_json_gives_an_object_per_file");
    env.create("hello.txt", b"hello\n");
    env.create("subdir/nested.txt", b"nested\n");
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();

    let done = env.run_client(&[
        "-o",
        &out,
        "--json",
        "hello.txt",
        "subdir/nested.txt",
        "missing",
        "../x",
        "subdir",
    ]);
    done.assert_code(1);
    let lines = json_lines(&done.stdout);
    let want = [
        r#"{"request":"hello.txt","path":"hello.txt","result":"delivered","bytes":6}"#,
        r#"{"request":"subdir/nested.txt","path":"nested.txt","result":"delivered","bytes":7}"#,
        r#"{"request":"missing","path":"missing","result":"not_found","bytes":0}"#,
        r#"{"request":"../x","path":"x","result":"refused","bytes":0,"reason":"outside_root","message":"../x leads outside the served directory"}"#,
        r#"{"request":"subdir","path":"subdir","result":"refused","bytes":0,"reason":"is_directory","message":"subdir is a directory"}"#,
    ];
    assert_eq!(lines.len(), want.len() + 1, "a line per file and the summary\n{done}");
    for (got, want) in done.stdout.lines().zip(want) {
        assert_eq!(got, want, "\n{done}");
    }
    let summary = &lines[want.len()]["summary"];
    for (key, n) in
        [("files", 5), ("delivered", 2), ("not_found", 1), ("refused", 2), ("failed", 0), ("bytes", 13)]
    {
        assert_eq!(summary[key], n, "{key}\n{done}");
    }
    assert!(summary["seconds"].is_f64(), "seconds as a number\n{done}");
    assert!(!done.stderr.contains("5 files"), "no text summary beside the JSON\n{done}");

    // A tree with a name that is not UTF-8: its bytes beside its text.
    fs::write(env.root().join(std::ffi::OsStr::from_bytes(b"subdir/bad\xff")), b"b").unwrap();
    let tree = env.tmp().join("tree");
    fs::create_dir(&tree).unwrap();
    let done = env.run_client(&["-q", "-r", "--json", "-o", tree.to_str().unwrap(), "subdir"]);
    done.assert_code(0);
    let lines = json_lines(&done.stdout);
    assert_eq!(lines.len(), 3, "two files and the summary\n{done}");
    assert_eq!(lines[0]["request"], "subdir/bad\u{fffd}");
    assert_eq!(lines[0]["request_bytes"], serde_json::json!(b"subdir/bad\xff".to_vec()));
    assert_eq!(lines[0]["path_bytes"], serde_json::json!(b"subdir/bad\xff".to_vec()));
    assert_eq!(lines[1]["request"], "subdir/nested.txt");
    assert!(lines[1].get("request_bytes").is_none(), "no bytes for a UTF-8 name\n{done}");
    assert_eq!(lines[2]["summary"]["delivered"], 2);

    // Not with --stdout, whose stdout is the file.
    let done = env.run_client(&["--json", "--stdout", "hello.txt"]);
    done.assert_code(2);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn result_lines_name_the_requested_path_and_where_it_went() {
    let env = TestEnv::new("result_lines_name_the_requested_path");
    env.create("subdir/nested.txt", b"nested\n");
    env.create("top.txt", b"top\n");
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();
    env.run_client(&["-o", &out, "subdir/nested.txt", "./top.txt", "subdir/none"])
        .assert_code(1)
        .assert_stdout_lines(&[
            "subdir/nested.txt: received 7 bytes → nested.txt".to_string(),
            "top.txt: received 4 bytes".to_string(),
            "subdir/none: not found on server".to_string(),
        ]);
    // With -R the output path is the requested one: no arrow.
    env.run_client(&["-R", "-o", &out, "subdir/nested.txt"])
        .assert_code(0)
        .assert_stdout_lines(&["subdir/nested.txt: received 7 bytes".to_string()]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// `ls -l`'s mode column of a regular file.
fn mode_column(mode: u32) -> String {
    let rwx = |m: u32| {
        [(4, 'r'), (2, 'w'), (1, 'x')]
            .iter()
            .map(|&(b, c)| if m & b != 0 { c } else { '-' })
            .collect::<String>()
    };
    format!("-{}{}{}", rwx(mode >> 6 & 7), rwx(mode >> 3 & 7), rwx(mode & 7))
}

#[test]
fn long_listing_shows_mode_size_time_and_path_as_ls_does() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new("long_listing_shows_mode_size_time");
    let small = env.create("a.txt", b"a\n");
    let big = env.create_random("sub/big.bin", 123_456, 1);
    fs::set_permissions(&big, fs::Permissions::from_mode(0o750)).unwrap();
    // Fixed times, so that the lines are known: 2026-12-01 11:45:35 UTC and 2000-02-29 00:00 UTC.
    let set_time = |path: &std::path::Path, secs: u64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
    };
    set_time(&small, 1_796_125_535);
    set_time(&big, 951_782_400);
    let small_mode = fs::metadata(&small).unwrap().permissions().mode() & 0o7777;
    let mut server = env.ready_server(&["--persistent"]);

    env.run_client(&["--list", "-l"]).assert_code(0).assert_stdout_lines(&[
        format!("{}       2  2026-12-01 11:45  a.txt", mode_column(small_mode)),
        "-rwxr-x---  123456  2000-02-29 00:00  sub/big.bin".to_string(),
    ]);
    env.run_client(&["--list", "-l", "--human"]).assert_code(0).assert_stdout_lines(&[
        format!("{}        2 B  2026-12-01 11:45  a.txt", mode_column(small_mode)),
        "-rwxr-x---  120.6 KiB  2000-02-29 00:00  sub/big.bin".to_string(),
    ]);
    // --human alone: the sizes right-aligned in one column, a tab, the path.
    env.run_client(&["--list", "--human"])
        .assert_code(0)
        .assert_stdout_lines(&["      2 B\ta.txt".to_string(), "120.6 KiB\tsub/big.bin".to_string()]);
    // Plain --list and --list --json are as they were.
    env.run_client(&["--list"])
        .assert_code(0)
        .assert_stdout_lines(&["2\ta.txt".to_string(), "123456\tsub/big.bin".to_string()]);
    let done = env.run_client(&["--list", "sub", "-l", "--json"]);
    done.assert_code(0).assert_stdout_lines(&[
        r#"{"files":[{"path":"sub/big.bin","size":123456,"mode":"0750","mtime":"2000-02-29T00:00:00Z"}]}"#
            .to_string(),
    ]);
    // -l without --list is a usage error.
    env.run_client(&["-l", "a.txt"]).assert_code(2);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A writer that, once `after` bytes arrived, calls `at` once (the
/// session stays open and idle meanwhile).
struct PauseAt<F: FnMut()> {
    seen: u64,
    after: u64,
    at: Option<F>,
}

impl<F: FnMut()> std::io::Write for PauseAt<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.seen += buf.len() as u64;
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
fn status_shows_a_stopped_client_as_stalled_not_with_a_stale_rate() {
    let env = TestEnv::new("status_shows_a_stopped_client_as_stalled");
    env.create_random("big.bin", 8 << 20, 5);
    let mut server = env.ready_server(&["--persistent"]);
    let config = shmxfer::ClientConfig::new(env.names.queue());
    let mut holder = shmxfer::Client::connect(&config).expect("a session opens");
    let mut seen = Vec::new();
    let outcome = {
        let mut writer = PauseAt {
            seen: 0,
            after: 1 << 20,
            at: Some(|| {
                std::thread::sleep(std::time::Duration::from_millis(2500));
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
    let line =
        text.stdout.lines().find(|l| l.starts_with(&format!("client {me}: big.bin: "))).unwrap_or_default();
    text.check(line.contains(" bytes, stalled, last frame "), "stalled, no rate");
    text.check(!line.contains("/s"), "no rate");
    let json = json_lines(&seen[1].stdout);
    let session = &json[0]["sessions"][0];
    assert_eq!(session["stalled"], true, "{}", seen[1]);
    // The rate is the file's bytes over the file's time, the pause included
    // (see `usability::status_shows_a_blocked_session_s_rate_over_its_time`).
    let rate = session["rate"].as_u64().unwrap();
    let sent = session["sent"].as_u64().unwrap();
    let file_ms = session["file_ms"].as_u64().unwrap();
    assert_eq!(rate, sent * 1000 / file_ms, "{}", seen[1]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn binary_data_is_not_written_to_a_terminal() {
    let env = TestEnv::new("binary_data_is_not_written_to_a_terminal");
    env.create("bin.dat", b"ELF\0\x01\x02");
    env.create("text.txt", b"plain text\n");
    let mut server = env.ready_server(&["--persistent"]);
    // Under a pseudo-terminal, as a user at a shell sees it.
    let in_terminal = |how: &str, file: &str| {
        let line = format!("{CLIENT} --queue {} {how} {file}", env.names.queue());
        let mut cmd = crate::util::command("script", None);
        cmd.args(["-qec", &line, "/dev/null"]);
        crate::util::Proc::spawn(cmd, Some(&env.names)).finish(crate::util::TIMEOUT)
    };
    let done = in_terminal("--stdout", "bin.dat");
    done.assert_code(1)
        .check(
            done.stdout.contains(
                "bin.dat: binary data not written to the terminal; redirect it to a file or a pipe",
            ),
            "says why and what to do",
        )
        .check(!done.stdout.contains("ELF"), "nothing of the file");
    let done = in_terminal("--stdout", "text.txt");
    done.assert_code(0).check(done.stdout.contains("plain text"), "text is written");
    // `-O -` asks for the bytes on stdout in so many words, as `curl -o -`.
    let done = in_terminal("-O -", "bin.dat");
    done.assert_code(0).check(done.stdout.contains("ELF"), "-O - writes binary data to the terminal too");
    // Into a pipe the bytes go as they are.
    let piped = env.client_cmd(&["--stdout", "bin.dat"]).output().unwrap();
    assert!(piped.status.success());
    assert_eq!(piped.stdout, b"ELF\0\x01\x02");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A pipe whose reading end is closed: writing to it fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

#[test]
fn a_closed_stdout_ends_the_programs_quietly() {
    let env = TestEnv::new("a_closed_stdout_ends_the_programs_quietly");
    for i in 0..2000 {
        env.create(&format!("dir/file-with-a-long-name-{i:05}.txt"), b"x");
    }
    let mut server = env.ready_server(&["--persistent"]);
    let run = |mut cmd: std::process::Command| {
        cmd.stdout(closed_pipe());
        crate::util::Proc::spawn(cmd, Some(&env.names)).finish(crate::util::TIMEOUT)
    };
    for args in [&["--list"][..], &["--list", "-l"], &["--man"], &["--completions", "bash"], &["--help"]] {
        let done = run(env.client_cmd(args));
        done.assert_code(0).check(done.stderr.is_empty(), "nothing said about the closed pipe");
    }
    let mut man = crate::util::command(crate::util::SERVER, Some(&env.names));
    man.arg("--man");
    let done = run(man);
    done.assert_code(0).check(done.stderr.is_empty(), "nothing said about the closed pipe");
    // A fetch still fetches, and its exit status says how it went.
    let out = env.out().to_str().unwrap().to_owned();
    let done = run(env.client_cmd(&["-o", &out, "dir/file-with-a-long-name-00001.txt", "none"]));
    done.assert_code(1).check(!done.stderr.contains("Broken pipe"), "quiet");
    assert_eq!(env.out_entries(), ["file-with-a-long-name-00001.txt"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn man_pages_name_the_programs_without_markdown() {
    for bin in [CLIENT, crate::util::SERVER] {
        let out = std::process::Command::new(bin).arg("--man").output().unwrap();
        let page = String::from_utf8(out.stdout).unwrap();
        let name = page.split(".SH NAME\n").nth(1).and_then(|s| s.lines().next()).unwrap_or_default();
        assert!(!name.is_empty() && !name.contains('`'), "{bin}: NAME {name:?}");
    }
    let help = std::process::Command::new(CLIENT).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--status [--human] [--json]"), "{help}");
    assert!(help.contains("--list [PREFIX] [-l] [--human] [--json]"), "{help}");
}

#[test]
fn tiny_files_log_no_meaningless_rate() {
    let env = TestEnv::new("tiny_files_log_no_meaningless_rate");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    env.fetch(&["hello.txt"]).assert_code(0);
    env.stop_server(&mut server);
    let log = server.stderr();
    let sent = log.lines().find(|l| l.contains("hello.txt: sent 6 bytes in ")).unwrap_or_default();
    assert!(!sent.contains("/s"), "no rate for 6 bytes: {sent:?}\n{log}");
    assert!(log.contains("stopped: served 1 file(s), 6 bytes, in 1 session(s) over "), "{log}");
    assert!(!log.contains("cut off"), "{log}");
}

#[test]
fn the_server_counts_a_cut_off_file_apart_from_the_bytes_it_served() {
    let env = TestEnv::new("the_server_counts_a_cut_off_file_apart");
    env.create("hello.txt", b"hello\n");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 7);
    client.kill();
    let noticed =
        crate::util::wait_until(crate::util::TIMEOUT, || server.stderr().contains("big.bin: stopped after "));
    assert!(noticed, "{}", server.stderr());
    env.fetch(&["hello.txt"]).assert_code(0);
    env.stop_server(&mut server);
    let log = server.stderr();
    let summary = log.lines().find(|l| l.contains("stopped: served ")).unwrap_or_default();
    assert!(summary.contains("served 1 file(s), 6 bytes, in 2 session(s) over "), "{log}");
    assert!(summary.contains("; 1 file(s) cut off after ") && summary.ends_with(" bytes in all"), "{log}");
    env.assert_no_leftovers();
}
