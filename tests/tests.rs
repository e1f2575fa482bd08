//! Integration tests for `shm_server` and `shm_client`.
//!
//! Every test spawns the real binaries with names of its own (see
//! `util::Names`), so the tests run in parallel and never touch the default
//! queue.

mod util;

mod attack;
mod attack_upload;
mod chaos;
mod cli;
mod faults;
mod fetch_flags;
mod hostile;
mod namespaces;
mod output_rule;
mod patterns;
mod redteam;
mod relay;
mod reporting;
mod service;
mod service_ops;
mod ssh;
mod transfer;
mod upload;
mod usability;
