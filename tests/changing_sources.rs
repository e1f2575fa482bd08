//! Sources that do not hold still: a file rewritten in place, appended to
//! or truncated while it is sent (each in both directions: fetched from the
//! server, uploaded by the client), and a file whose size lies (`/proc`).
//! A changed file fails "changed while it was sent" and nothing is kept
//! under its name; a file whose size lies is read to its end.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::direction::Direction;
use crate::util::{assert_no_leftovers, run_ok, wait_for_queue, Proc, Signal, TestEnv, BIG_TIMEOUT};

/// A `/proc` file says 0 bytes in `fstat`: the server reads it to its end
/// (the `Start` frame says the size is unknown), the client takes the `End`
/// count as the truth, and the copy is the file's real bytes, verified.
#[test]
fn file_whose_size_lies_is_streamed_to_its_end_never_received_empty() {
    let env = TestEnv::new("rt_size_lies");
    let mut sleeper_cmd = Command::new("sleep");
    sleeper_cmd.arg("60");
    let sleeper = Proc::spawn(sleeper_cmd, None);
    let root = PathBuf::from(format!("/proc/{}", sleeper.pid()));
    let mut server = env.server_in(&root, &["--persistent"]);
    wait_for_queue(&env.names, &mut server);
    let done = env.fetch(&["status", "cmdline"]);
    env.stop_server(&mut server);
    drop(sleeper);
    let status = fs::read(env.in_out("status")).unwrap_or_default();
    let cmdline = fs::read(env.in_out("cmdline")).unwrap_or_default();
    done.assert_code(0)
        .check(String::from_utf8_lossy(&status).contains("Name:\tsleep"), "the real bytes of the status file")
        .check(cmdline == b"sleep\x0060\x00", "the real bytes of the cmdline file")
        .check(
            done.stdout.contains(&format!("status: received {} bytes", status.len())),
            "the count told is the count written",
        );
    assert_no_leftovers(&env.names);
}

/// Stops a big transfer of `direction` mid-file (`big.bin`, then
/// `small.txt` in the same run), lets `change` alter the source, resumes
/// it: the file fails as changed while it was sent, nothing is kept under
/// its name, the session goes on to the next file, and the server logs
/// the change.
fn changed_source_fails(test: &str, direction: Direction, seed: u64, change: impl FnOnce(&Path)) {
    let env = TestEnv::new(&format!("{test}_{}", direction.name()));
    let (mut server, mut client) = direction.big_transfer_in_flight(&env, &[], &[], seed);
    client.signal(Signal::SIGSTOP);
    // Past the granularity of file times: time itself is what is waited for.
    thread::sleep(Duration::from_millis(50));
    change(&direction.source(&env, "big.bin"));
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(1)
        .check(done.stdout.contains("big.bin: failed: "), "the file fails")
        .check(done.stdout.contains("changed while it was sent"), "as changed while it was sent")
        .check(done.stdout.contains(&direction.done_line("small.txt", 6)), "the session goes on");
    assert_eq!(env.out_entries(), ["small.txt"], "nothing kept under the changed file's name");
    assert!(server.open_files_under(env.out()).is_empty(), "the server holds nothing");
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains("big.bin") && log.contains("changed"), "the server logs the change\n{log}");
    env.assert_no_leftovers();
}

/// Bytes rewritten in place (same size, other bytes) by another process
/// while the file is sent, in both directions.
#[test]
fn source_rewritten_in_place_while_sent_fails_and_leaves_no_file() {
    for direction in Direction::BOTH {
        changed_source_fails("source_rewritten", direction, 110, |path| {
            run_ok(
                Command::new("dd")
                    .args(["if=/dev/zero", "bs=4096", "count=1", "conv=notrunc", "status=none"])
                    .arg(format!("of={}", path.display())),
            );
        });
    }
}

/// The file grows while it is sent, in both directions.
#[test]
fn source_appended_to_while_sent_fails_and_leaves_no_file() {
    for direction in Direction::BOTH {
        changed_source_fails("source_appended", direction, 111, |path| {
            let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
            f.seek(SeekFrom::End(0)).unwrap();
            f.write_all(&[0xa5; 1 << 20]).unwrap();
        });
    }
}

/// The file is truncated by another process while it is uploaded.
#[test]
fn a_file_truncated_while_it_is_uploaded_fails_and_leaves_nothing() {
    changed_source_fails("put_truncated", Direction::Upload, 42, |path| {
        run_ok(Command::new("truncate").args(["-s", "1M"]).arg(path));
    });
}
