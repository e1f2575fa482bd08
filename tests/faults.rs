//! Faults, bad input and hostile peers: processes really killed and stopped,
//! garbage really sent. After each scenario nothing of the test's names is
//! left.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use shmxfer::testing::liveness::{client_alive, ServerLock};
use shmxfer::testing::names::SessionNames;
use shmxfer::testing::protocol::{
    Command, DataEnd, FrameHeader, FrameKind, GetCondition, Reply, StartFlags, MSG_MAGIC, PROTOCOL_VERSION,
};
use shmxfer::testing::queue::{QUEUE_CAPACITY, QUEUE_MSG_LEN};
use shmxfer::testing::shm_region::{Geometry, Region, Semaphore, ShmObject};

use crate::util::{
    assert_no_leftovers, holds_for, is_root, wait_child, wait_until, Proc, Signal, TestEnv, BIG, BIG_TIMEOUT,
    COLLECT_EVERY, DETECT, MIB, TIMEOUT,
};

#[test]
fn sigkilled_client_is_noticed_and_cleaned_up_by_the_server_which_keeps_serving() {
    let env = TestEnv::new("sigkilled_client_is_noticed");
    env.create("small.txt", b"still here\n");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 1);
    assert_eq!(env.names.client_regions().len(), 1);
    client.kill();
    let killed = Instant::now();
    let noticed =
        wait_until(TIMEOUT, || env.names.client_regions().is_empty() && env.names.shm_entries().len() == 1);
    let took = killed.elapsed();
    assert!(
        noticed,
        "server never removed the dead client's objects: {:?}\n{}",
        env.names.shm_entries(),
        server.snapshot()
    );
    assert!(took <= DETECT, "server took {took:?} to notice the dead client");
    eprintln!("server noticed the SIGKILLed client after {took:?}");
    assert!(env.out_entries().is_empty(), "a killed client left {:?} in the out dir", env.out_entries());
    env.fetch(&["small.txt"]).assert_code(0);
    env.assert_delivered("small.txt");
    assert!(server.stderr().contains("died"), "server did not say the client died\n{}", server.snapshot());
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn sigkilled_server_makes_the_client_exit_4_within_2_s_without_a_partial_file() {
    let env = TestEnv::new("sigkilled_server_client_exits_4");
    let (mut server, mut client) = env.big_transfer_in_flight(&[], &[], 2);
    server.kill();
    let killed = Instant::now();
    let done = client.finish(TIMEOUT);
    let took = killed.elapsed();
    done.assert_code(4).check(done.stderr.contains("server"), "the client says the server is gone");
    assert!(took <= DETECT, "client took {took:?} to notice the dead server");
    eprintln!("client noticed the SIGKILLed server after {took:?}");
    assert!(env.out_entries().is_empty(), "out dir holds {:?}", env.out_entries());
    assert!(
        env.names.client_regions().is_empty(),
        "the client left its region: {:?}",
        env.names.shm_entries()
    );
    // Only the dead server's queue and lock are left; --cleanup removes them.
    let cleaned = env.cleanup().finish(TIMEOUT);
    cleaned.assert_code(0).check(cleaned.stdout.contains("removed queue"), "cleanup removes the queue");
    assert_no_leftovers(&env.names);
}

#[test]
fn new_server_takes_over_the_queue_of_a_crashed_server() {
    let env = TestEnv::new("new_server_takes_over");
    env.create("a.txt", b"a\n");
    let mut first = env.ready_server(&["--persistent"]);
    first.kill();
    assert!(
        env.names.queue_exists() && env.names.lock_exists(),
        "a SIGKILLed server leaves its queue and lock"
    );
    let mut second = env.ready_server(&[]);
    env.fetch(&["a.txt"]).assert_code(0);
    env.assert_delivered("a.txt");
    second.finish(TIMEOUT).assert_code(0);
    assert_no_leftovers(&env.names);
}

#[test]
fn an_open_sent_into_the_queue_of_a_dead_server_is_sent_again_to_the_server_that_replaces_it() {
    let env = TestEnv::new("open_into_replaced_queue");
    let mut dead = env.ready_server(&["--persistent"]);
    dead.kill();
    // A new server has taken the lock but not yet replaced the dead one's
    // queue: a client starting now finds a live server and sends its Open
    // into the old queue, which the new server is about to remove.
    let lock = ServerLock::acquire(env.names.queue()).unwrap();
    let mut client = env.client(&["--wait", "10", "x.txt"]);
    let sent_into_old = wait_until(TIMEOUT, || {
        posixmq::PosixMq::open(env.names.queue())
            .ok()
            .and_then(|mq| mq.attributes().ok())
            .is_some_and(|a| a.current_messages > 0)
    });
    assert!(sent_into_old, "the client never sent its Open\n{}", client.snapshot());
    let mq = shmxfer::testing::queue::create(env.names.queue()).unwrap();
    // The client notices that its queue was replaced and opens its session
    // again, on the new queue.
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || tx.send(wait_for_open(&mq)).unwrap());
    let again = rx.recv_timeout(Duration::from_secs(5));
    assert!(again.is_ok(), "no Open reached the new queue\n{}", client.snapshot());
    assert_eq!(again.unwrap().2, client.pid());
    client.kill();
    drop(lock);
    let _ = posixmq::remove_queue(env.names.queue());
}

/// Kills a server and its client mid-transfer, both with SIGKILL, so that
/// nobody is left to remove the queue, the lock and the session's three
/// objects. Returns the dead session's region, and the dead processes: the
/// test's names are removed by the fixture once its last process drops.
fn kill_server_and_client_mid_transfer(env: &TestEnv) -> (String, [Proc; 2]) {
    let mut dead_server = env.ready_server(&["--persistent"]);
    let mut dead_client = env.fetch_proc(&["big.bin"]);
    env.wait_receiving(&mut dead_client, "big.bin");
    dead_server.kill();
    dead_client.kill();
    let dead_regions = env.names.client_regions();
    assert_eq!(dead_regions.len(), 1, "{:?}", env.names.shm_entries());
    assert!(env.names.queue_exists() && env.names.lock_exists());
    (dead_regions[0].clone(), [dead_server, dead_client])
}

#[test]
fn cleanup_removes_dead_sessions_and_spares_live_ones() {
    let env = TestEnv::new("cleanup_spares_live");
    env.create_random("big.bin", BIG, 3);
    let (dead, _dead_procs) = kill_server_and_client_mid_transfer(&env);
    let before = env.names.shm_entries();
    assert_eq!(before.len(), 4, "lock, region, 2 semaphores: {before:?}");
    let cleaned = env.cleanup().finish(TIMEOUT);
    cleaned.assert_code(0);
    for e in &before {
        assert!(cleaned.stdout.contains(e.as_str()), "cleanup did not list {e}\n{cleaned}");
    }
    cleaned.check(cleaned.stdout.contains(&format!("queue {}", env.names.queue())), "queue listed");
    assert!(!env.names.queue_exists(), "the dead server's queue is gone");
    assert!(env.names.shm_entries().is_empty(), "left: {:?} (dead session {dead})", env.names.shm_entries());
    // A live server and a live, stopped client: cleanup touches nothing.
    let mut server = env.ready_server(&["--persistent"]);
    let mut live = env.fetch_proc(&["big.bin"]);
    env.wait_receiving(&mut live, "big.bin");
    live.signal(Signal::SIGSTOP);
    let before = env.names.shm_entries();
    let cleaned = env.cleanup().finish(TIMEOUT);
    cleaned.assert_code(0).check(cleaned.stdout.is_empty(), "nothing removed");
    assert_eq!(env.names.shm_entries(), before, "cleanup touched a live session");
    assert!(env.names.queue_exists() && env.names.lock_exists(), "cleanup touched the live server");
    live.signal(Signal::SIGCONT);
    live.finish(BIG_TIMEOUT).assert_code(0);
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn a_new_server_collects_what_a_killed_server_and_its_killed_client_left() {
    let env = TestEnv::new("new_server_collects");
    env.create_random("big.bin", BIG, 13);
    env.create("small.txt", b"small\n");
    let (dead, _dead_procs) = kill_server_and_client_mid_transfer(&env);
    let mut server = env.ready_server(&["--persistent"]);
    let collected = wait_until(DETECT, || env.names.client_regions().is_empty());
    assert!(collected, "the dead session {dead} is still there: {:?}", env.names.shm_entries());
    assert_eq!(env.names.shm_entries().len(), 1, "only the new lock: {:?}", env.names.shm_entries());
    env.fetch(&["small.txt"]).assert_code(0);
    env.stop_server(&mut server);
    let log = server.stderr();
    assert!(log.contains(&format!("removed /dev/shm/{}", &dead)), "the server logs what it removed\n{log}");
    assert_no_leftovers(&env.names);
}

#[test]
fn a_running_server_collects_a_client_killed_before_its_session_began() {
    let env = TestEnv::new("running_server_collects");
    env.create("small.txt", b"small\n");
    let mut server = env.ready_server(&["--persistent", "--collect-every", COLLECT_EVERY]);
    // What a client killed between creating its objects and sending Open
    // leaves: a region nobody locks and its semaphores, named after a pid
    // that no longer exists.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let region = format!("{}.{pid}.00000000000000ee", env.names.queue());
    // Left behind as a killed process would leave them: not unlinked.
    ShmObject::create_exclusive(&region, 4096).unwrap().disown();
    for suffix in ["items", "spaces"] {
        Semaphore::create_exclusive(&format!("{region}.{suffix}"), 0).unwrap().disown();
    }
    assert_eq!(env.names.client_regions().len(), 1);
    let collected = wait_until(TIMEOUT, || env.names.client_regions().is_empty());
    assert!(collected, "not collected: {:?}", env.names.shm_entries());
    env.fetch(&["small.txt"]).assert_code(0);
    env.stop_server(&mut server);
    assert!(server.stderr().contains("removed /dev/shm/"), "{}", server.stderr());
    assert_no_leftovers(&env.names);
}

#[test]
fn stopped_client_does_not_hold_up_other_clients() {
    let env = TestEnv::new("stopped_client_does_not_hold_up");
    env.create("small.txt", b"small\n");
    let (mut server, mut slow) = env.big_transfer_in_flight(&["--persistent"], &[], 4);
    slow.signal(Signal::SIGSTOP);
    let out2 = env.tmp().join("out2");
    fs::create_dir(&out2).unwrap();
    env.run_client(&["-o", out2.to_str().unwrap(), "small.txt"]).assert_code(0);
    assert_eq!(fs::read(out2.join("small.txt")).unwrap(), b"small\n");
    slow.signal(Signal::SIGCONT);
    slow.finish(BIG_TIMEOUT).assert_code(0);
    env.assert_delivered("big.bin");
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

/// Raw message bytes for the garbage test.
fn garbage_messages(env: &TestEnv) -> Vec<(String, Vec<u8>)> {
    let pid = std::process::id();
    let q = env.names.queue();
    let valid =
        Command::Close { client_pid: pid, region: format!("{q}.1.0000000000000000") }.encode().unwrap();
    let mut wrong_magic = valid.clone();
    wrong_magic[0] ^= 0xff;
    let mut wrong_version = valid.clone();
    wrong_version[4] = PROTOCOL_VERSION.wrapping_add(1);
    let mut random = vec![0u8; 300];
    crate::util::Rng::new(9).fill(&mut random);
    let mut huge_lengths = MSG_MAGIC.to_le_bytes().to_vec();
    huge_lengths.extend_from_slice(&[PROTOCOL_VERSION, 2, 0, 0]);
    huge_lengths.extend_from_slice(&[0xff; 16]);
    let mut nul_path = Command::Get {
        client_pid: pid,
        seq: 1,
        region: format!("{q}.1.0000000000000000"),
        path: "ab".into(),
        offset: 0,
        condition: GetCondition::Always,
    }
    .encode()
    .unwrap();
    let last = nul_path.len() - 1;
    nul_path[last] = 0;
    vec![
        ("empty".into(), vec![]),
        ("one byte".into(), vec![0x53]),
        ("random bytes".into(), random),
        ("wrong magic".into(), wrong_magic),
        ("wrong version".into(), wrong_version),
        ("truncated".into(), valid[..valid.len() - 3].to_vec()),
        ("maximum size".into(), vec![0xa5; QUEUE_MSG_LEN]),
        ("absurd lengths".into(), huge_lengths),
        ("NUL in path".into(), nul_path),
    ]
}

#[test]
fn garbage_on_the_queue_is_logged_and_dropped_and_the_server_keeps_serving() {
    let env = TestEnv::new("garbage_on_the_queue");
    env.create("a.txt", b"alive\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mq = posixmq::OpenOptions::writeonly().open(env.names.queue()).unwrap();
    let pid = std::process::id();
    let q = env.names.queue();
    let mut sent = 0;
    for (what, bytes) in garbage_messages(&env) {
        mq.send(0, &bytes).unwrap_or_else(|e| panic!("sending {what}: {e}"));
        sent += 1;
    }
    // Sessions that cannot be opened: a region that does not exist, one
    // smaller than its header, one larger than 4096 bytes, one of another user.
    let missing = format!("{q}.{pid}.00000000000000aa");
    let mut objects = Vec::new();
    for (tag, size) in [("bb", 16usize), ("cc", 8192)] {
        let name = format!("{q}.{pid}.00000000000000{tag}");
        let obj = ShmObject::create_exclusive(&name, size).unwrap();
        mq.send(
            0,
            &Command::Open {
                client_pid: pid,
                region_size: size as u32,
                items: format!("{name}.items"),
                spaces: format!("{name}.spaces"),
                region: name,
                kind: shmxfer::testing::protocol::SessionKind::Transfer,
            }
            .encode()
            .unwrap(),
        )
        .unwrap();
        objects.push(obj);
    }
    if is_root() {
        let name = format!("{q}.{pid}.00000000000000dd");
        let geometry = Geometry::for_slots(2);
        let region = Region::create(&name, geometry, pid).unwrap();
        let path = format!("/dev/shm/{}", &name[1..]);
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        mq.send(
            0,
            &Command::Open {
                client_pid: pid,
                region_size: geometry.region_size() as u32,
                items: format!("{name}.items"),
                spaces: format!("{name}.spaces"),
                region: name,
                kind: shmxfer::testing::protocol::SessionKind::Transfer,
            }
            .encode()
            .unwrap(),
        )
        .unwrap();
        sent += 1;
        // Keep the region alive until the server looked at it (it says so).
        let looked = wait_until(TIMEOUT, || server.stderr().contains("00000000000000dd"));
        assert!(looked, "the server never answered the Open of another user's region\n{}", server.snapshot());
        drop(region);
    } else {
        eprintln!("skipped part: a region of another user needs root to chown");
    }
    mq.send(
        0,
        &Command::Open {
            client_pid: pid,
            region_size: 4096,
            items: format!("{missing}.items"),
            spaces: format!("{missing}.spaces"),
            region: missing,
            kind: shmxfer::testing::protocol::SessionKind::Transfer,
        }
        .encode()
        .unwrap(),
    )
    .unwrap();
    // An object that is not a session object of this queue: the server's own lock.
    let lock = format!("{q}.lock");
    mq.send(
        0,
        &Command::Open {
            client_pid: pid,
            region_size: 4096,
            items: format!("{lock}.items"),
            spaces: format!("{lock}.spaces"),
            region: lock,
            kind: shmxfer::testing::protocol::SessionKind::Transfer,
        }
        .encode()
        .unwrap(),
    )
    .unwrap();
    sent += 4;
    // The server still serves.
    env.fetch(&["a.txt"]).assert_code(0);
    env.assert_delivered("a.txt");
    assert!(server.is_running());
    let complaints = server.stderr().lines().filter(|l| l.contains("warning")).count();
    assert!(complaints >= sent, "{sent} bad messages, {complaints} warnings\n{}", server.snapshot());
    drop(objects);
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn bad_paths_are_refused_distinctly_from_missing_files() {
    let env = TestEnv::new("bad_paths_are_refused");
    env.create("ok.txt", b"ok\n");
    fs::create_dir(env.in_root("dir")).unwrap();
    fs::write(env.tmp().join("secret"), b"secret\n").unwrap();
    std::os::unix::fs::symlink("../secret", env.in_root("escape")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", env.in_root("abs_escape")).unwrap();
    nix::unistd::mkfifo(&env.in_root("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let device = is_root()
        && nix::sys::stat::mknod(
            &env.in_root("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(1, 3),
        )
        .is_ok();
    if !device {
        eprintln!("skipped part: a device node needs root to create");
    }
    let long_name = "n".repeat(300);
    let too_long = format!("{}x", "d/".repeat(600));
    let mut server = env.ready_server(&["--persistent"]);
    let mut asked =
        vec!["../secret", "/etc/passwd", "escape", "abs_escape", "dir", "fifo", "dir/../../outside"];
    if device {
        asked.push("null");
    }
    asked.push(&long_name);
    asked.push(&too_long);
    asked.push("ok.txt");
    asked.push("nope.txt");
    let done = env.fetch(&asked);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), asked.len(), "one line per file\n{done}");
    // Each line names the path as it was asked for.
    let refused = asked[..7].to_vec();
    for (line, name) in lines.iter().zip(refused) {
        assert!(line.starts_with(&format!("{name}: refused by server: ")), "{line:?}\n{done}");
    }
    if device {
        assert!(lines[7].starts_with("null: refused by server: "), "{}\n{done}", lines[7]);
    }
    let n = lines.len();
    assert!(
        lines[n - 4].contains("refused by server") || lines[n - 4].contains("failed"),
        "{}",
        lines[n - 4]
    );
    assert!(lines[n - 3].contains("failed: path is"), "{}", lines[n - 3]);
    assert_eq!(lines[n - 2], "ok.txt: received 3 bytes");
    assert_eq!(lines[n - 1], "nope.txt: not found on server");
    assert_eq!(env.out_entries(), ["ok.txt"], "only the good file arrives");
    assert!(!env.tmp().join("out").join("secret").exists());
    // A FIFO did not block the session: the server still answers at once.
    env.fetch(&["ok.txt"]).assert_code(0);
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn paths_without_a_file_name_are_refused_by_the_client_and_nothing_leaves_the_out_dir() {
    let env = TestEnv::new("paths_without_a_file_name");
    env.create("sub/x.txt", b"x\n");
    let mut server = env.ready_server(&[]);
    let done = env.fetch(&["..", "sub/", ".", "sub/../sub/x.txt"]);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{done}");
    for line in [lines[0], lines[2]] {
        assert!(line.contains("failed: no file name"), "{line}\n{done}");
    }
    // A trailing slash names the directory, as its name does; asked for
    // with its slash, it is named as given.
    assert_eq!(lines[1], "sub/: refused by server: sub/ is a directory; use -r to fetch a directory");
    assert_eq!(lines[3], "sub/../sub/x.txt: received 2 bytes → x.txt");
    assert_eq!(env.out_entries(), ["x.txt"]);
    server.finish(TIMEOUT).assert_code(0);
    assert_no_leftovers(&env.names);
}

/// A missing output directory is created (see `usability`); one that
/// cannot be (below a regular file) fails before any request.
#[test]
fn an_out_dir_that_cannot_be_made_is_a_clear_error_before_any_request() {
    let env = TestEnv::new("missing_out_dir");
    env.create("a.txt", b"a\n");
    let file = env.tmp().join("a_file");
    std::fs::write(&file, b"").unwrap();
    let below_a_file = file.join("such");
    let done = env.run_client(&["--wait", "0", "-o", below_a_file.to_str().unwrap(), "a.txt"]);
    done.assert_code(1).check(done.stderr.contains("output directory"), "names the output directory");
    assert_no_leftovers(&env.names);
}

/// A small tmpfs for the disk-full and read-only tests (root only).
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &Path, options: &str) -> Option<Mount> {
        fs::create_dir_all(at).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "none"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Mount(at.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_the_big_file_cleanly_and_the_next_file_still_arrives() {
    let env = TestEnv::new("full_disk");
    let Some(mount) = Mount::tmpfs(&env.tmp().join("small_fs"), "size=1m") else {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    };
    env.create_random("big.bin", 4 * MIB, 5);
    env.create("small.txt", b"fits\n");
    let mut server = env.ready_server(&[]);
    let out = mount.0.to_str().unwrap().to_owned();
    let done = env.run_client(&["-o", &out, "big.bin", "small.txt"]);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert!(lines[0].starts_with("big.bin: failed:") && lines[0].contains("space"), "{done}");
    assert_eq!(lines[1], "small.txt: received 5 bytes");
    let entries: Vec<String> =
        fs::read_dir(&mount.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(entries, ["small.txt"], "nothing partial is left");
    server.finish(TIMEOUT).assert_code(0);
    drop(mount);
    assert_no_leftovers(&env.names);
}

#[test]
fn read_only_out_dir_fails_every_file_with_a_clear_reason() {
    let env = TestEnv::new("read_only_out_dir");
    let dir = env.tmp().join("ro");
    let mount = if is_root() {
        Mount::tmpfs(&dir, "ro,size=1m")
    } else {
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
        None
    };
    env.create("a.txt", b"a\n");
    env.create("b.txt", b"b\n");
    let mut server = env.ready_server(&[]);
    let done = env.run_client(&["-o", dir.to_str().unwrap(), "a.txt", "b.txt"]);
    done.assert_code(1);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{done}");
    for line in lines {
        assert!(
            line.contains("failed:") && (line.contains("ead-only") || line.contains("ermission")),
            "{line}\n{done}"
        );
    }
    server.finish(TIMEOUT).assert_code(0);
    drop(mount);
    assert_no_leftovers(&env.names);
}

/// A frame as raw header bytes and payload.
pub(crate) type RawFrame = ([u8; 16], Vec<u8>);

/// Takes `env`'s queue as a fake server would: holds the server lock and
/// creates the queue with the real server's limits.
fn fake_server_queue(env: &TestEnv) -> (ServerLock, posixmq::PosixMq) {
    let queue = env.names.queue();
    let lock = ServerLock::acquire(queue).unwrap();
    let mq = posixmq::OpenOptions::readonly()
        .create_new()
        .mode(0o600)
        .capacity(QUEUE_CAPACITY)
        .max_msg_len(QUEUE_MSG_LEN)
        .open(queue)
        .unwrap();
    (lock, mq)
}

/// Receives messages until an Open arrives; returns its object names, size and pid.
fn wait_for_open(mq: &posixmq::PosixMq) -> (SessionNames, u32, u32) {
    let mut buf = vec![0u8; QUEUE_MSG_LEN];
    loop {
        let (_, n) = mq.recv(&mut buf).unwrap();
        if let Ok(Command::Open { client_pid, region_size, region, items, spaces, .. }) =
            Command::decode(&buf[..n])
        {
            return (SessionNames { region, items, spaces }, region_size, client_pid);
        }
    }
}

/// A fake server that follows the protocol up to the first request, then
/// writes `frames` (raw header bytes and payload) into the client's region.
pub(crate) fn hostile_server(env: &TestEnv, frames: Vec<RawFrame>) -> thread::JoinHandle<()> {
    let queue = env.names.queue().to_owned();
    let (lock, mq) = fake_server_queue(env);
    thread::spawn(move || {
        let (names, size, pid) = wait_for_open(&mq);
        let region = Region::open(&names.region, size, pid).unwrap();
        let items = Semaphore::open(&names.items).unwrap();
        let spaces = Semaphore::open(&names.spaces).unwrap();
        region.set_server_pid(std::process::id());
        let slots = region.geometry().slots();
        for (i, (header, payload)) in frames.into_iter().enumerate() {
            while !spaces.try_wait() {
                if !client_alive(&region) {
                    break;
                }
                thread::sleep(Duration::from_millis(1));
            }
            let payload = &payload[..payload.len().min(region.geometry().max_payload())];
            region.write_frame(i as u32 % slots, &header, payload);
            items.post().unwrap();
        }
        // Stay alive (the lock held) until the client is gone.
        assert!(wait_until(TIMEOUT, || !client_alive(&region)), "the client outlived the test's timeout");
        drop(mq);
        drop(lock);
        let _ = posixmq::remove_queue(&queue);
    })
}

pub(crate) fn frame(kind: FrameKind, seq: u32, payload: Vec<u8>) -> RawFrame {
    (FrameHeader { kind, len: payload.len() as u32, seq }.encode(), payload)
}

pub(crate) fn control(reply: Reply, seq: u32) -> RawFrame {
    let mut payload = Vec::new();
    reply.encode_payload(&mut payload);
    frame(reply.kind(), seq, payload)
}

#[test]
fn hostile_server_frames_end_the_session_with_exit_4_and_no_file() {
    let cases: Vec<(&str, Vec<RawFrame>)> = vec![
        ("garbage header", vec![([0xee; 16], vec![])]),
        ("length over the slot", {
            let mut h = FrameHeader { kind: FrameKind::Start, len: 8, seq: 1 }.encode();
            h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
            vec![(h, vec![])]
        }),
        (
            "more data than announced",
            vec![
                control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
                frame(FrameKind::Data, 1, vec![1; 100]),
            ],
        ),
        (
            "a last data frame shorter than its end",
            vec![
                control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
                frame(FrameKind::DataEnd, 1, vec![1; 5]),
            ],
        ),
        (
            "more data than announced in a last data frame",
            vec![
                control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
                frame(FrameKind::DataEnd, 1, [vec![1; 100], DataEnd::trailer(100, 0).to_vec()].concat()),
            ],
        ),
        (
            "wrong sequence number",
            vec![control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 7)],
        ),
        (
            "list entry inside a file",
            vec![
                control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
                control(Reply::ListEnd { files: 0, skipped: 0 }, 1),
            ],
        ),
    ];
    for (i, (what, frames)) in cases.into_iter().enumerate() {
        let env = TestEnv::new(&format!("hostile_server_{i}"));
        let fake = hostile_server(&env, frames);
        let done = env.fetch(&["victim.bin"]);
        done.assert_code(4).check(done.stderr.contains("protocol"), what);
        assert!(env.out_entries().is_empty(), "{what}: out dir holds {:?}", env.out_entries());
        fake.join().unwrap();
        assert_no_leftovers(&env.names);
    }
}

#[test]
fn a_bad_checksum_fails_the_file_and_creates_nothing() {
    let env = TestEnv::new("bad_checksum");
    let data = b"four".to_vec();
    let frames = vec![
        control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
        frame(FrameKind::Data, 1, data),
        control(Reply::End { count: 4, checksum: 12345 }, 1),
    ];
    let fake = hostile_server(&env, frames);
    let done = env.fetch(&["victim.bin"]);
    done.assert_code(1)
        .check(done.stdout.contains("victim.bin: failed: checksum mismatch"), "checksum failure reported");
    assert!(env.out_entries().is_empty());
    fake.join().unwrap();
    assert_no_leftovers(&env.names);
}

#[test]
fn a_bad_checksum_in_a_last_data_frame_fails_the_file_and_creates_nothing() {
    let env = TestEnv::new("bad_checksum_data_end");
    let frames = vec![
        control(Reply::Start { size: 4, mode: 0o644, flags: StartFlags::NONE, mtime_ns: 0 }, 1),
        frame(FrameKind::DataEnd, 1, [b"four".to_vec(), DataEnd::trailer(4, 12345).to_vec()].concat()),
    ];
    let fake = hostile_server(&env, frames);
    let done = env.fetch(&["victim.bin"]);
    done.assert_code(1)
        .check(done.stdout.contains("victim.bin: failed: checksum mismatch"), "checksum failure reported");
    assert!(env.out_entries().is_empty());
    fake.join().unwrap();
    assert_no_leftovers(&env.names);
}

#[test]
fn eight_clients_with_two_killed_midway_all_others_arrive_intact() {
    let env = TestEnv::new("eight_clients_two_killed");
    let mut rng = crate::util::Rng::new(11);
    let mut files = Vec::new();
    for i in 0..20u64 {
        let len = match i % 4 {
            0 => rng.range(0, 100),
            1 => rng.range(1000, 10_000),
            2 => rng.range(100_000, 1_000_000),
            _ => rng.range(2 * MIB, 6 * MIB),
        };
        let name = format!("f{i:02}.bin");
        env.create_random(&name, len, 1000 + i);
        files.push(name);
    }
    let names: Vec<&str> = files.iter().map(String::as_str).collect();
    let mut server = env.ready_server(&["--persistent"]);
    let mut clients = Vec::new();
    for c in 0..8 {
        let out = env.tmp().join(format!("out{c}"));
        fs::create_dir(&out).unwrap();
        let mut args = vec!["-o", out.to_str().unwrap()];
        args.extend_from_slice(&names);
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        clients.push((out, env.client(&refs)));
    }
    // Kill two once they are well under way.
    for (out, victim) in clients.iter_mut().take(2) {
        let under_way = wait_until(TIMEOUT, || {
            fs::read_dir(&*out).map(|d| d.count() >= 3).unwrap_or(false) || !victim.is_running()
        });
        assert!(under_way, "client never got under way\n{}", victim.snapshot());
        victim.kill();
    }
    for (out, client) in clients.iter_mut().skip(2) {
        client.finish(Duration::from_secs(120)).assert_code(0);
        for name in &names {
            crate::util::assert_same_file(&env.in_root(name), &out.join(name));
        }
    }
    for (out, _) in clients.iter().take(2) {
        for entry in fs::read_dir(out).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            crate::util::assert_same_file(&env.in_root(&name), &entry.path());
        }
    }
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!("server peak memory: {hwm_kb} KiB");
    assert!(hwm_kb < 64 * 1024, "server peak memory {hwm_kb} KiB");
    let collected = wait_until(DETECT, || env.names.client_regions().is_empty());
    assert!(collected, "the killed clients' regions outlived {DETECT:?}: {:?}", env.names.client_regions());
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn client_whose_server_leaves_before_taking_the_session_finds_the_next_server() {
    let env = TestEnv::new("server_leaves_before_attach");
    env.create("a.txt", b"second server\n");
    // A server that takes the Open message and leaves without attaching, as a
    // default-mode server does when its last client has just said goodbye.
    let (lock, mq) = fake_server_queue(&env);
    let mut client = env.fetch_proc(&["--wait", "20", "a.txt"]);
    wait_for_open(&mq);
    posixmq::remove_queue(env.names.queue()).unwrap();
    drop(mq);
    drop(lock);
    let waits = holds_for(Duration::from_millis(300), || client.is_running());
    assert!(waits, "the client gave up instead of looking for a server\n{}", client.snapshot());
    let mut server = env.ready_server(&[]);
    client.finish(TIMEOUT).assert_code(0);
    env.assert_delivered("a.txt");
    server.finish(TIMEOUT).assert_code(0);
    assert_no_leftovers(&env.names);
}

#[test]
fn closed_stdout_does_not_stop_the_transfers() {
    let env = TestEnv::new("closed_stdout");
    env.create("a.txt", b"a\n");
    env.create("b.txt", b"b\n");
    let mut server = env.ready_server(&[]);
    let out = env.out().to_str().unwrap().to_owned();
    let mut cmd = env.client_cmd(&["-o", &out, "a.txt", "b.txt"]);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // as `shm_client … | head -0` would
    let status = wait_child(&mut child, TIMEOUT).expect("client with a closed stdout did not exit");
    assert_eq!(status.code(), Some(0), "{status}");
    env.assert_delivered("a.txt");
    env.assert_delivered("b.txt");
    server.finish(TIMEOUT).assert_code(0);
    assert_no_leftovers(&env.names);
}

#[test]
fn server_stopping_right_after_a_client_died_still_removes_its_objects() {
    let env = TestEnv::new("stopping_after_client_died");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 6);
    client.signal(Signal::SIGSTOP);
    client.kill();
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
    assert_no_leftovers(&env.names);
}

#[test]
fn sigint_to_a_client_receiving_at_full_speed_stops_it_at_once() {
    let env = TestEnv::new("sigint_at_full_speed");
    let (mut server, mut client) = env.big_transfer_in_flight(&["--persistent"], &[], 7);
    client.signal(Signal::SIGINT);
    let signalled = Instant::now();
    let done = client.finish(TIMEOUT);
    done.assert_code(130).check(done.stderr.contains("interrupted"), "says it was interrupted");
    assert!(signalled.elapsed() < Duration::from_secs(1), "took {:?} to stop", signalled.elapsed());
    assert!(env.out_entries().is_empty(), "{:?}", env.out_entries());
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}

#[test]
fn a_flood_of_garbage_is_dropped_without_flooding_the_log() {
    let env = TestEnv::new("flood_of_garbage");
    env.create("a.txt", b"a\n");
    let mut server = env.ready_server(&["--persistent"]);
    let mq = posixmq::OpenOptions::writeonly().open(env.names.queue()).unwrap();
    for i in 0..500u32 {
        mq.send(0, &i.to_le_bytes()).unwrap();
    }
    env.fetch(&["a.txt"]).assert_code(0);
    let dropped = server.stderr().lines().filter(|l| l.contains("dropped a")).count();
    assert!((1..=100).contains(&dropped), "{dropped} lines for 500 bad messages\n{}", server.snapshot());
    env.stop_server(&mut server);
    assert_no_leftovers(&env.names);
}
