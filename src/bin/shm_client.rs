//! `shm_client`: fetches files from `shm_server` through POSIX shared memory
//! (or sends them, with `--put`). Parses arguments into a [`Mode`], runs it
//! through [`shmxfer::Client`] and maps the outcome to an exit code; the
//! modes' runs are in `shmxfer::cli::client`.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::CommandFactory;
use shmxfer::cli;
use shmxfer::cli::client::args::{Args, Mode};
use shmxfer::cli::client::exit::*;
use shmxfer::cli::client::stdout::{special_dest, stream, StreamTo};
use shmxfer::cli::client::*;
use shmxfer::Client;

fn main() -> ExitCode {
    let args = match Args::parse_checked() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let environment =
        &[("SHMXFER_QUEUE", "The server's queue when --queue is not given (default /shmxfer).")];
    if let Some(code) = cli::print_generated(Args::command(), args.completions, args.man, environment) {
        return code;
    }
    let mode = match Mode::from_args(&args) {
        Ok(mode) => mode,
        Err(code) => return code,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    if let Err(e) = cli::stop_on_signals(&cancel) {
        return exit_with(EXIT_SESSION_LOST, &format!("installing signal handlers: {e}"));
    }
    let wait = args.wait.unwrap_or(mode.default_wait());
    let config = match client_config(&args, wait, &cancel) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if let Mode::Relay(kind) = mode {
        return match shmxfer::remote::relay_stdio(&config, kind) {
            Ok(()) => ExitCode::from(EXIT_OK),
            Err(e) => fail_to_connect(&e, wait),
        };
    }
    if let Err(code) = check_before_any_request(&args, &mode) {
        return code;
    }
    // An upload's run is planned (its trees walked, its clashes found)
    // once, before the server is asked anything.
    let upload = match &mode {
        Mode::Put { files, to, name } => match put::plan_run(&args, files, to.as_deref(), name.as_deref()) {
            Ok(plan) => Some(plan),
            Err(code) => return code,
        },
        _ => None,
    };
    if let (Mode::StopServer(kind), Some(host)) = (&mode, &args.host) {
        return stop_remote(&config, &remote(&args, host), *kind);
    }
    if let Mode::StopServer(kind) = mode {
        return match shmxfer::stop_server(&config, kind) {
            Ok(()) if args.quiet => ExitCode::from(EXIT_OK),
            Ok(()) => exit_with(EXIT_OK, &format!("the server on queue {} stopped", args.queue)),
            Err(e) => fail_to_connect(&e, wait),
        };
    }
    if let Mode::StatusAll { json } = mode {
        return status_all(&config, &args, json);
    }
    // Each mode opens its own kind of session: the types say which
    // requests it may make.
    match mode {
        Mode::Status { json } => match connect(&config, &args, wait) {
            Ok(session) => status(session, &args, json),
            Err(code) => code,
        },
        Mode::Put { .. } => match connect(&config, &args, wait) {
            Ok(session) => put::put(session, &args, upload.expect("planned before connecting")),
            Err(code) => code,
        },
        Mode::List { .. } | Mode::Stdout(_) | Mode::Output { .. } | Mode::Fetch { .. } => {
            match connect(&config, &args, wait) {
                Ok(client) => fetch_mode(client, &args, mode, &cancel),
                Err(code) => code,
            }
        }
        Mode::StopServer(_) | Mode::StatusAll { .. } | Mode::Relay(_) => unreachable!("handled above"),
    }
}

/// The modes of a fetch session: `--list`, `--stdout`, `-O`, a fetch.
fn fetch_mode(client: Client, args: &Args, mode: Mode, cancel: &Arc<AtomicBool>) -> ExitCode {
    match mode {
        Mode::List { prefix, json } => list(client, args, &prefix, json),
        Mode::Stdout(file) => stream(client, args, &file, StreamTo::Stdout, cancel),
        Mode::Output { file, dest } if special_dest(&dest) == Ok(true) => {
            stream(client, args, &file, StreamTo::Special(&dest), cancel)
        }
        Mode::Fetch { files, recursive } => fetch(client, args, Files::Named(&files, recursive)),
        Mode::Output { file, dest } => fetch(client, args, Files::To(&file, &dest)),
        Mode::Status { .. }
        | Mode::Put { .. }
        | Mode::StopServer(_)
        | Mode::StatusAll { .. }
        | Mode::Relay(_) => {
            unreachable!("not a fetch session's")
        }
    }
}
