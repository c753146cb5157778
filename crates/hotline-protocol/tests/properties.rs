//! Property tests for every codec and decoder of the protocol crate: frames, envelopes,
//! receipts, Hello, KeyUpdate, officer signatures, peer bundles and the node id text form.
//!
//! For each: the round trip, the encoded length where it is defined, and no panic on
//! arbitrary, bit-flipped or truncated input; for the signed objects, that no tampered
//! encoding is ever accepted. Case counts are kept moderate because the crypto is slow in a
//! debug build; the checks that are cheap enough are exhaustive instead (every byte flipped,
//! every truncation).

use std::sync::LazyLock;

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::content::{self, Draft, Precedence, Tlp};
use hotline_protocol::envelope::{Envelope, MessageId, SealParams};
use hotline_protocol::frame::{
    self, Decoder, Frame, FrameError, FrameType, HEADER_LEN, StreamKind,
};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::identity::{
    EncryptionKey, EncryptionKeypair, IdentityKey, NodeId, NodeIdParseError,
};
use hotline_protocol::officer::{Binding, Credential, Marking, OfficerKey, Role};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, ReceiptError, ReceiptKind, Subject};
use hotline_protocol::session::{MAX_ANNOUNCED_KEYS, key_update_payload, verify_key_update};
use hotline_protocol::sim::{EPOCH, TestRng};
use hotline_protocol::time::DAY;
use hotline_protocol::{EXPORTER_LEN, bundle::PeerBundle, crypto};
use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Cases for properties that sign or verify (slow in debug builds).
const CRYPTO_CASES: u32 = 64;

// ---------------------------------------------------------------------------------------------
// Fixture: two nodes built the way `sim::Pair::new` builds them, made once.

struct Node {
    identity: IdentityKey,
    keys: Vec<EncryptionKeypair>,
    officer: OfficerKey,
}

impl Node {
    fn new(rng: &mut TestRng, name: &str) -> Self {
        let identity = IdentityKey::generate(rng);
        let keys = vec![EncryptionKeypair::generate(
            &identity,
            EPOCH - DAY,
            EPOCH + 365 * DAY,
            rng,
        )];
        let officer = OfficerKey::generate(
            &identity,
            name,
            Role::Officer,
            EPOCH - DAY,
            EPOCH + 365 * DAY,
            rng,
        )
        .expect("officer credential");
        Node {
            identity,
            keys,
            officer,
        }
    }

    fn id(&self) -> NodeId {
        self.identity.id()
    }

    fn certs(&self) -> Vec<EncryptionKey> {
        self.keys.iter().map(|k| k.certificate.clone()).collect()
    }
}

struct Fixture {
    a: Node,
    b: Node,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let mut rng = TestRng::new(0x5eed);
    let a = Node::new(&mut rng, "Alice Officer");
    let b = Node::new(&mut rng, "Bob Officer");
    Fixture { a, b }
});

/// What a sender decides about one message: everything but the keys.
#[derive(Clone, Debug)]
struct Msg {
    draft: Draft,
    message_id: MessageId,
    sequence: u64,
    created: u64,
    precedence: Precedence,
    tlp: Tlp,
    seed: u64,
}

fn tlps() -> Vec<Tlp> {
    vec![
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ]
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    let draft = (
        "[ -~]{1,80}",
        ".{0,300}",
        "[a-z]{0,8}",
        any::<Option<[u8; 16]>>(),
        any::<Option<[u8; 16]>>(),
    )
        .prop_map(|(subject, text, language, reply_to, thread_id)| Draft {
            subject,
            text,
            language,
            incident: None,
            reply_to,
            thread_id,
        });
    (
        draft,
        any::<MessageId>(),
        1..u64::MAX,
        0..300 * DAY,
        select(Precedence::ALL.to_vec()),
        select(tlps()),
        any::<u64>(),
    )
        .prop_map(
            |(draft, message_id, sequence, offset, precedence, tlp, seed)| Msg {
                draft,
                message_id,
                sequence,
                created: EPOCH + offset,
                precedence,
                tlp,
                seed,
            },
        )
}

/// Seals `m` from A to B.
fn seal(m: &Msg) -> Envelope {
    let f = &*FIXTURE;
    let content = m
        .draft
        .sign(&m.message_id, &f.b.id(), &f.a.officer, m.created)
        .expect("sign content");
    let certs = f.b.certs();
    let key = EncryptionKey::select(&certs, m.created).expect("B has a valid key");
    let params = SealParams {
        recipient: f.b.id(),
        recipient_key: key,
        message_id: m.message_id,
        sequence: m.sequence,
        created: m.created,
        precedence: m.precedence,
        tlp: m.tlp,
    };
    Envelope::seal(&f.a.identity, &params, &content, &mut TestRng::new(m.seed)).expect("seal")
}

/// B opens an envelope that claims to come from A.
fn open_at_b(e: &Envelope) -> bool {
    let f = &*FIXTURE;
    e.open(&f.b.id(), &f.a.id(), &f.b.keys, e.header().created)
        .is_ok()
}

/// One envelope sealed once, for the tamper properties.
static SEALED: LazyLock<Envelope> = LazyLock::new(|| {
    let draft = Draft {
        subject: "Indicators for campaign X".into(),
        text: "Block these at the border.".into(),
        reply_to: Some([9; 16]),
        ..Default::default()
    };
    let m = Msg {
        draft,
        message_id: [7; 16],
        sequence: 42,
        created: EPOCH,
        precedence: Precedence::Flash,
        tlp: Tlp::Amber,
        seed: 1,
    };
    seal(&m)
});

fn flip(bytes: &[u8], index: usize, bit: u8) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[index] ^= 1 << bit;
    v
}

// ---------------------------------------------------------------------------------------------
// Frames

fn frame_types() -> Vec<FrameType> {
    vec![
        FrameType::Hello,
        FrameType::Heartbeat,
        FrameType::Close,
        FrameType::KeyUpdate,
        FrameType::Envelope,
        FrameType::Receipt,
        FrameType::ReceiptStored,
    ]
}

fn stream_types(kind: StreamKind) -> Vec<FrameType> {
    frame_types()
        .into_iter()
        .filter(|t| t.is_control() == (kind == StreamKind::Control))
        .collect()
}

fn stream_kind() -> impl Strategy<Value = StreamKind> {
    select(vec![StreamKind::Control, StreamKind::Message])
}

/// A frame of a type allowed on `kind`, with a random payload within its limit (capped so
/// the test stays fast; the limits themselves are checked exactly elsewhere).
fn frame_for(kind: StreamKind) -> impl Strategy<Value = (FrameType, Vec<u8>)> {
    select(stream_types(kind)).prop_flat_map(|ty| {
        (
            Just(ty),
            proptest::collection::vec(any::<u8>(), 0..=ty.max_len().min(3000)),
        )
    })
}

/// Splits `data` at the (sorted, deduplicated) cut points.
fn chunks<'a>(data: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// What a decoder should make of `input` received in one piece: the complete frames, then
/// the first error if there is one, or how many bytes are left over.
fn reference_decode(kind: StreamKind, input: &[u8]) -> (Vec<Frame>, Result<usize, FrameError>) {
    let mut frames = Vec::new();
    let mut rest = input;
    loop {
        if rest.len() < HEADER_LEN {
            return (frames, Ok(rest.len()));
        }
        let Some(ty) = FrameType::from_byte(rest[0]) else {
            return (frames, Err(FrameError::UnknownType(rest[0])));
        };
        if ty.is_control() != (kind == StreamKind::Control) {
            return (frames, Err(FrameError::WrongStream(ty)));
        }
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
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
        if rest.len() - HEADER_LEN < len {
            return (frames, Ok(rest.len()));
        }
        frames.push(Frame {
            ty,
            payload: Bytes::copy_from_slice(&rest[HEADER_LEN..HEADER_LEN + len]),
        });
        rest = &rest[HEADER_LEN + len..];
    }
}

/// Feeds `pieces` one at a time, draining frames after each; checks that nothing comes out
/// after an error. Returns the frames, the error if any, and `finish()`'s answer.
fn chunked_decode(
    kind: StreamKind,
    pieces: &[&[u8]],
) -> (Vec<Frame>, Option<FrameError>, Result<(), FrameError>) {
    let mut d = Decoder::new(kind);
    let mut frames = Vec::new();
    let mut error = None;
    for piece in pieces {
        d.push(piece);
        if error.is_some() {
            assert_eq!(
                d.next_frame(),
                Ok(None),
                "decoder yielded something after an error"
            );
            assert_eq!(d.buffered(), 0, "decoder buffers input after an error");
            continue;
        }
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    assert_eq!(d.buffered(), 0, "decoder keeps its buffer after an error");
                    assert_eq!(
                        d.next_frame(),
                        Ok(None),
                        "decoder yielded something after an error"
                    );
                    break;
                }
            }
        }
    }
    let finish = d.finish();
    if error.is_some() {
        assert_eq!(
            d.next_frame(),
            Ok(None),
            "decoder yielded something after finish"
        );
    }
    (frames, error, finish)
}

/// A piece of adversarial input: a valid frame of any type, random bytes, or a header with a
/// chosen type byte and length (often over the limit).
fn segment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            select(frame_types()),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(ty, p)| frame::encode(ty, &p).to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
        (
            select(vec![0x00, 0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0xff]),
            prop_oneof![0u32..64, any::<u32>()]
        )
            .prop_map(|(t, len)| [&[t][..], &len.to_be_bytes()].concat()),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_split_anywhere(
        (kind, frames) in stream_kind().prop_flat_map(|k| (Just(k), proptest::collection::vec(frame_for(k), 0..6))),
        cuts in proptest::collection::vec(any::<Index>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for (ty, payload) in &frames {
            let encoded = frame::encode(*ty, payload);
            prop_assert_eq!(encoded.len(), HEADER_LEN + payload.len());
            prop_assert_eq!(encoded[0], ty.byte());
            wire.extend_from_slice(&encoded);
        }
        let (got, error, finish) = chunked_decode(kind, &chunks(&wire, &cuts));
        prop_assert_eq!(error, None);
        prop_assert_eq!(finish, Ok(()));
        prop_assert_eq!(got.len(), frames.len());
        for (f, (ty, payload)) in got.iter().zip(&frames) {
            prop_assert_eq!(f.ty, *ty);
            prop_assert_eq!(f.payload.as_ref(), payload.as_slice());
        }
    }

    #[test]
    fn decoder_matches_reference_on_arbitrary_input_in_any_chunks(
        kind in stream_kind(),
        segments in proptest::collection::vec(segment(), 0..8),
        cuts in proptest::collection::vec(any::<Index>(), 0..12),
    ) {
        let input = segments.concat();
        let (want_frames, want_end) = reference_decode(kind, &input);
        let (frames, error, finish) = chunked_decode(kind, &chunks(&input, &cuts));
        prop_assert_eq!(frames, want_frames);
        match want_end {
            Err(e) => {
                prop_assert_eq!(error, Some(e));
                prop_assert_eq!(finish, Ok(()));
            }
            Ok(left) => {
                prop_assert_eq!(error, None);
                prop_assert_eq!(finish, if left == 0 { Ok(()) } else { Err(FrameError::Truncated) });
            }
        }
    }

    #[test]
    fn decoder_never_panics_on_random_bytes(
        kind in stream_kind(),
        input in proptest::collection::vec(any::<u8>(), 0..512),
        cuts in proptest::collection::vec(any::<Index>(), 0..12),
    ) {
        let (frames, error, _) = chunked_decode(kind, &chunks(&input, &cuts));
        let (want_frames, want_end) = reference_decode(kind, &input);
        prop_assert_eq!(frames, want_frames);
        prop_assert_eq!(error, want_end.err());
    }
}

#[test]
fn frame_limits_are_exact_for_every_type() {
    for kind in [StreamKind::Control, StreamKind::Message] {
        for ty in stream_types(kind) {
            let max = ty.max_len();
            let full = vec![0xa5; max];
            let encoded = frame::encode(ty, &full);
            assert_eq!(encoded.len(), HEADER_LEN + max);
            let (frames, error, finish) = chunked_decode(kind, &[&encoded[..]]);
            assert_eq!(
                (frames.len(), error, finish),
                (1, None, Ok(())),
                "{ty:?} at its limit"
            );
            assert_eq!(frames[0].payload.len(), max);

            // One byte over: refused from the 5-byte header alone, nothing buffered.
            let mut d = Decoder::new(kind);
            d.push(
                &[
                    &[ty.byte()][..],
                    &u32::try_from(max + 1)
                        .expect("limit fits u32")
                        .to_be_bytes(),
                ]
                .concat(),
            );
            assert_eq!(
                d.next_frame(),
                Err(FrameError::TooLarge {
                    ty,
                    len: max as u64 + 1,
                    max
                })
            );
            assert_eq!(d.buffered(), 0);
        }
        // Every type of the other stream is refused here.
        let other = if kind == StreamKind::Control {
            StreamKind::Message
        } else {
            StreamKind::Control
        };
        for ty in stream_types(other) {
            let mut d = Decoder::new(kind);
            d.push(&frame::encode(ty, b"x"));
            assert_eq!(d.next_frame(), Err(FrameError::WrongStream(ty)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Envelopes

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    #[test]
    fn envelope_seal_parse_open_round_trips(m in msg_strategy()) {
        let f = &*FIXTURE;
        let e = seal(&m);
        let parsed = Envelope::parse(e.bytes().clone()).expect("parse what was sealed");
        prop_assert_eq!(parsed.bytes(), e.bytes());
        prop_assert_eq!(parsed.header(), e.header());
        prop_assert_eq!(&parsed, &e);
        let h = parsed.header();
        prop_assert_eq!((h.message_id, h.sequence, h.created), (m.message_id, m.sequence, m.created));
        prop_assert_eq!((h.precedence, h.tlp), (m.precedence, m.tlp));
        prop_assert_eq!((h.sender, h.recipient), (f.a.id(), f.b.id()));
        prop_assert_eq!(parsed.sha256(), &crypto::sha256(e.bytes()));
        let opened = parsed.open(&f.b.id(), &f.a.id(), &f.b.keys, m.created).expect("open");
        prop_assert_eq!(&opened.draft, &m.draft);
        prop_assert_eq!(&opened.officer, f.a.officer.credential());
    }

    #[test]
    fn bit_flipped_envelope_never_opens(index in any::<Index>(), bit in 0u8..8) {
        let bytes = SEALED.bytes();
        let tampered = flip(bytes, index.index(bytes.len()), bit);
        if let Ok(e) = Envelope::parse(Bytes::from(tampered)) {
            prop_assert!(!open_at_b(&e), "tampered envelope opened");
        }
    }

    #[test]
    fn bit_flipped_envelope_never_opens_from_any_message(m in msg_strategy(), index in any::<Index>(), bit in 0u8..8) {
        let e = seal(&m);
        let tampered = flip(e.bytes(), index.index(e.bytes().len()), bit);
        if let Ok(t) = Envelope::parse(Bytes::from(tampered)) {
            prop_assert!(!open_at_b(&t), "tampered envelope opened");
        }
    }

    #[test]
    fn envelope_parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(e) = Envelope::parse(Bytes::from(bytes)) {
            prop_assert!(!open_at_b(&e));
        }
    }
}

#[test]
fn every_single_byte_flip_of_an_envelope_is_refused() {
    let e = &*SEALED;
    assert!(open_at_b(e), "control: the untampered envelope opens");
    let bytes = e.bytes();
    for i in 0..bytes.len() {
        for bit in [i % 8, 7 - i % 8] {
            let tampered = flip(bytes, i, bit as u8);
            if let Ok(t) = Envelope::parse(Bytes::from(tampered)) {
                assert!(
                    !open_at_b(&t),
                    "envelope with bit {bit} of byte {i} flipped opened"
                );
            }
        }
    }
}

#[test]
fn every_truncation_of_an_envelope_is_refused() {
    let bytes = SEALED.bytes();
    for n in 0..bytes.len() {
        if let Ok(t) = Envelope::parse(bytes.slice(..n)) {
            assert!(!open_at_b(&t), "envelope truncated to {n} bytes opened");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receipts

#[derive(Clone, Debug)]
enum Kind {
    Delivered,
    Rejected(RejectReason, String),
    Acknowledged(String),
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Delivered),
        (select(RejectReason::ALL.to_vec()), ".{0,60}").prop_map(|(r, d)| Kind::Rejected(r, d)),
        ".{0,120}".prop_map(Kind::Acknowledged),
    ]
}

fn subject_strategy() -> impl Strategy<Value = Subject> {
    (any::<MessageId>(), any::<[u8; 32]>(), any::<u64>()).prop_map(
        |(message_id, envelope_sha256, sequence)| Subject {
            message_id,
            envelope_sha256,
            sender: Bytes::copy_from_slice(FIXTURE.a.id().as_bytes()),
            sequence,
        },
    )
}

/// B signs a receipt of `kind` for `subject` at `now`.
fn sign_receipt(subject: &Subject, kind: &Kind, now: u64) -> Receipt {
    let f = &*FIXTURE;
    let ack;
    let build = match kind {
        Kind::Delivered => ReceiptBuild::Delivered,
        Kind::Rejected(reason, detail) => ReceiptBuild::Rejected(*reason, detail),
        Kind::Acknowledged(note) => {
            ack =
                f.b.officer
                    .acknowledge(&subject.message_id, &subject.envelope_sha256, now, note)
                    .expect("ack");
            ReceiptBuild::Acknowledged(&ack)
        }
    };
    Receipt::sign(&f.b.identity, subject, build, now).expect("sign receipt")
}

fn now_strategy() -> impl Strategy<Value = u64> {
    (0..300 * DAY).prop_map(|o| EPOCH + o)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    #[test]
    fn receipt_sign_verify_round_trips(subject in subject_strategy(), kind in kind_strategy(), now in now_strategy()) {
        let f = &*FIXTURE;
        let r = sign_receipt(&subject, &kind, now);
        let v = Receipt::verify(r.bytes(), &f.b.id()).expect("verify");
        prop_assert_eq!(&v, &r);
        prop_assert_eq!(v.bytes(), r.bytes());
        prop_assert_eq!(v.sha256(), &crypto::sha256(r.bytes()));
        prop_assert_eq!((v.message_id(), v.envelope_sha256()), (&subject.message_id, &subject.envelope_sha256));
        prop_assert_eq!((v.sender(), v.sequence(), v.time(), v.receiver()), (&subject.sender, subject.sequence, now, f.b.id()));
        match (&kind, v.kind()) {
            (Kind::Delivered, ReceiptKind::Delivered) => {}
            (Kind::Rejected(reason, detail), ReceiptKind::Rejected { reason: r2, detail: d2 }) => {
                prop_assert_eq!(reason, r2);
                prop_assert_eq!(detail, d2);
            }
            (Kind::Acknowledged(note), ReceiptKind::Acknowledged { officer, time, note: n2, .. }) => {
                prop_assert_eq!(officer, f.b.officer.credential());
                prop_assert_eq!((time, n2), (&now, note));
            }
            (want, got) => prop_assert!(false, "signed {:?}, verified {:?}", want, got),
        }
        // Signed by B: it never verifies as A's.
        prop_assert_eq!(Receipt::verify(r.bytes(), &f.a.id()), Err(ReceiptError::BadSignature));
    }

    #[test]
    fn bit_flipped_receipt_never_verifies(
        subject in subject_strategy(),
        kind in kind_strategy(),
        now in now_strategy(),
        index in any::<Index>(),
        bit in 0u8..8,
    ) {
        let r = sign_receipt(&subject, &kind, now);
        let tampered = flip(r.bytes(), index.index(r.bytes().len()), bit);
        prop_assert!(Receipt::verify(&tampered, &FIXTURE.b.id()).is_err());
    }

    #[test]
    fn truncated_receipt_never_verifies(subject in subject_strategy(), kind in kind_strategy(), index in any::<Index>()) {
        let r = sign_receipt(&subject, &kind, EPOCH);
        let n = index.index(r.bytes().len());
        prop_assert!(Receipt::verify(&r.bytes()[..n], &FIXTURE.b.id()).is_err());
    }

    #[test]
    fn receipt_verify_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        prop_assert!(Receipt::verify(&bytes, &FIXTURE.b.id()).is_err());
    }
}

#[test]
fn every_single_byte_flip_of_each_receipt_kind_is_refused() {
    let subject = Subject {
        message_id: [3; 16],
        envelope_sha256: [4; 32],
        sender: Bytes::from_static(&[5; 32]),
        sequence: 9,
    };
    let kinds = [
        Kind::Delivered,
        Kind::Rejected(
            RejectReason::BadSignature,
            "sender signature does not verify".into(),
        ),
        Kind::Acknowledged("seen, acting".into()),
    ];
    for kind in &kinds {
        let r = sign_receipt(&subject, kind, EPOCH);
        for i in 0..r.bytes().len() {
            let tampered = flip(r.bytes(), i, (i % 8) as u8);
            assert!(
                Receipt::verify(&tampered, &FIXTURE.b.id()).is_err(),
                "{kind:?}: flip of byte {i} accepted"
            );
        }
        for n in 0..r.bytes().len() {
            assert!(
                Receipt::verify(&r.bytes()[..n], &FIXTURE.b.id()).is_err(),
                "{kind:?}: truncation to {n} accepted"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hello

/// A peer's offer: one to three versions out of 0..=3, in any order and possibly repeated (so
/// sometimes none in common with ours), and suite 1 somewhere in the list.
fn offer_strategy() -> impl Strategy<Value = Offer> {
    (
        proptest::collection::vec(0u32..4, 1..4),
        proptest::collection::vec(0u32..4, 0..3),
        1..=u32::MAX,
    )
        .prop_map(|(versions, mut suites, max_inflight)| {
            // Always offer suite 1 so that only the versions decide whether negotiation works.
            suites.insert(0, hotline_protocol::SUITE_V1_BASE);
            Offer {
                versions,
                suites,
                max_inflight,
            }
        })
}

/// Our offer: versions 1 and 2 in either order (the default), or only one of them.
fn our_offer_strategy() -> impl Strategy<Value = Offer> {
    select(vec![vec![1, 2], vec![2, 1], vec![1], vec![2]]).prop_map(|versions| Offer {
        versions,
        ..Offer::default()
    })
}

fn side_strategy() -> impl Strategy<Value = Side> {
    select(vec![Side::Client, Side::Server])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    /// The negotiated version is the highest one both offers list (SPEC.md §6.4), in whatever
    /// order either lists them; with none in common the Hello is refused UNSUPPORTED_VERSION.
    #[test]
    fn hello_create_verify_round_trips(
        side in side_strategy(),
        exporter in any::<[u8; EXPORTER_LEN]>(),
        offer in offer_strategy(),
        ours in our_offer_strategy(),
        now in now_strategy(),
    ) {
        let f = &*FIXTURE;
        let bytes = hello::create(&f.a.identity, side, &exporter, &offer, &f.a.certs(), now);
        let highest_common = ours.versions.iter().filter(|v| offer.versions.contains(v)).max();
        let got = hello::verify(&bytes, &f.a.id(), side, &exporter, &ours);
        match highest_common {
            None => prop_assert_eq!(got, Err(CloseCode::UnsupportedVersion)),
            Some(&version) => {
                let h = got.expect("verify");
                prop_assert_eq!(h.identity, f.a.id());
                prop_assert_eq!(&h.offer, &offer);
                prop_assert_eq!(&h.encryption_keys, &f.a.certs());
                prop_assert_eq!((h.time, h.version, h.suite), (now, version, 1));
            }
        }
    }

    /// Between two default offers, version 2 is negotiated whichever way round.
    #[test]
    fn default_offers_negotiate_version_2(side in side_strategy(), exporter in any::<[u8; EXPORTER_LEN]>()) {
        let f = &*FIXTURE;
        let ours = Offer::default();
        let bytes = hello::create(&f.a.identity, side, &exporter, &ours, &f.a.certs(), EPOCH);
        let h = hello::verify(&bytes, &f.a.id(), side, &exporter, &ours).expect("verify");
        prop_assert_eq!((h.version, h.suite), (hotline_protocol::PROTOCOL_VERSION_2, 1));
    }

    #[test]
    fn hello_is_bound_to_exporter_side_and_identity(
        side in side_strategy(),
        exporter in any::<[u8; EXPORTER_LEN]>(),
        index in any::<Index>(),
        bit in 0u8..8,
    ) {
        let f = &*FIXTURE;
        let ours = Offer::default();
        let bytes = hello::create(&f.a.identity, side, &exporter, &ours, &f.a.certs(), EPOCH);
        let mut other = exporter;
        other[index.index(EXPORTER_LEN)] ^= 1 << bit;
        prop_assert_eq!(hello::verify(&bytes, &f.a.id(), side, &other, &ours), Err(CloseCode::BadChannelBinding));
        // A Hello reflected back at its signer claims the wrong side.
        prop_assert_eq!(hello::verify(&bytes, &f.a.id(), side.peer(), &exporter, &ours), Err(CloseCode::BadChannelBinding));
        prop_assert_eq!(hello::verify(&bytes, &f.b.id(), side, &exporter, &ours), Err(CloseCode::IdentityMismatch));
    }

    #[test]
    fn bit_flipped_hello_never_verifies(
        side in side_strategy(),
        exporter in any::<[u8; EXPORTER_LEN]>(),
        index in any::<Index>(),
        bit in 0u8..8,
    ) {
        let f = &*FIXTURE;
        let ours = Offer::default();
        let bytes = hello::create(&f.a.identity, side, &exporter, &ours, &f.a.certs(), EPOCH);
        let tampered = flip(&bytes, index.index(bytes.len()), bit);
        prop_assert!(hello::verify(&tampered, &f.a.id(), side, &exporter, &ours).is_err());
        let n = index.index(bytes.len());
        prop_assert!(hello::verify(&bytes[..n], &f.a.id(), side, &exporter, &ours).is_err());
    }

    #[test]
    fn hello_verify_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let f = &*FIXTURE;
        prop_assert!(hello::verify(&bytes, &f.a.id(), Side::Client, &[0; EXPORTER_LEN], &Offer::default()).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// KeyUpdate

/// A certificate body's inputs: public key, `not_before_ms` and a validity length (≥ 1 ms).
type CertInputs = ([u8; 32], u64, u64);

fn cert_inputs() -> impl Strategy<Value = CertInputs> {
    (any::<[u8; 32]>(), 0..u64::MAX / 2, 1..u64::MAX / 2)
}

fn certify(who: &IdentityKey, (public, from, len): CertInputs) -> EncryptionKey {
    EncryptionKey::certify(who, public, from, from + len)
}

/// Node A's certificates for `inputs`, in order.
fn a_certs(inputs: &[CertInputs]) -> Vec<EncryptionKey> {
    inputs
        .iter()
        .map(|i| certify(&FIXTURE.a.identity, *i))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    /// Any 1 to 4 certificates of the peer's go through a KeyUpdate unchanged, in order, and
    /// its frame fits the control-stream cap.
    #[test]
    fn key_update_round_trips(inputs in proptest::collection::vec(cert_inputs(), 1..=MAX_ANNOUNCED_KEYS)) {
        let f = &*FIXTURE;
        let keys = a_certs(&inputs);
        let payload = key_update_payload(&keys);
        prop_assert_eq!(verify_key_update(&payload, &f.a.id()), Ok(keys));
        let encoded = frame::encode(FrameType::KeyUpdate, &payload);
        let (frames, error, finish) = chunked_decode(StreamKind::Control, &[&encoded[..]]);
        prop_assert_eq!((frames.len(), error, finish), (1, None, Ok(())));
        prop_assert_eq!(frames[0].ty, FrameType::KeyUpdate);
        prop_assert_eq!(&frames[0].payload[..], &payload[..]);
    }

    /// No keys, more than four, or any key certified by someone other than the peer: refused.
    #[test]
    fn key_update_breaking_a_rule_never_verifies(
        inputs in proptest::collection::vec(cert_inputs(), 1..=MAX_ANNOUNCED_KEYS),
        many in proptest::collection::vec(cert_inputs(), MAX_ANNOUNCED_KEYS + 1..=8),
        foreign_at in any::<Index>(),
    ) {
        let f = &*FIXTURE;
        let a = f.a.id();
        prop_assert!(verify_key_update(&key_update_payload(&[]), &a).is_err());
        prop_assert!(verify_key_update(&key_update_payload(&a_certs(&many)), &a).is_err());
        let mut foreign = a_certs(&inputs);
        let i = foreign_at.index(foreign.len());
        foreign[i] = certify(&f.b.identity, inputs[i]);
        prop_assert!(verify_key_update(&key_update_payload(&foreign), &a).is_err());
        // B's own certificates verify as B's, not as A's.
        prop_assert!(verify_key_update(&key_update_payload(&foreign[i..=i]), &f.b.id()).is_ok());
    }

    /// A KeyUpdate with one bit flipped never verifies. Cut short, it verifies only when cut
    /// exactly after a certificate, and then it is the KeyUpdate of the leading certificates
    /// (each certificate is signed on its own; the list is not).
    #[test]
    fn bit_flipped_or_truncated_key_update_never_verifies(
        inputs in proptest::collection::vec(cert_inputs(), 1..=MAX_ANNOUNCED_KEYS),
        index in any::<Index>(),
        bit in 0u8..8,
    ) {
        let f = &*FIXTURE;
        let keys = a_certs(&inputs);
        let payload = key_update_payload(&keys);
        let n = index.index(payload.len());
        prop_assert!(verify_key_update(&flip(&payload, n, bit), &f.a.id()).is_err());
        if let Ok(got) = verify_key_update(&payload[..n], &f.a.id()) {
            prop_assert!(got.len() < keys.len());
            prop_assert_eq!(&got[..], &keys[..got.len()]);
            prop_assert_eq!(key_update_payload(&got), &payload[..n]);
        }
    }

    #[test]
    fn key_update_verify_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = &*FIXTURE;
        prop_assert!(verify_key_update(&bytes, &f.a.id()).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Officer signatures, version 1 and 2 (SPEC.md §7.5.1, §8.3)

/// Every marking a header can carry: the registry values of precedence and TLP (§12.8).
fn markings() -> Vec<Marking> {
    Precedence::ALL
        .iter()
        .flat_map(|&p| tlps().into_iter().map(move |t| content::marking(p, t)))
        .collect()
}

/// Every registered marking and one arbitrary pair of bytes, which a receiver never builds
/// from a parsed header but a verifier must not accept either.
fn other_markings(arbitrary: (u8, u8)) -> Vec<Marking> {
    let mut all = markings();
    all.push(Marking {
        precedence: arbitrary.0,
        tlp: arbitrary.1,
    });
    all
}

/// A's officer key certified a second time by A, under another name: a version 2 signature
/// made under the first credential must not verify under this one.
static RENAMED: LazyLock<Credential> = LazyLock::new(|| {
    let first = FIXTURE.a.officer.credential();
    Credential::issue(
        &FIXTURE.a.identity,
        *first.officer_key(),
        "Mallory Officer",
        Role::Officer,
        first.not_before(),
        first.not_after(),
    )
    .expect("credential")
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    #[test]
    fn marked_signature_verifies_only_with_its_marking_and_credential(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        m in select(markings()),
        arbitrary in any::<(u8, u8)>(),
    ) {
        let officer = &FIXTURE.a.officer;
        let cred = officer.credential();
        let sig = officer.sign_message_marked(&body, m).signature;
        prop_assert_eq!(cred.verify_message_marked(&body, m, &sig), Some(Binding::Marked));
        for other in other_markings(arbitrary) {
            if other != m {
                prop_assert_eq!(cred.verify_message_marked(&body, other, &sig), None, "{:?}", other);
            }
        }
        prop_assert_eq!(RENAMED.verify_message_marked(&body, m, &sig), None);
        prop_assert!(!cred.verify_message(&body, &sig), "a version 2 signature is no version 1 one");
    }

    #[test]
    fn v1_signature_never_verifies_as_marked(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        arbitrary in any::<(u8, u8)>(),
    ) {
        let officer = &FIXTURE.a.officer;
        let sig = officer.sign_message(&body).signature;
        for m in other_markings(arbitrary) {
            for cred in [officer.credential(), &*RENAMED] {
                prop_assert_eq!(cred.verify_message_marked(&body, m, &sig), Some(Binding::BodyOnly));
            }
        }
    }

    #[test]
    fn ack_verifies_by_the_rule_it_was_made_by(
        message_id in any::<MessageId>(),
        envelope_sha256 in any::<[u8; 32]>(),
        offset in 0..300 * DAY,
        note in "[ -~]{0,64}",
    ) {
        let officer = &FIXTURE.b.officer;
        let (cred, time) = (officer.credential(), EPOCH + offset);
        let renamed = Credential::issue(
            &FIXTURE.b.identity,
            *cred.officer_key(),
            "Mallory Officer",
            Role::Officer,
            cred.not_before(),
            cred.not_after(),
        )
        .expect("credential");
        let verify = |c: &Credential, sig: &[u8]| {
            c.verify_ack_binding(&message_id, &envelope_sha256, time, &note, sig)
        };
        let v1 = officer
            .acknowledge(&message_id, &envelope_sha256, time, &note)
            .expect("ack")
            .signature;
        prop_assert_eq!(verify(cred, &v1), Some(Binding::BodyOnly));
        prop_assert_eq!(verify(&renamed, &v1), Some(Binding::BodyOnly));
        let v2 = officer
            .acknowledge_as(&message_id, &envelope_sha256, time, &note, Binding::Marked)
            .expect("ack")
            .signature;
        prop_assert_eq!(verify(cred, &v2), Some(Binding::Marked));
        prop_assert_eq!(verify(&renamed, &v2), None);
        prop_assert!(cred.verify_ack(&message_id, &envelope_sha256, time, &note, &v2));
        let later = time + 1;
        prop_assert_eq!(
            cred.verify_ack_binding(&message_id, &envelope_sha256, later, &note, &v2),
            None
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Peer bundles

static BUNDLE: LazyLock<PeerBundle> = LazyLock::new(|| {
    let a = &FIXTURE.a;
    PeerBundle::create(
        &a.identity,
        "CERT-A",
        [7; 32],
        &a.certs(),
        &["192.0.2.1:4433".into()],
        EPOCH,
    )
    .expect("bundle")
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    #[test]
    fn bundle_from_bytes_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(PeerBundle::from_bytes(&bytes).is_err());
        prop_assert!(PeerBundle::from_armored(&bytes).is_err());
    }

    #[test]
    fn bit_flipped_bundle_is_refused(index in any::<Index>(), bit in 0u8..8) {
        let bytes = BUNDLE.bytes();
        let tampered = flip(bytes, index.index(bytes.len()), bit);
        prop_assert!(PeerBundle::from_bytes(&tampered).is_err());
        let n = index.index(bytes.len());
        prop_assert!(PeerBundle::from_bytes(&bytes[..n]).is_err());
    }

    #[test]
    fn armored_bundle_text_never_panics(text in ".{0,200}", cut in any::<Index>()) {
        // Valid armor around garbage, and a valid armored bundle cut short.
        let wrapped = format!("-----BEGIN HOTLINE PEER BUNDLE-----\n{text}\n-----END HOTLINE PEER BUNDLE-----\n");
        prop_assert!(PeerBundle::from_armored(wrapped.as_bytes()).is_err());
        let armored = BUNDLE.to_armored();
        let n = cut.index(armored.len());
        let cut_short = &armored[..n];
        // Cutting off only the final newline leaves the same armored text.
        let same = cut_short.trim_end() == armored.trim_end();
        prop_assert_eq!(PeerBundle::from_armored(cut_short.as_bytes()).is_ok(), same, "cut to {} bytes", n);
    }
}

#[test]
fn bundle_round_trips_through_bytes_and_armor() {
    let b = &*BUNDLE;
    assert_eq!(PeerBundle::from_bytes(b.bytes()).as_ref(), Ok(b));
    assert_eq!(
        PeerBundle::from_armored(b.to_armored().as_bytes()).as_ref(),
        Ok(b)
    );
    assert_eq!(b.identity(), FIXTURE.a.id());
}

/// Four encryption keys certified by A, for bundles carrying 1..=4 of them.
static BUNDLE_KEYS: LazyLock<Vec<EncryptionKey>> = LazyLock::new(|| {
    let a = &FIXTURE.a;
    let mut rng = TestRng::new(0xb0b);
    let mut keys = a.certs();
    for _ in 0..3 {
        let k = EncryptionKeypair::generate(&a.identity, EPOCH - DAY, EPOCH + 365 * DAY, &mut rng);
        keys.push(k.certificate);
    }
    keys
});

/// What a node puts in its bundle, within every limit of SPEC.md §4.4.
#[derive(Clone, Debug)]
struct BundleFields {
    name: String,
    spki: [u8; 32],
    keys: usize,
    addresses: Vec<String>,
    created: u64,
}

fn bundle_fields() -> impl Strategy<Value = BundleFields> {
    (
        // At most 16 characters of at most 4 bytes: within the 64-byte limit.
        "[^\\p{Cc}]{1,16}",
        any::<[u8; 32]>(),
        1..=4usize,
        proptest::collection::vec("[ -~]{0,255}", 0..=8),
        any::<u64>(),
    )
        .prop_map(|(name, spki, keys, addresses, created)| BundleFields {
            name,
            spki,
            keys,
            addresses,
            created,
        })
}

fn make_bundle(f: &BundleFields) -> PeerBundle {
    PeerBundle::create(
        &FIXTURE.a.identity,
        &f.name,
        f.spki,
        &BUNDLE_KEYS[..f.keys],
        &f.addresses,
        f.created,
    )
    .expect("a bundle within every limit is created")
}

/// One edit of an encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
    ]
}

/// `bytes` (not empty) after the edits, each of which changes it.
fn mutate(bytes: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    for m in edits {
        if v.is_empty() {
            v.push(0);
            continue;
        }
        match m {
            Mutation::Flip(i, bit) => {
                let i = i.index(v.len());
                v[i] ^= 1 << bit;
            }
            Mutation::Set(i, x) => {
                let i = i.index(v.len());
                v[i] = if v[i] == *x { x ^ 0x80 } else { *x };
            }
            Mutation::Insert(i, x) => v.insert(i.index(v.len() + 1), *x),
            Mutation::Delete(i) => {
                v.remove(i.index(v.len()));
            }
            Mutation::Truncate(i) => v.truncate(i.index(v.len())),
            Mutation::Append(tail) => v.extend_from_slice(tail),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CRYPTO_CASES))]

    #[test]
    fn any_valid_bundle_round_trips_raw_and_armored(f in bundle_fields()) {
        let b = make_bundle(&f);
        prop_assert_eq!(b.identity(), FIXTURE.a.id());
        prop_assert_eq!(b.name(), f.name.as_str());
        prop_assert_eq!(b.tls_spki_sha256(), &f.spki);
        prop_assert_eq!(b.encryption_keys(), &BUNDLE_KEYS[..f.keys]);
        prop_assert_eq!(b.addresses(), f.addresses.as_slice());
        prop_assert_eq!(b.created(), f.created);
        prop_assert_eq!(PeerBundle::from_bytes(b.bytes()), Ok(b.clone()));
        let armored = b.to_armored();
        prop_assert_eq!(PeerBundle::from_armored(armored.as_bytes()), Ok(b.clone()));
        // What a mail client or editor does to the text: CRLF, indentation, blank lines.
        let reflowed: String = armored.lines().map(|l| format!("\t {l}\r\n\r\n")).collect();
        prop_assert_eq!(PeerBundle::from_armored(reflowed.as_bytes()), Ok(b.clone()));
    }

    #[test]
    fn any_mutation_of_a_bundle_is_refused(
        f in bundle_fields(),
        edits in proptest::collection::vec(mutation(), 1..4),
    ) {
        let b = make_bundle(&f);
        let tampered = mutate(b.bytes(), &edits);
        prop_assume!(tampered.as_slice() != b.bytes().as_ref());
        prop_assert!(PeerBundle::from_bytes(&tampered).is_err());
        prop_assert!(PeerBundle::from_armored(&tampered).is_err());
    }

    #[test]
    fn any_mutation_of_an_armored_bundle_is_refused_or_reads_the_same(
        f in bundle_fields(),
        edits in proptest::collection::vec(mutation(), 1..4),
    ) {
        // Whitespace is not part of the armored form, so an edit that only changes
        // whitespace may still read; anything else must be refused.
        let b = make_bundle(&f);
        let armored = b.to_armored();
        let tampered = mutate(armored.as_bytes(), &edits);
        if let Ok(again) = PeerBundle::from_armored(&tampered) {
            prop_assert_eq!(&again, &b);
            // Only whitespace changed (as `char::is_whitespace` counts it: a flipped newline
            // may be a vertical tab).
            let text = std::str::from_utf8(&tampered);
            prop_assert!(text.is_ok(), "armored text that is not UTF-8 read");
            let squeeze = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(squeeze(text.unwrap_or_default()), squeeze(&armored));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Node ids

/// Random bytes that are a valid identity key (about half of all 32-byte strings are).
fn node_id_strategy() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_filter_map("not a valid identity key", |b| NodeId::from_bytes(&b))
}

const BASE32_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

proptest! {
    #[test]
    fn node_id_text_round_trips(id in node_id_strategy()) {
        let text = id.to_string();
        prop_assert!(text.starts_with("hl1"));
        prop_assert_eq!(text.len(), 3 + 56);
        prop_assert_eq!(text.parse::<NodeId>(), Ok(id));
        // Case does not matter after the prefix.
        prop_assert_eq!(format!("hl1{}", text[3..].to_ascii_uppercase()).parse::<NodeId>(), Ok(id));
        prop_assert_eq!(NodeId::from_bytes(id.as_bytes()), Some(id));
        let fp = id.fingerprint();
        prop_assert_eq!(fp.len(), 19);
        prop_assert_eq!(fp.replace('-', ""), &text[3..19]);
    }

    #[test]
    fn node_id_typo_is_caught(id in node_id_strategy(), pos in any::<Index>(), with in any::<Index>()) {
        let text = id.to_string();
        let mut chars = text.into_bytes();
        let i = 3 + pos.index(56);
        let choices: Vec<u8> = BASE32_LOWER.iter().copied().filter(|&c| c != chars[i]).collect();
        chars[i] = choices[with.index(choices.len())];
        let typo = String::from_utf8(chars).expect("ascii");
        // Any typo changes the decoded bytes. Unless the 3-byte checksum collides (odds 2^-24),
        // it no longer matches; on a collision the key check still stands.
        let raw = data_encoding::BASE32_NOPAD.decode(typo[3..].to_ascii_uppercase().as_bytes()).expect("base32");
        let digest = crypto::sha256_parts(&[b"hotline/1 node-id", &[0], &raw[..32]]);
        if digest[..3] == raw[32..] {
            prop_assert_eq!(typo.parse::<NodeId>().ok(), NodeId::from_bytes(&raw[..32]));
        } else {
            prop_assert_eq!(typo.parse::<NodeId>(), Err(NodeIdParseError::Checksum));
        }
    }

    #[test]
    fn node_id_parse_never_panics(s in ".{0,80}") {
        let _ = s.parse::<NodeId>();
    }

    #[test]
    fn node_id_parse_never_panics_on_near_misses(s in "hl1[a-zA-Z0-9=]{0,70}") {
        if let Ok(id) = s.parse::<NodeId>() {
            prop_assert_eq!(id.to_string(), s.to_ascii_lowercase());
        }
    }

    #[test]
    fn node_id_from_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        if let Some(id) = NodeId::from_bytes(&bytes) {
            prop_assert_eq!(id.as_bytes().as_slice(), bytes.as_slice());
            prop_assert!(crypto::parse_public_key(&bytes).is_some());
        }
    }
}

#[test]
fn identity_key_with_non_canonical_encoding_is_refused() {
    // y + p for y in 0..19 encodes the same y as y itself (p = 2^255 - 19). Several of these
    // y are valid, non-weak points in canonical form; none may be accepted in the other form.
    let mut canonical_accepted = 0;
    for y in 0u8..19 {
        for sign in [0, 0x80] {
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            canonical[31] = sign;
            let mut non_canonical = [0xff; 32];
            non_canonical[0] = 0xed + y;
            non_canonical[31] = 0x7f | sign;
            assert_eq!(
                NodeId::from_bytes(&non_canonical),
                None,
                "y = {y} + p accepted"
            );
            assert!(
                crypto::parse_public_key(&non_canonical).is_none(),
                "y = {y} + p parsed"
            );
            canonical_accepted += usize::from(NodeId::from_bytes(&canonical).is_some());
        }
    }
    assert!(
        canonical_accepted > 0,
        "control: some small y are valid identity keys"
    );
}
