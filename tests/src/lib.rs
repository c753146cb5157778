//! End-to-end, interop and fault tests against real `hotlined` processes.
//!
//! `relay` is a seeded UDP impairment relay (loss, delay with reordering, duplication,
//! partition) for network-fault tests between nodes on loopback; `netns` makes two Linux
//! network namespaces joined by a veth pair and puts iptables faults between them; `check`
//! is the exactly-once check of an exchange, read from both nodes' databases. `tests/` holds
//! the cross-crate checks, those fault tests, the `hotline` CLI and demo against real nodes,
//! and the conformance runner against a real node. Cargo gives `CARGO_BIN_EXE_*` only for a
//! package's own binaries, so `src/bin/` has `hotline-e2e-client` and `hotline-e2e-daemon`
//! (the `hotline` and `hotlined` commands, built from the same library entry points), and
//! `hotline-fault-node`, which starts a node as `hotlined run` does for the namespace tests.
#![forbid(unsafe_code)]

pub mod check;
pub mod netns;
pub mod relay;
