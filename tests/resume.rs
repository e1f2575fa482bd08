//! `-C/--continue` and the partial files it keeps: what lies in the out dir
//! under a partial's names (a FIFO, a hard link or a symlink out, a partial
//! or record that lies, another user's partial in a shared directory) and a
//! source that changed behind its record never lead to a hang, a write
//! outside the out dir or a wrong file delivered.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::util::{mkfifo, received_line, TestEnv};

/// The out dir as an argument.
fn out(env: &TestEnv) -> String {
    env.out().to_str().unwrap().to_owned()
}

/// The record `-C` keeps beside a partial: `SIZE MTIME_NS` of `source`.
fn record_of(source: &Path) -> String {
    let meta = fs::metadata(source).unwrap();
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    format!("{} {mtime_ns}\n", meta.len())
}

/// Lays a partial of `name` holding `prefix` with a record of `source`'s
/// stamp in the out dir, as a cut-off `-C` run leaves them.
fn lay_partial(env: &TestEnv, name: &str, prefix: &[u8], source: &Path) {
    fs::write(env.in_out(&format!(".shmxfer-partial.{name}")), prefix).unwrap();
    fs::write(env.in_out(&format!(".shmxfer-partial.{name}.source")), record_of(source)).unwrap();
}

/// A pseudo-random body of `len` bytes.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[test]
fn continue_with_a_fifo_as_the_partials_record_does_not_hang() {
    let env = TestEnv::new("attack_fifo_record");
    env.create("f.txt", b"hello\n");
    mkfifo(&env.in_out(".shmxfer-partial.f.txt.source"));
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.client(&["-C", "-o", &out(&env), "f.txt"]);
    let Some(_) = client.wait_timeout(Duration::from_secs(5)) else {
        client.kill();
        panic!("-C blocked opening a FIFO named like the record\n{}", client.snapshot());
    };
    client.snapshot().assert_code(0).assert_stdout_lines(&[received_line("f.txt", 6)]);
    env.assert_delivered("f.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_with_a_fifo_as_the_partial_does_not_hang() {
    let env = TestEnv::new("attack_fifo_partial");
    let src = env.create("f.txt", b"hello\n");
    mkfifo(&env.in_out(".shmxfer-partial.f.txt"));
    fs::write(env.in_out(".shmxfer-partial.f.txt.source"), record_of(&src)).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.client(&["-C", "-o", &out(&env), "f.txt"]).finish(Duration::from_secs(10));
    done.assert_code(0).assert_stdout_lines(&[received_line("f.txt", 6)]);
    env.assert_delivered("f.txt");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_never_writes_through_a_partial_linked_outside_the_out_dir() {
    let env = TestEnv::new("attack_hardlinked_partial");
    let whole = body(100_000);
    let src = env.create("f.bin", &whole);
    let outside = env.tmp().join("outside.bin");
    fs::write(&outside, &whole[..40_000]).unwrap();
    fs::hard_link(&outside, env.in_out(".shmxfer-partial.f.bin")).unwrap();
    fs::write(env.in_out(".shmxfer-partial.f.bin.source"), record_of(&src)).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-C", "-o", &out(&env), "f.bin"]).assert_code(0);
    env.assert_delivered("f.bin");
    env.stop_server(&mut server);
    assert_eq!(
        fs::read(&outside).unwrap().len(),
        40_000,
        "a file outside the out dir was written through the partial's other link"
    );
}

#[test]
fn continue_never_follows_a_partial_or_record_that_is_a_symlink() {
    let env = TestEnv::new("attack_symlinked_partial");
    let whole = body(50_000);
    let src = env.create("f.bin", &whole);
    let outside = env.tmp().join("outside.bin");
    fs::write(&outside, &whole[..20_000]).unwrap();
    let record = env.tmp().join("record");
    fs::write(&record, record_of(&src)).unwrap();
    std::os::unix::fs::symlink(&outside, env.in_out(".shmxfer-partial.f.bin")).unwrap();
    fs::write(env.in_out(".shmxfer-partial.f.bin.source"), record_of(&src)).unwrap();
    std::os::unix::fs::symlink(&outside, env.in_out(".shmxfer-partial.g.bin")).unwrap();
    std::os::unix::fs::symlink(&record, env.in_out(".shmxfer-partial.g.bin.source")).unwrap();
    env.create("g.bin", &whole);
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-C", "-o", &out(&env), "f.bin", "g.bin"]).assert_code(0);
    env.assert_delivered("f.bin");
    env.assert_delivered("g.bin");
    env.stop_server(&mut server);
    assert_eq!(fs::read(&outside).unwrap(), &whole[..20_000], "the symlink's target is untouched");
    assert_eq!(fs::read_to_string(&record).unwrap(), record_of(&src));
    for name in ["f.bin", "g.bin"] {
        assert!(fs::symlink_metadata(env.in_out(name)).unwrap().is_file(), "{name} is a file of its own");
    }
}

#[test]
fn continue_with_a_lying_partial_or_record_never_delivers_a_wrong_file() {
    let env = TestEnv::new("attack_lying_partial");
    let whole = body(30_000);
    let src = env.create("long.bin", &whole);
    // A partial longer than the source, whose record is right: starts over.
    let mut longer = whole.clone();
    longer.extend_from_slice(b"more bytes than the source has");
    lay_partial(&env, "long.bin", &longer, &src);
    // A partial of the right length but wrong bytes, record right: fails
    // its check and goes.
    let wrong = env.create("wrong.bin", &whole);
    lay_partial(&env, "wrong.bin", &body(10_000).iter().map(|b| !b).collect::<Vec<_>>(), &wrong);
    // A record that lies about the size or the mtime: starts over.
    env.create("small.bin", &whole);
    fs::write(env.in_out(".shmxfer-partial.small.bin"), &whole[..5_000]).unwrap();
    fs::write(env.in_out(".shmxfer-partial.small.bin.source"), "5000 1\n").unwrap();
    let future = env.create("future.bin", &whole);
    fs::write(env.in_out(".shmxfer-partial.future.bin"), &whole[..5_000]).unwrap();
    let size = fs::metadata(&future).unwrap().len();
    fs::write(env.in_out(".shmxfer-partial.future.bin.source"), format!("{size} 9999999999999999999\n"))
        .unwrap();
    // A record of garbage: not a record.
    env.create("junk.bin", &whole);
    fs::write(env.in_out(".shmxfer-partial.junk.bin"), &whole[..5_000]).unwrap();
    fs::write(env.in_out(".shmxfer-partial.junk.bin.source"), "-1 x\n").unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&[
        "-C",
        "-o",
        &out(&env),
        "long.bin",
        "wrong.bin",
        "small.bin",
        "future.bin",
        "junk.bin",
    ]);
    env.stop_server(&mut server);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines[0], received_line("long.bin", 30_000));
    assert!(lines[1].starts_with("wrong.bin: failed"), "{done}");
    assert_eq!(
        &lines[2..],
        [
            received_line("small.bin", 30_000),
            received_line("future.bin", 30_000),
            received_line("junk.bin", 30_000)
        ]
    );
    for name in ["long.bin", "small.bin", "future.bin", "junk.bin"] {
        env.assert_delivered(name);
    }
    let entries = env.out_entries();
    assert!(!entries.contains(&"wrong.bin".to_owned()), "no wrong file under its name: {entries:?}");
    assert!(
        !entries.iter().any(|e| e.starts_with(".shmxfer-partial.wrong.bin")),
        "a partial that failed its check goes: {entries:?}"
    );
}

#[test]
fn continue_after_the_source_changed_with_the_same_size_and_mtime_never_delivers_a_mix() {
    let env = TestEnv::new("attack_touched_source");
    let old = body(60_000);
    let src = env.create("f.bin", &old);
    let stamp = record_of(&src);
    let meta = fs::metadata(&src).unwrap();
    // The source rewritten (same size) and its mtime set back, as touch -d does.
    let new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
    fs::write(&src, &new).unwrap();
    let then = std::time::UNIX_EPOCH + Duration::new(meta.mtime() as u64, meta.mtime_nsec() as u32);
    fs::File::options().write(true).open(&src).unwrap().set_modified(then).unwrap();
    assert_eq!(record_of(&src), stamp);
    fs::write(env.in_out(".shmxfer-partial.f.bin"), &old[..25_000]).unwrap();
    fs::write(env.in_out(".shmxfer-partial.f.bin.source"), stamp).unwrap();
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-C", "-o", &out(&env), "f.bin"]);
    let entries = env.out_entries();
    if done.code() == Some(0) {
        env.assert_delivered("f.bin");
    } else {
        done.assert_code(1);
        assert!(entries.is_empty(), "neither a mixed file nor the partial is left: {entries:?}");
        // The next run gets it whole.
        env.run_client(&["-C", "-o", &out(&env), "f.bin"]).assert_code(0);
        env.assert_delivered("f.bin");
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

#[test]
fn continue_never_resumes_another_users_partial_in_a_shared_directory() {
    use crate::util::{other_user_or_skip, NOBODY};
    if !other_user_or_skip("another user's partial in a sticky directory") {
        return;
    }
    let env = TestEnv::new("attack_foreign_partial");
    env.open_to_others();
    // The out dir is shared as /tmp is: world-writable and sticky.
    fs::set_permissions(env.out(), fs::Permissions::from_mode(0o1777)).unwrap();
    let whole = body(80_000);
    let src = env.create("f.bin", &whole);
    // The other user lays a partial (a true prefix: the source is readable)
    // and its record, both theirs and writable by them.
    lay_partial(&env, "f.bin", &whole[..30_000], &src);
    for name in [".shmxfer-partial.f.bin", ".shmxfer-partial.f.bin.source"] {
        let path = env.in_out(name);
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    }
    let mut server = env.ready_server(&["--persistent"]);
    env.run_client(&["-C", "-o", &out(&env), "f.bin"]).assert_code(0);
    env.stop_server(&mut server);
    env.assert_delivered("f.bin");
    let meta = fs::metadata(env.in_out("f.bin")).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o022),
        (0, 0),
        "the delivered file is the client's, not writable by the user who laid the partial"
    );
}

/// A partial longer than its source, whose record says the source did not
/// change: not resumed, and the message says why (before, it said that the
/// source changed, which it had not).
#[test]
fn a_partial_longer_than_its_unchanged_source_is_named_so_and_the_file_starts_over() {
    let env = TestEnv::new("attack_partial_longer");
    let whole = body(100);
    let src = env.create("f.bin", &whole);
    lay_partial(&env, "f.bin", &body(200), &src);
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-C", "-o", &out(&env), "f.bin"]);
    done.assert_code(0)
        .assert_stdout_lines(&[received_line("f.bin", 100)])
        .check(
            done.stderr.contains(
                "f.bin: the partial file (200 B) is longer than the source (100 B), which did not change; starting over"
            ),
            "says the partial is longer than the source",
        )
        .check(!done.stderr.contains("the source changed"), "not that the source changed");
    env.assert_delivered("f.bin");
    assert_eq!(env.out_entries(), ["f.bin"], "the partial and its record are gone");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// Two `-C` clients of one output name at once, the second for another
/// source of that name: the second finds the first's partial while it is
/// being written. Before, it took that partial's names for a stale partial
/// of another source, removed them and started its own partial under the
/// same name; the first, when done, renamed whatever stood under the
/// partial's name (the second's few MiB of the other source, mode 0600)
/// to the final name and reported its own verified size.
#[test]
fn two_continue_clients_of_one_name_never_deliver_each_others_partial() {
    use crate::util::{assert_same_file, Signal, BIG, BIG_TIMEOUT, MIB};
    let env = TestEnv::new("attack_two_continue_clients");
    let (first, second) =
        (env.create_random("big.bin", BIG, 1), env.create_random("other/big.bin", BIG - MIB, 2));
    let mut server = env.ready_server(&["--persistent"]);
    let mut a = env.client(&["-C", "-o", &out(&env), "big.bin"]);
    env.wait_receiving(&mut a, "big.bin");
    a.signal(Signal::SIGSTOP);
    let mut b = env.client(&["-C", "-o", &out(&env), "other/big.bin"]);
    env.wait_receiving(&mut b, "big.bin");
    b.signal(Signal::SIGSTOP);
    a.signal(Signal::SIGCONT);
    let done = a.finish(BIG_TIMEOUT);
    // Whatever the first says, the file under the name is never the
    // second's partial.
    if done.code() == Some(0) {
        assert_same_file(&first, &env.in_out("big.bin"));
    }
    b.signal(Signal::SIGCONT);
    let later = b.finish(BIG_TIMEOUT);
    done.assert_code(0);
    later.assert_code(0);
    assert_same_file(&second, &env.in_out("big.bin"));
    assert_eq!(env.out_entries(), ["big.bin"], "no partial or record is left");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// Two `-C` clients of one file at once: the second resumed the first's
/// partial while the first still wrote it (two writers of one file, the
/// second cutting it back to where it found it), and the one that finished
/// last found no partial to name and failed. Each now writes its own.
#[test]
fn a_partial_being_written_is_not_resumed_by_a_second_continue_client() {
    use crate::util::{Signal, BIG_TIMEOUT};
    let env = TestEnv::new("attack_continue_live_partial");
    let (mut server, mut a) = env.big_transfer_in_flight(&["--persistent"], &["-C"], 3);
    a.signal(Signal::SIGSTOP);
    let mut b = env.client(&["-C", "-o", &out(&env), "big.bin"]);
    env.wait_receiving(&mut b, "big.bin");
    b.signal(Signal::SIGSTOP);
    a.signal(Signal::SIGCONT);
    let done = a.finish(BIG_TIMEOUT);
    b.signal(Signal::SIGCONT);
    let later = b.finish(BIG_TIMEOUT);
    done.assert_code(0);
    later.assert_code(0);
    env.assert_delivered("big.bin");
    assert_eq!(env.out_entries(), ["big.bin"], "no partial or record is left");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// A `-C` client that finds another client's live partial (its writer
/// holds its `flock()` lock) fetches the file whole and keeps nothing of
/// it if cut off: it says so once on stderr, with `--json` too (whose
/// lines have no place for notes). Before, it said nothing.
#[test]
fn a_continue_client_says_once_that_another_client_writes_the_partial() {
    let env = TestEnv::new("continue_live_partial_said");
    let whole = body(300_000);
    let src = env.create("f.bin", &whole);
    lay_partial(&env, "f.bin", &whole[..100_000], &src);
    let partial = fs::OpenOptions::new().read(true).write(true).open(env.in_out(".shmxfer-partial.f.bin"));
    let held = nix::fcntl::Flock::lock(partial.unwrap(), nix::fcntl::FlockArg::LockExclusiveNonblock);
    let held = held.map_err(|(_, e)| e).expect("the partial's lock, as its writer holds it");
    let mut server = env.ready_server(&["--persistent"]);
    let text = env.run_client(&["-C", "-o", &out(&env), "f.bin"]);
    fs::remove_file(env.in_out("f.bin")).unwrap();
    let json = env.run_client(&["-C", "--json", "-o", &out(&env), "f.bin"]);
    env.stop_server(&mut server);
    let note = "shm_client: f.bin: another shm_client is writing its partial file; \
                fetching it whole, nothing kept if cut off";
    for done in [&text, &json] {
        done.assert_code(0).check(done.stderr.matches(note).count() == 1, "said once");
        assert!(!done.stdout.contains("resumed"), "not resumed\n{done}");
    }
    env.assert_delivered("f.bin");
    let partial = fs::read(env.in_out(".shmxfer-partial.f.bin")).unwrap();
    assert_eq!(partial, whole[..100_000], "the other client's partial is left to it");
    drop(held);
    env.assert_no_leftovers();
}

/// The summary of a run that resumed counts as received only the bytes
/// that arrived in it (the server's log says it sent no more), and its
/// rate is theirs; what the files had kept is said apart. Before, a file
/// resumed at 28.8 MiB of 47.7 MiB was counted whole: `47.7 MiB in 0.41 s
/// (117.7 MiB/s)`, `"received"` the whole file, the rate 2.5 times the true one.
#[test]
fn a_resumed_run_counts_as_received_only_what_arrived_in_it() {
    let env = TestEnv::new("resumed_run_figures");
    let whole = body(300_000);
    let src = env.create("f.bin", &whole);
    env.create("small.txt", b"small\n");
    lay_partial(&env, "f.bin", &whole[..200_000], &src);
    let mut server = env.ready_server(&["--persistent"]);
    let done = env.run_client(&["-C", "--json", "-o", &out(&env), "f.bin", "small.txt"]);
    done.assert_code(0);
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["resumed_at"], 200_000, "{done}");
    let summary = &lines[2]["summary"];
    assert_eq!(
        (&summary["bytes"], &summary["received"], &summary["resumed"]),
        (&300_006.into(), &100_006.into(), &200_000.into()),
        "{done}"
    );
    env.assert_delivered("f.bin");
    fs::remove_file(env.in_out("f.bin")).unwrap();
    lay_partial(&env, "f.bin", &whole[..200_000], &src);
    let done = env.run_client(&["-C", "-o", &out(&env), "f.bin", "small.txt"]);
    env.stop_server(&mut server);
    let summary = done.stderr.lines().find(|l| l.starts_with("shm_client: 2 files: ")).unwrap_or_default();
    let size = shmxfer::programs::human_size;
    done.assert_code(0).check(
        summary.starts_with(&format!("shm_client: 2 files: 2 delivered; {} received in ", size(100_006)))
            && summary.ends_with(&format!(" besides {} resumed, {} delivered", size(200_000), size(300_006))),
        "the summary counts what arrived, and what was resumed apart",
    );
    let log = server.snapshot().stderr;
    assert!(log.contains("f.bin: sent 100000 bytes"), "the server sent the rest only\n{log}");
    env.assert_no_leftovers();
}

/// A resumed file cut off again: the summary's `"received"` is what
/// arrived in this run (the partial's growth), `"resumed"` what it had,
/// `"kept"` what it holds now. Before, `"received"` was all it holds. The
/// file's own line has `"resumed_at"` and `"kept"` (before, only
/// `"bytes": 0` and the words of its message).
#[test]
fn a_resumed_file_cut_off_again_counts_only_what_arrived_in_its_run() {
    use crate::util::{wait_until, BIG, BIG_TIMEOUT, IN_FLIGHT, TIMEOUT};
    let env = TestEnv::new("resumed_cut_off_again");
    let src = env.create_random("big.bin", BIG, 34);
    env.create("small.txt", b"small\n");
    let prefix = 4 << 20;
    lay_partial(&env, "big.bin", &fs::read(&src).unwrap()[..prefix], &src);
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_with(&["-C", "--json"], &["big.bin", "small.txt"]);
    let partial = env.in_out(".shmxfer-partial.big.bin");
    let grows = || fs::metadata(&partial).is_ok_and(|m| m.len() > prefix as u64 + IN_FLIGHT);
    assert!(wait_until(TIMEOUT, || grows() || !client.is_running()) && client.is_running(), "never resumed");
    server.kill();
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4);
    let kept = fs::metadata(&partial).unwrap().len();
    let last = done.stdout.lines().last().unwrap_or_default();
    let summary = &serde_json::from_str::<serde_json::Value>(last).unwrap()["summary"];
    assert_eq!(
        (&summary["kept"], &summary["resumed"], &summary["received"]),
        (&kept.into(), &prefix.into(), &(kept - prefix as u64).into()),
        "{done}"
    );
    // The cut-off file's own line says where it resumed and what it keeps.
    let first = serde_json::from_str::<serde_json::Value>(done.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&first["result"], &first["resumed_at"], &first["kept"]),
        (&"failed".into(), &prefix.into(), &kept.into()),
        "{done}"
    );
    env.cleanup().finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

/// The partial of a `-C` run moved away while it is written, and another
/// file put under its name: the run never gives the final name to what it
/// did not write, nor removes that file. Before, it renamed whatever stood
/// under the partial's name (`IMPOSTOR`, 9 bytes) to the final name and
/// reported the size it had verified (exit 0).
#[test]
fn a_partial_moved_and_replaced_while_written_never_takes_the_final_name() {
    use crate::util::{Signal, BIG_TIMEOUT};
    let env = TestEnv::new("attack_partial_replaced");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &["-C"], 4);
    client.signal(Signal::SIGSTOP);
    let partial = env.in_out(".shmxfer-partial.big.bin");
    fs::rename(&partial, env.in_out("moved")).unwrap();
    fs::write(&partial, b"IMPOSTOR\n").unwrap();
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o600)).unwrap();
    client.signal(Signal::SIGCONT);
    let done = client.finish(BIG_TIMEOUT);
    env.stop_server(&mut server);
    done.assert_code(1).check(
        done.stdout.starts_with("big.bin: failed: ") && done.stdout.contains("was moved or replaced"),
        "the file is not named, and the line says why",
    );
    assert!(!env.in_out("big.bin").exists(), "nothing under the final name: {:?}", env.out_entries());
    assert_eq!(fs::read(&partial).unwrap(), b"IMPOSTOR\n", "what another put there is left to it");
    env.assert_no_leftovers();
}

/// A `-C` run cut off (Ctrl-C) after it asked to resume a file but before
/// the file's first frame came (a server slow to open it) leaves the
/// partial as it was, and says so: `… kept: run it again with
/// --continue`, `"kept"` in the summary. Before, its line said `nothing
/// kept`, and a user who believed it threw away what the next `-C` resumes.
#[test]
fn a_resume_cut_off_before_its_first_frame_says_its_partial_is_kept() {
    use crate::util::{wait_until, Signal, TIMEOUT};
    let env = TestEnv::new("resume_cut_before_start");
    let whole = body(300_000);
    let src = env.create("f.bin", &whole);
    lay_partial(&env, "f.bin", &whole[..100_000], &src);
    // Answers the session, never the request.
    let fake = crate::faults::hostile_server(&env, Vec::new());
    let partial = env.in_out(".shmxfer-partial.f.bin");
    let mut client = env.client(&["-C", "--json", "-o", &out(&env), "f.bin"]);
    // The client holds the partial's lock once it has asked to resume it:
    // seen in /proc/locks, without taking the lock (a probe that took it
    // could make the client find the partial busy and never lock it).
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&partial).unwrap()).to_string();
    let asked = wait_until(TIMEOUT, || {
        let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
        locks.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"FLOCK")
                && fields.get(5).is_some_and(|id| id.rsplit(':').next() == Some(inode.as_str()))
        })
    });
    assert!(asked, "the client never asked to resume\n{}", client.snapshot());
    client.signal(Signal::SIGINT);
    let done = client.finish(TIMEOUT);
    fake.join().unwrap();
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    done.assert_code(130).check(
        lines[0]["message"].as_str().is_some_and(|m| m.ends_with("kept: run it again with --continue"))
            && lines[1]["summary"]["kept"] == 100_000,
        "the partial is said to be kept",
    );
    assert_eq!(fs::read(&partial).unwrap(), whole[..100_000], "the partial is as it was");
    crate::util::assert_no_leftovers(&env.names);
}

/// A `-C` partial moved away while its client writes it, and a second
/// `-C` client of that name cut off with its own partial and record in
/// the names: the first client, which fails (its partial's name no longer
/// names its file), leaves the second's record alone, and a third run
/// resumes the second's partial. Before, the first removed whatever stood
/// under the record's name: the second's partial lost its record and was
/// thrown away by the next run instead of resumed.
#[test]
fn a_sink_removes_its_record_only_while_the_name_still_names_it() {
    use crate::util::{Signal, BIG, BIG_TIMEOUT};
    let env = TestEnv::new("attack_record_taken_over");
    let (mut server, mut first) = env.big_transfer_in_flight(&["--persistent"], &["-C"], 5);
    first.signal(Signal::SIGSTOP);
    fs::rename(env.in_out(".shmxfer-partial.big.bin"), env.in_out("moved")).unwrap();
    let mut second = env.client(&["-C", "-o", &out(&env), "big.bin"]);
    env.wait_receiving(&mut second, "big.bin");
    second.signal(Signal::SIGSTOP);
    second.signal(Signal::SIGINT);
    second.signal(Signal::SIGCONT);
    second.finish(BIG_TIMEOUT).assert_code(130);
    let record = env.in_out(".shmxfer-partial.big.bin.source");
    assert!(record.exists(), "the second client kept its record: {:?}", env.out_entries());
    first.signal(Signal::SIGCONT);
    first.finish(BIG_TIMEOUT).assert_code(1);
    assert!(record.exists(), "the first client left the second's record: {:?}", env.out_entries());
    let third = env.run_client(&["-C", "-o", &out(&env), "big.bin"]);
    env.stop_server(&mut server);
    third.assert_code(0).check(third.stdout.contains("(resumed at "), "the second's partial is resumed");
    assert_eq!(fs::metadata(env.in_out("big.bin")).unwrap().len(), BIG);
    fs::remove_file(env.in_out("moved")).unwrap();
    env.assert_no_leftovers();
}
