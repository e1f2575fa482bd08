//! `-H` over a real `sshd`: one started by the test on 127.0.0.1, with a
//! port, host key and authorized key of its own, as the user running the
//! tests (no root needed where that user is not root). It needs `sshd` and
//! `ssh` installed, which a development machine often lacks: it is ignored
//! by default, and `.ci/run` (which installs them) runs it by name with
//! `--ignored`. Run that way without them, it fails saying what is missing.

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::{is_root, wait_until, Proc, TestEnv, CLIENT, MIB, TIMEOUT};

const SSHD: &str = "/usr/sbin/sshd";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `ssh` on the `PATH`, or `None`.
fn ssh_installed() -> bool {
    Command::new("ssh").arg("-V").stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// A private key `name` (and `name.pub`) in `dir`.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", s(&key)])
        .status()
        .expect("run ssh-keygen");
    assert!(made.success(), "ssh-keygen {}", key.display());
    key
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> u16 {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a probe port");
    probe.local_addr().expect("probe address").port()
}

/// A private `sshd` on 127.0.0.1 and the `--rsh` that logs into it.
struct Sshd {
    _daemon: Proc,
    rsh: String,
}

impl Sshd {
    fn start(env: &TestEnv) -> Sshd {
        let dir = env.tmp().join("ssh");
        fs::create_dir(&dir).unwrap();
        let host_key = keygen(&dir, "host_key");
        let user_key = keygen(&dir, "id");
        fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
        if is_root() {
            // The privilege-separation directory sshd insists on as root.
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
                s(&host_key),
                s(&dir.join("authorized_keys")),
                s(&dir.join("sshd.pid")),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(SSHD);
        cmd.args(["-D", "-e", "-f", s(&config)]);
        let mut daemon = Proc::spawn(cmd, None);
        let listening = wait_until(TIMEOUT, || {
            TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200))
                .is_ok()
        });
        assert!(listening, "sshd listening on port {port}; its stderr: {}", daemon.stderr());
        assert!(daemon.is_running(), "sshd running; its stderr: {}", daemon.stderr());
        let rsh = format!(
            "ssh -F /dev/null -p {port} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            s(&user_key)
        );
        Sshd { _daemon: daemon, rsh }
    }
}

#[test]
#[ignore = "needs sshd (/usr/sbin/sshd) and ssh; .ci/run installs them and runs it with --ignored"]
fn fetch_list_status_and_put_go_through_a_real_sshd_on_localhost() {
    assert!(
        Path::new(SSHD).exists() && ssh_installed(),
        "{SSHD} or ssh is not installed here: install openssh-server and openssh-client to run this test"
    );
    let env = TestEnv::new("ssh_real");
    env.create_random("big.bin", 3 * MIB, 21);
    env.create("sub/a.txt", b"through sshd\n");
    let sshd = Sshd::start(&env);
    let inbox = env.tmp().join("inbox");
    fs::create_dir(&inbox).unwrap();
    let mut server = env.ready_server(&["--persistent", "--accept", s(&inbox)]);
    let remote = ["-H", "127.0.0.1", "--rsh", &sshd.rsh, "--remote-client", CLIENT];
    let mut args = vec!["-o", s(env.out())];
    args.extend_from_slice(&remote);
    args.extend_from_slice(&["big.bin", "sub/a.txt"]);
    let done = env.run_client(&args);
    done.assert_code(0).assert_stdout_lines(&[
        format!("big.bin: received {} bytes", 3 * MIB),
        "sub/a.txt: received 13 bytes → a.txt".to_owned(),
    ]);
    env.assert_delivered("big.bin");
    env.assert_delivered("sub/a.txt");
    let mut list = vec!["--list"];
    list.extend_from_slice(&remote);
    let listed = env.run_client(&list);
    listed.assert_code(0).check(
        listed.stdout.contains("big.bin") && listed.stdout.contains("sub/a.txt"),
        "the listing through sshd names the server's files",
    );
    let mut status = vec!["--status", "--json"];
    status.extend_from_slice(&remote);
    let told = env.run_client(&status);
    told.assert_code(0).check(told.stdout.contains("\"sessions\""), "the server's status, as JSON");
    // An upload the other way, verified on the server's side.
    let sent = env.create_random("../up.bin", 2 * MIB, 22);
    let mut put = vec!["--put", s(&sent), "--to", "in"];
    put.extend_from_slice(&remote);
    env.run_client(&put).assert_code(0);
    assert!(
        fs::read(inbox.join("in/up.bin")).unwrap() == fs::read(&sent).unwrap(),
        "uploaded byte-identical"
    );
    env.stop_server(&mut server);
    // No server on the other side any more: the fetch fails, and says so.
    let mut nobody = vec!["-o", s(env.out()), "--wait", "0.5"];
    nobody.extend_from_slice(&remote);
    nobody.push("big.bin");
    let lost = env.run_client(&nobody);
    lost.assert_code(3).check(lost.stderr.contains(env.names.queue()), "the message names the queue");
    env.assert_no_leftovers();
}
