//! The one output rule, for every destination (`-o DIR`, `-O PATH`, kept
//! partial files, the server's `--accept` directory): a name is only ever
//! given to a regular file this program created, replacing at most a
//! regular file; nothing is kept of a transfer that did not complete, not
//! even the directories made for it; a kept partial belongs to one
//! transfer. Among them, the attacks a hostile local user made on it:
//! `-O` onto what stands for standard output, onto a FIFO another process
//! swaps for a symlink, `-C` in a shared directory where another user laid
//! a partial's names, `--put FILE -O NAME/`, `-C` with a long name; `-O`
//! with a trailing slash, onto a symlink, a FIFO or a directory; a FIFO at
//! the target name of a fetch or an upload (one test, both directions); the
//! out dir swapped for a symlink or removed while the client runs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::direction::Direction;
use crate::util::{
    as_nobody, assert_no_leftovers, assert_same_file, command, dir_entries, is_root, new_dir,
    other_user_or_skip, received_line, stop, wait_child, wait_for_queue, wait_until, Proc, Signal, TestEnv,
    BIG, BIG_TIMEOUT, CLIENT, SERVER, TIMEOUT,
};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The out dir as an argument.
fn out(env: &TestEnv) -> String {
    env.out().to_str().unwrap().to_owned()
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
    // --no-clobber keeps what is there, as `cp -n` does: nothing written.
    let kept = env.run_client(&["--no-clobber", "-O", s(&null), "hello.txt"]);
    kept.assert_code(0).check(kept.stdout.contains("hello.txt: skipped: exists"), "says it was kept");
    assert!(fs::metadata(&null).unwrap().file_type().is_char_device(), "still the device node");
    assert!(
        dir_entries(env.tmp()).iter().all(|e| !e.starts_with(".shmxfer")),
        "{:?}",
        dir_entries(env.tmp())
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A FIFO at a file's name in the out dir, or at an upload's target name
/// in the `--accept` directory: never opened (no hang) nor replaced. With
/// `--no-clobber` the file is skipped, exit 0; without, the fetched file
/// fails (`a FIFO; not replaced`) and the upload is refused, exit 1, and
/// nothing else is left.
#[test]
fn a_fifo_at_a_files_name_in_the_output_directory_is_not_replaced() {
    for direction in Direction::BOTH {
        let env = TestEnv::new(&format!("fifo_in_the_output_dir_{}", direction.name()));
        fs::write(direction.source(&env, "hello.txt"), b"hello\n").unwrap();
        mkfifo(&env.in_out("hello.txt"));
        let mut server = direction.server(&env, &[]);
        let kept = direction.client(&env, &["--no-clobber"], &["hello.txt"]).finish(TIMEOUT);
        kept.assert_code(0).check(kept.stdout.contains("skipped: exists"), "kept");
        let done = direction.client(&env, &[], &["hello.txt"]).finish(TIMEOUT);
        let why = match direction {
            Direction::Fetch => "a FIFO; not replaced",
            Direction::Upload => "refused by server",
        };
        done.assert_code(1).check(done.stdout.contains(why), "says what is in the way");
        assert!(fs::symlink_metadata(env.in_out("hello.txt")).unwrap().file_type().is_fifo(), "still a FIFO");
        assert_eq!(env.out_entries(), ["hello.txt"], "nothing else left");
        env.stop_server(&mut server);
        env.assert_no_leftovers();
    }
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

/// `-O /dev/stdout` with standard output redirected to a file, as
/// `shm_client -O /dev/stdout f > got` runs it. `/dev/stdout` itself is
/// never touched here: a symlink of the test's own to `/proc/self/fd/1`
/// stands for it. `cp f /dev/stdout > got` writes into `got`; the client
/// found the link's target a regular file, took the link for a path to
/// replace and renamed its file over it (run as root with the real
/// `/dev/stdout`, it replaced the system's `/dev/stdout` link by a regular
/// file for every process), wrote nothing to standard output, exit 0.
#[test]
fn dash_capital_o_onto_a_link_to_standard_output_writes_into_it_and_keeps_the_link() {
    let env = TestEnv::new("attack_dash_o_dev_stdout");
    env.create("hello.txt", b"hello, standard output\n");
    let link = env.tmp().join("stdout");
    std::os::unix::fs::symlink("/proc/self/fd/1", &link).unwrap();
    let got = env.tmp().join("got");
    let mut server = env.ready_server(&["--persistent"]);
    let mut cmd = command(crate::util::CLIENT, Some(&env.names));
    cmd.args(["-q", "-O", s(&link), "hello.txt"])
        .current_dir(env.cwd())
        .stdout(Stdio::from(fs::File::create(&got).unwrap()))
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let status = wait_child(&mut child, TIMEOUT).expect("the client ends");
    env.stop_server(&mut server);
    let link_kept = fs::symlink_metadata(&link).unwrap().file_type().is_symlink();
    assert!(
        link_kept && fs::read(&got).unwrap() == b"hello, standard output\n",
        "exit {status}: the link {} (should stay a link); standard output got {:?}",
        if link_kept { "kept" } else { "replaced by a regular file" },
        String::from_utf8_lossy(&fs::read(&got).unwrap()),
    );
    env.assert_no_leftovers();
}

/// `-O DEST` names a FIFO when the client looks (`stat`, following), and
/// another process swaps it for a symlink to a regular file before the
/// client opens it: the client opens the path again (following, without
/// `O_NOFOLLOW`, and without checking what it opened) and writes the
/// fetched bytes over the start of that file in place. With a second user
/// in a shared directory (fs.protected_symlinks = 0, as here) the swapped
/// link points at a file of the victim's; here one user plays both parts.
/// Before the fix the race was won within a few runs; the test gives it 60.
#[test]
fn dash_capital_o_onto_a_fifo_swapped_for_a_symlink_never_writes_through_it() {
    let env = TestEnv::new("attack_dash_o_fifo_swap");
    env.create("hello.txt", b"HELLO");
    let victim = env.tmp().join("victim.txt");
    let original = b"original bytes of a file nobody asked to write\n";
    fs::write(&victim, original).unwrap();
    let shared = env.tmp().join("shared");
    fs::create_dir(&shared).unwrap();
    let dest = shared.join("report");
    let mut server = env.ready_server(&["--persistent"]);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, shared, dest, victim) = (Arc::clone(&stop), shared.clone(), dest.clone(), victim.clone());
        std::thread::spawn(move || {
            let (fifo, link) = (shared.join(".f"), shared.join(".l"));
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::remove_file(&fifo);
                let _ = nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600));
                let _ = fs::rename(&fifo, &dest);
                let _ = fs::remove_file(&link);
                let _ = std::os::unix::fs::symlink(&victim, &link);
                let _ = fs::rename(&link, &dest);
            }
        })
    };
    let mut written_through = None;
    for run in 0..60 {
        env.client(&["-q", "-O", s(&dest), "hello.txt"]).finish(TIMEOUT);
        if fs::read(&victim).unwrap() != original {
            written_through = Some(run);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    env.stop_server(&mut server);
    assert_eq!(
        written_through,
        None,
        "the victim's file was written through the swapped-in symlink: now {:?}",
        String::from_utf8_lossy(&fs::read(&victim).unwrap())
    );
    env.assert_no_leftovers();
}

/// A server run as `nobody` on `env`'s root, and a client runner as
/// `nobody`.
fn nobody_server(env: &TestEnv) -> Proc {
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
    let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    server
}

/// `-C` into a shared directory (world-writable and sticky, as `/tmp`)
/// where another user laid `.shmxfer-partial.NAME.source` (or the partial
/// alone): docs/failure-model.md says such a partial is not resumed,
/// the file starts over and is delivered. The client, not root, cannot remove the other
/// user's names there (sticky), creating its own record or partial over
/// them fails, and the file fails: `f.txt: failed: creating a file in
/// …: Operation not permitted`, exit 1. Without `-C` the same fetch
/// succeeds: any local user can deny `-C` fetches of a name into `/tmp`.
#[test]
fn continue_into_a_sticky_directory_with_another_users_partial_names_still_delivers() {
    if !other_user_or_skip("another user's partial names in a sticky directory") {
        return;
    }
    let env = TestEnv::new("attack_foreign_partial_names");
    env.create("f.txt", b"hello from the source\n");
    env.create("g.txt", b"another file\n");
    env.open_to_others();
    fs::set_permissions(env.out(), fs::Permissions::from_mode(0o1777)).unwrap();
    // A third user's names (neither root's nor nobody's): the record and
    // the partial of f.txt, the partial alone of g.txt.
    let stranger = 4242;
    for name in [".shmxfer-partial.f.txt", ".shmxfer-partial.f.txt.source", ".shmxfer-partial.g.txt"] {
        let path = env.in_out(name);
        fs::write(&path, if name.ends_with(".source") { "22 1\n" } else { "junk" }).unwrap();
        std::os::unix::fs::chown(&path, Some(stranger), Some(stranger)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut server = nobody_server(&env);
    let as_nobody_client =
        |args: &[&str]| Proc::spawn(as_nobody(&env.client_cmd(args)), Some(&env.names)).finish(TIMEOUT);
    let out = s(env.out()).to_owned();
    let done = as_nobody_client(&["-C", "-o", &out, "f.txt", "g.txt"]);
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
    done.assert_code(0).assert_stdout_lines(&[received_line("f.txt", 22), received_line("g.txt", 13)]);
    assert_eq!(fs::read(env.in_out("f.txt")).unwrap(), b"hello from the source\n");
    assert_eq!(fs::metadata(env.in_out("f.txt")).unwrap().uid(), crate::util::NOBODY);
    env.assert_no_leftovers();
}

/// `-C` into a sticky shared directory where another user laid a file
/// under the partial's name and holds a `flock()` lock on it (any user may
/// lock a file of their own): the lock of another user's file says
/// nothing of a client of this user, so the run does not blame "another
/// shm_client", and the file is delivered as beside any other user's
/// partial names. Before: `f.txt: another shm_client is writing its
/// partial file; fetching it whole, nothing kept if cut off`.
#[test]
fn continue_beside_another_users_locked_partial_name_blames_no_client() {
    if !other_user_or_skip("another user's locked partial name in a sticky directory") {
        return;
    }
    let env = TestEnv::new("attack_foreign_locked_partial");
    env.create("f.txt", b"hello from the source\n");
    env.open_to_others();
    fs::set_permissions(env.out(), fs::Permissions::from_mode(0o1777)).unwrap();
    let partial = env.in_out(".shmxfer-partial.f.txt");
    fs::write(&partial, b"junk").unwrap();
    std::os::unix::fs::chown(&partial, Some(4242), Some(4242)).unwrap();
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o644)).unwrap();
    let held = nix::fcntl::Flock::lock(
        fs::File::open(&partial).unwrap(),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    );
    let held = held.map_err(|(_, e)| e).expect("the stranger's lock on its own file");
    let mut server = nobody_server(&env);
    let out = s(env.out()).to_owned();
    let done = Proc::spawn(as_nobody(&env.client_cmd(&["-C", "-o", &out, "f.txt"])), Some(&env.names))
        .finish(TIMEOUT);
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
    done.assert_code(0)
        .assert_stdout_lines(&[received_line("f.txt", 22)])
        .check(!done.stderr.contains("another shm_client"), "another user's lock is no client's");
    assert_eq!(fs::read(env.in_out("f.txt")).unwrap(), b"hello from the source\n");
    assert_eq!(fs::read(&partial).unwrap(), b"junk", "the stranger's file is left to it");
    drop(held);
    env.assert_no_leftovers();
}

/// `--put FILE -O NAME/`: a NAME ending in `/` (or `/.`) names a
/// directory, as a fetch's `-O out/new/` does (refused there before any
/// request, "not a file name (it names a directory)"), and as `cp f new/`
/// and `scp f host:new/` refuse when `new` is not a directory. The upload
/// stored a file named `new` instead, exit 0.
#[test]
fn put_with_dash_capital_o_ending_in_a_slash_never_stores_a_file_of_that_name() {
    let env = TestEnv::new("attack_put_dash_o_slash");
    let src: PathBuf = env.tmp().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a file\n").unwrap();
    let mut server = env.ready_server(&["--persistent", "--accept", s(env.out())]);
    let a = s(&src.join("a.txt")).to_owned();
    let slash = env.run_client(&["--put", &a, "-O", "new/"]);
    let dot = env.run_client(&["--put", &a, "-O", "other/."]);
    env.stop_server(&mut server);
    assert!(
        env.out_entries().is_empty(),
        "nothing should be stored; found {:?}\n{slash}\n{dot}",
        env.out_entries()
    );
    assert!(slash.code() != Some(0) && dot.code() != Some(0), "refused\n{slash}\n{dot}");
    env.assert_no_leftovers();
}

/// `-O /dev/stdout FILE | consumer` (here `/proc/self/fd/1`, the same
/// file): standard output is a pipe, so DEST is written into as a FIFO,
/// and then the status line `FILE: received N → DEST` is printed to
/// standard output too, after the file's bytes: the consumer reads the
/// file with a line of text appended (`| sha256sum` is wrong). `--stdout`
/// and `-O -` keep standard output for the bytes alone.
#[test]
fn dash_capital_o_onto_standard_output_as_a_pipe_writes_the_bytes_alone() {
    let env = TestEnv::new("attack_dash_o_stdout_pipe");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-O", "/proc/self/fd/1", "hello.txt"]);
    env.stop_server(&mut server);
    done.assert_code(0);
    assert_eq!(done.stdout, "hello\n", "standard output holds the file's bytes and nothing else\n{done}");
    env.assert_no_leftovers();
}

/// `-C` with a file whose name is longer than 231 bytes (up to the 255 a
/// name may have): docs/guide.md says such a name "keeps nothing" partial,
/// so the file comes as without `-C`. Since the partial is named from the
/// first byte, `.shmxfer-partial.NAME` (17 bytes more) cannot be created
/// and the file fails: `NAME: failed: creating a file in DIR: File name
/// too long`, exit 1, while the same fetch without `-C` delivers it.
#[test]
fn continue_with_a_name_too_long_for_a_partial_still_delivers_the_file() {
    let env = TestEnv::new("attack_continue_long_name");
    let name = "n".repeat(240);
    env.create(&name, b"a long name\n");
    let mut server = env.ready_server(&["--persistent"]);
    let out = s(env.out()).to_owned();
    let done = env.run_client(&["-C", "-o", &out, &name]);
    env.stop_server(&mut server);
    done.assert_code(0).assert_stdout_lines(&[received_line(&name, 12)]);
    env.assert_delivered(&name);
    assert_eq!(env.out_entries(), [name], "nothing partial kept");
    env.assert_no_leftovers();
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

/// Output directory swapped: the output directory is swapped for a symlink while a file
/// arrives. The file still lands in the directory the client opened at the
/// start, never in the symlink's target.
#[test]
fn out_dir_swapped_for_a_symlink_mid_transfer_does_not_redirect_the_file() {
    let env = TestEnv::new("out_dir_swapped");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 109);
    client.signal(Signal::SIGSTOP);
    let moved = env.tmp().join("out.moved");
    let elsewhere = new_dir(&env, "elsewhere");
    fs::rename(env.out(), &moved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.out()).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    assert!(
        dir_entries(&elsewhere).is_empty(),
        "the file went through the symlink: {:?}\n{done}",
        dir_entries(&elsewhere)
    );
    done.assert_code(0);
    assert_same_file(&env.in_root("big.bin"), &moved.join("big.bin"));
    assert_eq!(dir_entries(&moved), ["big.bin"]);
    stop(&env, &mut server);
    assert_no_leftovers(&env.names);
}

/// A directory of the output removed between a tree's files (the client
/// keeps the directories it reached open for the next file): the file in
/// flight fails saying its directory was removed, and the files still to
/// come go into the directory made again, not into the removed one.
#[test]
fn a_subdirectory_removed_mid_tree_is_made_again_for_the_files_still_to_come() {
    let env = TestEnv::new("or_sub_removed");
    env.create("t/sub/a.txt", b"first\n");
    env.create_random("t/sub/big.bin", BIG, 5);
    env.create("t/sub/z.txt", b"last\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_with(&["-r"], &["t"]);
    env.wait_receiving(&mut client, "big.bin");
    client.signal(Signal::SIGSTOP);
    fs::remove_dir_all(env.out().join("t/sub")).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    env.stop_server(&mut server);
    done.check(done.stdout.contains("t/sub/z.txt: received 5 bytes"), "the file after the removal came")
        .check(done.stdout.contains("t/sub/big.bin: failed: "), "the file in flight failed");
    assert_eq!(fs::read(env.out().join("t/sub/z.txt")).unwrap(), b"last\n", "{done}");
    assert_no_leftovers(&env.names);
}

/// A directory of the output moved away (out of the output directory)
/// between a tree's files: the files still to come go to their names below
/// the output directory, never into the moved directory (which the client
/// kept open), where they were reported received at names with nothing.
#[test]
fn a_subdirectory_moved_out_mid_tree_gets_none_of_the_files_still_to_come() {
    let env = TestEnv::new("or_sub_moved");
    env.create("t/sub/a.txt", b"first\n");
    env.create_random("t/sub/big.bin", BIG, 6);
    env.create("t/sub/z.txt", b"last\n");
    let moved = env.tmp().join("moved");
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_with(&["-r"], &["t"]);
    env.wait_receiving(&mut client, "big.bin");
    client.signal(Signal::SIGSTOP);
    fs::rename(env.out().join("t/sub"), &moved).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    env.stop_server(&mut server);
    done.check(!moved.join("z.txt").exists(), "nothing came into the moved directory")
        .check(done.stdout.contains("t/sub/z.txt: received 5 bytes"), "the file after the move came");
    assert_eq!(fs::read(env.out().join("t/sub/z.txt")).unwrap(), b"last\n", "{done}");
    assert_no_leftovers(&env.names);
}

/// 13.13: an output directory removed while the client runs (here: its
/// working directory, `-o .`) fails each file saying so, not with the
/// `EPERM` of `O_TMPFILE` in a removed directory.
#[test]
fn output_directory_removed_under_the_client_is_named_as_removed() {
    let env = TestEnv::new("rt_out_removed");
    env.create("hello.txt", b"hello\n");
    let gone = env.tmp().join("gone");
    fs::create_dir(&gone).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"cd "$0" && rmdir "$0" && exec "$@""#)
        .arg(&gone)
        .arg(CLIENT)
        .arg("--queue")
        .arg(env.names.queue())
        .args(["-o", ".", "hello.txt"])
        .env_remove("SHMXFER_QUEUE");
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    env.stop_server(&mut server);
    done.assert_code(1)
        .check(
            done.stdout.contains("hello.txt: failed: the output directory . was removed"),
            "the line says the output directory was removed",
        )
        .check(!done.stdout.contains("not permitted"), "no bare EPERM");
    assert!(!gone.exists());
    assert_no_leftovers(&env.names);
}
