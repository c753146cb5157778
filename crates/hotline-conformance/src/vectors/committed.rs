//! The committed test vectors (`vectors/v1/*.json`, SPEC.md Appendix A), embedded at build
//! time so the binary checks results offline anywhere, and the catalogue of cases that a
//! results directory is compared against (VECTORS.md lists the same cases).

use std::collections::BTreeMap;

use serde_json::Value;

use super::hex;

/// The vector files, in report order, with their committed text.
const EMBEDDED: [(&str, &str); 11] = [
    (
        "identity.json",
        include_str!("../../../../vectors/v1/identity.json"),
    ),
    (
        "bundle.json",
        include_str!("../../../../vectors/v1/bundle.json"),
    ),
    (
        "hello.json",
        include_str!("../../../../vectors/v1/hello.json"),
    ),
    (
        "envelope.json",
        include_str!("../../../../vectors/v1/envelope.json"),
    ),
    (
        "receipts.json",
        include_str!("../../../../vectors/v1/receipts.json"),
    ),
    (
        "frames.json",
        include_str!("../../../../vectors/v1/frames.json"),
    ),
    (
        "negative.json",
        include_str!("../../../../vectors/v1/negative.json"),
    ),
    (
        "key_update.json",
        include_str!("../../../../vectors/v1/key_update.json"),
    ),
    (
        "officer_v2.json",
        include_str!("../../../../vectors/v1/officer_v2.json"),
    ),
    (
        "revocation.json",
        include_str!("../../../../vectors/v1/revocation.json"),
    ),
    (
        "bundle_update.json",
        include_str!("../../../../vectors/v1/bundle_update.json"),
    ),
];

/// The vector files that hold negative vectors, and the field of each of their lists (in
/// report order).
const NEGATIVE_LISTS: [(&str, &str); 6] = [
    ("negative.json", "vectors"),
    ("key_update.json", "negative"),
    ("officer_v2.json", "envelopes"),
    ("revocation.json", "envelopes"),
    ("revocation.json", "negative"),
    ("bundle_update.json", "negative"),
];

/// The names of the vector files, which are also the names of the results files.
pub fn file_names() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|(name, _)| *name)
}

/// How a case's value is written in a results file (VECTORS.md, "Values").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bytes as lower-case hex, as in the vector files.
    Hex,
    /// A text string, compared exactly (text forms, names, the armored bundle).
    Text,
    /// An unsigned integer in decimal, as a JSON string.
    Int,
    /// A registry name from SPEC.md §12 (`FLASH`, `DELIVERED`, `POLICY`, `SHUTDOWN`, …).
    Name,
    /// A negative vector's outcome: `REJECTED:<reason>`, `STREAM:<code>`, `CLOSE:<code>` or
    /// `ACCEPTED`.
    Outcome,
}

impl Kind {
    /// How VECTORS.md and error messages describe the kind.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Hex => "lower-case hex bytes",
            Kind::Text => "text",
            Kind::Int => "a decimal integer in a string",
            Kind::Name => "a SPEC.md registry name",
            Kind::Outcome => "an outcome such as REJECTED:BAD_SIGNATURE",
        }
    }
}

/// One thing an implementation reports, and the value it must equal.
#[derive(Clone, Debug)]
pub struct Case {
    /// The vector file (and results file) it belongs to.
    pub file: &'static str,
    /// Its key in the results file.
    pub key: String,
    /// How its value is written.
    pub kind: Kind,
    /// The committed value.
    pub expected: String,
}

/// Where a case's expected value comes from.
pub enum Src {
    /// The committed value at the case's own key (an encoding case: key = JSON path).
    Same,
    /// The committed value at a path of a vector file.
    At(&'static str, &'static str),
    /// A constant stated in VECTORS.md (a decoded field the vector files carry only inside
    /// encoded bytes).
    Const(&'static str),
}

use Kind::{Hex, Int, Name, Text};
use Src::{At, Const, Same};

/// Every positive case: (file, key, kind, expected). Encoding cases are keyed by the JSON path
/// of the committed output; decoding cases by `PATH#field`: decode the committed bytes at PATH
/// and report `field`.
const POSITIVE: &[(&str, &str, Kind, Src)] = &[
    // identity.json: keys from seeds, text forms, certificates, credentials.
    ("identity.json", "node_a.public", Hex, Same),
    ("identity.json", "node_a.text", Text, Same),
    ("identity.json", "node_a.fingerprint", Text, Same),
    ("identity.json", "node_b.public", Hex, Same),
    ("identity.json", "node_b.text", Text, Same),
    ("identity.json", "node_b.fingerprint", Text, Same),
    ("identity.json", "node_b_encryption_key.secret", Hex, Same),
    ("identity.json", "node_b_encryption_key.public", Hex, Same),
    ("identity.json", "node_b_encryption_key.key_id", Hex, Same),
    (
        "identity.json",
        "node_b_encryption_key.certificate_body",
        Hex,
        Same,
    ),
    (
        "identity.json",
        "node_b_encryption_key.signed_bytes",
        Hex,
        Same,
    ),
    (
        "identity.json",
        "node_b_encryption_key.certificate_signature",
        Hex,
        Same,
    ),
    (
        "identity.json",
        "node_b_expired_encryption_key.public",
        Hex,
        Same,
    ),
    (
        "identity.json",
        "node_b_expired_encryption_key.key_id",
        Hex,
        Same,
    ),
    (
        "identity.json",
        "node_b_expired_encryption_key.certificate",
        Hex,
        Same,
    ),
    ("identity.json", "node_a_officer.public", Hex, Same),
    ("identity.json", "node_a_officer.credential", Hex, Same),
    ("identity.json", "node_b_officer.public", Hex, Same),
    ("identity.json", "node_b_officer.credential", Hex, Same),
    (
        "identity.json",
        "node_a.text#public",
        Hex,
        At("identity.json", "node_a.public"),
    ),
    (
        "identity.json",
        "node_b.text#public",
        Hex,
        At("identity.json", "node_b.public"),
    ),
    (
        "identity.json",
        "node_b_expired_encryption_key.certificate#not_after_ms",
        Int,
        Const("1792713600000"),
    ),
    (
        "identity.json",
        "node_a_officer.credential#officer_key",
        Hex,
        At("identity.json", "node_a_officer.public"),
    ),
    (
        "identity.json",
        "node_b_officer.credential#name",
        Text,
        At("identity.json", "node_b_officer.name"),
    ),
    // bundle.json
    ("bundle.json", "bundle", Hex, Same),
    ("bundle.json", "armored", Text, Same),
    (
        "bundle.json",
        "bundle#identity",
        Hex,
        At("bundle.json", "identity"),
    ),
    ("bundle.json", "bundle#name", Text, Const("CERT-B")),
    (
        "bundle.json",
        "armored#bundle",
        Hex,
        At("bundle.json", "bundle"),
    ),
    // hello.json
    ("hello.json", "node_b_hello", Hex, Same),
    ("hello.json", "node_b_hello_frame", Hex, Same),
    ("hello.json", "node_a_hello_without_keys", Hex, Same),
    ("hello.json", "node_b_hello#version", Int, Const("1")),
    ("hello.json", "node_b_hello#suite", Int, Const("1")),
    ("hello.json", "node_b_hello#max_inflight", Int, Const("256")),
    (
        "hello.json",
        "node_b_hello#time_ms",
        Int,
        At("hello.json", "now_ms"),
    ),
    // envelope.json
    ("envelope.json", "enc", Hex, Same),
    ("envelope.json", "header", Hex, Same),
    ("envelope.json", "ciphertext", Hex, Same),
    ("envelope.json", "signed_bytes", Hex, Same),
    ("envelope.json", "signature", Hex, Same),
    ("envelope.json", "envelope", Hex, Same),
    ("envelope.json", "envelope_sha256", Hex, Same),
    ("envelope.json", "frame", Hex, Same),
    (
        "envelope.json",
        "envelope#message_id",
        Hex,
        At("envelope.json", "message_id"),
    ),
    (
        "envelope.json",
        "envelope#sequence",
        Int,
        At("envelope.json", "sequence"),
    ),
    (
        "envelope.json",
        "envelope#created_ms",
        Int,
        At("envelope.json", "created_ms"),
    ),
    ("envelope.json", "envelope#precedence", Name, Const("FLASH")),
    ("envelope.json", "envelope#tlp", Name, Const("AMBER_STRICT")),
    (
        "envelope.json",
        "envelope#recipient_key_id",
        Hex,
        At("identity.json", "node_b_encryption_key.key_id"),
    ),
    (
        "envelope.json",
        "envelope#plaintext",
        Hex,
        At("envelope.json", "plaintext_content"),
    ),
    (
        "envelope.json",
        "envelope#subject",
        Text,
        Const("Phishing campaign against ministries"),
    ),
    (
        "envelope.json",
        "envelope#officer_key",
        Hex,
        At("identity.json", "node_a_officer.public"),
    ),
    // receipts.json
    ("receipts.json", "delivered.body", Hex, Same),
    ("receipts.json", "delivered.signature", Hex, Same),
    ("receipts.json", "delivered.receipt", Hex, Same),
    ("receipts.json", "delivered.receipt_sha256", Hex, Same),
    ("receipts.json", "delivered.frame", Hex, Same),
    ("receipts.json", "acknowledged.body", Hex, Same),
    ("receipts.json", "acknowledged.signature", Hex, Same),
    ("receipts.json", "acknowledged.receipt", Hex, Same),
    ("receipts.json", "acknowledged.receipt_sha256", Hex, Same),
    ("receipts.json", "acknowledged.frame", Hex, Same),
    (
        "receipts.json",
        "acknowledged_officer_signed_bytes",
        Hex,
        Same,
    ),
    ("receipts.json", "rejected_policy.body", Hex, Same),
    ("receipts.json", "rejected_policy.signature", Hex, Same),
    ("receipts.json", "rejected_policy.receipt", Hex, Same),
    ("receipts.json", "rejected_policy.receipt_sha256", Hex, Same),
    ("receipts.json", "rejected_policy.frame", Hex, Same),
    ("receipts.json", "receipt_stored_frame", Hex, Same),
    (
        "receipts.json",
        "delivered.receipt#kind",
        Name,
        Const("DELIVERED"),
    ),
    (
        "receipts.json",
        "delivered.receipt#time_ms",
        Int,
        Const("1795737601000"),
    ),
    (
        "receipts.json",
        "delivered.receipt#sequence",
        Int,
        At("envelope.json", "sequence"),
    ),
    (
        "receipts.json",
        "delivered.receipt#envelope_sha256",
        Hex,
        At("envelope.json", "envelope_sha256"),
    ),
    (
        "receipts.json",
        "acknowledged.receipt#kind",
        Name,
        Const("ACKNOWLEDGED"),
    ),
    (
        "receipts.json",
        "acknowledged.receipt#officer_key",
        Hex,
        At("identity.json", "node_b_officer.public"),
    ),
    (
        "receipts.json",
        "acknowledged.receipt#ack_time_ms",
        Int,
        Const("1795737660000"),
    ),
    (
        "receipts.json",
        "acknowledged.receipt#note",
        Text,
        Const("Blocked. Thank you."),
    ),
    (
        "receipts.json",
        "rejected_policy.receipt#kind",
        Name,
        Const("REJECTED"),
    ),
    (
        "receipts.json",
        "rejected_policy.receipt#reason",
        Name,
        Const("POLICY"),
    ),
    (
        "receipts.json",
        "rejected_policy.receipt#detail",
        Text,
        Const("refused by local policy"),
    ),
    (
        "receipts.json",
        "receipt_stored_frame#receipt_sha256",
        Hex,
        At("receipts.json", "acknowledged.receipt_sha256"),
    ),
    // frames.json
    ("frames.json", "heartbeat.payload", Hex, Same),
    ("frames.json", "heartbeat.frame", Hex, Same),
    ("frames.json", "close_shutdown.payload", Hex, Same),
    ("frames.json", "close_shutdown.frame", Hex, Same),
    ("frames.json", "heartbeat.frame#ping", Int, Const("3")),
    ("frames.json", "heartbeat.frame#echo", Int, Const("0")),
    (
        "frames.json",
        "heartbeat.frame#time_ms",
        Int,
        Const("1795737600000"),
    ),
    (
        "frames.json",
        "heartbeat.frame#last_sequence_sent",
        Int,
        Const("7"),
    ),
    (
        "frames.json",
        "heartbeat.frame#received_through",
        Int,
        Const("5"),
    ),
    (
        "frames.json",
        "close_shutdown.frame#code",
        Name,
        Const("SHUTDOWN"),
    ),
    (
        "frames.json",
        "close_shutdown.frame#reason",
        Text,
        Const("node shutting down"),
    ),
    // key_update.json: protocol version 2 (SPEC.md §4.3.5).
    ("key_update.json", "node_a_encryption_key.public", Hex, Same),
    ("key_update.json", "node_a_encryption_key.key_id", Hex, Same),
    (
        "key_update.json",
        "node_a_encryption_key.certificate",
        Hex,
        Same,
    ),
    (
        "key_update.json",
        "node_a_next_encryption_key.public",
        Hex,
        Same,
    ),
    (
        "key_update.json",
        "node_a_next_encryption_key.key_id",
        Hex,
        Same,
    ),
    (
        "key_update.json",
        "node_a_next_encryption_key.certificate",
        Hex,
        Same,
    ),
    ("key_update.json", "hello_v2.node_a_hello", Hex, Same),
    ("key_update.json", "hello_v2.node_a_hello_frame", Hex, Same),
    ("key_update.json", "hello_v2.node_b_hello", Hex, Same),
    ("key_update.json", "hello_v2.node_b_hello_frame", Hex, Same),
    ("key_update.json", "key_update.payload", Hex, Same),
    ("key_update.json", "key_update.frame", Hex, Same),
    (
        "key_update.json",
        "hello_v2.node_a_hello#version",
        Int,
        At("key_update.json", "hello_v2.negotiated_version"),
    ),
    (
        "key_update.json",
        "hello_v2.node_b_hello#version",
        Int,
        At("key_update.json", "hello_v2.negotiated_version"),
    ),
    (
        "key_update.json",
        "key_update.frame#key_count",
        Int,
        Const("2"),
    ),
    (
        "key_update.json",
        "key_update.frame#keys.0.key_id",
        Hex,
        At("key_update.json", "key_update.decoded_keys.0.key_id"),
    ),
    (
        "key_update.json",
        "key_update.frame#keys.0.not_before_ms",
        Int,
        At("key_update.json", "key_update.decoded_keys.0.not_before_ms"),
    ),
    (
        "key_update.json",
        "key_update.frame#keys.0.not_after_ms",
        Int,
        At("key_update.json", "key_update.decoded_keys.0.not_after_ms"),
    ),
    (
        "key_update.json",
        "key_update.frame#keys.1.key_id",
        Hex,
        At("key_update.json", "key_update.decoded_keys.1.key_id"),
    ),
    (
        "key_update.json",
        "key_update.frame#keys.1.not_before_ms",
        Int,
        At("key_update.json", "key_update.decoded_keys.1.not_before_ms"),
    ),
    (
        "key_update.json",
        "key_update.frame#keys.1.not_after_ms",
        Int,
        At("key_update.json", "key_update.decoded_keys.1.not_after_ms"),
    ),
];

/// The parsed committed vector files.
pub struct Committed {
    files: BTreeMap<&'static str, Value>,
}

impl Committed {
    /// Parses the embedded files.
    pub fn load() -> Result<Self, String> {
        let mut files = BTreeMap::new();
        for (name, text) in EMBEDDED {
            let value: Value = serde_json::from_str(text).map_err(|e| {
                format!("internal error: the embedded vectors/v1/{name} does not parse: {e}")
            })?;
            files.insert(name, value);
        }
        Ok(Committed { files })
    }

    /// The value at a dotted `path` of vector file `file`; a number part indexes a list.
    pub fn at(&self, file: &str, path: &str) -> Result<&Value, String> {
        let mut v = self
            .files
            .get(file)
            .ok_or_else(|| format!("internal error: no vector file {file}"))?;
        for part in path.split('.') {
            let next = match v {
                Value::Array(list) => part.parse::<usize>().ok().and_then(|i| list.get(i)),
                _ => v.get(part),
            };
            v = next
                .ok_or_else(|| format!("internal error: vectors/v1/{file} has no field {path}"))?;
        }
        Ok(v)
    }

    /// The string at `path`.
    pub fn str(&self, file: &str, path: &str) -> Result<&str, String> {
        self.at(file, path)?.as_str().ok_or_else(|| {
            format!("internal error: vectors/v1/{file} field {path} is not a string")
        })
    }

    /// The bytes (hex) at `path`.
    pub fn bytes(&self, file: &str, path: &str) -> Result<Vec<u8>, String> {
        hex::decode(self.str(file, path)?)
            .ok_or_else(|| format!("internal error: vectors/v1/{file} field {path} is not hex"))
    }

    /// The 32 bytes (hex) at `path`.
    pub fn bytes32(&self, file: &str, path: &str) -> Result<[u8; 32], String> {
        self.bytes(file, path)?
            .try_into()
            .map_err(|_| format!("internal error: vectors/v1/{file} field {path} is not 32 bytes"))
    }

    /// The unsigned integer at `path`.
    pub fn u64(&self, file: &str, path: &str) -> Result<u64, String> {
        self.at(file, path)?.as_u64().ok_or_else(|| {
            format!("internal error: vectors/v1/{file} field {path} is not an unsigned integer")
        })
    }

    /// The negative vectors of vector file `file` (none if it holds none), list by list:
    /// (name, kind, input, expected outcome).
    pub fn negatives(&self, file: &str) -> Result<Vec<Negative>, String> {
        let mut all = Vec::new();
        for (_, field) in NEGATIVE_LISTS.iter().filter(|(f, _)| *f == file) {
            all.extend(self.negative_list(file, field)?);
        }
        Ok(all)
    }

    /// The negative vectors of the list `field` of `file`.
    fn negative_list(&self, file: &str, field: &str) -> Result<Vec<Negative>, String> {
        let list = self
            .at(file, field)?
            .as_array()
            .ok_or_else(|| format!("internal error: {file} {field} is not a list"))?;
        list.iter()
            .map(|v| {
                let field = |k: &str| {
                    v.get(k).and_then(Value::as_str).ok_or_else(|| {
                        format!("internal error: a negative vector has no string field {k}")
                    })
                };
                Ok(Negative {
                    name: field("name")?.to_owned(),
                    kind: field("kind")?.to_owned(),
                    input: hex::decode(field("input")?)
                        .ok_or("internal error: a negative vector's input is not hex")?,
                    expected: field("expected")?.to_owned(),
                })
            })
            .collect()
    }

    /// Every case in report order: file by file, positive then negative.
    pub fn cases(&self) -> Result<Vec<Case>, String> {
        let mut cases = Vec::with_capacity(POSITIVE.len() + 40);
        for file in file_names() {
            let positive = POSITIVE
                .iter()
                .chain(super::officer_v2::POSITIVE)
                .chain(super::revocation::POSITIVE)
                .chain(super::bundle_update::POSITIVE);
            for (f, key, kind, src) in positive.filter(|c| c.0 == file) {
                let expected = match src {
                    Same => self.scalar(f, key)?,
                    At(file, path) => self.scalar(file, path)?,
                    Const(v) => (*v).to_owned(),
                };
                cases.push(Case {
                    file: f,
                    key: (*key).to_owned(),
                    kind: *kind,
                    expected,
                });
            }
            for n in self.negatives(file)? {
                cases.push(Case {
                    file,
                    key: n.name,
                    kind: Kind::Outcome,
                    expected: n.expected,
                });
            }
        }
        Ok(cases)
    }

    /// A string or integer at `path`, as the string a results file carries.
    fn scalar(&self, file: &str, path: &str) -> Result<String, String> {
        match self.at(file, path)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_u64() => Ok(n.to_string()),
            _ => Err(format!(
                "internal error: vectors/v1/{file} field {path} is neither a string nor an integer"
            )),
        }
    }
}

/// One negative vector (of `negative.json`, `key_update.json`, `revocation.json` or
/// `bundle_update.json`), or one of the envelopes of `officer_v2.json` or `revocation.json`,
/// each with its exact outcome.
pub struct Negative {
    /// Its name: the key in the results file.
    pub name: String,
    /// What receives it: `envelope`, `receipt`, `hello`, `frame_message`, `frame_control`;
    /// in `key_update.json`, `control_v2` or `control_v1` (the control stream after both
    /// Hellos, on a link that negotiated version 2 or 1; `revocation.json` uses them too, for
    /// Revocations frames, and `bundle_update.json`, for BundleUpdate and BundleAccepted
    /// frames); in `officer_v2.json`, `envelope_v2` (an envelope on a link that
    /// negotiated version 2); in `revocation.json`, `envelope_v2_revocations` (the same, with
    /// node B holding the file's revocations).
    pub kind: String,
    /// The input bytes.
    pub input: Vec<u8>,
    /// The outcome SPEC.md requires.
    pub expected: String,
}
