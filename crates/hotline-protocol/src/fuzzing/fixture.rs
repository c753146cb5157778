//! The fixed-key fuzzing fixture: two parties, their valid envelopes, receipts and frames.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost::Message;

#[cfg(doc)]
use super::SessionOp;
use crate::bundle::PeerBundle;
use crate::codes::{CloseCode, RejectReason};
use crate::content::{Draft, Precedence, Tlp};
use crate::crypto::{self, Label};
use crate::envelope::{Envelope, SealParams};
use crate::frame::{self, FrameType};
use crate::hello::{self, Offer, Side};
use crate::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use crate::officer::{OfficerKey, Role};
use crate::receipt::{self, Receipt, ReceiptBuild, Subject};
use crate::revocation::{MAX_REASON_LEN, Revocation, RevokedKind};
use crate::session::key_update_payload;
use crate::sim::{EPOCH, TestRng};
use crate::time::{DAY, UnixMillis};
use crate::wire;

// ----- fixture ------------------------------------------------------------------------

/// The seed of the fixture's [`TestRng`]. Changing it changes every valid seed input.
const FIXTURE_SEED: u64 = 0x686f_746c_696e_6521;

/// Valid frames of the fixture, for seed inputs and for the session script's
/// [`SessionOp::Frame`]. "Me" is the node under test, "peer" the other end; outbound
/// envelopes go from me to the peer, inbound ones from the peer to me.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FixtureFrame {
    /// The peer's Hello signed as QUIC server, for the fixed exporter (what a client expects).
    HelloFromServer,
    /// The peer's Hello signed as QUIC client, for the fixed exporter (what a server expects).
    HelloFromClient,
    /// Heartbeat with ping 1, claiming sequences up to 2 sent.
    HeartbeatPing,
    /// Heartbeat echoing our first ping.
    HeartbeatEcho,
    /// Heartbeat with ping 2, claiming sequences up to 4 sent (3 is never sent: a gap).
    HeartbeatGap,
    /// Close with SHUTDOWN.
    Close,
    /// Inbound envelope, sequence 1, ROUTINE.
    Envelope1,
    /// Inbound envelope, sequence 2, FLASH.
    Envelope2,
    /// Inbound envelope, sequence 4.
    Envelope4,
    /// Inbound envelope reusing the message id of [`FixtureFrame::Envelope1`] with other bytes.
    EnvelopeConflict,
    /// An envelope whose message id reads but whose sequence is 0 (MALFORMED).
    EnvelopeMalformed,
    /// Envelope frame whose payload is not protobuf at all.
    EnvelopeUnreadable,
    /// Our own outbound envelope 0, reflected back at us.
    EnvelopeReflected,
    /// The peer's DELIVERED receipt for outbound envelope 0.
    ReceiptDelivered0,
    /// The peer's DELIVERED receipt for outbound envelope 1.
    ReceiptDelivered1,
    /// The peer's REJECTED receipt for outbound envelope 2.
    ReceiptRejected2,
    /// The peer's asynchronous ACKNOWLEDGED receipt for outbound envelope 0.
    ReceiptAcknowledged0,
    /// The peer's ReceiptStored for our asynchronous receipt 0.
    ReceiptStored0,
    /// The peer's Hello as QUIC client offering only version 9 (no version in common).
    HelloOnlyVersion9,
    /// The peer's Hello as QUIC client offering only suite 2 (no suite in common).
    HelloOnlySuite2,
    /// The peer's Hello as QUIC client offering versions 1–3, suites 1 and 9, and one
    /// message stream at a time (`max_inflight` 1).
    HelloWideOffer,
    /// A Hello as QUIC client signed by "me" instead of the peer (identity mismatch).
    HelloFromMe,
    /// The peer's Hello as QUIC client carrying my encryption key certificate instead of its
    /// own (a key not owned by the peer).
    HelloForeignKey,
    /// The peer's Hello as QUIC client offering only version 1: the link comes up with
    /// version 1, on which a KeyUpdate is an unexpected frame.
    HelloOnlyVersion1,
    /// The peer's KeyUpdate announcing its encryption key certificates (valid on a version 2
    /// link, which the default offers of both ends negotiate).
    KeyUpdateFromPeer,
}

impl FixtureFrame {
    /// Every fixture frame, in byte order.
    pub const ALL: [FixtureFrame; 25] = [
        FixtureFrame::HelloFromServer,
        FixtureFrame::HelloFromClient,
        FixtureFrame::HeartbeatPing,
        FixtureFrame::HeartbeatEcho,
        FixtureFrame::HeartbeatGap,
        FixtureFrame::Close,
        FixtureFrame::Envelope1,
        FixtureFrame::Envelope2,
        FixtureFrame::Envelope4,
        FixtureFrame::EnvelopeConflict,
        FixtureFrame::EnvelopeMalformed,
        FixtureFrame::EnvelopeUnreadable,
        FixtureFrame::EnvelopeReflected,
        FixtureFrame::ReceiptDelivered0,
        FixtureFrame::ReceiptDelivered1,
        FixtureFrame::ReceiptRejected2,
        FixtureFrame::ReceiptAcknowledged0,
        FixtureFrame::ReceiptStored0,
        FixtureFrame::HelloOnlyVersion9,
        FixtureFrame::HelloOnlySuite2,
        FixtureFrame::HelloWideOffer,
        FixtureFrame::HelloFromMe,
        FixtureFrame::HelloForeignKey,
        FixtureFrame::HelloOnlyVersion1,
        FixtureFrame::KeyUpdateFromPeer,
    ];

    pub(super) fn from_byte(b: u8) -> Self {
        Self::ALL[usize::from(b) % Self::ALL.len()]
    }
}

/// The encoded fixture frame (header and payload), or `None` if the fixture could not be
/// built (a test asserts it always can).
pub fn fixture_frame(f: FixtureFrame) -> Option<Bytes> {
    fixture()?.frames.get(f as usize).cloned()
}

/// Encoded peer bundles (SPEC.md §4.4) of the fixture, for the `bundle` and `bundle_update`
/// targets' seeds: all but the last self-signed by the peer's identity key, the first two
/// valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FixtureBundle {
    /// The peer's bundle: one encryption key, one address.
    Valid,
    /// Every field at its limit: a 64-byte name, 4 encryption keys, 8 addresses of 255 bytes.
    Wide,
    /// Carries my encryption key certificate instead of the peer's own (BadSignature).
    ForeignKey,
    /// Lists only protocol version 2, without version 1 (UnsupportedVersion: a bundle must
    /// list version 1, the format of envelopes and receipts, even when version 2 is spoken).
    OnlyVersion2,
    /// A 65-byte name, signed correctly (Malformed after the signature check).
    NameTooLong,
    /// Nine addresses, signed correctly (Malformed).
    TooManyAddresses,
    /// My own bundle, valid, of my identity: what the peer must not send in a BundleUpdate
    /// (SPEC.md §4.4.4). Not a seed of the `bundle` target, which holds that only the peer's
    /// bundles verify.
    ByMe,
}

impl FixtureBundle {
    /// Every fixture bundle, in byte order.
    pub const ALL: [FixtureBundle; 7] = [
        FixtureBundle::Valid,
        FixtureBundle::Wide,
        FixtureBundle::ForeignKey,
        FixtureBundle::OnlyVersion2,
        FixtureBundle::NameTooLong,
        FixtureBundle::TooManyAddresses,
        FixtureBundle::ByMe,
    ];
}

/// The encoded fixture bundle (raw bytes, not armored), or `None` if the fixture could not be
/// built.
pub fn fixture_bundle(b: FixtureBundle) -> Option<Bytes> {
    fixture()?.bundles.get(b as usize).cloned()
}

/// Encoded `KeyRevocation`s (SPEC.md §4.6) of the fixture, for the `revocation` target's
/// seeds: all but one signed by the peer's identity key, the first three valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FixtureRevocation {
    /// The peer revokes its officer's key, compromised an hour before the revocation.
    Compromised,
    /// The peer retires another officer key in good order (no compromise time).
    Retired,
    /// Every field at its limit: a 256-byte reason, and revocation and compromise both at
    /// `u64::MAX`.
    Wide,
    /// Issued and signed by me, not the peer (WrongIssuer).
    ByMe,
    /// Compromised 1 ms after it was revoked, signed correctly (Malformed).
    CompromisedAfterRevoked,
    /// A 257-byte reason, signed correctly (Malformed).
    ReasonTooLong,
    /// Kind 2, not registered, signed correctly (Malformed).
    UnknownKind,
}

impl FixtureRevocation {
    /// Every fixture revocation, in byte order.
    pub const ALL: [FixtureRevocation; 7] = [
        FixtureRevocation::Compromised,
        FixtureRevocation::Retired,
        FixtureRevocation::Wide,
        FixtureRevocation::ByMe,
        FixtureRevocation::CompromisedAfterRevoked,
        FixtureRevocation::ReasonTooLong,
        FixtureRevocation::UnknownKind,
    ];
}

/// The encoded fixture revocation (a `KeyRevocation`), or `None` if the fixture could not be
/// built.
pub fn fixture_revocation(r: FixtureRevocation) -> Option<Bytes> {
    fixture()?.revocations.get(r as usize).cloned()
}

pub(super) struct Fixture {
    pub(super) me: Arc<IdentityKey>,
    pub(super) me_certs: Vec<EncryptionKey>,
    pub(super) me_keys: Vec<EncryptionKeypair>,
    pub(super) peer: NodeId,
    pub(super) exporter: [u8; crate::EXPORTER_LEN],
    /// Indexed by `FixtureFrame as usize`.
    pub(super) frames: Vec<Bytes>,
    /// Envelopes from me to the peer, sequences 1, 2, 3.
    pub(super) outbound: Vec<Envelope>,
    /// Asynchronous ACKNOWLEDGED receipts from me (for inbound envelopes 1 and 2).
    pub(super) our_async: Vec<Receipt>,
    /// Receipts from me for inbound envelopes, to answer with on any stream.
    pub(super) our_receipts: Vec<Receipt>,
    /// Indexed by `FixtureBundle as usize`.
    pub(super) bundles: Vec<Bytes>,
    /// Indexed by `FixtureRevocation as usize`.
    pub(super) revocations: Vec<Bytes>,
}

static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();

pub(super) fn fixture() -> Option<&'static Fixture> {
    FIXTURE.get_or_init(build_fixture).as_ref()
}

/// One end of the fixture's link: an identity with one encryption key and one officer.
struct Party {
    identity: IdentityKey,
    keys: Vec<EncryptionKeypair>,
    officer: OfficerKey,
}

impl Party {
    fn generate(rng: &mut TestRng, name: &str) -> Option<Party> {
        let (from, to) = (EPOCH - DAY, EPOCH + 365 * DAY);
        let identity = IdentityKey::generate(rng);
        let keys = vec![EncryptionKeypair::generate(&identity, from, to, rng)];
        let officer = OfficerKey::generate(&identity, name, Role::Officer, from, to, rng).ok()?;
        Some(Party {
            identity,
            keys,
            officer,
        })
    }

    fn certs(&self) -> Vec<EncryptionKey> {
        self.keys.iter().map(|k| k.certificate.clone()).collect()
    }

    /// Seals a short message to `to`, created at `created`.
    fn seal(
        &self,
        to: &Party,
        rng: &mut TestRng,
        message_id: [u8; 16],
        (sequence, precedence): (u64, Precedence),
        created: UnixMillis,
    ) -> Option<Envelope> {
        let recipient = to.identity.id();
        let draft = Draft {
            subject: format!("fixture message {sequence}"),
            text: "Indicators attached.".into(),
            ..Default::default()
        };
        let content = draft
            .sign(&message_id, &recipient, &self.officer, created)
            .ok()?;
        let certs = to.certs();
        let params = SealParams {
            recipient,
            recipient_key: EncryptionKey::select(&certs, created)?,
            message_id,
            sequence,
            created,
            precedence,
            tlp: Tlp::Amber,
        };
        Envelope::seal(&self.identity, &params, &content, rng).ok()
    }

    /// Signs a receipt for `e` as this party.
    fn receipt(&self, e: &Envelope, kind: ReceiptBuild<'_>) -> Option<Receipt> {
        Receipt::sign(&self.identity, &Subject::from(e), kind, EPOCH).ok()
    }

    /// This party's officer acknowledges `e`: an ACKNOWLEDGED receipt.
    fn acknowledge(&self, e: &Envelope, note: &str) -> Option<Receipt> {
        let ack = self
            .officer
            .acknowledge(e.message_id(), e.sha256(), EPOCH, note)
            .ok()?;
        self.receipt(e, ReceiptBuild::Acknowledged(&ack))
    }
}

fn build_fixture() -> Option<Fixture> {
    use Precedence::{Flash, Priority, Routine};
    let mut rng = TestRng::new(FIXTURE_SEED);
    let now = EPOCH;
    let me = Party::generate(&mut rng, "Fuzz Me")?;
    let peer = Party::generate(&mut rng, "Fuzz Peer")?;
    let exporter = crypto::sha256(b"hotline fuzzing fixture exporter");

    let mut outbound = Vec::new();
    for header in [(1, Routine), (2, Flash), (3, Priority)] {
        let id = rng.id16();
        outbound.push(me.seal(&peer, &mut rng, id, header, now)?);
    }
    let (id1, id2, id4) = (rng.id16(), rng.id16(), rng.id16());
    let in1 = peer.seal(&me, &mut rng, id1, (1, Routine), now)?;
    let in2 = peer.seal(&me, &mut rng, id2, (2, Flash), now)?;
    let in4 = peer.seal(&me, &mut rng, id4, (4, Priority), now)?;
    let conflict = peer.seal(&me, &mut rng, id1, (5, Routine), now + 1)?;

    // Malformed but with a readable message id: in1 with its header's sequence set to 0.
    let malformed = {
        let outer = wire::Envelope::decode(in1.bytes().clone()).ok()?;
        let mut header = wire::EnvelopeHeader::decode(outer.header.clone()).ok()?;
        header.sequence = 0;
        wire::Envelope {
            header: header.encode_to_vec().into(),
            ..outer
        }
        .encode_to_vec()
    };

    let delivered0 = peer.receipt(&outbound[0], ReceiptBuild::Delivered)?;
    let delivered1 = peer.receipt(&outbound[1], ReceiptBuild::Delivered)?;
    let rejected2 = peer.receipt(
        &outbound[2],
        ReceiptBuild::Rejected(RejectReason::Policy, "not today"),
    )?;
    let acknowledged0 = peer.acknowledge(&outbound[0], "on it")?;

    let our_async = vec![me.acknowledge(&in1, "seen")?, me.acknowledge(&in2, "seen")?];
    let our_receipts = vec![
        me.receipt(&in1, ReceiptBuild::Delivered)?,
        me.receipt(&in2, ReceiptBuild::Delivered)?,
        me.receipt(&in4, ReceiptBuild::Delivered)?,
        me.receipt(
            &conflict,
            ReceiptBuild::Rejected(RejectReason::Conflict, "id reused"),
        )?,
    ];

    let heartbeat = |ping, echo, last_sequence_sent| {
        wire::Heartbeat {
            ping,
            echo,
            time_ms: now,
            last_sequence_sent,
            received_through: 0,
        }
        .encode_to_vec()
    };
    let hello = |from: &Party, side, offer: &Offer, keys: &[EncryptionKey]| {
        hello::create(&from.identity, side, &exporter, offer, keys, now)
    };
    let (default, peer_certs) = (Offer::default(), peer.certs());
    let hello_as = |side| hello(&peer, side, &default, &peer_certs);
    let client_offering = |versions, suites, max_inflight| {
        let offer = Offer {
            versions,
            suites,
            max_inflight,
        };
        hello(&peer, Side::Client, &offer, &peer_certs)
    };
    let close = wire::Close {
        code: CloseCode::Shutdown.code(),
        reason: "maintenance".into(),
    }
    .encode_to_vec();
    let stored0 = receipt::stored_ack(our_async.first()?.sha256());

    let frames = FixtureFrame::ALL
        .iter()
        .map(|f| {
            let (ty, payload): (FrameType, Vec<u8>) = match f {
                FixtureFrame::HelloFromServer => (FrameType::Hello, hello_as(Side::Server)),
                FixtureFrame::HelloFromClient => (FrameType::Hello, hello_as(Side::Client)),
                FixtureFrame::HeartbeatPing => (FrameType::Heartbeat, heartbeat(1, 0, 2)),
                FixtureFrame::HeartbeatEcho => (FrameType::Heartbeat, heartbeat(0, 1, 0)),
                FixtureFrame::HeartbeatGap => (FrameType::Heartbeat, heartbeat(2, 0, 4)),
                FixtureFrame::Close => (FrameType::Close, close.clone()),
                FixtureFrame::Envelope1 => (FrameType::Envelope, in1.bytes().to_vec()),
                FixtureFrame::Envelope2 => (FrameType::Envelope, in2.bytes().to_vec()),
                FixtureFrame::Envelope4 => (FrameType::Envelope, in4.bytes().to_vec()),
                FixtureFrame::EnvelopeConflict => (FrameType::Envelope, conflict.bytes().to_vec()),
                FixtureFrame::EnvelopeMalformed => (FrameType::Envelope, malformed.clone()),
                FixtureFrame::EnvelopeUnreadable => {
                    (FrameType::Envelope, b"\xff\xff not protobuf".to_vec())
                }
                FixtureFrame::EnvelopeReflected => {
                    (FrameType::Envelope, outbound[0].bytes().to_vec())
                }
                FixtureFrame::ReceiptDelivered0 => {
                    (FrameType::Receipt, delivered0.bytes().to_vec())
                }
                FixtureFrame::ReceiptDelivered1 => {
                    (FrameType::Receipt, delivered1.bytes().to_vec())
                }
                FixtureFrame::ReceiptRejected2 => (FrameType::Receipt, rejected2.bytes().to_vec()),
                FixtureFrame::ReceiptAcknowledged0 => {
                    (FrameType::Receipt, acknowledged0.bytes().to_vec())
                }
                FixtureFrame::ReceiptStored0 => (FrameType::ReceiptStored, stored0.clone()),
                FixtureFrame::HelloOnlyVersion9 => {
                    (FrameType::Hello, client_offering(vec![9], vec![1], 256))
                }
                FixtureFrame::HelloOnlySuite2 => {
                    (FrameType::Hello, client_offering(vec![1], vec![2], 256))
                }
                FixtureFrame::HelloWideOffer => (
                    FrameType::Hello,
                    client_offering(vec![3, 1, 2], vec![9, 1], 1),
                ),
                FixtureFrame::HelloFromMe => (
                    FrameType::Hello,
                    hello(&me, Side::Client, &default, &me.certs()),
                ),
                FixtureFrame::HelloForeignKey => (
                    FrameType::Hello,
                    hello(&peer, Side::Client, &default, &me.certs()),
                ),
                FixtureFrame::HelloOnlyVersion1 => (
                    FrameType::Hello,
                    client_offering(vec![crate::PROTOCOL_VERSION], vec![1], 256),
                ),
                FixtureFrame::KeyUpdateFromPeer => {
                    (FrameType::KeyUpdate, key_update_payload(&peer_certs))
                }
            };
            frame::encode(ty, &payload)
        })
        .collect();

    // Last, so the random draws above (and every seed built from them) stay as they were.
    let bundles = build_bundles(&me, &peer, &mut rng)?;
    let revocations = build_revocations(&me, &peer)?;

    Some(Fixture {
        me_certs: me.certs(),
        peer: peer.identity.id(),
        me: Arc::new(me.identity),
        me_keys: me.keys,
        exporter,
        frames,
        outbound,
        our_async,
        our_receipts,
        bundles,
        revocations,
    })
}

/// The revocations of [`FixtureRevocation`], in its order. The invalid ones are signed by hand
/// (not through `Revocation::issue`, which refuses to make them) so they pass the signature
/// check and reach the rule they break. No randomness: they leave every other seed as it was.
fn build_revocations(me: &Party, peer: &Party) -> Option<Vec<Bytes>> {
    let officer = *peer.officer.credential().officer_key();
    let issue = |by: &Party, key, revoked, since, reason: &str| {
        Revocation::issue(
            &by.identity,
            RevokedKind::Officer,
            key,
            revoked,
            since,
            reason,
        )
        .ok()
        .map(|r| r.bytes().clone())
    };
    let hour = 60 * crate::time::MINUTE;
    let body = wire::RevocationBody {
        issuer: Bytes::copy_from_slice(peer.identity.id().as_bytes()),
        kind: wire::RevokedKeyKind::Officer as i32,
        key: Bytes::copy_from_slice(&officer),
        revoked_ms: EPOCH,
        compromised_since_ms: EPOCH - hour,
        reason: "stolen".into(),
    };
    let signed = |body: wire::RevocationBody| -> Bytes {
        let body = body.encode_to_vec();
        let signature = peer.identity.sign(Label::KeyRevocation, &[&body]);
        wire::KeyRevocation {
            body: body.into(),
            signature: Bytes::copy_from_slice(&signature),
        }
        .encode_to_vec()
        .into()
    };
    Some(vec![
        issue(peer, officer, EPOCH, Some(EPOCH - hour), "stolen")?,
        issue(
            peer,
            crypto::sha256(b"fuzz retired officer key"),
            EPOCH - DAY,
            None,
            "retired",
        )?,
        issue(
            peer,
            officer,
            u64::MAX,
            Some(u64::MAX),
            &"\u{dc}".repeat(MAX_REASON_LEN / 2),
        )?,
        issue(me, officer, EPOCH, Some(EPOCH - hour), "stolen")?,
        signed(wire::RevocationBody {
            compromised_since_ms: EPOCH + 1,
            ..body.clone()
        }),
        signed(wire::RevocationBody {
            reason: "r".repeat(MAX_REASON_LEN + 1),
            ..body.clone()
        }),
        signed(wire::RevocationBody { kind: 2, ..body }),
    ])
}

/// The bundles of [`FixtureBundle`], in its order. The invalid ones are signed by hand (not
/// through `PeerBundle::create`, which refuses to make them) so they pass the signature check
/// and reach the rule they break.
fn build_bundles(me: &Party, peer: &Party, rng: &mut TestRng) -> Option<Vec<Bytes>> {
    let spki = crypto::sha256(b"hotline fuzzing fixture peer TLS key");
    let (from, to) = (EPOCH - DAY, EPOCH + 365 * DAY);
    let valid = PeerBundle::create(
        &peer.identity,
        "Fuzz Peer",
        spki,
        &peer.certs(),
        &["192.0.2.7:4433".into()],
        EPOCH,
    )
    .ok()?;
    let mut four = peer.certs();
    for _ in 0..3 {
        four.push(EncryptionKeypair::generate(&peer.identity, from, to, rng).certificate);
    }
    let long_addresses: Vec<String> = (0..8)
        .map(|i| format!("{}.example:4433", char::from(b'a' + i)).repeat(19)[..255].to_owned())
        .collect();
    let wide = PeerBundle::create(
        &peer.identity,
        &"Ü".repeat(32),
        spki,
        &four,
        &long_addresses,
        EPOCH,
    )
    .ok()?;
    let body = |name: &str, keys: &[EncryptionKey], addresses: usize, versions: Vec<u32>| {
        wire::BundleBody {
            version: crate::PROTOCOL_VERSION,
            identity: Bytes::copy_from_slice(peer.identity.id().as_bytes()),
            name: name.to_owned(),
            tls_spki_sha256: Bytes::copy_from_slice(&spki),
            encryption_keys: keys.iter().map(EncryptionKey::to_wire).collect(),
            addresses: (0..addresses)
                .map(|i| format!("192.0.2.{i}:4433"))
                .collect(),
            created_ms: EPOCH,
            versions,
        }
        .encode_to_vec()
    };
    let signed = |body: Vec<u8>| -> Bytes {
        let signature = peer.identity.sign(Label::Bundle, &[&body]);
        wire::PeerBundle {
            body: body.into(),
            signature: Bytes::copy_from_slice(&signature),
        }
        .encode_to_vec()
        .into()
    };
    let v1 = vec![crate::PROTOCOL_VERSION];
    let mine = PeerBundle::create(
        &me.identity,
        "Fuzz Me",
        crypto::sha256(b"hotline fuzzing fixture my TLS key"),
        &me.certs(),
        &[],
        EPOCH,
    )
    .ok()?;
    Some(vec![
        valid.bytes().clone(),
        wide.bytes().clone(),
        signed(body("Fuzz Peer", &me.certs(), 1, v1.clone())),
        signed(body("Fuzz Peer", &peer.certs(), 1, vec![2])),
        signed(body(&"n".repeat(65), &peer.certs(), 1, v1.clone())),
        signed(body("Fuzz Peer", &peer.certs(), 9, v1)),
        mine.bytes().clone(),
    ])
}
