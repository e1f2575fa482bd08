//! Exit codes, and the messages and hints that go with a failure.

use super::*;

/// Every file delivered.
pub const EXIT_OK: u8 = 0;
/// At least one file not delivered (not found, refused, failed check, busy server).
pub const EXIT_NOT_DELIVERED: u8 = 1;
/// Usage error.
pub const EXIT_USAGE: u8 = 2;
/// No server within --wait.
pub const EXIT_NO_SERVER: u8 = 3;
/// Session lost: the server died, or broke the protocol; or local trouble
/// (out of file descriptors) before or during the session.
pub const EXIT_SESSION_LOST: u8 = 4;
/// Interrupted by SIGINT, SIGTERM, SIGHUP or SIGQUIT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Prints `msg` as the program's message on stderr and returns `code`:
/// `shm_client: error: …` when the run failed, as `shm_server: error: …`.
pub fn exit_with(code: u8, msg: &str) -> ExitCode {
    match code {
        EXIT_OK => eprintln!("shm_client: {msg}"),
        _ => eprintln!("shm_client: error: {msg}"),
    }
    ExitCode::from(code)
}

/// Exits 2 with clap's usage error `msg`.
pub fn usage_error(kind: ErrorKind, msg: impl std::fmt::Display) -> ! {
    Args::command().error(kind, msg).exit()
}

pub fn exit_code_for(e: &Error) -> u8 {
    match e {
        // No server to trust on this queue: its objects are not what they
        // should be (a FIFO, another user's queue or lock).
        Error::NoServer { .. }
        | Error::BadObject { .. }
        | Error::QueueFull { .. }
        | Error::OtherUsersServer { .. }
        | Error::Remote { failure: RemoteFailure::NoServer { .. }, .. } => EXIT_NO_SERVER,
        Error::Cancelled => EXIT_INTERRUPTED,
        Error::Busy { .. }
        | Error::Stopping { .. }
        | Error::NotFound { .. }
        | Error::Refused { .. }
        | Error::Failed { .. } => EXIT_NOT_DELIVERED,
        // A value of the command line the library cannot take (a -H host
        // beginning with '-', a ring size out of range).
        Error::InvalidName { .. }
        | Error::SameOutput { .. }
        | Error::SameRemote { .. }
        | Error::InvalidConfig(_) => EXIT_USAGE,
        // The remote shm_client's own code, passed through.
        Error::Remote { failure: RemoteFailure::Exited { code }, .. } => {
            u8::try_from(*code).unwrap_or(EXIT_SESSION_LOST)
        }
        _ => EXIT_SESSION_LOST,
    }
}

/// The library's message for `e` with its causes, in this program's words
/// where they name its options.
pub fn describe(e: &Error) -> String {
    match e {
        Error::SessionEnded(SessionEnd::ServerStopping) => {
            "the server stopped (SIGINT/SIGTERM or shm_client --stop-server) and cancelled this session"
                .into()
        }
        Error::Stalled { .. } => format!("{e} (--stall-timeout)"),
        Error::SameOutput { names: OutputNames::Basename, .. } => {
            format!("{e}; -R/--relative keeps their paths below the output directory")
        }
        Error::SameRemote { .. } => format!("{e}; send them in two runs or with --to"),
        // `--list small.txt/`: what a shell says of it.
        Error::Failed { reason: crate::FailReason::NotADirectory, text } => text.clone(),
        e => common::chain(e),
    }
}

/// Which way a run moved files: what a lost session leaves differs (a
/// fetch keeps its partial file with -C; an upload keeps nothing on either
/// side, unless the server stored it before its answer came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    Fetch,
    Upload,
}

/// What to do next about `e`, after its message, for a run that moved
/// files `way`.
fn hint(e: &Error, way: Way) -> &'static str {
    match (e, way) {
        // The server still runs: it ended this session, the client was stopped.
        (Error::SessionEnded(SessionEnd::ClientStalled | SessionEnd::ClientIdle), Way::Fetch) => {
            "; nothing partial is kept (without -C): run it again"
        }
        (Error::SessionEnded(SessionEnd::ClientStalled | SessionEnd::ClientIdle), Way::Upload) => {
            "; run it again"
        }
        (Error::PeerGone(_) | Error::Stalled { .. } | Error::SessionEnded(_), Way::Fetch) => {
            "; nothing partial is kept (without -C): run it again once the server runs"
        }
        (Error::PeerGone(_) | Error::Stalled { .. } | Error::SessionEnded(_), Way::Upload) => {
            "; run it again once the server runs"
        }
        (e, _) => other_hint(e),
    }
}

/// What to do next about `e`, whichever way the run moved files.
fn other_hint(e: &Error) -> &'static str {
    match e {
        Error::Remote { failure: RemoteFailure::NoServer { .. }, .. } => {
            "; start shm_server there first, or give --wait SECS to wait for it"
        }
        Error::Remote { failure: RemoteFailure::ClientNotFound { .. }, .. } => {
            "; give the path of shm_client on that host with --remote-client PATH"
        }
        Error::Remote { failure: RemoteFailure::Unreachable, .. } => {
            "; check the host name, and that the remote shell (--rsh) logs in there without a prompt"
        }
        Error::Os { source, .. } if matches!(source.raw_os_error(), Some(libc::EMFILE)) => {
            "; raise ulimit -n (the client needs about 10 descriptors) and run it again"
        }
        Error::Os { source, .. } if matches!(source.raw_os_error(), Some(libc::ENFILE)) => {
            "; the machine is out of file descriptors: close some, or raise fs.file-max, and run it again"
        }
        _ => "",
    }
}

pub fn fail(e: &Error) -> ExitCode {
    fail_moving(e, Way::Fetch)
}

/// [`fail`] for a run that moved files `way`.
pub fn fail_moving(e: &Error, way: Way) -> ExitCode {
    exit_with(exit_code_for(e), &format!("{}{}", describe(e), hint(e, way)))
}

/// [`fail`] for finding a server, which waited up to `wait`.
pub fn fail_to_connect(e: &Error, wait: Duration) -> ExitCode {
    let Error::NoServer { queue, .. } = e else {
        return fail(e);
    };
    let more = if wait.is_zero() { ", or give --wait SECS to wait for it" } else { "" };
    let stops = "a server started without --persistent stops after its last client";
    exit_with(exit_code_for(e), &format!("{e}; start `shm_server --queue {queue}` first{more} ({stops})"))
}
