//! `hotline-conformance`: an interop conformance runner for hotline nodes (SPEC.md).
//!
//! `run` dials a target node as one of its pinned peers and plays a long list of cases at it,
//! each a single departure from SPEC.md (a bad certificate, a forged Hello, a malformed
//! frame, an envelope failing one step of §7.6, a flood, ...), checks the outcome SPEC.md
//! names for it (a TLS alert, a close code, a stream reset code, a REJECTED reason), and after
//! every case checks that the target still accepts a valid message. It sees only the wire:
//! it works against any implementation, not just `hotlined`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cases;
pub mod certs;
pub mod cli;
pub mod ctx;
pub mod fate;
pub mod forge;
pub mod inbound;
pub mod peer;
pub mod report;
pub mod suite;
pub mod tls12;
mod vectors;
