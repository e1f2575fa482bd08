//! `--put FILE… [--to DIR]`: sends local files to the server's `--accept`
//! directory, a line per file, and maps the answers to an exit code.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use shmxfer::{PutIfExists, ReasonCode, UploadAnswer};

use super::*;

/// Where `local` goes below the server's `--accept` directory: its last
/// component, below `to` when given. `None` for a path without a file name.
fn remote_path(local: &Path, to: Option<&str>) -> Option<Vec<u8>> {
    let name = local.file_name()?.as_bytes();
    let dir = to.map(|t| normalize_path(t.as_bytes())).filter(|d| d != b".");
    Some(match dir {
        Some(mut dir) => {
            dir.push(b'/');
            dir.extend_from_slice(name);
            dir
        }
        None => name.to_vec(),
    })
}

/// What a refusal's code says, in a few words.
fn refusal_text(code: ReasonCode) -> &'static str {
    match code {
        ReasonCode::OutsideRoot => "it would be written outside the server's --accept directory",
        ReasonCode::InvalidPath => "not a path of plain names below the server's --accept directory",
        ReasonCode::IsDirectory => "a directory has that name on the server",
        ReasonCode::OutOfResources => "the server ran out of room (disk full?); nothing was kept",
        ReasonCode::PermissionDenied => "the server may not write there",
        ReasonCode::NameTooLong => "a name too long for the server's file system",
        ReasonCode::Changed => "the file changed while it was sent; nothing was kept",
        ReasonCode::TooLarge => "more bytes than announced; nothing was kept",
        _ => "it failed on the server; nothing was kept",
    }
}

/// Sends each file, a line per file; 0 when every file was stored or
/// skipped, 1 when one was not, the session's code when it was lost.
pub(crate) fn put(mut client: Client, args: &Args, files: &[PathBuf], to: Option<&str>) -> ExitCode {
    let if_exists = if args.no_clobber { PutIfExists::Skip } else { PutIfExists::Replace };
    let mut all_sent = true;
    for local in files {
        let shown = quote_path(local);
        let Some(remote) = remote_path(local, to) else {
            eprintln!("shm_client: error: {shown}: no file name in this path; not sent");
            all_sent = false;
            continue;
        };
        let remote_shown = quote_path(Path::new(std::ffi::OsStr::from_bytes(&remote))).into_owned();
        let size = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        match client.put_file(local, &remote, if_exists) {
            Ok(UploadAnswer::Stored) if args.quiet => {}
            Ok(UploadAnswer::Stored) => say(format_args!("{shown}: sent {size} bytes → {remote_shown}")),
            Ok(UploadAnswer::Skipped) if args.quiet => {}
            Ok(UploadAnswer::Skipped) => say(format_args!("{shown}: skipped: exists on the server")),
            Ok(UploadAnswer::NotAccepting) => {
                return exit_with(
                    EXIT_NOT_DELIVERED,
                    &format!(
                        "{shown}: refused: the server on queue {} takes no uploads; start it with \
                         `shm_server --accept DIR` to receive files into DIR",
                        args.queue
                    ),
                );
            }
            Ok(UploadAnswer::Refused(code)) => {
                say(format_args!("{shown}: refused by server: {remote_shown}: {}", refusal_text(code)));
                all_sent = false;
            }
            Ok(UploadAnswer::Failed(code)) => {
                say(format_args!("{shown}: failed: {}", refusal_text(code)));
                all_sent = false;
            }
            Err(e @ Error::Os { op: "open" | "stat" | "read", .. }) => {
                // The local file (not there, not a regular file, unreadable).
                say(format_args!("{shown}: not sent: {}", describe(&e)));
                all_sent = false;
            }
            Err(e) => return fail(&e),
        }
    }
    match client.close() {
        Ok(()) if all_sent => ExitCode::from(EXIT_OK),
        Ok(()) => ExitCode::from(EXIT_NOT_DELIVERED),
        Err(e) => fail(&e),
    }
}
