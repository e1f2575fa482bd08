//! Test fixtures: unique OS names, temporary directories, spawned binaries
//! with captured output, leftover checks and file helpers.
//!
//! Cleanup lives in `Drop` (kill and reap children, remove the test's names);
//! assertions live in the test bodies.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

/// Path of the server binary under test.
pub const SERVER: &str = env!("CARGO_BIN_EXE_shm_server");
/// Path of the client binary under test.
pub const CLIENT: &str = env!("CARGO_BIN_EXE_shm_client");

/// How long a test waits for a process or a condition unless it says
/// otherwise: a deadline for a loaded machine, not a time anything takes
/// (waits end as soon as what they wait for holds).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes in a mebibyte.
pub const MIB: u64 = 1 << 20;

/// Size of the files that are still in flight when a test strikes (kills,
/// stops or changes something mid-transfer). A debug build moves about
/// 45 MiB/s, so this one takes about a second, a hundred times the interval
/// at which the tests look; a release build is many times faster and gets
/// a bigger file.
pub const BIG: u64 = if cfg!(debug_assertions) { 48 * MIB } else { 256 * MIB };

/// How long a whole big transfer may take on a loaded machine.
/// What a file must already hold for [`Proc::is_receiving_in`] to say it
/// is in flight: more than a region's worth, more than any small file a
/// test sends before its large one.
pub const IN_FLIGHT: u64 = 64 * 1024;
pub const BIG_TIMEOUT: Duration = Duration::from_secs(120);

/// The time the issue allows for noticing a dead peer (it takes about
/// 100 ms).
pub const DETECT: Duration = Duration::from_secs(2);

/// The servers' sweep for what dead sessions left (`--collect-every`) in
/// tests that wait for it: 5 s by default.
pub const COLLECT_EVERY: &str = "0.2";

/// Payload bytes of one slot with the default ring in a 4096-byte region
/// (2008 with the default of 2 slots).
pub const SLOT: usize =
    shmxfer::testing::shm_region::Geometry::for_slots(shmxfer::testing::shm_region::DEFAULT_SLOTS)
        .max_payload();

/// Where POSIX shared memory and named semaphores appear on Linux.
const SHM_DIR: &str = "/dev/shm";

/// Longest test-name part of a queue name.
const MAX_TEST_NAME: usize = 40;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The OS names one test uses: a queue `/sx_<test>_<pid>_<n>` and, derived
/// from it, the `/dev/shm` entries of the server and its clients.
///
/// Clones share one count of the live processes spawned for these names; the
/// last [`Proc`] to be dropped removes whatever is left under the names.
#[derive(Clone, Debug)]
pub struct Names {
    inner: Arc<NamesInner>,
}

#[derive(Debug)]
struct NamesInner {
    queue: String,
    live: AtomicUsize,
    /// Pids of every process spawned for these names.
    spawned: Mutex<Vec<u32>>,
}

impl Names {
    /// Unique names for the test `test_name`.
    pub fn new(test_name: &str) -> Names {
        let short: String = test_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(MAX_TEST_NAME)
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let queue = format!("/sx_{}_{}_{}", short, std::process::id(), n);
        shmxfer::testing::names::validate_queue_name(&queue).expect("test queue names fit the queue limit");
        Names {
            inner: Arc::new(NamesInner { queue, live: AtomicUsize::new(0), spawned: Mutex::new(Vec::new()) }),
        }
    }

    /// The queue name, with its leading slash.
    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// The queue name without its leading slash, as it prefixes the
    /// `/dev/shm` entries.
    pub fn stem(&self) -> &str {
        &self.inner.queue[1..]
    }

    /// Whether `file_name` (an entry of `/dev/shm`) belongs to these names.
    pub fn owns_shm_entry(&self, file_name: &str) -> bool {
        let region = format!("{}.", self.stem());
        let sem = format!("sem.{}.", self.stem());
        file_name.starts_with(&region) || file_name.starts_with(&sem)
    }

    /// The `/dev/shm` entries that belong to these names, sorted: not the
    /// session objects of a live process this test did not start (see
    /// [`Names::leftovers`]: another test's `--status --all` probing our
    /// server), which come and go as that process pleases.
    pub fn shm_entries(&self) -> Vec<String> {
        let mut found = Vec::new();
        if let Ok(dir) = fs::read_dir(SHM_DIR) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if self.owns_shm_entry(&name) && !self.object_of_a_live_stranger(&name) {
                    found.push(name);
                }
            }
        }
        found.sort();
        found
    }

    /// The client regions (`Q.<pid>.<16 hex>`) that exist now.
    pub fn client_regions(&self) -> Vec<String> {
        let lock = format!("{}.lock", self.stem());
        self.shm_entries().into_iter().filter(|e| !e.starts_with("sem.") && *e != lock).collect()
    }

    /// Whether the server's liveness lock `/dev/shm/Q.lock` exists.
    pub fn lock_exists(&self) -> bool {
        Path::new(SHM_DIR).join(format!("{}.lock", self.stem())).exists()
    }

    /// Whether the queue exists.
    pub fn queue_exists(&self) -> bool {
        queue_exists(self.queue())
    }

    /// Everything left under these names, described for a failure message.
    ///
    /// A session object of a process that is still alive and no child of
    /// this test is not this test's leftover: `shm_client --status --all`,
    /// run by another test at the same moment, opens a status session with
    /// every server of this user, ours included, under our queue's names,
    /// and removes its objects itself. This test's own clients have all
    /// been reaped when it asks.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .shm_entries()
            .into_iter()
            .filter(|e| !self.object_of_a_live_stranger(e))
            .map(|e| format!("{SHM_DIR}/{e}"))
            .collect();
        if self.queue_exists() {
            left.push(format!("message queue {}", self.queue()));
        }
        left
    }

    /// Whether the `/dev/shm` entry `name` is a session object
    /// (`<stem>.<pid>.<hex>`, or `sem.` before it) of a live process that
    /// no [`Proc`] of these names spawned.
    fn object_of_a_live_stranger(&self, name: &str) -> bool {
        let name = name.strip_prefix("sem.").unwrap_or(name);
        let Some(rest) = name.strip_prefix(self.stem()).and_then(|r| r.strip_prefix('.')) else {
            return false;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            return false;
        };
        let ours = self.inner.spawned.lock().unwrap_or_else(|e| e.into_inner()).contains(&pid);
        !ours && Path::new("/proc").join(pid.to_string()).exists()
    }

    /// Removes everything left under these names; errors are ignored.
    pub fn remove_all(&self) {
        for entry in self.shm_entries() {
            let _ = fs::remove_file(Path::new(SHM_DIR).join(entry));
        }
        let _ = posixmq::remove_queue(self.queue());
    }

    fn proc_started(&self, pid: u32) {
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        self.inner.spawned.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }

    fn proc_dropped(&self) {
        if self.inner.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.remove_all();
        }
    }
}

/// Whether the message queue `name` exists: opening it fails with ENOENT
/// when it does not. Any other outcome counts as existing.
pub fn queue_exists(name: &str) -> bool {
    match posixmq::PosixMq::open(name) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::ENOENT),
    }
}

/// How often [`wait_until`] and [`holds_for`] look.
const POLL: Duration = Duration::from_millis(10);

/// Polls `cond` every 10 ms until it holds or `timeout` runs out; returns
/// its last value. Every wait of the tests for something to happen is one
/// of these, with a generous `timeout`: it costs only the time the event
/// takes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

/// Polls `cond` every 10 ms for `period`; false as soon as it fails. For
/// what must keep holding (a process that must not exit): only there does
/// a test spend a fixed time.
pub fn holds_for(period: Duration, mut cond: impl FnMut() -> bool) -> bool {
    !wait_until(period, || !cond())
}

/// Waits up to `timeout` for `child` (spawned without a [`Proc`], for its
/// own pipes) to exit; on timeout kills and reaps it and returns `None`.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    if wait_until(timeout, || {
        status = child.try_wait().expect("waiting for a child");
        status.is_some()
    }) {
        return status;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether the test runs as root (tests of other users and mount namespaces
/// need it).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The other local user of the tests that need one: uid/gid 65534, through
/// `setpriv`.
pub const NOBODY: u32 = 65534;

/// Slack over any bound a program promises, for a loaded machine.
pub const SLACK: Duration = Duration::from_secs(8);

/// Prints why a root-only test does nothing and returns whether it may run.
pub fn root_or_skip() -> bool {
    if !is_root() {
        println!("skipped: not root");
    }
    is_root()
}

/// Whether `setpriv` can run a command as [`NOBODY`]; prints why not, naming
/// the `part` of the test that is skipped.
pub fn other_user_or_skip(part: &str) -> bool {
    let ok = is_root()
        && Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped part: {part} (needs root and setpriv)");
    }
    ok
}

/// `cmd` run as uid/gid [`NOBODY`] with no supplementary groups, keeping its
/// environment changes and working directory.
pub fn as_nobody(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// `cmd` run under `strace`, which sends it SIGSTOP as it makes the system
/// call `syscall` (the call completes; the program stops before its next
/// step): a program held at one point of its work, whatever the timing.
/// [`TracedChild`] finds the program's pid and kills it when dropped.
pub fn stopped_at_syscall(cmd: &Command, syscall: &str) -> Command {
    let mut wrapped = Command::new("strace");
    wrapped
        .args(["-f", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscall}"))
        .arg("-e")
        .arg(format!("inject={syscall}:signal=SIGSTOP"))
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// The program a [`stopped_at_syscall`] command runs: the one child of its
/// `strace`. Dropped, it kills the program (a tracer that is killed leaves
/// its stopped tracee behind).
#[derive(Debug)]
pub struct TracedChild(pub u32);

impl TracedChild {
    /// The child of the `strace` that runs as `tracer`, once it exists.
    #[track_caller]
    pub fn of(tracer: &Proc) -> TracedChild {
        let children = format!("/proc/{0}/task/{0}/children", tracer.pid());
        let mut pid = None;
        let found = wait_until(TIMEOUT, || {
            pid = fs::read_to_string(&children).ok().and_then(|c| c.split_whitespace().next()?.parse().ok());
            pid.is_some()
        });
        assert!(found, "strace started no program\n{}", tracer.snapshot());
        TracedChild(pid.expect("found"))
    }

    /// Whether it is stopped (by a signal, or for its tracer).
    pub fn is_stopped(&self) -> bool {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.0)).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with(['T', 't']))
    }

    /// Sends it `signal`.
    pub fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0 as i32), signal);
    }
}

impl Drop for TracedChild {
    fn drop(&mut self) {
        if Path::new(&format!("/proc/{}", self.0)).exists() {
            self.signal(Signal::SIGKILL);
        }
    }
}

/// Panics, listing what is left, unless nothing exists under `names`.
pub fn assert_no_leftovers(names: &Names) {
    let left = names.leftovers();
    assert!(left.is_empty(), "leftovers for queue {}:\n  {}", names.queue(), left.join("\n  "));
}

/// A command for `bin` with the test environment: `SHMXFER_QUEUE` removed,
/// `RUST_BACKTRACE=1`, and `--queue` when `names` is given.
pub fn command(bin: &str, names: Option<&Names>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_remove("SHMXFER_QUEUE")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null());
    if let Some(names) = names {
        cmd.arg("--queue").arg(names.queue());
    }
    cmd
}

/// A client command on the test's queue with `args` appended.
pub fn client<I, S>(names: &Names, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = command(CLIENT, Some(names));
    cmd.args(args);
    cmd
}

/// Renders a command for a failure message.
fn describe_command(cmd: &Command) -> String {
    let mut s = String::new();
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("(cd {dir:?}) "));
    }
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={:?} ", k.to_string_lossy(), v));
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        s.push_str(&format!(" {arg:?}"));
    }
    s
}

type Buffer = Arc<Mutex<Vec<u8>>>;

fn drain(mut from: impl Read + Send + 'static, into: Buffer) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match from.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    })
}

/// A spawned binary whose stdout and stderr are drained by threads.
///
/// `Drop` sends SIGKILL if it still runs, reaps it, and, if it is the last
/// live process of its [`Names`], removes what is left under them.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    cmd: String,
    status: Option<ExitStatus>,
    started: Instant,
    ended: Option<Instant>,
    stdout: Buffer,
    stderr: Buffer,
    drains: Vec<JoinHandle<()>>,
    names: Option<Names>,
}

impl Proc {
    /// Spawns `cmd` with piped stdout/stderr. `names` are the OS names the
    /// process may create, removed when the last process using them is
    /// dropped.
    pub fn spawn(mut cmd: Command, names: Option<&Names>) -> Proc {
        let desc = describe_command(&cmd);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
        let stdout: Buffer = Arc::default();
        let stderr: Buffer = Arc::default();
        let drains = vec![
            drain(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            drain(child.stderr.take().unwrap(), Arc::clone(&stderr)),
        ];
        if let Some(names) = names {
            names.proc_started(child.id());
        }
        Proc {
            child,
            cmd: desc,
            status: None,
            started: Instant::now(),
            ended: None,
            stdout,
            stderr,
            drains,
            names: names.cloned(),
        }
    }

    /// Spawns `cmd` as [`Proc::spawn`] does, with its stderr on a new
    /// pseudo-terminal `cols` columns wide (its stdout still a pipe): what a
    /// program shows only on a terminal, as a person sees it. What it writes
    /// there is read as its stderr, with the terminal's `\r\n` line ends
    /// and escape sequences.
    pub fn spawn_on_terminal(mut cmd: Command, names: Option<&Names>, cols: u16) -> Proc {
        let size = nix::pty::Winsize { ws_row: 40, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(&size, None).expect("open a pseudo-terminal");
        let desc = describe_command(&cmd);
        cmd.stdout(Stdio::piped()).stderr(Stdio::from(pty.slave));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
        // The child holds the only other descriptor of the terminal now: a
        // read of its other side ends (EIO) once the child has exited.
        drop(cmd);
        let stdout: Buffer = Arc::default();
        let stderr: Buffer = Arc::default();
        let drains = vec![
            drain(child.stdout.take().unwrap(), Arc::clone(&stdout)),
            drain(fs::File::from(pty.master), Arc::clone(&stderr)),
        ];
        if let Some(names) = names {
            names.proc_started(child.id());
        }
        Proc {
            child,
            cmd: format!("{desc} 2>(a terminal of {cols} columns)"),
            status: None,
            started: Instant::now(),
            ended: None,
            stdout,
            stderr,
            drains,
            names: names.cloned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.ended = Some(Instant::now());
                    self.status = Some(status);
                    // The pipes close when the process exits; collect the
                    // rest of its output.
                    for d in self.drains.drain(..) {
                        let _ = d.join();
                    }
                    return self.status;
                }
                Ok(None) => {}
                Err(e) => panic!("waiting for {}: {e}", self.cmd),
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.wait_timeout(Duration::ZERO).is_none()
    }

    /// Sends `signal` to the process (unless it has been reaped).
    pub fn signal(&mut self, signal: Signal) {
        if self.status.is_some() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {}: {e}", self.cmd));
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let status = self.child.wait().ok();
            self.ended = Some(Instant::now());
            self.status = status;
        }
    }

    /// The regular files below `dir` that the process has open, with their
    /// current sizes, found through `/proc/<pid>/fd`. Unnamed (`O_TMPFILE`)
    /// and unlinked files count: their link reads `<dir>/#<ino> (deleted)`.
    pub fn open_files_under(&self, dir: &Path) -> Vec<(PathBuf, u64)> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let fds = Path::new("/proc").join(self.pid().to_string()).join("fd");
        let mut found = Vec::new();
        let Ok(entries) = fs::read_dir(&fds) else {
            return found;
        };
        for entry in entries.flatten() {
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            if !target.starts_with(&dir) {
                continue;
            }
            if let Ok(meta) = fs::metadata(entry.path()) {
                if meta.is_file() {
                    found.push((target, meta.len()));
                }
            }
        }
        found
    }

    /// Whether the process is receiving data for `final_name` into `dir`:
    /// it holds a file open there that is not the final file (its
    /// temporary file, named or not) and already has more than
    /// [`IN_FLIGHT`] bytes, so a small file before it in the same run
    /// (whose temporary is briefly open too) is never taken for it.
    pub fn is_receiving_in(&self, dir: &Path, final_name: &str) -> bool {
        self.open_files_under(dir)
            .iter()
            .any(|(path, len)| *len > IN_FLIGHT && path.file_name() != Some(OsStr::new(final_name)))
    }

    /// Waits until the process is receiving `final_name` into `dir` (see
    /// [`Proc::is_receiving_in`]), so the transfer is certainly in flight;
    /// fails if it exits first.
    #[track_caller]
    pub fn wait_receiving_in(&mut self, dir: &Path, final_name: &str) {
        let ok = wait_until(TIMEOUT, || self.is_receiving_in(dir, final_name) || !self.is_running());
        assert!(ok && self.is_running(), "client never got mid-transfer\n{}", self.snapshot());
    }

    /// What the process printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// What the process printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits up to `timeout` for the process to exit and returns what it did.
    /// On timeout the process is killed and the test fails.
    pub fn finish(&mut self, timeout: Duration) -> Finished {
        if self.wait_timeout(timeout).is_none() {
            self.kill();
            panic!("\n\n==========\nprocess did not exit within {timeout:?}; killed it\n{}", self.snapshot());
        }
        self.snapshot()
    }

    /// Everything known about the process now.
    pub fn snapshot(&self) -> Finished {
        Finished {
            cmd: self.cmd.clone(),
            status: self.status,
            elapsed: self.ended.unwrap_or_else(Instant::now) - self.started,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(names) = &self.names {
            names.proc_dropped();
        }
    }
}

/// The outcome of a process: its command, exit status and output.
#[derive(Clone, Debug)]
pub struct Finished {
    pub cmd: String,
    /// `None` while the process still runs.
    pub status: Option<ExitStatus>,
    /// From spawn to exit (or to now, if it still runs).
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code, `None` if killed by a signal or still running.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Fails the test, printing the process, unless it exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        if self.code() != Some(code) {
            panic!("\n\n==========\nexpected exit code {code}\n{self}");
        }
        self
    }

    /// Fails the test, printing the process, unless `cond` holds.
    #[track_caller]
    pub fn check(&self, cond: bool, what: &str) -> &Self {
        if !cond {
            panic!("\n\n==========\ncheck failed: {what}\n{self}");
        }
        self
    }

    /// Fails the test unless every line on stderr starts with `prefix`.
    #[track_caller]
    pub fn assert_stderr_prefixed(&self, prefix: &str) -> &Self {
        if let Some(line) = self.stderr.lines().find(|l| !l.starts_with(prefix)) {
            panic!("\n\n==========\nstderr line not prefixed with {prefix:?}: {line:?}\n{self}");
        }
        self
    }

    /// Fails the test unless every line on stderr is a server log line: a
    /// time (see [`split_log_time`]), a space, then `prefix`.
    #[track_caller]
    pub fn assert_log_prefixed(&self, prefix: &str) -> &Self {
        let bad = |l: &str| split_log_time(l).is_none_or(|(_, rest)| !rest.starts_with(prefix));
        if let Some(line) = self.stderr.lines().find(|l| bad(l)) {
            panic!("\n\n==========\nstderr line not a log line (time, then {prefix:?}): {line:?}\n{self}");
        }
        self
    }

    /// Fails the test unless stdout consists of exactly `lines`.
    #[track_caller]
    pub fn assert_stdout_lines(&self, lines: &[String]) -> &Self {
        let got: Vec<&str> = self.stdout.lines().collect();
        let want: Vec<&str> = lines.iter().map(String::as_str).collect();
        if got != want {
            panic!("\n\n==========\nstdout differs\nexpected lines:\n{}\n{self}", want.join("\n"));
        }
        self
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => "still running".to_string(),
        };
        write!(
            f,
            "command: {}\nstatus: {}\nelapsed: {:?}\n\nstdout:\n{}\n\nstderr:\n{}\n==========\n",
            self.cmd,
            status,
            self.elapsed,
            clip(&self.stdout),
            clip(&self.stderr)
        )
    }
}

/// Keeps failure messages readable when a process printed a lot.
fn clip(s: &str) -> &str {
    shmxfer::testing::protocol::truncate_utf8(s, 16 * 1024)
}

/// A test's world: its names and a temporary directory holding `root`
/// (what the server serves), `out` (where the client writes) and `cwd` (the
/// working directory of spawned processes).
#[derive(Debug)]
pub struct TestEnv {
    // Processes run inside this directory; a test declares its `Proc`s
    // after its `TestEnv`, so they are gone before the directory is removed.
    tmp: tempfile::TempDir,
    pub names: Names,
    root: PathBuf,
    out: PathBuf,
    cwd: PathBuf,
}

impl TestEnv {
    /// Lets another user read the root and write the out dir and cwd.
    pub fn open_to_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        for (dir, mode) in
            [(self.tmp(), 0o755), (self.root(), 0o755), (self.out(), 0o777), (self.cwd(), 0o777)]
        {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).expect("chmod test dir");
        }
    }

    /// Spawns a client fetching `files` into [`TestEnv::out`] with `opts`
    /// before them.
    pub fn fetch_with(&self, opts: &[&str], files: &[&str]) -> Proc {
        self.fetch_into(self.out(), opts, files)
    }

    /// Spawns a client fetching `files` into `out` with `opts` before them.
    pub fn fetch_into(&self, out: &Path, opts: &[&str], files: &[&str]) -> Proc {
        let out = out.to_str().expect("utf-8 temp path");
        let mut args = vec!["-o", out];
        args.extend_from_slice(opts);
        args.extend_from_slice(files);
        self.client(&args)
    }
}

impl TestEnv {
    /// A fresh world for the test `test_name`.
    pub fn new(test_name: &str) -> TestEnv {
        let tmp = tempfile::Builder::new().prefix("shmxfer-test-").tempdir().expect("create temp dir");
        let root = tmp.path().join("root");
        let out = tmp.path().join("out");
        let cwd = tmp.path().join("cwd");
        for d in [&root, &out, &cwd] {
            fs::create_dir(d).expect("create test dir");
        }
        TestEnv { tmp, names: Names::new(test_name), root, out, cwd }
    }

    /// The temporary directory holding everything else.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// The directory the server serves.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory `fetch` writes to.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The working directory of spawned processes.
    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    /// Path of `rel` below the served root.
    pub fn in_root(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Path of `name` in the out dir.
    pub fn in_out(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// Creates `rel` below the root with `contents`, making parent dirs.
    pub fn create(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        path
    }

    /// Creates `rel` below the root with `len` pseudo-random bytes from
    /// `seed`.
    pub fn create_random(&self, rel: &str, len: u64, seed: u64) -> PathBuf {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        write_random_file(&path, len, seed);
        path
    }

    /// Spawns a server on this test's queue serving `root()`.
    pub fn server(&self, extra_args: &[&str]) -> Proc {
        self.server_in(&self.root, extra_args)
    }

    /// Spawns a server on this test's queue serving `root`.
    pub fn server_in(&self, root: &Path, extra_args: &[&str]) -> Proc {
        let mut cmd = command(SERVER, Some(&self.names));
        cmd.arg("--root").arg(root).args(extra_args).current_dir(&self.cwd);
        Proc::spawn(cmd, Some(&self.names))
    }

    /// Spawns a server and waits until its queue exists, so that it has
    /// set itself up (signal handlers included).
    pub fn ready_server(&self, extra_args: &[&str]) -> Proc {
        let mut server = self.server(extra_args);
        wait_for_queue(&self.names, &mut server);
        server
    }

    /// A client command on this test's queue, run in `cwd()`.
    pub fn client_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = client(&self.names, args);
        cmd.current_dir(&self.cwd);
        cmd
    }

    /// Spawns a client with `args`.
    pub fn client(&self, args: &[&str]) -> Proc {
        Proc::spawn(self.client_cmd(args), Some(&self.names))
    }

    /// Runs a client with `args` to completion (at most `TIMEOUT`).
    pub fn run_client(&self, args: &[&str]) -> Finished {
        self.client(args).finish(TIMEOUT)
    }

    /// Spawns a client fetching `files` into `out()`.
    pub fn fetch_proc(&self, files: &[&str]) -> Proc {
        let out = self.out.to_str().expect("utf-8 temp path").to_string();
        let mut args = vec!["-o", out.as_str()];
        args.extend_from_slice(files);
        self.client(&args)
    }

    /// Fetches `files` into `out()` and returns the outcome.
    pub fn fetch(&self, files: &[&str]) -> Finished {
        self.fetch_proc(files).finish(TIMEOUT)
    }

    /// Fails unless `out()/<final component of rel>` equals `root()/rel`.
    #[track_caller]
    pub fn assert_delivered(&self, rel: &str) {
        let name = Path::new(rel).file_name().expect("file name");
        assert_same_file(&self.root.join(rel), &self.out.join(name));
    }

    /// Fails unless nothing is left under this test's names.
    #[track_caller]
    pub fn assert_no_leftovers(&self) {
        assert_no_leftovers(&self.names);
    }

    /// The names of the entries of the out dir, sorted.
    pub fn out_entries(&self) -> Vec<String> {
        dir_entries(&self.out)
    }
}

impl TestEnv {
    /// Whether `client` is receiving data for `final_name` into
    /// [`TestEnv::out`]: it holds a non-empty file open there that is not the
    /// final file (its temporary file, named or not).
    pub fn is_receiving(&self, client: &Proc, final_name: &str) -> bool {
        client.is_receiving_in(self.out(), final_name)
    }

    /// Waits until `client` is receiving `final_name` (see
    /// [`TestEnv::is_receiving`]), so the transfer is certainly in flight.
    #[track_caller]
    pub fn wait_receiving(&self, client: &mut Proc, final_name: &str) {
        client.wait_receiving_in(self.out(), final_name);
    }

    /// Creates `big.bin` ([`BIG`] bytes from `seed`), starts a server with
    /// `server_args` and a client fetching it into `out()` with
    /// `client_args`, and returns them once the transfer is in flight.
    pub fn big_transfer_in_flight(
        &self,
        server_args: &[&str],
        client_args: &[&str],
        seed: u64,
    ) -> (Proc, Proc) {
        self.create_random("big.bin", BIG, seed);
        let server = self.ready_server(server_args);
        let out = self.out.to_str().expect("utf-8 temp path");
        let mut args = vec!["-o", out];
        args.extend_from_slice(client_args);
        args.push("big.bin");
        let mut client = self.client(&args);
        self.wait_receiving(&mut client, "big.bin");
        (server, client)
    }

    /// Spawns `shm_server --cleanup` on this test's queue.
    pub fn cleanup(&self) -> Proc {
        let mut cmd = command(SERVER, Some(&self.names));
        cmd.arg("--cleanup");
        Proc::spawn(cmd, Some(&self.names))
    }

    /// Asks a persistent server to stop and checks that it did: the stopping
    /// client exits 0 once the queue is gone, and the server exits 0.
    #[track_caller]
    pub fn stop_server(&self, server: &mut Proc) {
        // The server may still be starting: --stop-server waits only when told to.
        let stop = self.run_client(&["--stop-server", "--wait", "30"]);
        stop.assert_code(0);
        stop.check(!self.names.queue_exists(), "the queue is gone when --stop-server returns");
        server.finish(TIMEOUT).assert_code(0);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Processes declared after the environment are gone by now.
        self.names.remove_all();
    }
}

/// Waits until the queue of `names` exists; fails if `server` exits first
/// or it takes longer than `TIMEOUT`.
#[track_caller]
pub fn wait_for_queue(names: &Names, server: &mut Proc) {
    let deadline = Instant::now() + TIMEOUT;
    while !names.queue_exists() {
        if !server.is_running() {
            panic!("\n\n==========\nserver exited before its queue appeared\n{}", server.snapshot());
        }
        if Instant::now() >= deadline {
            server.kill();
            panic!(
                "\n\n==========\nqueue {} did not appear within {TIMEOUT:?}\n{}",
                names.queue(),
                server.snapshot()
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The names of the entries of `dir`, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read dir {dir:?}: {e}"))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The success line the client prints for `rel` of `len` bytes, written
/// under its final component: the requested path, and the output name after
/// an arrow where it differs.
pub fn received_line(rel: &str, len: u64) -> String {
    let unit = if len == 1 { "byte" } else { "bytes" };
    match final_component(rel) {
        name if name == rel => format!("{rel}: received {len} {unit}"),
        name => format!("{rel}: received {len} {unit} → {name}"),
    }
}

/// The final path component of `rel`.
pub fn final_component(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same bytes on every run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Writes `len` pseudo-random bytes from `seed` to `path`, 1 MiB at a time.
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let file = fs::File::create(path).unwrap_or_else(|e| panic!("create {path:?}: {e}"));
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        left -= n as u64;
    }
    w.flush().unwrap_or_else(|e| panic!("write {path:?}: {e}"));
}

/// Fails unless `actual` exists and has the same bytes as `expected`. The
/// message gives sizes and the first differing offset, never the contents.
#[track_caller]
pub fn assert_same_file(expected: &Path, actual: &Path) {
    let want_len = fs::metadata(expected).unwrap_or_else(|e| panic!("expected file {expected:?}: {e}")).len();
    let got_meta = match fs::metadata(actual) {
        Ok(m) => m,
        Err(e) => panic!("file {actual:?} was not delivered ({e}); expected a copy of {expected:?}"),
    };
    assert!(got_meta.is_file(), "{actual:?} is not a regular file; expected a copy of {expected:?}");
    let mut a = io::BufReader::new(fs::File::open(expected).expect("open expected"));
    let mut b = io::BufReader::new(fs::File::open(actual).expect("open actual"));
    let mut ba = vec![0u8; 1 << 16];
    let mut bb = vec![0u8; 1 << 16];
    let mut offset: u64 = 0;
    loop {
        let na = read_full(&mut a, &mut ba);
        let nb = read_full(&mut b, &mut bb);
        let n = na.min(nb);
        // The slice comparison is a memcmp even in a debug build; the
        // byte-by-byte search runs only on a difference.
        if ba[..n] != bb[..n] {
            let i = (0..n).find(|&i| ba[i] != bb[i]).expect("the slices differ");
            let at = offset + i as u64;
            let hi = (i + 8).min(n);
            panic!(
                "{actual:?} differs from {expected:?} at byte {at} \
                 (sizes {} vs {want_len}): expected {:02x?}, got {:02x?}",
                got_meta.len(),
                &ba[i..hi],
                &bb[i..hi]
            );
        }
        if na != nb {
            panic!(
                "{actual:?} has {} bytes, {expected:?} has {want_len}; \
                 the first {} bytes match",
                got_meta.len(),
                offset + n as u64
            );
        }
        if na == 0 {
            return;
        }
        offset += n as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    n
}

/// The fixture checks itself: a leftover check that sees nothing would make
/// every scenario pass vacuously.
mod selftest {
    use super::*;

    #[test]
    fn fixture_sees_and_removes_leftovers() {
        /// Removes what the test made, even when an assertion fails first.
        struct Cleanup(Names);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                self.0.remove_all();
                if let Ok(dir) = fs::read_dir(SHM_DIR) {
                    for entry in dir.flatten() {
                        if entry.file_name().to_string_lossy().starts_with(self.0.stem()) {
                            let _ = fs::remove_file(entry.path());
                        }
                    }
                }
            }
        }
        let names = Names::new("fixture_sees_and_removes_leftovers");
        let _cleanup = Cleanup(names.clone());
        let other = Names::new("fixture_sees_and_removes_leftovers");
        assert_ne!(names.queue(), other.queue());
        assert!(names.leftovers().is_empty());

        let shm = Path::new(SHM_DIR);
        // A session object of a process that is gone: a leftover. One of a
        // live process that is no child of these names (this test process
        // stands in for another test's `--status --all`): not ours.
        let mut gone = Command::new("true").spawn().unwrap();
        let dead_pid = gone.id();
        gone.wait().unwrap();
        let stranger = format!("{}.{}.00000000000000aa", names.stem(), std::process::id());
        fs::write(shm.join(&stranger), b"").unwrap();
        let region = format!("{}.{dead_pid}.0123456789abcdef", names.stem());
        let sem = format!("sem.{region}.items");
        let lock = format!("{}.lock", names.stem());
        for entry in [&region, &sem, &lock] {
            fs::write(shm.join(entry), b"").unwrap();
        }
        // A name that merely shares a prefix with ours is not ours.
        let lookalike = format!("{}0.lock", names.stem());
        fs::write(shm.join(&lookalike), b"").unwrap();
        let _queue = posixmq::PosixMq::create(names.queue()).unwrap();

        assert!(names.queue_exists());
        assert!(names.lock_exists());
        // The live stranger's object is not counted as ours, nor removed.
        assert_eq!(names.client_regions(), [region.as_str()]);
        let left = names.leftovers();
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(!left.iter().any(|l| l.contains(&lookalike)), "{left:?}");
        assert!(
            !left.iter().any(|l| l.contains(&stranger)),
            "a live stranger's object is not ours: {left:?}"
        );

        names.remove_all();
        assert!(names.leftovers().is_empty(), "{:?}", names.leftovers());
        assert!(!names.queue_exists());
        assert!(shm.join(&stranger).exists(), "a live stranger's object is left to it");
        fs::remove_file(shm.join(&stranger)).unwrap();
        fs::remove_file(shm.join(&lookalike)).unwrap();
    }

    #[test]
    fn proc_sees_files_it_holds_open_below_a_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec 3>part; printf data >&3; rm part; echo ready; exec sleep 30")
            .current_dir(tmp.path());
        let mut p = Proc::spawn(cmd, None);
        assert!(wait_until(TIMEOUT, || p.stdout().contains("ready")));
        let open = p.open_files_under(tmp.path());
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].1, 4);
        assert!(open[0].0.to_string_lossy().ends_with("(deleted)"), "{open:?}");
        p.kill();
        assert!(!p.is_running());
    }

    #[test]
    fn longest_test_name_gives_names_within_limits() {
        let names = Names::new(&"x".repeat(300));
        assert!(names.queue().len() < 80, "{}", names.queue());
        assert!(!names.stem().contains('/'));
    }

    #[test]
    fn same_file_check_reports_the_first_difference() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        write_random_file(&a, 100_000, 1);
        write_random_file(&b, 100_000, 1);
        assert_same_file(&a, &b);
        let mut bytes = fs::read(&b).unwrap();
        bytes[70_000] ^= 1;
        fs::write(&b, &bytes).unwrap();
        let err = std::panic::catch_unwind(|| assert_same_file(&a, &b)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("at byte 70000"), "{msg}");
        fs::write(&b, &bytes[..5]).unwrap();
        let err = std::panic::catch_unwind(|| assert_same_file(&a, &b)).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("has 5 bytes"), "{msg}");
    }
}

/// Splits a log line into its time and the rest: the line must begin with an
/// RFC 3339 time in UTC to the millisecond (`2026-12-01T11:45:35.123Z`) and a
/// space. `None` for any other line.
pub fn split_log_time(line: &str) -> Option<(std::time::SystemTime, &str)> {
    let (stamp, rest) = line.split_at_checked(24)?;
    let rest = rest.strip_prefix(' ')?;
    let b = stamp.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let fits = b.iter().zip(shape).all(|(c, s)| if *s == b'd' { c.is_ascii_digit() } else { c == s });
    if !fits {
        return None;
    }
    let num = |r: std::ops::Range<usize>| stamp[r].parse::<i64>().unwrap();
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, min, sec, ms) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms_since_epoch = ((days * 24 + hour) * 60 + min) * 60_000 + sec * 1000 + ms;
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms_since_epoch).ok()?);
    Some((at, rest))
}

// ---------------------------------------------------------------------------
// Helpers shared by the tests of hostile users, stopped peers, leftovers and
// uploads
// ---------------------------------------------------------------------------

/// Runs `cmd` to completion and fails unless it exits 0.
#[track_caller]
pub fn run_ok(mut cmd: impl std::borrow::BorrowMut<Command>) {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

/// Stops a persistent server with SIGTERM (waking it first) and checks it
/// exited 0.
#[track_caller]
pub fn terminate(server: &mut Proc) {
    server.signal(Signal::SIGCONT);
    server.signal(Signal::SIGTERM);
    server.finish(TIMEOUT).assert_code(0);
}

/// Stops a persistent server through the client and checks it exited 0.
#[track_caller]
pub fn stop(env: &TestEnv, server: &mut Proc) {
    env.stop_server(server);
}

/// Fails unless the out dir of `env` is empty.
#[track_caller]
pub fn assert_out_empty(env: &TestEnv) {
    assert!(env.out_entries().is_empty(), "out dir holds {:?}", env.out_entries());
}

/// A fresh directory `name` in the test's temporary directory.
pub fn new_dir(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.tmp().join(name);
    fs::create_dir(&dir).expect("create dir");
    dir
}

/// Keeps the names of `env` from being cleaned up while the test runs: a
/// [`Proc`] of these names removes whatever is left under them when it is
/// the last one dropped, and a test that plants another user's objects
/// must see what the programs do to them, not what the fixture does.
pub fn hold_names(env: &TestEnv) -> Proc {
    let mut cmd = Command::new("sleep");
    cmd.arg("600");
    Proc::spawn(cmd, Some(&env.names))
}

/// Path of `name` in `/dev/shm`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name)
}

/// A FIFO at `/dev/shm/<name>`, made by another user when we are root.
pub fn foreign_fifo(name: &str) -> PathBuf {
    let path = shm_path(name);
    let mut cmd = Command::new("mkfifo");
    cmd.arg("-m").arg("0666").arg(&path);
    run_ok(if is_root() { as_nobody(&cmd) } else { cmd });
    path
}

/// Session object names of a client `pid` of `names`' queue: region, items,
/// spaces, as they appear in `/dev/shm`.
pub fn session_entries(names: &Names, pid: u32, hex: &str) -> [String; 3] {
    let region = format!("{}.{pid}.{hex}", names.stem());
    [format!("sem.{region}.items"), format!("sem.{region}.spaces"), region]
}

/// Fills the queue of `names` with small garbage messages until it is
/// full; returns how many went in.
pub fn fill_queue(names: &Names) -> usize {
    let mq = posixmq::OpenOptions::writeonly().nonblocking().open(names.queue()).expect("open the queue");
    let mut sent = 0;
    loop {
        match mq.send(0, b"filler") {
            Ok(()) => sent += 1,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return sent,
            Err(e) => panic!("filling {}: {e}", names.queue()),
        }
    }
}

/// A persistent server of user [`NOBODY`] on the test's queue, once its
/// queue exists (the test's directories opened to that user first).
pub fn persistent_server_of_another_user(env: &TestEnv) -> Proc {
    env.open_to_others();
    let mut cmd = command(SERVER, Some(&env.names));
    cmd.arg("--root").arg(env.root()).arg("--persistent").current_dir(env.cwd());
    let mut server = Proc::spawn(as_nobody(&cmd), Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    server
}

/// Fails unless `done` exited with `code` within `bound`.
#[track_caller]
pub fn assert_exit_within(done: &Finished, code: i32, bound: Duration) {
    done.assert_code(code);
    assert!(done.elapsed <= bound, "took {:?}, allowed {bound:?}\n{done}", done.elapsed);
}

/// Fails unless `done` found no server it may use (exit 3, or 4 for an
/// object it refuses) within `bound`.
#[track_caller]
pub fn assert_no_server(done: &Finished, bound: Duration) {
    assert!(matches!(done.code(), Some(3) | Some(4)), "expected exit 3 or 4\n{done}");
    assert!(done.elapsed <= bound, "took {:?}, allowed {bound:?}\n{done}", done.elapsed);
}

/// Waits until no client region of `names` is left.
#[track_caller]
pub fn assert_client_objects_gone(names: &Names) {
    let gone = wait_until(TIMEOUT, || names.client_regions().is_empty());
    assert!(gone, "client objects left: {:?}", names.shm_entries());
}

pub fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

pub fn sources(env: &TestEnv) -> PathBuf {
    let dir = env.tmp().join("src");
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

pub fn accepting(env: &TestEnv, extra: &[&str]) -> Proc {
    let mut args = vec!["--persistent", "--accept", s(env.out())];
    args.extend_from_slice(extra);
    env.ready_server(&args)
}
