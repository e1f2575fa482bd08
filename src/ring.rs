//! The slot ring over a [`Region`]: one producer (the server) and one consumer
//! (the client), handed slots by two counting semaphores.
//!
//! * `spaces` starts at the slot count; the producer takes one before it fills
//!   a slot, the consumer gives one back after it emptied a slot.
//! * `items` starts at 0; the producer posts one per filled slot, the consumer
//!   takes one before it reads a slot.
//!
//! Both sides walk the slots in the same order, so no index travels through
//! shared memory. Semaphores are signals, never locks: a dead peer holds
//! nothing. Every wait first spins briefly on `sem_trywait` (a wake-up costs
//! about as much as copying 50 KB, and the peer usually answers within
//! microseconds), then blocks in slices; between slices it checks for
//! cancellation and whether the peer is still alive, so no wait outlives a
//! dead peer by more than a slice.
//!
//! Spinning adapts: each waiter keeps a rate of the waits that ended within
//! the spin budget and spins less as it falls (a peer that is slow, or has no
//! core to run on), and no more waiters of one process spin at once than
//! there are cores; the rest block at once. A waiting thread asks the
//! scheduler for short time slices, so that when its peer wakes it, it runs
//! at once rather than after a busy neighbour's slice.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::{FrameHeader, FrameKind, Reply, FRAME_HEADER_LEN, MAX_REASON_LEN};
use crate::semaphore::{Semaphore, WaitOutcome};
use crate::shm_region::{Geometry, Region, MAX_SLOTS};

/// How long one blocking wait lasts before the waiter looks at the peer and
/// the cancel flag again. Bounds the time to notice a dead peer or a signal.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The longest a waiter spins on `sem_trywait` before it blocks; how long it
/// really spins adapts below this (see the module docs). Set by the environment
/// variable `SHMXFER_SPIN_US` (microseconds), for measurements.
pub fn spin_budget() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        let us =
            std::env::var("SHMXFER_SPIN_US").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_SPIN_US);
        Duration::from_micros(us)
    })
}

/// Busy-spin rounds before a waiter starts yielding its core.
const SPIN_ROUNDS: u32 = 64;

/// Default spin budget in microseconds (see the README's performance section).
pub const DEFAULT_SPIN_US: u64 = 200;

/// Waiters of this process in their yielding spin right now.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// How many waiters of one process may spin at once: one per core. More
/// spinners than cores only take turns burning the time their peers need
/// (a server with many sessions); the others block at once.
fn max_spinners() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// One waiter's record of whether spinning pays: an exponentially weighted
/// rate of the spins that caught the peer. Spins that keep succeeding keep
/// the full budget; spins that run out (the peer is slow, or has no core to
/// run on) shrink it until the waiter blocks at once, and then one wait in
/// [`PROBE_EVERY`] spins the full budget to see whether it pays again. A
/// waiter that blocks uses only the CPU it needs, so the scheduler runs it
/// as soon as its peer wakes it; one that spun in vain has to wait its turn.
#[derive(Debug, Clone)]
struct Spinner {
    /// The rate in 1/`HIT_ONE` units.
    hits: u32,
    /// Waits without a spin since the last probe.
    skipped: u32,
}

/// Fixed-point one for [`Spinner::hits`].
const HIT_ONE: u32 = 1 << 16;

/// Below this rate a waiter does not yield-spin at all...
const HIT_FLOOR: u32 = HIT_ONE / 4;

/// ...but for one wait in this many, to learn whether spinning pays again.
const PROBE_EVERY: u32 = 64;

impl Default for Spinner {
    fn default() -> Spinner {
        Spinner { hits: HIT_ONE, skipped: 0 }
    }
}

impl Spinner {
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

/// Counts this waiter among the process's spinners while it lives.
struct SpinSlot;

impl SpinSlot {
    fn take() -> Option<SpinSlot> {
        if SPINNERS.fetch_add(1, Ordering::Relaxed) < max_spinners() {
            Some(SpinSlot)
        } else {
            SPINNERS.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        SPINNERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Asks once per thread for short time slices: a waiter woken by its peer
/// then gets its core at once, even from a process that never sleeps,
/// rather than after that process's slice (milliseconds, where a frame
/// takes a microsecond).
fn ask_for_short_slices() {
    thread_local!(static ASKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if !ASKED.replace(true) {
        let _ = crate::sys::request_time_slice(Duration::from_micros(100));
    }
}

/// How many sessions of this process stream data at once: half the cores,
/// at least one. A streaming session needs its peer running on another core
/// at the same time; with more sessions than that, they take turns instead
/// of all spinning and blocking in each other's way.
fn max_streams() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

/// Bytes a session streams per turn before the next waiting session goes.
const TURN_BYTES: usize = 4 << 20;

/// Who streams now and who waits, in order of arrival.
struct TurnQueue {
    active: usize,
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

static TURNS: Mutex<TurnQueue> =
    Mutex::new(TurnQueue { active: 0, waiting: VecDeque::new(), next_ticket: 0 });
static TURN_CHANGED: Condvar = Condvar::new();

fn turns() -> std::sync::MutexGuard<'static, TurnQueue> {
    TURNS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The right to stream data frames, held by at most [`max_streams`]
/// producers of this process at once, first come first served; given back
/// on drop. A producer gives it back after [`TURN_BYTES`], after a file, and
/// before it blocks for a slot: a stopped or slow client holds no one up.
#[derive(Debug)]
struct Turn;

impl Turn {
    /// Waits for a turn in slices, checking `cancel` and `alive` between.
    fn take(cancel: &AtomicBool, alive: &Liveness) -> Result<Turn> {
        let mut q = turns();
        if q.waiting.is_empty() && q.active < max_streams() {
            q.active += 1;
            return Ok(Turn);
        }
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push_back(ticket);
        loop {
            if q.waiting.front() == Some(&ticket) && q.active < max_streams() {
                q.waiting.pop_front();
                q.active += 1;
                drop(q);
                // The next in line may fit too.
                TURN_CHANGED.notify_all();
                return Ok(Turn);
            }
            let (guard, timeout) =
                TURN_CHANGED.wait_timeout(q, WAIT_SLICE).unwrap_or_else(PoisonError::into_inner);
            q = guard;
            if timeout.timed_out() {
                drop(q);
                let gone = if cancel.load(Ordering::Relaxed) { Err(Error::Cancelled) } else { alive() };
                q = turns();
                if let Err(e) = gone {
                    q.waiting.retain(|t| *t != ticket);
                    drop(q);
                    TURN_CHANGED.notify_all();
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        turns().active -= 1;
        TURN_CHANGED.notify_all();
    }
}

/// Checks whether the peer is still there; called once per wait slice.
pub type Liveness = Box<dyn Fn() -> Result<()> + Send>;

/// Takes one count of `sem`: spin (as long as `spinner` says pays, and only
/// if few other waiters of this process spin), then block in slices,
/// checking `cancel` and `alive` between slices; gives up with
/// [`Error::Stalled`] once it has blocked for `stall` (when set).
fn acquire(
    sem: &Semaphore,
    cancel: &AtomicBool,
    alive: &Liveness,
    spinner: &mut Spinner,
    stall: Option<Duration>,
    turn: &mut Option<Turn>,
) -> Result<()> {
    // Checked on every frame, not only when waiting: a transfer running at
    // full speed never waits, and must still stop at once on SIGINT.
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    if sem.try_wait() {
        return Ok(());
    }
    ask_for_short_slices();
    let max = spin_budget();
    let start = Instant::now();
    if !max.is_zero() {
        // A short busy spin catches a peer running on the other core...
        for _ in 0..SPIN_ROUNDS {
            std::hint::spin_loop();
            if sem.try_wait() {
                spinner.record(true);
                return Ok(());
            }
        }
        // ...then yield, so that a peer waiting for this very core gets it,
        // until the budget is spent.
        let budget = spinner.budget(max);
        if !budget.is_zero() {
            if let Some(_slot) = SpinSlot::take() {
                while start.elapsed() < budget {
                    std::thread::yield_now();
                    if sem.try_wait() {
                        spinner.record(true);
                        return Ok(());
                    }
                }
                spinner.record(false);
            }
        }
    }
    // Whoever waits for a turn may go while this one sleeps.
    *turn = None;
    let blocked = Instant::now();
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if sem.wait_timeout(WAIT_SLICE)? == WaitOutcome::Acquired {
            return Ok(());
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        alive()?;
        if stall.is_some_and(|limit| blocked.elapsed() >= limit) {
            return Err(Error::Stalled { waited: blocked.elapsed() });
        }
    }
}

/// The two semaphores of a ring: `items` (frames ready) and `spaces` (slots
/// free).
#[derive(Debug)]
pub struct RingSems {
    pub items: Semaphore,
    pub spaces: Semaphore,
}

/// What both ends of a ring hold: the region, the semaphores, the next
/// slot, and how to wait (cancel flag, the peer's liveness, spinning, the
/// stall limit). Each end takes one semaphore and gives the other.
struct RingEnd {
    region: Arc<Region>,
    sems: RingSems,
    next: u32,
    cancel: Arc<AtomicBool>,
    alive: Liveness,
    spinner: Spinner,
    stall: Option<Duration>,
}

impl std::fmt::Debug for RingEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingEnd").field("region", &self.region.name()).field("next", &self.next).finish()
    }
}

impl RingEnd {
    fn new(region: Arc<Region>, sems: RingSems, cancel: Arc<AtomicBool>, alive: Liveness) -> RingEnd {
        RingEnd { region, sems, next: 0, cancel, alive, spinner: Spinner::default(), stall: None }
    }

    /// Waits for `sem` (spaces for the producer, items for the consumer)
    /// and returns the slot that is now this end's.
    fn take_slot(&mut self, producer: bool, turn: &mut Option<Turn>) -> Result<u32> {
        let sem = if producer { &self.sems.spaces } else { &self.sems.items };
        acquire(sem, &self.cancel, &self.alive, &mut self.spinner, self.stall, turn)?;
        let slot = self.next;
        self.next = (self.next + 1) % self.region.geometry().slots();
        Ok(slot)
    }

    /// Hands the slot just used to the other end.
    fn give_slot(&self, producer: bool) -> Result<()> {
        if producer {
            self.sems.items.post()
        } else {
            self.sems.spaces.post()
        }
    }

    fn max_payload(&self) -> usize {
        self.region.geometry().max_payload()
    }
}

/// The server's end: fills slots.
#[derive(Debug)]
pub struct Producer {
    end: RingEnd,
    turn: Option<Turn>,
    /// Bytes streamed since the turn was taken.
    streamed: usize,
    scratch: Vec<u8>,
}

impl Producer {
    /// A producer over `region`.
    pub fn new(region: Arc<Region>, sems: RingSems, cancel: Arc<AtomicBool>, alive: Liveness) -> Producer {
        Producer {
            end: RingEnd::new(region, sems, cancel, alive),
            turn: None,
            streamed: 0,
            scratch: Vec::new(),
        }
    }

    /// Gives up a wait for a free slot after `stall` (`None`: never).
    pub fn with_stall_timeout(mut self, stall: Option<Duration>) -> Producer {
        self.end.stall = stall;
        self
    }

    /// The largest data payload one frame carries.
    pub fn max_payload(&self) -> usize {
        self.end.max_payload()
    }

    /// Whether a slot is free right now (nothing is taken).
    pub fn has_free_slot(&self) -> bool {
        let spaces = &self.end.sems.spaces;
        if spaces.try_wait() {
            let _ = spaces.post();
            true
        } else {
            false
        }
    }

    /// The region this producer fills.
    pub fn region(&self) -> &Region {
        &self.end.region
    }

    fn push(&mut self, kind: FrameKind, seq: u32, payload: &[u8]) -> Result<()> {
        let slot = self.end.take_slot(true, &mut self.turn)?;
        let header = FrameHeader { kind, len: payload.len() as u32, seq }.encode();
        self.end.region.write_frame(slot, &header, payload);
        self.end.give_slot(true)
    }

    /// Sends a data frame. `bytes` must fit one slot ([`Producer::max_payload`]).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], [`Error::PeerGone`] or a semaphore's OS error.
    pub fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        if self.turn.is_none() {
            self.turn = Some(Turn::take(&self.end.cancel, &self.end.alive)?);
            self.streamed = 0;
        }
        self.push(FrameKind::Data, seq, bytes)?;
        self.streamed += bytes.len();
        if self.streamed >= TURN_BYTES {
            self.turn = None;
        }
        Ok(())
    }

    /// Sends a control frame.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_data`], and [`Error::Protocol`] for a frame larger
    /// than a slot (a list entry with a long path; reasons always fit).
    pub fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        // A control frame ends or precedes a file's data: no turn needed.
        self.turn = None;
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        reply.encode_payload(&mut payload);
        let cap = self.max_payload();
        let res = if payload.len() > cap {
            Err(Error::Protocol(format!("{:?} frame does not fit a {cap}-byte slot", reply.kind())))
        } else {
            self.push(reply.kind(), seq, &payload)
        };
        self.scratch = payload;
        res
    }
}

// Reasons are cut to MAX_REASON_LEN when encoded, so a refusal or an error
// always fits the smallest slot.
const _: () = assert!(MAX_REASON_LEN <= Geometry::for_slots(MAX_SLOTS).max_payload());

/// The client's end: empties slots.
#[derive(Debug)]
pub struct Consumer {
    end: RingEnd,
}

impl Consumer {
    /// A consumer over `region`.
    pub fn new(region: Arc<Region>, sems: RingSems, cancel: Arc<AtomicBool>, alive: Liveness) -> Consumer {
        Consumer { end: RingEnd::new(region, sems, cancel, alive) }
    }

    /// Gives up a wait for a frame after `stall` (`None`: never).
    pub fn with_stall_timeout(mut self, stall: Option<Duration>) -> Consumer {
        self.end.stall = stall;
        self
    }

    /// The region this consumer empties.
    pub fn region(&self) -> &Region {
        &self.end.region
    }

    /// The largest payload one frame carries.
    pub fn max_payload(&self) -> usize {
        self.end.max_payload()
    }

    /// Waits for the next frame, copies its payload into `buf` (resized to
    /// the payload's length) and gives the slot back. As
    /// [`Consumer::recv_into`], for callers that want an owned payload.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_into`].
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<FrameHeader> {
        buf.resize(self.max_payload(), 0);
        let res = self.recv_into(buf);
        buf.truncate(res.as_ref().map_or(0, |h| h.len as usize));
        res
    }

    /// Waits for the next frame, copies its payload into the front of `out`
    /// and gives the slot back: the payload is `out[..header.len]`, one copy
    /// straight out of the slot into memory the peer cannot reach. The
    /// header is validated against the slot's capacity and the length of
    /// `out` before anything is copied, so whatever the peer writes into
    /// the slot, no read goes past either.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] for a malformed frame header or one longer than
    /// `out`, [`Error::Cancelled`], [`Error::PeerGone`] or a semaphore's OS
    /// error.
    pub fn recv_into(&mut self, out: &mut [u8]) -> Result<FrameHeader> {
        let slot = self.end.take_slot(false, &mut None)?;
        let raw: [u8; FRAME_HEADER_LEN] = self.end.region.read_frame_header(slot);
        let header = FrameHeader::decode(&raw, self.max_payload().min(out.len()));
        if let Ok(h) = &header {
            self.end.region.read_payload(slot, &mut out[..h.len as usize]);
        }
        self.end.give_slot(false)?;
        Ok(header?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::SessionNames;

    /// Both ends of a ring in one process, over real shared memory and
    /// semaphores.
    fn pair(tag: &str, slots: u32) -> (Producer, Consumer) {
        let pid = std::process::id();
        let names = SessionNames::fresh(&format!("/sxring_{tag}"), pid).unwrap();
        let geometry = Geometry::for_slots(slots);
        let created = Region::create(&names.region, geometry, pid).unwrap();
        let consumer_sems = RingSems {
            items: Semaphore::create_exclusive(&names.items, 0).unwrap(),
            spaces: Semaphore::create_exclusive(&names.spaces, geometry.slots()).unwrap(),
        };
        let opened = Region::open(&names.region, geometry.region_size() as u32, pid).unwrap();
        let producer_sems = RingSems {
            items: Semaphore::open(&names.items).unwrap(),
            spaces: Semaphore::open(&names.spaces).unwrap(),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let producer =
            Producer::new(Arc::new(opened), producer_sems, Arc::clone(&cancel), Box::new(|| Ok(())));
        let consumer = Consumer::new(Arc::new(created), consumer_sems, cancel, Box::new(|| Ok(())));
        (producer, consumer)
    }

    #[test]
    fn frames_arrive_in_order_and_intact_for_every_ring_size() {
        for slots in 1..=crate::shm_region::MAX_SLOTS {
            let (mut tx, mut rx) = pair(&format!("order{slots}"), slots);
            let cap = tx.max_payload();
            let sender = std::thread::spawn(move || {
                for i in 0..2000u32 {
                    let len = (i as usize * 7919) % (cap + 1);
                    let bytes: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
                    tx.send_data(i, &bytes).unwrap();
                }
                tx.send(2000, &Reply::End { count: 1, checksum: 2 }).unwrap();
            });
            let mut buf = Vec::new();
            for i in 0..2000u32 {
                let h = rx.recv(&mut buf).unwrap();
                assert_eq!((h.kind, h.seq), (FrameKind::Data, i));
                let len = (i as usize * 7919) % (cap + 1);
                assert_eq!(buf.len(), len);
                assert!(buf.iter().enumerate().all(|(j, b)| *b == (i as usize + j) as u8), "frame {i}");
            }
            let h = rx.recv(&mut buf).unwrap();
            assert_eq!(Reply::decode(h.kind, &buf).unwrap(), Reply::End { count: 1, checksum: 2 });
            sender.join().unwrap();
        }
    }

    #[test]
    fn spinning_shrinks_while_spins_fail_probes_now_and_then_and_recovers_when_they_succeed() {
        let max = Duration::from_micros(200);
        let mut spinner = Spinner::default();
        assert_eq!(spinner.budget(max), max);
        for _ in 0..8 {
            spinner.record(false);
        }
        let shrunk = spinner.budget(max);
        assert!(shrunk < max && !shrunk.is_zero(), "{shrunk:?}");
        for _ in 0..32 {
            spinner.record(false);
        }
        let budgets: Vec<Duration> = (0..2 * PROBE_EVERY).map(|_| spinner.budget(max)).collect();
        assert_eq!(budgets.iter().filter(|b| **b == max).count(), 2, "one probe in {PROBE_EVERY}");
        assert_eq!(budgets.iter().filter(|b| b.is_zero()).count(), 2 * PROBE_EVERY as usize - 2);
        for _ in 0..64 {
            spinner.record(true);
        }
        assert!(spinner.budget(max) > max * 9 / 10);
    }

    #[test]
    fn no_more_waiters_spin_at_once_than_there_are_cores() {
        let slots: Vec<SpinSlot> = std::iter::from_fn(SpinSlot::take).take(max_spinners() + 8).collect();
        // Other tests of this process may hold slots meanwhile.
        assert!(slots.len() <= max_spinners());
    }

    #[test]
    fn a_frame_longer_than_the_callers_buffer_is_refused_without_reading_past_it() {
        let (mut tx, mut rx) = pair("into", 2);
        tx.send_data(1, &[7; 100]).unwrap();
        tx.send_data(2, &[8; 50]).unwrap();
        let mut out = [0u8; 60];
        assert!(matches!(rx.recv_into(&mut out), Err(Error::Decode(_))));
        assert_eq!(out, [0; 60], "nothing copied");
        // The slot was given back, and the next frame arrives.
        let h = rx.recv_into(&mut out).unwrap();
        assert_eq!((h.seq, h.len), (2, 50));
        assert_eq!(out[..50], [8; 50]);
    }

    #[test]
    fn sessions_beyond_half_the_cores_wait_their_turn_and_a_cancelled_one_leaves_the_line() {
        let ok: fn() -> Liveness = || Box::new(|| Ok(()));
        let no = AtomicBool::new(false);
        // Other tests of this process stream meanwhile: take every turn first.
        let held: Vec<Turn> = (0..max_streams()).map(|_| Turn::take(&no, &ok()).unwrap()).collect();
        let cancelled = Arc::new(AtomicBool::new(false));
        let quitter = {
            let cancelled = Arc::clone(&cancelled);
            std::thread::spawn(move || Turn::take(&cancelled, &ok()).map(drop))
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter =
            std::thread::spawn(move || tx.send(Turn::take(&AtomicBool::new(false), &ok()).map(drop)));
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "no turn while all are held");
        cancelled.store(true, Ordering::Relaxed);
        assert!(matches!(quitter.join().unwrap(), Err(Error::Cancelled)));
        drop(held);
        rx.recv_timeout(Duration::from_secs(10)).expect("a turn once one is given back").unwrap();
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_waiter_gives_up_when_cancelled_or_when_the_peer_is_gone() {
        let (_tx, mut rx) = pair("cancel", 2);
        rx.end.cancel.store(true, Ordering::Relaxed);
        let mut buf = Vec::new();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Cancelled)));
        rx.end.cancel.store(false, Ordering::Relaxed);
        rx.end.alive = Box::new(|| Err(Error::PeerGone("gone".into())));
        let start = Instant::now();
        assert!(matches!(rx.recv(&mut buf), Err(Error::PeerGone(_))));
        assert!(start.elapsed() < WAIT_SLICE * 5);
    }
}
