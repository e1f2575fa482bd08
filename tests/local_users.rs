//! Another local user: one who squats the names of our objects, plants a
//! FIFO or a lock where ours belong, floods the queue, runs the server we
//! reach, or is the client of ours. Nobody blocks, nothing of theirs is
//! taken or removed, and each refusal says whose object it is.
//!
//! Another user is uid/gid 65534 through `setpriv`; the tests that need one
//! print "skipped: …" and return, or do without that part, when they cannot
//! have it.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    as_nobody, assert_client_objects_gone, assert_exit_within, assert_no_leftovers, assert_no_server,
    assert_out_empty, fill_queue, foreign_fifo, hold_names, other_user_or_skip,
    persistent_server_of_another_user, root_or_skip, run_ok, session_entries, shm_path, stop, terminate,
    wait_until, Proc, Signal, TestEnv, NOBODY, SLACK, TIMEOUT,
};

/// A thread that polls `/dev/shm` and, as soon as `target(entry)` gives a
/// name for an entry it sees, creates that name first. Stops when dropped.
struct Squatter {
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    created: Arc<std::sync::Mutex<Vec<PathBuf>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Squatter {
    fn start(target: impl Fn(&str) -> Option<PathBuf> + Send + 'static) -> Squatter {
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let created = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, h, c) = (Arc::clone(&stop), Arc::clone(&hits), Arc::clone(&created));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(dir) = fs::read_dir("/dev/shm") else { continue };
                for entry in dir.flatten() {
                    let name = entry.file_name();
                    let Some(path) = name.to_str().and_then(&target) else { continue };
                    let made = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
                    if made.is_ok() {
                        h.fetch_add(1, Ordering::SeqCst);
                        c.lock().unwrap().push(path);
                    }
                }
            }
        });
        Squatter { stop, hits, created, thread: Some(thread) }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Squatter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for p in self.created.lock().unwrap().drain(..) {
            let _ = fs::remove_file(p);
        }
    }
}

#[test]
fn clients_succeed_although_a_local_user_squats_their_semaphore_names() {
    const CLIENTS: usize = 40;
    let env = TestEnv::new("rt_squat_sem");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let region_prefix = format!("{}.", env.names.stem());
    let lock = format!("{}.lock", env.names.stem());
    let squatter = Squatter::start(move |entry| {
        (entry.starts_with(&region_prefix) && entry != lock)
            .then(|| PathBuf::from(format!("/dev/shm/sem.{entry}.items")))
    });
    let mut failures = Vec::new();
    for _ in 0..CLIENTS {
        let done = env.fetch(&["hello.txt"]);
        if done.code() != Some(0) {
            failures.push(done);
        }
    }
    let hits = squatter.hits();
    drop(squatter);
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
    if let Some(first) = failures.first() {
        panic!(
            "{} of {CLIENTS} clients failed (the squatter took {hits} names); the first:\n{first}",
            failures.len()
        );
    }
}

/// One start of a server while a thread creates its queue as soon as its
/// lock appears: whether the squatter got the queue first, and what the
/// server did (still running or not).
fn start_with_queue_squatter(env: &TestEnv) -> (bool, Proc) {
    let lock_path = PathBuf::from(format!("/dev/shm/{}.lock", env.names.stem()));
    let stop = Arc::new(AtomicBool::new(false));
    let squatted = Arc::new(AtomicBool::new(false));
    let (s, q) = (Arc::clone(&stop), Arc::clone(&squatted));
    let queue = env.names.queue().to_owned();
    let squatter = thread::spawn(move || {
        // Once the lock is there, create the queue again whenever it is
        // gone (the server removes a queue of its own user it takes for
        // stale), until the server runs or failed.
        while !s.load(Ordering::Relaxed) {
            if lock_path.exists()
                && posixmq::OpenOptions::readwrite().create_new().mode(0o600).open(queue.as_str()).is_ok()
            {
                q.store(true, Ordering::SeqCst);
            }
        }
    });
    let mut server = env.server(&["--persistent"]);
    let _ = wait_until(SLACK, || server.stderr().contains("serving ") || !server.is_running());
    stop.store(true, Ordering::Relaxed);
    squatter.join().unwrap();
    (squatted.load(Ordering::SeqCst), server)
}

#[test]
fn server_whose_queue_is_squatted_refuses_naming_the_owner_and_leaves_nothing() {
    const ROUNDS: usize = 60;
    let env = TestEnv::new("rt_squat_queue");
    let mut squats = 0;
    for round in 0..ROUNDS {
        let (squat, mut server) = start_with_queue_squatter(&env);
        squats += usize::from(squat);
        if server.is_running() {
            // It runs, with a queue of its own: a success.
            terminate(&mut server);
            let _ = posixmq::remove_queue(env.names.queue());
            assert_no_leftovers(&env.names);
            continue;
        }
        let done = server.snapshot();
        let lock_left = env.names.lock_exists();
        let _ = posixmq::remove_queue(env.names.queue());
        done.assert_code(1).check(!lock_left, "the failed server left its lock").check(
            done.stderr.contains("belongs to")
                || done.stderr.contains("uid")
                || done.stderr.contains("owned"),
            &format!("round {round}: the refusal says who owns the queue"),
        );
        assert_no_leftovers(&env.names);
    }
    println!("the squatter got the queue first {squats} time(s) in {ROUNDS} starts");
}

/// Not a file under our names: another user puts a FIFO where the server's lock belongs. Nobody
/// may block on it: the client reports no server at once, a server refuses
/// the queue, and the FIFO is left alone.
#[test]
fn fifo_in_place_of_the_lock_blocks_neither_client_nor_server() {
    let env = TestEnv::new("fifo_lock");
    let _hold = hold_names(&env);
    env.create("hello.txt", b"hello\n");
    let fifo = foreign_fifo(&format!("{}.lock", env.names.stem()));
    for wait in ["0", "1"] {
        let done = env.fetch_with(&["--wait", wait], &["hello.txt"]).finish(TIMEOUT);
        assert_no_server(&done, Duration::from_secs(1) + SLACK);
    }
    let done = env.server(&[]).finish(TIMEOUT);
    assert_exit_within(&done, 1, SLACK);
    done.check(done.stderr.contains(".lock"), "the server names the object it refuses");
    let kept = fs::symlink_metadata(&fifo).expect("the FIFO is left alone");
    assert!(kept.file_type().is_fifo(), "the FIFO was replaced");
    fs::remove_file(&fifo).unwrap();
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}

/// Not a file under our names: an Open message naming a FIFO (made by another user) does not
/// block the server, which keeps serving.
#[test]
fn open_message_naming_a_fifo_does_not_block_the_server() {
    let env = TestEnv::new("open_names_fifo");
    let _hold = hold_names(&env);
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let pid = std::process::id();
    let hex = "fedcba9876543210";
    let mut fifos = Vec::new();
    for name in session_entries(&env.names, pid, hex) {
        fifos.push(foreign_fifo(&name));
    }
    let region = format!("{}.{pid}.{hex}", env.names.queue());
    let open = shmxfer::testing::protocol::Command::Open {
        client_pid: pid,
        region_size: 4096,
        items: format!("{region}.items"),
        spaces: format!("{region}.spaces"),
        region,
        kind: shmxfer::testing::protocol::SessionKind::Transfer,
    }
    .encode()
    .unwrap();
    let mq = posixmq::OpenOptions::writeonly().open(env.names.queue()).expect("open queue");
    mq.send(0, &open).expect("send open");
    let done = env.fetch_with(&["--wait", "5"], &["hello.txt"]).finish(Duration::from_secs(20));
    done.assert_code(0);
    env.assert_delivered("hello.txt");
    stop(&env, &mut server);
    for fifo in &fifos {
        let _ = fs::remove_file(fifo);
    }
    assert_no_leftovers(&env.names);
}

/// Whose lock and queue: another user creates the lock object (mode 0666) before the
/// server starts. The server must not adopt it: it refuses, naming it, and
/// leaves it alone.
#[test]
fn server_never_adopts_a_lock_another_user_created() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("foreign_lock");
    let _hold = hold_names(&env);
    let lock = shm_path(&format!("{}.lock", env.names.stem()));
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("umask 0 && : > \"$1\"").arg("sh").arg(&lock);
    run_ok(as_nobody(&cmd));
    assert_eq!(fs::metadata(&lock).unwrap().uid(), NOBODY);
    let done = env.server(&["--persistent"]).finish(TIMEOUT);
    assert_exit_within(&done, 1, SLACK);
    done.check(done.stderr.contains(".lock"), "the server names the object it refuses");
    let meta = fs::metadata(&lock).expect("the foreign lock is left alone");
    assert_eq!(meta.uid(), NOBODY, "the foreign lock was replaced");
    assert!(!env.names.queue_exists(), "the server created its queue beside a foreign lock");
    fs::remove_file(&lock).unwrap();
    assert_no_leftovers(&env.names);
}

/// Whose lock and queue: a root client never talks to another user's queue: it says whose
/// it is and exits 3 within its `--wait`.
#[test]
fn root_client_does_not_talk_to_another_users_queue() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("foreign_queue");
    env.create("hello.txt", b"hello\n");
    let mut server = persistent_server_of_another_user(&env);
    let done = env.fetch_with(&["--wait", "2"], &["hello.txt"]).finish(TIMEOUT);
    assert_no_server(&done, Duration::from_secs(2) + SLACK);
    done.check(
        done.stderr.contains(&NOBODY.to_string()) || done.stderr.contains("nobody"),
        "the client says whose queue it is",
    );
    assert_out_empty(&env);
    terminate(&mut server);
    assert_no_leftovers(&env.names);
}

/// Stopped server, one that belongs to another user.
#[test]
fn full_queue_of_another_users_stopped_server_ends_the_client_within_its_wait() {
    if !root_or_skip() {
        return;
    }
    let env = TestEnv::new("full_queue_foreign_server");
    env.create("hello.txt", b"hello\n");
    let mut server = persistent_server_of_another_user(&env);
    server.signal(Signal::SIGSTOP);
    assert!(fill_queue(&env.names) > 0, "the queue took no message");
    // Either the queue stays full for --wait, or the client refuses another
    // user's queue at once: never a wait without a bound.
    let done = env.fetch_with(&["--wait", "2"], &["hello.txt"]).finish(TIMEOUT);
    assert_no_server(&done, Duration::from_secs(2) + SLACK);
    assert_out_empty(&env);
    assert_client_objects_gone(&env.names);
    terminate(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn client_of_another_users_server_exits_3_saying_whose_server_it_is() {
    if !other_user_or_skip("client run as nobody") {
        return;
    }
    let env = TestEnv::new("rt_foreign_client");
    env.create("hello.txt", b"hello\n");
    env.open_to_others();
    let mut server = env.ready_server(&["--persistent"]);
    let mut cmd = env.client_cmd(&["-o", env.out().to_str().unwrap(), "--wait", "2", "hello.txt"]);
    cmd.current_dir(env.cwd());
    let done = Proc::spawn(as_nobody(&cmd), Some(&env.names)).finish(TIMEOUT);
    terminate(&mut server);
    done.assert_code(3).check(
        done.stderr.contains("root") || done.stderr.contains("uid 0"),
        "the client says whose server it is",
    );
    assert_out_empty(&env);
    assert_no_leftovers(&env.names);
}

#[test]
fn flood_of_open_messages_gives_a_bounded_log_and_the_server_keeps_serving() {
    use shmxfer::testing::protocol::{Command as Msg, SessionKind};
    let env = TestEnv::new("rt_open_flood");
    env.create("hello.txt", b"hello\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mq = posixmq::OpenOptions::writeonly().open(env.names.queue()).expect("open the queue");
    let pid = std::process::id();
    let started = Instant::now();
    for i in 0..3000u32 {
        let region = format!("{}.{pid}.{:016x}", env.names.queue(), i);
        let (items, spaces) = (format!("{region}.items"), format!("{region}.spaces"));
        let msg = Msg::Open {
            client_pid: pid,
            region_size: 4096,
            region,
            items,
            spaces,
            kind: SessionKind::Transfer,
        };
        mq.send(0, &msg.encode().expect("encode")).expect("send");
        if started.elapsed() > Duration::from_secs(20) {
            panic!("sending 3000 messages took over 20 s (sent {i})\n{}", server.snapshot());
        }
    }
    let t = Instant::now();
    let done = env.fetch_with(&["--wait", "10"], &["hello.txt"]).finish(TIMEOUT);
    let served_in = t.elapsed();
    env.stop_server(&mut server);
    let log = server.snapshot();
    let warnings = log.stderr.lines().count();
    done.assert_code(0);
    assert!(served_in <= Duration::from_secs(5), "the client was served after {served_in:?}\n{done}");
    assert!(warnings <= 100, "the server logged {warnings} lines for the flood\n{log}");
    assert_no_leftovers(&env.names);
}

/// A server started by one user on a queue whose dead server was another
/// user's (its lock left, mode 0600, which this user may not open) says
/// whose lock it is and how its owner cleans up after it, exit 1, and
/// leaves it alone. Before, a bare `shm_open …: Permission denied`.
#[test]
fn a_server_beside_another_users_dead_lock_says_whose_it_is_and_what_to_do() {
    if !other_user_or_skip("a server run as nobody") {
        return;
    }
    let env = TestEnv::new("foreign_dead_lock");
    env.open_to_others();
    let mut dead = env.ready_server(&["--persistent"]);
    dead.kill();
    let lock = shm_path(&format!("{}.lock", env.names.stem()));
    assert!(fs::metadata(&lock).is_ok(), "the killed server left its lock");
    let mut cmd = crate::util::command(crate::util::SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).current_dir(env.cwd());
    let done = Proc::spawn(as_nobody(&cmd), Some(&env.names)).finish(TIMEOUT);
    let cleanup = format!("sudo -u root shm_server --cleanup --queue {}", env.names.queue());
    done.assert_code(1)
        .check(done.stderr.contains("belongs to root (uid 0)"), "says whose lock it is")
        .check(done.stderr.contains(&cleanup), "and how its owner cleans up after it")
        .check(!done.stderr.contains("Permission denied"), "not a bare error");
    assert_eq!(fs::metadata(&lock).expect("left alone").uid(), 0);
    env.cleanup().finish(TIMEOUT).assert_code(0);
    assert_no_leftovers(&env.names);
}
