//! Containers that share only an IPC namespace and `/dev/shm`
//! (`docker run --ipc=container:…`, the containers of one Kubernetes pod):
//! the server and the client each in mount and pid namespaces of their own
//! (`unshare --mount --pid --fork --mount-proc`), the server serving a
//! directory only it can see. There no shared directory exists and `cp`
//! cannot help; the queue, the regions and the semaphores are all they
//! share.

use std::fs;
use std::process::{Command, Stdio};

use crate::util::{dir_entries, wait_for_queue, Proc, TestEnv, CLIENT, SERVER, TIMEOUT};

/// `unshare` with mount and pid namespaces of their own for the program
/// and what it starts (`/proc` mounted anew, so that it sees only them),
/// killed with `unshare` if that dies.
fn in_namespaces() -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--mount-proc", "--kill-child"])
        .env_remove("SHMXFER_QUEUE")
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    cmd
}

/// The server's side: a tmpfs mounted in its own mount namespace, two files
/// written there, and `shm_server` serving it (pid 1 of its pid namespace).
const SERVER_SIDE: &str = r#"
set -e
mount -t tmpfs -o size=8m tmpfs "$1"
printf 'only the server sees this\n' > "$1/secret.txt"
mkdir "$1/sub"
printf 'below\n' > "$1/sub/deep.txt"
exec "$2" --queue "$3" --root "$1" --persistent
"#;

#[test]
#[cfg_attr(
    not(all(tests_as_root, tests_with_unshare)),
    ignore = "needs root and unshare (util-linux): runs each program in mount and pid namespaces of its own"
)]
fn a_server_and_a_client_in_namespaces_of_their_own_share_only_ipc_and_dev_shm() {
    let env = TestEnv::new("namespaces_ipc_only");
    let private = env.tmp().join("private");
    fs::create_dir(&private).unwrap();
    let queue = env.names.queue().to_owned();
    let mut cmd = in_namespaces();
    cmd.args(["sh", "-c", SERVER_SIDE, "sh"]).arg(&private).arg(SERVER).arg(&queue).current_dir(env.cwd());
    let mut server = Proc::spawn(cmd, Some(&env.names));
    wait_for_queue(&env.names, &mut server);
    assert!(dir_entries(&private).is_empty(), "outside its namespace the served directory is an empty one");

    let client = |args: &[&str]| {
        let mut cmd = in_namespaces();
        cmd.arg(CLIENT).arg("--queue").arg(&queue).args(args).current_dir(env.cwd());
        Proc::spawn(cmd, Some(&env.names)).finish(TIMEOUT)
    };
    let out = env.out().to_str().expect("utf-8 temp path");
    client(&["-o", out, "secret.txt"])
        .assert_code(0)
        .assert_stdout_lines(&["secret.txt: received 26 bytes".into()]);
    assert_eq!(fs::read(env.in_out("secret.txt")).unwrap(), b"only the server sees this\n");
    client(&["-o", out, "-r", "sub"]).assert_code(0);
    assert_eq!(fs::read(env.in_out("sub/deep.txt")).unwrap(), b"below\n");
    let listed = client(&["--list"]);
    listed.assert_code(0).assert_stdout_lines(&["26\tsecret.txt".into(), "6\tsub/deep.txt".into()]);
    // The server is pid 1 of a pid namespace the client cannot see into.
    let status = client(&["--status", "--json"]);
    status.assert_code(0);
    let json: serde_json::Value = serde_json::from_str(status.stdout.trim()).expect("one JSON object");
    status.check(json["server"]["pid"] == 1, "the server's pid in its own namespace");

    env.stop_server(&mut server);
    assert!(dir_entries(&private).is_empty(), "the tmpfs went with the server's namespace");
    env.assert_no_leftovers();
}
