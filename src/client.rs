//! The requesting role: three kinds of session, each a type with only its
//! own methods over one session core ([`session`]): [`Client`] fetches and
//! lists, [`UploadSession`] sends files, [`StatusSession`] asks what the
//! server is doing. What to do with a fetch's frames is
//! [`crate::client::delivery`]'s business.

pub(crate) mod config;
pub(crate) mod delivery;
mod fetch;
pub(crate) mod link;
mod listing;
pub(crate) mod pattern;
pub(crate) mod plan;
pub(crate) mod relay;
pub(crate) mod session;
mod single;
mod status;
pub(crate) mod upload;

pub use fetch::Client;
pub(crate) use listing::under_prefix;
pub use listing::{Entry, Listing, Skipped};
pub use single::{fetch, FileReader};
pub use status::{status_all, stop_server, ServerReport, Status, StatusSession};
pub use upload::UploadSession;

pub use crate::client::config::{
    ClientConfig, ClientConfigBuilder, WaitNotice, Waiting, DEFAULT_STALL_TIMEOUT, DEFAULT_WAIT,
};
