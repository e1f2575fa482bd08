//! `--stdout` (and `-O -`): one file streamed to standard output.

use super::*;

/// Where a streamed file goes.
#[derive(Debug, Clone, Copy)]
pub enum StreamTo<'a> {
    /// Standard output (`--stdout`, `-O -`).
    Stdout,
    /// A character device or a FIFO that `-O` names: written into as `cp`
    /// writes into one, never replaced by a file.
    Special(&'a std::path::Path),
}

/// Whether `-O dest` is written into rather than replaced by a file: a
/// character device or a FIFO (followed, as `cp` follows it), or any path
/// that reaches one of this process's open descriptors (`/dev/stdout`,
/// `/dev/fd/N`, `/proc/self/fd/N`, or a symlink to one), which `cp` writes
/// into too. `Err` for a block device or a socket, which it is not.
pub fn special_dest(dest: &std::path::Path) -> Result<bool, String> {
    use std::os::unix::fs::FileTypeExt;
    if through_descriptor(dest) {
        return Ok(true);
    }
    match std::fs::metadata(dest) {
        Ok(m) if m.file_type().is_char_device() || m.file_type().is_fifo() => Ok(true),
        Ok(m) if m.file_type().is_block_device() => Err("is a block device; not written".into()),
        Ok(m) if m.file_type().is_socket() => Err("is a socket; not written".into()),
        _ => Ok(false),
    }
}

/// Whether `path`, its symlinks followed one at a time, names one of this
/// process's open descriptors.
fn through_descriptor(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let own = format!("/proc/{}/fd/", std::process::id());
    let mut at = path.to_path_buf();
    // As many links as the kernel follows.
    for _ in 0..40 {
        let bytes = at.as_os_str().as_bytes();
        let prefixes: [&[u8]; 4] = [b"/proc/self/fd/", b"/proc/thread-self/fd/", b"/dev/fd/", own.as_bytes()];
        if prefixes.iter().any(|p| bytes.starts_with(p)) || matches!(bytes, b"/dev/stdout" | b"/dev/stderr") {
            return true;
        }
        match std::fs::read_link(&at) {
            Ok(target) if target.is_absolute() => at = target,
            Ok(target) => at = at.parent().unwrap_or(std::path::Path::new("/")).join(target),
            Err(_) => return false,
        }
    }
    false
}

/// Opens the device or FIFO `dest` for writing, checking what was opened
/// (the path may have been swapped since it was looked at): a device or a
/// FIFO, or, reached through an open descriptor, anything (a regular file
/// is then written from its start, as `cp` writes it). A FIFO without a
/// reader is an error at once, not a wait.
fn open_special(dest: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(dest)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => std::io::Error::other("a FIFO that nobody reads"),
            _ => e,
        })?;
    let kind = file.metadata()?.file_type();
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(file);
    }
    if through_descriptor(dest) && !kind.is_block_device() {
        if kind.is_file() {
            file.set_len(0)?;
        }
        return Ok(file);
    }
    Err(std::io::Error::other("no longer a device or a FIFO when it was opened; nothing written"))
}

/// Whether `file` is the file standard output writes to.
fn is_stdout(file: &std::fs::File) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let out = std::io::stdout().as_fd().try_clone_to_owned().map(std::fs::File::from);
    match (out.and_then(|o| o.metadata()), file.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// `--stdout`: the file's bytes to stdout (or into the device or FIFO
/// `-O` names), any message to stderr.
pub fn stream(
    mut client: Client,
    args: &Args,
    path: &str,
    to: StreamTo<'_>,
    cancel: &Arc<AtomicBool>,
) -> ExitCode {
    if let (StreamTo::Special(_), true) = (to, args.no_clobber) {
        // What is there is kept, as `cp -n` keeps it: nothing is asked for.
        if !args.quiet {
            say(format_args!("{}: skipped: exists", quote_name(path)));
        }
        return match client.close() {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => fail(&e),
        };
    }
    let mut bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let mut quiet_stdout = false;
    let (opened, shown) = match to {
        StreamTo::Stdout => (common::StopOnError::stdout(Arc::clone(cancel)), "standard output".to_owned()),
        StreamTo::Special(dest) => (
            open_special(dest).and_then(|f| {
                // Into standard output by another name: it holds the bytes alone.
                quiet_stdout = is_stdout(&f);
                common::StopOnError::new(f, Arc::clone(cancel))
            }),
            dest.display().to_string(),
        ),
    };
    let out = match opened {
        Ok(out) => out,
        Err(e) => return exit_with(EXIT_NOT_DELIVERED, &format!("{shown}: {e}")),
    };
    // `-O -` asks for the bytes on stdout in so many words, as `curl -o -`:
    // a terminal gets them; so does a device `-O` names.
    let asked_for_stdout =
        matches!(to, StreamTo::Special(_)) || args.output.as_deref().is_some_and(|d| d.as_os_str() == "-");
    let guarded = NoBinaryOnTerminal::new(out, Arc::clone(cancel), asked_for_stdout);
    let mut out = std::io::BufWriter::with_capacity(IO_CHUNK, guarded);
    let fetched = client.fetch_to_with(path, &mut out, &mut bar);
    // The bytes have left for the device (or the FIFO's reader) only once
    // the buffer is written out.
    let flushed = out.flush();
    let fetched = fetched.and_then(|outcome| client.close().map(|()| outcome));
    let name = quote_name(path);
    if out.get_ref().check == TerminalCheck::Refused {
        let msg = format!("{name}: binary data not written to the terminal; redirect it to a file or a pipe");
        return exit_with(EXIT_NOT_DELIVERED, &msg);
    }
    // A write error ended the session: say so once, whatever the session said.
    let write_error = out.get_ref().inner.error.clone().or_else(|| flushed.err().map(|e| e.to_string()));
    if let Some(e) = write_error {
        if !matches!(fetched, Ok(Outcome::Delivered { .. })) || matches!(to, StreamTo::Special(_)) {
            return exit_with(
                EXIT_NOT_DELIVERED,
                &format!("{name}: writing to {shown}: {e}; transfer stopped"),
            );
        }
    }
    match fetched {
        Ok(Outcome::Delivered { bytes }) => {
            if let (StreamTo::Special(_), false) = (to, args.quiet || quiet_stdout) {
                // A result line: the name whole.
                say(format_args!(
                    "{}: received {} → {shown}",
                    crate::programs::quote_whole(path.as_bytes()),
                    if args.human { human_size(bytes) } else { common::byte_count(bytes) }
                ));
            }
            ExitCode::from(EXIT_OK)
        }
        Ok(outcome) => exit_with(EXIT_NOT_DELIVERED, &format!("{name}: {}", outcome_text(&outcome))),
        Err(e) => fail(&e),
    }
}

/// Whether `--stdout` may write what arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalCheck {
    /// Standard output is a terminal and nothing was written yet.
    Pending,
    /// Not a terminal, or the first chunk was text.
    Passed,
    /// The first chunk held a NUL byte: binary, refused.
    Refused,
}

/// `--stdout` to a terminal: the first chunk (64 KiB) is looked at, and if
/// it holds a NUL byte nothing is written and the session ends (as `curl`
/// refuses binary output to a terminal), so that a binary file does not
/// garble the terminal. `-O -` writes it all the same, as `curl -o -` does.
#[derive(Debug)]
pub struct NoBinaryOnTerminal {
    inner: common::StopOnError,
    cancel: Arc<AtomicBool>,
    check: TerminalCheck,
}

impl NoBinaryOnTerminal {
    fn new(
        inner: common::StopOnError,
        cancel: Arc<AtomicBool>,
        asked_for_stdout: bool,
    ) -> NoBinaryOnTerminal {
        let check = if std::io::stdout().is_terminal() && !asked_for_stdout {
            TerminalCheck::Pending
        } else {
            TerminalCheck::Passed
        };
        NoBinaryOnTerminal { inner, cancel, check }
    }
}

impl Write for NoBinaryOnTerminal {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.check {
            TerminalCheck::Pending if buf.contains(&0) => {
                self.check = TerminalCheck::Refused;
                self.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            TerminalCheck::Pending => self.check = TerminalCheck::Passed,
            TerminalCheck::Passed | TerminalCheck::Refused => {}
        }
        match self.check {
            TerminalCheck::Refused => Err(std::io::Error::other("binary data to a terminal")),
            _ => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
