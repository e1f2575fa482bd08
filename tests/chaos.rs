//! Chaos: a seeded random schedule of client SIGKILL, SIGINT, two SIGTERMs
//! at once (as GNU `timeout` sends them) and SIGHUP; server SIGKILL followed
//! at once by a new server on the same queue, server SIGHUP and SIGTERM
//! together (it must stop cleanly, exit 0) followed by a new server, and
//! SIGSTOP/SIGCONT of clients and servers, over random files of 0 bytes to
//! 20 MiB (8 MiB in the short run). At the end it counts, and asserts to be zero:
//!
//! - corrupt: a file under a final name that differs from its source;
//! - hung: a client alive past its bound (`--wait` + `--stall-timeout` +
//!   the session-start limit + the time it or its server was stopped + a
//!   margin);
//! - leaked: anything of the test's names left in `/dev/shm` or the queue
//!   namespace once the last server stopped;
//! - litter: any other entry (a temporary file) in an output directory.
//!
//! It prints its seed; `CHAOS_SEED=N` replays a schedule. By default the
//! run is short (a few seconds): at least [`SHORT_SESSIONS`] client
//! sessions, the first clients SIGKILLed, SIGINTed, SIGTERMed twice, SIGHUPed
//! and SIGSTOPped in turn and the first server events a kill, a stop and a
//! hang-up, and on until each of these eight faults has struck a running
//! process at least once (the test fails if
//! one never did). `SOAK=N` runs N client sessions of a random schedule
//! instead, for long runs (`SOAK=2000 CHAOS_SEED=N cargo test --release
//! chaos`).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    command, dir_entries, wait_until, Proc, Rng, Signal, TestEnv, CLIENT, COLLECT_EVERY, MIB, SERVER, TIMEOUT,
};

/// Largest file served in a soak run.
const MAX_FILE: u64 = 20 * MIB;
/// Largest file served in the short run.
const SHORT_MAX_FILE: u64 = 8 * MIB;
/// Files in the served root.
const FILES: usize = 16;
/// Clients running at once.
const CLIENTS: usize = 4;
/// The clients' `--wait`.
const WAIT_SECS: u64 = 5;
/// The `--stall-timeout` of both programs, when they have the option.
const STALL_SECS: u64 = 2;
/// A live server takes a new session within this long.
const SESSION_START: Duration = Duration::from_secs(10);
/// Slack over every bound, for a loaded machine.
const MARGIN: Duration = Duration::from_secs(20);
/// Client sessions of the default, short run, at the least.
const SHORT_SESSIONS: usize = 12;
/// Client sessions of the short run at the most, while it waits for every
/// fault to strike.
const SHORT_CAP: usize = 200;
/// The fates of the short run's first clients, in turn.
const FIRST_FATES: [Fate; 6] = [
    Fate::Kill,
    Fate::Interrupt,
    Fate::DoubleTerm,
    Fate::Hangup,
    Fate::Stop(Duration::from_millis(2500)),
    Fate::Undisturbed,
];
/// Rate below which a transfer counts as stuck (bytes per second): a
/// debug build on a loaded machine is slow, so this is low.
const SLOWEST: u64 = 5 * MIB;

/// What the schedule does to one client.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Undisturbed,
    Kill,
    Interrupt,
    /// SIGTERM twice at once, as GNU `timeout` sends it (child and group).
    DoubleTerm,
    Hangup,
    Stop(Duration),
}

struct Client {
    id: usize,
    proc: Proc,
    out: PathBuf,
    files: Vec<String>,
    started: Instant,
    deadline: Instant,
    fate: Fate,
    fate_at: Instant,
    applied: bool,
    cont_at: Option<Instant>,
    /// Whether a signal reached it or its server was killed or stopped
    /// while it ran.
    disturbed: bool,
}

/// How long the test runs.
#[derive(Clone, Copy, Debug)]
enum Run {
    /// The default: a few seconds, every fault at least once.
    Short,
    /// `SOAK=N`: N client sessions of a random schedule.
    Soak(usize),
}

impl Run {
    /// The largest file served.
    fn max_file(self) -> u64 {
        match self {
            Run::Short => SHORT_MAX_FILE,
            Run::Soak(_) => MAX_FILE,
        }
    }

    /// Whether to start another client after `spawned` of them.
    fn more(self, spawned: usize, counts: &Counts) -> bool {
        match self {
            Run::Short => spawned < SHORT_SESSIONS || (!counts.every_fault_struck() && spawned < SHORT_CAP),
            Run::Soak(n) => spawned < n,
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    sessions: usize,
    corrupt: usize,
    hung: usize,
    leaked: usize,
    litter: usize,
    /// Undisturbed clients that did not exit 0.
    unexplained: usize,
    server_kills: usize,
    server_stops: usize,
    /// Servers given SIGHUP and SIGTERM at once, then replaced.
    server_hangups: usize,
    /// Signals that reached a running client.
    client_kills: usize,
    client_interrupts: usize,
    client_double_terms: usize,
    client_hangups: usize,
    client_stops: usize,
    unexpected_server_exits: usize,
    /// How the clients ended, by exit status, with their total run time.
    outcomes: BTreeMap<String, (usize, Duration)>,
}

/// Whether `bin --help` mentions `option`: the test runs against builds
/// with and without `--stall-timeout`.
fn has_option(bin: &str, option: &str) -> bool {
    std::process::Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(option))
        .unwrap_or(false)
}

impl Counts {
    /// Whether each kind of fault has reached a running process.
    fn every_fault_struck(&self) -> bool {
        [
            self.client_kills,
            self.client_interrupts,
            self.client_double_terms,
            self.client_hangups,
            self.client_stops,
            self.server_kills,
            self.server_stops,
            self.server_hangups,
        ]
        .iter()
        .all(|&n| n > 0)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// xxh3-64 of a file's bytes.
fn file_hash(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((len, h.digest()));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

struct Chaos {
    env: TestEnv,
    run: Run,
    rng: Rng,
    stall: bool,
    files: Vec<String>,
    sources: HashMap<String, (u64, u64)>,
    server: Proc,
    server_cont_at: Option<Instant>,
    /// Servers replaced: kept until the end, so that dropping them removes
    /// nothing under the test's names.
    dead_servers: Vec<Proc>,
    counts: Counts,
}

/// The servers' arguments.
fn server_args(stall: bool) -> Vec<String> {
    let mut args = ["--persistent", "-v", "--collect-every", COLLECT_EVERY].map(String::from).to_vec();
    if stall {
        args.extend(["--stall-timeout".to_string(), STALL_SECS.to_string()]);
    }
    args
}

impl Chaos {
    fn server_args(&self) -> Vec<String> {
        server_args(self.stall)
    }

    fn spawn_server(env: &TestEnv, args: &[String]) -> Proc {
        let mut cmd = command(SERVER, Some(&env.names));
        cmd.arg("--root").arg(env.root()).args(args).current_dir(env.cwd());
        Proc::spawn(cmd, None)
    }

    fn spawn_client(&mut self, id: usize) -> Client {
        let out = self.env.tmp().join(format!("out{id}"));
        fs::create_dir(&out).expect("create out dir");
        let n = self.rng.range(1, 5) as usize;
        let mut files: Vec<String> = Vec::new();
        while files.len() < n {
            let f = &self.files[self.rng.range(0, self.files.len() as u64) as usize];
            if !files.contains(f) {
                files.push(f.clone());
            }
        }
        let mut cmd = command(CLIENT, Some(&self.env.names));
        cmd.arg("-o").arg(&out).arg("--wait").arg(WAIT_SECS.to_string()).current_dir(self.env.cwd());
        if self.stall {
            cmd.arg("--stall-timeout").arg(STALL_SECS.to_string());
        }
        cmd.args(&files);
        let fate = match self.run {
            Run::Short if id < FIRST_FATES.len() => FIRST_FATES[id],
            _ => self.random_fate(),
        };
        // Mostly early, while even a fast transfer is in flight.
        let fate_at = match self.rng.range(0, 10) {
            0..=6 => Duration::from_micros(self.rng.range(0, 60_000)),
            _ => Duration::from_millis(self.rng.range(0, 1000)),
        };
        let bytes: u64 = files.iter().map(|f| self.sources[f].0).sum();
        let now = Instant::now();
        let mut bound = Duration::from_secs(WAIT_SECS + STALL_SECS) + SESSION_START + MARGIN;
        bound += Duration::from_secs(bytes / SLOWEST);
        if let Some(until) = self.server_cont_at {
            bound += until.saturating_duration_since(now);
        }
        let proc = Proc::spawn(cmd, None);
        // A client that meets a stopped server is disturbed from the start.
        let disturbed = self.server_cont_at.is_some();
        Client {
            id,
            proc,
            out,
            files,
            started: now,
            deadline: now + bound,
            fate,
            fate_at: now + fate_at,
            applied: false,
            cont_at: None,
            disturbed,
        }
    }

    /// A fate of the random schedule.
    fn random_fate(&mut self) -> Fate {
        match self.rng.range(0, 100) {
            0..=39 => Fate::Undisturbed,
            40..=57 => Fate::Kill,
            58..=69 => Fate::Interrupt,
            70..=77 => Fate::DoubleTerm,
            78..=84 => Fate::Hangup,
            _ => Fate::Stop(Duration::from_millis(self.rng.range(100, 4000))),
        }
    }

    /// Checks what a finished (or killed) client left in its out dir, then
    /// removes the dir.
    fn check_client(&mut self, c: &mut Client, hung: bool) {
        let done = c.proc.snapshot();
        let how = match (hung, done.status) {
            (true, _) => "hung".to_string(),
            (_, Some(s)) => s.to_string(),
            (_, None) => "running".to_string(),
        };
        let slot = self.counts.outcomes.entry(how).or_default();
        slot.0 += 1;
        slot.1 += done.elapsed;
        if !c.disturbed && !hung && done.code() != Some(0) {
            self.counts.unexplained += 1;
            eprintln!("chaos: client {} undisturbed but exited {:?}\n{done}", c.id, done.status);
        }
        for entry in dir_entries(&c.out) {
            let path = c.out.join(&entry);
            match self.sources.get(&entry) {
                Some(&(len, hash)) if c.files.contains(&entry) => match file_hash(&path) {
                    Ok(got) if got == (len, hash) => {}
                    got => {
                        self.counts.corrupt += 1;
                        eprintln!(
                            "chaos: client {}: {entry} is corrupt: {got:?}, want ({len}, {hash:#x})\n{done}",
                            c.id
                        );
                    }
                },
                _ => {
                    self.counts.litter += 1;
                    eprintln!("chaos: client {}: litter {entry:?} in its out dir\n{done}", c.id);
                }
            }
        }
        let _ = fs::remove_dir_all(&c.out);
    }

    fn disturb_all(clients: &mut [Client], extend: Duration) {
        for c in clients.iter_mut() {
            c.disturbed = true;
            c.deadline += extend;
        }
    }

    /// One event for the server: in the short run a kill and then a stop
    /// first, then random ones.
    fn server_event(&mut self, clients: &mut [Client]) {
        let roll = match self.run {
            Run::Short if self.counts.server_kills == 0 => 0,
            Run::Short if self.counts.server_stops == 0 => 50,
            Run::Short if self.counts.server_hangups == 0 => 90,
            _ => self.rng.range(0, 100),
        };
        match roll {
            0..=44 => {
                // SIGKILL, and at once a new server on the same queue.
                self.server.kill();
                self.server_cont_at = None;
                let next = Self::spawn_server(&self.env, &self.server_args());
                let old = std::mem::replace(&mut self.server, next);
                self.dead_servers.push(old);
                self.counts.server_kills += 1;
                Self::disturb_all(clients, Duration::ZERO);
            }
            80..=99 if self.server_cont_at.is_none() => {
                // SIGHUP and SIGTERM at once: the server must stop cleanly
                // (exit 0, its queue and lock removed), then a new one comes.
                self.server.signal(Signal::SIGHUP);
                self.server.signal(Signal::SIGTERM);
                let done = self.server.finish(TIMEOUT);
                if done.code() != Some(0) {
                    self.counts.unexpected_server_exits += 1;
                    eprintln!("chaos: a server given SIGHUP and SIGTERM did not exit 0\n{done}");
                }
                let next = Self::spawn_server(&self.env, &self.server_args());
                let old = std::mem::replace(&mut self.server, next);
                self.dead_servers.push(old);
                self.counts.server_hangups += 1;
                Self::disturb_all(clients, Duration::ZERO);
            }
            45..=79 if self.server_cont_at.is_none() => {
                let d = Duration::from_millis(self.rng.range(100, 4000));
                self.server.signal(Signal::SIGSTOP);
                self.server_cont_at = Some(Instant::now() + d);
                self.counts.server_stops += 1;
                Self::disturb_all(clients, d);
            }
            _ => {}
        }
    }
}

#[test]
fn chaos_of_kills_stops_and_replaced_servers_leaves_nothing_corrupt_hung_leaked_or_littered() {
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    let run = env_u64("SOAK").map_or(Run::Short, |n| Run::Soak(n as usize));
    eprintln!("chaos: seed {seed} (replay with CHAOS_SEED={seed})");
    let env = TestEnv::new("chaos");
    let mut rng = Rng::new(seed);
    // The files: one empty, one of the largest size, the rest spread over
    // the orders of magnitude in between.
    let mut files = Vec::new();
    let mut sources = HashMap::new();
    for i in 0..FILES {
        let len = match i {
            0 => 0,
            1 => run.max_file(),
            _ => match rng.range(0, 4) {
                0 => rng.range(1, 4096),
                1 => rng.range(4096, 256 * 1024),
                2 => rng.range(256 * 1024, 2 * MIB),
                _ => rng.range(2 * MIB, run.max_file() + 1),
            },
        };
        let name = format!("f{i:02}.bin");
        let path = env.create_random(&name, len, seed ^ (i as u64 + 1));
        sources.insert(name.clone(), file_hash(&path).expect("hash source"));
        files.push(name);
    }
    let stall = has_option(CLIENT, "--stall-timeout") && has_option(SERVER, "--stall-timeout");
    if !stall {
        eprintln!("chaos: the programs have no --stall-timeout; running without it");
    }
    let server = Chaos::spawn_server(&env, &server_args(stall));
    let mut chaos = Chaos {
        server,
        env,
        run,
        rng,
        stall,
        files,
        sources,
        server_cont_at: None,
        dead_servers: Vec::new(),
        counts: Counts::default(),
    };
    let started = Instant::now();
    let mut clients: Vec<Client> = Vec::new();
    let mut next_id = 0;
    let mut next_server_event = Instant::now() + Duration::from_millis(chaos.rng.range(500, 3000));
    let mut last_report = Instant::now();
    while run.more(next_id, &chaos.counts) || !clients.is_empty() {
        let now = Instant::now();
        while clients.len() < CLIENTS && run.more(next_id, &chaos.counts) {
            let c = chaos.spawn_client(next_id);
            next_id += 1;
            clients.push(c);
        }
        // The clients' fates.
        for c in clients.iter_mut() {
            if !c.applied && now >= c.fate_at && c.fate != Fate::Undisturbed && c.proc.is_running() {
                c.applied = true;
                c.disturbed = true;
                match c.fate {
                    Fate::Undisturbed => {}
                    Fate::Kill => {
                        chaos.counts.client_kills += 1;
                        c.proc.signal(Signal::SIGKILL);
                    }
                    Fate::Interrupt => {
                        chaos.counts.client_interrupts += 1;
                        c.proc.signal(Signal::SIGINT);
                    }
                    Fate::DoubleTerm => {
                        chaos.counts.client_double_terms += 1;
                        c.proc.signal(Signal::SIGTERM);
                        c.proc.signal(Signal::SIGTERM);
                    }
                    Fate::Hangup => {
                        chaos.counts.client_hangups += 1;
                        c.proc.signal(Signal::SIGHUP);
                    }
                    Fate::Stop(d) => {
                        chaos.counts.client_stops += 1;
                        c.proc.signal(Signal::SIGSTOP);
                        c.cont_at = Some(now + d);
                        c.deadline += d;
                    }
                }
            }
            if c.cont_at.is_some_and(|t| now >= t) {
                c.cont_at = None;
                c.proc.signal(Signal::SIGCONT);
            }
        }
        // The server's.
        if chaos.server_cont_at.is_some_and(|t| now >= t) {
            chaos.server_cont_at = None;
            chaos.server.signal(Signal::SIGCONT);
        }
        if now >= next_server_event && run.more(next_id, &chaos.counts) {
            chaos.server_event(&mut clients);
            next_server_event = now + Duration::from_millis(chaos.rng.range(100, 1500));
        }
        if !chaos.server.is_running() {
            let done = chaos.server.snapshot();
            chaos.counts.unexpected_server_exits += 1;
            eprintln!("chaos: the server exited by itself\n{done}");
            let next = Chaos::spawn_server(&chaos.env, &chaos.server_args());
            let old = std::mem::replace(&mut chaos.server, next);
            chaos.dead_servers.push(old);
        }
        // Reap.
        let mut i = 0;
        while i < clients.len() {
            let c = &mut clients[i];
            let exited = !c.proc.is_running();
            let hung = !exited && Instant::now() > c.deadline;
            if exited || hung {
                let mut c = clients.swap_remove(i);
                if hung {
                    chaos.counts.hung += 1;
                    eprintln!(
                        "chaos: client {} (fate {:?}) still runs after {:?}; killing it\n{}",
                        c.id,
                        c.fate,
                        c.started.elapsed(),
                        c.proc.snapshot()
                    );
                    c.proc.kill();
                }
                chaos.check_client(&mut c, hung);
                chaos.counts.sessions += 1;
            } else {
                i += 1;
            }
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            let c = &chaos.counts;
            eprintln!(
                "chaos: after {:?}: {} sessions, corrupt {}, hung {}, leaked {}, litter {}",
                started.elapsed(),
                c.sessions,
                c.corrupt,
                c.hung,
                c.leaked,
                c.litter
            );
        }
        thread::sleep(Duration::from_millis(10));
    }

    // The last server, running again, still serves; a new session gives it
    // an occasion to collect what dead sessions left.
    if chaos.server_cont_at.take().is_some() {
        chaos.server.signal(Signal::SIGCONT);
    }
    let out = chaos.env.tmp().join("final");
    fs::create_dir(&out).unwrap();
    let mut cmd = command(CLIENT, Some(&chaos.env.names));
    cmd.arg("-o").arg(&out).arg("--wait").arg("10").arg(&chaos.files[2]).current_dir(chaos.env.cwd());
    let last = Proc::spawn(cmd, None).finish(TIMEOUT);
    let lock = format!("{}.lock", chaos.env.names.stem());
    wait_until(TIMEOUT, || chaos.env.names.shm_entries() == [lock.clone()]);
    chaos.server.signal(Signal::SIGTERM);
    let server_done = chaos.server.finish(TIMEOUT);
    let leftovers = chaos.env.names.leftovers();
    chaos.counts.leaked = leftovers.len();
    if !leftovers.is_empty() {
        eprintln!("chaos: left behind:\n  {}", leftovers.join("\n  "));
    }
    let c = &chaos.counts;
    for (how, (n, time)) in &c.outcomes {
        eprintln!("chaos: {n:5} clients {how} (mean {:?})", *time / *n as u32);
    }
    eprintln!(
        "chaos: seed {seed}: {} sessions ({} clients SIGKILLed, {} SIGINTed, {} SIGTERMed twice, \
         {} SIGHUPed, {} SIGSTOPped), {} server kills, {} server stops, {} server hang-ups in {:?}: \
         corrupt {}, hung {}, leaked {}, litter {} (unexplained failures {}, servers exited by themselves {})",
        c.sessions,
        c.client_kills,
        c.client_interrupts,
        c.client_double_terms,
        c.client_hangups,
        c.client_stops,
        c.server_kills,
        c.server_stops,
        c.server_hangups,
        started.elapsed(),
        c.corrupt,
        c.hung,
        c.leaked,
        c.litter,
        c.unexplained,
        c.unexpected_server_exits
    );
    last.assert_code(0);
    server_done.assert_code(0);
    assert!(
        c.corrupt == 0 && c.hung == 0 && c.leaked == 0 && c.litter == 0,
        "chaos with seed {seed} (CHAOS_SEED={seed} replays it): {c:?}"
    );
    assert_eq!(c.unexplained, 0, "undisturbed clients failed; seed {seed}");
    assert!(
        matches!(run, Run::Soak(_)) || c.every_fault_struck(),
        "some kind of fault never struck a running process in {} sessions; seed {seed}: {c:?}",
        c.sessions
    );
    assert_eq!(c.unexpected_server_exits, 0, "servers exited by themselves; seed {seed}");
    chaos.env.names.remove_all();
}
