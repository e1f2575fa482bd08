//! Small safe wrappers over the Linux calls that neither `std` nor `nix` offer in
//! the form needed here: `EINTR` retry, randomness, open-file-description locks
//! and unnamed temporary files.
//!
//! Together with [`crate::shm_region`] this is the only module with `unsafe`.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// Runs `f` until it returns something other than `-1` with `EINTR`.
///
/// This is the one place that retries `EINTR` for plain system calls; the
/// timed semaphore waits instead report an interruption to their caller, which
/// checks for cancellation before it waits again.
pub(crate) fn retry_eintr<F: FnMut() -> libc::c_int>(mut f: F) -> io::Result<libc::c_int> {
    loop {
        let ret = f();
        if ret != -1 {
            return Ok(ret);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// The owner uid and inode number of the open descriptor `fd` (`fstat`), for
/// handles such as a message queue's that offer only a raw descriptor.
pub(crate) fn owner_and_inode(fd: &impl AsRawFd) -> io::Result<(u32, u64)> {
    // SAFETY: `stat` is a plain C struct for which all-zero bytes are valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is a descriptor the caller keeps open across the call;
    // the kernel writes into `st`, which lives across it.
    retry_eintr(|| unsafe { libc::fstat(raw, &mut st) })?;
    Ok((st.st_uid, st.st_ino))
}

/// 64 random bits from the kernel's CSPRNG.
pub(crate) fn random_u64() -> io::Result<u64> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable buffer.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
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
pub fn request_time_slice(slice: std::time::Duration) -> io::Result<()> {
    let mut attr = SchedAttr { size: std::mem::size_of::<SchedAttr>() as u32, ..SchedAttr::default() };
    // SAFETY: `attr` is a writable sched_attr of the size passed; the kernel
    // writes at most that many bytes.
    let got = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut SchedAttr, attr.size, 0) };
    if got == -1 {
        return Err(io::Error::last_os_error());
    }
    if attr.sched_policy != libc::SCHED_OTHER as u32 {
        return Ok(());
    }
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    attr.sched_runtime = slice.as_nanos().min(u128::from(u64::MAX)) as u64;
    // SAFETY: `attr` is an initialised sched_attr of the size it states.
    let set = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if set == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn ofd_lock_request(kind: libc::c_int) -> libc::flock {
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
    let fl = ofd_lock_request(libc::F_WRLCK);
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: `raw` is a valid descriptor borrowed for the call; `fl` is a valid
    // flock struct that lives across it.
    match retry_eintr(|| unsafe { libc::fcntl(raw, libc::F_OFD_SETLK, &fl) }) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether some other open file description holds a write lock on `fd`,
/// tested without taking any lock (`F_OFD_GETLK`).
pub(crate) fn is_write_locked(fd: impl AsFd) -> io::Result<bool> {
    let mut fl = ofd_lock_request(libc::F_RDLCK);
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: as in `try_lock_exclusive`; the kernel writes the answer into `fl`.
    retry_eintr(|| unsafe { libc::fcntl(raw, libc::F_OFD_GETLK, &mut fl) })?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
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
