//! Integration tests for `shm_server` and `shm_client`.
//!
//! Every test spawns the real binaries with names of its own (see
//! `util::Names`), so the tests run in parallel and never touch the default
//! queue. Each module holds the tests of one subject; a guarantee that holds
//! for both directions is one test run for a fetch and an upload (see
//! `direction`).

mod util;

mod changing_sources;
mod chaos;
mod cleanup;
mod cli;
mod direction;
mod faults;
mod fetch_flags;
mod full_file_systems;
mod library;
mod local_users;
mod namespaces;
mod output_rule;
mod patterns;
mod relay;
mod reporting;
mod resume;
mod servers_coming_and_going;
mod service;
mod service_ops;
mod signals;
mod ssh;
mod stalls;
mod transfer;
mod trees;
mod upload;
mod upload_faults;
mod upload_targets;
mod usability;
