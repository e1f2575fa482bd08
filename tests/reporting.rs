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

#[allow(dead_code)]
const _CLIENT: &str = CLIENT;
