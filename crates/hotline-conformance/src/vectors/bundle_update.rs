//! `bundle_update.json`: bundle updates over the link (SPEC.md §4.4.4, version 2). Its cases,
//! this implementation's results for them, and the independent checks of another
//! implementation's bundles and frames, kept together here as the file is one subject.

use std::collections::BTreeMap;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::crypto;
use hotline_protocol::frame::{self, FrameType, StreamKind};
use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::session::{verify_bundle_accepted, verify_bundle_update};
use hotline_protocol::wire;
use prost::Message;

use super::committed::{Committed, Kind, Src};
use super::hex;
use super::inputs::Keys;
use super::ours::a_key;
use super::receive::{error, one_frame};
use super::verify::{Check, Lookup};

/// The vector file.
pub const FILE: &str = "bundle_update.json";

/// The two bundles of node A in the file: the one node B holds, and the newer one.
const BUNDLES: [&str; 2] = ["previous_bundle", "bundle_update"];

/// What node B holds in each case of `receiver`, and the cases.
const RECEIVER: [&str; 2] = ["newer", "not_newer"];

use Kind::{Hex, Int};
use Src::{At, Same};

/// The positive cases of `bundle_update.json`, as `committed::POSITIVE` lists them.
pub const POSITIVE: &[(&str, &str, Kind, Src)] = &[
    (FILE, "previous_bundle.bundle", Hex, Same),
    (FILE, "previous_bundle.bundle_sha256", Hex, Same),
    (FILE, "bundle_update.bundle", Hex, Same),
    (FILE, "bundle_update.bundle_sha256", Hex, Same),
    (FILE, "bundle_update.payload", Hex, Same),
    (FILE, "bundle_update.frame", Hex, Same),
    (FILE, "bundle_accepted.payload", Hex, Same),
    (FILE, "bundle_accepted.frame", Hex, Same),
    (FILE, "receiver.newer.answer", Hex, Same),
    (FILE, "receiver.not_newer.answer", Hex, Same),
    (
        FILE,
        "bundle_update.frame#identity",
        Hex,
        At("identity.json", "node_a.public"),
    ),
    (
        FILE,
        "bundle_update.frame#tls_spki_sha256",
        Hex,
        At(FILE, "bundle_update.tls_spki_sha256"),
    ),
    (
        FILE,
        "bundle_update.frame#created_ms",
        Int,
        At(FILE, "bundle_update.created_ms"),
    ),
    (
        FILE,
        "bundle_accepted.frame#bundle_sha256",
        Hex,
        At(FILE, "bundle_update.bundle_sha256"),
    ),
];

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

/// Node A's encryption key certificates in the bundle `name`: its current key of
/// `key_update.json`, and in the newer bundle its next key first (VECTORS.md).
fn keys(c: &Committed, k: &Keys, name: &str) -> Result<Vec<EncryptionKey>, String> {
    let current = a_key(c, k, "node_a_encryption_key")?;
    Ok(if name == "previous_bundle" {
        vec![current]
    } else {
        vec![a_key(c, k, "node_a_next_encryption_key")?, current]
    })
}

/// Makes node A's bundle `name` from the committed inputs beside it.
fn make(c: &Committed, k: &Keys, name: &str) -> Result<PeerBundle, String> {
    let at = |field: &str| format!("{name}.{field}");
    let strings = |field: &str| -> Result<Vec<String>, String> {
        c.at(FILE, &at(field))?
            .as_array()
            .and_then(|l| l.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| format!("internal error: {FILE} {name}.{field} is not a list of text"))
    };
    let versions = c
        .at(FILE, &at("versions"))?
        .as_array()
        .and_then(|l| {
            l.iter()
                .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<u32>>>()
        })
        .ok_or_else(|| format!("internal error: {FILE} {name}.versions is not a list of u32"))?;
    PeerBundle::create_for_versions(
        &k.a,
        c.str(FILE, &at("name"))?,
        crypto::sha256(c.str(FILE, &at("tls_spki_sha256_of"))?.as_bytes()),
        &keys(c, k, name)?,
        &strings("addresses")?,
        c.u64(FILE, &at("created_ms"))?,
        &versions,
    )
    .map_err(|e| format!("cannot make node A's {name}: {e}"))
}

/// The committed bundle `name`, checked as node A's.
fn committed(c: &Committed, k: &Keys, name: &str) -> Result<PeerBundle, String> {
    let b = PeerBundle::from_bytes(&c.bytes(FILE, &format!("{name}.bundle"))?)
        .map_err(|e| format!("internal error: the committed {name} does not verify: {e}"))?;
    if b.identity() != k.a.id() {
        return Err(format!(
            "internal error: the committed {name} is not node A's"
        ));
    }
    Ok(b)
}

/// Verifies BundleUpdate frame bytes as node B receiving them from node A on the control
/// stream of a link that negotiated version 2 (SPEC.md §4.4.4 step 3).
fn update_as_b(bytes: &[u8], k: &Keys) -> Result<PeerBundle, String> {
    let f = one_frame(bytes, StreamKind::Control)?;
    if f.ty != FrameType::BundleUpdate {
        return Err(format!("a {:?} frame, not BundleUpdate", f.ty));
    }
    verify_bundle_update(&f.payload, &k.a.id()).map_err(|why| format!("MALFORMED_FRAME: {why}"))
}

/// Decodes BundleAccepted frame bytes on the control stream (SPEC.md §4.4.4 step 3).
fn accepted(bytes: &[u8]) -> Result<[u8; 32], String> {
    let f = one_frame(bytes, StreamKind::Control)?;
    if f.ty != FrameType::BundleAccepted {
        return Err(format!("a {:?} frame, not BundleAccepted", f.ty));
    }
    verify_bundle_accepted(&f.payload).map_err(|why| format!("MALFORMED_FRAME: {why}"))
}

/// The BundleAccepted frame naming `bundle`.
fn answer(bundle: &PeerBundle) -> Vec<u8> {
    let payload = wire::BundleAccepted {
        bundle_sha256: crypto::sha256(bundle.bytes()).to_vec().into(),
    }
    .encode_to_vec();
    frame::encode(FrameType::BundleAccepted, &payload).to_vec()
}

/// This implementation's results for every positive case of the file, from the committed
/// inputs (the negative ones are `ours::negative_file`'s).
pub fn results(c: &Committed, k: &Keys) -> Result<BTreeMap<String, String>, String> {
    let mut r = BTreeMap::new();
    let mut made = Vec::new();
    for name in BUNDLES {
        let b = make(c, k, name)?;
        r.insert(format!("{name}.bundle"), h(b.bytes()));
        r.insert(
            format!("{name}.bundle_sha256"),
            h(&crypto::sha256(b.bytes())),
        );
        made.push(b);
    }
    let payload = wire::BundleUpdate {
        bundle: made[1].bytes().clone(),
    }
    .encode_to_vec();
    r.insert("bundle_update.payload".into(), h(&payload));
    r.insert(
        "bundle_update.frame".into(),
        h(&frame::encode(FrameType::BundleUpdate, &payload)),
    );
    let answered = answer(&made[1]);
    r.insert("bundle_accepted.payload".into(), h(&answered[5..]));
    r.insert("bundle_accepted.frame".into(), h(&answered));

    // The committed frames, read back as node B (the BundleUpdate) and node A (the answer).
    let update = update_as_b(&c.bytes(FILE, "bundle_update.frame")?, k);
    r.insert(
        "bundle_update.frame#identity".into(),
        update
            .as_ref()
            .map_or_else(error, |b| h(b.identity().as_bytes())),
    );
    r.insert(
        "bundle_update.frame#tls_spki_sha256".into(),
        update
            .as_ref()
            .map_or_else(error, |b| h(b.tls_spki_sha256())),
    );
    r.insert(
        "bundle_update.frame#created_ms".into(),
        update
            .as_ref()
            .map_or_else(error, |b| b.created().to_string()),
    );
    r.insert(
        "bundle_accepted.frame#bundle_sha256".into(),
        accepted(&c.bytes(FILE, "bundle_accepted.frame")?).map_or_else(error, |sha| h(&sha)),
    );

    // Node B's answers: it keeps the bundle with the greater created_ms, and names it.
    for case in RECEIVER {
        let held_name = c.str(FILE, &format!("receiver.{case}.held"))?;
        let held = committed(c, k, held_name)?;
        let got =
            update_as_b(&c.bytes(FILE, &format!("receiver.{case}.received"))?, k).map(|received| {
                let holds = if received.created() > held.created() {
                    &received
                } else {
                    &held
                };
                h(&answer(holds))
            });
        r.insert(format!("receiver.{case}.answer"), got.unwrap_or_else(error));
    }
    Ok(r)
}

/// The independent checks of another implementation's values of `bundle_update.json`.
pub fn checks(c: &Committed, k: &Keys, theirs: &Lookup<'_>) -> Result<Vec<Check>, String> {
    let bytes = |key: &str| theirs(FILE, key).and_then(|v| hex::decode(&v));
    let check = |key: &str, outcome: Option<Result<(), String>>| Check {
        file: FILE,
        name: format!("verify:{key}"),
        outcome,
    };
    // A bundle must verify as node A's and say what the committed one says.
    let same = |got: &PeerBundle, want: &PeerBundle| {
        let fields = |b: &PeerBundle| {
            (
                b.name().to_owned(),
                *b.tls_spki_sha256(),
                b.encryption_keys().to_vec(),
                b.addresses().to_vec(),
                b.created(),
            )
        };
        if got.identity() != k.a.id() {
            Err("verifies, but is not node A's".to_owned())
        } else if fields(got) != fields(want) {
            Err("verifies as node A's, but with other fields".to_owned())
        } else {
            Ok(())
        }
    };
    let mut out = Vec::new();
    for name in BUNDLES {
        let want = committed(c, k, name)?;
        let key = format!("{name}.bundle");
        out.push(check(
            &key,
            bytes(&key).map(|v| {
                let got = PeerBundle::from_bytes(&v).map_err(|e| format!("refused: {e}"))?;
                same(&got, &want)
            }),
        ));
    }
    let new = committed(c, k, "bundle_update")?;
    out.push(check(
        "bundle_update.frame",
        bytes("bundle_update.frame").map(|v| {
            let got = update_as_b(&v, k).map_err(|e| format!("refused as node B: {e}"))?;
            same(&got, &new)
        }),
    ));
    let sha = crypto::sha256(new.bytes());
    out.push(check(
        "bundle_accepted.frame",
        bytes("bundle_accepted.frame").map(|v| match accepted(&v) {
            Ok(got) if got == sha => Ok(()),
            Ok(_) => Err("names another bundle than the committed new one".to_owned()),
            Err(e) => Err(format!("refused: {e}")),
        }),
    ));
    Ok(out)
}
