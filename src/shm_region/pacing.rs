//! Pacing: how the ring ends of one owner (a server and its sessions, or a
//! client) share the machine's cores. Its one job is to decide, for a ring
//! end that finds its semaphore at zero, whether to spin or to block, and,
//! for a producer, when it may stream at all.
//!
//! * **Adaptive spinning.** A wake-up costs about as much as copying 50 KB,
//!   and a peer running on another core usually answers within
//!   microseconds, so a waiter first spins: busy for 64 rounds, then
//!   yielding its core until the spin budget is spent. Each waiter keeps a
//!   rate of the spins that caught the peer and spins less as it falls (a
//!   peer that is slow, or has no core to run on); below a quarter it blocks
//!   at once but for one probe in 64 waits, and a wait that blocked and was
//!   answered within the budget counts as a spin that would have paid.
//!   What a waiter learned is forgotten when it starts a turn (a producer)
//!   or after a block of [`RELEARN_AFTER`] (a consumer, which sees no
//!   turns): what it learned while its pair was out of turn says nothing
//!   about the pair in its turn.
//! * **One core.** Each end records in the region's header the one CPU it
//!   is pinned to, if it is; a waiter pinned to its peer's CPU skips the
//!   busy rounds (every one is time the peer cannot run) and yields at
//!   once, which hands the core to the peer without a wake-up: measured,
//!   that moves both slots per switch, where blocking at once paid a
//!   wake-up per frame. Ends the scheduler may move learn it from their
//!   spins.
//! * **A busy machine.** A spin pays only while the peer runs on another
//!   core; once other work holds the cores every hand-over waits for the
//!   scheduler, and a spin (a yield most of all) hands the core to that
//!   work for a whole slice. So the server's end of each session watches
//!   the machine ([`LoadWatch`]), every [`BUSY_WINDOW`] while calm: the
//!   time it spent runnable but off its CPU (`run_delay`; less the time it
//!   ran, if its peer is pinned to its CPU and runs while it waits), and
//!   the idle time of all CPUs (`/proc/uptime`). Two windows running in
//!   which it waited [`BUSY_SHARE`] or more while less than [`SPARE_IDLE`]
//!   of a CPU was idle make the machine busy (a pair that the scheduler
//!   put on one core of an idle machine waits for its peer, and the other
//!   core idles). Then both ends of the session stop spinning and block at
//!   once (a sleeper that wakes is run at once, ahead of the busy work),
//!   and share one CPU (the server asks through the region header; see
//!   `ring`), so that a hand-over is a switch on one core rather than a
//!   wake-up across cores behind busy work. After a spell of
//!   [`BUSY_SPELL`] both ends go back to their CPUs and spin again, and
//!   the watch sees whether the machine stays calm; a spell that ends
//!   busy again at once doubles the next, up to [`BUSY_SPELL_MAX`]. (Busy,
//!   the pair cannot tell whether it would get two cores: work elsewhere
//!   fills the CPU it left, so the idle time says nothing.) A new session
//!   starts from the load and spell its owner's ends saw last, within
//!   [`LOAD_MEMORY`]. Nothing is read but every [`LOAD_CHECK_WAITS`]
//!   waits, and then only the clock.
//! * **Spinners per core.** No more waiters of one owner yield-spin at once
//!   than there are cores; the rest block at once.
//! * **Short time slices.** A waiting thread asks the scheduler for 100 µs
//!   slices, so that when its peer wakes it, it runs at once rather than
//!   after a busy neighbour's slice.
//! * **Turns.** At most half the cores' worth of producers (at least one)
//!   stream data at once, [`TURN_TIME`] per turn; a producer gives its turn
//!   back after a file and before it blocks, so a stopped or slow client
//!   holds nobody up. The next turn goes to the waiting producer that has
//!   streamed the fewest bytes (ties: first come first served), so pairs
//!   that stream slower, or lose their turn to a block more often, are not
//!   left behind; one that joins the line counts at least the bytes of the
//!   last turn taken less [`LINE_CREDIT`], so a newcomer or one back from a
//!   long pause gets a bounded head start, never the line to itself.
//!
//! What the ring ends of one owner share is a [`Pacing`] value, made by that
//! owner and handed to each end; what one end learns and holds is its own
//! `Pacer`. Nothing here is process-wide: two servers (or two tests) in one
//! process each have their own spinners and turns.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Result;

/// The longest a waiter spins before it blocks unless configured otherwise;
/// how long it really spins adapts below this (see the module docs and the
/// README's performance section).
pub const DEFAULT_SPIN_BUDGET: Duration = Duration::from_micros(200);

/// Busy-spin rounds before a waiter starts yielding its core.
const SPIN_ROUNDS: u32 = 64;

/// The time slice a waiting thread asks the scheduler for.
const SHORT_SLICE: Duration = Duration::from_micros(100);

/// How long a producer streams per turn before the next waiting one goes:
/// long enough that the pair in its turn has learned to spin and runs hot
/// for most of it, short enough that each of 16 clients gets a turn every
/// few tenths of a second.
pub(crate) const TURN_TIME: Duration = Duration::from_millis(5);

/// Bytes streamed between two looks at the clock for [`TURN_TIME`].
const TURN_CHECK_BYTES: usize = 64 << 10;

/// How far behind the last producer to take a turn one that joins the line
/// may count: the head start of a newcomer, or of a pair that lost its turn
/// to a block, before the others' turns come round again.
pub(crate) const LINE_CREDIT: u64 = 4 << 20;

/// The longest a producer waits in line while others, which have streamed
/// less, take turns before it (many small files' turns each add little):
/// past it the one that waited longest goes next, so no transfer waits
/// in line for more than about this long. Far above a round of turns (16
/// producers of [`TURN_TIME`] each: 80 ms), so that the least served go
/// first in every normal round; far below any stall timeout.
pub(crate) const LONGEST_IN_LINE: Duration = Duration::from_millis(500);

/// A wait that blocked this long forgets what its waiter learned about
/// spinning: the peer was away (out of turn, or descheduled), and what
/// spins did before says nothing about what they do now.
pub(crate) const RELEARN_AFTER: Duration = Duration::from_millis(2);

/// Waits between two looks at the clock for [`LoadWatch`].
const LOAD_CHECK_WAITS: u32 = 16;

/// How often a calm end looks at the time it waited for a CPU.
pub(crate) const BUSY_WINDOW: Duration = Duration::from_millis(10);

/// The share of a window that a calm end spent runnable but off its CPU
/// above which the window counts as busy...
pub(crate) const BUSY_SHARE: f64 = 0.25;

/// ...and the busy windows in a row that make the machine busy.
const BUSY_WINDOWS: u32 = 2;

/// How long a busy end stays busy before it spins again to see whether
/// the machine calmed (doubled each time it proves busy again at once, up
/// to [`BUSY_SPELL_MAX`]).
pub(crate) const BUSY_SPELL: Duration = Duration::from_millis(50);

/// The longest a busy end stays busy before it tries again.
pub(crate) const BUSY_SPELL_MAX: Duration = Duration::from_secs(1);

/// The idle time of all CPUs, per time of the window, at and above which
/// a CPU is to spare for the peer: an end that waits for a CPU then waits
/// for its own peer, not for other work.
pub(crate) const SPARE_IDLE: f64 = 0.75;

/// How long the load one end saw holds for the owner's new ends, which
/// start from it rather than from calm.
const LOAD_MEMORY: Duration = Duration::from_secs(1);

/// What the ring ends of one owner share: the spin budget, the spinners of
/// the moment and the turn queue. Cheap to clone: clones share one state (a
/// server makes one and hands a clone to each session's ring end).
#[derive(Debug, Clone)]
pub struct Pacing {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The longest one wait spins.
    spin_budget: Duration,
    limits: Limits,
    /// Waiters in their yielding spin right now.
    spinners: AtomicUsize,
    turns: Mutex<TurnQueue>,
    /// The load the owner's ends saw last, and when: 0 for nothing yet,
    /// else the milliseconds since `born` plus one, shifted left by one,
    /// with the low bit set for busy.
    load_seen: AtomicU64,
    /// The busy spell of the end that saw it, in milliseconds.
    spell_seen: AtomicU64,
    born: Instant,
}

/// How many waiters may spin and how many producers may stream at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    /// One per core: more spinners than cores only take turns burning the
    /// time their peers need (a server with many sessions).
    spinners: usize,
    /// Half the cores, at least one: a streaming producer needs its peer
    /// running on another core at the same time; with more than that, they
    /// take turns instead of all spinning and blocking in each other's way.
    streams: usize,
}

impl Limits {
    fn for_this_machine() -> Limits {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Limits { spinners: cores, streams: (cores / 2).max(1) }
    }
}

/// Who streams now and who waits.
#[derive(Debug)]
struct TurnQueue {
    active: usize,
    /// In order of arrival; the next turn goes to the one that has streamed
    /// the least.
    waiting: Vec<InLine>,
    next_ticket: u64,
    /// The bytes the producer that took the last turn had streamed when it
    /// took it: where those who join the line count from.
    floor: u64,
}

/// One producer waiting for a turn.
#[derive(Debug, Clone)]
struct InLine {
    /// Bytes it has streamed (as counted in line).
    served: u64,
    ticket: u64,
    /// When it joined the line.
    since: Instant,
    /// The thread that waits, to wake when its turn comes (and no other).
    thread: std::thread::Thread,
}

impl TurnQueue {
    /// The ticket whose turn comes next: the earliest arrival among those
    /// that waited [`LONGEST_IN_LINE`] or longer, else the fewest bytes
    /// streamed, then the earliest arrival.
    fn next(&self) -> Option<u64> {
        let overdue = self.waiting.iter().filter(|w| w.since.elapsed() >= LONGEST_IN_LINE);
        match overdue.min_by_key(|w| w.ticket) {
            Some(w) => Some(w.ticket),
            None => self.waiting.iter().min_by_key(|w| (w.served, w.ticket)).map(|w| w.ticket),
        }
    }

    /// Wakes the producer whose turn comes next, if a turn is free: only
    /// that one (waking the whole line at each turn, many producers of a
    /// busy server woke each other in a storm).
    fn wake_next(&self, max: usize) {
        if self.active < max {
            if let Some(next) = self.next() {
                if let Some(w) = self.waiting.iter().find(|w| w.ticket == next) {
                    w.thread.unpark();
                }
            }
        }
    }

    /// Takes a turn for a producer that has streamed `served` bytes.
    fn start(&mut self, served: u64) {
        self.active += 1;
        self.floor = self.floor.max(served);
    }
}

impl Pacing {
    /// A fresh state for one owner's ring ends: nobody spins or streams yet.
    /// Each wait spins at most `spin_budget` (zero: block at once); the
    /// limits on spinners and streams come from the cores this process may
    /// run on.
    pub fn new(spin_budget: Duration) -> Pacing {
        Pacing::with_limits(spin_budget, Limits::for_this_machine())
    }

    /// A pacing that lets `streams` producers stream at once, for tests of
    /// the ring on any machine.
    #[cfg(test)]
    pub(crate) fn with_streams(streams: usize) -> Pacing {
        Pacing::with_limits(DEFAULT_SPIN_BUDGET, Limits { streams, ..Limits::for_this_machine() })
    }

    fn with_limits(spin_budget: Duration, limits: Limits) -> Pacing {
        Pacing {
            shared: Arc::new(Shared {
                spin_budget,
                limits,
                spinners: AtomicUsize::new(0),
                turns: Mutex::new(TurnQueue { active: 0, waiting: Vec::new(), next_ticket: 0, floor: 0 }),
                load_seen: AtomicU64::new(0),
                spell_seen: AtomicU64::new(0),
                born: Instant::now(),
            }),
        }
    }

    /// The longest one wait spins before it blocks.
    pub fn spin_budget(&self) -> Duration {
        self.shared.spin_budget
    }

    /// Records the load one of the owner's ends saw at `now`, and its busy
    /// spell.
    fn note_load(&self, load: Load, spell: Duration, now: Instant) {
        let ms =
            now.saturating_duration_since(self.shared.born).as_millis().min(u128::from(u64::MAX >> 2)) as u64;
        let word = ((ms + 1) << 1) | u64::from(load == Load::Busy);
        self.shared.spell_seen.store(spell.as_millis() as u64, Ordering::Relaxed);
        self.shared.load_seen.store(word, Ordering::Relaxed);
    }

    /// The load one of the owner's ends saw last, and its busy spell, if it
    /// did within [`LOAD_MEMORY`] of `now`: where a new end starts.
    fn recent_load(&self, now: Instant) -> Option<(Load, Duration)> {
        let word = self.shared.load_seen.load(Ordering::Relaxed);
        let seen = self.shared.born + Duration::from_millis((word >> 1).checked_sub(1)?);
        if now.saturating_duration_since(seen) > LOAD_MEMORY {
            return None;
        }
        let spell = Duration::from_millis(self.shared.spell_seen.load(Ordering::Relaxed));
        let load = if word & 1 == 1 { Load::Busy } else { Load::Calm };
        Some((load, spell.clamp(BUSY_SPELL, BUSY_SPELL_MAX)))
    }

    /// The pacing of one new ring end: it has learned nothing yet and holds
    /// no turn.
    pub(crate) fn pacer(&self) -> Pacer {
        Pacer {
            pacing: self.clone(),
            learned: SpinRate::default(),
            tried: Tried::Spun,
            turn: None,
            turn_started: Instant::now(),
            served: 0,
            load: Load::Calm,
            watch: None,
        }
    }

    /// Counts the caller among the spinners while the slot lives, if fewer
    /// than the limit spin now.
    fn spin_slot(&self) -> Option<SpinSlot<'_>> {
        let spinners = &self.shared.spinners;
        if spinners.fetch_add(1, Ordering::Relaxed) < self.shared.limits.spinners {
            Some(SpinSlot { spinners })
        } else {
            spinners.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }

    fn turns(&self) -> MutexGuard<'_, TurnQueue> {
        self.shared.turns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a turn, for a producer that has streamed nothing yet (first
    /// come first served among those). Every `slice` it calls `check`; an
    /// error from it leaves the line and is returned.
    #[cfg(test)]
    fn take_turn(&self, slice: Duration, check: &dyn Fn() -> Result<()>) -> Result<Turn> {
        self.take_turn_noting(slice, &mut 0, check).map(|(turn, _)| turn)
    }

    /// As [`Pacing::take_turn`], for a producer that has streamed `served`
    /// bytes (raised to the line's floor less [`LINE_CREDIT`] if below it),
    /// and says whether the caller stood in line.
    fn take_turn_noting(
        &self,
        slice: Duration,
        served: &mut u64,
        check: &dyn Fn() -> Result<()>,
    ) -> Result<(Turn, Line)> {
        let max = self.shared.limits.streams;
        let mut q = self.turns();
        *served = (*served).max(q.floor.saturating_sub(LINE_CREDIT));
        if q.waiting.is_empty() && q.active < max {
            q.start(*served);
            return Ok((Turn { pacing: self.clone() }, Line::Free));
        }
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        let since = Instant::now();
        q.waiting.push(InLine { served: *served, ticket, since, thread: std::thread::current() });
        let mut checked = since;
        loop {
            if q.next() == Some(ticket) && q.active < max {
                q.waiting.retain(|w| w.ticket != ticket);
                q.start(*served);
                // The next in line may fit too.
                q.wake_next(max);
                return Ok((Turn { pacing: self.clone() }, Line::Waited));
            }
            // A turn may be free but not ours: the one it is for (one that
            // became overdue as we looked) must look again.
            q.wake_next(max);
            drop(q);
            std::thread::park_timeout(slice);
            if checked.elapsed() >= slice {
                checked = Instant::now();
                if let Err(e) = check() {
                    let mut q = self.turns();
                    q.waiting.retain(|w| w.ticket != ticket);
                    q.wake_next(max);
                    return Err(e);
                }
            }
            q = self.turns();
        }
    }
}

/// Whether a producer had to wait in line for its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A turn was free at once.
    Free,
    /// Others streamed while it waited.
    Waited,
}

/// One waiter's place among the spinners; given back on drop.
struct SpinSlot<'a> {
    spinners: &'a AtomicUsize,
}

impl Drop for SpinSlot<'_> {
    fn drop(&mut self) {
        self.spinners.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The right to stream data frames, held by at most half the cores' worth
/// of producers of one owner at once; given back on drop.
#[derive(Debug)]
struct Turn {
    pacing: Pacing,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut q = self.pacing.turns();
        q.active -= 1;
        q.wake_next(self.pacing.shared.limits.streams);
    }
}

/// One waiter's record of whether spinning pays: an exponentially weighted
/// rate of the spins that caught the peer. Spins that keep succeeding keep
/// the full budget; spins that run out (the peer is slow, or has no core to
/// run on) shrink it until the waiter blocks at once, and then one wait in
/// [`PROBE_EVERY`] spins the full budget to see whether it pays again. A
/// waiter that blocks uses only the CPU it needs, so the scheduler runs it
/// as soon as its peer wakes it; one that spun in vain has to wait its turn.
#[derive(Debug, Clone)]
pub(crate) struct SpinRate {
    /// The rate in 1/`HIT_ONE` units.
    hits: u32,
    /// Waits without a spin since the last probe.
    skipped: u32,
}

/// Fixed-point one for [`SpinRate::hits`].
const HIT_ONE: u32 = 1 << 16;

/// Below this rate a waiter does not yield-spin at all...
const HIT_FLOOR: u32 = HIT_ONE / 4;

/// ...but for one wait in this many, to learn whether spinning pays again.
const PROBE_EVERY: u32 = 64;

impl Default for SpinRate {
    fn default() -> SpinRate {
        SpinRate { hits: HIT_ONE, skipped: 0 }
    }
}

impl SpinRate {
    /// How long to spin now, out of `max`.
    fn budget(&mut self, max: Duration) -> Duration {
        if self.hits >= HIT_FLOOR {
            return max.mul_f64(f64::from(self.hits) / f64::from(HIT_ONE));
        }
        self.skipped += 1;
        if self.skipped >= PROBE_EVERY {
            self.skipped = 0;
            return max;
        }
        Duration::ZERO
    }

    /// Records one spin: whether it caught the peer. Weight 1/16.
    fn record(&mut self, hit: bool) {
        let sample = if hit { HIT_ONE } else { 0 };
        self.hits = self.hits - self.hits / 16 + sample / 16;
    }
}

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
    load: Load,
    waits: u32,
    /// Where the window started, and the figures then.
    window_start: Instant,
    mark: Figures,
    /// Busy windows in a row, while calm.
    busy_windows: u32,
    /// How long the end stays busy before it tries calm again.
    spell: Duration,
    /// When it last tried calm again.
    calmed: Option<Instant>,
}

/// What a [`LoadWatch`] reads at the end of each window, in seconds since
/// the thread or the machine started (`None`: the kernel did not say).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    /// The time the thread waited for a CPU, less the time it ran if its
    /// peer is pinned to its CPU (the peer then runs while this end waits,
    /// and about as long).
    waited: Option<f64>,
    /// The idle time of all CPUs.
    idle: Option<f64>,
}

/// The kernel's [`Figures`] now; `shared_core`: whether the peer is pinned
/// to this thread's CPU.
fn kernel_figures(shared_core: bool) -> Figures {
    let waited = crate::os::sys::thread_cpu_times().map(|(ran, waited)| {
        let peer = if shared_core { ran } else { Duration::ZERO };
        waited.as_secs_f64() - peer.as_secs_f64()
    });
    Figures { waited, idle: crate::os::sys::idle_cpu_time().map(|idle| idle.as_secs_f64()) }
}

impl LoadWatch {
    /// A watch that takes the machine's load for `load` until it sees
    /// otherwise, busy for spells of `spell`; `figures` are the kernel's at
    /// `now`.
    fn starting(now: Instant, load: Load, spell: Duration, figures: Figures) -> LoadWatch {
        LoadWatch { load, waits: 0, window_start: now, mark: figures, busy_windows: 0, spell, calmed: None }
    }

    /// Counts one wait of the end; returns when and what load a window
    /// that ended found. `shared_core` says whether the peer is pinned to
    /// this end's CPU.
    fn tick(&mut self, shared_core: impl Fn() -> bool) -> Option<(Instant, Load)> {
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
    /// waits for its peer, not for other work); a busy spell ends in calm,
    /// to see whether it stays calm.
    fn look(&mut self, now: Instant, figures: impl Fn() -> Figures) -> Option<Load> {
        let elapsed = now.saturating_duration_since(self.window_start);
        let window = match self.load {
            Load::Calm => BUSY_WINDOW,
            Load::Busy => self.spell,
        };
        if elapsed < window {
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
            }
            Load::Busy => {
                // The spell is over: spin again, and see.
                self.calmed = Some(now);
                self.load = Load::Calm;
            }
        }
        Some(self.load)
    }
}

/// Where a ring end runs against its peer, as far as the CPUs they last
/// published say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Both on one CPU: the peer runs only while this end does not.
    SharedCore,
    /// On different CPUs, or not known.
    Apart,
}

/// What the last wait that did not take its count at once did before it
/// blocked: what [`Pacer::woke`] may learn from its blocked time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    /// Spun (and missed): its miss is already recorded.
    Spun,
    /// Blocked at once because spins had not paid: a quick answer says
    /// they would have.
    Skipped,
}

/// How a [`Pacer::spin`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spun {
    /// The count was taken, at once or while spinning.
    Taken,
    /// Spinning did not pay (or was not allowed): block now.
    Missed,
}

/// The pacing of one ring end: the owner's shared [`Pacing`], what this end
/// learned about spinning, and (a producer's) turn.
#[derive(Debug)]
pub(crate) struct Pacer {
    pacing: Pacing,
    learned: SpinRate,
    /// What the last wait that missed did before blocking.
    tried: Tried,
    turn: Option<Turn>,
    /// When the turn held now was taken.
    turn_started: Instant,
    /// Bytes streamed in all, as the turn line counts them.
    served: u64,
    /// The machine's load as this end's session sees it: no spinning
    /// while busy.
    load: Load,
    /// The end that watches the load for its session (the server's): its
    /// watch, from its first wait.
    watch: Option<Box<LoadWatch>>,
}

impl Pacer {
    /// Counts one wait of the end that watches the load for its session,
    /// and returns the load when it changed (or, on the first wait, is busy
    /// as the owner's other ends last saw it): the end then spins or not
    /// as it says. `placement` is asked only when a window ends.
    pub(crate) fn watch_load(&mut self, placement: impl Fn() -> Placement) -> Option<Load> {
        let pacing = &self.pacing;
        let shared_core = || placement() == Placement::SharedCore;
        let watch = self.watch.get_or_insert_with(|| {
            let now = Instant::now();
            let (load, spell) = pacing.recent_load(now).unwrap_or((Load::Calm, BUSY_SPELL));
            Box::new(LoadWatch::starting(now, load, spell, kernel_figures(shared_core())))
        });
        if let Some((now, load)) = watch.tick(shared_core) {
            pacing.note_load(load, watch.spell, now);
        }
        let load = watch.load;
        if load == self.load {
            return None;
        }
        self.set_load(load);
        Some(load)
    }

    /// Spins or not from now on as `load` says; back to calm, it starts
    /// learning afresh.
    pub(crate) fn set_load(&mut self, load: Load) {
        if load == Load::Calm && self.load == Load::Busy {
            self.learned = SpinRate::default();
        }
        self.load = load;
    }

    /// Tries to take one count with `try_take` (a semaphore's `sem_trywait`)
    /// without blocking: at once, then by spinning as long as this end has
    /// learned that spinning pays and fewer than one waiter per core spin.
    /// A spin starts busy unless `placement` (asked only when the count is
    /// not there at once) says the peer shares this end's core: there it
    /// yields at once, which hands the core to the peer.
    pub(crate) fn spin(
        &mut self,
        mut try_take: impl FnMut() -> bool,
        placement: impl FnOnce() -> Placement,
    ) -> Spun {
        if try_take() {
            return Spun::Taken;
        }
        ask_for_short_slices();
        let max = self.pacing.spin_budget();
        if max.is_zero() || self.load == Load::Busy {
            self.tried = Tried::Spun;
            return Spun::Missed;
        }
        self.tried = Tried::Spun;
        let start = Instant::now();
        let busy_rounds = match placement() {
            Placement::SharedCore => 0,
            Placement::Apart => SPIN_ROUNDS,
        };
        // A short busy spin catches a peer running on the other core...
        for _ in 0..busy_rounds {
            std::hint::spin_loop();
            if try_take() {
                self.learned.record(true);
                return Spun::Taken;
            }
        }
        // ...then yield, so that a peer waiting for this very core gets it,
        // until the budget is spent.
        let budget = self.learned.budget(max);
        if !budget.is_zero() {
            if let Some(_slot) = self.pacing.spin_slot() {
                while start.elapsed() < budget {
                    std::thread::yield_now();
                    if try_take() {
                        self.learned.record(true);
                        return Spun::Taken;
                    }
                }
                self.learned.record(false);
            }
        } else {
            self.tried = Tried::Skipped;
        }
        Spun::Missed
    }

    /// Called when a wait that blocked took its count after `blocked`:
    /// after a long block this end forgets what it learned (the peer was
    /// away); a wait that blocked at once and was answered within the spin
    /// budget counts as a spin that would have paid.
    pub(crate) fn woke(&mut self, blocked: Duration) {
        if self.load == Load::Busy {
            // Nothing to learn: no spinning until the machine calms.
        } else if blocked >= RELEARN_AFTER {
            self.learned = SpinRate::default();
        } else if self.tried == Tried::Skipped && blocked < self.pacing.spin_budget() {
            self.learned.record(true);
        }
    }

    /// Called when spinning missed and the end is about to block: whoever
    /// waits for a turn may go while this one sleeps.
    pub(crate) fn before_block(&mut self) {
        self.turn = None;
    }

    /// How long an end that holds a turn may block first and keep it: on a
    /// busy machine every hand-over blocks, and a turn given back at each
    /// would wake every producer in line for each frame; a peer that does
    /// not answer within a turn's time gives the turn to the next.
    pub(crate) fn block_in_turn(&self) -> Option<Duration> {
        (self.load == Load::Busy && self.turn.is_some()).then_some(TURN_TIME)
    }

    /// Makes sure this end holds a turn before it streams data, waiting in
    /// line for one if it does not. Every `slice` of waiting it calls
    /// `check`; an error from it leaves the line and is returned.
    ///
    /// # Errors
    ///
    /// Whatever `check` returns.
    pub(crate) fn take_turn(&mut self, slice: Duration, check: &dyn Fn() -> Result<()>) -> Result<()> {
        if self.turn.is_none() {
            let (turn, line) = self.pacing.take_turn_noting(slice, &mut self.served, check)?;
            if line == Line::Waited {
                // What it learned while others streamed says nothing about
                // its pair in its own turn.
                self.learned = SpinRate::default();
            }
            self.turn = Some(turn);
            self.turn_started = Instant::now();
        }
        Ok(())
    }

    /// Counts `bytes` streamed in this turn; after [`TURN_TIME`] the turn
    /// goes to the next in line.
    pub(crate) fn streamed(&mut self, bytes: usize) {
        let before = self.served;
        self.served += bytes as u64;
        // The clock is read once per TURN_CHECK_BYTES streamed.
        let check = TURN_CHECK_BYTES as u64;
        if before / check != self.served / check && self.turn_started.elapsed() >= TURN_TIME {
            self.turn = None;
        }
    }

    /// Gives the turn back (a file ended): the next in line goes.
    pub(crate) fn end_turn(&mut self) {
        self.turn = None;
    }

    /// Whether this end holds a turn now.
    #[cfg(test)]
    fn has_turn(&self) -> bool {
        self.turn.is_some()
    }
}

/// Asks once per thread for short time slices: a waiter woken by its peer
/// then gets its core at once, even from a process that never sleeps,
/// rather than after that process's slice (milliseconds, where a frame
/// takes a microsecond). What it remembers is the thread's own scheduling
/// attribute, not state shared between owners.
fn ask_for_short_slices() {
    thread_local!(static ASKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !ASKED.replace(true) {
        let _ = crate::os::sys::request_time_slice(SHORT_SLICE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_passed_over_for_long_goes_next_whatever_it_streamed() {
        let now = Instant::now();
        let long_ago = now.checked_sub(LONGEST_IN_LINE * 2).expect("the clock is past it");
        let thread = std::thread::current();
        let big = InLine { served: 100 << 20, ticket: 0, since: now, thread: thread.clone() };
        let small = InLine { served: 1 << 10, ticket: 1, since: now, thread };
        let mut q = TurnQueue { active: 0, waiting: vec![big, small], next_ticket: 2, floor: 0 };
        assert_eq!(q.next(), Some(1), "the least served goes first");
        q.waiting[0].since = long_ago;
        assert_eq!(q.next(), Some(0), "one that waited too long goes next");
    }
    use crate::error::Error;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    const SLICE: Duration = Duration::from_millis(20);

    fn pacing(spinners: usize, streams: usize) -> Pacing {
        Pacing::with_limits(DEFAULT_SPIN_BUDGET, Limits { spinners, streams })
    }

    /// A pacing whose budget outlasts a busy machine's pauses, for tests
    /// that count the tries of a yielding spin.
    fn patient() -> Pacing {
        Pacing::with_limits(Duration::from_millis(20), Limits { spinners: 4, streams: 1 })
    }

    /// Waits until `n` producers stand in line.
    fn until_in_line(pacing: &Pacing, n: usize) {
        while pacing.turns().waiting.len() < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn ok() -> Result<()> {
        Ok(())
    }

    /// One wait's spin beside a peer on another core.
    fn spin(pacer: &mut Pacer, try_take: impl FnMut() -> bool) -> Spun {
        pacer.spin(try_take, || Placement::Apart)
    }

    #[test]
    fn spinning_shrinks_while_spins_fail_probes_now_and_then_and_recovers_when_they_succeed() {
        let max = Duration::from_micros(200);
        let mut rate = SpinRate::default();
        assert_eq!(rate.budget(max), max);
        for _ in 0..8 {
            rate.record(false);
        }
        let shrunk = rate.budget(max);
        assert!(shrunk < max && !shrunk.is_zero(), "{shrunk:?}");
        for _ in 0..32 {
            rate.record(false);
        }
        let budgets: Vec<Duration> = (0..2 * PROBE_EVERY).map(|_| rate.budget(max)).collect();
        assert_eq!(budgets.iter().filter(|b| **b == max).count(), 2, "one probe in {PROBE_EVERY}");
        assert_eq!(budgets.iter().filter(|b| b.is_zero()).count(), 2 * PROBE_EVERY as usize - 2);
        for _ in 0..64 {
            rate.record(true);
        }
        assert!(rate.budget(max) > max * 9 / 10);
    }

    #[test]
    fn a_waiter_whose_spins_never_pay_learns_to_stop_yield_spinning() {
        let mut pacer = patient().pacer();
        let mut tries = 0u32;
        // A fresh waiter yield-spins past the busy rounds.
        assert_eq!(
            spin(&mut pacer, || {
                tries += 1;
                false
            }),
            Spun::Missed
        );
        assert!(tries > 1 + SPIN_ROUNDS, "{tries} tries");
        for _ in 0..40 {
            spin(&mut pacer, || false);
        }
        // Now only the first try and the busy rounds, no yielding.
        let mut tries = 0u32;
        assert_eq!(
            spin(&mut pacer, || {
                tries += 1;
                false
            }),
            Spun::Missed
        );
        assert_eq!(tries, 1 + SPIN_ROUNDS);
    }

    #[test]
    fn a_spin_that_catches_the_peer_takes_the_count() {
        // A budget no busy machine's pauses outlast: the spin ends when the
        // peer is caught, long before it (the count decides, not the clock).
        let mut pacer =
            Pacing::with_limits(Duration::from_secs(60), Limits { spinners: 4, streams: 1 }).pacer();
        assert_eq!(spin(&mut pacer, || true), Spun::Taken);
        let mut tries = 0u32;
        assert_eq!(
            spin(&mut pacer, || {
                tries += 1;
                tries == 200
            }),
            Spun::Taken
        );
        assert_eq!(tries, 200, "caught while yielding");
    }

    #[test]
    fn a_zero_spin_budget_blocks_after_one_try() {
        let mut pacer = Pacing::with_limits(Duration::ZERO, Limits { spinners: 4, streams: 1 }).pacer();
        let mut tries = 0u32;
        assert_eq!(
            spin(&mut pacer, || {
                tries += 1;
                false
            }),
            Spun::Missed
        );
        assert_eq!(tries, 1);
    }

    #[test]
    fn no_more_waiters_spin_at_once_than_the_limit_and_a_slot_given_back_is_free_again() {
        let pacing = pacing(2, 1);
        let slots: Vec<SpinSlot<'_>> = std::iter::from_fn(|| pacing.spin_slot()).take(10).collect();
        assert_eq!(slots.len(), 2);
        // With every slot taken, a waiter does not yield-spin.
        let mut pacer = pacing.pacer();
        let mut tries = 0u32;
        assert_eq!(
            spin(&mut pacer, || {
                tries += 1;
                false
            }),
            Spun::Missed
        );
        assert_eq!(tries, 1 + SPIN_ROUNDS);
        drop(slots);
        assert!(pacing.spin_slot().is_some());
    }

    #[test]
    fn owners_do_not_share_spinners_or_turns() {
        let (a, b) = (pacing(1, 1), pacing(1, 1));
        let _spinning = a.spin_slot().unwrap();
        assert!(b.spin_slot().is_some());
        let _streaming = a.take_turn(SLICE, &ok).unwrap();
        b.take_turn(SLICE, &ok).expect("b's own turn");
    }

    #[test]
    fn producers_beyond_the_limit_wait_their_turn_and_a_cancelled_one_leaves_the_line() {
        let pacing = pacing(2, 1);
        let held = pacing.take_turn(SLICE, &ok).unwrap();
        let cancelled = Arc::new(AtomicBool::new(false));
        let quitter = {
            let (pacing, cancelled) = (pacing.clone(), Arc::clone(&cancelled));
            std::thread::spawn(move || {
                let check = || if cancelled.load(Ordering::Relaxed) { Err(Error::Cancelled) } else { Ok(()) };
                pacing.take_turn(SLICE, &check).map(drop)
            })
        };
        until_in_line(&pacing, 1);
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let pacing = pacing.clone();
            std::thread::spawn(move || tx.send(pacing.take_turn(SLICE, &ok).map(drop)))
        };
        assert!(rx.recv_timeout(SLICE * 10).is_err(), "no turn while the only one is held");
        cancelled.store(true, Ordering::Relaxed);
        assert!(matches!(quitter.join().unwrap(), Err(Error::Cancelled)));
        assert!(rx.recv_timeout(SLICE * 5).is_err(), "still held");
        drop(held);
        rx.recv_timeout(Duration::from_secs(10)).expect("a turn once one is given back").unwrap();
        waiter.join().unwrap().unwrap();
        assert_eq!(pacing.turns().active, 0);
        assert!(pacing.turns().waiting.is_empty(), "the quitter left the line");
    }

    #[test]
    fn turns_go_in_order_of_arrival() {
        let pacing = pacing(2, 1);
        let held = pacing.take_turn(SLICE, &ok).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut waiters = Vec::new();
        for i in 0..3 {
            let (mine, tx) = (pacing.clone(), tx.clone());
            waiters.push(std::thread::spawn(move || {
                let turn = mine.take_turn(SLICE, &ok).unwrap();
                tx.send(i).unwrap();
                drop(turn);
            }));
            // Each is in line before the next comes.
            until_in_line(&pacing, i + 1);
        }
        drop(held);
        let order: Vec<usize> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        assert_eq!(order, [0, 1, 2]);
        for w in waiters {
            w.join().unwrap();
        }
    }

    #[test]
    fn the_next_turn_goes_to_the_producer_that_streamed_least_and_a_newcomer_counts_from_the_floor() {
        let pacing = pacing(2, 1);
        let mut first = 10 * LINE_CREDIT;
        let held = pacing.take_turn_noting(SLICE, &mut first, &ok).unwrap();
        assert_eq!(pacing.turns().floor, first);
        let (tx, rx) = mpsc::channel();
        let mut waiters = Vec::new();
        // Arriving in this order, having streamed this much.
        for (i, served) in [(0, 12 * LINE_CREDIT), (1, 11 * LINE_CREDIT), (2, 0)] {
            let (mine, tx) = (pacing.clone(), tx.clone());
            waiters.push(std::thread::spawn(move || {
                let mut served = served;
                let turn = mine.take_turn_noting(SLICE, &mut served, &ok).unwrap();
                tx.send((i, served)).unwrap();
                drop(turn);
            }));
            until_in_line(&pacing, i + 1);
        }
        drop(held);
        let order: Vec<(usize, u64)> =
            (0..3).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        // The newcomer counted from the floor less the credit: still first.
        assert_eq!(order, [(2, 9 * LINE_CREDIT), (1, 11 * LINE_CREDIT), (0, 12 * LINE_CREDIT)]);
        for w in waiters {
            w.join().unwrap();
        }
    }

    #[test]
    fn a_producer_gives_its_turn_back_after_a_turns_time_a_file_or_before_it_blocks() {
        let pacing = pacing(2, 1);
        let mut pacer = pacing.pacer();
        let mut other = pacing.pacer();
        pacer.take_turn(SLICE, &ok).unwrap();
        let started = Instant::now();
        pacer.streamed(TURN_CHECK_BYTES);
        assert!(pacer.has_turn() || started.elapsed() >= TURN_TIME);
        std::thread::sleep(TURN_TIME);
        pacer.streamed(TURN_CHECK_BYTES - 1);
        assert!(pacer.has_turn(), "the clock is read once per TURN_CHECK_BYTES");
        pacer.streamed(1);
        assert!(!pacer.has_turn(), "a turn's time");
        other.take_turn(SLICE, &ok).expect("free again");
        other.end_turn();
        pacer.take_turn(SLICE, &ok).unwrap();
        pacer.before_block();
        assert!(!pacer.has_turn(), "before blocking");
        pacer.take_turn(SLICE, &ok).unwrap();
        drop(pacer);
        other.take_turn(SLICE, &ok).expect("a dropped end gives its turn back");
    }

    #[test]
    fn a_busy_end_blocks_at_once_and_a_calm_one_spins_afresh() {
        let mut pacer = patient().pacer();
        pacer.set_load(Load::Busy);
        let mut tries = 0u32;
        assert_eq!(
            spin(&mut pacer, || {
                tries += 1;
                false
            }),
            Spun::Missed
        );
        assert_eq!(tries, 1, "no busy rounds, no yields");
        pacer.set_load(Load::Calm);
        discouraged(&mut pacer);
        pacer.set_load(Load::Busy);
        pacer.woke(Duration::from_micros(10));
        pacer.set_load(Load::Calm);
        assert_eq!(pacer.learned.hits, HIT_ONE, "learns afresh");
    }

    /// A load watch's figures over time: run delay while calm, idle time
    /// while busy, each advancing by its share of the elapsed time.
    struct Machine {
        now: Instant,
        run_delay: Duration,
        idle: Duration,
    }

    impl Machine {
        fn new() -> Machine {
            Machine { now: Instant::now(), run_delay: Duration::ZERO, idle: Duration::ZERO }
        }

        /// `d` passes with the end off its CPU `waiting` of it and the
        /// CPUs idle `idle` CPUs' worth of it.
        fn pass(&mut self, d: Duration, waiting: f64, idle: f64) {
            self.now += d;
            self.run_delay += d.mul_f64(waiting);
            self.idle += d.mul_f64(idle);
        }

        fn figures(&self) -> Figures {
            Figures { waited: Some(self.run_delay.as_secs_f64()), idle: Some(self.idle.as_secs_f64()) }
        }

        fn look(&self, watch: &mut LoadWatch) -> Option<Load> {
            let figures = self.figures();
            watch.look(self.now, move || figures)
        }
    }

    #[test]
    fn two_windows_of_waiting_for_a_cpu_make_the_machine_busy_for_a_spell() {
        let mut m = Machine::new();
        let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
        m.pass(BUSY_WINDOW / 2, 0.9, 0.0);
        assert_eq!(m.look(&mut watch), None, "the window is not over");
        m.pass(BUSY_WINDOW / 2, 0.9, 0.0);
        assert_eq!(m.look(&mut watch), Some(Load::Calm), "one busy window");
        m.pass(BUSY_WINDOW, 0.1, 0.0);
        assert_eq!(m.look(&mut watch), Some(Load::Calm), "a calm one between");
        m.pass(BUSY_WINDOW, 0.5, 0.0);
        assert_eq!(m.look(&mut watch), Some(Load::Calm));
        m.pass(BUSY_WINDOW, 0.5, 0.0);
        assert_eq!(m.look(&mut watch), Some(Load::Busy), "two in a row");
        // Busy for a spell, whatever the figures say meanwhile.
        m.pass(BUSY_SPELL / 2, 0.0, 1.0);
        assert_eq!(m.look(&mut watch), None, "the spell is not over");
        m.pass(BUSY_SPELL / 2, 0.9, 0.0);
        assert_eq!(m.look(&mut watch), Some(Load::Calm), "the spell is over: try calm");
        m.pass(BUSY_WINDOW, 0.1, 0.0);
        m.look(&mut watch);
        m.pass(BUSY_WINDOW, 0.1, 0.0);
        assert_eq!(m.look(&mut watch), Some(Load::Calm), "and it stays calm");
    }

    #[test]
    fn an_end_that_waits_for_its_peer_on_one_core_of_an_idle_machine_stays_calm() {
        let mut m = Machine::new();
        let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
        for _ in 0..10 {
            // Off its CPU most of the time, while the other CPU idles.
            m.pass(BUSY_WINDOW, 0.9, 1.0);
            assert_eq!(m.look(&mut watch), Some(Load::Calm));
        }
        m.pass(BUSY_WINDOW, 0.9, 0.5);
        m.look(&mut watch);
        m.pass(BUSY_WINDOW, 0.9, 0.5);
        assert_eq!(m.look(&mut watch), Some(Load::Busy), "no CPU to spare");
    }

    #[test]
    fn a_spell_that_ends_busy_again_at_once_doubles_the_next() {
        let mut m = Machine::new();
        let mut watch = LoadWatch::starting(m.now, Load::Calm, BUSY_SPELL, m.figures());
        let busy = |m: &mut Machine, watch: &mut LoadWatch| {
            for _ in 0..BUSY_WINDOWS {
                m.pass(BUSY_WINDOW, 0.9, 0.0);
                m.look(watch);
            }
            assert_eq!(watch.load, Load::Busy);
        };
        busy(&mut m, &mut watch);
        assert_eq!(watch.spell, BUSY_SPELL);
        m.pass(BUSY_SPELL, 0.0, 0.0);
        m.look(&mut watch);
        assert_eq!(watch.load, Load::Calm);
        busy(&mut m, &mut watch);
        assert_eq!(watch.spell, BUSY_SPELL * 2, "busy again within a spell of trying");
        for _ in 0..10 {
            m.pass(watch.spell, 0.0, 0.0);
            m.look(&mut watch);
            busy(&mut m, &mut watch);
        }
        assert_eq!(watch.spell, BUSY_SPELL_MAX);
        m.pass(watch.spell, 0.0, 0.0);
        m.look(&mut watch);
        assert_eq!(watch.load, Load::Calm);
        m.pass(BUSY_SPELL_MAX * 2, 0.0, 1.0);
        m.look(&mut watch);
        busy(&mut m, &mut watch);
        assert_eq!(watch.spell, BUSY_SPELL, "calm for long: back to the shortest");
    }

    #[test]
    fn without_the_kernels_figures_the_load_stays_calm() {
        let now = Instant::now();
        let none = Figures { waited: None, idle: None };
        let mut watch = LoadWatch::starting(now, Load::Calm, BUSY_SPELL, none);
        for i in 1..10 {
            assert_eq!(watch.look(now + BUSY_WINDOW * i, || none), None);
        }
        assert_eq!(watch.load, Load::Calm);
    }

    #[test]
    fn a_busy_producer_blocks_a_turns_time_in_its_turn_before_it_gives_the_turn_back() {
        let pacing = pacing(2, 1);
        let mut pacer = pacing.pacer();
        assert_eq!(pacer.block_in_turn(), None, "no turn");
        pacer.take_turn(SLICE, &ok).unwrap();
        assert_eq!(pacer.block_in_turn(), None, "calm: spins, then gives the turn back");
        pacer.set_load(Load::Busy);
        assert_eq!(pacer.block_in_turn(), Some(TURN_TIME));
        pacer.before_block();
        assert_eq!(pacer.block_in_turn(), None);
    }

    #[test]
    fn a_new_end_starts_from_the_load_its_owner_saw_last_if_lately() {
        let pacing = pacing(2, 1);
        let now = Instant::now();
        assert_eq!(pacing.recent_load(now), None);
        pacing.note_load(Load::Busy, BUSY_SPELL * 4, now);
        assert_eq!(pacing.recent_load(now + LOAD_MEMORY / 2), Some((Load::Busy, BUSY_SPELL * 4)));
        assert_eq!(pacing.recent_load(now + LOAD_MEMORY * 2), None, "too long ago");
        let mut pacer = pacing.pacer();
        assert_eq!(pacer.watch_load(|| Placement::Apart), Some(Load::Busy), "busy from its first wait");
        assert_eq!(pacer.load, Load::Busy);
        assert_eq!(pacer.watch.as_ref().unwrap().spell, BUSY_SPELL * 4, "for the spell its owner saw");
        pacing.note_load(Load::Calm, BUSY_SPELL, Instant::now());
        assert_eq!(pacing.pacer().watch_load(|| Placement::Apart), None, "calm: nothing to change");
    }

    /// Spins that fail until the waiter blocks at once, but for probes.
    fn discouraged(pacer: &mut Pacer) {
        for _ in 0..40 {
            spin(pacer, || false);
        }
        assert!(pacer.learned.hits < HIT_FLOOR);
    }

    #[test]
    fn a_producer_that_waited_in_line_starts_its_turn_spinning_again() {
        let pacing = pacing(2, 1);
        let mut first = pacing.pacer();
        first.take_turn(SLICE, &ok).unwrap();
        // Free at once: what it learned stays.
        discouraged(&mut first);
        first.end_turn();
        first.take_turn(SLICE, &ok).unwrap();
        assert!(first.learned.hits < HIT_FLOOR, "no line, nothing forgotten");
        let waiter = {
            let pacing = pacing.clone();
            std::thread::spawn(move || {
                let mut second = pacing.pacer();
                discouraged(&mut second);
                second.take_turn(SLICE, &ok).unwrap();
                second.learned.hits
            })
        };
        until_in_line(&pacing, 1);
        first.end_turn();
        assert_eq!(waiter.join().unwrap(), HIT_ONE, "forgotten after the line");
    }

    #[test]
    fn a_long_block_forgets_and_a_quick_answer_after_blocking_at_once_counts_as_a_hit() {
        let mut pacer = patient().pacer();
        discouraged(&mut pacer);
        let low = pacer.learned.hits;
        // A probe: spun and missed; the block that follows teaches nothing.
        pacer.tried = Tried::Spun;
        pacer.woke(Duration::from_micros(10));
        assert_eq!(pacer.learned.hits, low);
        // Blocked at once, answered within the budget: spinning would have paid.
        let mut tries = 0;
        spin(&mut pacer, || {
            tries += 1;
            false
        });
        assert_eq!(tries, 1 + SPIN_ROUNDS, "blocked at once");
        pacer.woke(Duration::from_micros(10));
        assert!(pacer.learned.hits > low);
        pacer.woke(RELEARN_AFTER);
        assert_eq!(pacer.learned.hits, HIT_ONE);
    }

    #[test]
    fn a_waiter_beside_its_peer_on_one_core_yields_at_once() {
        let mut pacer = patient().pacer();
        let mut tries = 0u32;
        let spun = pacer.spin(
            || {
                tries += 1;
                tries == 2
            },
            || Placement::SharedCore,
        );
        assert_eq!((spun, tries), (Spun::Taken, 2), "no busy rounds: the first yield caught it");
        // The placement is asked only when the count is not there at once.
        assert_eq!(pacer.spin(|| true, || unreachable!()), Spun::Taken);
    }
}
