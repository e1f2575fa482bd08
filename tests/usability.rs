//! What a new user meets: figures that agree with each other, the run's
//! progress in bytes, an output directory made for them, completions that
//! offer what `--help` shows, a server that waits for a cleanup, messages
//! that say what to do next.

use shmxfer::programs::human_size;

use crate::util::{
    accepting, as_nobody, command, s, sources, wait_child, wait_for_queue, wait_until, Proc, Signal, TestEnv,
    BIG, BIG_TIMEOUT, CLIENT, MIB, NOBODY, SERVER, TIMEOUT,
};

/// Hidden flags (`--slots`, `--attach-timeout`, `--collect-every`) are for
/// measurements and tests: `--help` and `--man` leave them out, and so do
/// the completions, while every flag `--help` shows is offered.
#[test]
fn completions_offer_no_hidden_flag() {
    let hidden = [(CLIENT, &["--slots", "--attach-timeout"][..]), (SERVER, &["--collect-every"][..])];
    let shown = [
        (CLIENT, &["--out-dir", "--stall-timeout", "--remote-client"][..]),
        (SERVER, &["--root", "--persistent"][..]),
    ];
    for shell in ["bash", "zsh"] {
        for ((bin, hidden), (_, shown)) in hidden.iter().zip(&shown) {
            let mut cmd = command(bin, None);
            cmd.args(["--completions", shell]);
            let done = Proc::spawn(cmd, None).finish(TIMEOUT);
            done.assert_code(0);
            for flag in *hidden {
                done.check(
                    !done.stdout.contains(flag),
                    &format!("{shell}: the hidden {flag} is not offered"),
                );
            }
            for flag in *shown {
                done.check(done.stdout.contains(flag), &format!("{shell}: {flag} is offered"));
            }
        }
    }
}

/// A default server stops after its last client (the assignment's flow),
/// even one that only asked for a missing name: its start line says how to
/// keep it serving, and the next client's "no server" says why there may
/// be none.
#[test]
fn a_default_server_and_the_client_that_finds_none_name_persistent() {
    let env = TestEnv::new("default_server_names_persistent");
    env.create("a.txt", b"a\n");
    let mut server = env.ready_server(&[]);
    env.fetch(&["missing.txt"]).assert_code(1);
    let stopped = server.finish(TIMEOUT);
    stopped.assert_code(0);
    let start = stopped.stderr.lines().next().unwrap_or_default().to_owned();
    stopped.check(
        start.contains("until the last client leaves")
            && start.contains("--persistent keeps a server serving"),
        "the start line says how to keep it serving",
    );
    let none = env.fetch_with(&["--wait", "0"], &["a.txt"]).finish(TIMEOUT);
    none.assert_code(3).check(
        none.stderr.contains("no server on queue")
            && none.stderr.contains("a server started without --persistent stops after its last client"),
        "the client's message says that a default server stops after its last client",
    );
    // A persistent server needs no such word.
    let mut server = env.ready_server(&["--persistent"]);
    env.stop_server(&mut server);
    let start = server.snapshot().stderr.lines().next().unwrap_or_default().to_owned();
    assert!(start.contains("persistent") && !start.contains("--persistent"), "{start}");
    env.assert_no_leftovers();
}

/// Root may open another user's lock, and still trusts none: a root client
/// of a server of user nobody ends with exit 3 naming whose server it is
/// and what to do (run as that user, or run a server of its own), in words
/// for root: `belongs to nobody (uid 65534); root uses no other user's
/// server`. Before, it was told the lock belonged `not to you or root`.
#[test]
#[cfg_attr(not(tests_as_root), ignore = "needs root: starts a server as another user (setpriv)")]
fn a_root_client_of_another_users_server_is_told_whose_it_is_and_what_to_do() {
    let env = TestEnv::new("root_client_other_users_server");
    env.create("a.txt", b"a\n");
    env.open_to_others();
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
    let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(NOBODY))
        .ok()
        .flatten()
        .map_or_else(|| format!("'#{NOBODY}'"), |u| u.name);
    let done = env.fetch_with(&["--wait", "0"], &["a.txt"]).finish(TIMEOUT);
    done.assert_code(3)
        .check(done.stderr.contains("not trusted as a server's lock"), "the refusal as before")
        .check(
            done.stderr
                .contains(&format!("belongs to {user} (uid {NOBODY}); root uses no other user's server;")),
            "in words for root",
        )
        .check(!done.stderr.contains("not to you or root"), "not as to another user")
        .check(done.stderr.contains(&format!("runs as {user}")), "whose server it is")
        .check(done.stderr.contains(&format!("sudo -u {user} shm_client")), "how to use it")
        .check(done.stderr.contains("a server of your own") && done.stderr.contains("--queue"), "or another");
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

/// `-o LINK` where LINK is a symbolic link to a missing directory (or
/// LINK/sub, or `-O LINK/x`) says what LINK is, before any request: exit 1,
/// nothing made. Before, `cannot create it: File exists (os error 17)`,
/// which a person who sees no LINK in `ls` cannot act on.
#[test]
fn an_output_directory_that_is_a_dangling_symlink_is_named_as_one() {
    let env = TestEnv::new("output_directory_dangling_link");
    let (link, gone) = (env.tmp().join("link"), env.tmp().join("gone"));
    std::os::unix::fs::symlink(&gone, &link).unwrap();
    let link = link.to_str().unwrap();
    let what = format!("a symbolic link to a missing directory ({})", gone.display());
    let done = env.run_client(&["--wait", "0", "-o", link, "a.txt"]);
    done.assert_code(1).check(
        done.stderr.contains(&format!("shm_client: error: output directory {link}: {what}; ")),
        "says what the link is",
    );
    let below = format!("{link}/sub");
    let done = env.run_client(&["--wait", "0", "-o", &below, "a.txt"]);
    done.assert_code(1)
        .check(done.stderr.contains(&format!("output directory {below}: {link} is {what}; ")), "-o LINK/sub");
    let dest = format!("{link}/x.txt");
    let done = env.run_client(&["--wait", "0", "-O", &dest, "a.txt"]);
    done.assert_code(1).check(done.stderr.contains(&format!("-O {dest}: {link}: {what}; ")), "-O LINK/x");
    assert!(!gone.exists(), "nothing made through the link");
    crate::util::assert_no_leftovers(&env.names);
}

/// `-o DIR` that does not exist is made with its parents, as `mkdir -p`
/// (`wget -P`, `curl --create-dirs`), with the modes the umask leaves;
/// a person at a terminal is told, a script reads nothing more. Every other
/// check of `-o` stays.
#[test]
fn a_missing_output_directory_is_created_and_a_terminal_is_told() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new("missing_output_directory_created");
    env.create("a.txt", b"a\n");
    let mut server = env.ready_server(&["--persistent"]);
    // Run under `umask 027`, so that the mode is known.
    let with_umask = |args: &[&str]| {
        let client = env.client_cmd(args);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("umask 027; exec \"$@\"")
            .arg("sh")
            .arg(client.get_program())
            .args(client.get_args());
        cmd.env_remove("SHMXFER_QUEUE").current_dir(env.cwd()).stdin(std::process::Stdio::null());
        cmd
    };
    let deep = env.tmp().join("new/deeper");
    let done =
        Proc::spawn(with_umask(&["-o", deep.to_str().unwrap(), "a.txt"]), Some(&env.names)).finish(TIMEOUT);
    done.assert_code(0).check(done.stderr.is_empty(), "nothing said where no one reads it");
    assert_eq!(std::fs::read(deep.join("a.txt")).unwrap(), b"a\n");
    for dir in [env.tmp().join("new"), deep.clone()] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o750, "{} made with the umask's mode", dir.display());
    }
    // On a terminal: said.
    let other = env.tmp().join("other");
    let cmd = env.client_cmd(&["-o", other.to_str().unwrap(), "a.txt"]);
    let done = Proc::spawn_on_terminal(cmd, Some(&env.names), 100).finish(TIMEOUT);
    done.assert_code(0).check(
        done.stderr.contains(&format!("shm_client: created the output directory {}", other.display())),
        "a terminal is told",
    );
    assert_eq!(std::fs::read(other.join("a.txt")).unwrap(), b"a\n");
    // A regular file is still no directory.
    let file = env.in_root("a.txt");
    let done = env.run_client(&["-o", file.to_str().unwrap(), "a.txt"]);
    done.assert_code(1).check(done.stderr.contains("not a directory; name a directory with -o"), "a file");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The lock of a server of `env` killed with SIGKILL, held as
/// `shm_server --cleanup` holds it to remove it (an OFD write lock on the
/// lock object), made here by hand so that it lasts: its path, the hold,
/// which ends when it is dropped, and the dead server (whose drop, the
/// last of its names' processes, would remove the lock).
fn dead_servers_lock_held_as_a_cleanup_holds_it(env: &TestEnv) -> (std::path::PathBuf, std::fs::File, Proc) {
    use std::os::fd::AsRawFd;
    let mut dead = env.ready_server(&["--persistent"]);
    dead.kill();
    let lock_path = std::path::Path::new("/dev/shm").join(format!("{}.lock", env.names.stem()));
    let lock =
        std::fs::OpenOptions::new().read(true).write(true).open(&lock_path).expect("the dead server's lock");
    // SAFETY: `flock` is plain data; all zeroes is a valid value of it.
    let mut whole: libc::flock = unsafe { std::mem::zeroed() };
    whole.l_type = libc::F_WRLCK as libc::c_short;
    whole.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: the descriptor is open for as long as `lock` lives, and
    // `whole` is a valid `flock` the call only reads.
    let held = unsafe { libc::fcntl(lock.as_raw_fd(), libc::F_OFD_SETLK, &whole) };
    assert_eq!(held, 0, "lock {}: {}", lock_path.display(), std::io::Error::last_os_error());
    (lock_path, lock, dead)
}

/// A server started while `shm_server --cleanup` holds a dead server's lock
/// (to remove it and what the server left) waits for the cleanup, which
/// takes milliseconds, and starts; it does not take the cleanup for a live
/// server.
#[test]
fn a_server_started_beside_a_cleanup_waits_for_it_and_starts() {
    let env = TestEnv::new("server_waits_for_cleanup");
    env.create("a.txt", b"a\n");
    let (lock_path, lock, _dead) = dead_servers_lock_held_as_a_cleanup_holds_it(&env);

    let mut server = env.server(&["--persistent"]);
    let waits = crate::util::holds_for(std::time::Duration::from_millis(500), || server.is_running());
    assert!(waits, "the server waits while the cleanup holds the lock\n{}", server.snapshot());
    // The cleanup removes the dead server's lock and lets it go.
    std::fs::remove_file(&lock_path).unwrap();
    drop(lock);
    wait_for_queue(&env.names, &mut server);
    env.fetch(&["a.txt"]).assert_code(0);
    env.assert_delivered("a.txt");
    env.stop_server(&mut server);
    let log = server.snapshot().stderr;
    assert!(!log.contains("another server"), "{log}");
    env.assert_no_leftovers();
}

/// A cleanup that never lets go of a dead server's lock (stopped with
/// SIGSTOP, say): the server started beside it gives up after its wait and
/// says so, naming neither a server that is not there nor `--stop-server`,
/// which would find none. Before, `another server is serving queue Q; stop
/// it with shm_client --stop-server`.
#[test]
fn a_server_beside_a_cleanup_that_never_ends_says_what_holds_the_lock() {
    let env = TestEnv::new("server_beside_stuck_cleanup");
    let (_lock_path, _lock, _dead) = dead_servers_lock_held_as_a_cleanup_holds_it(&env);
    let done = env.server(&["--persistent"]).finish(TIMEOUT);
    done.assert_code(1)
        .check(!done.stderr.contains("another server"), "no other server is serving")
        .check(!done.stderr.contains("--stop-server"), "--stop-server would find no server")
        .check(done.stderr.contains("that is gone, is still held by another process"), "says what holds it")
        .check(done.stderr.contains("--cleanup"), "names the cleanup");
}

/// The size of the largest file in `dir`: a kept partial file beside its
/// small record of the source.
fn largest_file_in(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// A file cut off with `-C`: its line says one figure, the bytes kept
/// (what the partial file on disk holds), and the summary counts them as
/// received and kept, not `0 B in …`.
#[test]
fn a_file_cut_off_with_continue_and_the_summary_give_the_kept_size() {
    let env = TestEnv::new("cut_off_figures_agree");
    env.create_random("big.bin", BIG, 31);
    env.create("small.txt", b"small\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_with(&["-C"], &["big.bin", "small.txt"]);
    env.wait_receiving(&mut client, "big.bin");
    server.kill();
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4);
    let kept = human_size(largest_file_in(env.out()));
    let line = done.stdout.lines().next().unwrap_or_default();
    done.check(
        line.starts_with(&format!("big.bin: failed: cut off after {kept} of {}: ", human_size(BIG)))
            && line.ends_with(&format!("; {kept} kept: run it again with --continue")),
        &format!("one figure, the bytes kept ({kept}), in the line of the file cut off"),
    );
    let summary = done.stderr.lines().find(|l| l.starts_with("shm_client: 2 files: ")).unwrap_or_default();
    done.check(
        summary.contains(&format!("; {kept} received in "))
            && summary.ends_with(&format!(", 0 B of it delivered, {kept} kept")),
        "the summary counts the bytes that arrived and were kept",
    );
    env.cleanup().finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

/// A file cut off without `-C`: the line and the `--json` summary say how
/// far it got, the bytes that arrived (never `0 B` once bytes came).
#[test]
fn a_file_cut_off_says_how_far_it_got_and_the_summary_counts_it() {
    let env = TestEnv::new("cut_off_counts_what_arrived");
    env.create_random("big.bin", BIG, 32);
    env.create("small.txt", b"small\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mut client = env.fetch_with(&["--json"], &["big.bin", "small.txt"]);
    env.wait_receiving(&mut client, "big.bin");
    server.kill();
    let done = client.finish(BIG_TIMEOUT);
    done.assert_code(4);
    let lines: Vec<serde_json::Value> =
        done.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let summary = &lines.last().expect("a summary")["summary"];
    let received = summary["received"].as_u64().expect("the bytes received");
    done.check(received > 0, "bytes arrived before the server died")
        .check(summary["bytes"] == 0 && summary.get("kept").is_none(), "none delivered, none kept");
    let message = lines[0]["message"].as_str().unwrap_or_default();
    done.check(
        message.starts_with(&format!("cut off after {} of {}: ", human_size(received), human_size(BIG)))
            && message.ends_with("; nothing kept"),
        "the line says as far as the summary",
    );
    assert!(env.out_entries().is_empty(), "nothing kept: {:?}", env.out_entries());
    // What the killed server left, its next start or a cleanup removes.
    env.cleanup().finish(TIMEOUT).assert_code(0);
    env.assert_no_leftovers();
}

/// An upload cut off (its server killed): the file's line says how far it
/// got, and the summary counts those bytes as sent, in text and `--json`,
/// never `0 B in …`; the error line speaks of no partial file (it said
/// `nothing partial is kept (without -C)`, a fetch's words).
#[test]
fn an_upload_cut_off_says_how_far_it_got_and_the_summary_counts_it() {
    let env = TestEnv::new("upload_cut_off_counts_what_was_sent");
    let src = sources(&env);
    // Sparse, and large enough to be in flight when the server dies.
    let huge = src.join("huge");
    std::fs::File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    let small = src.join("small.txt");
    std::fs::write(&small, b"small\n").unwrap();
    for json in [false, true] {
        let mut server = accepting(&env, &[]);
        let mut args = vec!["--put", s(&huge), s(&small)];
        if json {
            args.push("--json");
        }
        let mut client = env.client(&args);
        let receiving =
            wait_until(TIMEOUT, || server.is_receiving_in(env.out(), "huge") || !client.is_running());
        assert!(receiving && client.is_running(), "the upload never got under way\n{}", client.snapshot());
        server.kill();
        let done = client.finish(BIG_TIMEOUT);
        done.assert_code(4).check(
            !done.stderr.contains("partial") && done.stderr.contains("; run it again once the server runs"),
            "an upload keeps no partial file, and its error line says no fetch's words",
        );
        if json {
            let lines: Vec<serde_json::Value> =
                done.stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
            let sent = lines[0]["bytes"].as_u64().unwrap_or_default();
            let summary = &lines.last().expect("a summary")["summary"];
            done.check(sent > 0, "bytes left before the server died").check(
                summary["received"] == sent && summary["bytes"] == 0,
                &format!("the summary counts the {sent} bytes sent, none stored: {summary}"),
            );
        } else {
            let line = done.stdout.lines().next().unwrap_or_default();
            let sent = line
                .split_once("cut off after ")
                .and_then(|(_, rest)| rest.split_once(&format!(" of {}: ", human_size(1 << 40))))
                .map(|(sent, _)| sent.to_owned())
                .unwrap_or_default();
            let summary =
                done.stderr.lines().find(|l| l.starts_with("shm_client: 2 files: ")).unwrap_or_default();
            done.check(!sent.is_empty() && sent != "0 B", "the line says how far the file got").check(
                summary.contains(&format!("; {sent} sent in ")) && summary.ends_with(", 0 B of it delivered"),
                "the summary counts the bytes sent as the line does",
            );
        }
        env.cleanup().finish(TIMEOUT).assert_code(0);
    }
    env.assert_no_leftovers();
}

/// `--status` of a session that sent a burst (the ring, a pipe's buffer)
/// and waits for a reader that reads nothing: its rate is its bytes over
/// the file's time, not 0 B/s (the burst took no measurable time) nor the
/// burst's speed.
#[test]
fn status_shows_a_blocked_session_s_rate_over_its_time() {
    let env = TestEnv::new("status_rate_of_a_blocked_session");
    env.create_random("big.bin", 8 * MIB, 33);
    let mut server = env.ready_server(&["--persistent"]);
    // A reader that never reads: the client fills the pipe and waits.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = env.client_cmd(&["--stdout", "big.bin"]);
    cmd.stdout(writer).stderr(std::process::Stdio::null());
    let mut blocked = cmd.spawn().unwrap();
    let mut session = serde_json::Value::Null;
    let waited = wait_until(TIMEOUT, || {
        let done = env.run_client(&["--status", "--json"]);
        let json: serde_json::Value = serde_json::from_str(done.stdout.trim()).unwrap_or_default();
        session = json["sessions"][0].clone();
        session["sent"].as_u64().is_some_and(|s| s > 0)
            && session["idle_ms"].as_u64().is_some_and(|i| i >= 300)
    });
    assert!(waited, "the session sent a burst and waits: {session}");
    let (sent, file_ms) = (session["sent"].as_u64().unwrap(), session["file_ms"].as_u64().unwrap());
    assert_eq!(
        session["rate"].as_u64(),
        Some(sent * 1000 / file_ms),
        "bytes over the file's time: {session}"
    );
    let text = env.run_client(&["--status"]);
    text.assert_code(0).check(!text.stdout.contains(" 0 B/s"), "no 0 B/s for a session that sent bytes");
    drop(reader);
    assert!(wait_child(&mut blocked, TIMEOUT).is_some(), "the client ends once its reader is gone");
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// On a terminal, the run's line counts bytes done of all the bytes (and
/// files done of all), as `rsync --info=progress2`: a tree's sizes come
/// from the server's listing, so the total is there from the start, before
/// the first file is done (it grew with each file that started).
/// Elsewhere nothing of it is drawn.
#[test]
fn the_run_s_progress_counts_bytes_of_the_total_on_a_terminal_only() {
    let env = TestEnv::new("run_progress_in_bytes");
    let sizes = [3 * MIB, MIB, 10];
    for (i, size) in sizes.iter().enumerate() {
        env.create_random(&format!("tree/f{i}.bin"), *size, 40 + i as u64);
    }
    let total = human_size(sizes.iter().sum());
    let mut server = env.ready_server(&["--persistent"]);
    let out = env.out().to_str().unwrap().to_owned();
    let cmd = env.client_cmd(&["-o", &out, "-r", "tree"]);
    let done = Proc::spawn_on_terminal(cmd, Some(&env.names), 120).finish(TIMEOUT);
    done.assert_code(0)
        .check(done.stderr.contains(&format!(" of {total}, 0/3 files")), "the tree's total from the start")
        .check(done.stderr.contains("/3 files"), "and its files");
    let piped = env.run_client(&["-o", &out, "-r", "tree"]);
    piped.assert_code(0).check(
        !piped.stderr.contains(&format!(" of {total}, ")) && !piped.stderr.contains('\x1b'),
        "no progress where no one watches",
    );
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// An upload's run line has its total from the start as a fetch's has:
/// the local files' sizes are known from the plan, before a byte is sent,
/// whether a tree's (`--put -r`) or files named. Before, the total grew
/// file by file (`0 B of 3.0 MiB, 0/3 files` for 4.0 MiB).
#[test]
fn an_upload_s_progress_has_the_run_s_total_from_the_start() {
    let env = TestEnv::new("put_progress_total");
    let src = sources(&env);
    let sizes = [3 * MIB, MIB, 10];
    let mut named = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let file = src.join(format!("tree/f{i}.bin"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        crate::util::write_random_file(&file, *size, 50 + i as u64);
        named.push(s(&file).to_owned());
    }
    let total = human_size(sizes.iter().sum());
    let mut server = accepting(&env, &[]);
    let tree = src.join("tree");
    let named: Vec<&str> = named.iter().map(String::as_str).collect();
    let runs = [vec!["--put", "-r", s(&tree), "--to", "t"], [&["--put", "--to", "n"][..], &named].concat()];
    for args in runs {
        let done = Proc::spawn_on_terminal(env.client_cmd(&args), Some(&env.names), 120).finish(TIMEOUT);
        done.assert_code(0).check(
            done.stderr.contains(&format!(" of {total}, 0/3 files")),
            "the run's total before the first file",
        );
    }
    env.stop_server(&mut server);
    env.assert_no_leftovers();
}

/// The man pages are the reference: each program's `--man` names every
/// long flag its `--help` shows (the two come from one definition, and
/// this keeps it so).
#[test]
fn man_pages_name_every_flag_help_shows() {
    for bin in [CLIENT, SERVER] {
        let run = |arg: &str| {
            let out = std::process::Command::new(bin).arg(arg).output().unwrap();
            assert!(out.status.success(), "{bin} {arg}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let (help, man) = (run("--help"), run("--man"));
        let flags: std::collections::BTreeSet<&str> = help
            .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
            .filter(|w| {
                w.starts_with("--")
                    && w.len() > 2
                    && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .collect();
        assert!(flags.len() > 10, "{bin}: flags read from --help: {flags:?}");
        // roff writes each '-' of a flag as '\-'.
        let man = man.replace("\\-", "-");
        let missing: Vec<&&str> = flags.iter().filter(|f| !man.contains(**f)).collect();
        assert!(missing.is_empty(), "{bin} --man lacks {missing:?}");
    }
}
