//! `--stdout` (and `-O -`): one file streamed to standard output.

use super::*;

/// `--stdout`: the file's bytes to stdout, any message to stderr.
pub fn stream(mut client: Client, args: &Args, path: &str, cancel: &Arc<AtomicBool>) -> ExitCode {
    let mut bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let stdout = match common::StopOnError::stdout(Arc::clone(cancel)) {
        Ok(stdout) => stdout,
        Err(e) => return exit_with(EXIT_NOT_DELIVERED, &format!("standard output: {e}")),
    };
    // `-O -` asks for the bytes on stdout in so many words, as `curl -o -`:
    // a terminal gets them.
    let asked_for_stdout = args.output.as_deref().is_some_and(|d| d.as_os_str() == "-");
    let guarded = NoBinaryOnTerminal::new(stdout, Arc::clone(cancel), asked_for_stdout);
    let mut out = std::io::BufWriter::with_capacity(IO_CHUNK, guarded);
    let fetched = client.fetch_to_with(path, &mut out, &mut bar);
    let fetched = fetched.and_then(|outcome| client.close().map(|()| outcome));
    let name = quote_name(path);
    if out.get_ref().check == TerminalCheck::Refused {
        let msg = format!("{name}: binary data not written to the terminal; redirect it to a file or a pipe");
        return exit_with(EXIT_NOT_DELIVERED, &msg);
    }
    // A write error ended the session: say so once, whatever the session said.
    let write_error = out.get_ref().inner.error.clone();
    if let Some(e) = write_error.filter(|_| !matches!(fetched, Ok(Outcome::Delivered { .. }))) {
        return exit_with(
            EXIT_NOT_DELIVERED,
            &format!("{name}: writing to standard output: {e}; transfer stopped"),
        );
    }
    match fetched {
        Ok(Outcome::Delivered { .. }) => ExitCode::from(EXIT_OK),
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
