//! End-to-end, interop and fault tests against real `hotlined` processes.
//!
//! `relay` is a seeded UDP impairment relay (loss, delay with reordering, duplication,
//! partition) for network-fault tests between nodes on loopback; `netns` makes two Linux
//! network namespaces joined by a veth pair and puts iptables faults between them; `check`
//! is the exactly-once check of an exchange, read from both nodes' databases. `tests/` holds
//! the cross-crate checks and those fault tests. End-to-end tests that need the `hotlined` or
//! `hotline` binaries live in those crates (Cargo gives `CARGO_BIN_EXE_*` only there); the
//! namespace tests run `hotline-fault-node` (`src/bin/`), which starts a node as `hotlined
//! run` does.
#![forbid(unsafe_code)]

pub mod check;
pub mod netns;
pub mod relay;
