//! `officer_v2.json`: version 2 officer signatures (SPEC.md §7.5.1, §8.3). Its cases, this
//! implementation's results for them, and the independent checks of another implementation's
//! signatures, kept together here as the file is one subject.

use std::collections::BTreeMap;

use hotline_protocol::content::{self, OpenedContent, Precedence, Tlp};
use hotline_protocol::crypto::{self, Label};
use hotline_protocol::officer::{Binding, Credential, Marking, Role};
use hotline_protocol::wire;
use prost::Message;

use super::committed::{Committed, Kind, Src};
use super::hex;
use super::inputs::Keys;
use super::receive::{canonical, error};
use super::verify::{Check, Lookup, credential};

/// The vector file.
pub const FILE: &str = "officer_v2.json";

use Kind::{Hex, Text};
use Src::{Const, Same};

/// The positive cases of `officer_v2.json`, as `committed::POSITIVE` lists them.
pub const POSITIVE: &[(&str, &str, Kind, Src)] = &[
    (FILE, "content_v2.body_sha256", Hex, Same),
    (FILE, "content_v2.credential_sha256", Hex, Same),
    (FILE, "content_v2.signed_bytes", Hex, Same),
    (FILE, "content_v2.signature", Hex, Same),
    (FILE, "content_v2.content", Hex, Same),
    (FILE, "other_credential.credential", Hex, Same),
    (FILE, "other_credential.credential_sha256", Hex, Same),
    (FILE, "ack_v2.credential_sha256", Hex, Same),
    (FILE, "ack_v2.signed_bytes", Hex, Same),
    (FILE, "ack_v2.signature", Hex, Same),
    (FILE, "ack_v2.officer_ack", Hex, Same),
    (FILE, "content_v2.content#binding", Text, Const("v2")),
    (FILE, "ack_v2.officer_ack#binding", Text, Const("v2")),
];

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

/// The committed marking: its registry values, and as the types a header carries.
fn marking(c: &Committed) -> Result<(Marking, Precedence, Tlp), String> {
    let byte = |path: &str| {
        u8::try_from(c.u64(FILE, path)?)
            .map_err(|_| format!("internal error: {FILE} {path} is not one byte"))
    };
    let m = Marking {
        precedence: byte("marking.precedence")?,
        tlp: byte("marking.tlp")?,
    };
    let p = Precedence::from_wire(i32::from(m.precedence))
        .ok_or_else(|| format!("internal error: {FILE} precedence is not registered"))?;
    let t = Tlp::from_wire(i32::from(m.tlp))
        .ok_or_else(|| format!("internal error: {FILE} tlp is not registered"))?;
    if content::marking(p, t) != m {
        return Err(format!(
            "internal error: {FILE} marking does not round-trip"
        ));
    }
    Ok((m, p, t))
}

/// The message id of the content.
fn message_id(c: &Committed) -> Result<[u8; 16], String> {
    c.bytes(FILE, "content_v2.message_id")?
        .try_into()
        .map_err(|_| format!("internal error: {FILE} content_v2.message_id is not 16 bytes"))
}

/// What the acknowledgement of `ack_v2` acknowledges, and when.
struct AckInputs<'a> {
    message_id: [u8; 16],
    envelope_sha256: [u8; 32],
    time_ms: u64,
    note: &'a str,
}

fn ack_inputs(c: &Committed) -> Result<AckInputs<'_>, String> {
    Ok(AckInputs {
        message_id: c
            .bytes(FILE, "ack_v2.message_id")?
            .try_into()
            .map_err(|_| format!("internal error: {FILE} ack_v2.message_id is not 16 bytes"))?,
        envelope_sha256: c.bytes32(FILE, "ack_v2.envelope_sha256")?,
        time_ms: c.u64(FILE, "ack_v2.time_ms")?,
        note: c.str(FILE, "ack_v2.note")?,
    })
}

/// Opens `Content` bytes as node B does for an envelope from node A whose header carries the
/// committed message id, `created_ms` = `now_ms` and marking (SPEC.md §7.6 steps 11–12, on
/// a link that negotiated version 2): the rule the officer signature verified by.
fn content_binding(
    c: &Committed,
    k: &Keys,
    bytes: &[u8],
) -> Result<Result<Binding, String>, String> {
    let (_, p, t) = marking(c)?;
    let now = c.u64(FILE, "now_ms")?;
    Ok(
        OpenedContent::parse(bytes, &message_id(c)?, &k.a.id(), &k.b.id(), now, p, t)
            .map(|o| o.binding)
            .map_err(|e| e.to_string()),
    )
}

/// Verifies `OfficerAck` bytes as node A does in an ACKNOWLEDGED receipt from node B (SPEC.md
/// §8.3, on a link that negotiated version 2): the rule the signature verified by.
fn ack_binding(c: &Committed, k: &Keys, bytes: &[u8]) -> Result<Result<Binding, String>, String> {
    let AckInputs {
        message_id: id,
        envelope_sha256: env,
        ..
    } = ack_inputs(c)?;
    let check = || -> Result<Binding, String> {
        let ack = canonical::<wire::OfficerAck>(bytes).ok_or("not a canonical OfficerAck")?;
        let raw = ack.credential.as_ref().ok_or("no credential")?;
        let cred =
            Credential::verify(raw, &k.b.id()).map_err(|e| format!("credential refused: {e}"))?;
        cred.check_officer_at(ack.time_ms)
            .map_err(|e| format!("not an officer at time_ms: {e}"))?;
        cred.verify_ack_binding(&id, &env, ack.time_ms, &ack.note, &ack.signature)
            .ok_or_else(|| "the signature verifies by neither rule".to_owned())
    };
    Ok(check())
}

/// This implementation's results for the positive cases, from the committed inputs.
pub fn results(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    let mut r = BTreeMap::new();
    let mut put = |key: &str, v: String| r.insert(key.to_owned(), v);
    let (m, _, _) = marking(c)?;

    // A's officer signs the body by the version 2 rule.
    let body = c.bytes(FILE, "content_v2.body")?;
    let officer = &k.a_officer_key;
    let cred_sha = officer.credential().sha256();
    put("content_v2.body_sha256", h(&crypto::sha256(&body)));
    put("content_v2.credential_sha256", h(&cred_sha));
    put(
        "content_v2.signed_bytes",
        h(&crypto::tbs(
            Label::OfficerMessageV2,
            &[&crypto::sha256(&body), &cred_sha, &[m.precedence, m.tlp]],
        )),
    );
    let sig = officer.sign_message_marked(&body, m);
    put("content_v2.signature", h(&sig.signature));
    let content = wire::Content {
        body: body.into(),
        officer: Some(sig),
    };
    put("content_v2.content", h(&content.encode_to_vec()));

    // A certifies the same officer key again, under another name.
    let other = Credential::issue(
        &k.a,
        *officer.credential().officer_key(),
        c.str(FILE, "other_credential.name")?,
        Role::Officer,
        c.u64(FILE, "other_credential.not_before_ms")?,
        c.u64(FILE, "other_credential.not_after_ms")?,
    )
    .map_err(|e| format!("cannot issue other_credential: {e}"))?;
    put(
        "other_credential.credential",
        h(&other.to_wire().encode_to_vec()),
    );
    put("other_credential.credential_sha256", h(&other.sha256()));

    // B's officer acknowledges by the version 2 rule.
    let AckInputs {
        message_id: id,
        envelope_sha256: env,
        time_ms: time,
        note,
    } = ack_inputs(c)?;
    let b_sha = k.b_officer.credential().sha256();
    put("ack_v2.credential_sha256", h(&b_sha));
    put(
        "ack_v2.signed_bytes",
        h(&crypto::tbs(
            Label::OfficerAckV2,
            &[
                &id,
                &env,
                &time.to_be_bytes(),
                &crypto::sha256(note.as_bytes()),
                &b_sha,
            ],
        )),
    );
    let ack = k
        .b_officer
        .acknowledge_as(&id, &env, time, note, Binding::Marked)
        .map_err(|e| format!("cannot acknowledge: {e}"))?;
    put("ack_v2.signature", h(&ack.signature));
    put("ack_v2.officer_ack", h(&ack.encode_to_vec()));

    // The committed bytes, read back.
    let said = |b: Result<Binding, String>| b.map_or_else(error, |b| b.as_str().to_owned());
    put(
        "content_v2.content#binding",
        said(content_binding(
            c,
            k,
            &c.bytes(FILE, "content_v2.content")?,
        )?),
    );
    put(
        "ack_v2.officer_ack#binding",
        said(ack_binding(c, k, &c.bytes(FILE, "ack_v2.officer_ack")?)?),
    );
    Ok(r)
}

/// The independent checks of another implementation's values of `officer_v2.json`.
pub fn checks(c: &Committed, k: &Keys, theirs: &Lookup<'_>) -> Result<Vec<Check>, String> {
    let bytes = |key: &str| theirs(FILE, key).and_then(|v| hex::decode(&v));
    let check = |key: &str, outcome: Option<Result<(), String>>| Check {
        file: FILE,
        name: format!("verify:{key}"),
        outcome,
    };
    let v2 = |b: Result<Binding, String>| match b {
        Ok(Binding::Marked) => Ok(()),
        Ok(Binding::BodyOnly) => Err("verifies, but by the version 1 rule only".to_owned()),
        Err(e) => Err(format!("refused: {e}")),
    };
    let strict = |public: &[u8], signed: &[u8], sig: Vec<u8>| {
        if crypto::verify_strict_raw(public, signed, &sig) {
            Ok(())
        } else {
            Err("does not verify strictly over the committed signed_bytes".to_owned())
        }
    };
    let a_public = *k.a_officer_key.credential().officer_key();
    let b_public = *k.b_officer.credential().officer_key();
    let content_signed = c.bytes(FILE, "content_v2.signed_bytes")?;
    let ack_signed = c.bytes(FILE, "ack_v2.signed_bytes")?;
    let content = match bytes("content_v2.content") {
        Some(v) => Some(content_binding(c, k, &v)?),
        None => None,
    };
    let ack = match bytes("ack_v2.officer_ack") {
        Some(v) => Some(ack_binding(c, k, &v)?),
        None => None,
    };
    let name = c.str(FILE, "other_credential.name")?;
    Ok(vec![
        check("content_v2.content", content.map(v2)),
        check(
            "content_v2.signature",
            bytes("content_v2.signature").map(|s| strict(&a_public, &content_signed, s)),
        ),
        check(
            "other_credential.credential",
            bytes("other_credential.credential").map(|v| {
                credential(&v, &k.a, &a_public)?;
                match canonical::<wire::OfficerCredential>(&v)
                    .and_then(|w| Credential::verify(&w, &k.a.id()).ok())
                {
                    Some(cred) if cred.name() == name => Ok(()),
                    _ => Err(format!("verifies, but not under the name {name:?}")),
                }
            }),
        ),
        check("ack_v2.officer_ack", ack.map(v2)),
        check(
            "ack_v2.signature",
            bytes("ack_v2.signature").map(|s| strict(&b_public, &ack_signed, s)),
        ),
    ])
}
