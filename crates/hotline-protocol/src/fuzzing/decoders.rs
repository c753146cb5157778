//! Fuzz entry points for the frame decoder and the signed wire objects (envelope, receipt, Hello,
//! KeyUpdate, peer bundle, bundle update, key revocation).

use bytes::Bytes;
use prost::Message;

use super::fixture::fixture;
use crate::bundle::{self as peer_bundle, PeerBundle};
use crate::crypto;
use crate::envelope::{Envelope, MAX_ENVELOPE_LEN, ParseError};
use crate::frame::{
    Decoder, Frame, FrameError, FrameType, HEADER_LEN, MAX_CONTROL_LEN, StreamKind,
};
use crate::hello::{self, Offer, Side};
use crate::identity::NodeId;
use crate::receipt::{self, Receipt, ReceiptKind};
use crate::revocation::{
    self as revoke, MAX_PER_FRAME, MAX_REASON_LEN, MAX_REVOCATION_LEN, Revocation, Standing,
};
use crate::session::{
    MAX_ANNOUNCED_KEYS, key_update_payload, verify_bundle_accepted, verify_bundle_update,
    verify_key_update,
};
use crate::sim::EPOCH;
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
/// connection with the fixed exporter value, against the default offer (versions 1 and 2).
///
/// Checks that a Hello that verifies names the pinned peer, negotiates the highest version
/// and suite both sides offered, and carries only encryption keys owned by the peer.
pub fn hello_verify(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    let ours = Offer::default();
    if let Ok(h) = hello::verify(data, &fx.peer, Side::Client, &fx.exporter, &ours) {
        let highest = |a: &[u32], b: &[u32]| a.iter().filter(|v| b.contains(v)).max().copied();
        assert_eq!(h.identity, fx.peer, "Hello verified for another identity");
        assert_eq!(
            Some(h.version),
            highest(&ours.versions, &h.offer.versions),
            "not the highest common version"
        );
        assert_eq!(
            Some(h.suite),
            highest(&ours.suites, &h.offer.suites),
            "not the highest common suite"
        );
        assert!(
            h.encryption_keys.iter().all(|k| k.owner() == fx.peer),
            "a key not owned by the peer"
        );
    }
}

/// KeyUpdate verification (SPEC.md §4.3.5) of a payload from the fixed peer, as a receiver
/// on a version 2 link checks it.
///
/// Checks that a KeyUpdate that verifies carries 1 to 4 keys, all owned by the peer, and was
/// in canonical form: the keys it yields encode back to the exact input.
pub fn key_update(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    if let Ok(keys) = verify_key_update(data, &fx.peer) {
        assert!(
            (1..=MAX_ANNOUNCED_KEYS).contains(&keys.len()),
            "a KeyUpdate verified with {} keys",
            keys.len()
        );
        assert!(
            keys.iter().all(|k| k.owner() == fx.peer),
            "a key not owned by the peer"
        );
        assert_eq!(
            key_update_payload(&keys),
            data,
            "a non-canonical KeyUpdate verified"
        );
    }
}

/// Key revocations (SPEC.md §4.6): `revocation::verify_frame` of the input as a Revocations
/// payload from the fixed peer, and `Revocation::from_bytes` of the input as one of the peer's
/// `KeyRevocation`s (as stored, or in an evidence bundle).
///
/// Checks that a frame that verifies carries 1 to 16 revocations, all issued by the peer, and
/// was canonical (its revocations encode back to the exact input); and that every revocation
/// that verifies, alone or in a frame, keeps its exact bytes, keeps every field rule, reads
/// back the same from its bytes, and decides at its cutoff: a signature claiming the instant
/// before counts, one claiming the cutoff itself does not.
pub fn revocation(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    if let Ok(revs) = revoke::verify_frame(data, &fx.peer) {
        assert!(
            (1..=MAX_PER_FRAME).contains(&revs.len()),
            "a Revocations frame verified with {} revocations",
            revs.len()
        );
        assert_eq!(
            revoke::frame_payload(&revs),
            data,
            "a non-canonical Revocations verified"
        );
        for r in &revs {
            accepted_revocation(r, &fx.peer);
        }
    }
    if let Ok(r) = Revocation::from_bytes(data, &fx.peer) {
        assert_eq!(
            r.bytes().as_ref(),
            data,
            "verify changed the revocation bytes"
        );
        accepted_revocation(&r, &fx.peer);
    }
}

/// The invariants of a revocation that verified as the peer's.
fn accepted_revocation(r: &Revocation, peer: &NodeId) {
    assert_eq!(
        r.issuer(),
        *peer,
        "a revocation verified for another issuer"
    );
    assert!(r.revoked() > 0, "revoked_ms 0 accepted");
    assert!(
        r.compromised_since()
            .is_none_or(|c| 0 < c && c <= r.revoked()),
        "compromised after revoked accepted"
    );
    assert!(r.reason().len() <= MAX_REASON_LEN, "reason over the limit");
    assert!(
        r.bytes().len() <= MAX_REVOCATION_LEN,
        "revocation over the limit"
    );
    assert_eq!(
        Revocation::from_bytes(r.bytes(), peer).as_ref(),
        Ok(r),
        "bytes do not read back"
    );
    let (cutoff, one) = (r.cutoff(), core::slice::from_ref(r));
    assert!(0 < cutoff && cutoff <= r.revoked(), "cutoff out of range");
    let at = |t| revoke::standing(one, peer, r.kind(), r.key(), t);
    assert_eq!(
        at(cutoff),
        Standing::AfterCutoff {
            cutoff,
            compromised: r.compromised_since().is_some()
        },
        "a signature at the cutoff still counts"
    );
    assert!(
        at(cutoff - 1).counts(),
        "a signature before the cutoff does not count"
    );
    assert!(
        revoke::check_officer(one, peer, r.key(), cutoff).is_err(),
        "an envelope created at the cutoff passes"
    );
}

/// Bundle updates (SPEC.md §4.4.4): `session::verify_bundle_update` of the input as a
/// BundleUpdate payload from the fixed peer, and `session::verify_bundle_accepted` of the input
/// as a BundleAccepted payload.
///
/// Checks that a BundleUpdate that verifies was canonical (its bundle encodes back to the exact
/// input), carries a bundle of the peer's identity that keeps every bundle invariant and reads
/// back the same on its own (§4.4.3), and is refused as coming from anyone else (me); and that
/// a BundleAccepted that verifies was canonical and names exactly 32 bytes.
pub fn bundle_update(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    if let Ok(b) = verify_bundle_update(data, &fx.peer) {
        let payload = wire::BundleUpdate {
            bundle: b.bytes().clone(),
        }
        .encode_to_vec();
        assert_eq!(payload, data, "a non-canonical BundleUpdate verified");
        accepted_bundle(&b, &fx.peer);
        assert!(
            verify_bundle_update(data, &fx.me.id()).is_err(),
            "the peer's bundle verified as another node's"
        );
    }
    if let Ok(sha) = verify_bundle_accepted(data) {
        let payload = wire::BundleAccepted {
            bundle_sha256: Bytes::copy_from_slice(&sha),
        }
        .encode_to_vec();
        assert_eq!(payload, data, "a non-canonical BundleAccepted verified");
    }
}

/// Peer bundle parsing (SPEC.md §4.4), raw and armored: `PeerBundle::from_bytes` and
/// `PeerBundle::from_armored` on the input, and `from_armored` on the input wrapped in armor.
///
/// Checks that a bundle that verifies was self-signed by the fixture's peer (the only
/// identity whose bundles the fuzzer holds: it cannot forge a signature), keeps its exact
/// bytes, respects every limit, and reads back the same from its bytes and from its armored
/// form; that armoring the input changes nothing (same bundle or same error as the raw
/// bytes); and that input that is not UTF-8 is read as raw bytes.
pub fn bundle(data: &[u8]) {
    let Some(fx) = fixture() else { return };
    let raw = PeerBundle::from_bytes(data);
    if let Ok(b) = &raw {
        assert_eq!(b.bytes().as_ref(), data, "parse changed the bundle bytes");
        accepted_bundle(b, &fx.peer);
    }
    let armored = PeerBundle::from_armored(data);
    if let Ok(b) = &armored {
        accepted_bundle(b, &fx.peer);
    }
    if core::str::from_utf8(data).is_err() {
        assert_eq!(armored, raw, "non-text input not read as raw bytes");
    }
    assert_eq!(
        PeerBundle::from_armored(armor(data).as_bytes()),
        raw,
        "armor changed the verdict on the same bytes"
    );
}

/// The invariants of a bundle that verified.
fn accepted_bundle(b: &PeerBundle, peer: &crate::identity::NodeId) {
    assert_eq!(
        b.identity(),
        *peer,
        "a bundle verified for an unknown identity"
    );
    assert!(
        !b.name().is_empty()
            && b.name().len() <= peer_bundle::MAX_NAME_LEN
            && !b.name().chars().any(char::is_control),
        "name out of bounds"
    );
    assert!((1..=peer_bundle::MAX_KEYS).contains(&b.encryption_keys().len()));
    assert!(
        b.encryption_keys()
            .iter()
            .all(|k| k.owner() == b.identity()),
        "an encryption key not certified by the bundle's identity"
    );
    assert!(
        b.addresses().len() <= peer_bundle::MAX_ADDRESSES
            && b.addresses()
                .iter()
                .all(|a| a.len() <= peer_bundle::MAX_ADDRESS_LEN),
        "addresses out of bounds"
    );
    assert!(b.bytes().len() <= peer_bundle::MAX_BUNDLE_LEN);
    assert_eq!(
        PeerBundle::from_bytes(b.bytes()).as_ref(),
        Ok(b),
        "bytes do not read back"
    );
    assert_eq!(
        PeerBundle::from_armored(b.to_armored().as_bytes()).as_ref(),
        Ok(b),
        "armored form does not read back"
    );
}

/// `data` in armor, as `PeerBundle::to_armored` writes it (base64 in 64-column lines), but
/// for any bytes.
fn armor(data: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(data);
    let mut out = String::from("-----BEGIN HOTLINE PEER BUNDLE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END HOTLINE PEER BUNDLE-----\n");
    out
}
