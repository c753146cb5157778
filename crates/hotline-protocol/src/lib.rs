//! Sans-IO core of the hotline protocol (SPEC.md, version 1).
//!
//! This crate does no I/O: no sockets, no files, no clocks and no global randomness. Time
//! (`now`, Unix milliseconds) and randomness (`&mut impl CryptoRng`) are arguments. The node
//! daemon drives it; tests drive it with the deterministic two-peer harness in [`sim`].
//!
//! Layers, bottom up:
//! - [`crypto`]: the one place that touches Ed25519, X25519/HPKE and SHA-256.
//! - [`identity`], [`bundle`], [`officer`]: keys, peer bundles, operator credentials.
//! - [`envelope`], [`content`], [`receipt`], [`hello`]: the signed wire objects, decoded into
//!   checked types ("parse, don't validate").
//! - [`frame`]: length-prefixed framing with hard size caps and an incremental decoder.
//! - [`session`]: the per-link state machine.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bundle;
mod canonical;
pub mod codes;
pub mod content;
pub mod crypto;
pub mod envelope;
pub mod frame;
pub mod fuzzing;
pub mod hello;
pub mod identity;
pub mod keyring;
pub mod officer;
pub mod receipt;
pub mod revocation;
pub mod session;
pub mod sim;
pub mod time;
pub mod wire;

pub use codes::{CloseCode, RejectReason};
pub use identity::NodeId;

/// Protocol version 1: the format version of envelopes, receipts and bundles, which version 2
/// keeps unchanged (SPEC.md §12.5).
pub const PROTOCOL_VERSION: u32 = 1;
/// Protocol version 2: version 1 plus the KeyUpdate control frame (SPEC.md §4.3.5). Offered
/// in Hello next to version 1; negotiation picks the highest common one.
pub const PROTOCOL_VERSION_2: u32 = 2;
/// The only suite of version 1: Ed25519 (strict), SHA-256, HPKE base mode with
/// DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305.
pub const SUITE_V1_BASE: u32 = 1;
/// Content type 1: `hotline.v1.Content`.
pub const CONTENT_TYPE_V1: u32 = 1;
/// ALPN for node-to-node links.
pub const ALPN: &[u8] = b"hotline/1";
/// ALPN reserved for the operator API.
pub const OPERATOR_ALPN: &[u8] = b"hotline-operator/1";
/// Label of the TLS keying-material exporter used for channel binding (SPEC.md §6).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-hotline/1 channel-binding";
/// Length of the exporter value.
pub const EXPORTER_LEN: usize = 32;
