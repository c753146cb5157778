//! The transport layer of hotline, between the sans-IO protocol crate and the programs on top
//! (the node daemon, the operator client, the conformance runner and the bench).
//!
//! It owns what more than one of them needs and what the protocol crate must not do (I/O):
//! - [`tls`]: the one rustls crypto provider, QUIC/TLS endpoint configuration, the pinned and
//!   private-CA peer verifiers, the certificate profile (SPEC.md §3);
//! - [`keyfile`]: secret key files (mode 0600, zeroized in memory);
//! - [`material`]: a node directory's key material (identity, encryption and TLS keys);
//! - [`encryption_keys`]: the node's encryption key file, rotated and pruned under a lock;
//! - [`credential`]: the operator credential file (SPEC.md §15.2.2);
//! - [`request`] and [`officer_keys`]: an officer's key request and the credential issued from
//!   it, and the officer's own key directory (SPEC.md §15.2.5);
//! - [`display`]: text from the peer or other operators made safe to show on a terminal;
//! - [`time`]: the wall clock ([`now_ms`], for signed timestamps) and UTC text for operators.
#![forbid(unsafe_code)]

pub mod credential;
pub mod display;
pub mod encryption_keys;
pub mod keyfile;
pub mod material;
pub mod officer_keys;
pub mod request;
pub mod time;
pub mod tls;
pub mod tls_next;

pub use time::now_ms;
