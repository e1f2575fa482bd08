//! # shmxfer
//!
//! Moves files between processes on one Linux machine through POSIX IPC only:
//! a named POSIX message queue is the command channel, a client-created POSIX
//! shared-memory region of at most 4096 bytes carries the bytes, and two named
//! POSIX semaphores hand its slots back and forth.
//!
//! The two programs `shm_server` and `shm_client` are thin shells over
//! [`Server`] and the client's three kinds of session, each a type with
//! only its own methods: [`Client`] fetches and lists, [`UploadSession`]
//! sends files, [`StatusSession`] asks what a server is doing.
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
//! use shmxfer::{Client, ClientConfig, Server};
//!
//! # fn main() -> Result<(), shmxfer::Error> {
//! let root = tempfile::tempdir().unwrap();
//! std::fs::write(root.path().join("hello.txt"), b"hello\n").unwrap();
//! let queue = format!("/shmxfer_doctest_{}", std::process::id());
//!
//! let server = Server::builder()
//!     .queue(&queue)
//!     .root(root.path())
//!     .max_sessions(4)
//!     .stall_timeout(None)
//!     .bind()?;
//! let serving = std::thread::spawn(move || server.run(Default::default()));
//!
//! // `ClientConfig::from_env()` would use $SHMXFER_QUEUE, else /shmxfer.
//! let mut client = Client::connect(&ClientConfig::new(&queue))?;
//! let listed = client.list(None)?;
//! assert!(listed.is_complete());
//! assert_eq!((listed.files[0].path.as_path(), listed.files[0].size), ("hello.txt".as_ref(), 6));
//! assert_eq!(client.fetch_vec("hello.txt")?, b"hello\n");
//! // A listed path is fetched as it is (a name need not be UTF-8).
//! assert_eq!(client.fetch_vec(&listed.files[0].path)?, b"hello\n");
//! assert!(matches!(client.fetch_vec("nope"), Err(shmxfer::Error::NotFound { .. })));
//! client.close()?;
//! serving.join().unwrap()?;
//! # Ok(())
//! # }
//! ```
//!
//! One file in one call from the server the environment names:
//! [`fetch`]. Several files into a directory, with a result per file:
//! [`Client::fetch_files`]; a tree: [`Client::fetch_tree`]; one file to a
//! path, verified and atomic:
//! [`Client::fetch_file`]; to any writer: [`Client::fetch_to`]; as a
//! reader: [`Client::fetch_reader`]. Each takes the file's path on the
//! server as any [`AsRemotePath`]: a `&str` or `String`, the `PathBuf` a
//! listing gave ([`Entry::path`], UTF-8 or not), bytes; so does an upload
//! ([`UploadSession::put_file`]). A file that did not come is an error
//! that names it ([`Outcome::into_result`]).

#![deny(unsafe_op_in_unsafe_fn)]

// The folders are the layers, bottom up: `os` (the OS calls and the POSIX
// objects), `protocol` (the wire format), `shm_region` (the region, its ring
// and pacing), `fs` (the confined opener, the walk, the output rule),
// `transfer` (one file's way through a ring, both directions), and the two
// roles, `client` and `server`. Each imports only the layers below it. Only
// what is re-exported below is public.
mod choices;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
mod client;
mod error;
mod fs;
mod os;
mod protocol;
mod reason;
mod server;
mod shm_region;
mod text;
mod transfer;

pub use choices::{Clobber, OutputNames, Partial, Times, Update};
pub use client::delivery::{FetchOptions, NoProgress, Progress};
pub use client::plan::{Lost, Repeated, Report, Summary};
pub use client::{
    fetch, stop_server, Client, ClientConfig, ClientConfigBuilder, Entry, FileReader, Listing, Skipped,
    StatusSession, UploadSession, WaitNotice, Waiting, DEFAULT_WAIT,
};
pub use error::{Error, Result, SessionEnd};
pub use protocol::{AsRemotePath, SessionKind, StopKind};
pub use server::{Server, ServerBuilder, ServerConfig, StopSignal};
pub use shm_region::pacing::DEFAULT_SPIN_BUDGET;
pub use transfer::outcome::{FailReason, FileResult, Outcome, SkipReason};

/// What servers are doing: one server's [`Status`](status::Status) (its
/// totals and live sessions, [`StatusSession::status`]) and every server of
/// this user ([`status_all`](status::status_all)).
///
/// ```
/// use shmxfer::{ClientConfig, Server, StatusSession};
///
/// # fn main() -> Result<(), shmxfer::Error> {
/// let root = tempfile::tempdir().unwrap();
/// let queue = format!("/shmxfer_doc_status_{}", std::process::id());
/// let server = Server::builder().queue(&queue).root(root.path()).persistent().bind()?;
/// let serving = std::thread::spawn(move || server.run(Default::default()));
/// let mut session = StatusSession::connect(&ClientConfig::new(&queue))?;
/// let status: shmxfer::status::Status = session.status()?;
/// assert_eq!(status.server.pid, std::process::id());
/// session.close()?;
/// shmxfer::stop_server(&ClientConfig::new(&queue), shmxfer::StopKind::Now)?;
/// serving.join().unwrap()?;
/// # Ok(())
/// # }
/// ```
pub mod status {
    pub use crate::client::{status_all, ServerReport, Status};
    pub use crate::protocol::{ServerStatus, SessionStatus};
}

/// Uploads (`shm_client --put`) through an [`UploadSession`]: which local
/// files a run sends and where ([`UploadPlan`](upload::UploadPlan), its
/// [`UploadItem`](upload::UploadItem)s), how a file is sent
/// ([`PutOptions`](upload::PutOptions)), a local tree walked for sending
/// ([`LocalTree`](upload::LocalTree)), and the wire's answer to each file
/// ([`UploadAnswer`](upload::UploadAnswer)), which the session returns as
/// an [`Outcome`].
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir(dir.path().join("sub")).unwrap();
/// std::fs::write(dir.path().join("sub/a.txt"), b"a").unwrap();
/// let tree = shmxfer::upload::LocalTree::walk(dir.path()).unwrap();
/// assert_eq!(tree.files.len(), 1);
/// assert!(tree.skipped.is_empty());
/// ```
pub mod upload {
    pub use crate::client::plan::upload::{ToSend, Unsent, UploadItem, UploadPlan, UploadPlanBuilder};
    pub use crate::client::upload::{LocalFile, LocalSkip, LocalSkipReason, LocalTree, PutOptions};
    pub use crate::protocol::{PutIfExists, ReasonCode, UploadAnswer};
}

/// Sessions with a server on another host, through `ssh` (or any remote
/// shell): where it is ([`Remote`](remote::Remote)), the relay that runs
/// there ([`relay_session`](remote::relay_session)), and why the far side
/// could not serve ([`RemoteFailure`](remote::RemoteFailure)).
///
/// ```
/// let remote = shmxfer::remote::Remote::new("build7");
/// assert_eq!(remote.host, "build7");
/// ```
pub mod remote {
    pub use crate::client::link::{stop_remote_server, Remote};
    pub use crate::client::relay::{relay, relay_session, relay_stdio};
    pub use crate::error::RemoteFailure;
}

/// What dead servers and clients left behind, removed: the POSIX
/// counterpart of `ipcrm` (`shm_server --cleanup`).
///
/// ```
/// let queue = format!("/shmxfer_doc_cleanup_{}", std::process::id());
/// let collected = shmxfer::cleanup::cleanup(&queue)?;
/// assert!(collected.removed.is_empty(), "nothing of that queue was there");
/// # Ok::<(), shmxfer::Error>(())
/// ```
pub mod cleanup {
    pub use crate::server::leftovers::{cleanup, cleanup_all, Collected};
}

/// The wire format's errors, as [`Error::Decode`] and [`Error::Encode`]
/// carry them.
///
/// ```
/// use shmxfer::wire::DecodeError;
/// let e = DecodeError::Truncated { needed: 20, got: 3 };
/// assert!(e.to_string().contains("20"));
/// ```
pub mod wire {
    pub use crate::protocol::{DecodeError, EncodeError};
}

pub use os::names::{DEFAULT_QUEUE, QUEUE_ENV};

/// What the two programs use beyond the public API: no promise, may change
/// at any time.
#[doc(hidden)]
pub mod programs {
    pub use crate::client::pattern::is_pattern;
    pub use crate::client::DEFAULT_STALL_TIMEOUT;
    pub use crate::fs::output::names_a_directory;
    pub use crate::os::names::validate_queue_name;
    pub use crate::os::sys::IO_CHUNK;
    pub use crate::protocol::{normalize_path, MAX_PATH_LEN};
    pub use crate::shm_region::{DEFAULT_SLOTS, MAX_SLOTS};
    pub use crate::text::{byte_count, human_size, quote_bytes, quote_name, quote_whole};
}

/// The internals the integration tests and the fuzz targets reach into:
/// no promise, may change at any time.
#[doc(hidden)]
pub mod testing {
    pub use crate::os::sys::IO_CHUNK;

    /// The wire format.
    pub mod protocol {
        pub use crate::protocol::{
            normalize_path, truncate_utf8, Command, DataEnd, FrameHeader, FrameKind, GetCondition, PutFlags,
            ReasonCode, Reply, SessionKind, SkipCode, StartFlags, FRAME_HEADER_LEN, MAX_STATUS_TEXT,
            MSG_MAGIC, PROTOCOL_VERSION,
        };
    }

    /// Object names.
    pub mod names {
        pub use crate::os::names::{validate_queue_name, SessionNames, MAX_NAME_LEN, MAX_QUEUE_LEN};
    }

    /// Shared memory and semaphores.
    pub mod shm_region {
        pub use crate::os::semaphore::Semaphore;
        pub use crate::os::shm_object::ShmObject;
        pub use crate::shm_region::{Geometry, Region, DEFAULT_SLOTS};
    }

    /// Who is alive.
    pub mod liveness {
        pub use crate::os::liveness::ServerLock;
        pub use crate::shm_region::client_alive;
    }

    /// The command queue.
    pub mod queue {
        pub use crate::os::queue::{create, QUEUE_CAPACITY, QUEUE_MSG_LEN};
    }
}
