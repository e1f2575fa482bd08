//! The benchmark's "4 KiB pipe": copies SRC to DST through a kernel pipe whose
//! buffer is set to 4096 bytes (`F_SETPIPE_SZ`), with 4 KiB reads and writes
//! at both ends, and both ends — two processes, as in `cat | cat` — pinned to
//! one CPU. It is the kernel's own hand-over through a window the size of a
//! shmxfer region, for `scripts/bench.sh` to measure shmxfer against; it is
//! built with `cargo build --release --example pipe4k` and never installed.
//!
//! ```text
//! pipe4k SRC DST [CPU]     CPU: the one both ends run on (default: the first
//!                          this process may run on)
//! ```

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};

/// The pipe's buffer and each read and write: one page, as a region.
const WINDOW: usize = 4096;

/// The writing end's hidden mode: SRC to standard output (the pipe).
const WRITER: &str = "--write-end";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.as_slice() {
        [mode, src] if mode == WRITER => write_end(src),
        [src, dst] => run(src, dst, None),
        [src, dst, cpu] => match cpu.parse() {
            Ok(cpu) => run(src, dst, Some(cpu)),
            Err(_) => Err(io::Error::other(format!("{cpu}: not a CPU number"))),
        },
        _ => Err(io::Error::other("usage: pipe4k SRC DST [CPU]")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipe4k: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The writing end: `src` into standard output (the pipe), unbuffered.
fn write_end(src: &str) -> io::Result<()> {
    let mut out = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    copy(&mut File::open(src)?, &mut out)
}

/// Pins this process to `cpu` (or the first it may run on), makes the
/// 4 KiB pipe, starts the writing end on it (it inherits the CPU) and reads
/// the pipe into `dst`.
fn run(src: &str, dst: &str, cpu: Option<usize>) -> io::Result<()> {
    pin(cpu)?;
    let (mut reader, writer) = io::pipe()?;
    let size = nix::fcntl::fcntl(writer.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(WINDOW as i32))?;
    if size as usize != WINDOW {
        return Err(io::Error::other(format!("the pipe's buffer is {size} bytes, not {WINDOW}")));
    }
    let mut child =
        Command::new(std::env::current_exe()?).args([WRITER, src]).stdout(Stdio::from(writer)).spawn()?;
    let res = copy(&mut reader, &mut File::create(dst)?);
    drop(reader);
    let status = child.wait()?;
    res?;
    if !status.success() {
        return Err(io::Error::other(format!("the writing end: {status}")));
    }
    Ok(())
}

/// `from` into `to` in reads and writes of at most [`WINDOW`] bytes.
fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; WINDOW];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Restricts this process (and what it starts) to `cpu`, or to the first
/// CPU it may run on now.
fn pin(cpu: Option<usize>) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let len = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a writable cpu_set_t of `len` bytes.
    if unsafe { libc::sched_getaffinity(0, len, &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bits = 8 * len;
    // SAFETY: CPU_ISSET only reads the set, at an index below its size in bits.
    let first = (0..bits).find(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    let cpu = match cpu.or(first) {
        Some(c) if c < bits => c,
        _ => return Err(io::Error::other("no CPU to run on")),
    };
    // SAFETY: as above; the new set holds the one CPU, below the size in bits.
    unsafe {
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
    }
    // SAFETY: `set` is an initialised cpu_set_t of `len` bytes.
    if unsafe { libc::sched_setaffinity(0, len, &set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
