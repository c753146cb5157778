//! What this implementation does on receiving: decoding frames, opening envelopes as node B,
//! verifying receipts as node A, and the outcome of each negative vector.

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::content::{OpenedContent, Precedence, Tlp};
use hotline_protocol::envelope::{Envelope, ParseError};
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::hello::{self, Side};
use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::receipt::Receipt;
use hotline_protocol::revocation;
use hotline_protocol::session::{verify_bundle_accepted, verify_bundle_update, verify_key_update};
use prost::Message;

use super::inputs::{Keys, offer};

/// The value written for a decoding that failed (VECTORS.md, "Values").
pub fn error(e: impl std::fmt::Display) -> String {
    format!("ERROR: {e}")
}

/// Decodes `bytes` as `M` and requires the canonical encoding (SPEC.md §5.3).
pub fn canonical<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    let m = M::decode(bytes).ok()?;
    (m.encode_to_vec() == bytes).then_some(m)
}

/// The single frame that `bytes` hold on a stream of `kind`, checked as SPEC.md §5.2 says.
pub fn one_frame(bytes: &[u8], kind: StreamKind) -> Result<frame::Frame, String> {
    let mut d = Decoder::new(kind);
    d.push(bytes);
    let first = d
        .next_frame()
        .map_err(|e| format!("{}: {e}", e.code()))?
        .ok_or("TRUNCATED_FRAME: no complete frame")?;
    if !matches!(d.next_frame(), Ok(None)) {
        return Err("more than one frame".into());
    }
    d.finish().map_err(|e| format!("{}: {e}", e.code()))?;
    Ok(first)
}

/// Decodes a control frame holding a canonical `M` of type `ty`.
pub fn control_frame<M: Message + Default>(bytes: &[u8], ty: FrameType) -> Result<M, String> {
    let f = one_frame(bytes, StreamKind::Control)?;
    if f.ty != ty {
        return Err(format!("a {:?} frame, not {ty:?}", f.ty));
    }
    canonical::<M>(&f.payload).ok_or_else(|| "MALFORMED_FRAME: payload not canonical".into())
}

/// The SPEC.md §12.8 name of a precedence.
pub fn precedence_name(p: Precedence) -> &'static str {
    p.as_str()
}

/// The SPEC.md §12.8 name of a TLP value.
pub fn tlp_name(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "CLEAR",
        Tlp::Green => "GREEN",
        Tlp::Amber => "AMBER",
        Tlp::AmberStrict => "AMBER_STRICT",
        Tlp::Red => "RED",
    }
}

/// The SPEC.md §12.1 name of a close code number.
pub fn close_code_name(code: u32) -> String {
    CloseCode::from_code(code).map_or_else(|| format!("UNREGISTERED_{code}"), |c| c.to_string())
}

/// Opens envelope bytes as node B receiving from node A at `now` (SPEC.md §7.6).
pub fn open_as_b(bytes: &[u8], k: &Keys, now: u64) -> Result<(Envelope, OpenedContent), String> {
    let env = Envelope::parse(Bytes::copy_from_slice(bytes)).map_err(|e| e.to_string())?;
    let opened = env
        .open(&k.b.id(), &k.a.id(), &k.b_keys, now)
        .map_err(|r| format!("REJECTED:{r}"))?;
    Ok((env, opened))
}

/// Verifies receipt bytes as node A receiving them from node B, answering `env` (SPEC.md
/// §8.4, as on a receipt stream): `Ok` or the stream code.
pub fn receipt_as_a(bytes: &[u8], k: &Keys, env: &Envelope) -> Result<Receipt, String> {
    let r = Receipt::verify(bytes, &k.b.id()).map_err(|e| format!("STREAM:{}", e.code()))?;
    if r.message_id() != env.message_id() {
        return Err(format!("STREAM:{}", CloseCode::UnknownMessage));
    }
    if !r.answers(env) {
        return Err(format!("STREAM:{}", CloseCode::BadReceipt));
    }
    Ok(r)
}

/// Verifies KeyUpdate frame bytes as node B receiving them from node A on the control stream
/// of a link that negotiated version 2 (SPEC.md §4.3.5): A's keys, or the close code.
pub fn key_update_as_b(bytes: &[u8], k: &Keys) -> Result<Vec<EncryptionKey>, String> {
    let f = control_input(bytes)?;
    if f.ty != FrameType::KeyUpdate {
        return Err(error(format!("a {:?} frame, not KeyUpdate", f.ty)));
    }
    verify_key_update(&f.payload, &k.a.id())
        .map_err(|_| format!("CLOSE:{}", CloseCode::MalformedFrame))
}

/// The single frame node B reads from `bytes` on the control stream, or the outcome of a
/// framing error (`CLOSE:<code>`, SPEC.md §5.2).
fn control_input(bytes: &[u8]) -> Result<frame::Frame, String> {
    let close = |e: frame::FrameError| format!("CLOSE:{}", e.code());
    let mut d = Decoder::new(StreamKind::Control);
    d.push(bytes);
    let first = d.next_frame().map_err(close)?;
    match (first, d.next_frame().map_err(close)?) {
        (Some(f), None) => Ok(f),
        (None, _) => Err(d
            .finish()
            .map_err(close)
            .err()
            .unwrap_or_else(|| error("no frame"))),
        (Some(_), Some(_)) => Err(error("more than one frame")),
    }
}

/// What node B does with envelope bytes from node A at `now` (SPEC.md §7.6): `accepted` says
/// what an accepted envelope's outcome is.
fn envelope_outcome(
    input: &[u8],
    k: &Keys,
    now: u64,
    accepted: impl FnOnce(&OpenedContent) -> String,
) -> String {
    match Envelope::parse(Bytes::copy_from_slice(input)) {
        Err(ParseError::Unreadable) => format!("STREAM:{}", CloseCode::MalformedFrame),
        Err(ParseError::Malformed { .. }) => format!("REJECTED:{}", RejectReason::Malformed),
        Err(e) => error(e),
        Ok(e) => match e.open(&k.b.id(), &k.a.id(), &k.b_keys, now) {
            Ok(o) => accepted(&o),
            Err(r) => format!("REJECTED:{}", r.reason),
        },
    }
}

/// What this implementation does with a negative vector's input, in the context that the
/// description of `negative.json`, `key_update.json`, `officer_v2.json`, `revocation.json` or
/// `bundle_update.json` gives (the envelopes of `revocation.json` are opened in
/// `super::revocation`).
pub fn outcome(
    kind: &str,
    input: &[u8],
    k: &Keys,
    exporter: &[u8; 32],
    now: u64,
    env: &Envelope,
) -> String {
    match kind {
        "envelope" => envelope_outcome(input, k, now, |_| "ACCEPTED".into()),
        // On a link that negotiated version 2 (`officer_v2.json`), an accepted envelope says
        // which rule its officer signature verified by (SPEC.md §7.5.1).
        "envelope_v2" => envelope_outcome(input, k, now, |o| {
            format!("ACCEPTED:{}", o.binding.as_str())
        }),
        "receipt" => match receipt_as_a(input, k, env) {
            Ok(_) => "ACCEPTED".into(),
            Err(code) => code,
        },
        "hello" => match hello::verify(input, &k.b.id(), Side::Server, exporter, &offer()) {
            Ok(_) => "ACCEPTED".into(),
            Err(code) => format!("CLOSE:{code}"),
        },
        // On the control stream after both Hellos, from A to B: a KeyUpdate, Revocations,
        // BundleUpdate or BundleAccepted frame is an unexpected frame on a version 1 link (as
        // any frame type version 1 lacks), checked on version 2 (SPEC.md §4.3.5, §4.6.2,
        // §4.4.4).
        "control_v1" => match control_input(input) {
            Ok(f) if version_2_only(f.ty) => format!("CLOSE:{}", CloseCode::UnexpectedFrame),
            Ok(f) => error(format!("a {:?} frame, not one of version 2", f.ty)),
            Err(outcome) => outcome,
        },
        "control_v2" => match control_input(input) {
            Ok(f) if f.ty == FrameType::Revocations => {
                match revocation::verify_frame(&f.payload, &k.a.id()) {
                    Ok(_) => "ACCEPTED".into(),
                    Err(_) => format!("CLOSE:{}", CloseCode::MalformedFrame),
                }
            }
            Ok(f) if f.ty == FrameType::BundleUpdate => {
                match verify_bundle_update(&f.payload, &k.a.id()) {
                    Ok(_) => "ACCEPTED".into(),
                    Err(_) => format!("CLOSE:{}", CloseCode::MalformedFrame),
                }
            }
            Ok(f) if f.ty == FrameType::BundleAccepted => {
                match verify_bundle_accepted(&f.payload) {
                    Ok(_) => "ACCEPTED".into(),
                    Err(_) => format!("CLOSE:{}", CloseCode::MalformedFrame),
                }
            }
            _ => match key_update_as_b(input, k) {
                Ok(_) => "ACCEPTED".into(),
                Err(code) => code,
            },
        },
        "frame_message" | "frame_control" => {
            let (sk, prefix) = if kind == "frame_message" {
                (StreamKind::Message, "STREAM")
            } else {
                (StreamKind::Control, "CLOSE")
            };
            let mut d = Decoder::new(sk);
            d.push(input);
            loop {
                match d.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => return format!("{prefix}:{}", e.code()),
                }
            }
            match d.finish() {
                Ok(()) => "ACCEPTED".into(),
                Err(e) => format!("{prefix}:{}", e.code()),
            }
        }
        other => error(format!("unknown vector kind {other}")),
    }
}

/// The control frame types a node accepts only on a link that negotiated version 2.
fn version_2_only(ty: FrameType) -> bool {
    matches!(
        ty,
        FrameType::KeyUpdate
            | FrameType::Revocations
            | FrameType::BundleUpdate
            | FrameType::BundleAccepted
    )
}
