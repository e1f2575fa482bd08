//! The slot ring over a [`Region`]: one producer (the server) and one consumer
//! (the client), handed slots by two counting semaphores. In an upload
//! session the ring runs the other way once the session is taken: each end
//! turns round ([`Producer::turn_round`], [`Consumer::turn_round`]) while
//! the ring is empty, and the client fills the slots the server empties.
//!
//! * `spaces` starts at the slot count; the producer takes one before it fills
//!   a slot, the consumer gives one back after it emptied a slot.
//! * `items` starts at 0; the producer posts one per filled slot, the consumer
//!   takes one before it reads a slot.
//!
//! Both sides walk the slots in the same order, so no index travels through
//! shared memory. Semaphores are signals, never locks: a dead peer holds
//! nothing. Every wait first tries the semaphore without blocking, spinning
//! as long as its owner's [`Pacing`] says pays (see [`crate::shm_region::pacing`], which
//! also decides when a producer may stream), then blocks in slices; between
//! slices it checks for cancellation and whether the peer is still alive, so
//! no wait outlives a dead peer by more than a slice.
//!
//! While the machine is busy both ends of a ring share one CPU: the
//! server's end watches the load (see [`crate::shm_region::pacing`]) and, once busy, narrows
//! its thread to the CPU it runs on and names that CPU in the region's
//! header; the client's end reads the word before each wait and narrows its
//! thread to that CPU if it may run there. Once calm, the server clears the
//! word and both give their threads back the CPUs they had. The word is
//! only a hint to the client: a CPU outside its own set is not followed,
//! and whatever a peer writes there touches no thread but the one at this
//! end of that session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::os::semaphore::{Semaphore, WaitOutcome};
use crate::os::sys::{self, CpuSet};
use crate::protocol::{DataEnd, FrameHeader, FrameKind, Reply, FRAME_HEADER_LEN, MAX_REASON_LEN};
use crate::shm_region::pacing::{Load, Pacer, Pacing, Placement, Spun};
use crate::shm_region::{Geometry, Party, Region, MAX_SLOTS};

pub use crate::os::liveness::{Liveness, WAIT_SLICE};

/// Which end of the ring: it says which semaphore an end takes and which it
/// gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Fills slots: takes `spaces`, gives `items`.
    Producer,
    /// Empties slots: takes `items`, gives `spaces`.
    Consumer,
}

impl Side {
    /// The process at this end of the ring while it runs from the server to
    /// the client.
    fn party(self) -> Party {
        match self {
            Side::Producer => Party::Server,
            Side::Consumer => Party::Client,
        }
    }
}

/// The process at the other end from `party`.
fn peer(party: Party) -> Party {
    match party {
        Party::Server => Party::Client,
        Party::Client => Party::Server,
    }
}

/// Whether this end and its peer are both pinned to one and the same CPU,
/// as each recorded in the region. Two ends that may move count as apart
/// even when they sit on one core for a while: one that blocks is often
/// woken on its waker's core, and judging by that would keep a pair
/// blocking that could spin; spins that fail teach that instead.
fn placement(region: &Region, party: Party) -> Placement {
    match (region.cpu(party), region.cpu(peer(party))) {
        (Some(mine), Some(peer)) if mine == peer => Placement::SharedCore,
        _ => Placement::Apart,
    }
}

/// How one end waits for its semaphore: when to give up (the cancel flag,
/// the peer's liveness, the stall limit) and how to pace itself.
struct Waiter {
    cancel: Arc<AtomicBool>,
    alive: Liveness,
    stall: Option<Duration>,
    pacer: Pacer,
}

impl Waiter {
    /// `Err` once the wait should end: cancelled, or the peer is gone.
    fn check(cancel: &AtomicBool, alive: &Liveness) -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            alive()
        }
    }

    /// Takes one count of `sem`: spin (as long as the pacer says pays; with
    /// no busy rounds while `placement` says the peer shares this core), then
    /// block in slices, checking the cancel flag and the peer's liveness
    /// between slices; gives up with [`Error::Stalled`] once it has blocked
    /// for the stall limit (when set).
    fn acquire(&mut self, sem: &Semaphore, placement: impl Fn() -> Placement) -> Result<()> {
        // Checked on every frame, not only when waiting: a transfer running at
        // full speed never waits, and must still stop at once on SIGINT.
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if self.pacer.spin(|| sem.try_wait(), &placement) == Spun::Taken {
            return Ok(());
        }
        let blocked = Instant::now();
        if let Some(hold) = self.pacer.block_in_turn() {
            if sem.wait_timeout(hold)? == WaitOutcome::Acquired {
                self.pacer.woke(blocked.elapsed());
                return Ok(());
            }
        }
        self.pacer.before_block();
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            if sem.wait_timeout(WAIT_SLICE)? == WaitOutcome::Acquired {
                self.pacer.woke(blocked.elapsed());
                return Ok(());
            }
            Waiter::check(&self.cancel, &self.alive)?;
            if self.stall.is_some_and(|limit| blocked.elapsed() >= limit) {
                return Err(Error::Stalled { waited: blocked.elapsed() });
            }
        }
    }

    /// Makes sure this end holds a turn to stream, waiting in line (and
    /// checking as a blocked wait does) if it does not.
    fn take_turn(&mut self) -> Result<()> {
        let (cancel, alive) = (&self.cancel, &self.alive);
        self.pacer.take_turn(WAIT_SLICE, &|| Waiter::check(cancel, alive))
    }
}

/// How a ring end comes to share one CPU with its peer while the machine
/// is busy (see the module docs).
#[derive(Debug)]
enum Pairing {
    /// The server's end: watches the load (its pacer does) and asks for a
    /// CPU.
    Decides,
    /// The client's end: follows the CPU the server asked for when it
    /// last looked.
    Follows(Option<u32>),
}

/// A thread narrowed to one CPU for pairing, and the CPUs it had; given
/// them back on drop.
#[derive(Debug)]
struct Pinned {
    thread: libc::pid_t,
    cpu: u32,
    before: CpuSet,
}

impl Pinned {
    /// Narrows the calling thread to `cpu`, if it may run there.
    fn to(cpu: u32) -> Option<Pinned> {
        let before = CpuSet::of_this_thread()?;
        if !before.contains(cpu) {
            return None;
        }
        CpuSet::only(cpu)?.apply_to_this_thread().ok()?;
        Some(Pinned { thread: sys::this_thread(), cpu, before })
    }
}

impl Drop for Pinned {
    /// Gives the thread its CPUs back: only from that thread, and only if
    /// nobody changed its set meanwhile.
    fn drop(&mut self) {
        if sys::this_thread() == self.thread && CpuSet::of_this_thread() == CpuSet::only(self.cpu) {
            let _ = self.before.apply_to_this_thread();
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
/// slot, which side this end is, and how it waits. Each end takes one
/// semaphore and gives the other.
struct RingEnd {
    region: Arc<Region>,
    sems: RingSems,
    next: u32,
    side: Side,
    /// The process at this end (the server's end fills the slots unless the
    /// ring was turned round).
    party: Party,
    waiter: Waiter,
    pairing: Pairing,
    /// This end's thread, while it shares a CPU with its peer (boxed: the
    /// set of CPUs it had is 128 bytes, and rarely there).
    pinned: Option<Box<Pinned>>,
    /// The one CPU the program was started on (`taskset`), if it was: what
    /// the header says of this end when it shares no CPU for a pair.
    started_on: Option<u32>,
}

impl std::fmt::Debug for RingEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingEnd")
            .field("region", &self.region.name())
            .field("side", &self.side)
            .field("next", &self.next)
            .finish()
    }
}

impl RingEnd {
    fn new(
        side: Side,
        region: Arc<Region>,
        sems: RingSems,
        cancel: Arc<AtomicBool>,
        alive: Liveness,
        pacing: &Pacing,
    ) -> RingEnd {
        let waiter = Waiter { cancel, alive, stall: None, pacer: pacing.pacer() };
        // Affinity is set before a program starts (taskset) and inherited
        // by its threads: read once.
        let started_on = sys::pinned_cpu();
        region.set_cpu(side.party(), started_on);
        let pairing = match side.party() {
            Party::Server => Pairing::Decides,
            Party::Client => Pairing::Follows(None),
        };
        let party = side.party();
        RingEnd { region, sems, next: 0, side, party, waiter, pairing, pinned: None, started_on }
    }

    /// This end, turned to the other side of the ring: it now takes the
    /// semaphore it gave. Only while the ring is empty (no slot filled and
    /// not emptied), at the same frame on both ends.
    fn turned_round(mut self) -> RingEnd {
        self.side = match self.side {
            Side::Producer => Side::Consumer,
            Side::Consumer => Side::Producer,
        };
        self
    }

    /// Before a wait: the server's end counts it towards a look at the
    /// load, the client's end looks whether the server asked for a CPU;
    /// on a change, both spin or not, and share a CPU or not, as the load
    /// says.
    fn follow_load(&mut self) {
        let (load, cpu) = match &mut self.pairing {
            Pairing::Decides => {
                let changed = self.waiter.pacer.watch_load(|| placement(&self.region, self.party));
                let crowded = self.waiter.pacer.watched_crowded();
                match changed {
                    // A client started on one CPU can follow only to that one.
                    Some(Load::Busy) => {
                        (Load::Busy, self.region.cpu(peer(self.party)).or_else(sys::current_cpu))
                    }
                    Some(Load::Calm) => (Load::Calm, None),
                    None => {
                        // Other work came to the pair's CPU, or left it.
                        if let (Some(pinned), true) = (&self.pinned, crowded != self.waiter.pacer.crowded()) {
                            self.region.set_pair_cpu(Some(pinned.cpu), crowded);
                            self.waiter.pacer.set_crowded(crowded);
                        }
                        return;
                    }
                }
            }
            Pairing::Follows(asked) => {
                let crowded = self.region.pair_crowded();
                if crowded != self.waiter.pacer.crowded() {
                    self.waiter.pacer.set_crowded(crowded);
                }
                let now = self.region.pair_cpu();
                if now == *asked {
                    return;
                }
                *asked = now;
                (if now.is_some() { Load::Busy } else { Load::Calm }, now)
            }
        };
        // The CPUs it had first, so that a new CPU is checked against them.
        self.pinned = None;
        self.pinned = cpu.and_then(Pinned::to).map(Box::new);
        let sharing = self.pinned.as_ref().map(|p| p.cpu);
        if let Pairing::Decides = self.pairing {
            let crowded = self.waiter.pacer.watched_crowded();
            self.region.set_pair_cpu(sharing, crowded);
            self.waiter.pacer.set_crowded(crowded);
        }
        // What each end says of itself is where it is: a pair is on one CPU
        // only once both are ([`placement`]), and only then do they block
        // at once (an end that could not follow keeps spinning, instead of
        // waking its peer across CPUs behind other work for each frame).
        self.region.set_cpu(self.party, sharing.or(self.started_on));
        self.waiter.pacer.set_load(load);
        log::debug!(
            "{}: the machine is {load:?}; sharing CPU {:?}",
            self.region.name(),
            self.pinned.as_ref().map(|p| p.cpu)
        );
    }

    /// Waits for this side's semaphore (spaces for the producer, items for
    /// the consumer) and returns the slot that is now this end's.
    fn take_slot(&mut self) -> Result<u32> {
        self.follow_load();
        let sem = match self.side {
            Side::Producer => &self.sems.spaces,
            Side::Consumer => &self.sems.items,
        };
        let (region, party) = (&self.region, self.party);
        self.waiter.acquire(sem, || placement(region, party))?;
        let slot = self.next;
        self.next = (self.next + 1) % self.region.geometry().slots();
        Ok(slot)
    }

    /// Hands the slot just used to the other end.
    fn give_slot(&self) -> Result<()> {
        match self.side {
            Side::Producer => self.sems.items.post(),
            Side::Consumer => self.sems.spaces.post(),
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
    scratch: Vec<u8>,
}

impl Producer {
    /// A producer over `region`, paced with the other ring ends of its
    /// owner by `pacing`: it streams data only in its turn.
    pub fn new(
        region: Arc<Region>,
        sems: RingSems,
        cancel: Arc<AtomicBool>,
        alive: Liveness,
        pacing: &Pacing,
    ) -> Producer {
        Producer {
            end: RingEnd::new(Side::Producer, region, sems, cancel, alive, pacing),
            scratch: Vec::new(),
        }
    }

    /// Gives up a wait for a free slot after `stall` (`None`: never).
    pub fn with_stall_timeout(mut self, stall: Option<Duration>) -> Producer {
        self.end.waiter.stall = stall;
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
        let slot = self.end.take_slot()?;
        let header = FrameHeader { kind, len: payload.len() as u32, seq }.encode();
        self.end.region.write_frame(slot, &header, payload);
        self.end.give_slot()
    }

    /// This end turned round: the consumer of the same ring (an upload
    /// session's server end). Only while the ring is empty, as the peer
    /// turns round at the same frame.
    pub fn turn_round(self) -> Consumer {
        Consumer { end: self.end.turned_round() }
    }

    /// Gives back this end's turn to stream, if it holds one: before
    /// something that may block for long (a read of a slow source), so that
    /// other sessions stream meanwhile. The next data frame waits in line.
    pub fn yield_turn(&mut self) {
        self.end.waiter.pacer.end_turn();
    }

    /// Sends a data frame. `bytes` must fit one slot ([`Producer::max_payload`]).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], [`Error::PeerGone`] or a semaphore's OS error.
    pub fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        self.end.waiter.take_turn()?;
        self.push(FrameKind::Data, seq, bytes)?;
        self.end.waiter.pacer.streamed(bytes.len());
        Ok(())
    }

    /// Sends the last data of a file and its end in one frame (`DataEnd`):
    /// `bytes`, then the `count` and `checksum` of the whole file. `bytes`
    /// must leave room for the trailer in one slot
    /// ([`Producer::max_payload`] less [`DataEnd::TRAILER_LEN`]). The turn
    /// is given back, as after an `End`.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_data`].
    pub fn send_data_end(&mut self, seq: u32, bytes: &[u8], count: u64, checksum: u64) -> Result<()> {
        debug_assert!(bytes.len() + DataEnd::TRAILER_LEN <= self.max_payload());
        self.end.waiter.take_turn()?;
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        payload.extend_from_slice(bytes);
        payload.extend_from_slice(&DataEnd::trailer(count, checksum));
        let res = self.push(FrameKind::DataEnd, seq, &payload);
        self.scratch = payload;
        self.end.waiter.pacer.streamed(bytes.len());
        self.end.waiter.pacer.end_turn();
        res
    }

    /// Sends a control frame.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_data`], and [`Error::Protocol`] for a frame larger
    /// than a slot (a list entry with a long path; reasons always fit).
    pub fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        // A control frame ends or precedes a file's data: no turn needed.
        self.end.waiter.pacer.end_turn();
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
    /// A consumer over `region`, paced with the other ring ends of its
    /// owner by `pacing`.
    pub fn new(
        region: Arc<Region>,
        sems: RingSems,
        cancel: Arc<AtomicBool>,
        alive: Liveness,
        pacing: &Pacing,
    ) -> Consumer {
        Consumer { end: RingEnd::new(Side::Consumer, region, sems, cancel, alive, pacing) }
    }

    /// Gives up a wait for a frame after `stall` (`None`: never).
    pub fn with_stall_timeout(mut self, stall: Option<Duration>) -> Consumer {
        self.end.waiter.stall = stall;
        self
    }

    /// The region this consumer empties.
    pub fn region(&self) -> &Region {
        &self.end.region
    }

    /// This end turned round: the producer of the same ring (an upload
    /// session's client end). Only while the ring is empty, as the peer
    /// turns round at the same frame.
    pub fn turn_round(self) -> Producer {
        Producer { end: self.end.turned_round(), scratch: Vec::new() }
    }

    /// The largest payload one frame carries.
    pub fn max_payload(&self) -> usize {
        self.end.max_payload()
    }

    /// Waits for the next frame, copies its payload into `buf` (resized to
    /// the payload's length) and gives the slot back. As
    /// [`Consumer::recv_into`], for the tests, which want an owned payload.
    ///
    /// # Errors
    ///
    /// As [`Consumer::recv_into`].
    #[cfg(test)]
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
        let slot = self.end.take_slot()?;
        let raw: [u8; FRAME_HEADER_LEN] = self.end.region.read_frame_header(slot);
        let header = FrameHeader::decode(&raw, self.max_payload().min(out.len()));
        if let Ok(h) = &header {
            self.end.region.read_payload(slot, &mut out[..h.len as usize]);
        }
        self.end.give_slot()?;
        Ok(header?)
    }
}

/// A ring in one process for tests: the server's producer and the
/// client's consumer over a region of `slots` named from `prefix`, paced by
/// `pacing`, and the flag that cancels both ends' waits.
#[cfg(test)]
pub(crate) fn ring_for_tests(
    prefix: &str,
    slots: u32,
    pacing: &Pacing,
) -> (Producer, Consumer, Arc<AtomicBool>) {
    use crate::os::names::SessionNames;
    use crate::os::semaphore::Semaphore;
    use crate::shm_region::Geometry;
    let pid = std::process::id();
    let names = SessionNames::fresh(prefix, pid).unwrap();
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
        Producer::new(Arc::new(opened), producer_sems, Arc::clone(&cancel), Box::new(|| Ok(())), pacing);
    let consumer =
        Consumer::new(Arc::new(created), consumer_sems, Arc::clone(&cancel), Box::new(|| Ok(())), pacing);
    (producer, consumer, cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm_region::pacing::DEFAULT_SPIN_BUDGET;

    /// Both ends of a ring in one process, over real shared memory and
    /// semaphores.
    fn pair(tag: &str, slots: u32) -> (Producer, Consumer) {
        // Each test its own pacing: no other test's ring takes its turns.
        pair_paced(tag, slots, &Pacing::new(DEFAULT_SPIN_BUDGET))
    }

    /// As [`pair`], paced by `pacing`.
    fn pair_paced(tag: &str, slots: u32, pacing: &Pacing) -> (Producer, Consumer) {
        let (producer, consumer, _) = ring_for_tests(&format!("/sxring_{tag}"), slots, pacing);
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
    fn a_ring_turned_round_carries_frames_from_the_client_to_the_server() {
        let (tx, rx) = pair("round", 2);
        let (mut server, mut client) = (tx.turn_round(), rx.turn_round());
        let sender = std::thread::spawn(move || {
            for i in 0..100u32 {
                client.send_data(i, &[i as u8; 300]).unwrap();
            }
            client
        });
        let mut buf = Vec::new();
        for i in 0..100u32 {
            let h = server.recv(&mut buf).unwrap();
            assert_eq!((h.kind, h.seq, buf.as_slice()), (FrameKind::Data, i, &[i as u8; 300][..]));
        }
        let client = sender.join().unwrap();
        assert_eq!(client.end.party, Party::Client, "the pacing hints stay each process's own");
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
    fn a_producer_blocked_on_a_full_ring_lets_another_stream_in_its_turn() {
        let pacing = Pacing::with_streams(1);
        let (mut stuck, stuck_rx) = pair_paced("stuck", 1, &pacing);
        let (mut other, other_rx) = pair_paced("other", 1, &pacing);
        // Fails rather than hangs if the turn is not given back.
        let mut other_rx = other_rx.with_stall_timeout(Some(Duration::from_secs(5)));
        let cancel = Arc::clone(&stuck.end.waiter.cancel);
        let blocked = std::thread::spawn(move || {
            stuck.send_data(1, &[1; 10])?;
            // Its one slot is full and nobody empties it: this one blocks.
            stuck.send_data(2, &[2; 10])
        });
        let sent = std::thread::spawn(move || other.send_data(1, &[3; 10]));
        let mut buf = Vec::new();
        let h = other_rx.recv(&mut buf).expect("the other ring streams");
        assert_eq!((h.seq, buf.as_slice()), (1, &[3; 10][..]));
        sent.join().unwrap().unwrap();
        cancel.store(true, Ordering::Relaxed);
        assert!(matches!(blocked.join().unwrap(), Err(Error::Cancelled)));
        drop(stuck_rx);
    }

    #[test]
    fn a_pinned_thread_gets_its_cpus_back_and_is_never_pinned_outside_them() {
        std::thread::spawn(|| {
            let mine = CpuSet::of_this_thread().unwrap();
            let first = (0..CpuSet::CAPACITY).find(|&c| mine.contains(c)).unwrap();
            let pinned = Pinned::to(first).expect("a CPU of its own set");
            assert_eq!(CpuSet::of_this_thread(), CpuSet::only(first));
            drop(pinned);
            assert_eq!(CpuSet::of_this_thread(), Some(mine));
            CpuSet::only(first).unwrap().apply_to_this_thread().unwrap();
            for outside in [first + 1, CpuSet::CAPACITY, u32::MAX] {
                assert!(Pinned::to(outside).is_none(), "CPU {outside}");
                assert_eq!(CpuSet::of_this_thread(), CpuSet::only(first));
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_client_shares_the_cpu_the_server_asks_for_only_if_it_may_run_there_and_gives_it_back() {
        let (mut tx, mut rx) = pair("pair_cpu", 2);
        std::thread::spawn(move || {
            let mine = CpuSet::of_this_thread().unwrap();
            let cpus: Vec<u32> = (0..CpuSet::CAPACITY).filter(|&c| mine.contains(c)).collect();
            let mut buf = Vec::new();
            let mut hand_over = |tx: &mut Producer, rx: &mut Consumer, asked: Option<u32>| {
                // As the server (or a hostile one) would write it.
                tx.region().set_pair_cpu(asked, true);
                tx.send_data(1, &[7; 100]).unwrap();
                let h = rx.recv(&mut buf).expect("frames still flow");
                assert_eq!((h.seq, buf.len()), (1, 100));
            };
            // Narrowed to one CPU, as taskset would: no other is followed.
            let only = CpuSet::only(cpus[0]).unwrap();
            only.apply_to_this_thread().unwrap();
            let others = cpus[1..].iter().map(|&c| Some(c));
            let started_on = rx.region().cpu(Party::Client);
            for asked in others.chain([Some(CpuSet::CAPACITY), Some(u32::MAX - 1), None]) {
                hand_over(&mut tx, &mut rx, asked);
                assert_eq!(CpuSet::of_this_thread(), Some(only), "asked for {asked:?}");
                // It says where it is, not where it was asked to be: the
                // pair is apart, and neither end blocks at once as if not.
                assert_eq!(rx.region().cpu(Party::Client), started_on, "asked for {asked:?}");
            }
            // With all its CPUs, it follows, says so, and gets them back
            // when the server no longer asks.
            mine.apply_to_this_thread().unwrap();
            let last = *cpus.last().unwrap();
            hand_over(&mut tx, &mut rx, Some(last));
            assert_eq!(CpuSet::of_this_thread(), CpuSet::only(last));
            assert_eq!(rx.region().cpu(Party::Client), Some(last));
            hand_over(&mut tx, &mut rx, None);
            assert_eq!(CpuSet::of_this_thread(), Some(mine));
            assert_eq!(rx.region().cpu(Party::Client), started_on);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_waiter_gives_up_when_cancelled_or_when_the_peer_is_gone() {
        let (_tx, mut rx) = pair("cancel", 2);
        rx.end.waiter.cancel.store(true, Ordering::Relaxed);
        let mut buf = Vec::new();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Cancelled)));
        rx.end.waiter.cancel.store(false, Ordering::Relaxed);
        rx.end.waiter.alive = Box::new(|| Err(Error::PeerGone("gone".into())));
        let start = Instant::now();
        assert!(matches!(rx.recv(&mut buf), Err(Error::PeerGone(_))));
        assert!(start.elapsed() < WAIT_SLICE * 5);
    }
}
