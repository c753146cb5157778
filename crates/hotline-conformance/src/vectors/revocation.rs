//! `revocation.json`: key revocations (SPEC.md §4.6, version 2). Its cases, this
//! implementation's results for them, and the independent checks of another implementation's
//! revocations, kept together here as the file is one subject.

use std::collections::BTreeMap;

use bytes::Bytes;
use hotline_protocol::crypto::{self, Label};
use hotline_protocol::envelope::Envelope;
use hotline_protocol::frame::{self, FrameType, StreamKind};
use hotline_protocol::identity::NodeId;
use hotline_protocol::revocation::{self, Revocation, RevokedKind, Standing};

use super::committed::{Committed, Kind, Src};
use super::hex;
use super::inputs::Keys;
use super::receive::{error, one_frame, outcome};
use super::verify::{Check, Lookup};

/// The vector file.
pub const FILE: &str = "revocation.json";

/// The two revocations of the file, in the order of its Revocations frame.
const REVOCATIONS: [&str; 2] = ["compromised", "retired"];

/// The kind of the file's envelopes: opened by node B holding both revocations.
const ENVELOPE_KIND: &str = "envelope_v2_revocations";

use Kind::{Hex, Int, Name};
use Src::{At, Same};

/// The positive cases of `revocation.json`, as `committed::POSITIVE` lists them.
pub const POSITIVE: &[(&str, &str, Kind, Src)] = &[
    (FILE, "compromised.body", Hex, Same),
    (FILE, "compromised.signed_bytes", Hex, Same),
    (FILE, "compromised.signature", Hex, Same),
    (FILE, "compromised.key_revocation", Hex, Same),
    (FILE, "retired.body", Hex, Same),
    (FILE, "retired.signed_bytes", Hex, Same),
    (FILE, "retired.signature", Hex, Same),
    (FILE, "retired.key_revocation", Hex, Same),
    (FILE, "revocations.payload", Hex, Same),
    (FILE, "revocations.frame", Hex, Same),
    (
        FILE,
        "compromised.key_revocation#cutoff_ms",
        Int,
        At(FILE, "compromised.cutoff_ms"),
    ),
    (
        FILE,
        "retired.key_revocation#cutoff_ms",
        Int,
        At(FILE, "retired.cutoff_ms"),
    ),
    (
        FILE,
        "revocations.frame#count",
        Int,
        At(FILE, "revocations.count"),
    ),
    (
        FILE,
        "standing.officer_before_compromise.standing",
        Name,
        Same,
    ),
    (FILE, "standing.officer_at_compromise.standing", Name, Same),
    (
        FILE,
        "standing.officer_after_revocation.standing",
        Name,
        Same,
    ),
    (
        FILE,
        "standing.retired_before_revocation.standing",
        Name,
        Same,
    ),
    (FILE, "standing.retired_at_revocation.standing", Name, Same),
    (FILE, "standing.same_key_other_issuer.standing", Name, Same),
    (FILE, "standing.other_key.standing", Name, Same),
];

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

/// The SPEC.md §4.6.3 name of a standing.
fn standing_name(s: Standing) -> &'static str {
    match s {
        Standing::NotRevoked => "NOT_REVOKED",
        Standing::BeforeCutoff { .. } => "BEFORE_CUTOFF",
        Standing::AfterCutoff { .. } => "AFTER_CUTOFF",
    }
}

/// Signs the revocation `name` of the file as node A, from its committed inputs.
fn issue(c: &Committed, k: &Keys, name: &str) -> Result<Revocation, String> {
    let at = |field: &str| format!("{name}.{field}");
    if c.u64(FILE, &at("kind"))? != 1 {
        return Err(format!(
            "internal error: {FILE} {name} is not of kind OFFICER"
        ));
    }
    let since = c.u64(FILE, &at("compromised_since_ms"))?;
    Revocation::issue(
        &k.a,
        RevokedKind::Officer,
        c.bytes32(FILE, &at("key"))?,
        c.u64(FILE, &at("revoked_ms"))?,
        (since != 0).then_some(since),
        c.str(FILE, &at("reason"))?,
    )
    .map_err(|e| format!("cannot issue {name}: {e}"))
}

/// The committed revocations, checked as node A's: what node B holds for the file's envelopes
/// and standings.
fn held(c: &Committed, k: &Keys) -> Result<Vec<Revocation>, String> {
    REVOCATIONS
        .iter()
        .map(|name| {
            Revocation::from_bytes(
                &c.bytes(FILE, &format!("{name}.key_revocation"))?,
                &k.a.id(),
            )
            .map_err(|e| format!("internal error: the committed {name} does not verify: {e}"))
        })
        .collect()
}

/// Verifies Revocations frame bytes as node B receiving them from node A on the control
/// stream of a link that negotiated version 2 (SPEC.md §4.6.2).
fn frame_as_b(bytes: &[u8], k: &Keys) -> Result<Vec<Revocation>, String> {
    let f = one_frame(bytes, StreamKind::Control)?;
    if f.ty != FrameType::Revocations {
        return Err(format!("a {:?} frame, not Revocations", f.ty));
    }
    revocation::verify_frame(&f.payload, &k.a.id()).map_err(|why| format!("MALFORMED_FRAME: {why}"))
}

/// What node B does with envelope bytes from node A at `now` while holding `held`
/// (SPEC.md §7.6 with step 12a).
fn envelope_outcome(input: &[u8], k: &Keys, now: u64, held: &[Revocation]) -> String {
    match Envelope::parse(Bytes::copy_from_slice(input)) {
        Err(e) => error(e),
        Ok(e) => match e.open_checked(&k.b.id(), &k.a.id(), &k.b_keys, now, held) {
            Ok(o) => format!("ACCEPTED:{}", o.binding.as_str()),
            Err(r) => format!("REJECTED:{}", r.reason),
        },
    }
}

/// This implementation's results for every case of the file, from the committed inputs.
pub fn results(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    let mut r = BTreeMap::new();
    let mut issued = Vec::new();
    for name in REVOCATIONS {
        let rev = issue(c, k, name)?;
        let w = rev.to_wire();
        r.insert(format!("{name}.body"), h(&w.body));
        r.insert(
            format!("{name}.signed_bytes"),
            h(&crypto::tbs(Label::KeyRevocation, &[&w.body])),
        );
        r.insert(format!("{name}.signature"), h(&w.signature));
        r.insert(format!("{name}.key_revocation"), h(rev.bytes()));
        // The committed bytes, read back.
        let cutoff = Revocation::from_bytes(
            &c.bytes(FILE, &format!("{name}.key_revocation"))?,
            &k.a.id(),
        )
        .map_or_else(error, |v| v.cutoff().to_string());
        r.insert(format!("{name}.key_revocation#cutoff_ms"), cutoff);
        issued.push(rev);
    }
    let payload = revocation::frame_payload(&issued);
    r.insert("revocations.payload".into(), h(&payload));
    r.insert(
        "revocations.frame".into(),
        h(&frame::encode(FrameType::Revocations, &payload)),
    );
    r.insert(
        "revocations.frame#count".into(),
        frame_as_b(&c.bytes(FILE, "revocations.frame")?, k)
            .map_or_else(error, |v| v.len().to_string()),
    );

    let held = held(c, k)?;
    for (_, key, _, _) in POSITIVE.iter().filter(|p| p.1.starts_with("standing.")) {
        let base = key.trim_end_matches(".standing");
        let issuer = NodeId::from_bytes(&c.bytes(FILE, &format!("{base}.issuer"))?)
            .ok_or_else(|| format!("internal error: {FILE} {base}.issuer is not a node id"))?;
        let s = revocation::standing(
            &held,
            &issuer,
            RevokedKind::Officer,
            &c.bytes(FILE, &format!("{base}.key"))?,
            c.u64(FILE, &format!("{base}.claimed_ms"))?,
        );
        r.insert((*key).to_owned(), standing_name(s).to_owned());
    }

    // The envelopes and the negative Revocations frames.
    let exporter = c.bytes32("hello.json", "exporter")?;
    let now = c.u64(FILE, "now_ms")?;
    let env = Envelope::parse(Bytes::from(c.bytes("envelope.json", "envelope")?))
        .map_err(|e| format!("the committed envelope does not parse: {e}"))?;
    for n in c.negatives(FILE)? {
        let got = if n.kind == ENVELOPE_KIND {
            envelope_outcome(&n.input, k, now, &held)
        } else {
            outcome(&n.kind, &n.input, k, &exporter, now, &env)
        };
        r.insert(n.name, got);
    }
    Ok(r)
}

/// The independent checks of another implementation's values of `revocation.json`.
pub fn checks(c: &Committed, k: &Keys, theirs: &Lookup<'_>) -> Result<Vec<Check>, String> {
    let bytes = |key: &str| theirs(FILE, key).and_then(|v| hex::decode(&v));
    let check = |key: &str, outcome: Option<Result<(), String>>| Check {
        file: FILE,
        name: format!("verify:{key}"),
        outcome,
    };
    let held = held(c, k)?;
    let a = k.a.id();
    let mut out = Vec::new();
    for (name, want) in REVOCATIONS.iter().zip(&held) {
        let key = format!("{name}.key_revocation");
        out.push(check(
            &key,
            bytes(&key).map(|v| {
                let got = Revocation::from_bytes(&v, &a)
                    .map_err(|e| format!("refused as node A's: {e}"))?;
                let fields = |r: &Revocation| {
                    (
                        *r.key(),
                        r.revoked(),
                        r.compromised_since(),
                        r.reason().to_owned(),
                    )
                };
                if fields(&got) == fields(want) {
                    Ok(())
                } else {
                    Err("verifies, but revokes another key or states other times".to_owned())
                }
            }),
        ));
        let signed = c.bytes(FILE, &format!("{name}.signed_bytes"))?;
        let key = format!("{name}.signature");
        out.push(check(
            &key,
            bytes(&key).map(|s| {
                if crypto::verify_strict_raw(a.as_bytes(), &signed, &s) {
                    Ok(())
                } else {
                    Err("does not verify strictly over the committed signed_bytes".to_owned())
                }
            }),
        ));
    }
    out.push(check(
        "revocations.frame",
        bytes("revocations.frame").map(|v| {
            let got = frame_as_b(&v, k).map_err(|e| format!("refused as node B: {e}"))?;
            if got
                .iter()
                .map(Revocation::key)
                .eq(held.iter().map(Revocation::key))
            {
                Ok(())
            } else {
                Err("verifies, but carries other revocations or another order".to_owned())
            }
        }),
    ));
    Ok(out)
}
