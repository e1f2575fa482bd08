//! Whether the machine is busy, as the ring ends see it: the share of the
//! time a session's thread waited for a CPU, and the CPU left idle, read
//! now and then from the kernel; a busy spell and its end.

use std::time::{Duration, Instant};

use super::*;

/// The machine's load as a ring end sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// Cores to spare: a peer on another core answers a spin.
    Calm,
    /// Other work holds the cores: every hand-over waits for the
    /// scheduler, and a spin only takes time from the peer.
    Busy,
}

/// Tells a calm machine from a busy one for one ring end (see the module
/// docs): counts the end's waits, looks at the clock once per
/// [`LOAD_CHECK_WAITS`], and at the kernel's figures once per window.
#[derive(Debug)]
pub(crate) struct LoadWatch {
    pub(super) load: Load,
    pub(super) waits: u32,
    /// Where the window started, and the figures then.
    pub(super) window_start: Instant,
    pub(super) mark: Figures,
    /// Busy windows in a row, while calm.
    pub(super) busy_windows: u32,
    /// How long the end stays busy before it tries calm again.
    pub(super) spell: Duration,
    /// When it last tried calm again.
    pub(super) calmed: Option<Instant>,
    /// When the busy spell began.
    pub(super) busy_since: Instant,
    /// While busy: whether other work shares the pair's CPU (more tasks
    /// runnable besides the pair than there are CPUs), so that the pair
    /// blocks at once rather than yield that CPU to it.
    pub(super) crowded: bool,
    /// The machine's CPUs online.
    pub(super) cores: u32,
    /// Windows in a row that counted the other way than `crowded`.
    pub(super) against: u32,
}

/// What a [`LoadWatch`] reads at the end of each window, in seconds since
/// the thread or the machine started (`None`: the kernel did not say).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Figures {
    /// The time the thread waited for a CPU, less the time it ran if its
    /// peer is pinned to its CPU (the peer then runs while this end waits,
    /// and about as long).
    pub(super) waited: Option<f64>,
    /// The idle time of all CPUs.
    pub(super) idle: Option<f64>,
    /// The tasks runnable on the machine at the end of the window, this
    /// end's thread among them.
    pub(super) runnable: Option<u32>,
}

/// The kernel's [`Figures`] now; `shared_core`: whether the peer is pinned
/// to this thread's CPU.
pub(super) fn kernel_figures(shared_core: bool) -> Figures {
    let waited = crate::os::sys::thread_cpu_times().map(|(ran, waited)| {
        let peer = if shared_core { ran } else { Duration::ZERO };
        waited.as_secs_f64() - peer.as_secs_f64()
    });
    let idle = crate::os::sys::idle_cpu_time().map(|idle| idle.as_secs_f64());
    Figures { waited, idle, runnable: crate::os::sys::runnable_tasks() }
}

impl LoadWatch {
    /// A watch that takes the machine's load for `load` until it sees
    /// otherwise, busy for spells of `spell`; `figures` are the kernel's at
    /// `now`.
    pub(super) fn starting(now: Instant, load: Load, spell: Duration, figures: Figures) -> LoadWatch {
        LoadWatch {
            load,
            waits: 0,
            window_start: now,
            mark: figures,
            busy_windows: 0,
            spell,
            calmed: None,
            busy_since: now,
            crowded: true,
            // The machine's, as `/proc/loadavg` counts the machine's tasks:
            // not the CPUs this thread may run on (a server under
            // `taskset -c 0` would count one, and take a pair alone on its
            // CPU beside one busy loop for crowded).
            cores: crate::os::sys::online_cpus().unwrap_or(1),
            against: 0,
        }
    }

    /// Counts one wait of the end; returns when and what load a window
    /// that ended found. `shared_core` says whether the peer is pinned to
    /// this end's CPU.
    pub(super) fn tick(&mut self, shared_core: impl Fn() -> bool) -> Option<(Instant, Load)> {
        self.waits += 1;
        if self.waits < LOAD_CHECK_WAITS {
            return None;
        }
        self.waits = 0;
        let now = Instant::now();
        self.look(now, || kernel_figures(shared_core())).map(|load| (now, load))
    }

    /// Ends the window if it has lasted long enough by `now`, reading the
    /// kernel's figures with `figures`; returns the load once a window
    /// ended with them. A calm window is busy if this end waited for a CPU
    /// [`BUSY_SHARE`] of it or more while less than [`SPARE_IDLE`] of a CPU
    /// was idle (a pair the scheduler put on one core of an idle machine
    /// waits for its peer, not for other work). A busy spell ends early in
    /// a window where [`SPARE_IDLE`] of a CPU idled (the other work is gone,
    /// or the pair shares the CPU of work that a free CPU could take), and
    /// else after the spell, in calm, to see whether it stays calm.
    pub(super) fn look(&mut self, now: Instant, figures: impl Fn() -> Figures) -> Option<Load> {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < BUSY_WINDOW {
            return None;
        }
        let after = figures();
        let before = std::mem::replace(&mut self.mark, after);
        self.window_start = now;
        let secs = elapsed.as_secs_f64();
        // Without the kernel's figures the load stays as it is.
        let idle = (after.idle? - before.idle?) / secs;
        match self.load {
            Load::Calm => {
                let waited = (after.waited? - before.waited?) / secs;
                let busy = waited >= BUSY_SHARE && idle < SPARE_IDLE;
                self.busy_windows = if busy { self.busy_windows + 1 } else { 0 };
                if self.busy_windows < BUSY_WINDOWS {
                    return Some(Load::Calm);
                }
                self.busy_windows = 0;
                // Busy again within a spell of trying calm: stay busy
                // longer before the next try.
                self.spell = match self.calmed {
                    Some(t) if now.saturating_duration_since(t) < self.spell => {
                        (self.spell * 2).min(BUSY_SPELL_MAX)
                    }
                    _ => BUSY_SPELL,
                };
                self.load = Load::Busy;
                self.busy_since = now;
                // Until counted: the pair does not know yet where the
                // other work runs.
                (self.crowded, self.against) = (true, 0);
            }
            Load::Busy => {
                let over = now.saturating_duration_since(self.busy_since) >= self.spell;
                if idle < SPARE_IDLE && !over {
                    // Two windows in a row to change its mind: a count is
                    // of one instant.
                    self.against =
                        if self.crowded_now(after.runnable) == self.crowded { 0 } else { self.against + 1 };
                    if self.against >= BUSY_WINDOWS {
                        (self.crowded, self.against) = (!self.crowded, 0);
                    }
                    return Some(Load::Busy);
                }
                // A CPU to spare, or the spell is over: spin again, and see.
                self.calmed = Some(now);
                self.load = Load::Calm;
            }
        }
        Some(self.load)
    }
}

impl LoadWatch {
    /// Whether other work shares the pair's CPU, from the tasks `runnable`
    /// on the machine: those besides the pair's two ends fill every CPU.
    /// (Both ends count: they are runnable while they hand over by
    /// yielding, and, measured, while they block too, the one woken
    /// runnable before the other blocks.) Unknown counts as crowded, the
    /// careful side.
    fn crowded_now(&self, runnable: Option<u32>) -> bool {
        runnable.is_none_or(|n| n.saturating_sub(2) >= self.cores)
    }
}

/// How often a calm end looks at the time it waited for a CPU.
pub(crate) const BUSY_WINDOW: Duration = Duration::from_millis(10);

/// The share of a window that a calm end spent runnable but off its CPU
/// above which the window counts as busy... Measured on 2 cores: a
/// session whose own process and client keep every core in use (a tree of
/// small files: the queue's reader, the session, the client) waits 0.13 to
/// 0.35 of a window; one busy loop beside the pair makes it 0.44 to 0.53,
/// two 0.93 to 0.98.
pub(crate) const BUSY_SHARE: f64 = 0.4;

/// ...and the busy windows in a row that make the machine busy.
pub(super) const BUSY_WINDOWS: u32 = 2;

/// How long a busy end stays busy before it spins again to see whether
/// the machine calmed (doubled each time it proves busy again at once, up
/// to [`BUSY_SPELL_MAX`]).
pub(crate) const BUSY_SPELL: Duration = Duration::from_millis(250);

/// The longest a busy end stays busy before it tries again.
pub(crate) const BUSY_SPELL_MAX: Duration = Duration::from_secs(2);

/// The idle time of all CPUs, per time of the window, at and above which
/// a CPU is to spare for the peer: an end that waits for a CPU then waits
/// for its own peer, not for other work.
pub(crate) const SPARE_IDLE: f64 = 0.75;

/// How long the load one end saw holds for the owner's new ends, which
/// start from it rather than from calm.
pub(super) const LOAD_MEMORY: Duration = Duration::from_secs(1);
