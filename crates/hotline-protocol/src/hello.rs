//! Hello: binds the application identity to this exact TLS connection (SPEC.md §6).
//!
//! Each side signs the TLS exporter value of the connection with its identity key. A stolen
//! TLS key alone cannot produce this signature, and a Hello recorded on one connection does not
//! verify on another. The signer's role byte keeps a peer's own Hello from being reflected.

use bytes::Bytes;
use prost::Message;

use crate::EXPORTER_LEN;
use crate::bundle::MAX_KEYS;
use crate::canonical;
use crate::codes::CloseCode;
use crate::crypto::{Label, SIGNATURE_LEN};
use crate::identity::{EncryptionKey, IdentityKey, NodeId};
use crate::time::UnixMillis;
use crate::wire;

/// Most versions or suites a Hello may list.
pub const MAX_LIST: usize = 16;

/// Which end of the QUIC connection signed a Hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The dialer (QUIC client).
    Client,
    /// The listener (QUIC server).
    Server,
}

impl Side {
    /// The role byte in the signed bytes.
    pub const fn byte(self) -> u8 {
        match self {
            Side::Client => 0x01,
            Side::Server => 0x02,
        }
    }
    /// The other side.
    pub const fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// What a Hello offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Protocol versions, any order.
    pub versions: Vec<u32>,
    /// Suites, any order.
    pub suites: Vec<u32>,
    /// How many message streams the sender accepts at once.
    pub max_inflight: u32,
}

impl Default for Offer {
    fn default() -> Self {
        Offer {
            versions: vec![crate::PROTOCOL_VERSION, crate::PROTOCOL_VERSION_2],
            suites: vec![crate::SUITE_V1_BASE],
            max_inflight: 256,
        }
    }
}

/// A verified Hello from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerHello {
    /// The peer's identity (equal to the pinned one).
    pub identity: NodeId,
    /// What it offered.
    pub offer: Offer,
    /// Its current encryption keys.
    pub encryption_keys: Vec<EncryptionKey>,
    /// Its clock.
    pub time: UnixMillis,
    /// The negotiated version.
    pub version: u32,
    /// The negotiated suite.
    pub suite: u32,
}

/// Encodes and signs our Hello.
pub fn create(
    identity: &IdentityKey,
    side: Side,
    exporter: &[u8; EXPORTER_LEN],
    offer: &Offer,
    keys: &[EncryptionKey],
    now: UnixMillis,
) -> Vec<u8> {
    let body = wire::HelloBody {
        versions: offer.versions.clone(),
        suites: offer.suites.clone(),
        identity: Bytes::copy_from_slice(identity.id().as_bytes()),
        encryption_keys: keys.iter().map(EncryptionKey::to_wire).collect(),
        time_ms: now,
        max_inflight: offer.max_inflight,
    }
    .encode_to_vec();
    let sig = identity.sign(Label::Hello, &[&[side.byte()], exporter, &body]);
    wire::Hello {
        body: body.into(),
        signature: Bytes::copy_from_slice(&sig),
    }
    .encode_to_vec()
}

/// Verifies the peer's Hello (SPEC.md §6.3, checks in order) and negotiates with `ours`.
///
/// `peer_side` is the peer's end of the connection; `exporter` is this connection's exporter
/// value as computed locally.
pub fn verify(
    bytes: &[u8],
    expected: &NodeId,
    peer_side: Side,
    exporter: &[u8; EXPORTER_LEN],
    ours: &Offer,
) -> Result<PeerHello, CloseCode> {
    let outer: wire::Hello = canonical::decode(bytes).ok_or(CloseCode::MalformedFrame)?;
    let body: wire::HelloBody = canonical::decode(&outer.body).ok_or(CloseCode::MalformedFrame)?;
    if body.versions.is_empty()
        || body.versions.len() > MAX_LIST
        || body.suites.is_empty()
        || body.suites.len() > MAX_LIST
        || body.encryption_keys.is_empty()
        || body.encryption_keys.len() > MAX_KEYS
        || outer.signature.len() != SIGNATURE_LEN
        || body.max_inflight == 0
    {
        return Err(CloseCode::MalformedFrame);
    }
    if body.identity.as_ref() != expected.as_bytes() {
        return Err(CloseCode::IdentityMismatch);
    }
    if !expected.verify(
        Label::Hello,
        &[&[peer_side.byte()], exporter, &outer.body],
        &outer.signature,
    ) {
        return Err(CloseCode::BadChannelBinding);
    }
    let version =
        highest_common(&ours.versions, &body.versions).ok_or(CloseCode::UnsupportedVersion)?;
    let suite = highest_common(&ours.suites, &body.suites).ok_or(CloseCode::UnsupportedSuite)?;
    let encryption_keys = body
        .encryption_keys
        .iter()
        .map(|k| EncryptionKey::verify(k, expected))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CloseCode::MalformedFrame)?;
    Ok(PeerHello {
        identity: *expected,
        offer: Offer {
            versions: body.versions,
            suites: body.suites,
            max_inflight: body.max_inflight,
        },
        encryption_keys,
        time: body.time_ms,
        version,
        suite,
    })
}

fn highest_common(a: &[u32], b: &[u32]) -> Option<u32> {
    a.iter().filter(|v| b.contains(v)).max().copied()
}
