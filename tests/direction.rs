//! The two directions of a transfer. A guarantee that holds for both (a
//! source that changes while it is sent, a server stopped mid-file, a FIFO
//! at the target name) is one test that plays its scenario once per
//! direction.

use std::fs;
use std::path::PathBuf;

use crate::util::{
    accepting, received_line, s, sources, wait_until, write_random_file, Proc, TestEnv, BIG, TIMEOUT,
};

/// Which way a file goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `shm_client FILE`: the server sends from its root, the client
    /// receives into the out dir.
    Fetch,
    /// `shm_client --put FILE`: the client sends, the server receives into
    /// its `--accept` directory, which is the out dir.
    Upload,
}

impl Direction {
    /// Both directions, the fetch first.
    pub const BOTH: [Direction; 2] = [Direction::Fetch, Direction::Upload];

    /// The direction's name, for test names.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Fetch => "fetch",
            Direction::Upload => "upload",
        }
    }

    /// Where the sending side keeps `name`: below the server's root for a
    /// fetch, in the client's source directory for an upload.
    pub fn source(self, env: &TestEnv, name: &str) -> PathBuf {
        match self {
            Direction::Fetch => env.in_root(name),
            Direction::Upload => sources(env).join(name),
        }
    }

    /// A persistent server with `extra` arguments (and `--accept` the out
    /// dir for an upload), once its queue exists.
    pub fn server(self, env: &TestEnv, extra: &[&str]) -> Proc {
        match self {
            Direction::Fetch => {
                let mut args = vec!["--persistent"];
                args.extend_from_slice(extra);
                env.ready_server(&args)
            }
            Direction::Upload => accepting(env, extra),
        }
    }

    /// A client with `opts` sending `names` (kept at
    /// [`Direction::source`]) to the out dir.
    pub fn client(self, env: &TestEnv, opts: &[&str], names: &[&str]) -> Proc {
        match self {
            Direction::Fetch => env.fetch_with(opts, names),
            Direction::Upload => {
                let paths: Vec<String> = names.iter().map(|n| s(&self.source(env, n)).to_owned()).collect();
                let mut args = opts.to_vec();
                args.push("--put");
                args.extend(paths.iter().map(String::as_str));
                env.client(&args)
            }
        }
    }

    /// What the client's line says of `name`, `len` bytes that arrived.
    pub fn done_line(self, name: &str, len: u64) -> String {
        match self {
            Direction::Fetch => received_line(name, len),
            Direction::Upload => format!("sent {len} bytes → {name}"),
        }
    }

    /// Creates `big.bin` ([`BIG`] bytes from `seed`) and `small.txt` on the
    /// sending side, starts a server with `server_args` and a client with
    /// `client_args` sending `big.bin` then `small.txt`, and returns them
    /// once `big.bin` is arriving in the out dir.
    pub fn big_transfer_in_flight(
        self,
        env: &TestEnv,
        server_args: &[&str],
        client_args: &[&str],
        seed: u64,
    ) -> (Proc, Proc) {
        write_random_file(&self.source(env, "big.bin"), BIG, seed);
        fs::write(self.source(env, "small.txt"), b"small\n").unwrap();
        let server = self.server(env, server_args);
        let mut client = self.client(env, client_args, &["big.bin", "small.txt"]);
        match self {
            Direction::Fetch => env.wait_receiving(&mut client, "big.bin"),
            Direction::Upload => {
                let receiving = wait_until(TIMEOUT, || {
                    server.is_receiving_in(env.out(), "big.bin") || !client.is_running()
                });
                assert!(
                    receiving && client.is_running(),
                    "the upload never got under way\n{}",
                    client.snapshot()
                );
            }
        }
        (server, client)
    }
}
