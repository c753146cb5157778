//! Entry points for fuzz targets (SPEC-independent shims live in `fuzz/`).
//!
//! Each `pub fn NAME(data: &[u8])` takes arbitrary bytes and must never panic; the only
//! panics are `assert!`s of invariants the code really guarantees, so a crash is a bug either
//! way. `cargo test` runs each one over the committed seed corpus in `fuzz/corpus/`
//! (`tests/fuzz_corpus.rs`), so stable CI exercises them every time.
//!
//! Keys, identities and valid wire objects come from one fixture built once (per process)
//! from [`TestRng`] with a fixed seed, so every run sees the same node "me" and the same
//! "peer", and a saved crash input reproduces exactly. [`fixture_frame`] hands out its valid
//! frames so the seed corpus can start from inputs that pass every check (a fuzzer does not
//! forge an Ed25519 signature on its own).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost::Message;

use crate::codes::{CloseCode, RejectReason};
use crate::content::{Draft, Precedence, Tlp};
use crate::crypto;
use crate::envelope::{Envelope, MAX_ENVELOPE_LEN, ParseError, SealParams};
use crate::frame::{
    self, Decoder, Frame, FrameError, FrameType, HEADER_LEN, MAX_CONTROL_LEN, StreamKind,
};
use crate::hello::{self, Offer, Side};
use crate::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use crate::officer::{OfficerKey, Role};
use crate::receipt::{self, Receipt, ReceiptBuild, ReceiptKind, Subject};
use crate::session::{Config, Event, ItemKey, LinkState, Session, StreamId, Transmit};
use crate::sim::{EPOCH, TestRng};
use crate::time::{DAY, UnixMillis};
use crate::wire;

// ----- frame decoder -------------------------------------------------------------------

/// Incremental frame decoding.
///
/// The first byte picks the stream kind (bit 0: control or message) and the chunk size
/// (bits 1–7: 0 feeds everything at once, `n` feeds `n` bytes at a time); the rest is the
/// stream. Checks that chunking never changes the result (the frames and the error equal
/// those of a one-shot reference parser), that every frame is within its type's limit and
/// belongs on the stream, that nothing comes out after an error, and that the decoder never
/// holds more than one capped frame's worth of bytes once drained.
pub fn frame_decoder(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let kind = if mode & 1 == 0 {
        StreamKind::Control
    } else {
        StreamKind::Message
    };
    let kind_max = match kind {
        StreamKind::Control => MAX_CONTROL_LEN,
        StreamKind::Message => MAX_ENVELOPE_LEN,
    };
    let chunk = match usize::from(mode >> 1) {
        0 => stream.len().max(1),
        n => n,
    };

    let mut d = Decoder::new(kind);
    let mut frames = Vec::new();
    let mut error = None;
    for piece in stream.chunks(chunk) {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(error.is_none(), "a frame came out after an error");
                    assert!(
                        f.payload.len() <= f.ty.max_len(),
                        "frame over its type's limit"
                    );
                    assert_eq!(
                        f.ty.is_control(),
                        kind == StreamKind::Control,
                        "frame on the wrong stream"
                    );
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(error.is_none(), "a second error after the first");
                    error = Some(e);
                    break;
                }
            }
        }
        if error.is_some() {
            assert_eq!(d.buffered(), 0, "a failed decoder still buffers input");
        } else {
            assert!(
                d.buffered() < kind_max,
                "decoder buffers more than one capped frame"
            );
        }
    }
    let finished = d.finish();
    let outcome = match error {
        Some(e) => {
            assert_eq!(
                finished,
                Ok(()),
                "finish after an error reports another one"
            );
            Err(e)
        }
        None => finished,
    };
    assert_eq!(d.next_frame(), Ok(None), "a frame came out after finish");
    let (want_frames, want_outcome) = reference_decode(kind, stream);
    assert_eq!(frames, want_frames, "chunking changed the frames");
    assert_eq!(outcome, want_outcome, "chunking changed the outcome");
}

/// A one-shot parser of a whole stream, written straight from SPEC.md §5.1, to compare the
/// incremental decoder against.
fn reference_decode(kind: StreamKind, mut rest: &[u8]) -> (Vec<Frame>, Result<(), FrameError>) {
    let mut frames = Vec::new();
    loop {
        let Some((header, body)) = rest.split_first_chunk::<HEADER_LEN>() else {
            let end = if rest.is_empty() {
                Ok(())
            } else {
                Err(FrameError::Truncated)
            };
            return (frames, end);
        };
        let Some(ty) = FrameType::from_byte(header[0]) else {
            return (frames, Err(FrameError::UnknownType(header[0])));
        };
        if ty.is_control() != (kind == StreamKind::Control) {
            return (frames, Err(FrameError::WrongStream(ty)));
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > ty.max_len() {
            return (
                frames,
                Err(FrameError::TooLarge {
                    ty,
                    len: len as u64,
                    max: ty.max_len(),
                }),
            );
        }
        if body.len() < len {
            return (frames, Err(FrameError::Truncated));
        }
        let (payload, tail) = body.split_at(len);
        frames.push(Frame {
            ty,
            payload: Bytes::copy_from_slice(payload),
        });
        rest = tail;
    }
}

// ----- signed objects -----------------------------------------------------------------

/// Envelope parsing and opening (SPEC.md §7.6), as the fixed node "me" on the link to the
/// fixed peer, at the fixture's time.
///
/// Checks that a parsed envelope keeps its exact bytes and digest, and that an envelope
/// that opens was sent by the peer, to me, with content signed by one of the peer's officers.
pub fn envelope_open(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    let envelope = match Envelope::parse(Bytes::copy_from_slice(data)) {
        Ok(e) => e,
        Err(ParseError::Unreadable | ParseError::Malformed { .. }) => return,
    };
    assert_eq!(
        envelope.bytes().as_ref(),
        data,
        "parse changed the envelope bytes"
    );
    assert_eq!(
        envelope.sha256(),
        &crypto::sha256(data),
        "digest is not of the bytes received"
    );
    let me = fx.me.id();
    if let Ok(content) = envelope.open(&me, &fx.peer, &fx.me_keys, EPOCH) {
        assert_eq!(
            envelope.header().sender,
            fx.peer,
            "opened an envelope not from the peer"
        );
        assert_eq!(
            envelope.header().recipient,
            me,
            "opened an envelope not for me"
        );
        assert_eq!(
            content.officer.node(),
            fx.peer,
            "officer credential not issued by the sender"
        );
    }
}

/// Receipt verification (SPEC.md §8.4) of receipts signed by the fixed peer, then matching
/// against the envelopes the fixture sent it. Also parses the input as a ReceiptStored.
///
/// Checks that a verified receipt names the expected signer and keeps its exact bytes, that
/// an officer acknowledgement was issued by the receiver, and that a ReceiptStored that parses
/// is in canonical form.
pub fn receipt_verify(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    if let Some(sha) = receipt::parse_stored_ack(data) {
        assert_eq!(
            receipt::stored_ack(&sha),
            data,
            "a non-canonical ReceiptStored parsed"
        );
    }
    let Ok(r) = Receipt::verify(data, &fx.peer) else {
        return;
    };
    assert_eq!(
        r.receiver(),
        fx.peer,
        "receipt signer is not the expected receiver"
    );
    assert_eq!(r.bytes().as_ref(), data, "verify changed the receipt bytes");
    if let ReceiptKind::Acknowledged { officer, .. } = r.kind() {
        assert_eq!(
            officer.node(),
            fx.peer,
            "acknowledging officer not issued by the receiver"
        );
    }
    for e in &fx.outbound {
        if r.answers(e) {
            assert_eq!(r.message_id(), e.message_id());
        }
    }
}

/// Hello verification (SPEC.md §6.3) of a Hello from the fixed peer as QUIC client, on a
/// connection with the fixed exporter value, against the default offer.
///
/// Checks that a Hello that verifies names the pinned peer, negotiates what we offered, and
/// carries only encryption keys owned by the peer.
pub fn hello_verify(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    let ours = Offer::default();
    if let Ok(h) = hello::verify(data, &fx.peer, Side::Client, &fx.exporter, &ours) {
        assert_eq!(h.identity, fx.peer, "Hello verified for another identity");
        assert!(ours.versions.contains(&h.version) && h.offer.versions.contains(&h.version));
        assert!(ours.suites.contains(&h.suite) && h.offer.suites.contains(&h.suite));
        assert!(
            h.encryption_keys.iter().all(|k| k.owner() == fx.peer),
            "a key not owned by the peer"
        );
    }
}

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
    /// The peer's Hello as QUIC client offering only version 2 (no version in common).
    HelloOnlyVersion2,
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
}

impl FixtureFrame {
    /// Every fixture frame, in byte order.
    pub const ALL: [FixtureFrame; 23] = [
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
        FixtureFrame::HelloOnlyVersion2,
        FixtureFrame::HelloOnlySuite2,
        FixtureFrame::HelloWideOffer,
        FixtureFrame::HelloFromMe,
        FixtureFrame::HelloForeignKey,
    ];

    fn from_byte(b: u8) -> Self {
        Self::ALL[usize::from(b) % Self::ALL.len()]
    }
}

/// The encoded fixture frame (header and payload), or `None` if the fixture could not be
/// built (a test asserts it always can).
pub fn fixture_frame(f: FixtureFrame) -> Option<Bytes> {
    fixture()?.frames.get(f as usize).cloned()
}

struct Fixture {
    me: Arc<IdentityKey>,
    me_certs: Vec<EncryptionKey>,
    me_keys: Vec<EncryptionKeypair>,
    peer: NodeId,
    exporter: [u8; crate::EXPORTER_LEN],
    /// Indexed by `FixtureFrame as usize`.
    frames: Vec<Bytes>,
    /// Envelopes from me to the peer, sequences 1, 2, 3.
    outbound: Vec<Envelope>,
    /// Asynchronous ACKNOWLEDGED receipts from me (for inbound envelopes 1 and 2).
    our_async: Vec<Receipt>,
    /// Receipts from me for inbound envelopes, to answer with on any stream.
    our_receipts: Vec<Receipt>,
}

static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();

fn fixture() -> Option<&'static Fixture> {
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
                FixtureFrame::HelloOnlyVersion2 => {
                    (FrameType::Hello, client_offering(vec![2], vec![1], 256))
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
            };
            frame::encode(ty, &payload)
        })
        .collect();

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
    })
}

// ----- session ------------------------------------------------------------------------

/// A stream named in a session script, encoded in one byte: the low two bits pick the kind,
/// the high six bits (0..=63) the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSel {
    /// The control stream.
    Control,
    /// A stream the peer opened, `StreamId::In(n)`.
    In(u8),
    /// `StreamId::Out(n)` by number, whether or not the session opened it.
    Out(u8),
    /// The `k`-th most recent stream the session opened (0 = the latest), or `Out(0)` if it
    /// opened none: how a script answers on the session's own streams.
    RecentOut(u8),
}

impl StreamSel {
    fn byte(self) -> u8 {
        match self {
            StreamSel::Control => 0,
            StreamSel::In(n) => 1 | (n << 2),
            StreamSel::Out(n) => 2 | (n << 2),
            StreamSel::RecentOut(k) => 3 | (k << 2),
        }
    }

    fn from_byte(b: u8) -> Self {
        match b & 3 {
            0 => StreamSel::Control,
            1 => StreamSel::In(b >> 2),
            2 => StreamSel::Out(b >> 2),
            _ => StreamSel::RecentOut(b >> 2),
        }
    }
}

/// One operation of a [`session`] script. Scripts are bytes: an opcode byte, then the
/// operation's argument bytes; a script ends where the bytes run out. Indices wrap around
/// whatever list they index, so every byte string is a valid script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOp {
    /// `handle_connected` as `side`, with the fixture's exporter or (if `!exporter_ok`)
    /// another one, so the peer's Hello fails channel binding.
    Connect {
        /// Our end of the connection.
        side: Side,
        /// Whether the exporter matches the fixture's Hellos.
        exporter_ok: bool,
    },
    /// `handle_data` with raw bytes (at most 255).
    Data {
        /// Where.
        stream: StreamSel,
        /// The peer finished the stream.
        fin: bool,
        /// What.
        data: Vec<u8>,
    },
    /// `handle_data` with a fixture frame, in two calls split at `split/256` of its length
    /// (0: one call).
    Frame {
        /// Where.
        stream: StreamSel,
        /// Which frame.
        frame: FixtureFrame,
        /// Where to split it.
        split: u8,
        /// The peer finished the stream after it.
        fin: bool,
    },
    /// `handle_data` with a fixture frame whose byte `at` (modulo its length) is XORed with
    /// `xor`, then fin.
    Mutate {
        /// Where.
        stream: StreamSel,
        /// Which frame.
        frame: FixtureFrame,
        /// Which byte.
        at: u16,
        /// The flip.
        xor: u8,
    },
    /// `handle_stream_reset` with `code`.
    Reset {
        /// Which stream.
        stream: StreamSel,
        /// The application error code.
        code: u8,
    },
    /// Time moves on by `4 * ms` milliseconds; then `handle_timeout`.
    Advance {
        /// A quarter of the step, in ms.
        ms: u16,
    },
    /// Time jumps to the next deadline from `poll_timeout` (if later); then `handle_timeout`.
    NextTimer,
    /// `handle_disconnected`.
    Disconnect,
    /// `send_envelope` of outbound fixture envelope `i` (sequences 1, 2, 3).
    SendEnvelope(u8),
    /// `send_receipt` of our asynchronous fixture receipt `i`.
    SendReceipt(u8),
    /// Answers the `event`-th pending event (oldest first) the way `how` says; see
    /// [`session`].
    Answer {
        /// Which pending event.
        event: u8,
        /// How to answer it.
        how: u8,
    },
    /// `refuse`s the stream of the `event`-th pending event with close code `code`.
    Refuse {
        /// Which pending event.
        event: u8,
        /// Index into the close-code registry.
        code: u8,
    },
    /// `close` with close code `code` (index into the registry).
    Close {
        /// Index into the close-code registry.
        code: u8,
    },
    /// `receipt_verified` for outbound envelope `envelope`, whether or not a receipt came.
    ReceiptVerified {
        /// Which outbound envelope.
        envelope: u8,
        /// The verdict.
        valid: bool,
    },
}

const OP_COUNT: u8 = 14;

impl SessionOp {
    /// Appends this operation's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SessionOp::Connect { side, exporter_ok } => {
                out.extend([
                    0,
                    u8::from(*side == Side::Server) | (u8::from(!exporter_ok) << 1),
                ]);
            }
            SessionOp::Data { stream, fin, data } => {
                let data = &data[..data.len().min(255)];
                out.extend([1, stream.byte(), u8::from(*fin), data.len() as u8]);
                out.extend_from_slice(data);
            }
            SessionOp::Frame {
                stream,
                frame,
                split,
                fin,
            } => {
                out.extend([2, stream.byte(), *frame as u8, *split, u8::from(*fin)]);
            }
            SessionOp::Mutate {
                stream,
                frame,
                at,
                xor,
            } => {
                let [hi, lo] = at.to_be_bytes();
                out.extend([3, stream.byte(), *frame as u8, hi, lo, *xor]);
            }
            SessionOp::Reset { stream, code } => out.extend([4, stream.byte(), *code]),
            SessionOp::Advance { ms } => {
                let [hi, lo] = ms.to_be_bytes();
                out.extend([5, hi, lo]);
            }
            SessionOp::NextTimer => out.push(6),
            SessionOp::Disconnect => out.push(7),
            SessionOp::SendEnvelope(i) => out.extend([8, *i]),
            SessionOp::SendReceipt(i) => out.extend([9, *i]),
            SessionOp::Answer { event, how } => out.extend([10, *event, *how]),
            SessionOp::Refuse { event, code } => out.extend([11, *event, *code]),
            SessionOp::Close { code } => out.extend([12, *code]),
            SessionOp::ReceiptVerified { envelope, valid } => {
                out.extend([13, *envelope, u8::from(*valid)])
            }
        }
    }

    /// Reads one operation from the front of `data`; `None` when the script is over.
    fn decode(data: &mut &[u8]) -> Option<SessionOp> {
        let mut r = Reader(data);
        Some(match r.byte()? % OP_COUNT {
            0 => {
                let flags = r.byte()?;
                SessionOp::Connect {
                    side: if flags & 1 == 0 {
                        Side::Client
                    } else {
                        Side::Server
                    },
                    exporter_ok: flags & 2 == 0,
                }
            }
            1 => {
                let stream = StreamSel::from_byte(r.byte()?);
                let fin = r.byte()? & 1 == 1;
                let len = r.byte()?;
                SessionOp::Data {
                    stream,
                    fin,
                    data: r.take(usize::from(len)).to_vec(),
                }
            }
            2 => SessionOp::Frame {
                stream: StreamSel::from_byte(r.byte()?),
                frame: FixtureFrame::from_byte(r.byte()?),
                split: r.byte()?,
                fin: r.byte()? & 1 == 1,
            },
            3 => SessionOp::Mutate {
                stream: StreamSel::from_byte(r.byte()?),
                frame: FixtureFrame::from_byte(r.byte()?),
                at: u16::from_be_bytes([r.byte()?, r.byte()?]),
                xor: r.byte()?,
            },
            4 => SessionOp::Reset {
                stream: StreamSel::from_byte(r.byte()?),
                code: r.byte()?,
            },
            5 => SessionOp::Advance {
                ms: u16::from_be_bytes([r.byte()?, r.byte()?]),
            },
            6 => SessionOp::NextTimer,
            7 => SessionOp::Disconnect,
            8 => SessionOp::SendEnvelope(r.byte()?),
            9 => SessionOp::SendReceipt(r.byte()?),
            10 => SessionOp::Answer {
                event: r.byte()?,
                how: r.byte()?,
            },
            11 => SessionOp::Refuse {
                event: r.byte()?,
                code: r.byte()?,
            },
            12 => SessionOp::Close { code: r.byte()? },
            _ => SessionOp::ReceiptVerified {
                envelope: r.byte()?,
                valid: r.byte()? & 1 == 1,
            },
        })
    }
}

/// Reads a script from the front of a slice, advancing it.
struct Reader<'a, 'b>(&'b mut &'a [u8]);

impl<'a> Reader<'a, '_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        *self.0 = rest;
        Some(b)
    }

    /// Up to `n` bytes (fewer if the script ends).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        *self.0 = rest;
        head
    }
}

/// Encodes a session script.
pub fn session_script(ops: &[SessionOp]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        op.encode(&mut out);
    }
    out
}

/// How far a [`session`] script got, for tests that check the seed scripts still reach deep
/// states.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTrace {
    /// Operations run.
    pub ops: usize,
    /// `LinkUp` events.
    pub link_ups: usize,
    /// `LinkDown` events.
    pub link_downs: usize,
    /// Inbound envelopes that opened and were answered DELIVERED.
    pub delivered_in: usize,
    /// `Receipt` events whose receipt verified and answered our envelope.
    pub receipts_ok: usize,
    /// `ReceiptStored` events.
    pub receipts_stored: usize,
    /// `AsyncReceipt` events.
    pub async_receipts: usize,
    /// `MalformedEnvelope` events.
    pub malformed: usize,
    /// Envelope frames received and answered from the dedup window (a `Receipt` sent on an
    /// `In` stream without an `Envelope` event for it).
    pub replays_answered: usize,
    /// `Rtt` events.
    pub rtts: usize,
    /// `GapDetected` events.
    pub gaps: usize,
    /// `GapClosed` events.
    pub gaps_closed: usize,
    /// `StreamError` events.
    pub stream_errors: usize,
    /// `Retransmit` events.
    pub retransmits: usize,
}

/// An event that waits for the application's answer.
enum Pending {
    Envelope {
        stream: StreamId,
        envelope: Envelope,
    },
    Malformed {
        stream: StreamId,
        subject: Subject,
        detail: &'static str,
    },
    Receipt {
        envelope: Envelope,
        receipt: Bytes,
    },
    Async {
        stream: StreamId,
        receipt: Bytes,
    },
}

/// Most pending events the script driver remembers (the oldest is dropped).
const MAX_PENDING: usize = 64;

/// The session config under test: SPEC.md timers, but a small stream credit and dedup window
/// so the fuzzer reaches flow control and eviction with few operations.
fn fuzz_config() -> Config {
    Config {
        max_outgoing: 2,
        dedup_capacity: 4,
        ..Config::default()
    }
}

/// The link state machine ([`Session`]) driven by a script of [`SessionOp`]s, as the fixed
/// node "me" linked to the fixed peer, starting at the fixture's time. Time only moves
/// forward.
///
/// After every operation the driver drains `poll_transmit`, reads `poll_timeout` and drains
/// `poll_event`, remembering the events that wait for an answer. [`SessionOp::Answer`] answers
/// one, by `how`:
/// - an inbound envelope: `how % 4` = 0 sign DELIVERED, 1 sign REJECTED (reason from
///   `how / 4`), 2 a prebuilt receipt of the fixture (from `how / 4`, usually for another
///   message), 3 do what a node does (open it, then DELIVERED or REJECTED with the reason);
/// - a malformed envelope: REJECTED (MALFORMED), or with `how % 4 == 2` a prebuilt receipt;
/// - a receipt for our envelope: `receipt_verified` with `how % 3` = 0 the real verdict,
///   1 invalid, 2 valid;
/// - a peer's asynchronous receipt: `how % 3` = 0 verify and answer `respond_stored` or
///   `refuse`, 1 `respond_stored` unverified, 2 `refuse` with UNKNOWN_MESSAGE.
///
/// Pending events survive disconnects, so answers may arrive late, on streams of a connection
/// that is gone, as a node's worker threads may deliver them.
///
/// Invariants asserted: every transmitted chunk is exactly one well-formed frame of a type
/// that belongs on its stream (envelopes only ours, fin exactly where the stream ends); after
/// `handle_timeout(now)` no timer is at or before `now`; items in flight never exceed the
/// pending items, the configured stream credit, nor what the peer's Hello accepts; reported
/// gaps are sorted, disjoint, after `received_through` and within what the peer claims; an
/// up link has the pinned peer's Hello; receipts, ReceiptStored and retransmit events only
/// ever name items we queued.
pub fn session(data: &[u8]) {
    let _ = session_run(data);
}

/// Runs a [`session`] script and reports how far it got.
pub fn session_run(data: &[u8]) -> SessionTrace {
    let Some(fx) = fixture() else {
        return SessionTrace::default();
    };
    let mut d = Driver {
        fx,
        config: fuzz_config(),
        s: Session::new(fuzz_config(), fx.me.clone(), fx.me_certs.clone(), fx.peer),
        now: EPOCH,
        out_streams: Vec::new(),
        pending: Vec::new(),
        answered: Vec::new(),
        trace: SessionTrace::default(),
    };
    let mut script = data;
    while let Some(op) = SessionOp::decode(&mut script) {
        d.run(op);
        d.trace.ops += 1;
        d.drain();
    }
    d.trace
}

struct Driver {
    fx: &'static Fixture,
    config: Config,
    s: Session,
    now: UnixMillis,
    /// Out streams the session opened, oldest first.
    out_streams: Vec<u64>,
    pending: Vec<Pending>,
    /// Streams the driver answered during the current operation.
    answered: Vec<StreamId>,
    trace: SessionTrace,
}

impl Driver {
    fn stream(&self, sel: StreamSel) -> StreamId {
        match sel {
            StreamSel::Control => StreamId::Control,
            StreamSel::In(n) => StreamId::In(u64::from(n)),
            StreamSel::Out(n) => StreamId::Out(u64::from(n)),
            StreamSel::RecentOut(k) => {
                let k = usize::from(k);
                let n = self
                    .out_streams
                    .iter()
                    .rev()
                    .nth(k % self.out_streams.len().max(1));
                StreamId::Out(n.copied().unwrap_or(0))
            }
        }
    }

    fn frame(&self, f: FixtureFrame) -> Bytes {
        self.fx.frames.get(f as usize).cloned().unwrap_or_default()
    }

    fn run(&mut self, op: SessionOp) {
        let now = self.now;
        match op {
            SessionOp::Connect { side, exporter_ok } => {
                let exporter = if exporter_ok {
                    self.fx.exporter
                } else {
                    crypto::sha256(&self.fx.exporter)
                };
                self.s.handle_connected(now, side, exporter);
            }
            SessionOp::Data { stream, fin, data } => {
                self.s.handle_data(now, self.stream(stream), &data, fin)
            }
            SessionOp::Frame {
                stream,
                frame,
                split,
                fin,
            } => {
                let stream = self.stream(stream);
                let bytes = self.frame(frame);
                let at = bytes.len() * usize::from(split) / 256;
                if at > 0 {
                    self.s.handle_data(now, stream, &bytes[..at], false);
                }
                self.s.handle_data(now, stream, &bytes[at..], fin);
            }
            SessionOp::Mutate {
                stream,
                frame,
                at,
                xor,
            } => {
                let stream = self.stream(stream);
                let mut bytes = self.frame(frame).to_vec();
                let len = bytes.len();
                if let Some(b) = bytes.get_mut(usize::from(at) % len.max(1)) {
                    *b ^= xor;
                }
                self.s.handle_data(now, stream, &bytes, true);
            }
            SessionOp::Reset { stream, code } => {
                self.s
                    .handle_stream_reset(now, self.stream(stream), u64::from(code))
            }
            SessionOp::Advance { ms } => {
                self.now += 4 * u64::from(ms);
                self.timeout();
            }
            SessionOp::NextTimer => {
                if let Some(t) = self.s.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.timeout();
            }
            SessionOp::Disconnect => {
                self.s.handle_disconnected(now);
            }
            SessionOp::SendEnvelope(i) => {
                if let Some(e) = pick(&self.fx.outbound, i) {
                    self.s.send_envelope(now, e.clone());
                }
            }
            SessionOp::SendReceipt(i) => {
                if let Some(r) = pick(&self.fx.our_async, i) {
                    self.s.send_receipt(now, r.clone());
                }
            }
            SessionOp::Answer { event, how } => {
                if !self.pending.is_empty() {
                    let p = self.pending.remove(usize::from(event) % self.pending.len());
                    self.answer(p, how);
                }
            }
            SessionOp::Refuse { event, code } => {
                if !self.pending.is_empty() {
                    let code = pick(CloseCode::ALL, code)
                        .copied()
                        .unwrap_or(CloseCode::InternalError);
                    match self.pending.remove(usize::from(event) % self.pending.len()) {
                        Pending::Envelope { stream, .. }
                        | Pending::Malformed { stream, .. }
                        | Pending::Async { stream, .. } => self.s.refuse(stream, code),
                        Pending::Receipt { envelope, .. } => {
                            self.s.receipt_verified(now, envelope.message_id(), false)
                        }
                    }
                }
            }
            SessionOp::Close { code } => {
                let code = pick(CloseCode::ALL, code)
                    .copied()
                    .unwrap_or(CloseCode::Shutdown);
                self.s.close(now, code, "fuzz close");
            }
            SessionOp::ReceiptVerified { envelope, valid } => {
                if let Some(e) = pick(&self.fx.outbound, envelope) {
                    self.s.receipt_verified(now, e.message_id(), valid);
                }
            }
        }
    }

    fn timeout(&mut self) {
        let now = self.now;
        self.s.handle_timeout(now);
        if let Some(t) = self.s.poll_timeout() {
            assert!(
                t > now,
                "timer at {t} still due after handle_timeout({now})"
            );
        }
    }

    fn answer(&mut self, p: Pending, how: u8) {
        let fx = self.fx;
        let now = self.now;
        let me = &fx.me;
        let sign =
            |subject: &Subject, kind: ReceiptBuild<'_>| Receipt::sign(me, subject, kind, now).ok();
        match p {
            Pending::Envelope { stream, envelope } => {
                let subject = Subject::from(&envelope);
                let receipt = match how % 4 {
                    0 => sign(&subject, ReceiptBuild::Delivered),
                    1 => {
                        let reason = pick(RejectReason::ALL, how / 4)
                            .copied()
                            .unwrap_or(RejectReason::Policy);
                        sign(&subject, ReceiptBuild::Rejected(reason, "fuzz"))
                    }
                    2 => pick(&fx.our_receipts, how / 4).cloned(),
                    _ => match envelope.open(&me.id(), &fx.peer, &fx.me_keys, now) {
                        Ok(_) => {
                            let r = sign(&subject, ReceiptBuild::Delivered);
                            self.trace.delivered_in += usize::from(r.is_some());
                            r
                        }
                        Err(rej) => sign(&subject, ReceiptBuild::Rejected(rej.reason, rej.detail)),
                    },
                };
                if let Some(r) = receipt {
                    self.answered.push(stream);
                    self.s.respond(now, stream, &r);
                }
            }
            Pending::Malformed {
                stream,
                subject,
                detail,
            } => {
                let receipt = match how % 4 {
                    2 => pick(&fx.our_receipts, how / 4).cloned(),
                    _ => sign(
                        &subject,
                        ReceiptBuild::Rejected(RejectReason::Malformed, detail),
                    ),
                };
                if let Some(r) = receipt {
                    self.answered.push(stream);
                    self.s.respond(now, stream, &r);
                }
            }
            Pending::Receipt { envelope, receipt } => {
                let valid = match how % 3 {
                    0 => {
                        let ok =
                            Receipt::verify(&receipt, &fx.peer).is_ok_and(|r| r.answers(&envelope));
                        self.trace.receipts_ok += usize::from(ok);
                        ok
                    }
                    1 => false,
                    _ => true,
                };
                self.s.receipt_verified(now, envelope.message_id(), valid);
            }
            Pending::Async { stream, receipt } => match how % 3 {
                0 => match Receipt::verify(&receipt, &fx.peer) {
                    Ok(r) if fx.outbound.iter().any(|e| r.answers(e)) => {
                        self.s.respond_stored(stream, r.sha256())
                    }
                    Ok(_) => self.s.refuse(stream, CloseCode::UnknownMessage),
                    Err(_) => self.s.refuse(stream, CloseCode::BadReceipt),
                },
                1 => self.s.respond_stored(stream, &crypto::sha256(&receipt)),
                _ => self.s.refuse(stream, CloseCode::UnknownMessage),
            },
        }
    }

    /// Drains the outputs in the documented order and checks the invariants.
    fn drain(&mut self) {
        while let Some(t) = self.s.poll_transmit() {
            self.check_transmit(&t);
        }
        let _ = self.s.poll_timeout();
        while let Some(ev) = self.s.poll_event() {
            self.check_event(ev);
        }
        self.answered.clear();
        let st = self.s.status();
        assert!(
            st.in_flight <= st.pending,
            "more items in flight than pending"
        );
        assert!(
            st.in_flight <= self.config.max_outgoing as usize,
            "stream credit exceeded"
        );
        assert!(st.last_sent <= 3, "claims a sequence we never sent");
        assert!(st.gaps.len() <= 16, "more gap ranges than reported at once");
        let mut floor = st.received_through;
        for &(a, b) in &st.gaps {
            assert!(
                floor < a && a <= b,
                "gaps {:?} overlap, unsorted or received",
                st.gaps
            );
            assert!(
                b <= st.peer_last_sent,
                "a gap past what the peer claims to have sent"
            );
            floor = b;
        }
        if let Some(h) = self.s.peer_hello() {
            let credit = h.offer.max_inflight.max(1) as usize;
            assert!(st.in_flight <= credit, "more streams than the peer accepts");
        }
        if self.s.state() == LinkState::Up {
            let h = self.s.peer_hello();
            assert!(
                h.is_some_and(|h| h.identity == self.fx.peer),
                "link up without the pinned peer's Hello"
            );
        }
    }

    fn check_transmit(&mut self, t: &Transmit) {
        let Transmit::Data { stream, data, fin } = t else {
            return;
        };
        let kind = if *stream == StreamId::Control {
            StreamKind::Control
        } else {
            StreamKind::Message
        };
        let mut dec = Decoder::new(kind);
        dec.push(data);
        let f = match dec.next_frame() {
            Ok(Some(f)) => f,
            other => panic!("transmitted bytes on {stream:?} are not a frame: {other:?}"),
        };
        assert_eq!(
            dec.buffered(),
            0,
            "transmitted more than one frame at once on {stream:?}"
        );
        match stream {
            StreamId::Control => {
                assert!(f.ty.is_control());
                assert_eq!(
                    *fin,
                    f.ty == FrameType::Close,
                    "control stream fin without Close, or Close without fin"
                );
            }
            StreamId::Out(n) => {
                assert!(
                    matches!(f.ty, FrameType::Envelope | FrameType::Receipt),
                    "{:?} opened a stream",
                    f.ty
                );
                assert!(*fin, "message stream left open");
                if f.ty == FrameType::Envelope {
                    assert!(
                        self.fx.outbound.iter().any(|e| e.bytes() == &f.payload),
                        "sent an envelope never queued"
                    );
                }
                if !self.out_streams.contains(n) {
                    self.out_streams.push(*n);
                }
            }
            StreamId::In(_) => {
                assert!(
                    matches!(f.ty, FrameType::Receipt | FrameType::ReceiptStored),
                    "{:?} as an answer",
                    f.ty
                );
                assert!(*fin, "answer stream left open");
                if f.ty == FrameType::Receipt && !self.answered.contains(stream) {
                    self.trace.replays_answered += 1;
                }
            }
        }
    }

    fn check_event(&mut self, ev: Event) {
        let fx = self.fx;
        match ev {
            Event::LinkUp(h) => {
                assert_eq!(h.identity, fx.peer, "link up with someone else");
                self.trace.link_ups += 1;
            }
            Event::LinkDown { .. } => self.trace.link_downs += 1,
            Event::Envelope { stream, envelope } => {
                self.remember(Pending::Envelope { stream, envelope })
            }
            Event::MalformedEnvelope {
                stream,
                subject,
                detail,
            } => {
                self.trace.malformed += 1;
                self.remember(Pending::Malformed {
                    stream,
                    subject,
                    detail,
                });
            }
            Event::Receipt { envelope, receipt } => {
                assert!(
                    fx.outbound.contains(&envelope),
                    "a receipt event for an envelope never queued"
                );
                self.remember(Pending::Receipt { envelope, receipt });
            }
            Event::AsyncReceipt { stream, receipt } => {
                self.trace.async_receipts += 1;
                self.remember(Pending::Async { stream, receipt });
            }
            Event::ReceiptStored { receipt_sha256 } => {
                assert!(
                    fx.our_async.iter().any(|r| r.sha256() == &receipt_sha256),
                    "ReceiptStored for a receipt never queued"
                );
                self.trace.receipts_stored += 1;
            }
            Event::Rtt(_) => self.trace.rtts += 1,
            Event::GapDetected { .. } => self.trace.gaps += 1,
            Event::GapClosed => self.trace.gaps_closed += 1,
            Event::StreamError { .. } => self.trace.stream_errors += 1,
            Event::Retransmit { key } => {
                let known = match key {
                    ItemKey::Envelope(id) => fx.outbound.iter().any(|e| e.message_id() == &id),
                    ItemKey::Receipt(sha) => fx.our_async.iter().any(|r| r.sha256() == &sha),
                };
                assert!(known, "retransmit of an item never queued");
                self.trace.retransmits += 1;
            }
        }
    }

    fn remember(&mut self, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(p);
    }
}

/// `list[i % len]`, or `None` for an empty list.
fn pick<T>(list: &[T], i: u8) -> Option<&T> {
    list.get(usize::from(i) % list.len().max(1))
}
