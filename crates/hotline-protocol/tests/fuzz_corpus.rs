//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the functions in
//! `hotline_protocol::fuzzing`, so stable CI runs every fuzz target on every input that ever
//! mattered, and checks that the valid seed inputs are current and still reach deep states.
//!
//! The valid seeds are generated from the fixed fixture of `fuzzing`. After a change to the
//! wire format or the fixture, regenerate them with the one command
//!
//! ```text
//! cargo test -p hotline-protocol --test fuzz_corpus -- --ignored regenerate_seed_corpus
//! ```
//!
//! which rewrites only the generated `seed-*` files; inputs the fuzzer found and crash
//! regressions (`regression-*`) stay as they are.

use std::path::{Path, PathBuf};

use hotline_protocol::CloseCode;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::fuzzing::{
    self, FixtureBundle as B, FixtureFrame as F, FixtureRevocation as R, SessionOp as Op,
    SessionTrace, StreamSel as S, fixture_bundle, fixture_frame, fixture_revocation,
    session_script,
};
use hotline_protocol::hello::Side;
use hotline_protocol::wire;
use prost::Message;

/// The one command that rewrites the generated seeds.
const REGENERATE: &str =
    "cargo test -p hotline-protocol --test fuzz_corpus -- --ignored regenerate_seed_corpus";

const TARGETS: [&str; 9] = [
    "frame_decoder",
    "envelope_open",
    "receipt_verify",
    "hello_verify",
    "key_update",
    "session",
    "bundle",
    "revocation",
    "bundle_update",
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `f` on every file of the target's committed corpus; fails on an empty corpus.
fn replay(target: &str, f: fn(&[u8])) {
    let dir = corpus_dir(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "the corpus {} is empty: the test would run nothing",
        dir.display()
    );
    for p in &paths {
        let data = std::fs::read(p).expect("corpus file");
        // Name the input if it panics.
        eprintln!("replaying {}", p.display());
        f(&data);
    }
}

#[test]
fn replays_frame_decoder_corpus() {
    replay("frame_decoder", fuzzing::frame_decoder);
}

#[test]
fn replays_envelope_open_corpus() {
    replay("envelope_open", fuzzing::envelope_open);
}

#[test]
fn replays_receipt_verify_corpus() {
    replay("receipt_verify", fuzzing::receipt_verify);
}

#[test]
fn replays_hello_verify_corpus() {
    replay("hello_verify", fuzzing::hello_verify);
}

#[test]
fn replays_key_update_corpus() {
    replay("key_update", fuzzing::key_update);
}

#[test]
fn replays_session_corpus() {
    replay("session", fuzzing::session);
}

#[test]
fn replays_revocation_corpus() {
    replay("revocation", fuzzing::revocation);
}

#[test]
fn replays_bundle_corpus() {
    replay("bundle", fuzzing::bundle);
}

#[test]
fn replays_bundle_update_corpus() {
    replay("bundle_update", fuzzing::bundle_update);
}

// ----- the generated valid seeds --------------------------------------------------------

fn frame(f: F) -> Vec<u8> {
    fixture_frame(f)
        .expect("the fuzzing fixture builds")
        .to_vec()
}

fn payload(f: F) -> Vec<u8> {
    frame(f)[5..].to_vec()
}

fn cat(mode: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![mode];
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// What a session seed must reach, so a seed that silently stops working is caught.
type Expect = fn(&SessionTrace) -> bool;

fn link_up() -> Vec<Op> {
    vec![
        Op::Connect {
            side: Side::Client,
            exporter_ok: true,
        },
        Op::Frame {
            stream: S::Control,
            frame: F::HelloFromServer,
            split: 0,
            fin: false,
        },
    ]
}

fn server() -> Op {
    Op::Connect {
        side: Side::Server,
        exporter_ok: true,
    }
}

fn with(mut ops: Vec<Op>, more: &[Op]) -> Vec<Op> {
    ops.extend_from_slice(more);
    ops
}

fn msg(stream: S, frame: F) -> Op {
    Op::Frame {
        stream,
        frame,
        split: 0,
        fin: true,
    }
}

fn ctl(frame: F) -> Op {
    Op::Frame {
        stream: S::Control,
        frame,
        split: 0,
        fin: false,
    }
}

/// Answer the oldest pending event: open-and-answer for envelopes, real verdict for receipts.
const OPEN: Op = Op::Answer { event: 0, how: 3 };
const VERIFY: Op = Op::Answer { event: 0, how: 0 };

fn session_seeds() -> Vec<(&'static str, Vec<Op>, Expect)> {
    let shutdown = CloseCode::ALL
        .iter()
        .position(|c| *c == CloseCode::Shutdown)
        .expect("SHUTDOWN is registered") as u8;
    // Keeps the link alive (the peer pings) while 10 s pass.
    let alive_10s = [ctl(F::HeartbeatPing), Op::Advance { ms: 2_500 }];
    vec![
        ("link-up-client", link_up(), |t| {
            t.link_ups == 1 && t.link_downs == 0
        }),
        (
            "link-up-server",
            vec![
                Op::Connect {
                    side: Side::Server,
                    exporter_ok: true,
                },
                ctl(F::HelloFromClient),
            ],
            |t| t.link_ups == 1,
        ),
        (
            "deliver-inbound",
            with(link_up(), &[msg(S::In(1), F::Envelope1), OPEN]),
            |t| t.delivered_in == 1,
        ),
        (
            "deliver-outbound",
            with(
                link_up(),
                &[
                    Op::SendEnvelope(0),
                    msg(S::RecentOut(0), F::ReceiptDelivered0),
                    VERIFY,
                ],
            ),
            |t| t.receipts_ok == 1,
        ),
        (
            // Three queued before the link is up, two streams of credit: FLASH (seq 2) and
            // PRIORITY (seq 3) go first, ROUTINE (seq 1) once a stream is free.
            "queued-before-link-up",
            with(
                vec![
                    Op::SendEnvelope(0),
                    Op::SendEnvelope(1),
                    Op::SendEnvelope(2),
                ],
                &[
                    link_up()[0].clone(),
                    link_up()[1].clone(),
                    msg(S::RecentOut(0), F::ReceiptRejected2),
                    msg(S::RecentOut(1), F::ReceiptDelivered1),
                    VERIFY,
                    VERIFY,
                    msg(S::RecentOut(0), F::ReceiptDelivered0),
                    VERIFY,
                ],
            ),
            |t| t.receipts_ok == 3,
        ),
        (
            "heartbeats-rtt",
            with(
                link_up(),
                &[ctl(F::HeartbeatPing), ctl(F::HeartbeatEcho), Op::NextTimer],
            ),
            |t| t.rtts == 1 && t.link_downs == 0,
        ),
        (
            "gap-detected-and-closed",
            with(
                link_up(),
                &[
                    msg(S::In(1), F::Envelope1),
                    OPEN,
                    ctl(F::HeartbeatPing),
                    Op::Advance { ms: 2_600 },
                    msg(S::In(2), F::Envelope2),
                    OPEN,
                ],
            ),
            |t| t.gaps == 1 && t.gaps_closed == 1 && t.delivered_in == 2,
        ),
        (
            "gap-persists",
            with(
                link_up(),
                &[
                    msg(S::In(1), F::Envelope1),
                    OPEN,
                    ctl(F::HeartbeatGap),
                    Op::Advance { ms: 2_600 },
                    msg(S::In(2), F::Envelope2),
                    OPEN,
                    msg(S::In(3), F::Envelope4),
                    OPEN,
                ],
            ),
            |t| t.gaps >= 1 && t.gaps_closed == 0 && t.delivered_in == 3,
        ),
        (
            "hello-timeout",
            vec![
                Op::Connect {
                    side: Side::Client,
                    exporter_ok: true,
                },
                Op::NextTimer,
            ],
            |t| t.link_ups == 0 && t.link_downs == 1,
        ),
        (
            "liveness-timeout",
            with(
                link_up(),
                &[Op::NextTimer, Op::NextTimer, Op::NextTimer, Op::NextTimer],
            ),
            |t| t.link_ups == 1 && t.link_downs == 1,
        ),
        (
            "retransmit-after-receipt-timeout",
            with(
                link_up(),
                &[
                    &[Op::SendEnvelope(0)][..],
                    &alive_10s,
                    &alive_10s,
                    &alive_10s,
                    &[
                        Op::Advance { ms: 100 },
                        msg(S::RecentOut(0), F::ReceiptDelivered0),
                        VERIFY,
                    ],
                ]
                .concat(),
            ),
            |t| t.retransmits >= 1 && t.receipts_ok == 1 && t.link_downs == 0,
        ),
        (
            "stream-reset-then-resend",
            with(
                link_up(),
                &[
                    Op::SendEnvelope(1),
                    Op::Reset {
                        stream: S::RecentOut(0),
                        code: 0x0a,
                    },
                    Op::Advance { ms: 100 },
                    msg(S::RecentOut(0), F::ReceiptDelivered1),
                    VERIFY,
                ],
            ),
            |t| t.retransmits == 1 && t.receipts_ok == 1,
        ),
        (
            "async-receipt-out",
            with(
                link_up(),
                &[Op::SendReceipt(0), msg(S::RecentOut(0), F::ReceiptStored0)],
            ),
            |t| t.receipts_stored == 1,
        ),
        (
            "async-receipt-in",
            with(
                link_up(),
                &[
                    Op::SendEnvelope(0),
                    msg(S::RecentOut(0), F::ReceiptDelivered0),
                    VERIFY,
                    msg(S::In(2), F::ReceiptAcknowledged0),
                    VERIFY,
                ],
            ),
            |t| t.receipts_ok == 1 && t.async_receipts == 1,
        ),
        (
            "held-before-hello",
            vec![
                Op::Connect {
                    side: Side::Client,
                    exporter_ok: true,
                },
                msg(S::In(1), F::Envelope2),
                ctl(F::HelloFromServer),
                OPEN,
            ],
            |t| t.link_ups == 1 && t.delivered_in == 1,
        ),
        (
            "replay-and-conflict",
            with(
                link_up(),
                &[
                    msg(S::In(1), F::Envelope1),
                    OPEN,
                    msg(S::In(2), F::Envelope1),
                    msg(S::In(3), F::EnvelopeConflict),
                    Op::Answer {
                        event: 0,
                        how: 2 + 4 * 3,
                    },
                ],
            ),
            |t| t.delivered_in == 1 && t.replays_answered == 1,
        ),
        (
            "malformed-unreadable-reflected",
            with(
                link_up(),
                &[
                    msg(S::In(1), F::EnvelopeMalformed),
                    VERIFY,
                    msg(S::In(2), F::EnvelopeUnreadable),
                    msg(S::In(3), F::EnvelopeReflected),
                    OPEN,
                ],
            ),
            |t| t.malformed == 1 && t.stream_errors == 1 && t.delivered_in == 0,
        ),
        (
            "peer-close-reconnect-resend",
            with(
                link_up(),
                &[
                    Op::SendEnvelope(0),
                    ctl(F::Close),
                    Op::Disconnect,
                    link_up()[0].clone(),
                    link_up()[1].clone(),
                    msg(S::RecentOut(0), F::ReceiptDelivered0),
                    VERIFY,
                ],
            ),
            |t| t.link_ups == 2 && t.receipts_ok == 1,
        ),
        (
            "bad-channel-binding",
            vec![
                Op::Connect {
                    side: Side::Client,
                    exporter_ok: false,
                },
                ctl(F::HelloFromServer),
            ],
            |t| t.link_ups == 0 && t.link_downs == 1,
        ),
        (
            "reflected-role-hello",
            vec![
                Op::Connect {
                    side: Side::Client,
                    exporter_ok: true,
                },
                ctl(F::HelloFromClient),
            ],
            |t| t.link_ups == 0 && t.link_downs == 1,
        ),
        (
            "split-frames",
            vec![
                Op::Connect {
                    side: Side::Client,
                    exporter_ok: true,
                },
                Op::Frame {
                    stream: S::Control,
                    frame: F::HelloFromServer,
                    split: 128,
                    fin: false,
                },
                Op::Frame {
                    stream: S::In(1),
                    frame: F::Envelope1,
                    split: 3,
                    fin: true,
                },
                OPEN,
            ],
            |t| t.link_ups == 1 && t.delivered_in == 1,
        ),
        (
            "mutated-envelope",
            with(
                link_up(),
                &[
                    Op::Mutate {
                        stream: S::In(1),
                        frame: F::Envelope1,
                        at: 200,
                        xor: 1,
                    },
                    OPEN,
                ],
            ),
            |t| t.link_ups == 1 && t.delivered_in == 0,
        ),
        (
            "heartbeat-before-hello",
            vec![
                Op::Connect {
                    side: Side::Client,
                    exporter_ok: true,
                },
                Op::Data {
                    stream: S::Control,
                    fin: false,
                    data: vec![0x02, 0, 0, 0, 0],
                },
            ],
            |t| t.link_downs == 1,
        ),
        (
            "truncated-message-stream",
            with(
                link_up(),
                &[Op::Data {
                    stream: S::In(1),
                    fin: true,
                    data: vec![0x10, 0, 0, 0, 9, 1, 2],
                }],
            ),
            |t| t.stream_errors == 1 && t.link_downs == 0,
        ),
        (
            "local-close",
            with(link_up(), &[Op::Close { code: shutdown }, Op::Disconnect]),
            |t| t.link_downs == 1,
        ),
        (
            "refuse-async-receipt",
            with(
                link_up(),
                &[
                    msg(S::In(1), F::ReceiptAcknowledged0),
                    Op::Refuse {
                        event: 0,
                        code: 0x10,
                    },
                ],
            ),
            |t| t.async_receipts == 1,
        ),
        (
            "second-hello",
            with(link_up(), &[ctl(F::HelloFromServer)]),
            |t| t.link_ups == 1 && t.link_downs == 1,
        ),
        (
            "server-no-common-version",
            vec![server(), ctl(F::HelloOnlyVersion9)],
            |t| t.link_ups == 0 && t.link_downs == 1,
        ),
        (
            // Both ends offer versions 1 and 2: the link speaks 2 and takes the KeyUpdate.
            "key-update",
            with(
                link_up(),
                &[ctl(F::KeyUpdateFromPeer), ctl(F::HeartbeatPing)],
            ),
            |t| t.link_ups == 1 && t.key_updates == 1 && t.link_downs == 0,
        ),
        (
            "key-update-on-version-1-link",
            vec![
                server(),
                ctl(F::HelloOnlyVersion1),
                ctl(F::KeyUpdateFromPeer),
            ],
            |t| t.link_ups == 1 && t.key_updates == 0 && t.link_downs == 1,
        ),
        (
            "key-update-without-keys",
            with(
                link_up(),
                &[Op::Data {
                    stream: S::Control,
                    fin: false,
                    data: vec![0x04, 0, 0, 0, 0],
                }],
            ),
            |t| t.link_ups == 1 && t.key_updates == 0 && t.link_downs == 1,
        ),
        (
            // Four at once are taken; the fifth within the minute closes the link.
            "key-update-rate-limited",
            with(link_up(), &vec![ctl(F::KeyUpdateFromPeer); 5]),
            |t| t.key_updates == 4 && t.link_downs == 1,
        ),
        (
            "server-hello-with-foreign-key",
            vec![server(), ctl(F::HelloForeignKey)],
            |t| t.link_ups == 0 && t.link_downs == 1,
        ),
        (
            // The peer accepts one stream at a time: one envelope at a time.
            "server-wide-offer-one-stream",
            vec![
                server(),
                ctl(F::HelloWideOffer),
                Op::SendEnvelope(0),
                Op::SendEnvelope(1),
                msg(S::RecentOut(0), F::ReceiptDelivered0),
                VERIFY,
                msg(S::RecentOut(0), F::ReceiptDelivered1),
                VERIFY,
            ],
            |t| t.link_ups == 1 && t.receipts_ok == 2 && t.retransmits == 0,
        ),
        (
            "late-answers-after-reconnect",
            with(
                link_up(),
                &[
                    msg(S::In(1), F::Envelope1),
                    Op::SendEnvelope(2),
                    msg(S::RecentOut(0), F::ReceiptRejected2),
                    Op::Disconnect,
                    link_up()[0].clone(),
                    link_up()[1].clone(),
                    OPEN,
                    VERIFY,
                    Op::ReceiptVerified {
                        envelope: 2,
                        valid: false,
                    },
                ],
            ),
            |t| t.link_ups == 2 && t.delivered_in == 1,
        ),
    ]
}

/// Every generated seed: (target, file name, bytes).
fn generated_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, format!("seed-{name}"), bytes))
    };

    let (hello_s, hello_c, ping, echo, close) = (
        frame(F::HelloFromServer),
        frame(F::HelloFromClient),
        frame(F::HeartbeatPing),
        frame(F::HeartbeatEcho),
        frame(F::Close),
    );
    let env1 = frame(F::Envelope1);
    let mut big_stored = vec![0x12, 0, 0, 4, 0];
    big_stored.resize(5 + 1024, 0);
    // Mode byte: bit 0 set = message stream; bits 1-7 = chunk size (0 = all at once).
    add(
        "frame_decoder",
        "control-whole",
        cat(0x00, &[&hello_s, &ping, &close]),
    );
    add(
        "frame_decoder",
        "control-bytewise",
        cat(0x02, &[&hello_s, &ping, &close]),
    );
    add(
        "frame_decoder",
        "control-chunk-7",
        cat(0x0e, &[&hello_c, &echo]),
    );
    add(
        "frame_decoder",
        "message-envelope-whole",
        cat(0x01, &[&env1]),
    );
    add(
        "frame_decoder",
        "message-chunk-3",
        cat(
            0x07,
            &[&frame(F::ReceiptDelivered0), &frame(F::ReceiptStored0)],
        ),
    );
    add(
        "frame_decoder",
        "message-truncated-payload",
        cat(0x01, &[&env1[..env1.len() - 1]]),
    );
    add(
        "frame_decoder",
        "message-truncated-header",
        cat(0x03, &[&[0x10, 0, 0]]),
    );
    add("frame_decoder", "control-wrong-stream", cat(0x00, &[&env1]));
    add("frame_decoder", "message-wrong-stream", cat(0x01, &[&ping]));
    add(
        "frame_decoder",
        "message-too-large",
        cat(0x01, &[&[0x11, 0xff, 0xff, 0xff, 0xff]]),
    );
    add(
        "frame_decoder",
        "control-one-over-limit",
        cat(0x00, &[&[0x01, 0x00, 0x00, 0x40, 0x01]]),
    );
    add(
        "frame_decoder",
        "message-stored-at-limit",
        cat(0x01, &[&big_stored]),
    );
    add(
        "frame_decoder",
        "control-unknown-type",
        cat(0x00, &[&[0x7f, 0, 0, 0, 0], &ping]),
    );
    add(
        "frame_decoder",
        "control-empty-payloads",
        cat(0x04, &[&[0x02, 0, 0, 0, 0, 0x03, 0, 0, 0, 0]]),
    );

    for (name, f) in [
        ("seq1", F::Envelope1),
        ("seq2", F::Envelope2),
        ("seq4", F::Envelope4),
        ("conflict", F::EnvelopeConflict),
        ("malformed", F::EnvelopeMalformed),
        ("unreadable", F::EnvelopeUnreadable),
        ("reflected", F::EnvelopeReflected),
    ] {
        add("envelope_open", name, payload(f));
    }
    for (name, f) in [
        ("delivered-0", F::ReceiptDelivered0),
        ("delivered-1", F::ReceiptDelivered1),
        ("rejected-2", F::ReceiptRejected2),
        ("acknowledged-0", F::ReceiptAcknowledged0),
        ("receipt-stored", F::ReceiptStored0),
    ] {
        add("receipt_verify", name, payload(f));
    }
    add(
        "hello_verify",
        "valid-from-client",
        payload(F::HelloFromClient),
    );
    add("hello_verify", "wrong-role", payload(F::HelloFromServer));
    for (name, f) in [
        ("only-version-9", F::HelloOnlyVersion9),
        ("only-version-1", F::HelloOnlyVersion1),
        ("only-suite-2", F::HelloOnlySuite2),
        ("wide-offer", F::HelloWideOffer),
        ("signed-by-me", F::HelloFromMe),
        ("foreign-key", F::HelloForeignKey),
    ] {
        add("hello_verify", name, payload(f));
    }

    for (name, bytes) in key_update_seeds() {
        add("key_update", name, bytes);
    }

    for (name, bytes) in revocation_seeds() {
        add("revocation", name, bytes);
    }

    for (name, bytes) in bundle_update_seeds() {
        add("bundle_update", name, bytes);
    }

    for (name, ops, _) in session_seeds() {
        add("session", name, session_script(&ops));
    }

    // Bundles, raw and armored (what `hotlined peer add` reads).
    for (name, b) in [
        ("raw-valid", B::Valid),
        ("raw-wide", B::Wide),
        ("raw-foreign-key", B::ForeignKey),
        ("raw-only-version-2", B::OnlyVersion2),
        ("raw-name-too-long", B::NameTooLong),
        ("raw-too-many-addresses", B::TooManyAddresses),
    ] {
        add("bundle", name, bundle(b));
    }
    let valid = bundle(B::Valid);
    add("bundle", "raw-truncated", valid[..valid.len() - 1].to_vec());
    let text = armored(B::Valid);
    add("bundle", "armored-valid", text.clone().into_bytes());
    add("bundle", "armored-wide", armored(B::Wide).into_bytes());
    add(
        "bundle",
        "armored-crlf-indented",
        text.lines()
            .map(|l| format!("  {l}\r\n"))
            .collect::<String>()
            .into_bytes(),
    );
    let end = text.find("-----END").expect("END line");
    add("bundle", "armored-no-end", text.as_bytes()[..end].to_vec());
    add(
        "bundle",
        "armored-bad-base64",
        text.replacen('A', "!", 1).into_bytes(),
    );
    out
}

/// KeyUpdate payloads: the peer's valid one, and one breaking each rule of SPEC.md §4.3.5.
fn key_update_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let valid = payload(F::KeyUpdateFromPeer);
    let peer_keys = wire::KeyUpdate::decode(&valid[..])
        .expect("the fixture's KeyUpdate decodes")
        .encryption_keys;
    // My key certificate, as the foreign-key Hello carries it.
    let hello = wire::Hello::decode(&payload(F::HelloForeignKey)[..]).expect("Hello decodes");
    let my_keys = wire::HelloBody::decode(hello.body)
        .expect("HelloBody decodes")
        .encryption_keys;
    let update = |keys: Vec<wire::SignedEncryptionKey>| {
        wire::KeyUpdate {
            encryption_keys: keys,
        }
        .encode_to_vec()
    };
    let five = peer_keys.iter().cycle().take(5).cloned().collect();
    let mut not_canonical = valid.clone();
    not_canonical.extend_from_slice(&[0x10, 0x01]);
    vec![
        ("valid", valid),
        ("foreign-key", update(my_keys)),
        ("no-keys", Vec::new()),
        ("five-keys", update(five)),
        ("not-canonical", not_canonical),
    ]
}

/// The KeyUpdate seeds reach the rule each was made for: only the valid one verifies.
#[test]
fn key_update_seeds_fail_for_their_reasons() {
    use hotline_protocol::session::verify_key_update;
    let hello = wire::Hello::decode(&payload(F::HelloFromClient)[..]).expect("Hello decodes");
    let body = wire::HelloBody::decode(hello.body).expect("HelloBody decodes");
    let peer = hotline_protocol::NodeId::from_bytes(&body.identity).expect("the peer's id");
    for (name, bytes) in key_update_seeds() {
        let got = verify_key_update(&bytes, &peer);
        match name {
            "valid" => assert_eq!(got.map(|k| k.len()), Ok(1), "{name}"),
            "foreign-key" => assert_eq!(
                got,
                Err("KeyUpdate carries a key that does not verify"),
                "{name}"
            ),
            "no-keys" | "five-keys" => {
                assert_eq!(got, Err("KeyUpdate must carry 1 to 4 keys"), "{name}")
            }
            _ => assert_eq!(got, Err("KeyUpdate is not canonical"), "{name}"),
        }
    }
}

fn revocation(r: R) -> wire::KeyRevocation {
    let bytes = fixture_revocation(r).expect("the fuzzing fixture builds");
    wire::KeyRevocation::decode(bytes).expect("a fixture revocation decodes")
}

/// Revocations frame payloads and single `KeyRevocation`s: the peer's valid ones, and ones
/// breaking each rule of SPEC.md §4.6.1 and §4.6.2.
fn revocation_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frame = |rs: &[R]| {
        wire::Revocations {
            revocations: rs.iter().map(|r| revocation(*r)).collect(),
        }
        .encode_to_vec()
    };
    let valid = [R::Compromised, R::Retired, R::Wide];
    let cycle = |n| valid.iter().cycle().take(n).copied().collect::<Vec<_>>();
    let two = frame(&[R::Compromised, R::Retired]);
    let mut not_canonical = two.clone();
    not_canonical.extend_from_slice(&[0x10, 0x01]);
    let mut seeds = vec![
        ("frame-two", two),
        ("frame-sixteen", frame(&cycle(16))),
        ("frame-seventeen", frame(&cycle(17))),
        ("frame-empty", Vec::new()),
        ("frame-by-me", frame(&[R::Compromised, R::ByMe])),
        ("frame-unknown-kind", frame(&[R::UnknownKind])),
        ("frame-not-canonical", not_canonical),
    ];
    for (name, r) in [
        ("one-compromised", R::Compromised),
        ("one-retired", R::Retired),
        ("one-wide", R::Wide),
        ("one-by-me", R::ByMe),
        ("one-compromised-after-revoked", R::CompromisedAfterRevoked),
        ("one-reason-too-long", R::ReasonTooLong),
        ("one-unknown-kind", R::UnknownKind),
    ] {
        seeds.push((name, revocation(r).encode_to_vec()));
    }
    seeds
}

/// The revocation seeds reach the rule each was made for: only the valid ones verify.
#[test]
fn revocation_seeds_fail_for_their_reasons() {
    use hotline_protocol::revocation::{Revocation, RevocationError, verify_frame};
    let hello = wire::Hello::decode(&payload(F::HelloFromClient)[..]).expect("Hello decodes");
    let body = wire::HelloBody::decode(hello.body).expect("HelloBody decodes");
    let peer = hotline_protocol::NodeId::from_bytes(&body.identity).expect("the peer's id");
    let malformed = |m: &'static str| Err(RevocationError::Malformed(m));
    for (name, bytes) in revocation_seeds() {
        let frame = verify_frame(&bytes, &peer).map(|v| v.len());
        let one = Revocation::from_bytes(&bytes, &peer).map(|r| r.cutoff());
        match name {
            "frame-two" => assert_eq!(frame, Ok(2), "{name}"),
            "frame-sixteen" => assert_eq!(frame, Ok(16), "{name}"),
            "frame-seventeen" | "frame-empty" => assert_eq!(
                frame,
                Err("Revocations must carry 1 to 16 revocations"),
                "{name}"
            ),
            "frame-by-me" | "frame-unknown-kind" => assert_eq!(
                frame,
                Err("Revocations carries a revocation that does not verify"),
                "{name}"
            ),
            "frame-not-canonical" => {
                assert_eq!(frame, Err("Revocations is not canonical"), "{name}")
            }
            "one-compromised" | "one-retired" | "one-wide" => {
                assert!(one.is_ok(), "{name}: {one:?}")
            }
            "one-by-me" => assert_eq!(one, Err(RevocationError::WrongIssuer), "{name}"),
            "one-compromised-after-revoked" => assert_eq!(
                one,
                malformed("compromised_since_ms is after revoked_ms"),
                "{name}"
            ),
            "one-reason-too-long" => {
                assert_eq!(one, malformed("reason over 256 bytes"), "{name}")
            }
            "one-unknown-kind" => assert_eq!(one, malformed("unknown kind"), "{name}"),
            other => panic!("no reason listed for {other}"),
        }
        if name.starts_with("one-") {
            assert!(frame.is_err(), "{name} verifies as a frame");
        } else {
            assert!(one.is_err(), "{name} verifies as one revocation");
        }
    }
}

fn bundle(b: B) -> Vec<u8> {
    fixture_bundle(b)
        .expect("the fuzzing fixture builds")
        .to_vec()
}

fn armored(b: B) -> String {
    PeerBundle::from_bytes(&bundle(b))
        .expect("a valid fixture bundle")
        .to_armored()
}

#[test]
fn fixture_builds_every_frame() {
    for f in F::ALL {
        assert!(
            fixture_frame(f).is_some_and(|b| b.len() > 5),
            "{f:?} missing"
        );
    }
}

/// The valid fixture bundles verify and each invalid one fails for the reason it was made
/// for, so the seeds reach past the signature check.
#[test]
fn fixture_bundles_fail_for_their_reasons() {
    use hotline_protocol::bundle::{BundleError, MAX_ADDRESS_LEN, MAX_KEYS, MAX_NAME_LEN};
    let parse = |b| PeerBundle::from_bytes(&bundle(b));
    let valid = parse(B::Valid).expect("valid");
    let wide = parse(B::Wide).expect("wide");
    assert_eq!(wide.identity(), valid.identity());
    assert_eq!(wide.name().len(), MAX_NAME_LEN);
    assert_eq!(wide.encryption_keys().len(), MAX_KEYS);
    assert!(wide.addresses().iter().all(|a| a.len() == MAX_ADDRESS_LEN));
    assert_eq!(parse(B::ForeignKey), Err(BundleError::BadSignature));
    assert_eq!(parse(B::OnlyVersion2), Err(BundleError::UnsupportedVersion));
    assert!(matches!(parse(B::NameTooLong), Err(BundleError::Malformed(m)) if m.contains("name")));
    assert!(
        matches!(parse(B::TooManyAddresses), Err(BundleError::Malformed(m)) if m.contains("addresses"))
    );
    let mine = parse(B::ByMe).expect("mine is valid");
    assert_ne!(mine.identity(), valid.identity());
}

/// BundleUpdate payloads (the fixture's bundles wrapped, and the rules of SPEC.md §4.4.4 step 3
/// broken one by one) and BundleAccepted payloads.
fn bundle_update_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let update = |bytes: &[u8]| {
        wire::BundleUpdate {
            bundle: bytes.to_vec().into(),
        }
        .encode_to_vec()
    };
    let accepted = |sha: &[u8]| {
        wire::BundleAccepted {
            bundle_sha256: sha.to_vec().into(),
        }
        .encode_to_vec()
    };
    let valid = bundle(B::Valid);
    let sha = hotline_protocol::crypto::sha256(&valid);
    let not_canonical = |mut v: Vec<u8>| {
        v.extend_from_slice(&[0x10, 0x01]);
        v
    };
    let mut seeds = Vec::new();
    for (name, b) in [
        ("update-valid", B::Valid),
        ("update-wide", B::Wide),
        ("update-by-me", B::ByMe),
        ("update-foreign-key", B::ForeignKey),
        ("update-only-version-2", B::OnlyVersion2),
        ("update-name-too-long", B::NameTooLong),
        ("update-too-many-addresses", B::TooManyAddresses),
    ] {
        seeds.push((name, update(&bundle(b))));
    }
    seeds.extend([
        ("update-truncated-bundle", update(&valid[..valid.len() - 1])),
        ("update-not-canonical", not_canonical(update(&valid))),
        ("update-empty", Vec::new()),
        ("accepted-valid", accepted(&sha)),
        ("accepted-31-bytes", accepted(&sha[..31])),
        ("accepted-33-bytes", accepted(&[&sha[..], &[0]].concat())),
        ("accepted-not-canonical", not_canonical(accepted(&sha))),
    ]);
    seeds
}

/// The bundle update seeds reach the check each was made for: only the valid ones verify, and
/// each as what it is.
#[test]
fn bundle_update_seeds_fail_for_their_reasons() {
    use hotline_protocol::session::{verify_bundle_accepted, verify_bundle_update};
    let peer = PeerBundle::from_bytes(&bundle(B::Valid))
        .expect("valid")
        .identity();
    let (not_verifying, other) = (
        Err("BundleUpdate carries a bundle that does not verify"),
        Err("BundleUpdate carries another node's bundle"),
    );
    for (name, bytes) in bundle_update_seeds() {
        let update = verify_bundle_update(&bytes, &peer).map(|b| b.name().to_owned());
        let accepted = verify_bundle_accepted(&bytes).map(|_| ());
        match name {
            "update-valid" | "update-wide" => assert!(update.is_ok(), "{name}: {update:?}"),
            "update-by-me" => assert_eq!(update, other, "{name}"),
            "update-foreign-key"
            | "update-only-version-2"
            | "update-name-too-long"
            | "update-too-many-addresses"
            | "update-truncated-bundle"
            | "update-empty" => assert_eq!(update, not_verifying, "{name}"),
            "update-not-canonical" => {
                assert_eq!(update, Err("BundleUpdate is not canonical"), "{name}")
            }
            "accepted-valid" => assert_eq!(accepted, Ok(()), "{name}"),
            "accepted-31-bytes" | "accepted-33-bytes" => assert_eq!(
                accepted,
                Err("BundleAccepted digest is not 32 bytes"),
                "{name}"
            ),
            "accepted-not-canonical" => {
                assert_eq!(accepted, Err("BundleAccepted is not canonical"), "{name}")
            }
            other => panic!("no reason listed for {other}"),
        }
        if name.starts_with("update-") {
            assert!(accepted.is_err(), "{name} verifies as a BundleAccepted");
        } else {
            assert!(update.is_err(), "{name} verifies as a BundleUpdate");
        }
    }
}

#[test]
fn session_seeds_reach_their_states() {
    for (name, ops, expect) in session_seeds() {
        let script = session_script(&ops);
        let trace = fuzzing::session_run(&script);
        assert_eq!(
            trace.ops,
            ops.len(),
            "{name}: script did not decode to its operations"
        );
        assert!(
            expect(&trace),
            "{name} no longer reaches its state: {trace:?}"
        );
    }
}

#[test]
fn committed_seeds_are_current() {
    for (target, name, bytes) in generated_seeds() {
        let path = corpus_dir(target).join(&name);
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} is missing or stale; run: {REGENERATE}",
            path.display()
        );
    }
}

/// Writes the generated seeds into `fuzz/corpus/<target>/seed-*`. Run after a change to the
/// wire format or the fuzzing fixture:
/// `cargo test -p hotline-protocol --test fuzz_corpus -- --ignored regenerate_seed_corpus`
#[test]
#[ignore = "writes into fuzz/corpus; run on purpose"]
fn regenerate_seed_corpus() {
    for target in TARGETS {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        for e in std::fs::read_dir(&dir).expect("read corpus dir") {
            let p = e.expect("corpus entry").path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"))
            {
                std::fs::remove_file(p).expect("remove old seed");
            }
        }
    }
    for (target, name, bytes) in generated_seeds() {
        std::fs::write(corpus_dir(target).join(name), bytes).expect("write seed");
    }
}
