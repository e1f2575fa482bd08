//! Full file systems, each a small tmpfs in a private mount namespace: the
//! client's output directory, the server's `--accept` directory (locally and
//! through a relay), and `/dev/shm` itself. The file fails at once with a
//! clear reason, nothing is left, and the next file still goes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{
    assert_no_leftovers, assert_out_empty, is_root, root_or_skip, s, sources, write_random_file, Proc,
    TestEnv, CLIENT, MIB, SERVER, SLACK, TIMEOUT,
};

#[test]
fn local_write_error_fails_the_file_at_once_and_goes_on_with_the_next() {
    if !is_root() || !Path::new("/usr/bin/unshare").exists() && !Path::new("/bin/unshare").exists() {
        println!("skipped part: full output file system (needs root and unshare)");
        return;
    }
    let env = TestEnv::new("rt_write_error");
    let big = fs::File::create(env.in_root("big.bin")).unwrap();
    big.set_len(2 << 30).unwrap();
    drop(big);
    env.create("next.txt", b"next\n");
    let mut server = env.ready_server(&["--persistent"]);
    let script = r#"
        set -u
        mount -t tmpfs -o size=1m tmpfs "$OUT" || exit 90
        start=$(date +%s%N)
        timeout 6 "$CLIENT" --queue "$Q" -o "$OUT" big.bin next.txt
        echo "client-exit=$?"
        echo "client-ms=$(( ($(date +%s%N) - start) / 1000000 ))"
        [ -f "$OUT/next.txt" ] && echo "next=$(cat "$OUT/next.txt")"
        umount "$OUT"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .env("CLIENT", CLIENT)
        .env("Q", env.names.queue())
        .env("OUT", env.out())
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let done = Proc::spawn(cmd, Some(&env.names)).finish(Duration::from_secs(60));
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
    let value = |key: &str| done.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
    assert_ne!(value("client-exit="), None, "the script did not run the client\n{done}");
    let ms: u64 = value("client-ms=").and_then(|v| v.parse().ok()).expect("client time");
    assert_eq!(value("client-exit=").as_deref(), Some("1"), "the client exits 1\n{done}");
    assert_eq!(value("next=").as_deref(), Some("next"), "the next file arrives\n{done}");
    assert!(ms <= 2000 + SLACK.as_millis() as u64 / 4, "the client took {ms} ms to fail the file\n{done}");
}

/// An upload into a full file system (a 1 MiB tmpfs as the accept dir, in
/// a mount namespace of its own): the file fails with "ran out of room",
/// nothing is left in the directory, the server keeps running, and a
/// small file still fits afterwards. The failed write is answered at once,
/// so the client does not stream the rest of the file.
#[test]
fn put_into_a_full_file_system_fails_and_leaves_nothing() {
    full_disk_put("put_full_disk", false);
}

/// The relay twin: the same upload through `-H` (a remote shell that runs
/// the relay here), answered at the failed write through the relay.
#[test]
fn put_through_a_relay_into_a_full_file_system_fails_and_leaves_nothing() {
    full_disk_put("put_full_disk_relay", true);
}

/// Uploads 16 MiB into a 1 MiB tmpfs `--accept` directory (in a private
/// mount namespace), then a small file; through a relay when `relayed`.
fn full_disk_put(test: &str, relayed: bool) {
    let env = TestEnv::new(test);
    let src = sources(&env);
    let rsh = env.tmp().join("rsh");
    fs::write(&rsh, "#!/bin/sh\nshift\nexec \"$@\"\n").unwrap();
    fs::set_permissions(&rsh, fs::Permissions::from_mode(0o755)).unwrap();
    let remote =
        if relayed { format!("-H h --rsh {} --remote-client {CLIENT}", s(&rsh)) } else { String::new() };
    write_random_file(&src.join("big.bin"), 16 * MIB, 31);
    fs::write(src.join("small"), b"fits\n").unwrap();
    let script = r#"
        mount -t tmpfs -o size=1m none "$OUT" || exit 90
        "$SERVER" --queue "$Q" --persistent --accept "$OUT" --root "$ROOT" 2>"$LOG" &
        spid=$!
        i=0
        while [ ! -e "/dev/shm/$STEM.lock" ]; do
            sleep 0.05; i=$((i + 1)); [ $i -gt 600 ] && exit 91
        done
        sleep 0.3
        "$CLIENT" --queue "$Q" --wait 5 $REMOTE --put "$SRC/big.bin"
        echo "big-exit=$?"
        for e in "$OUT"/* "$OUT"/.[!.]*; do [ -e "$e" ] && echo "left=${e#$OUT/}"; done
        "$CLIENT" --queue "$Q" --wait 5 $REMOTE --put "$SRC/small"
        echo "small-exit=$?"
        for e in "$OUT"/* "$OUT"/.[!.]*; do [ -e "$e" ] && echo "after=${e#$OUT/}"; done
        kill -TERM $spid
        wait $spid
        echo "server-exit=$?"
        sed -n 's/.*upload failed after \([0-9]*\) bytes.*/failed-after=\1/p' "$LOG"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .env("SERVER", SERVER)
        .env("CLIENT", CLIENT)
        .env("Q", env.names.queue())
        .env("STEM", env.names.stem())
        .env("ROOT", env.root())
        .env("OUT", env.out())
        .env("SRC", &src)
        .env("LOG", env.tmp().join("server.log"))
        .env("REMOTE", remote)
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    done.assert_code(0);
    let value = |key: &str| done.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
    assert_eq!(value("big-exit=").as_deref(), Some("1"), "{done}");
    done.check(done.stdout.contains("ran out of room"), "the client says the server's disk is full");
    let lines = |key: &str| done.stdout.lines().filter_map(|l| l.strip_prefix(key)).collect::<Vec<_>>();
    assert!(lines("left=").is_empty(), "nothing left in the full directory\n{done}");
    assert_eq!(value("small-exit=").as_deref(), Some("0"), "{done}");
    assert_eq!(lines("after="), ["small"], "{done}");
    assert_eq!(value("server-exit=").as_deref(), Some("0"), "{done}");
    // Answered at the failed write: the client stops sending the rest.
    let after: u64 = value("failed-after=").and_then(|v| v.parse().ok()).expect("the failure logged");
    assert!(after < 4 * MIB, "{after} bytes streamed into a full disk of 1 MiB\n{done}");
    env.assert_no_leftovers();
}

/// Full `/dev/shm`: `/dev/shm` is full (a private mount namespace with a small
/// tmpfs, filled up after the server started). The client's new region
/// reserves its memory, so it gets a clear ENOSPC error, never SIGBUS, and
/// leaves nothing behind.
#[test]
fn full_dev_shm_is_a_clear_error_not_sigbus_and_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("full_dev_shm");
    env.create("hello.txt", b"hello\n");
    let script = r#"
        set -u
        mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 90
        "$SERVER" --queue "$Q" --root "$ROOT" --persistent &
        spid=$!
        i=0
        while [ ! -e "/dev/shm/$STEM.lock" ]; do
            sleep 0.05; i=$((i + 1)); [ $i -gt 600 ] && exit 91
        done
        sleep 0.3
        dd if=/dev/zero of=/dev/shm/filler bs=4096 2>/dev/null
        "$CLIENT" --queue "$Q" -o "$OUT" --wait 5 hello.txt
        echo "client-exit=$?"
        rm -f /dev/shm/filler
        for e in /dev/shm/* /dev/shm/.[!.]*; do [ -e "$e" ] && echo "left=${e#/dev/shm/}"; done
        kill -TERM $spid
        wait $spid
        echo "server-exit=$?"
    "#;
    let mut cmd = Command::new("unshare");
    cmd.arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .env("SERVER", SERVER)
        .env("CLIENT", CLIENT)
        .env("Q", env.names.queue())
        .env("STEM", env.names.stem())
        .env("ROOT", env.root())
        .env("OUT", env.out())
        .env_remove("SHMXFER_QUEUE")
        .current_dir(env.cwd());
    let done = Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT);
    done.assert_code(0);
    let value = |key: &str| done.stdout.lines().find_map(|l| l.strip_prefix(key)).map(str::to_owned);
    let client_exit: i32 = value("client-exit=").and_then(|v| v.parse().ok()).expect("client exit status");
    assert_ne!(client_exit, 135, "the client died of SIGBUS\n{done}");
    assert!(client_exit != 0 && client_exit < 128, "client exit {client_exit}\n{done}");
    done.check(done.stderr.contains("No space left on device"), "the client names ENOSPC");
    let left: Vec<String> =
        done.stdout.lines().filter_map(|l| l.strip_prefix("left=")).map(str::to_owned).collect();
    let lock = format!("{}.lock", env.names.stem());
    assert_eq!(left, [lock], "left in the full /dev/shm besides the server's lock\n{done}");
    assert_eq!(value("server-exit=").as_deref(), Some("0"), "{done}");
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}
