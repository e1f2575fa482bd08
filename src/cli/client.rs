//! `shm_client`: fetches files from `shm_server` through POSIX shared memory.
//! Parses arguments into a [`Mode`], runs it through [`crate::Client`],
//! prints one line per file and maps the outcome to an exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::programs::{
    human_size, is_pattern, normalize_path, quote_name, DEFAULT_SLOTS, IO_CHUNK, MAX_SLOTS,
};
use crate::remote::{Remote, RemoteFailure};
use crate::{
    Client, ClientConfig, Clobber, Error, FetchOptions, Outcome, OutputNames, Partial, SessionEnd,
    SessionKind, StatusSession, StopKind, Times, Update, UploadSession, Waiting, DEFAULT_QUEUE,
};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use serde::Serialize;

use crate::cli as common;
use common::bar::Bar;

pub mod args;
pub mod exit;
pub mod put;
pub mod stdout;
use args::{Args, Mode};
use common::show::{self, message_path, outcome_text, quote_path, say, say_skipped, Format, Lines};
use exit::*;

/// `std::eprintln!` without its panic: a closed stderr (`2>&1 | head -1`)
/// loses the message, not the exit status.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// How long a fetch waits for a server unless `--wait` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The host of `-H` reached as `--rsh` and `--remote-client` say.
pub fn remote(args: &Args, host: &str) -> Remote {
    let words = match shlex::split(&args.rsh) {
        Some(words) if !words.is_empty() => words,
        Some(_) => {
            usage_error(ErrorKind::InvalidValue, "--rsh '': give the remote shell command (default ssh)")
        }
        None => usage_error(ErrorKind::InvalidValue, format!("--rsh {:?}: unbalanced quotes", args.rsh)),
    };
    Remote::new(host)
        .with_rsh(words.into_iter().map(Into::into).collect())
        .with_remote_client(args.remote_client.clone())
}

/// A kind of session the program opens, here or on the host of `-H`.
pub trait Connect: Sized {
    /// Opens it with the server of `config.queue` on this machine.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`].
    fn connect(config: &ClientConfig) -> Result<Self, Error>;

    /// Opens it with the server of `config.queue` on the host `remote`.
    ///
    /// # Errors
    ///
    /// As [`Client::connect_remote`].
    fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<Self, Error>;
}

impl Connect for Client {
    fn connect(config: &ClientConfig) -> Result<Self, Error> {
        Client::connect(config)
    }

    fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<Self, Error> {
        Client::connect_remote(config, remote)
    }
}

impl Connect for UploadSession {
    fn connect(config: &ClientConfig) -> Result<Self, Error> {
        UploadSession::connect(config)
    }

    fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<Self, Error> {
        UploadSession::connect_remote(config, remote)
    }
}

impl Connect for StatusSession {
    fn connect(config: &ClientConfig) -> Result<Self, Error> {
        StatusSession::connect(config)
    }

    fn connect_remote(config: &ClientConfig, remote: &Remote) -> Result<Self, Error> {
        StatusSession::connect_remote(config, remote)
    }
}

/// A session of kind `S` with the server of `config.queue`, on the host of
/// `-H` when given; or the exit code of a session that could not be opened
/// (its wait for a server was `wait`).
pub fn connect<S: Connect>(config: &ClientConfig, args: &Args, wait: Duration) -> Result<S, ExitCode> {
    let opened = match &args.host {
        Some(host) => S::connect_remote(config, &remote(args, host)),
        None => S::connect(config),
    };
    opened.map_err(|e| fail_to_connect(&e, wait))
}

/// `--stop-server -H HOST`: the `shm_client --stop-server` run on HOST says
/// what happened (on stderr, as it is) and its exit status is this one's.
pub fn stop_remote(config: &ClientConfig, remote: &Remote, kind: StopKind) -> ExitCode {
    match crate::remote::stop_remote_server(config, remote, kind) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => fail(&e),
    }
}

/// What is checked before any request: the outputs of a fetch.
pub fn check_before_any_request(args: &Args, mode: &Mode) -> Result<(), ExitCode> {
    match mode {
        Mode::Fetch { files, recursive } => check_output(args, files, *recursive),
        Mode::Output { dest, .. } => check_dest(dest),
        _ => Ok(()),
    }
}

/// The library's configuration from the command line.
pub fn client_config(args: &Args, wait: Duration, cancel: &Arc<AtomicBool>) -> Result<ClientConfig, Error> {
    let config = ClientConfig::builder(&args.queue)
        .wait(wait)
        // Only a --wait given waits for a free session of a busy server.
        .busy_wait(args.wait.unwrap_or(Duration::ZERO))
        .slots(args.slots)
        .stall_timeout(Some(args.stall_timeout).filter(|d| !d.is_zero()))
        .attach_timeout(args.attach_timeout)
        .spin_budget(common::spin_budget_from_env())
        .cancel(Arc::clone(cancel));
    if args.quiet {
        return config.build();
    }
    config
        .on_wait(|queue, wait, what| match what {
            Waiting::FreeSession => eprintln!(
                "shm_client: the server is busy (it serves its maximum of sessions); waiting up to {:.1} s for a free session",
                wait.as_secs_f64()
            ),
            _ => eprintln!("shm_client: waiting up to {} s for a server on queue {queue}", wait.as_secs_f64()),
        })
        .build()
}

/// Before any request: no two files to one output name, and an output
/// directory that is one; one that does not exist is created, with its
/// parents (as `mkdir -p`, with the modes the umask leaves), and a person
/// at a terminal is told so.
pub fn check_output(args: &Args, files: &[String], recursive: bool) -> Result<(), ExitCode> {
    if !recursive {
        options(args).check(files).map_err(|e| fail(&e))?;
    }
    let dir = args.out_dir.display();
    match std::fs::metadata(&args.out_dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(exit_with(
            EXIT_NOT_DELIVERED,
            &format!("output directory {dir}: not a directory; name a directory with -o"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(link) = dangling_link(&args.out_dir) {
                let msg = format!(
                    "output directory {dir}: {link}; create the missing directory or name another with -o"
                );
                return Err(exit_with(EXIT_NOT_DELIVERED, &msg));
            }
            match std::fs::DirBuilder::new().recursive(true).create(&args.out_dir) {
                Ok(()) if !args.quiet && std::io::stderr().is_terminal() => {
                    eprintln!("shm_client: created the output directory {dir}");
                    Ok(())
                }
                Ok(()) => Ok(()),
                Err(e) => Err(exit_with(
                    EXIT_NOT_DELIVERED,
                    &format!("output directory {dir}: cannot create it: {e}; name another with -o"),
                )),
            }
        }
        Err(e) => {
            Err(exit_with(EXIT_NOT_DELIVERED, &format!("output directory {dir}: {e}; name another with -o")))
        }
    }
}

/// What stands in the way of making `dir`, which is not there to follow,
/// when it or a parent of it is a symbolic link to a missing directory:
/// what `mkdir -p` cannot make ("File exists"). `None` when no such link
/// is on its way.
fn dangling_link(dir: &std::path::Path) -> Option<String> {
    // Up to the first that is there to follow.
    let missing = dir.ancestors().take_while(|p| !p.as_os_str().is_empty() && std::fs::metadata(p).is_err());
    let (link, target) = missing.filter_map(|p| Some((p, std::fs::read_link(p).ok()?))).next()?;
    let what = format!("a symbolic link to a missing directory ({})", target.display());
    Some(if link == dir { what } else { format!("{} is {what}", link.display()) })
}

/// Before any request for `-O DEST`: a DEST that names a file (not ending
/// in `/`, `.` or `..`, which name a directory, as for `cp`), and a
/// directory for it that is one.
pub fn check_dest(dest: &std::path::Path) -> Result<(), ExitCode> {
    if crate::programs::names_a_directory(dest) {
        return Err(exit_with(
            EXIT_NOT_DELIVERED,
            &format!("-O {}: not a file name (it names a directory); name the file to write", dest.display()),
        ));
    }
    if let Err(why) = stdout::special_dest(dest) {
        return Err(exit_with(EXIT_NOT_DELIVERED, &format!("-O {}: {why}", dest.display())));
    }
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(exit_with(
            EXIT_NOT_DELIVERED,
            &format!("-O {}: {} is not a directory", dest.display(), dir.display()),
        )),
        Err(e) => {
            let (dest, shown) = (dest.display(), dir.display());
            let msg = match dangling_link(dir).filter(|_| e.kind() == std::io::ErrorKind::NotFound) {
                Some(link) => {
                    format!("-O {dest}: {shown}: {link}; create the missing directory or name another file")
                }
                None => {
                    // To paste: whole.
                    let quoted =
                        crate::programs::quote_whole(dir.as_os_str().as_encoded_bytes()).into_owned();
                    format!("-O {dest}: {shown}: {e}; create it (mkdir -p {quoted}) first")
                }
            };
            Err(exit_with(EXIT_NOT_DELIVERED, &msg))
        }
    }
}

/// `--list`: a line per file on stdout, then a line per entry the server
/// left out on stderr (exit 1 then: the listing is not complete). A PREFIX
/// that is a pattern lists what a fetch of it would fetch.
pub fn list(mut client: Client, args: &Args, prefix: &str, json: bool) -> ExitCode {
    let listing = match client.list(Some(prefix)).and_then(|l| client.close().map(|()| l)) {
        Ok(listing) => listing,
        Err(e) => return fail(&e),
    };
    if json && args.long {
        say(format_args!("{}", show::long_listing_json(&listing)));
    } else if json {
        #[derive(Serialize)]
        struct Files<'a> {
            files: &'a [crate::Entry],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            skipped: &'a [crate::Skipped],
        }
        let files = Files { files: &listing.files, skipped: &listing.skipped };
        say(format_args!("{}", common::to_json(&files)));
    } else {
        show::print_listing(&listing.files, args.long, args.human);
    }
    for skip in &listing.skipped {
        say_skipped(&skip.path, &skip.text);
    }
    if !listing.is_complete() {
        let n = listing.skipped.len();
        return exit_with(
            EXIT_NOT_DELIVERED,
            &format!("the listing is not complete: {n} entr{} left out", if n == 1 { "y" } else { "ies" }),
        );
    }
    if listing.files.is_empty() && normalize_path(prefix.as_bytes()) != b"." {
        let what = if is_pattern(prefix) { "that matches" } else { "at or below" };
        let msg = format!(
            "the server has no file {what} {}; see `shm_client --list` for what it has",
            quote_name(prefix)
        );
        return exit_with(EXIT_NOT_DELIVERED, &msg);
    }
    ExitCode::from(EXIT_OK)
}

/// `--status`: the server and its other sessions, as text or JSON.
pub fn status(mut session: StatusSession, args: &Args, json: bool) -> ExitCode {
    match session.status().and_then(|s| session.close().map(|()| s)) {
        Ok(status) if json => say(format_args!("{}", common::to_json(&common::StatusJson::new(&status)))),
        Ok(status) => show::print_status(&status, &args.queue, args.human),
        Err(e) => return fail(&e),
    }
    ExitCode::from(EXIT_OK)
}

/// `--status --all`: every server of this user, as text blocks or one JSON
/// object per line.
pub fn status_all(config: &ClientConfig, args: &Args, json: bool) -> ExitCode {
    let reports = match crate::status::status_all(config) {
        Ok(reports) => reports,
        Err(e) => return fail(&e),
    };
    if json {
        for report in &reports {
            say(format_args!("{}", common::to_json(&common::ServerJsonLine::new(report))));
        }
    } else {
        show::print_status_all(&reports, args.human);
    }
    ExitCode::from(EXIT_OK)
}

/// Where and how the files are written.
pub fn options(args: &Args) -> FetchOptions {
    let clobber = if args.no_clobber { Clobber::Skip } else { Clobber::Replace };
    let names = if args.relative { OutputNames::Relative } else { OutputNames::Basename };
    let partial = if args.resume { Partial::Keep } else { Partial::Discard };
    let times = if args.preserve { Times::Preserve } else { Times::Now };
    let update = if args.update { Update::IfNewer } else { Update::Always };
    FetchOptions::new(&args.out_dir)
        .clobber(clobber)
        .names(names)
        .partial(partial)
        .times(times)
        .update(update)
}

/// Why a session was lost, in a few words for the line of the file it cut off.
pub fn lost_reason(e: &Error) -> String {
    match e {
        Error::Cancelled => "interrupted".into(),
        Error::Stalled { waited } => {
            format!("no frame moved for {:.0} s (--stall-timeout)", waited.as_secs_f64())
        }
        e => describe(e),
    }
}

/// What a fetch writes: the named files (with `-r` the trees) into the
/// output directory, or one file to a path (`-O`).
#[derive(Debug)]
pub enum Files<'a> {
    Named(&'a [String], bool),
    To(&'a str, &'a std::path::Path),
}

/// Fetches the files (or with `-r` the trees), a line per file, and the
/// summary.
pub fn fetch(mut client: Client, args: &Args, files: Files<'_>) -> ExitCode {
    let bar = Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let format = if args.json { Format::Json } else { Format::Text };
    let mut lines = Lines { bar, quiet: args.quiet, human: args.human, recursive: args.recursive, format };
    let report = match files {
        Files::Named(files, true) => client.fetch_tree_with(files, &options(args), &mut lines),
        Files::Named(files, false) => client.fetch_files_with(files, &options(args), &mut lines),
        Files::To(file, dest) => client.fetch_as_with(file, dest, &options(args), &mut lines),
    };
    lines.bar.clear();
    let report = match report {
        Ok(report) => report,
        Err(e) => return fail(&e),
    };
    for repeated in &report.repeated {
        eprintln!("shm_client: warning: {}", repeated_warning(repeated));
    }
    let code = match &report.lost {
        None => match client.close() {
            Ok(()) if report.all_delivered() => ExitCode::from(EXIT_OK),
            Ok(()) => ExitCode::from(EXIT_NOT_DELIVERED),
            Err(e) => fail(&e),
        },
        Some(lost) if matches!(lost.error, Error::Busy { .. } | Error::Stopping { .. }) => {
            exit_with(EXIT_NOT_DELIVERED, &lost.error.to_string())
        }
        Some(lost) => {
            say_lost(lost, format);
            if lost.kept.is_some() {
                exit_with(exit_code_for(&lost.error), &describe(&lost.error))
            } else {
                fail(&lost.error)
            }
        }
    };
    let summary = report.summary();
    match format {
        Format::Json => say(format_args!("{}", common::json::summary_line(&summary))),
        Format::Text if summary.asked > 1 && !args.quiet => eprintln!("shm_client: {summary}"),
        Format::Text => {}
    }
    code
}

/// What the warning of a file named more than once says: the names that
/// asked for it, as given, and the name it was written under where that
/// differs (`subdir/*.txt and subdir/nested.txt: one file named more than
/// once; fetched once, as nested.txt`; `a named more than once; fetched
/// once`).
fn repeated_warning(r: &crate::Repeated) -> String {
    let asked = if r.first == r.again {
        format!("{} named more than once", message_path(&r.first))
    } else {
        let what = if r.output.is_some() { "one file" } else { "the same files" };
        format!("{} and {}: {what} named more than once", message_path(&r.first), message_path(&r.again))
    };
    match &r.output {
        Some(output) if *output != r.again => format!("{asked}; fetched once, as {}", message_path(output)),
        Some(_) | None => format!("{asked}; fetched once"),
    }
}

/// What a file a lost session cut off says, fetched or sent: how far it
/// got of its size (`got`, when it started), why it ended, and what is
/// kept: `cut off after 1.0 MiB of 3.0 MiB: interrupted; nothing kept`.
pub fn cut_off_message(got: Option<(u64, u64)>, e: &Error, kept: &str) -> String {
    let got = got.map(|(got, size)| format!("cut off after {} of {}: ", human_size(got), human_size(size)));
    format!("{}{}; {kept}", got.unwrap_or_default(), lost_reason(e))
}

/// Why the files after one a lost session cut off were not fetched or
/// sent: `interrupted` (Ctrl-C), else `session lost`.
pub fn why_the_rest(e: &Error) -> &'static str {
    if matches!(e, Error::Cancelled) {
        "interrupted"
    } else {
        "session lost"
    }
}

/// One line per file still, as for any failed file, when the session was
/// lost: the one in progress failed, the others were never fetched.
pub fn say_lost(lost: &crate::Lost, format: Format) {
    use std::os::unix::ffi::OsStrExt;
    let names = lost.cut_off.iter().map(|(name, _)| name).chain(&lost.not_fetched);
    let requests = lost.requests.iter().map(Some).chain(std::iter::repeat(None));
    let rest = why_the_rest(&lost.error);
    for (i, (name, request)) in names.zip(requests).enumerate() {
        let request = request.unwrap_or(name);
        let cut_off = lost.cut_off.as_ref().filter(|_| i == 0);
        let message = match cut_off {
            Some((_, got)) => {
                let kept = match lost.kept {
                    Some(bytes) => format!("{} kept: run it again with --continue", human_size(bytes)),
                    None => "nothing kept".into(),
                };
                cut_off_message(*got, &lost.error, &kept)
            }
            None => format!("not fetched: {rest}"),
        };
        match format {
            Format::Text if cut_off.is_some() => {
                say(format_args!("{}: failed: {message}", quote_path(request)))
            }
            Format::Text => say(format_args!("{}: {message}", quote_path(request))),
            Format::Json => {
                let (request, name) = (request.as_os_str().as_bytes(), name.as_os_str().as_bytes());
                say(format_args!(
                    "{}",
                    common::json::lost_line(request, name, cut_off.map(|_| lost), &message)
                ))
            }
        }
    }
}
