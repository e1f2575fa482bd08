//! The one output rule, for every destination (`-o DIR`, `-O PATH`, kept
//! partial files, the server's `--accept` directory): a name is only ever
//! given to a regular file this program created, replacing at most a
//! regular file; nothing is kept of a transfer that did not complete, not
//! even the directories made for it; a kept partial belongs to one
//! transfer.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::util::{
    dir_entries, is_root, received_line, wait_until, Signal, TestEnv, BIG, BIG_TIMEOUT, TIMEOUT,
};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

#[test]
fn dash_capital_o_onto_a_fifo_writes_into_it_and_never_replaces_it() {
    let env = TestEnv::new("dash_o_onto_a_fifo");
    env.create("hello.txt", b"hello through a fifo\n");
    let fifo = env.tmp().join("fifo");
    mkfifo(&fifo);
    let mut server = env.ready_server(&["--persistent"]);
    // Nobody reads it: an error at once, not a wait, and the FIFO stays.
    let unread = env.run_client(&["-O", s(&fifo), "hello.txt"]);
    unread.assert_code(1).check(unread.stderr.contains("nobody reads"), "says the FIFO has no reader");
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
    // With a reader, the bytes go through it.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    // The reader opens the FIFO before the client writes.
    let client = loop {
        let done = env.run_client(&["-O", s(&fifo), "hello.txt"]);
        if !done.stderr.contains("nobody reads") {
            break done;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    client.assert_code(0);
    assert_eq!(reader.join().unwrap(), b"hello through a fifo\n");
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn dash_capital_o_onto_a_device_writes_into_it_and_never_replaces_it() {
    if !is_root() {
        eprintln!("skipped: mknod needs root");
        return;
    }
    let env = TestEnv::new("dash_o_onto_a_device");
    env.create("hello.txt", b"hello\n");
    let null = env.tmp().join("null");
    let made = Command::new("mknod").arg(&null).args(["c", "1", "3"]).status().unwrap();
    assert!(made.success());
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-O", s(&null), "hello.txt"]);
    done.assert_code(0);
    assert!(fs::metadata(&null).unwrap().file_type().is_char_device(), "still the device node");
    assert!(
        dir_entries(env.tmp()).iter().all(|e| !e.starts_with(".shmxfer")),
        "{:?}",
        dir_entries(env.tmp())
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_fifo_at_a_files_name_in_the_output_directory_is_not_replaced() {
    let env = TestEnv::new("fifo_in_the_output_dir");
    env.create("hello.txt", b"hello\n");
    mkfifo(&env.in_out("hello.txt"));
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.fetch(&["hello.txt"]);
    done.assert_code(1).check(done.stdout.contains("a FIFO; not replaced"), "says what is in the way");
    assert!(fs::metadata(env.in_out("hello.txt")).unwrap().file_type().is_fifo(), "still a FIFO");
    assert_eq!(env.out_entries(), ["hello.txt"], "nothing else left");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn a_continued_fetch_killed_with_sigkill_keeps_its_partial_and_the_next_resumes_it() {
    let env = TestEnv::new("continue_survives_sigkill");
    let out = s(env.out()).to_owned();
    env.create_random("big.bin", BIG, 31);
    let mut server = env.ready_server(&["--persistent", "-vv"]);
    let mut cut = env.client(&["-C", "-o", &out, "big.bin"]);
    env.wait_receiving(&mut cut, "big.bin");
    cut.kill();
    assert_eq!(
        env.out_entries(),
        [".shmxfer-partial.big.bin", ".shmxfer-partial.big.bin.source"],
        "named from the first byte, the partial outlives its client"
    );
    let kept = fs::metadata(env.in_out(".shmxfer-partial.big.bin")).unwrap().len();
    assert!(kept < BIG, "a prefix: {kept} of {BIG}");
    let resumed = env.client(&["-C", "--json", "-o", &out, "big.bin"]).finish(BIG_TIMEOUT);
    let said = format!("\"resumed_at\":{kept}");
    resumed
        .assert_code(0)
        .check(kept == 0 || resumed.stdout.contains(&said), "the JSON says where it resumed");
    env.assert_delivered("big.bin");
    assert_eq!(env.out_entries(), ["big.bin"], "the partial and its record are gone");
    env.stop_server(&mut server);
    if kept > 0 {
        let log = server.stderr();
        assert!(log.contains(&format!("from byte {kept}")), "only the rest was asked for:\n{log}");
    }
    env.assert_no_leftovers();
}

#[test]
fn a_delivered_file_takes_the_partial_an_earlier_cut_run_kept_and_a_gone_source_takes_its_partial() {
    let env = TestEnv::new("delivered_file_takes_stale_partial");
    let out = s(env.out()).to_owned();
    env.create_random("big.bin", BIG, 32);
    env.create("gone.txt", b"soon gone\n");
    let mut dead = env.ready_server(&["--persistent"]);
    let mut cut = env.client(&["-C", "-o", &out, "big.bin"]);
    env.wait_receiving(&mut cut, "big.bin");
    dead.kill();
    cut.finish(TIMEOUT).assert_code(4);
    assert_eq!(env.out_entries().len(), 2, "a partial and its record: {:?}", env.out_entries());
    let mut server = env.ready_server(&["--persistent"]);
    // A plain run delivers the file: the partial of that name goes with it.
    env.run_client(&["-o", &out, "big.bin"]).assert_code(0);
    assert_eq!(env.out_entries(), ["big.bin"], "no partial left for ever");
    // A partial whose source is gone is removed, saying so.
    fs::write(env.in_out(".shmxfer-partial.gone.txt"), b"soon").unwrap();
    fs::write(env.in_out(".shmxfer-partial.gone.txt.source"), "10 1\n").unwrap();
    fs::set_permissions(env.in_out(".shmxfer-partial.gone.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(env.in_root("gone.txt")).unwrap();
    let gone = env.run_client(&["-C", "-o", &out, "gone.txt"]);
    gone.assert_code(1).check(gone.stderr.contains("removed the partial file"), "says the partial went");
    assert_eq!(env.out_entries(), ["big.bin"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn an_upload_cut_off_leaves_no_directory_it_would_have_made() {
    let env = TestEnv::new("upload_cut_leaves_no_dirs");
    let src = env.tmp().join("src");
    fs::create_dir(&src).unwrap();
    let big = src.join("big.bin");
    crate::util::write_random_file(&big, BIG, 33);
    let mut server = env.ready_server(&["--persistent", "--accept", s(env.out())]);
    let mut put = env.client(&["--put", s(&big), "--to", "a/b"]);
    let receiving = wait_until(TIMEOUT, || {
        server.open_files_under(env.out()).iter().any(|(_, len)| *len > 0) || !put.is_running()
    });
    assert!(receiving && put.is_running(), "the upload never got under way\n{}", put.snapshot());
    assert!(!env.in_out("a").exists(), "no directory is made before the file is named");
    put.signal(Signal::SIGINT);
    put.finish(TIMEOUT).assert_code(130);
    assert!(
        wait_until(TIMEOUT, || server.open_files_under(env.out()).is_empty()),
        "the server let go of the file"
    );
    assert!(env.out_entries().is_empty(), "nothing kept: {:?}", env.out_entries());
    // A whole upload makes them.
    let small = src.join("small.txt");
    fs::write(&small, b"small\n").unwrap();
    env.run_client(&["--put", s(&small), "--to", "a/b"]).assert_code(0);
    assert_eq!(fs::read(env.in_out("a/b/small.txt")).unwrap(), b"small\n");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn received_line_names_plain_deliveries_as_before() {
    // The line of a file that was not resumed is unchanged.
    let env = TestEnv::new("received_line_unchanged");
    env.create("a.txt", b"abc\n");
    let mut server = env.ready_server(&["--persistent"]);
    env.fetch(&["a.txt"]).assert_code(0).assert_stdout_lines(&[received_line("a.txt", 4)]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}
