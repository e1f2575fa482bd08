//! The shared region (`shm_open` + `ftruncate` + `mmap`) and its two named
//! semaphores. All `unsafe` of the data path lives here, behind [`Region`] and
//! [`Semaphore`].
//!
//! ```text
//! +--------------------------------------------+ offset 0
//! | header (48 bytes): magic, version, sizes,  |
//! |   slot count, slot size, client/server pid |
//! +--------------------------------------------+ HEADER_LEN
//! | slot 0: frame header (16 bytes) | payload  |
//! | slot 1: ...                                |
//! +--------------------------------------------+ <= REGION_MAX (4096) bytes
//! ```
//!
//! The client creates the region and the semaphores (`O_EXCL`, mode 0600) and
//! unlinks them when its [`Region`]/[`Semaphore`] values drop; the server opens
//! them by name, checks owner, type and size with `fstat`, and only closes.
//!
//! No `&[u8]` into the mapping is ever handed out: the peer may write to it at
//! any time. Bytes are copied in and out with raw-pointer copies while the
//! semaphores say the slot is ours, and only then validated.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::names::{self, validate_name, SessionNames};
use crate::protocol::FRAME_HEADER_LEN;
use crate::sys::{self, retry_eintr};

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

const REGION_MAGIC: u32 = u32::from_le_bytes(*b"SXR1");
const LAYOUT_VERSION: u32 = 1;

/// The header at offset 0 of every region. Shared with another process:
/// only atomics and plain integers, fixed layout.
#[repr(C)]
struct Header {
    /// Written last by the creator (Release), checked first by the opener.
    magic: AtomicU32,
    version: u32,
    region_size: u32,
    slot_count: u32,
    slot_size: u32,
    client_pid: u32,
    /// Written by the server when it attaches.
    server_pid: AtomicU32,
    /// Set by the server when it ends the session on its own (see
    /// [`EndReason`]); 0 while the session runs.
    ended: AtomicU32,
    _reserved: [u32; 4],
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

/// A name that its creator removes: the creator's handle unlinks it when it
/// drops; a handle that only opened the object never does.
#[derive(Debug)]
struct OwnedName {
    name: CString,
    owner: bool,
    unlink: Unlink,
}

/// `shm_unlink` or `sem_unlink`.
type Unlink = unsafe extern "C" fn(*const libc::c_char) -> libc::c_int;

impl OwnedName {
    fn as_str(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }
}

impl Drop for OwnedName {
    fn drop(&mut self) {
        if self.owner {
            // SAFETY: `self.name` is NUL-terminated; `unlink` is shm_unlink or
            // sem_unlink, which only read it.
            unsafe { (self.unlink)(self.name.as_ptr()) };
        }
    }
}

/// Unlinks `name` with `unlink`; `Ok(false)` when it was already gone.
fn remove_name(name: &str, op: &'static str, unlink: Unlink) -> Result<bool> {
    let cname = validate_name(name)?;
    // SAFETY: `cname` is NUL-terminated and lives across the call.
    match retry_eintr(|| unsafe { unlink(cname.as_ptr()) }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(Error::os_named(op, name, e)),
    }
}

/// Removes the shared-memory object `name`: `Ok(false)` when there was none.
///
/// # Errors
///
/// [`Error::Os`] from `shm_unlink` other than `ENOENT`.
pub fn remove_shm(name: &str) -> Result<bool> {
    remove_name(name, "shm_unlink", libc::shm_unlink)
}

/// Removes the named semaphore `name`: `Ok(false)` when there was none.
///
/// # Errors
///
/// [`Error::Os`] from `sem_unlink` other than `ENOENT`.
pub fn remove_semaphore(name: &str) -> Result<bool> {
    remove_name(name, "sem_unlink", libc::sem_unlink)
}

/// Removes a session's region and semaphores, and returns the `/dev/shm`
/// file names of those that were there. For the objects of a client that is
/// gone: it can no longer remove them itself.
///
/// # Errors
///
/// [`Error::Os`] from an unlink other than `ENOENT`; the others are still
/// tried.
pub fn remove_session(names: &SessionNames) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let mut first_error = None;
    let results = [
        (remove_shm(&names.region), names::shm_file_name(&names.region).to_owned()),
        (remove_semaphore(&names.items), names::sem_file_name(&names.items)),
        (remove_semaphore(&names.spaces), names::sem_file_name(&names.spaces)),
    ];
    for (res, file) in results {
        match res {
            Ok(true) => removed.push(file),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// A POSIX shared-memory object, open. The creator unlinks it on drop.
#[derive(Debug)]
pub struct ShmObject {
    fd: OwnedFd,
    name: OwnedName,
}

impl ShmObject {
    /// Creates `name` with `O_EXCL`, mode 0600, and sets its size.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_open` (`EEXIST` if the name is taken) or from
    /// sizing it.
    pub fn create_exclusive(name: &str, size: usize) -> Result<ShmObject> {
        Self::create_exclusive_named(validate_name(name)?, size)
    }

    fn create_exclusive_named(cname: CString, size: usize) -> Result<ShmObject> {
        let obj = Self::open_named(cname, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, true)?;
        obj.set_len(size)?;
        obj.reserve(size)?;
        Ok(obj)
    }

    /// Opens an existing object without waiting (`O_NONBLOCK`: a FIFO put
    /// in its place cannot block us) and checks with `fstat` that it is a
    /// regular file.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_open` (`ENOENT` when it does not exist);
    /// [`Error::BadObject`] when it is not a regular file.
    pub fn open(name: &str, writable: bool) -> Result<ShmObject> {
        let access = if writable { libc::O_RDWR } else { libc::O_RDONLY };
        let obj = Self::open_with(name, access | libc::O_NONBLOCK, false)?;
        let meta = obj.stat()?;
        if !meta.file_type().is_file() {
            return Err(Error::BadObject {
                name: names::shm_path(name),
                reason: "not a regular file".into(),
            });
        }
        Ok(obj)
    }

    fn open_with(name: &str, flags: libc::c_int, owner: bool) -> Result<ShmObject> {
        Self::open_named(validate_name(name)?, flags, owner)
    }

    fn open_named(cname: CString, flags: libc::c_int, owner: bool) -> Result<ShmObject> {
        let name = cname.to_str().unwrap_or("?").to_owned();
        let name = name.as_str();
        // SAFETY: `cname` is NUL-terminated and lives across the call.
        let fd = retry_eintr(|| unsafe { libc::shm_open(cname.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })
            .map_err(|e| Error::os_named("shm_open", name, e))?;
        // SAFETY: shm_open returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(ShmObject { fd, name: OwnedName { name: cname, owner, unlink: libc::shm_unlink } })
    }

    fn set_len(&self, size: usize) -> Result<()> {
        let raw = self.fd.as_raw_fd();
        // SAFETY: `raw` is a valid descriptor owned by `self`.
        retry_eintr(|| unsafe { libc::ftruncate(raw, size as libc::off_t) })
            .map_err(|e| Error::os_named("ftruncate", self.name(), e))?;
        Ok(())
    }

    /// Reserves the memory of the first `size` bytes (`posix_fallocate`):
    /// `ftruncate` alone leaves a sparse object, and touching a page that
    /// a full `/dev/shm` cannot back kills the process with SIGBUS. Reserved,
    /// a full `/dev/shm` is an `ENOSPC` error here instead.
    fn reserve(&self, size: usize) -> Result<()> {
        if size == 0 {
            return Ok(());
        }
        let raw = self.fd.as_raw_fd();
        loop {
            // SAFETY: `raw` is a valid descriptor owned by `self`; the call
            // only sizes the object and returns an error number.
            let err = unsafe { libc::posix_fallocate(raw, 0, size as libc::off_t) };
            match err {
                0 => return Ok(()),
                libc::EINTR => continue,
                err => {
                    let source = io::Error::from_raw_os_error(err);
                    let why = format!("reserving {size} bytes: {source}");
                    return Err(Error::os_named(
                        "posix_fallocate",
                        self.name(),
                        io::Error::new(source.kind(), why),
                    ));
                }
            }
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// Size, owner and mode from `fstat`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `fstat`.
    pub fn stat(&self) -> Result<std::fs::Metadata> {
        let file = std::fs::File::from(self.fd.try_clone().map_err(|e| Error::os("dup", e))?);
        file.metadata().map_err(|e| Error::os_named("fstat", self.name(), e))
    }

    /// A second descriptor of the same open object.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `dup`.
    pub fn try_clone_fd(&self) -> Result<OwnedFd> {
        self.fd.try_clone().map_err(|e| Error::os("dup", e))
    }

    /// Replaces the object's contents with `bytes` (used for the server's
    /// pid in its lock object).
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `ftruncate` or `pwrite`.
    pub fn replace_contents(&self, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.set_len(bytes.len())?;
        let file = std::fs::File::from(self.try_clone_fd()?);
        file.write_all_at(bytes, 0).map_err(|e| Error::os_named("pwrite", self.name(), e))
    }

    /// Gives up the creator's duty to unlink the name on drop: the caller
    /// decides when to remove it.
    pub fn disown(&mut self) {
        self.name.owner = false;
    }

    /// Unlinks the name now, if this handle created it; drop will not
    /// unlink again.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `shm_unlink` other than `ENOENT`.
    pub fn remove(&mut self) -> Result<()> {
        if std::mem::take(&mut self.name.owner) {
            remove_shm(self.name())?;
        }
        Ok(())
    }
}

impl AsFd for ShmObject {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A named POSIX semaphore, open. The creator unlinks it on drop.
#[derive(Debug)]
pub struct Semaphore {
    sem: NonNull<libc::sem_t>,
    name: OwnedName,
}

// SAFETY: POSIX semaphores may be used from any thread; the handle is only a
// pointer to the mapping glibc made for it.
unsafe impl Send for Semaphore {}
// SAFETY: as above; sem_post/sem_wait are thread-safe.
unsafe impl Sync for Semaphore {}

/// What a timed wait on a semaphore ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The count was decremented.
    Acquired,
    /// The time ran out.
    TimedOut,
    /// A signal arrived; the caller decides whether to wait again.
    Interrupted,
}

impl Semaphore {
    /// Creates `name` with `O_EXCL`, mode 0600, and the count `value`.
    ///
    /// `sem_open(O_CREAT)` would build the semaphore in a temporary file
    /// `sem.XXXXXX` and then link it under its name: a process killed in
    /// between leaves a file nobody can trace to its queue. Instead the
    /// file is created under its final name (where glibc keeps a named
    /// semaphore: `/dev/shm/sem.<name>`), its memory reserved and the
    /// semaphore initialised in place; then it is opened as any existing
    /// semaphore. Whatever a kill leaves is named after its session and
    /// collected with it.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from the calls (`EEXIST` if the name is taken).
    pub fn create_exclusive(name: &str, value: u32) -> Result<Semaphore> {
        validate_name(name)?;
        // `sem.` adds four bytes: a valid semaphore name (at most
        // MAX_NAME_LEN bytes) still gives a legal file name.
        let file = CString::new(format!("/sem.{}", name.trim_start_matches('/'))).map_err(|_| {
            Error::InvalidName { name: name.to_owned(), reason: "must not contain NUL".into() }
        })?;
        let len = std::mem::size_of::<libc::sem_t>();
        let mut obj = ShmObject::create_exclusive_named(file, len)?;
        let ptr = map(&obj, len)?;
        // SAFETY: `ptr` is a fresh shared mapping of `len` bytes, the size of
        // a `sem_t`, page-aligned; no other process has opened the name yet.
        let rc = unsafe { libc::sem_init(ptr.as_ptr().cast::<libc::sem_t>(), 1, value) };
        let err = io::Error::last_os_error();
        // SAFETY: unmaps exactly the mapping made above, used no more.
        unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
        if rc == -1 {
            return Err(Error::os_named("sem_init", name, err));
        }
        let sem = Self::open_with(name, 0, 0, true)?;
        // The semaphore's handle unlinks the name from now on.
        obj.disown();
        Ok(sem)
    }

    /// Opens an existing semaphore.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sem_open` (`ENOENT` when it does not exist).
    pub fn open(name: &str) -> Result<Semaphore> {
        Self::open_with(name, 0, 0, false)
    }

    fn open_with(name: &str, flags: libc::c_int, value: u32, owner: bool) -> Result<Semaphore> {
        let cname = validate_name(name)?;
        // SAFETY: `cname` is NUL-terminated; with O_CREAT the variadic mode and
        // value arguments are passed with the types sem_open reads.
        let sem =
            unsafe { libc::sem_open(cname.as_ptr(), flags, 0o600 as libc::c_uint, value as libc::c_uint) };
        if sem == libc::SEM_FAILED {
            return Err(Error::os_named("sem_open", name, io::Error::last_os_error()));
        }
        let sem =
            NonNull::new(sem).ok_or_else(|| Error::os_named("sem_open", name, io::Error::other("null")))?;
        Ok(Semaphore { sem, name: OwnedName { name: cname, owner, unlink: libc::sem_unlink } })
    }

    /// Gives up the creator's duty to unlink the name on drop.
    pub fn disown(&mut self) {
        self.name.owner = false;
    }

    /// Increments the count, waking one waiter.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sem_post` (`EOVERFLOW`).
    pub fn post(&self) -> Result<()> {
        // SAFETY: `self.sem` is a live semaphore from sem_open.
        if unsafe { libc::sem_post(self.sem.as_ptr()) } == -1 {
            return Err(Error::os_named("sem_post", self.name(), io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Decrements the count if it is above zero, without waiting.
    pub fn try_wait(&self) -> bool {
        // SAFETY: `self.sem` is a live semaphore from sem_open.
        unsafe { libc::sem_trywait(self.sem.as_ptr()) == 0 }
    }

    /// Waits at most `timeout` to decrement the count.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] from `sem_timedwait` other than a timeout or a signal.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<WaitOutcome> {
        let deadline = SystemTime::now().checked_add(timeout).unwrap_or(SystemTime::now());
        let since = deadline.duration_since(UNIX_EPOCH).unwrap_or_default();
        let ts =
            libc::timespec { tv_sec: since.as_secs() as libc::time_t, tv_nsec: since.subsec_nanos() as _ };
        // SAFETY: `self.sem` is a live semaphore; `ts` lives across the call.
        if unsafe { libc::sem_timedwait(self.sem.as_ptr(), &ts) } == 0 {
            return Ok(WaitOutcome::Acquired);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ETIMEDOUT) => Ok(WaitOutcome::TimedOut),
            Some(libc::EINTR) => Ok(WaitOutcome::Interrupted),
            _ => Err(Error::os_named("sem_timedwait", self.name(), err)),
        }
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl Drop for Semaphore {
    fn drop(&mut self) {
        // SAFETY: `self.sem` came from sem_open and is closed exactly once.
        // The name (if ours) is unlinked after this, when `self.name` drops.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// A mapped session region: the shared-memory object and its mapping.
#[derive(Debug)]
pub struct Region {
    obj: ShmObject,
    ptr: NonNull<u8>,
    len: usize,
    geometry: Geometry,
    client_pid: u32,
}

// SAFETY: the mapping is plain shared memory; all access goes through raw
// pointer copies and atomics, which are sound from any thread.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

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
        let ptr = map(&obj, len)?;
        let region = Region { obj, ptr, len, geometry, client_pid };
        let h = region.header_ptr();
        // SAFETY: the mapping is `len >= HEADER_LEN` bytes, page-aligned, and no
        // other process knows its name yet; the header fields are plain u32s.
        unsafe {
            std::ptr::addr_of_mut!((*h).version).write_volatile(LAYOUT_VERSION);
            std::ptr::addr_of_mut!((*h).region_size).write_volatile(len as u32);
            std::ptr::addr_of_mut!((*h).slot_count).write_volatile(geometry.slots);
            std::ptr::addr_of_mut!((*h).slot_size).write_volatile(geometry.slot_size);
            std::ptr::addr_of_mut!((*h).client_pid).write_volatile(client_pid);
        }
        region.header().magic.store(REGION_MAGIC, Ordering::Release);
        Ok(region)
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
        let obj = ShmObject::open(name, true).map_err(|e| match e {
            Error::BadObject { reason, .. } => bad(reason),
            e => e,
        })?;
        let len = check_private_object(&obj, announced_size).map_err(bad)?;
        let ptr = map(&obj, len)?;
        let mut region = Region { obj, ptr, len, geometry: Geometry::for_slots(1), client_pid };
        region.geometry = region.read_geometry(client_pid).map_err(bad)?;
        Ok(region)
    }

    /// Reads and checks the header that the creator published.
    fn read_geometry(&self, client_pid: u32) -> std::result::Result<Geometry, String> {
        if self.header().magic.load(Ordering::Acquire) != REGION_MAGIC {
            return Err("no region header (bad magic)".into());
        }
        let h = self.header_ptr();
        // SAFETY: the mapping is `len > HEADER_LEN` bytes; plain u32 reads.
        let (version, region_size, slots, slot_size, pid) = unsafe {
            (
                std::ptr::addr_of!((*h).version).read_volatile(),
                std::ptr::addr_of!((*h).region_size).read_volatile(),
                std::ptr::addr_of!((*h).slot_count).read_volatile(),
                std::ptr::addr_of!((*h).slot_size).read_volatile(),
                std::ptr::addr_of!((*h).client_pid).read_volatile(),
            )
        };
        let len = self.len;
        if version != LAYOUT_VERSION {
            return Err(format!("layout version {version}, this build speaks {LAYOUT_VERSION}"));
        }
        let geometry = Geometry::for_slots(slots);
        if slots != geometry.slots || slot_size != geometry.slot_size || region_size as usize != len {
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

    fn header_ptr(&self) -> *mut Header {
        self.ptr.as_ptr().cast()
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping is at least HEADER_LEN bytes and page-aligned;
        // only the atomic fields are accessed through this reference, and
        // atomics may be shared with another process.
        unsafe { &*self.header_ptr() }
    }

    /// The ring geometry (validated copy).
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The pid of the client that created the region.
    pub fn client_pid(&self) -> u32 {
        self.client_pid
    }

    /// Records the serving process in the header.
    pub fn set_server_pid(&self, pid: u32) {
        self.header().server_pid.store(pid, Ordering::Release);
    }

    /// The serving process named in the header, 0 until a server attached.
    pub fn server_pid(&self) -> u32 {
        self.header().server_pid.load(Ordering::Acquire)
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        self.obj.name()
    }

    /// Records in the header that the server ended the session on its own.
    pub fn mark_ended(&self, reason: EndReason) {
        self.header().ended.store(reason as u32, Ordering::Release);
    }

    /// Why the server ended the session on its own, if it did. Only a known
    /// reason counts: the value comes from shared memory.
    pub fn ended(&self) -> Option<EndReason> {
        match self.header().ended.load(Ordering::Acquire) {
            1 => Some(EndReason::Stalled),
            2 => Some(EndReason::Idle),
            3 => Some(EndReason::ServerStopping),
            _ => None,
        }
    }

    /// The shared-memory object behind the mapping (for its liveness lock).
    pub fn object(&self) -> &ShmObject {
        &self.obj
    }

    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        let off = self.geometry.slot_offset(slot);
        debug_assert!(off + self.geometry.slot_size as usize <= self.len);
        // SAFETY: `slot_offset` checks `slot` against the validated geometry,
        // whose slots all lie inside the `len`-byte mapping.
        unsafe { self.ptr.as_ptr().add(off) }
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

/// Checks what `fstat` says of a client's object: owned by this user, not
/// open to group or others, `announced_size` bytes, and a size a region may
/// have. Returns the size.
fn check_private_object(obj: &ShmObject, announced_size: u32) -> std::result::Result<usize, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = obj.stat().map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
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

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn map(obj: &ShmObject, len: usize) -> Result<NonNull<u8>> {
    // SAFETY: a fresh shared mapping of a descriptor we hold; the kernel picks
    // the address, so no existing memory is affected.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            obj.as_fd().as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(Error::os_named("mmap", obj.name(), io::Error::last_os_error()));
    }
    NonNull::new(ptr.cast())
        .ok_or_else(|| Error::os_named("mmap", obj.name(), io::Error::other("null mapping")))
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
        assert!(crate::liveness::client_alive(&opened));
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
        assert!(!crate::liveness::client_alive(&opened));
        assert!(ShmObject::open(&name, false).is_err());
    }

    #[test]
    fn a_semaphore_of_the_longest_name_can_be_made() {
        let stem = unique("longsem");
        let name = format!("{stem}{}", "x".repeat(names::MAX_NAME_LEN - stem.len()));
        assert_eq!(name.len(), names::MAX_NAME_LEN);
        let sem = Semaphore::create_exclusive(&name, 1).unwrap();
        assert!(Semaphore::open(&name).unwrap().try_wait());
        drop(sem);
        assert!(Semaphore::open(&name).is_err(), "unlinked on drop");
    }

    #[test]
    fn semaphores_count_and_time_out() {
        let name = unique("sem");
        let a = Semaphore::create_exclusive(&name, 1).unwrap();
        // Made under its final name, where glibc keeps it, 0600.
        let file = std::path::Path::new("/dev/shm").join(format!("sem.{}", &name[1..]));
        let meta = std::fs::metadata(&file).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), std::mem::size_of::<libc::sem_t>() as u64);
        assert!(Semaphore::create_exclusive(&name, 0).is_err());
        let b = Semaphore::open(&name).unwrap();
        assert!(b.try_wait());
        assert!(!b.try_wait());
        assert_eq!(b.wait_timeout(Duration::from_millis(10)).unwrap(), WaitOutcome::TimedOut);
        a.post().unwrap();
        assert_eq!(b.wait_timeout(Duration::from_millis(10)).unwrap(), WaitOutcome::Acquired);
        drop(a);
        assert!(Semaphore::open(&name).is_err());
    }
}
