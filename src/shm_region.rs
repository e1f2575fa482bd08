//! The mapped session region: its header, its geometry and the copies of
//! frames in and out of its slots ([`Region`]). The shared-memory object
//! behind it is a [`crate::os::shm_object::ShmObject`]; the two semaphores that
//! hand its slots back and forth are [`crate::os::semaphore::Semaphore`]s.
//!
//! ```text
//! +--------------------------------------------+ offset 0
//! | header (48 bytes): magic, version, pair    |
//! |   CPU, slot count, slot size, client/server|
//! |   pid, end reason, client/server CPU, ...  |
//! +--------------------------------------------+ HEADER_LEN
//! | slot 0: frame header (16 bytes) | payload  |
//! | slot 1: ...                                |
//! +--------------------------------------------+ <= REGION_MAX (4096) bytes
//! ```
//!
//! The client creates the region (`O_EXCL`, mode 0600) and unlinks it when
//! its [`Region`] drops; the server opens it by name, checks owner, type and
//! size with `fstat`, and only closes.
//!
//! No reference into the mapping is ever made but to one `AtomicU32` of the
//! header at a time: the peer may write to it at any time. Header fields are
//! read and written only as atomics, and copied out once before they are
//! checked; slot bytes are copied in and out with raw-pointer copies while
//! the semaphores say the slot is ours, and only then validated. Besides
//! `sys`, this is the only module with `unsafe`.

pub(crate) mod pacing;
pub(crate) mod ring;

use std::io;
use std::mem::offset_of;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};
use crate::os::shm_object::{Access, ShmObject};
use crate::os::sys::{self, SharedMapping};
use crate::protocol::FRAME_HEADER_LEN;

/// The region never exceeds this many bytes, header included.
pub const REGION_MAX: usize = 4096;
/// Bytes at the start of the region that hold its header.
pub const HEADER_LEN: usize = 48;
/// Most slots a ring may have: more would leave a slot too small for a
/// control frame with a reason or a listed path.
pub const MAX_SLOTS: u32 = 4;
/// Slots in a ring unless the client asks otherwise (see the README's
/// performance section for the measurement behind it).
pub const DEFAULT_SLOTS: u32 = 2;

/// The bit of the `pair_cpu` word that says the pair's CPU is crowded.
const CROWDED: u32 = 1 << 31;
const REGION_MAGIC: u32 = u32::from_le_bytes(*b"SXR1");
const LAYOUT_VERSION: u32 = 4;

/// The header at offset 0 of every region. Shared with another process: it
/// is never read or written as a whole, only field by field as atomics
/// ([`Region::header`]); this struct gives the layout.
#[repr(C)]
struct Header {
    /// Written last by the creator (Release), checked first by the opener.
    magic: AtomicU32,
    version: AtomicU32,
    /// While the server finds the machine busy, the one CPU it asks both
    /// ends of the session to share, plus one (0: none; see
    /// [`crate::shm_region::pacing`]). Written by the server only; to the client a
    /// hint, followed only to a CPU it may run on anyway. (The word held
    /// the region's size up to layout version 3, which the slot count and
    /// size already give.)
    pair_cpu: AtomicU32,
    slot_count: AtomicU32,
    slot_size: AtomicU32,
    client_pid: AtomicU32,
    /// Written by the server when it attaches.
    server_pid: AtomicU32,
    /// Set by the server when it ends the session on its own (see
    /// [`EndReason`]); 0 while the session runs.
    ended: AtomicU32,
    /// The one CPU the client may run on, plus one (0: it may move, or not
    /// known yet); a hint for pacing only, never trusted for anything else.
    client_cpu: AtomicU32,
    /// The same for the server.
    server_cpu: AtomicU32,
    /// In an upload session, where the ring runs from the client to the
    /// server: the last request the server answered (0: none yet), written
    /// (Release) after its answer.
    answered: AtomicU32,
    /// The answer to request `answered`, a
    /// [`crate::protocol::UploadAnswer`]'s word.
    answer: AtomicU32,
}

/// A field of the [`Header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Magic,
    Version,
    PairCpu,
    SlotCount,
    SlotSize,
    ClientPid,
    ServerPid,
    Ended,
    ClientCpu,
    ServerCpu,
    Answered,
    Answer,
}

impl Field {
    /// The field's offset from the start of the region.
    const fn offset(self) -> usize {
        match self {
            Field::Magic => offset_of!(Header, magic),
            Field::Version => offset_of!(Header, version),
            Field::PairCpu => offset_of!(Header, pair_cpu),
            Field::SlotCount => offset_of!(Header, slot_count),
            Field::SlotSize => offset_of!(Header, slot_size),
            Field::ClientPid => offset_of!(Header, client_pid),
            Field::ServerPid => offset_of!(Header, server_pid),
            Field::Ended => offset_of!(Header, ended),
            Field::ClientCpu => offset_of!(Header, client_cpu),
            Field::ServerCpu => offset_of!(Header, server_cpu),
            Field::Answered => offset_of!(Header, answered),
            Field::Answer => offset_of!(Header, answer),
        }
    }
}

/// The header as the opener copies it out, before any check.
#[derive(Debug, Clone, Copy)]
struct HeaderCopy {
    version: u32,
    slot_count: u32,
    slot_size: u32,
    client_pid: u32,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_LEN);
const _: () = assert!(Geometry::for_slots(1).region_size() <= REGION_MAX);
const _: () = assert!(Geometry::for_slots(MAX_SLOTS).region_size() <= REGION_MAX);
const _: () = assert!(Geometry::for_slots(MAX_SLOTS).max_payload() >= 8 + 512 + 256);

/// Why a server ended a session on its own, as recorded in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum EndReason {
    /// The client took no frame for the stall timeout.
    Stalled = 1,
    /// The client sent no request for the stall timeout.
    Idle = 2,
    /// The server stops (a signal, or a stop request) and cancelled the
    /// session.
    ServerStopping = 3,
    /// The server serves its maximum of sessions and turns this one away:
    /// marked before it attaches, so that the client sees it together with
    /// the server's pid; the `Busy` frame that follows gives the limit.
    Busy = 4,
}

/// One of the two processes that share a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The creator, which empties the slots.
    Client,
    /// The opener, which fills them.
    Server,
}

impl Party {
    const fn cpu_field(self) -> Field {
        match self {
            Party::Client => Field::ClientCpu,
            Party::Server => Field::ServerCpu,
        }
    }
}

/// How a region is cut into slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    slots: u32,
    slot_size: u32,
}

impl Geometry {
    /// The largest equal slots (8-byte multiples) that `slots` fit in the region.
    /// `slots` is clamped to `1..=MAX_SLOTS`.
    pub const fn for_slots(slots: u32) -> Geometry {
        let slots = if slots == 0 {
            1
        } else if slots > MAX_SLOTS {
            MAX_SLOTS
        } else {
            slots
        };
        let slot_size = ((REGION_MAX - HEADER_LEN) / slots as usize) & !7;
        Geometry { slots, slot_size: slot_size as u32 }
    }

    /// Number of slots in the ring.
    pub const fn slots(&self) -> u32 {
        self.slots
    }

    /// Largest frame payload one slot carries.
    pub const fn max_payload(&self) -> usize {
        self.slot_size as usize - FRAME_HEADER_LEN
    }

    /// Bytes the region needs for this geometry.
    pub const fn region_size(&self) -> usize {
        HEADER_LEN + self.slots as usize * self.slot_size as usize
    }

    fn slot_offset(&self, slot: u32) -> usize {
        assert!(slot < self.slots, "slot index out of range");
        HEADER_LEN + slot as usize * self.slot_size as usize
    }
}

/// A mapped session region: the shared-memory object and its mapping.
#[derive(Debug)]
pub struct Region {
    // Declared first: unmapped before the object is closed (and, on the
    // client, unlinked).
    map: SharedMapping,
    obj: ShmObject,
    geometry: Geometry,
}

impl Region {
    /// Creates the region `name` (`O_EXCL`, 0600), takes its liveness lock,
    /// maps it and publishes its header. Client side; unlinked on drop.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_open`, `fcntl`, `ftruncate` or `mmap`.
    pub fn create(name: &str, geometry: Geometry, client_pid: u32) -> Result<Region> {
        let len = geometry.region_size();
        let obj = ShmObject::create_exclusive(name, len)?;
        if !sys::try_lock_exclusive(&obj).map_err(|e| Error::os_named("fcntl(F_OFD_SETLK)", name, e))? {
            return Err(Error::os_named(
                "fcntl(F_OFD_SETLK)",
                name,
                io::Error::from_raw_os_error(libc::EAGAIN),
            ));
        }
        let map = SharedMapping::new(&obj, len).map_err(|e| Error::os_named("mmap", name, e))?;
        let region = Region { map, obj, geometry };
        // No other process knows the name yet; the magic, stored last with
        // Release, publishes the fields before it.
        region.header(Field::SlotCount).store(geometry.slots, Ordering::Relaxed);
        region.header(Field::SlotSize).store(geometry.slot_size, Ordering::Relaxed);
        region.header(Field::ClientPid).store(client_pid, Ordering::Relaxed);
        region.header(Field::Version).store(LAYOUT_VERSION, Ordering::Release);
        region.header(Field::Magic).store(REGION_MAGIC, Ordering::Release);
        Ok(region)
    }

    /// Whether the creator of `obj` published a region header in it (the
    /// magic, read without mapping). A client takes its region's lock
    /// before it publishes the header and holds it while it lives, so a
    /// published region whose lock is free has lost its creator.
    pub fn header_published(obj: &ShmObject) -> bool {
        use std::os::unix::fs::FileExt;
        let Ok(fd) = obj.try_clone_fd() else { return false };
        let mut magic = [0u8; 4];
        let offset = offset_of!(Header, magic) as u64;
        std::fs::File::from(fd).read_exact_at(&mut magic, offset).is_ok()
            && u32::from_ne_bytes(magic) == REGION_MAGIC
    }

    /// Opens and maps a client's region by name. Server side: checks that it
    /// is a regular object of this user, not open to others, exactly
    /// `announced_size` bytes, no more than [`REGION_MAX`], with a header of
    /// this version whose geometry fits the size and names `client_pid`. The
    /// geometry is copied out once; later changes by the peer are not trusted.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from the calls, [`Error::BadRegion`] for a region that
    /// fails a check.
    pub fn open(name: &str, announced_size: u32, client_pid: u32) -> Result<Region> {
        let bad = |reason: String| Error::BadRegion { name: name.to_owned(), reason };
        let obj = ShmObject::open(name, Access::ReadWrite).map_err(|e| match e {
            Error::BadObject { reason, .. } => bad(reason),
            e => e,
        })?;
        let len = check_private_object(&obj, announced_size).map_err(bad)?;
        let map = SharedMapping::new(&obj, len).map_err(|e| Error::os_named("mmap", name, e))?;
        let mut region = Region { map, obj, geometry: Geometry::for_slots(1) };
        let copy = region.copy_header().map_err(bad)?;
        region.geometry = check_header(&copy, len, client_pid).map_err(bad)?;
        Ok(region)
    }

    /// Copies the header that the creator published out of the mapping,
    /// once: the checks then look only at the copy.
    fn copy_header(&self) -> std::result::Result<HeaderCopy, String> {
        if self.header(Field::Magic).load(Ordering::Acquire) != REGION_MAGIC {
            return Err("no region header (bad magic)".into());
        }
        Ok(HeaderCopy {
            version: self.header(Field::Version).load(Ordering::Acquire),
            slot_count: self.header(Field::SlotCount).load(Ordering::Relaxed),
            slot_size: self.header(Field::SlotSize).load(Ordering::Relaxed),
            client_pid: self.header(Field::ClientPid).load(Ordering::Relaxed),
        })
    }

    /// One field of the header, as an atomic: the only way the header is
    /// read or written.
    fn header(&self, field: Field) -> &AtomicU32 {
        debug_assert!(self.map.len() > HEADER_LEN);
        // SAFETY: the mapping is more than HEADER_LEN bytes (checked before
        // mapping) and page-aligned, so the field at its offset inside the
        // header is in bounds and 4-byte aligned; `AtomicU32` has the layout
        // of a `u32`, and atomics may be shared with another process, which
        // may write the same word at any time. The reference lives no longer
        // than `self`, and so than the mapping.
        unsafe { AtomicU32::from_ptr(self.map.as_ptr().add(field.offset()).cast::<u32>()) }
    }

    /// The ring geometry (validated copy).
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Records the serving process in the header.
    pub fn set_server_pid(&self, pid: u32) {
        self.header(Field::ServerPid).store(pid, Ordering::Release);
    }

    /// The serving process named in the header, 0 until a server attached.
    pub fn server_pid(&self) -> u32 {
        self.header(Field::ServerPid).load(Ordering::Acquire)
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        self.obj.name()
    }

    /// Answers request `seq` of an upload session with `word` (the server,
    /// once per request): the word first, then the request (Release), so
    /// that a client that sees its request sees its answer.
    pub fn answer(&self, seq: u32, word: u32) {
        self.header(Field::Answer).store(word, Ordering::Relaxed);
        self.header(Field::Answered).store(seq, Ordering::Release);
    }

    /// The server's answer word to request `seq`, once it answered it
    /// (unchecked: it comes from shared memory).
    pub fn answer_to(&self, seq: u32) -> Option<u32> {
        (self.header(Field::Answered).load(Ordering::Acquire) == seq)
            .then(|| self.header(Field::Answer).load(Ordering::Relaxed))
    }

    /// Records in the header that the server ended the session on its own.
    pub fn mark_ended(&self, reason: EndReason) {
        self.header(Field::Ended).store(reason as u32, Ordering::Release);
    }

    /// Why the server ended the session on its own, if it did. Only a known
    /// reason counts: the value comes from shared memory.
    pub fn ended(&self) -> Option<EndReason> {
        match self.header(Field::Ended).load(Ordering::Acquire) {
            1 => Some(EndReason::Stalled),
            2 => Some(EndReason::Idle),
            3 => Some(EndReason::ServerStopping),
            4 => Some(EndReason::Busy),
            _ => None,
        }
    }

    /// Records in the header the one CPU that `party` may run on (`None`:
    /// the scheduler may move it), for its peer to see whether they share a
    /// core (see [`crate::shm_region::pacing`]).
    pub fn set_cpu(&self, party: Party, cpu: Option<u32>) {
        let value = cpu.map_or(0, |c| c.saturating_add(1));
        self.header(party.cpu_field()).store(value, Ordering::Relaxed);
    }

    /// The one CPU that `party` recorded, if it did. Only a hint: the peer
    /// may write anything there.
    pub fn cpu(&self, party: Party) -> Option<u32> {
        self.header(party.cpu_field()).load(Ordering::Relaxed).checked_sub(1)
    }

    /// Asks (the server) both ends of the session to share `cpu`, or
    /// (`None`) no longer; `crowded`: other work runs on that CPU too.
    pub fn set_pair_cpu(&self, cpu: Option<u32>, crowded: bool) {
        let value = cpu.map_or(0, |c| c.saturating_add(1) & !CROWDED) | if crowded { CROWDED } else { 0 };
        self.header(Field::PairCpu).store(value, Ordering::Relaxed);
    }

    /// The CPU the server asks both ends to share, if it does. Only a
    /// hint: the peer may write anything there, and the client checks the
    /// CPU against those it may run on before it follows.
    pub fn pair_cpu(&self) -> Option<u32> {
        (self.header(Field::PairCpu).load(Ordering::Relaxed) & !CROWDED).checked_sub(1)
    }

    /// Whether the server says other work runs on the CPU the pair shares
    /// (then each end blocks at once rather than yield the CPU to that
    /// work). Only a hint, as [`Region::pair_cpu`].
    pub fn pair_crowded(&self) -> bool {
        self.header(Field::PairCpu).load(Ordering::Relaxed) & CROWDED != 0
    }

    /// The shared-memory object behind the mapping (for its liveness lock).
    pub fn object(&self) -> &ShmObject {
        &self.obj
    }

    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        let off = self.geometry.slot_offset(slot);
        debug_assert!(off + self.geometry.slot_size as usize <= self.map.len());
        // SAFETY: `slot_offset` checks `slot` against the validated geometry,
        // whose slots all lie inside the mapping.
        unsafe { self.map.as_ptr().add(off) }
    }

    /// Copies a frame into `slot`: `header` at its start, `payload` after it.
    /// The caller must own the slot (it took a `spaces` count for it).
    ///
    /// # Panics
    ///
    /// When `payload` is longer than [`Geometry::max_payload`]: a bug of the caller.
    pub fn write_frame(&self, slot: u32, header: &[u8; FRAME_HEADER_LEN], payload: &[u8]) {
        assert!(payload.len() <= self.geometry.max_payload(), "frame payload over slot capacity");
        let dst = self.slot_ptr(slot);
        // SAFETY: `dst` points at a slot of `slot_size` bytes inside the mapping,
        // and header + payload fit in it (asserted above). The sources are
        // local buffers that cannot overlap the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(header.as_ptr(), dst, FRAME_HEADER_LEN);
            std::ptr::copy_nonoverlapping(payload.as_ptr(), dst.add(FRAME_HEADER_LEN), payload.len());
        }
    }

    /// Copies the frame header out of `slot`.
    pub fn read_frame_header(&self, slot: u32) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        // SAFETY: the slot lies inside the mapping and holds at least
        // FRAME_HEADER_LEN bytes; `out` is a local buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.slot_ptr(slot), out.as_mut_ptr(), FRAME_HEADER_LEN) };
        out
    }

    /// Copies `out.len()` payload bytes out of `slot`.
    ///
    /// # Panics
    ///
    /// When `out` is longer than [`Geometry::max_payload`]: a bug of the caller,
    /// who must have validated the frame's length.
    pub fn read_payload(&self, slot: u32, out: &mut [u8]) {
        assert!(out.len() <= self.geometry.max_payload(), "payload read over slot capacity");
        // SAFETY: the payload area of the slot lies inside the mapping and is
        // at least `out.len()` bytes (asserted above); `out` is local memory.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.slot_ptr(slot).add(FRAME_HEADER_LEN),
                out.as_mut_ptr(),
                out.len(),
            )
        };
    }
}

/// Checks the copied header against the mapping's `len` and the pid the
/// request came from, and returns the geometry it describes.
fn check_header(h: &HeaderCopy, len: usize, client_pid: u32) -> std::result::Result<Geometry, String> {
    let HeaderCopy { version, slot_count: slots, slot_size, client_pid: pid } = *h;
    if version != LAYOUT_VERSION {
        return Err(format!("layout version {version}, this build speaks {LAYOUT_VERSION}"));
    }
    let geometry = Geometry::for_slots(slots);
    if slots != geometry.slots || slot_size != geometry.slot_size {
        return Err(format!("geometry {slots} x {slot_size} bytes does not fit {len} bytes"));
    }
    if geometry.region_size() != len {
        return Err(format!("{slots} slots need {} bytes, region has {len}", geometry.region_size()));
    }
    if pid != client_pid {
        return Err(format!("header names pid {pid}, the request came from {client_pid}"));
    }
    Ok(geometry)
}

/// Checks what `fstat` says of a client's object: owned by this user, not
/// open to group or others, `announced_size` bytes, and a size a region may
/// have. Returns the size.
fn check_private_object(obj: &ShmObject, announced_size: u32) -> std::result::Result<usize, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = obj.stat().map_err(|e| e.to_string())?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not {me}", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!("mode {:o} lets others in", meta.mode() & 0o777));
    }
    let size = meta.len();
    if size != u64::from(announced_size) {
        return Err(format!("is {size} bytes, the request said {announced_size}"));
    }
    if size as usize <= HEADER_LEN || size as usize > REGION_MAX {
        return Err(format!("is {size} bytes, must be {}..={REGION_MAX}", HEADER_LEN + 1));
    }
    Ok(size as usize)
}

/// Whether the client that created `region` is alive: it holds a write lock
/// on the object for as long as it lives. An error counts as alive: only a
/// sure answer ends a session.
pub fn client_alive(region: &Region) -> bool {
    crate::os::liveness::is_locked(region.object()).unwrap_or(true)
}

/// What the sweeper may conclude about a client's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionState {
    /// Its creator may still use it: its lock is held, or it may be
    /// between creating the object and locking it.
    MayBeInUse,
    /// Its creator is gone for sure.
    Dead,
    /// No such object.
    Gone,
}

/// Whether the creator of the region `name` may still use it. Never judged
/// by pid (a client in another pid namespace, a reused pid): a region is
/// dead only when its lock is free and either its header is published
/// (the client locks before it publishes, and holds the lock while it
/// lives) or it is older than the grace (`past_grace`: the moment between
/// a client's `shm_open` and its lock has long passed).
///
/// # Errors
///
/// [`Error::Os`] from opening or probing the region.
pub fn region_state(name: &str, past_grace: bool) -> Result<RegionState> {
    let obj = match ShmObject::open(name, Access::ReadOnly) {
        Ok(obj) => obj,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(RegionState::Gone),
        Err(e) => return Err(e),
    };
    if crate::os::liveness::is_locked(&obj)? {
        return Ok(RegionState::MayBeInUse);
    }
    if past_grace || Region::header_published(&obj) {
        Ok(RegionState::Dead)
    } else {
        Ok(RegionState::MayBeInUse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        format!("/sxunit_{tag}_{}_{:x}", std::process::id(), sys::random_u64().unwrap())
    }

    #[test]
    fn geometries_fit_the_region_limit() {
        for n in 0..=MAX_SLOTS + 3 {
            let g = Geometry::for_slots(n);
            assert!(g.region_size() <= REGION_MAX);
            assert!((1..=MAX_SLOTS).contains(&g.slots()));
        }
        assert_eq!(Geometry::for_slots(DEFAULT_SLOTS).max_payload(), 2008);
    }

    #[test]
    fn region_round_trips_a_frame_and_is_unlinked_on_drop() {
        let name = unique("region");
        let g = Geometry::for_slots(2);
        let created = Region::create(&name, g, 42).unwrap();
        let opened = Region::open(&name, g.region_size() as u32, 42).unwrap();
        assert_eq!(opened.geometry(), g);
        assert!(client_alive(&opened));
        let header = [7u8; FRAME_HEADER_LEN];
        created.write_frame(1, &header, b"hello");
        assert_eq!(opened.read_frame_header(1), header);
        let mut out = [0u8; 5];
        opened.read_payload(1, &mut out);
        assert_eq!(&out, b"hello");
        opened.set_server_pid(9);
        assert_eq!(created.server_pid(), 9);
        assert!(Region::open(&name, 100, 42).is_err(), "wrong announced size");
        assert!(Region::open(&name, g.region_size() as u32, 43).is_err(), "wrong pid");
        drop(created);
        assert!(!client_alive(&opened));
        assert!(ShmObject::open(&name, Access::ReadOnly).is_err());
    }
}
