//! End-to-end, interop and fault tests against real `hotlined` processes.
//!
//! `relay` is a seeded UDP impairment relay (loss, delay with reordering, duplication,
//! partition) for network-fault tests between nodes on loopback; `tests/` holds the
//! cross-crate checks and those fault tests. End-to-end tests that need the `hotlined` or
//! `hotline` binaries live in those crates (Cargo gives `CARGO_BIN_EXE_*` only there).
#![forbid(unsafe_code)]

pub mod relay;
