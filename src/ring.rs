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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::protocol::{FrameHeader, FrameKind, Reply, FRAME_HEADER_LEN};
use crate::shm_region::{Region, Semaphore, WaitOutcome};

/// How long one blocking wait lasts before the waiter looks at the peer and
/// the cancel flag again. Bounds the time to notice a dead peer or a signal.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// How long a waiter spins on `sem_trywait` before it blocks. Set by the
/// environment variable `SHMXFER_SPIN_US` (microseconds), for measurements.
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

/// Checks whether the peer is still there; called once per wait slice.
pub type Liveness = Box<dyn Fn() -> Result<()> + Send>;

/// Takes one count of `sem`: spin, then block in slices, checking `cancel`
/// and `alive` between slices.
fn acquire(sem: &Semaphore, cancel: &AtomicBool, alive: &Liveness) -> Result<()> {
    // Checked on every frame, not only when waiting: a transfer running at
    // full speed never waits, and must still stop at once on SIGINT.
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    if sem.try_wait() {
        return Ok(());
    }
    let budget = spin_budget();
    if !budget.is_zero() {
        // A short busy spin catches a peer running on the other core...
        for _ in 0..SPIN_ROUNDS {
            std::hint::spin_loop();
            if sem.try_wait() {
                return Ok(());
            }
        }
        // ...then yield, so that a peer waiting for this very core gets it,
        // until the budget is spent.
        let start = Instant::now();
        while start.elapsed() < budget {
            std::thread::yield_now();
            if sem.try_wait() {
                return Ok(());
            }
        }
    }
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
    }
}

/// The two semaphores and the slot cursor shared by both ends.
#[derive(Debug)]
pub struct RingSems {
    pub items: Semaphore,
    pub spaces: Semaphore,
}

/// The server's end: fills slots.
pub struct Producer {
    region: Arc<Region>,
    sems: RingSems,
    next: u32,
    cancel: Arc<AtomicBool>,
    alive: Liveness,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("region", &self.region.name()).field("next", &self.next).finish()
    }
}

impl Producer {
    /// A producer over `region`.
    pub fn new(region: Arc<Region>, sems: RingSems, cancel: Arc<AtomicBool>, alive: Liveness) -> Producer {
        Producer { region, sems, next: 0, cancel, alive, scratch: Vec::new() }
    }

    /// The largest data payload one frame carries.
    pub fn max_payload(&self) -> usize {
        self.region.geometry().max_payload()
    }

    /// Whether a slot is free right now (nothing is taken).
    pub fn has_free_slot(&self) -> bool {
        if self.sems.spaces.try_wait() {
            let _ = self.sems.spaces.post();
            true
        } else {
            false
        }
    }

    /// The region this producer fills.
    pub fn region(&self) -> &Region {
        &self.region
    }

    fn push(&mut self, kind: FrameKind, seq: u32, payload: &[u8]) -> Result<()> {
        acquire(&self.sems.spaces, &self.cancel, &self.alive)?;
        let header = FrameHeader { kind, len: payload.len() as u32, seq }.encode();
        self.region.write_frame(self.next, &header, payload);
        self.next = (self.next + 1) % self.region.geometry().slots();
        self.sems.items.post()
    }

    /// Sends a data frame. `bytes` must fit one slot ([`Producer::payload`]).
    ///
    /// # Errors
    ///
    /// [`Error::Cancelled`], [`Error::PeerGone`] or a semaphore's OS error.
    pub fn send_data(&mut self, seq: u32, bytes: &[u8]) -> Result<()> {
        self.push(FrameKind::Data, seq, bytes)
    }

    /// Sends a control frame. Reasons longer than a slot are cut.
    ///
    /// # Errors
    ///
    /// As [`Producer::send_data`].
    pub fn send(&mut self, seq: u32, reply: &Reply) -> Result<()> {
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        reply.encode_payload(&mut payload);
        let cap = self.max_payload();
        if payload.len() > cap {
            match reply {
                Reply::Refused(_) | Reply::Error(_) => {
                    let mut end = cap;
                    while std::str::from_utf8(&payload[..end]).is_err() {
                        end -= 1;
                    }
                    payload.truncate(end);
                }
                _ => {
                    self.scratch = payload;
                    return Err(Error::Protocol(format!(
                        "{:?} frame does not fit a {cap}-byte slot",
                        reply.kind()
                    )));
                }
            }
        }
        let res = self.push(reply.kind(), seq, &payload);
        self.scratch = payload;
        res
    }
}

/// The client's end: empties slots.
pub struct Consumer {
    region: Region,
    sems: RingSems,
    next: u32,
    cancel: Arc<AtomicBool>,
    alive: Liveness,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("region", &self.region.name()).field("next", &self.next).finish()
    }
}

impl Consumer {
    /// A consumer over `region`.
    pub fn new(region: Region, sems: RingSems, cancel: Arc<AtomicBool>, alive: Liveness) -> Consumer {
        Consumer { region, sems, next: 0, cancel, alive }
    }

    /// The region this consumer empties.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The largest payload one frame carries.
    pub fn max_payload(&self) -> usize {
        self.region.geometry().max_payload()
    }

    /// Waits for the next frame, copies its payload into `buf` (resized to
    /// the payload's length) and gives the slot back. The header is
    /// validated against the slot's capacity before anything is copied.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for a malformed frame header, [`Error::Cancelled`],
    /// [`Error::PeerGone`] or a semaphore's OS error.
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<FrameHeader> {
        acquire(&self.sems.items, &self.cancel, &self.alive)?;
        let slot = self.next;
        self.next = (self.next + 1) % self.region.geometry().slots();
        let raw: [u8; FRAME_HEADER_LEN] = self.region.read_frame_header(slot);
        let header = FrameHeader::decode(&raw, self.max_payload());
        if let Ok(h) = &header {
            buf.resize(h.len as usize, 0);
            self.region.read_payload(slot, buf);
        }
        self.sems.spaces.post()?;
        Ok(header?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::SessionNames;
    use crate::shm_region::Geometry;

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
        let consumer = Consumer::new(created, consumer_sems, cancel, Box::new(|| Ok(())));
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
    fn a_waiter_gives_up_when_cancelled_or_when_the_peer_is_gone() {
        let (_tx, mut rx) = pair("cancel", 2);
        rx.cancel.store(true, Ordering::Relaxed);
        let mut buf = Vec::new();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Cancelled)));
        rx.cancel.store(false, Ordering::Relaxed);
        rx.alive = Box::new(|| Err(Error::PeerGone("gone".into())));
        let start = Instant::now();
        assert!(matches!(rx.recv(&mut buf), Err(Error::PeerGone(_))));
        assert!(start.elapsed() < WAIT_SLICE * 5);
    }
}
