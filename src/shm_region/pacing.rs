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
//!   core idles). Then both ends of the session share one CPU (the server
//!   asks through the region header, the client's own CPU if it was
//!   started on one; see `ring`), so that a hand-over is a switch on one
//!   core rather than a wake-up across cores behind busy work. Each end
//!   says in the header where it is, so a pair is on one CPU only once
//!   both are; there, with other work on that CPU too (more tasks
//!   runnable besides the pair than CPUs, `/proc/loadavg`, two windows in
//!   a row to change its mind), each end blocks at once (a sleeper that
//!   wakes is run at once, ahead of the busy work); alone there, it yields
//!   at once, as a pair pinned to one CPU does; an end that could not
//!   follow spins as on a calm machine. A spell ends early in a window
//!   where [`SPARE_IDLE`] of a CPU idled, else after [`BUSY_SPELL`]: both
//!   ends go back to their CPUs and spin again, and the watch sees whether
//!   the machine stays calm; a spell that ends busy again at once doubles
//!   the next, up to [`BUSY_SPELL_MAX`]. A new session starts from the
//!   load and spell its owner's ends saw last, within [`LOAD_MEMORY`].
//!   Nothing is read but every [`LOAD_CHECK_WAITS`] waits, and then only
//!   the clock.
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

/// The longest a waiter for a frame (or a free slot) spins before it
/// blocks, unless configured otherwise ([`ClientConfig::spin_budget`],
/// [`ServerConfig::spin_budget`]): 200 µs. How long it really spins adapts
/// below this: a waiter whose spins seldom catch its peer (a slow peer, a
/// busy machine) spins less, down to blocking at once. Zero blocks at once.
///
/// [`ClientConfig::spin_budget`]: crate::ClientConfig::spin_budget
/// [`ServerConfig::spin_budget`]: crate::ServerConfig::spin_budget
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(shmxfer::DEFAULT_SPIN_BUDGET, Duration::from_micros(200));
/// assert_eq!(shmxfer::ClientConfig::new("/q").spin_budget, shmxfer::DEFAULT_SPIN_BUDGET);
/// ```
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
            crowded: true,
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
    /// While busy: whether other work shares the pair's CPU (then it
    /// blocks at once; alone there, it yields at once, as a pair pinned to
    /// one CPU of a calm machine does).
    crowded: bool,
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

    /// What the watch of this end (the server's) says of the pair's CPU
    /// while busy: whether other work shares it.
    pub(crate) fn watched_crowded(&self) -> bool {
        self.watch.as_ref().is_none_or(|w| w.crowded)
    }

    /// Whether this end takes the pair's CPU for shared with other work.
    pub(crate) fn crowded(&self) -> bool {
        self.crowded
    }

    /// Takes the pair's CPU for shared with other work (`crowded`) or not.
    pub(crate) fn set_crowded(&mut self, crowded: bool) {
        self.crowded = crowded;
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
        let placed = placement();
        // Busy, a pair on one CPU that other work shares blocks at once
        // (a yield would hand that work the CPU for a slice); alone there
        // it yields at once, as below; a pair apart (an end could not
        // follow to the other's CPU) spins as on a calm machine.
        if max.is_zero() || (self.load == Load::Busy && placed == Placement::SharedCore && self.crowded) {
            self.tried = Tried::Spun;
            return Spun::Missed;
        }
        self.tried = Tried::Spun;
        let start = Instant::now();
        let busy_rounds = match placed {
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

mod load;
pub(crate) use load::*;

#[cfg(test)]
mod tests;
