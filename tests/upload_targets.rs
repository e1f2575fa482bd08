//! What an upload finds at or on the way to its target name in the server's
//! `--accept` directory: a directory, a regular file where a directory of
//! `--to` should be, a symlink, another user's file, a hard link to a file
//! outside, odd names, a directory swapped for a symlink, the accept
//! directory itself renamed away. The upload is refused or stored as a new
//! file of the server's, and nothing is ever written outside the accept
//! directory nor through a link. (A FIFO at the target name is in
//! `output_rule.rs`, with the fetch's.)

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::util::{
    accepting, assert_same_file, s, sources, wait_until, write_random_file, Proc, TestEnv, MIB, TIMEOUT,
};

/// A directory at the target name: refused as a directory at once (the
/// data is not sent), the directory and its contents left as they were.
#[test]
fn put_onto_an_existing_directory_is_refused_as_a_directory() {
    let env = TestEnv::new("put_onto_dir");
    let src = sources(&env);
    fs::write(src.join("d"), b"not a dir\n").unwrap();
    fs::create_dir(env.in_out("d")).unwrap();
    fs::write(env.in_out("d/inside"), b"kept\n").unwrap();
    let mut server = accepting(&env, &[]);
    let d = s(&src.join("d")).to_owned();
    for opts in [&[][..], &["--no-clobber"][..]] {
        let mut args = opts.to_vec();
        args.extend(["--put", &d]);
        let done = env.run_client(&args);
        done.assert_code(1)
            .check(done.stdout.contains("refused by server"), "refused, not failed after the data")
            .check(done.stdout.contains("a directory has that name on the server"), "says why");
    }
    assert!(env.in_out("d").is_dir());
    assert_eq!(fs::read(env.in_out("d/inside")).unwrap(), b"kept\n");
    assert_eq!(env.out_entries(), ["d"], "no temporary name left");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A regular file where a directory of `--to` should be, a name too long
/// for the file system, and a name that is not UTF-8.
#[test]
fn put_odd_names_are_refused_or_kept_as_bytes() {
    let env = TestEnv::new("put_odd_names");
    let src = sources(&env);
    fs::write(src.join("x"), b"x\n").unwrap();
    fs::write(env.in_out("file"), b"a file\n").unwrap();
    let odd = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::write(&odd, b"latin-1\n").unwrap();
    let mut server = accepting(&env, &[]);
    let x = s(&src.join("x")).to_owned();
    let under_file = env.run_client(&["--put", &x, "--to", "file"]);
    under_file.assert_code(1).check(under_file.stdout.contains("refused by server"), "refused");
    let long = "n".repeat(300);
    let too_long = env.run_client(&["--put", &x, "--to", &long]);
    too_long.assert_code(1).check(too_long.stdout.contains("a name too long"), "says why");
    let mut cmd = env.client_cmd(&[]);
    cmd.arg("--put").arg(&odd);
    Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT).assert_code(0);
    assert_eq!(fs::read(env.out().join(std::ffi::OsStr::from_bytes(b"caf\xe9"))).unwrap(), b"latin-1\n");
    assert_eq!(fs::read(env.in_out("file")).unwrap(), b"a file\n");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A `--to` whose directory is a regular file, or a symlink, on the
/// server: the client's line gives the true reason (not followed), not
/// only "outside the --accept directory".
#[test]
fn put_to_a_file_or_a_symlink_says_the_directory_is_not_followed() {
    let env = TestEnv::new("put_to_not_dir");
    let src = sources(&env);
    fs::write(src.join("a.txt"), b"a\n").unwrap();
    fs::write(env.in_out("x"), b"a file\n").unwrap();
    let elsewhere = env.tmp().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, env.in_out("trap")).unwrap();
    let mut server = accepting(&env, &[]);
    let a = s(&src.join("a.txt")).to_owned();
    for to in ["x", "trap"] {
        let done = env.run_client(&["--put", &a, "--to", to]);
        done.assert_code(1)
            .check(done.stdout.contains(&format!("refused by server: {to}/a.txt: ")), "refused")
            .check(done.stdout.contains("a symlink or not a directory"), "the true reason");
    }
    assert_eq!(fs::read(env.in_out("x")).unwrap(), b"a file\n");
    assert!(crate::util::dir_entries(&elsewhere).is_empty(), "nothing written through the symlink");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn owner_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().uid()
}

fn ino_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).unwrap().ino()
}

/// Stored files: setuid, setgid and sticky stripped; a file of another
/// user (world-writable) under the target name lends the new file neither
/// its owner nor its mode, and `--no-clobber` keeps it as it was.
#[test]
fn put_over_another_users_file_takes_neither_its_owner_nor_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    if !crate::util::other_user_or_skip("another user's file under the target name") {
        return;
    }
    let env = TestEnv::new("put_perm_other");
    let src = sources(&env);
    let suid = src.join("suid");
    fs::write(&suid, b"setuid source\n").unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o6755)).unwrap();
    let theirs = src.join("theirs");
    fs::write(&theirs, b"mine now\n").unwrap();
    fs::set_permissions(&theirs, fs::Permissions::from_mode(0o640)).unwrap();
    let planted = env.in_out("theirs");
    fs::write(&planted, b"planted by nobody\n").unwrap();
    std::os::unix::fs::chown(&planted, Some(crate::util::NOBODY), Some(crate::util::NOBODY)).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o4777)).unwrap();
    let mut server = accepting(&env, &[]);
    let kept = env.run_client(&["--no-clobber", "--put", s(&theirs)]);
    kept.assert_code(0).check(kept.stdout.contains("skipped: exists on the server"), "kept");
    assert_eq!(fs::read(&planted).unwrap(), b"planted by nobody\n");
    assert_eq!((owner_of(&planted), mode_of(&planted)), (crate::util::NOBODY, 0o4777));
    env.run_client(&["--put", s(&suid), s(&theirs)]).assert_code(0);
    assert_eq!(mode_of(&env.in_out("suid")) & 0o7000, 0, "no setuid, setgid or sticky");
    assert_eq!(fs::read(&planted).unwrap(), b"mine now\n");
    assert_eq!(owner_of(&planted), 0, "the new file is the server's");
    let mode = mode_of(&planted);
    assert_eq!(mode & 0o7022, 0, "{mode:o}: the other user's world-writable mode is not taken");
    assert_eq!(env.out_entries(), ["suid", "theirs"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A hard link to a file outside the accept dir under the target name:
/// replacing it replaces the name, never writes through the link; with
/// `--no-clobber` the link stays as it was.
#[test]
fn put_over_a_hard_link_to_an_outside_file_never_writes_through_it() {
    let env = TestEnv::new("put_hardlink");
    let src = sources(&env);
    let outside = env.tmp().join("outside");
    fs::create_dir(&outside).unwrap();
    let secret = outside.join("secret");
    fs::write(&secret, b"outside, untouched\n").unwrap();
    let linked = env.in_out("linked");
    fs::hard_link(&secret, &linked).unwrap();
    let new = src.join("linked");
    fs::write(&new, b"the upload\n").unwrap();
    let mut server = accepting(&env, &[]);
    env.run_client(&["--no-clobber", "--put", s(&new)]).assert_code(0);
    assert_eq!(ino_of(&linked), ino_of(&secret), "--no-clobber keeps the link");
    env.run_client(&["--put", s(&new)]).assert_code(0);
    assert_eq!(fs::read(&secret).unwrap(), b"outside, untouched\n");
    assert_eq!(fs::read(&linked).unwrap(), b"the upload\n");
    assert_ne!(ino_of(&linked), ino_of(&secret));
    assert_eq!(env.out_entries(), ["linked"]);
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// Loops until `stop`, swapping `dir` for a symlink to `outside` and back
/// (the real directory parked beside it under `parked`).
fn swap_for_symlink(dir: PathBuf, parked: PathBuf, outside: PathBuf, stop: Arc<AtomicBool>) -> usize {
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        if fs::rename(&dir, &parked).is_ok() {
            let _ = std::os::unix::fs::symlink(&outside, &dir);
            std::thread::yield_now();
            let _ = fs::remove_file(&dir);
            let _ = fs::rename(&parked, &dir);
        }
        rounds += 1;
    }
    rounds
}

/// Another process swaps a directory of the target path for a symlink to
/// outside, over and over, while files are put below it: nothing lands
/// outside, every file said sent is in the accept dir, whole, and every
/// other is refused by the server.
#[test]
fn a_directory_swapped_for_a_symlink_during_uploads_never_leads_outside() {
    let env = TestEnv::new("put_swap_race");
    let src = sources(&env);
    let outside = env.tmp().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::create_dir_all(env.in_out("in/sub")).unwrap();
    let mut files = Vec::new();
    for i in 0..40 {
        let f = src.join(format!("f{i:02}"));
        write_random_file(&f, 20_000 + i * 1000, 100 + i);
        files.push(s(&f).to_owned());
    }
    let mut server = accepting(&env, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (dir, parked) = (env.in_out("in/sub"), env.in_out("in/parked"));
        let (outside, stop) = (outside.clone(), Arc::clone(&stop));
        std::thread::spawn(move || swap_for_symlink(dir, parked, outside, stop))
    };
    let mut args = vec!["--to", "in/sub", "--put"];
    args.extend(files.iter().map(String::as_str));
    let mut rounds = 0;
    for _ in 0..3 {
        let done = env.run_client(&args);
        done.check(matches!(done.code(), Some(0 | 1)), "each file answered");
        for line in done.stdout.lines() {
            let sent = line.contains(": sent ");
            let refused = line.contains("refused by server") && line.contains("outside");
            let log = server.stderr();
            let why: Vec<&str> = log.lines().filter(|l| l.contains("upload failed")).collect();
            assert!(sent || refused, "neither sent nor refused as outside: {line}\n{done}\n{why:#?}");
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(
        crate::util::dir_entries(&outside).is_empty(),
        "written outside: {:?}",
        crate::util::dir_entries(&outside)
    );
    // Every name holds a whole file (the last one stored).
    let sub = env.in_out("in/sub");
    for i in 0..40u64 {
        let name = format!("f{i:02}");
        if sub.join(&name).exists() {
            assert_same_file(&src.join(&name), &sub.join(&name));
        }
    }
    let stray: Vec<String> =
        crate::util::dir_entries(&sub).into_iter().filter(|e| !e.starts_with('f')).collect();
    assert!(stray.is_empty(), "temporary names left: {stray:?}");
    println!("{rounds} runs, {swaps} swaps");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The accept dir renamed away while a file is being received (and
/// another directory made at its path): the file is not stored in the
/// moved directory nor in the new one, and the client is told it would
/// land outside the server's --accept directory.
#[test]
fn the_accept_dir_renamed_away_mid_upload_keeps_nothing_there() {
    let env = TestEnv::new("put_accept_moved");
    let src = sources(&env);
    let big = src.join("big.bin");
    write_random_file(&big, 8 * MIB, 51);
    let mut server = accepting(&env, &[]);
    let mut client = env.client(&["--put", s(&big)]);
    let receiving =
        wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "big.bin") || !client.is_running());
    assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
    client.signal(Signal::SIGSTOP);
    let moved = env.tmp().join("moved");
    fs::rename(env.out(), &moved).unwrap();
    fs::create_dir(env.out()).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(TIMEOUT);
    done.assert_code(1).check(done.stdout.contains("refused by server"), "refused");
    assert!(
        crate::util::dir_entries(&moved).is_empty(),
        "stored in the moved dir: {:?}",
        crate::util::dir_entries(&moved)
    );
    assert!(env.out_entries().is_empty(), "{:?}", env.out_entries());
    // The server stays up and answers the next client the same way.
    let small = src.join("small");
    fs::write(&small, b"after\n").unwrap();
    let next = env.run_client(&["--put", s(&small)]);
    next.assert_code(1).check(next.stdout.contains("refused by server"), "refused");
    assert!(crate::util::dir_entries(&moved).is_empty());
    assert!(server.is_running());
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains("--accept directory"), "the log says why\n{log}");
    env.assert_no_leftovers();
}
