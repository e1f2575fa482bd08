//! The command line: the flags, checked, become one [`Mode`].

use super::*;

/// Fetch files from (or send files to) shm_server through POSIX shared memory.
#[derive(Debug, Parser)]
#[command(
    name = "shm_client",
    version,
    override_usage = "shm_client [OPTIONS] [-r] FILE...\n       \
        shm_client [OPTIONS] -O DEST FILE\n       \
        shm_client [OPTIONS] -i LIST\n       \
        shm_client [OPTIONS] --stdout FILE\n       \
        shm_client [OPTIONS] --list [PREFIX] [-l] [--human] [--json]\n       \
        shm_client [OPTIONS] --status [--human] [--json]\n       \
        shm_client --status --all [--json]\n       \
        shm_client [OPTIONS] --stop-server [--drain]\n       \
        shm_client [OPTIONS] --put [-r] FILE... [--to DIR] [--no-clobber] [--json]\n       \
        shm_client -H [USER@]HOST [--rsh CMD] [--remote-client PATH] [OPTIONS] (any of the above but --stdout and --status --all)",
    long_about = "Fetch files from a shm_server through POSIX shared memory, send files to one (--put), \
        on this machine or on another host through ssh (-H).\n\n\
        The client creates its own shared-memory region (at most 4096 bytes) and two named semaphores, \
        asks for each FILE on the server's message queue, and writes what arrives into --out-dir under \
        the FILE's last path component. A file appears under its name only once its size and xxh3-64 \
        checksum are verified; a missing file is reported as 'not found on server' and creates nothing.\n\n\
        A fetch (or --put) may start before the server: it waits up to --wait seconds for the queue. \
        With -H HOST the same runs through `ssh HOST shm_client --relay` on that host, with the same \
        checks, output and exit codes.",
    after_help = "Examples:\n  \
        shm_client hello.txt subdir/nested.txt      fetch two files into the current directory\n  \
        shm_client -o /tmp/in --wait 5 big.iso      fetch into /tmp/in, wait at most 5 s for a server\n  \
        shm_client -i filelist.txt                  fetch the files named in filelist.txt\n  \
        shm_client -O /tmp/copy.iso big.iso         fetch big.iso to the file /tmp/copy.iso\n  \
        shm_client 'logs/*.txt'                     fetch the .txt files of logs/ (quoted: the server matches)\n  \
        shm_client -C big.iso                       fetch big.iso, resuming where a cut-off run stopped\n  \
        shm_client -u -p -i filelist.txt            fetch only what changed, keeping modification times\n  \
        shm_client --stdout big.iso | sha256sum     stream one file to a pipe\n  \
        shm_client -r -o /tmp/in subdir             fetch subdir/ and everything below it into /tmp/in/subdir\n  \
        shm_client --list subdir --human            show what the server serves below subdir/\n  \
        shm_client --list -l                        mode, size, time (UTC) and path, as ls -l\n  \
        shm_client --json -i filelist.txt           a JSON line per file and a summary, for scripts\n  \
        shm_client --status                         what the server is doing, session by session\n  \
        shm_client --stop-server                    stop a --persistent server\n  \
        shm_client --put a.txt b.bin --to inbox     send two files to the server's --accept DIR/inbox\n  \
        shm_client --put -r photos --json           send the tree photos/ (as photos/...), a JSON line per file\n  \
        shm_client --put a.txt -O notes/b.txt       send a.txt, stored as notes/b.txt below the server's --accept DIR\n  \
        shm_client -H user@build7 -o out big.iso    fetch from the server on host build7, through ssh\n  \
        shm_client -H build7 --put report.pdf       send a file to the server on build7\n\n\
        Output: one line per FILE on stdout, naming the path asked for and the output path where it \
        differs ('sub/x.txt: received N bytes → x.txt', 'NAME: not found on server', ...); with --json one \
        JSON object per FILE, then a summary object. A name holding control characters is quoted as ls \
        quotes it ('a'$'\\n''b'); a message on stderr cuts a name of more than 200 bytes in its middle \
        ('…'). Diagnostics ('shm_client: error: ...' for a fatal one), a summary when \
        more than one file was asked for, and progress bars (when stderr is a terminal: the file's, and \
        the whole run's when more than one file is fetched) go to stderr. --stdout to a terminal refuses \
        binary data (a NUL byte in the first 64 KiB): redirect it to a file or a pipe.\n\n\
        Exit status: 0 every file delivered (or skipped by --no-clobber / --update), 1 at least one not delivered, 2 usage error, \
        3 no server within --wait (with -H: on HOST), 4 session lost (server died, protocol error; with -H: \
        the relay or the remote shell failed), 130 interrupted."
)]
pub struct Args {
    /// Name of the server's command queue: a leading '/', no other '/'.
    #[arg(long, value_name = "NAME", env = "SHMXFER_QUEUE", default_value = DEFAULT_QUEUE, value_parser = common::parse_queue)]
    pub queue: String,

    /// Directory the files are written into, made with its parents when missing (as mkdir -p); a
    /// symbolic link to a missing directory is an error (exit 1).
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,

    /// Seconds to wait for a server to appear (0: try once). Default: 30 for a fetch and --put;
    /// --list, --status and --stop-server try once unless --wait is given. When given, a busy server
    /// (all its sessions in use) is asked again for that long too.
    #[arg(long, value_name = "SECS", value_parser = common::parse_secs, allow_negative_numbers = true)]
    pub wait: Option<Duration>,

    /// Read the names of the files to fetch from LIST, one per line ('-': standard input); blank
    /// lines are skipped. Names given as arguments come first.
    #[arg(short = 'i', long = "input", value_name = "LIST")]
    pub input: Option<PathBuf>,

    /// Do not replace files that exist in the output directory (with --put: on the server): such
    /// a file is skipped ('NAME: skipped: exists'), a success, as cp -n and wget -nc do.
    #[arg(long)]
    pub no_clobber: bool,

    /// Write the one FILE to DEST (a file path, not a directory) instead of into --out-dir, with
    /// the same safety: a temporary file beside DEST, verified, then given its name. '-': standard
    /// output, as --stdout. One FILE only; not with -o, -R or -r. With --put: the name the one
    /// FILE is stored under below the server's --accept DIR (and --to).
    #[arg(short = 'O', long = "output", value_name = "DEST",
          conflicts_with_all = ["out_dir", "relative", "recursive", "list", "status", "stop_server", "stdout"])]
    pub output: Option<PathBuf>,

    /// Resume: a transfer cut off (server gone, Ctrl-C, stall, even SIGKILL) keeps what arrived as
    /// a hidden partial file (.shmxfer-partial.NAME, its source's size and mtime in
    /// .shmxfer-partial.NAME.source), and a later run with -C asks only for the rest ('NAME:
    /// received N bytes (resumed at K bytes)'); the whole file is still verified. A partial whose
    /// source changed since starts over. A partial another shm_client is writing (it holds its
    /// lock) is left to it: this run says so, fetches the file whole and keeps nothing of it if cut
    /// off. Without -C nothing partial is ever kept.
    #[arg(short = 'C', long = "continue", conflicts_with_all = ["list", "status", "stop_server", "stdout"])]
    pub resume: bool,

    /// Fetch a file only when its copy is missing, differs in size or is older than the source,
    /// as cp -u does; else 'NAME: skipped: up to date', a success. The server decides before it
    /// sends a byte. With --put: send a file only when the server's copy is missing, differs in size
    /// or is older ('NAME: skipped: up to date on the server').
    #[arg(short = 'u', long, conflicts_with_all = ["list", "status", "stop_server", "stdout"])]
    pub update: bool,

    /// Give each file the source's modification time (the mode is kept anyway), as cp -p does;
    /// with --put, each file stored on the server.
    #[arg(short = 'p', long, conflicts_with_all = ["list", "status", "stop_server", "stdout"])]
    pub preserve: bool,

    /// Keep each FILE's path below --out-dir (d1/x -> DIR/d1/x), creating directories as needed; without it
    /// a file is written under its last path component, and two FILEs with the same one are refused.
    /// With -r: each file keeps its whole path in the server's tree.
    #[arg(short = 'R', long)]
    pub relative: bool,

    /// Print only failures: no success lines, no summary, no progress, no waiting notice.
    #[arg(short, long)]
    pub quiet: bool,

    /// Print the server's files with their sizes (SIZE, a tab, PATH per line) instead of fetching;
    /// with PREFIX, only PREFIX itself or what lies below the directory PREFIX; a PREFIX that is a
    /// pattern ('logs/*.txt') lists what a fetch of it would fetch.
    #[arg(long, value_name = "PREFIX", num_args = 0..=1,
          conflicts_with_all = ["stop_server", "no_clobber", "input", "relative"])]
    pub list: Option<Option<String>>,

    /// Ask the server what it is doing: its pid, root, mode, uptime, sessions and totals, and a
    /// line per live session (client pid, file, bytes so far, rate, time since its last frame).
    #[arg(long, conflicts_with_all = ["files", "list", "stop_server", "no_clobber", "input", "stdout", "recursive", "relative"])]
    pub status: bool,

    /// With --status: every shmxfer server of this user on this machine (found through their lock
    /// objects in /dev/shm, as `ipcs -a` lists all objects), one block per live server, and each
    /// dead server's leftovers (remove them with `shm_server --cleanup --all`). --queue is not used.
    /// With --json: one JSON object per line, per server.
    #[arg(long, requires = "status")]
    pub all: bool,

    /// Print JSON for scripts: with --list or --status their one object; on a fetch one object per
    /// requested file ({"request", "path", "result", "bytes", for a file refused, failed or
    /// skipped "reason" and "message", for a resumed one "resumed_at"}), then {"summary": {...}}
    /// (counts, "bytes" delivered, "received" in this run, "resumed", "kept"), one per line. Not
    /// with --stdout.
    #[arg(long)]
    pub json: bool,

    /// Print sizes as B, KiB, MiB, GiB.
    #[arg(long)]
    pub human: bool,

    /// With --list: long lines, as `ls -l`: mode, size, modification time (UTC, to the minute) and
    /// path (`-rw-r--r--  1234  2026-12-01 11:45  hello.txt`); with --json each file also gets
    /// "mode" (octal, "0644") and "mtime" (RFC 3339, UTC: "2026-12-01T11:45:35Z").
    #[arg(short = 'l', long)]
    pub long: bool,

    /// Write the one FILE to standard output instead of into --out-dir; nothing else goes to
    /// stdout. Size and checksum are still verified: a mismatch is reported on stderr with exit
    /// status 1 (the bytes have left by then). To a terminal, a file whose first 64 KiB hold a NUL
    /// byte (binary) is not written: exit status 1; redirect it to a file or a pipe.
    #[arg(long, conflicts_with_all = ["list", "stop_server", "no_clobber", "out_dir", "relative"])]
    pub stdout: bool,

    /// Fetch directories of the server's tree with what lies below them, keeping their paths
    /// below --out-dir (`-r sub` writes `sub/...`, `-r .` the whole tree); never writes outside
    /// --out-dir. With --put: send local directories with what lies below them.
    #[arg(short = 'r', long, conflicts_with_all = ["list", "stop_server", "stdout"])]
    pub recursive: bool,

    /// Ask the server to stop and wait until it has: open sessions are cancelled (their clients
    /// exit 4), everything is removed. With --drain, a graceful stop.
    #[arg(long, conflicts_with_all = ["files", "no_clobber", "input", "relative"])]
    pub stop_server: bool,

    /// With --stop-server: a graceful stop, as SIGQUIT to the server. Open sessions finish what
    /// they have asked for, new clients are refused (busy: the server is stopping), then the
    /// server exits 0 with everything removed; waits for that as long as it takes (SIGINT ends
    /// the wait, not the drain). SIGTERM to the server meanwhile stops it at once.
    #[arg(long)]
    pub drain: bool,

    /// End a session in which no frame moved for SECS seconds (the server stopped or stuck):
    /// exit 4, objects removed. 0: wait for ever.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = common::parse_secs, allow_negative_numbers = true)]
    pub stall_timeout: Duration,

    /// Slots in the shared-memory ring (1-4); for measurements.
    #[arg(long, hide = true, default_value_t = DEFAULT_SLOTS, value_parser = clap::value_parser!(u32).range(1..=MAX_SLOTS as i64))]
    pub slots: u32,

    /// Give up on a live server that has not taken the session after SECS seconds; for tests.
    #[arg(long, hide = true, value_name = "SECS", default_value = "10", value_parser = common::parse_secs)]
    pub attach_timeout: Duration,

    /// Files to fetch, as paths relative to the server's root. A name with '*', '?', '[...]' or
    /// '{a,b}' (quoted, so that the shell leaves it) is matched against the server's files, one
    /// path component at a time as a shell does ('*' does not cross '/', '**' does; '{a,b}'
    /// matches either), unless a file has exactly that name; a pattern that matches nothing is not
    /// found. A trailing '/' names a directory: 'dir/' is 'dir' (-r fetches it), 'file.txt/' fails
    /// 'not a directory', and a pattern ending in '/' matches directories only.
    /// With --put: the local files (and with -r directories) to send.
    #[arg(value_name = "FILE", required_unless_present_any = ["list", "stop_server", "drain", "input", "status", "relay", "completions", "man"])]
    pub files: Vec<std::ffi::OsString>,

    /// Send the local FILEs to the server instead of fetching: each is written below the server's
    /// --accept DIR under its last path component ('FILE: sent N bytes → NAME'), verified (size
    /// and xxh3-64) before its name appears there. The server must have been started with
    /// `shm_server --accept DIR`. With --no-clobber a file that exists there is kept (skipped);
    /// with -u one there that is up to date is kept; with -p the stored file gets the source's
    /// modification time. A file that does not know its size (procfs, sysfs) is read to its end.
    /// With -r a directory is sent with what lies below it, keeping its own name (`--put -r
    /// photos --to in` writes in/photos/...); symlinks (never followed), FIFOs, devices, sockets
    /// and unreadable entries are not sent, each named on stderr (exit 1). With --json a JSON
    /// object per file, then a summary object.
    #[arg(long, conflicts_with_all = ["list", "status", "stop_server", "input", "stdout",
                                      "relative", "resume", "out_dir"])]
    pub put: bool,

    /// With --put: the directory below the server's --accept DIR the files go to (created as
    /// needed; a relative path of plain names).
    #[arg(long, value_name = "DIR", requires = "put")]
    pub to: Option<String>,

    /// Work with the server on HOST: runs `RSH HOST shm_client --relay --queue NAME` there and
    /// speaks the session through it. Fetches are delivered here as a local fetch delivers them
    /// (verified, atomic, -C, -u, -p); --list, --status (--json), --put (--to, --no-clobber, -u, -p) and
    /// --stop-server (--drain) work too, with the same output and exit codes. Not with --stdout
    /// or --status --all.
    #[arg(short = 'H', long, value_name = "[USER@]HOST", conflicts_with_all = ["stdout", "all", "relay"])]
    pub host: Option<String>,

    /// With -H: the remote shell that runs the relay on HOST, split as a shell splits words
    /// (`--rsh 'ssh -p 2222 -i key'`).
    #[arg(long, value_name = "CMD", env = "SHMXFER_RSH", default_value = "ssh")]
    pub rsh: String,

    /// With -H: the shm_client to run on HOST, when it is not on its PATH.
    #[arg(long, value_name = "PATH", default_value = "shm_client")]
    pub remote_client: PathBuf,

    /// Relay a session of the server on this host over stdin and stdout, for `shm_client -H` on
    /// another host (which runs it); messages go to stderr. Ends at the end of stdin. KIND is the
    /// session's: transfer (fetches and --list; the default), status or upload.
    #[arg(long, value_name = "KIND", num_args = 0..=1, require_equals = true,
          default_missing_value = "transfer", value_enum,
          conflicts_with_all = ["files", "list", "status", "stop_server", "input", "stdout", "output", "put"])]
    pub relay: Option<RelayKind>,

    /// Print a completion script for SHELL and exit.
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit: `shm_client --man > shm_client.1`.
    #[arg(long)]
    pub man: bool,
}

/// The kind of session a relay opens (`--relay[=KIND]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RelayKind {
    /// Fetches and listings.
    Transfer,
    /// --status.
    Status,
    /// --put.
    Upload,
}

impl RelayKind {
    /// The library's session kind.
    pub fn session(self) -> SessionKind {
        match self {
            RelayKind::Transfer => SessionKind::Transfer,
            RelayKind::Status => SessionKind::Status,
            RelayKind::Upload => SessionKind::Upload,
        }
    }
}

/// What one run does: the flags that choose it, checked.
#[derive(Debug)]
pub enum Mode {
    /// Fetch the named files (with `-r`: the trees below them) into --out-dir.
    Fetch { files: Vec<String>, recursive: bool },
    /// Stream one file to stdout.
    Stdout(String),
    /// Fetch one file to a path (`-O DEST`).
    Output { file: String, dest: PathBuf },
    /// The server's files at or below a prefix (`.`: all).
    List { prefix: String, json: bool },
    /// What the server is doing.
    Status { json: bool },
    /// What every server of this user is doing, and which are dead.
    StatusAll { json: bool },
    /// Ask the server to stop, at once or after its open sessions.
    StopServer(StopKind),
    /// Send local files to the server's --accept directory (below `to`).
    Put { files: Vec<PathBuf>, to: Option<String>, name: Option<PathBuf> },
    /// Relay a session of this kind over stdin and stdout for `-H` on another host.
    Relay(SessionKind),
}

impl Args {
    /// The arguments, or the exit code of a usage error: clap's, or one
    /// saying which argument is not UTF-8 where a name must be.
    pub fn parse_checked() -> Result<Args, ExitCode> {
        match Args::try_parse() {
            Ok(args) => Ok(args),
            // Only names are read as text (files, --list, --queue and
            // SHMXFER_QUEUE); paths such as -o may be any bytes.
            Err(e) if e.kind() == ErrorKind::InvalidUtf8 => Err(exit_with(EXIT_USAGE, &common::not_utf8())),
            Err(e) => e.exit(),
        }
    }
}

impl Mode {
    /// The mode `args` ask for, or the exit code of a usage error.
    pub fn from_args(args: &Args) -> Result<Mode, ExitCode> {
        if args.json && (args.stop_server || (args.stdout && args.list.is_none() && !args.status)) {
            usage_error(ErrorKind::ArgumentConflict, "--json goes with a fetch, --list or --status");
        }
        if args.long && args.list.is_none() {
            usage_error(ErrorKind::MissingRequiredArgument, "-l/--long goes with --list");
        }
        if args.all && !args.status {
            usage_error(ErrorKind::MissingRequiredArgument, "--all goes with --status");
        }
        if args.drain && !args.stop_server {
            usage_error(ErrorKind::MissingRequiredArgument, "--drain goes with --stop-server");
        }
        if args.put {
            return Mode::put(args);
        }
        let mut files = server_names(args)?;
        let list = list_prefix(args, &mut files)?;
        Ok(if let Some(kind) = args.relay {
            Mode::Relay(kind.session())
        } else if args.stop_server {
            Mode::StopServer(if args.drain { StopKind::Drain } else { StopKind::Now })
        } else if args.status && args.all {
            Mode::StatusAll { json: args.json }
        } else if args.status {
            Mode::Status { json: args.json }
        } else if let Some(prefix) = &list {
            Mode::List { prefix: prefix.clone().unwrap_or_else(|| ".".into()), json: args.json }
        } else if let Some(dest) = args.output.clone().filter(|d| d.as_os_str() != "-") {
            if files.len() != 1 {
                let msg = format!("-O/--output writes one file; {} were named", files.len());
                usage_error(ErrorKind::WrongNumberOfValues, msg);
            }
            Mode::Output { file: files.remove(0), dest }
        } else if args.stdout || args.output.is_some() {
            if files.len() != 1 {
                let msg = format!("--stdout streams one file; {} were named", files.len());
                usage_error(ErrorKind::WrongNumberOfValues, msg);
            }
            Mode::Stdout(files.remove(0))
        } else {
            Mode::Fetch { files, recursive: args.recursive }
        })
    }

    /// Asking a server something (not fetching) does not wait for one unless told to.
    pub fn default_wait(&self) -> Duration {
        match self {
            Mode::Fetch { .. }
            | Mode::Stdout(_)
            | Mode::Output { .. }
            | Mode::Put { .. }
            | Mode::Relay(_) => DEFAULT_WAIT,
            _ => Duration::ZERO,
        }
    }
}

impl Mode {
    /// `--put`: the local files (any bytes), where they go, and `-O NAME`.
    fn put(args: &Args) -> Result<Mode, ExitCode> {
        // Local paths: any bytes.
        let files: Vec<PathBuf> = args.files.iter().map(PathBuf::from).collect();
        // `--put FILE -O NAME`: the one file stored under NAME (below
        // --to), as `scp a host:renamed.txt`.
        let name = args.output.clone();
        if let Some(name) = &name {
            if crate::programs::names_a_directory(name) {
                let msg = format!(
                    "--put with -O {}: not a file name (it names a directory); name the file to store, or use --to DIR",
                    name.display()
                );
                return Err(exit_with(EXIT_USAGE, &msg));
            }
            if files.len() != 1 || name.as_os_str() == "-" {
                let msg = format!(
                    "--put with -O {} stores one FILE under that name; {} were named",
                    name.display(),
                    files.len()
                );
                return Err(exit_with(EXIT_USAGE, &msg));
            }
        }
        Ok(Mode::Put { files, to: args.to.clone(), name })
    }
}

/// The names of the files to fetch: the arguments (UTF-8, as names on the
/// server are) and the lines of `-i LIST`.
fn server_names(args: &Args) -> Result<Vec<String>, ExitCode> {
    let mut files = Vec::with_capacity(args.files.len());
    for name in &args.files {
        match name.to_str() {
            Some(name) => files.push(name.to_owned()),
            None => {
                let msg = common::not_utf8_named(&name.as_encoded_bytes().escape_ascii());
                return Err(exit_with(EXIT_USAGE, &msg));
            }
        }
    }
    if let Some(input) = &args.input {
        files.extend(common::read_names(input).map_err(|msg| exit_with(EXIT_USAGE, &msg))?);
        if files.is_empty() {
            let msg = format!("{} names no file to fetch; give one name per line", common::list_shown(input));
            return Err(exit_with(EXIT_USAGE, &msg));
        }
    }
    if files.iter().any(String::is_empty) {
        usage_error(
            ErrorKind::InvalidValue,
            "an empty file name; name a path below the server's root ('.' with -r: all of it)",
        );
    }
    Ok(files)
}

/// `--list`'s prefix, if `--list` was given: its value, or the one FILE
/// that follows other flags (`--list -l sub`, as `ls -l sub`).
fn list_prefix(args: &Args, files: &mut Vec<String>) -> Result<Option<Option<String>>, ExitCode> {
    // `--list -l sub` as `ls -l sub`: the prefix may follow other flags.
    let list = match (&args.list, files.as_slice()) {
        (Some(None), [_]) => Some(Some(std::mem::take(files).remove(0))),
        (Some(_), []) => args.list.clone(),
        (Some(_), more) => {
            let n = more.len() + usize::from(matches!(args.list, Some(Some(_))));
            usage_error(ErrorKind::WrongNumberOfValues, format!("--list takes one PREFIX; {n} were given"))
        }
        (None, _) => None,
    };
    if let Some(Some(prefix)) = &list {
        if prefix.is_empty() {
            usage_error(ErrorKind::InvalidValue, "--list '': an empty prefix; give none to list everything");
        }
        if prefix.starts_with('/') {
            let msg = format!("{}: leads outside the served directory; list a path below the server's root, or give no prefix", quote_name(prefix));
            return Err(exit_with(EXIT_NOT_DELIVERED, &msg));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files and options `argv` (after the program's name) ask to put.
    fn put_of(argv: &[&str]) -> (Vec<PathBuf>, Option<String>, bool, bool, bool) {
        let args = Args::try_parse_from(std::iter::once("shm_client").chain(argv.iter().copied())).unwrap();
        let Ok(Mode::Put { files, to, .. }) = Mode::from_args(&args) else { panic!("{argv:?}: not a put") };
        (files, to, args.recursive, args.no_clobber, args.json)
    }

    #[test]
    fn put_options_go_before_after_or_between_the_files() {
        let ab = vec![PathBuf::from("a"), PathBuf::from("b")];
        assert_eq!(
            put_of(&["--put", "-r", "a", "b", "--to", "x"]),
            (ab.clone(), Some("x".into()), true, false, false)
        );
        assert_eq!(put_of(&["-r", "--put", "a", "b"]), (ab.clone(), None, true, false, false));
        assert_eq!(
            put_of(&["--put", "--no-clobber", "--json", "a", "b"]),
            (ab.clone(), None, false, true, true)
        );
        assert_eq!(put_of(&["a", "--put", "b", "--no-clobber"]), (ab, None, false, true, false));
        // A file named like a flag, after `--`.
        assert_eq!(put_of(&["--put", "--", "-r"]).0, vec![PathBuf::from("-r")]);
        assert!(Args::try_parse_from(["shm_client", "--put"]).is_err(), "--put needs a FILE");
    }
}
