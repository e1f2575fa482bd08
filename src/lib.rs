//! # shmxfer
//!
//! Moves files between processes on one Linux machine through POSIX IPC only:
//! a named POSIX message queue is the command channel, a client-created POSIX
//! shared-memory region of at most 4096 bytes carries the bytes, and two named
//! POSIX semaphores hand its slots back and forth.
//!
//! The two programs `shm_server` and `shm_client` are thin shells over
//! [`Server`] and [`Client`].
//!
//! ```text
//!  shm_client                                  shm_server
//!  ----------                                  ----------
//!  creates region + sems  --- Open(region) --> mq /shmxfer --> session thread
//!                         --- Get(seq, path) ->                 maps region
//!  items.wait  <------------ Start | Data... | End(count, xxh3) | NotFound
//!  spaces.post ------------> (slot ring in the region)
//!                         --- Close ---------> session ends
//! ```
//!
//! # Examples
//!
//! A server and a client in one process, on a queue of their own:
//!
//! ```
//! use std::sync::{atomic::AtomicBool, Arc};
//! use shmxfer::{Client, ClientConfig, Delivery, NoProgress, Outcome, Server, ServerConfig};
//!
//! # fn main() -> Result<(), shmxfer::Error> {
//! let root = tempfile::tempdir().unwrap();
//! std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
//! let out = tempfile::tempdir().unwrap();
//! let queue = format!("/shmxfer_doctest_{}", std::process::id());
//!
//! let server = Server::bind(ServerConfig {
//!     queue: queue.clone(),
//!     root: root.path().to_owned(),
//!     persistent: false,
//!     max_sessions: 4,
//!     stall_timeout: None,
//!     collect_every: shmxfer::server::COLLECT_EVERY,
//!     spin_budget: shmxfer::pacing::DEFAULT_SPIN_BUDGET,
//! })?;
//! let stop = Arc::new(AtomicBool::new(false));
//! let serving = std::thread::spawn(move || server.run(stop));
//!
//! let mut client = Client::connect(&ClientConfig::new(&queue), Arc::new(AtomicBool::new(false)), &mut || {})?;
//! let delivery = Delivery { out_dir: out.path().to_owned(), no_clobber: false, relative: false };
//! let wanted = ["hello.txt".to_owned(), "nope".to_owned()];
//! let outcomes = delivery.fetch(&mut client, &wanted, &mut NoProgress, &mut |_, _| {})?;
//! client.close()?;
//! serving.join().unwrap()?;
//!
//! assert_eq!(outcomes, [Outcome::Delivered { bytes: 6 }, Outcome::NotFound]);
//! assert_eq!(std::fs::read(out.path().join("hello.txt")).unwrap(), b"hello\n");
//! # Ok(())
//! # }
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

// Each module is one concept; see the README's code layout.
mod answers;
pub mod client;
pub mod delivery;
mod error;
pub mod leftovers;
pub mod liveness;
mod log_budget;
pub mod names;
pub mod output;
pub mod owned_name;
pub mod pacing;
pub mod protocol;
pub mod queue;
pub mod ring;
pub mod semaphore;
mod send_file;
pub mod server;
mod sessions;
pub mod shm_object;
pub mod shm_region;
mod source;
mod stats;
mod sys;
pub mod text;
mod walk;

pub use client::{stop_server, Client, ClientConfig, ClientConfigBuilder, Status};
pub use delivery::{output_name, Delivery, NoProgress, Outcome, Progress};
pub use error::{Error, Result};
pub use leftovers::{cleanup, Collected};
pub use server::{Server, ServerBuilder, ServerConfig};

/// The queue both programs use unless told otherwise.
pub const DEFAULT_QUEUE: &str = "/shmxfer";
/// The environment variable that overrides [`DEFAULT_QUEUE`] on both sides.
pub const QUEUE_ENV: &str = "SHMXFER_QUEUE";
/// Bytes moved per `read()` on the server and per `write()` on the client:
/// the slots carry them on in pieces.
pub const IO_CHUNK: usize = 64 * 1024;
