//! The raw OS layer: the one place that retries `EINTR`, and small safe
//! wrappers over the calls that `std` and `nix` do not offer in the form
//! needed here — named POSIX semaphores (`sem_*`, with `sem_clockwait` on
//! `CLOCK_MONOTONIC`), shared mappings, open-file-description locks,
//! confined opens (`openat2(RESOLVE_BENEATH)`), `getrandom`,
//! `sched_setattr`, a thread's CPU affinity, and the scheduler's figures
//! that pacing reads from `/proc`.
//!
//! Together with [`crate::shm_region`] (the copies in and out of the mapped
//! region) this is the only module with `unsafe`.

use std::ffi::CStr;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::FcntlArg;
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::time::TimeSpec;
use nix::time::ClockId;

/// Bytes moved per `read()` and per `write()` of a file's contents (the
/// server's source, the client's output, an upload's both ends): the slots
/// carry them on in pieces.
pub const IO_CHUNK: usize = 64 * 1024;

/// What a pipe between a relay's ends is made to hold: 16 times a pipe's
/// default, the most an unprivileged process may ask by default
/// (`/proc/sys/fs/pipe-max-size`), so that the stages of `-H` (server,
/// relay, remote shell, client) each work through a piece while the next
/// takes the one before, instead of waiting on each other every 64 KiB.
pub const RELAY_PIPE_BYTES: u32 = 1 << 20;

/// Makes the pipe at `fd` hold `bytes` where the system allows; anything
/// but a pipe (a file, a socket, a terminal), or a size past what this
/// user may ask, is left as it is: only a matter of speed.
pub fn widen_pipe(fd: impl AsFd, bytes: u32) {
    let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(bytes as libc::c_int));
}

/// Runs `call` again for as long as it fails with `EINTR`.
///
/// This is the one place that retries interrupted system calls. The timed
/// semaphore wait ([`SemHandle::wait_for`]) is the exception by design: it
/// reports an interruption to its caller, which checks for cancellation
/// before it waits again.
pub(crate) fn retry_if_interrupted<T>(mut call: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(Errno::EINTR) => continue,
            done => return done.map_err(io::Error::from),
        }
    }
}

/// The owner uid and inode number of the open descriptor `fd` (`fstat`), for
/// handles such as a message queue's that offer only a raw descriptor.
pub(crate) fn owner_and_inode(fd: &impl AsRawFd) -> io::Result<(u32, u64)> {
    // SAFETY: `fd` is borrowed for the whole call, so its descriptor stays
    // open while the borrowed one is in use.
    let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    let st = retry_if_interrupted(|| nix::sys::stat::fstat(fd))?;
    Ok((st.st_uid, st.st_ino))
}

/// 64 random bits from the kernel's CSPRNG.
pub(crate) fn random_u64() -> io::Result<u64> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        let n = retry_if_interrupted(|| {
            // SAFETY: the pointer and length describe `rest`, a live, writable buffer.
            Errno::result(unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) })
        })?;
        filled += n as usize;
    }
    Ok(u64::from_le_bytes(buf))
}

/// `struct sched_attr` of `sched_setattr(2)`, its first version (48 bytes).
#[repr(C)]
#[derive(Debug, Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// Asks for time slices of `slice` for the calling thread, keeping its
/// policy and nice value. Since Linux 6.12 a normal thread with a shorter
/// slice than the others on its core gets the core as soon as it wakes,
/// instead of after their slice; older kernels ignore the request.
pub fn request_time_slice(slice: Duration) -> io::Result<()> {
    let mut attr = SchedAttr { size: std::mem::size_of::<SchedAttr>() as u32, ..SchedAttr::default() };
    // SAFETY: `attr` is a writable sched_attr of the size passed; the kernel
    // writes at most that many bytes.
    let got = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut SchedAttr, attr.size, 0) };
    Errno::result(got)?;
    if attr.sched_policy != libc::SCHED_OTHER as u32 {
        return Ok(());
    }
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    attr.sched_runtime = slice.as_nanos().min(u128::from(u64::MAX)) as u64;
    // SAFETY: `attr` is an initialised sched_attr of the size it states.
    let set = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    Errno::result(set)?;
    Ok(())
}

/// The one CPU the calling thread may run on, if its affinity allows only
/// one (`taskset -c N`); `None` when the scheduler may move it, or when the
/// kernel does not say.
pub fn pinned_cpu() -> Option<u32> {
    let set = CpuSet::of_this_thread()?;
    let mut cpus = (0..CpuSet::CAPACITY).filter(|&c| set.contains(c));
    let one = cpus.next()?;
    cpus.next().is_none().then_some(one)
}

/// A set of CPUs, as `sched_setaffinity` takes it (`cpu_set_t`: CPUs
/// `0..CpuSet::CAPACITY`).
#[derive(Clone, Copy)]
pub(crate) struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// CPUs a set can name: those below this number.
    pub(crate) const CAPACITY: u32 = 8 * std::mem::size_of::<libc::cpu_set_t>() as u32;

    /// The CPUs the calling thread may run on; `None` where the kernel does
    /// not say (a machine with more CPUs than a set names).
    pub(crate) fn of_this_thread() -> Option<CpuSet> {
        // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a writable cpu_set_t of the size passed.
        let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        (got == 0).then_some(CpuSet(set))
    }

    /// The set of `cpu` alone; `None` for a number a set cannot name.
    pub(crate) fn only(cpu: u32) -> Option<CpuSet> {
        if cpu >= CpuSet::CAPACITY {
            return None;
        }
        // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below the set's size in bits (checked above).
        unsafe { libc::CPU_SET(cpu as usize, &mut set) };
        Some(CpuSet(set))
    }

    /// Whether `cpu` is in the set (never for a number a set cannot name).
    pub(crate) fn contains(&self, cpu: u32) -> bool {
        // SAFETY: CPU_ISSET only reads the set, at an index below its size
        // in bits (checked first).
        cpu < CpuSet::CAPACITY && unsafe { libc::CPU_ISSET(cpu as usize, &self.0) }
    }

    /// Restricts the calling thread (not its process) to the set.
    pub(crate) fn apply_to_this_thread(&self) -> io::Result<()> {
        // SAFETY: `self.0` is an initialised cpu_set_t of the size passed;
        // pid 0 is the calling thread.
        let set = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
        Errno::result(set)?;
        Ok(())
    }
}

impl PartialEq for CpuSet {
    fn eq(&self, other: &CpuSet) -> bool {
        // SAFETY: CPU_EQUAL only reads both sets.
        unsafe { libc::CPU_EQUAL(&self.0, &other.0) }
    }
}

impl std::fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries((0..CpuSet::CAPACITY).filter(|&c| self.contains(c))).finish()
    }
}

/// The calling thread's id (`gettid`): affinity belongs to a thread.
pub(crate) fn this_thread() -> libc::pid_t {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::gettid() }
}

/// The CPU the calling thread runs on now (`sched_getcpu`).
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: no arguments; returns -1 on failure.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// Reads the whole of a small `/proc` file into `buf` (one `read`: the
/// kernel makes such files at once) and returns its text.
fn read_proc<'b>(path: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    use std::io::Read;
    let n = std::fs::File::open(path).ok()?.read(buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()
}

/// How long the calling thread has run, and how long it has waited,
/// runnable, for a CPU, since it started (`/proc/thread-self/schedstat`:
/// its time on a CPU and its `run_delay`); `None` where the kernel does not
/// keep them.
pub(crate) fn thread_cpu_times() -> Option<(Duration, Duration)> {
    let mut buf = [0u8; 96];
    let text = read_proc("/proc/thread-self/schedstat", &mut buf)?;
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse().ok().map(Duration::from_nanos));
    Some((fields.next()??, fields.next()??))
}

/// The CPUs online on the machine (whatever this thread may run on).
pub(crate) fn online_cpus() -> Option<u32> {
    // SAFETY: sysconf reads a system value; -1 on failure.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0)
}

/// The tasks runnable on the whole machine now, this thread among them
/// (the numerator of `/proc/loadavg`'s fourth field).
pub(crate) fn runnable_tasks() -> Option<u32> {
    let mut buf = [0u8; 128];
    let text = read_proc("/proc/loadavg", &mut buf)?;
    text.split_ascii_whitespace().nth(3)?.split('/').next()?.parse().ok()
}

/// The idle time of all CPUs together since boot (the second figure of
/// `/proc/uptime`, in hundredths of a second).
pub(crate) fn idle_cpu_time() -> Option<Duration> {
    let mut buf = [0u8; 96];
    let text = read_proc("/proc/uptime", &mut buf)?;
    let secs: f64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A shared, readable and writable mapping of the start of a file; unmapped
/// on drop.
///
/// It hands out only a raw pointer: whoever reads or writes through it must
/// cope with another process writing the same memory at any time.
#[derive(Debug)]
pub(crate) struct SharedMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the handle is an address range and hands out only raw pointers;
// the memory behind it is shared with other processes anyway, so no thread
// can assume exclusive access to it.
unsafe impl Send for SharedMapping {}
// SAFETY: as above.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Maps the first `len` bytes of `file` (`mmap(MAP_SHARED)`, read and
    /// write). The mapping is page-aligned.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero `len`; errors of `mmap`.
    pub(crate) fn new(file: impl AsFd, len: usize) -> io::Result<SharedMapping> {
        let length = NonZeroUsize::new(len).ok_or_else(|| io::Error::from(Errno::EINVAL))?;
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // SAFETY: a fresh shared mapping of a descriptor the caller holds; the
        // kernel picks the address, so no existing memory is affected.
        let ptr = unsafe { nix::sys::mman::mmap(None, length, prot, MapFlags::MAP_SHARED, file, 0) }?;
        Ok(SharedMapping { ptr: ptr.cast(), len })
    }

    /// The first byte of the mapping.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped
        // once; only raw pointers into it were handed out, none of which may
        // be used past the handle's life.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr.cast(), self.len) };
    }
}

unsafe extern "C" {
    /// `sem_timedwait` against a chosen clock (glibc 2.30 and later); the
    /// `libc` crate does not declare it.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Makes the start of `file` a process-shared semaphore with the count
/// `value` (`sem_init(pshared = 1)` in a shared mapping). `file` must be at
/// least `size_of::<sem_t>()` bytes, freshly made by the caller and not yet
/// in use as a semaphore by anyone.
///
/// # Errors
///
/// Errors of `mmap` or `sem_init` (`EINVAL` for a value over `SEM_VALUE_MAX`).
pub(crate) fn init_shared_semaphore(file: impl AsFd, value: u32) -> io::Result<()> {
    let map = SharedMapping::new(file, std::mem::size_of::<libc::sem_t>())?;
    // SAFETY: the mapping is `size_of::<sem_t>()` writable bytes, page-aligned
    // (so aligned for a `sem_t`), and outlives the call.
    Errno::result(unsafe { libc::sem_init(map.as_ptr().cast::<libc::sem_t>(), 1, value) })?;
    Ok(())
}

/// An open named POSIX semaphore (`sem_open`); closed on drop. It never
/// unlinks the name: that is the business of whoever created it.
#[derive(Debug)]
pub(crate) struct SemHandle(NonNull<libc::sem_t>);

// SAFETY: POSIX semaphores may be used from any thread; the handle is only a
// pointer to the mapping glibc made for it, which lives until `sem_close`.
unsafe impl Send for SemHandle {}
// SAFETY: as above; `sem_post`, `sem_trywait` and `sem_clockwait` are
// thread-safe.
unsafe impl Sync for SemHandle {}

impl SemHandle {
    /// Opens the existing semaphore `name` (no `O_CREAT`).
    ///
    /// # Errors
    ///
    /// Errors of `sem_open` (`ENOENT` when there is none).
    pub(crate) fn open(name: &CStr) -> io::Result<SemHandle> {
        let sem = retry_if_interrupted(|| {
            // SAFETY: `name` is NUL-terminated and lives across the call;
            // without `O_CREAT`, sem_open reads no further arguments.
            let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
            if sem == libc::SEM_FAILED {
                Err(Errno::last())
            } else {
                Ok(sem)
            }
        })?;
        NonNull::new(sem).map(SemHandle).ok_or_else(|| io::Error::other("sem_open returned null"))
    }

    /// Increments the count (`sem_post`).
    ///
    /// # Errors
    ///
    /// `EOVERFLOW` when the count is at its maximum.
    pub(crate) fn post(&self) -> io::Result<()> {
        // SAFETY: `self.0` is a live semaphore from sem_open.
        Errno::result(unsafe { libc::sem_post(self.0.as_ptr()) })?;
        Ok(())
    }

    /// Decrements the count if it is above zero, without waiting
    /// (`sem_trywait`).
    pub(crate) fn try_wait(&self) -> bool {
        // SAFETY: `self.0` is a live semaphore from sem_open.
        unsafe { libc::sem_trywait(self.0.as_ptr()) == 0 }
    }

    /// Waits at most `timeout` to decrement the count. The deadline is on
    /// `CLOCK_MONOTONIC` (`sem_clockwait`): a change of the wall clock does
    /// not move it.
    ///
    /// # Errors
    ///
    /// `ETIMEDOUT` when the time ran out, `EINTR` when a signal arrived (not
    /// retried: the caller decides whether to wait again), others of
    /// `sem_clockwait` or `clock_gettime`.
    pub(crate) fn wait_for(&self, timeout: Duration) -> io::Result<()> {
        let deadline = monotonic_deadline(timeout)?;
        let ts: &libc::timespec = deadline.as_ref();
        // SAFETY: `self.0` is a live semaphore from sem_open; `ts` lives
        // across the call.
        Errno::result(unsafe { sem_clockwait(self.0.as_ptr(), libc::CLOCK_MONOTONIC, ts) })?;
        Ok(())
    }
}

impl Drop for SemHandle {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from sem_open and is closed exactly once.
        unsafe { libc::sem_close(self.0.as_ptr()) };
    }
}

/// Now plus `timeout` on `CLOCK_MONOTONIC`. A timeout of more than a
/// century counts as a century (the sum must fit in 64-bit nanoseconds).
fn monotonic_deadline(timeout: Duration) -> io::Result<TimeSpec> {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = nix::time::clock_gettime(ClockId::CLOCK_MONOTONIC)?;
    Ok(now + TimeSpec::from_duration(timeout.min(CENTURY)))
}

/// Removes the named semaphore `name` (`sem_unlink`).
///
/// # Errors
///
/// Errors of `sem_unlink` (`ENOENT` when there is none).
pub(crate) fn sem_unlink(name: &CStr) -> io::Result<()> {
    retry_if_interrupted(|| {
        // SAFETY: `name` is NUL-terminated and lives across the call.
        Errno::result(unsafe { libc::sem_unlink(name.as_ptr()) })
    })?;
    Ok(())
}

/// An `flock` request for the whole file.
fn whole_file_lock(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // the whole file
    fl
}

/// Takes an exclusive open-file-description lock on the whole of `fd` without
/// waiting. Returns `false` when another open file description holds a lock.
///
/// The kernel drops the lock when the last descriptor of this open file
/// description closes, which includes the death of the holder: this is the
/// liveness signal between the programs.
pub(crate) fn try_lock_exclusive(fd: impl AsFd) -> io::Result<bool> {
    let fl = whole_file_lock(libc::F_WRLCK);
    let fd = fd.as_fd();
    match retry_if_interrupted(|| nix::fcntl::fcntl(fd, FcntlArg::F_OFD_SETLK(&fl))) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether some other open file description holds a write lock on `fd`,
/// tested without taking any lock (`F_OFD_GETLK`).
pub(crate) fn is_write_locked(fd: impl AsFd) -> io::Result<bool> {
    let mut fl = whole_file_lock(libc::F_RDLCK);
    let fd = fd.as_fd();
    retry_if_interrupted(|| nix::fcntl::fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl)))?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Takes an exclusive `flock()` lock on `fd`'s open file description
/// without waiting: `false` when another open file description holds a
/// `flock()` lock on the file. On Linux `flock()` locks and the OFD locks of
/// [`try_lock_exclusive`] do not see each other, so a program that locks with
/// `flock()` is seen only this way. The lock lasts until [`flock_unlock`] or
/// until the open file description closes.
pub(crate) fn try_flock_exclusive(fd: impl AsFd) -> io::Result<bool> {
    let fd = fd.as_fd().as_raw_fd();
    match retry_if_interrupted(|| {
        // SAFETY: `fd` is an open descriptor borrowed for the call; `flock`
        // touches no memory.
        Errno::result(unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) })
    }) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lets go of a `flock()` lock taken by [`try_flock_exclusive`].
pub(crate) fn flock_unlock(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    retry_if_interrupted(|| {
        // SAFETY: `fd` is an open descriptor borrowed for the call; `flock`
        // touches no memory.
        Errno::result(unsafe { libc::flock(fd, libc::LOCK_UN) })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_the_time_slice_it_asks_for_where_the_kernel_shows_it() {
        std::thread::spawn(|| {
            request_time_slice(std::time::Duration::from_micros(100)).unwrap();
            // Honoured since 6.12; shown only with scheduler debugging.
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            let mut v = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
            let version = (v.next().unwrap_or(0), v.next().unwrap_or(0));
            let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            match sched.lines().find(|l| l.starts_with("se.slice")) {
                Some(line) if version >= (6, 12) => assert!(line.ends_with(" 100000"), "{line}"),
                _ => println!("skipped: kernel {} does not show or honour the slice", release.trim()),
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_pinned_to_one_cpu_runs_there_and_gets_its_set_back() {
        std::thread::spawn(|| {
            let before = CpuSet::of_this_thread().expect("this kernel says the affinity");
            let cpu = (0..CpuSet::CAPACITY).find(|&c| before.contains(c)).unwrap();
            CpuSet::only(cpu).unwrap().apply_to_this_thread().unwrap();
            assert_eq!(pinned_cpu(), Some(cpu));
            assert_eq!(current_cpu(), Some(cpu));
            before.apply_to_this_thread().unwrap();
            assert_eq!(CpuSet::of_this_thread(), Some(before));
        })
        .join()
        .unwrap();
        assert!(CpuSet::only(CpuSet::CAPACITY).is_none());
        assert!(!CpuSet::only(3).unwrap().contains(CpuSet::CAPACITY + 3));
        assert!(CpuSet::only(3).unwrap().contains(3));
    }

    #[test]
    fn the_schedulers_figures_are_read_where_the_kernel_keeps_them() {
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            let (ran, waited) = thread_cpu_times().expect("schedstat");
            let (ran_now, waited_now) = thread_cpu_times().unwrap();
            assert!(ran_now >= ran && waited_now >= waited);
        }
        let idle = idle_cpu_time().expect("/proc/uptime");
        assert!(idle_cpu_time().unwrap() >= idle);
    }

    #[test]
    fn ofd_locks_see_each_other_across_open_file_descriptions() {
        let f = tempfile::tempfile().unwrap();
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        let other = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        assert!(!is_write_locked(&other).unwrap());
        assert!(try_lock_exclusive(&f).unwrap());
        assert!(is_write_locked(&other).unwrap());
        assert!(!try_lock_exclusive(&other).unwrap());
        drop(f);
        assert!(!is_write_locked(&other).unwrap());
    }
}
