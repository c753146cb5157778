//! Third-party reference vectors run through the protocol crate's own crypto entry points.
//!
//! The vectors are committed under `vectors/third-party/` (its README.md gives source, version
//! and licence of each file): Project Wycheproof (C2SP) for Ed25519, X25519 and
//! ChaCha20-Poly1305, and RFC 9180 Appendix A.2.1 for HPKE suite 1. Every case in every file used is run and counted; a case
//! the test does not know how to judge fails the test instead of being skipped.
//!
//! Wycheproof's `hkdf_sha256_test.json` is deliberately not used (nor carried): the protocol derives no keys
//! outside HPKE (SPEC.md §7.2), and `crate::crypto` exposes no HKDF entry point. HKDF-SHA256 is
//! exercised end to end through HPKE by the RFC 9180 vector below (the key schedule and every
//! exported value depend on it). Running the Wycheproof HKDF cases against the `hkdf` crate
//! directly would test a dependency, not anything this crate calls.

use std::path::PathBuf;

use hotline_protocol::crypto::{self, HPKE_INFO, HpkeReceiver, HpkeSender, SecretAgreementKey};
use hotline_protocol::sim::TestRng;
use serde::Deserialize;

/// `vectors/third-party/` in the repository.
fn vectors_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../vectors/third-party");
    assert!(
        dir.join("README.md").is_file(),
        "reference vectors not found at {}: they are committed under vectors/third-party/",
        dir.display()
    );
    dir
}

fn load<T: for<'de> Deserialize<'de>>(relative: &str) -> T {
    let path = vectors_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn arr32(s: &str) -> [u8; 32] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("expected 32 bytes, got {}", v.len()))
}

/// The fields every Wycheproof file shares.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wycheproof<G> {
    number_of_tests: usize,
    test_groups: Vec<G>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Valid,
    Invalid,
    Acceptable,
}

// ---------------------------------------------------------------------------------------------
// Ed25519

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EddsaGroup {
    public_key: EddsaKey,
    tests: Vec<EddsaCase>,
}

#[derive(Deserialize)]
struct EddsaKey {
    pk: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EddsaCase {
    tc_id: u32,
    comment: String,
    flags: Vec<String>,
    msg: String,
    sig: String,
    result: Expect,
}

#[test]
fn ed25519_strict_verification_agrees_with_every_wycheproof_case() {
    let file: Wycheproof<EddsaGroup> = load("wycheproof/ed25519_test.json");
    let mut run = 0;
    let mut disagree = Vec::new();
    for group in &file.test_groups {
        let pk = unhex(&group.public_key.pk);
        let key_ok = crypto::parse_public_key(&pk).is_some();
        for case in &group.tests {
            run += 1;
            let got = crypto::verify_strict_raw(&pk, &unhex(&case.msg), &unhex(&case.sig));
            // A key that parse_public_key refuses must never verify anything.
            assert!(
                key_ok || !got,
                "tcId {}: key refused by parse_public_key yet the signature verified",
                case.tc_id
            );
            let want = match case.result {
                Expect::Valid => true,
                Expect::Invalid => false,
                // The Ed25519 file has no "acceptable" cases today. Strict verification has no
                // middle ground, so a future one must be judged by hand, not passed silently.
                Expect::Acceptable => panic!(
                    "tcId {}: an \"acceptable\" Ed25519 case needs an explicit rule",
                    case.tc_id
                ),
            };
            if got != want {
                disagree.push(format!(
                    "tcId {} ({:?}, {}): expected {want}, got {got}",
                    case.tc_id, case.flags, case.comment
                ));
            }
        }
    }
    assert_eq!(
        run, file.number_of_tests,
        "ran a different number of cases than the file declares"
    );
    assert!(
        disagree.is_empty(),
        "{} of {run} Ed25519 cases disagree:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
}

#[test]
fn signature_of_wrong_length_never_reaches_verification() {
    // verify_strict_raw takes byte slices from the wire; lengths other than 32/64 are refused.
    // Use the first valid Wycheproof case so the control assertion can actually fail.
    let file: Wycheproof<EddsaGroup> = load("wycheproof/ed25519_test.json");
    let group = &file.test_groups[0];
    let case = group
        .tests
        .iter()
        .find(|c| c.result == Expect::Valid)
        .expect("a valid case");
    let (pk, msg, sig) = (
        unhex(&group.public_key.pk),
        unhex(&case.msg),
        unhex(&case.sig),
    );
    assert!(crypto::verify_strict_raw(&pk, &msg, &sig));
    assert!(!crypto::verify_strict_raw(&pk, &msg, &sig[..63]));
    assert!(!crypto::verify_strict_raw(
        &pk,
        &msg,
        &[sig.as_slice(), &[0]].concat()
    ));
    assert!(!crypto::verify_strict_raw(&pk[..31], &msg, &sig));
    assert!(!crypto::verify_strict_raw(
        &[pk.as_slice(), &[0]].concat(),
        &msg,
        &sig
    ));
}

// ---------------------------------------------------------------------------------------------
// X25519

#[derive(Deserialize)]
struct XdhGroup {
    tests: Vec<XdhCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XdhCase {
    tc_id: u32,
    flags: Vec<String>,
    public: String,
    private: String,
    shared: String,
    result: Expect,
}

/// Rules, from the file's flags (checked below to be consistent with the data):
///
/// - `ZeroSharedSecret` (exactly the cases whose `shared` is all zeros, all low-order public
///   keys): the protocol refuses these (RFC 9180 §7.1.4), so `crypto::x25519` must return
///   `None`, and HPKE must refuse the point both as a recipient key (sender setup) and as `enc`
///   (receiver setup). Wycheproof marks them "acceptable" because RFC 7748 allows either.
/// - "valid": the output must equal `shared`.
/// - "acceptable" and not zero (`Twist`, `NonCanonicalPublic`, `EdgeCaseShared`, ...): RFC 7748
///   defines the result for these inputs (the top bit is masked, u is reduced mod p, twist
///   points are multiplied like any other), and the protocol takes X25519 as RFC 7748 defines
///   it, so the output must equal `shared`.
/// - "invalid": the file has none; one would need its own rule, so it fails the test.
#[test]
fn x25519_agrees_with_every_wycheproof_case_and_refuses_zero_shared_secrets() {
    let file: Wycheproof<XdhGroup> = load("wycheproof/x25519_test.json");
    let mut rng = TestRng::new(25519);
    let mut run = 0;
    let mut zero_cases = 0;
    let mut disagree = Vec::new();
    for case in file.test_groups.iter().flat_map(|g| &g.tests) {
        run += 1;
        let (private, public, shared) = (
            arr32(&case.private),
            arr32(&case.public),
            arr32(&case.shared),
        );
        let zero_flag = case.flags.iter().any(|f| f == "ZeroSharedSecret");
        assert_eq!(
            zero_flag,
            shared == [0; 32],
            "tcId {}: the ZeroSharedSecret flag and the expected shared secret disagree",
            case.tc_id
        );
        let got = crypto::x25519(&private, &public).map(|s| *s);
        let want = match case.result {
            _ if zero_flag => None,
            Expect::Valid | Expect::Acceptable => Some(shared),
            Expect::Invalid => panic!(
                "tcId {}: an \"invalid\" X25519 case needs an explicit rule",
                case.tc_id
            ),
        };
        if got != want {
            disagree.push(format!(
                "tcId {} ({:?}): expected {want:02x?}, got {got:02x?}",
                case.tc_id, case.flags
            ));
        }

        // HPKE decapsulation through the protocol: with this private key as the recipient key
        // and this public key as `enc`, setup succeeds exactly when the DH output is not zero.
        let key = SecretAgreementKey::from_bytes(&private)
            .unwrap_or_else(|| panic!("tcId {}: X25519 private key refused", case.tc_id));
        let receiver = HpkeReceiver::setup(&key, &public, HPKE_INFO);
        assert_eq!(
            receiver.is_some(),
            !zero_flag,
            "tcId {}: HPKE receiver setup with this enc",
            case.tc_id
        );
        if zero_flag {
            zero_cases += 1;
            // A low-order recipient key forces a zero DH output for every ephemeral key.
            assert!(
                HpkeSender::setup(&public, HPKE_INFO, &mut rng).is_none(),
                "tcId {}: HPKE sender accepted a low-order recipient key",
                case.tc_id
            );
        } else if case.result == Expect::Valid {
            assert!(
                HpkeSender::setup(&public, HPKE_INFO, &mut rng).is_some(),
                "tcId {}: HPKE sender setup",
                case.tc_id
            );
        }
    }
    assert_eq!(
        run, file.number_of_tests,
        "ran a different number of cases than the file declares"
    );
    assert!(
        zero_cases > 0,
        "the file should contain zero-shared-secret cases"
    );
    assert!(
        disagree.is_empty(),
        "{} of {run} X25519 cases disagree:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// ChaCha20-Poly1305

#[derive(Deserialize)]
struct AeadGroup {
    tests: Vec<AeadCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AeadCase {
    tc_id: u32,
    flags: Vec<String>,
    key: String,
    iv: String,
    aad: String,
    msg: String,
    ct: String,
    tag: String,
    result: Expect,
}

#[test]
fn aead_open_agrees_with_every_wycheproof_chacha20_poly1305_case() {
    let file: Wycheproof<AeadGroup> = load("wycheproof/chacha20_poly1305_test.json");
    let mut run = 0;
    let mut disagree = Vec::new();
    for case in file.test_groups.iter().flat_map(|g| &g.tests) {
        run += 1;
        let ct_and_tag = [unhex(&case.ct), unhex(&case.tag)].concat();
        let got = crypto::aead_open(
            &unhex(&case.key),
            &unhex(&case.iv),
            &unhex(&case.aad),
            &ct_and_tag,
        );
        let want = match case.result {
            Expect::Valid => Some(unhex(&case.msg)),
            // Includes nonces of the wrong size, which aead_open must refuse rather than pad.
            Expect::Invalid => None,
            Expect::Acceptable => panic!(
                "tcId {}: an \"acceptable\" AEAD case needs an explicit rule",
                case.tc_id
            ),
        };
        if got != want {
            disagree.push(format!(
                "tcId {} ({:?}): expected {:?}, got {:?}",
                case.tc_id,
                case.flags,
                want.is_some(),
                got.is_some()
            ));
        }
    }
    assert_eq!(
        run, file.number_of_tests,
        "ran a different number of cases than the file declares"
    );
    assert!(
        disagree.is_empty(),
        "{} of {run} ChaCha20-Poly1305 cases disagree:\n{}",
        disagree.len(),
        disagree.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// RFC 9180 A.2.1

#[derive(Deserialize)]
struct HpkeFile {
    vectors: Vec<HpkeVector>,
}

#[derive(Deserialize)]
struct HpkeVector {
    mode: u8,
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    info: String,
    #[serde(rename = "ikmE")]
    ikm_e: String,
    #[serde(rename = "ikmR")]
    ikm_r: String,
    #[serde(rename = "pkRm")]
    pk_rm: String,
    #[serde(rename = "skRm")]
    sk_rm: String,
    enc: String,
    encryptions: Vec<HpkeEncryption>,
    exports: Vec<HpkeExport>,
}

#[derive(Deserialize)]
struct HpkeEncryption {
    seq: u64,
    pt: String,
    aad: String,
    ct: String,
}

#[derive(Deserialize)]
struct HpkeExport {
    exporter_context: String,
    #[serde(rename = "L")]
    len: usize,
    exported_value: String,
}

/// An RNG that yields exactly the bytes it was given, then refuses: HPKE's ephemeral key
/// generation draws `Nsk` = 32 bytes and runs DeriveKeyPair on them, so handing it `ikmE`
/// reproduces the RFC's ephemeral key.
struct FixedBytes {
    bytes: Vec<u8>,
    pos: usize,
}

impl rand_core::TryRng for FixedBytes {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        let end = self.pos + dst.len();
        assert!(
            end <= self.bytes.len(),
            "HPKE asked for more randomness than ikmE holds"
        );
        dst.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedBytes {}

/// X25519 scalar clamping (RFC 7748 §5), as DeserializePrivateKey applies it.
fn clamp(mut k: [u8; 32]) -> [u8; 32] {
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    k
}

#[test]
fn hpke_reproduces_rfc9180_a_2_1() {
    let file: HpkeFile = load("rfc9180-base-x25519-sha256-chacha20poly1305.json");
    assert!(!file.vectors.is_empty());
    for v in &file.vectors {
        // Suite 1 of the protocol, base mode: anything else in the file is not ours to run.
        assert_eq!(
            (v.mode, v.kem_id, v.kdf_id, v.aead_id),
            (0, 0x0020, 0x0001, 0x0003),
            "unexpected suite"
        );
        let info = unhex(&v.info);

        let recipient = SecretAgreementKey::derive(&unhex(&v.ikm_r));
        assert_eq!(
            recipient.public(),
            arr32(&v.pk_rm),
            "DeriveKeyPair(ikmR) gives the wrong pkR"
        );
        // The RFC prints skRm unclamped; the key as stored is the clamped scalar.
        assert_eq!(
            *recipient.dangerous_bytes(),
            clamp(arr32(&v.sk_rm)),
            "DeriveKeyPair(ikmR) gives the wrong skR"
        );
        let from_sk = SecretAgreementKey::from_bytes(&arr32(&v.sk_rm)).expect("skRm");
        assert_eq!(from_sk.public(), arr32(&v.pk_rm));

        let mut rng = FixedBytes {
            bytes: unhex(&v.ikm_e),
            pos: 0,
        };
        let mut sender = HpkeSender::setup(&arr32(&v.pk_rm), &info, &mut rng).expect("SetupBaseS");
        assert_eq!(rng.pos, rng.bytes.len(), "HPKE should draw exactly ikmE");
        assert_eq!(sender.enc(), arr32(&v.enc), "enc");
        let mut receiver =
            HpkeReceiver::setup(&recipient, &sender.enc(), &info).expect("SetupBaseR");

        // The file lists sparse sequence numbers (0, 1, 2, 4, 255, 256). The context's counter
        // only moves by sealing, so seal (and open) a filler message at every skipped number.
        let mut seq = 0;
        let mut checked = 0;
        for e in &v.encryptions {
            assert!(e.seq >= seq, "encryptions must be listed in order of seq");
            while seq < e.seq {
                let filler = sender
                    .seal(b"filler", b"advance the sequence number")
                    .expect("seal filler");
                assert_eq!(
                    receiver.open(b"filler", &filler).as_deref(),
                    Some(&b"advance the sequence number"[..])
                );
                seq += 1;
            }
            let (aad, pt) = (unhex(&e.aad), unhex(&e.pt));
            let ct = sender.seal(&aad, &pt).expect("seal");
            assert_eq!(hex::encode(&ct), e.ct, "ct at seq {}", e.seq);
            assert_eq!(receiver.open(&aad, &ct), Some(pt), "open at seq {}", e.seq);
            seq += 1;
            checked += 1;
        }
        assert_eq!(checked, v.encryptions.len());

        // A ciphertext opened out of order (the receiver is now past seq 0) must fail.
        let first = &v.encryptions[0];
        assert_eq!(
            receiver.open(&unhex(&first.aad), &unhex(&first.ct)),
            None,
            "replayed seq 0 ciphertext opened"
        );

        for x in &v.exports {
            let ctx = unhex(&x.exporter_context);
            let want = unhex(&x.exported_value);
            assert_eq!(
                sender.export(&ctx, x.len),
                Some(want.clone()),
                "sender export {:?}",
                x.exporter_context
            );
            assert_eq!(
                receiver.export(&ctx, x.len),
                Some(want),
                "receiver export {:?}",
                x.exporter_context
            );
        }
    }
}
