//! Per-message costs of the protocol crate: envelope seal and open, receipt sign and verify,
//! framing, and the whole per-message crypto of one delivery.
//!
//! Run in release mode only (`cargo bench -p hotline-protocol --bench protocol`); debug-build
//! numbers mean nothing. The officer's signature on the content is made once, outside the
//! timed loops: the operator's client makes it, not the node.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hotline_protocol::content::{Draft, Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::{Envelope, SealParams};
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::sim::{EPOCH, TestRng};
use hotline_protocol::time::DAY;

/// Length of the message text: 1 KiB.
const BODY_LEN: usize = 1024;

struct Node {
    identity: IdentityKey,
    keys: Vec<EncryptionKeypair>,
    officer: OfficerKey,
}

impl Node {
    /// Built the way `sim::Pair::new` builds each side.
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
}

/// Sender A, receiver B, and a signed 1 KiB message from A to B.
struct Setup {
    a: Node,
    b: Node,
    b_certs: Vec<EncryptionKey>,
    content: SignedContent,
    message_id: [u8; 16],
}

impl Setup {
    fn new() -> Self {
        let mut rng = TestRng::new(0xbe4c);
        let a = Node::new(&mut rng, "Alice Officer");
        let b = Node::new(&mut rng, "Bob Officer");
        let b_certs = b.keys.iter().map(|k| k.certificate.clone()).collect();
        let message_id = rng.id16();
        let draft = Draft {
            subject: "Indicators for campaign X".into(),
            text: "x".repeat(BODY_LEN),
            ..Default::default()
        };
        let content = draft
            .sign(&message_id, &b.id(), &a.officer, EPOCH)
            .expect("sign content");
        Setup {
            a,
            b,
            b_certs,
            content,
            message_id,
        }
    }

    fn params(&self) -> SealParams<'_> {
        SealParams {
            recipient: self.b.id(),
            recipient_key: EncryptionKey::select(&self.b_certs, EPOCH).expect("B has a valid key"),
            message_id: self.message_id,
            sequence: 1,
            created: EPOCH,
            precedence: Precedence::Immediate,
            tlp: Tlp::Amber,
        }
    }

    fn seal(&self, rng: &mut TestRng) -> Envelope {
        Envelope::seal(&self.a.identity, &self.params(), &self.content, rng).expect("seal")
    }

    /// What B does with received envelope bytes: parse, verify, decrypt.
    fn open(&self, bytes: Bytes) {
        let e = Envelope::parse(bytes).expect("parse");
        black_box(
            e.open(&self.b.id(), &self.a.id(), &self.b.keys, EPOCH)
                .expect("open"),
        );
    }

    fn sign_delivered(&self, e: &Envelope) -> Receipt {
        Receipt::sign(
            &self.b.identity,
            &Subject::from(e),
            ReceiptBuild::Delivered,
            EPOCH,
        )
        .expect("sign receipt")
    }
}

fn envelope(c: &mut Criterion) {
    let s = Setup::new();
    let mut rng = TestRng::new(1);
    let sealed = s.seal(&mut rng);
    let mut g = c.benchmark_group("envelope");
    g.bench_function("seal_1KiB", |b| b.iter(|| black_box(s.seal(&mut rng))));
    g.bench_function("open_1KiB", |b| {
        b.iter(|| s.open(black_box(sealed.bytes().clone())))
    });
    g.finish();
}

fn receipt(c: &mut Criterion) {
    let s = Setup::new();
    let sealed = s.seal(&mut TestRng::new(2));
    let receipt = s.sign_delivered(&sealed);
    let mut g = c.benchmark_group("receipt");
    // Receipt::sign checks the encoding it made but not its own signature: this is one signing.
    g.bench_function("sign_delivered", |b| {
        b.iter(|| black_box(s.sign_delivered(black_box(&sealed))))
    });
    g.bench_function("verify", |b| {
        b.iter(|| {
            black_box(Receipt::verify(black_box(receipt.bytes()), &s.b.id()).expect("verify"))
        })
    });
    g.finish();
}

fn framing(c: &mut Criterion) {
    let s = Setup::new();
    let sealed = s.seal(&mut TestRng::new(3));
    let encoded = frame::encode(FrameType::Envelope, sealed.bytes());
    let mut g = c.benchmark_group("frame");
    g.bench_function("encode_envelope_1KiB", |b| {
        b.iter(|| {
            black_box(frame::encode(
                FrameType::Envelope,
                black_box(sealed.bytes()),
            ))
        })
    });
    g.bench_function("decode_envelope_1KiB", |b| {
        b.iter(|| {
            let mut d = Decoder::new(StreamKind::Message);
            d.push(black_box(&encoded));
            black_box(d.next_frame().expect("decode").expect("one frame"))
        })
    });
    g.finish();
}

fn per_message(c: &mut Criterion) {
    let s = Setup::new();
    let mut rng = TestRng::new(4);
    let mut g = c.benchmark_group("crypto_per_message");
    g.bench_function("seal_open_receipt_sign_verify_1KiB", |b| {
        b.iter(|| {
            let sealed = s.seal(&mut rng);
            s.open(sealed.bytes().clone());
            let receipt = s.sign_delivered(&sealed);
            let back = Receipt::verify(receipt.bytes(), &s.b.id()).expect("verify");
            assert!(back.answers(&sealed));
            black_box(back)
        })
    });
    g.finish();
}

criterion_group!(benches, envelope, receipt, framing, per_message);
criterion_main!(benches);
