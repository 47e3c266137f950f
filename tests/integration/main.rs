//! sizeguard's integration tests: one test binary, a module per area.
//!
//! One binary links the crate and its dependencies once instead of once per
//! area, which is most of a cold `cargo test`'s time. The areas run as
//! threads of one process, so a test must not change process-wide state
//! (environment, current directory): each passes what its child processes
//! need through `Command::env` and `current_dir`, and takes a fresh
//! loopback port. The load test of `serve` (`tests/serve_load.rs`) stays a
//! binary of its own: it measures throughput, and `cargo test` runs binaries
//! one after another, so there nothing else shares the cores with it.
//!
//! Run one area: `cargo test --test integration golden::`.

mod support;

mod action;
mod archives;
mod browser;
mod cache_estimate;
mod check;
mod comment;
mod daemon;
mod dashboard;
mod fixtures;
mod fuzz_corpus;
mod golden;
mod ground_truth;
mod hints;
mod history;
mod hook;
mod hostile_documents;
mod hostile_layers;
mod hostile_names;
mod network_faults;
mod new_user;
mod paths;
mod real_store;
mod registry;
mod schema;
mod serve;
mod serve_admission;
mod serve_limits;
mod serve_postgres;
mod serve_publish;
mod status;
mod support_selftest;
