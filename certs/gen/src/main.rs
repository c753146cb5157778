//! `hotline-certgen`: regenerates the test PKI committed in `certs/test-pki/`.
//!
//! ```text
//! cargo run -p hotline-certgen -- certs/test-pki
//! ```
//!
//! Every key written here is a TEST key, published in the repository: never use one outside
//! tests. Dates are fixed (not taken from the clock) so that the files only change when the
//! program changes; node certificates are valid 2026-01-01 to 2028-01-01 (730 days, under the
//! 825-day limit of SPEC.md §3.5). Keys are random, so a rerun changes every file.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose as Eku, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber, SignatureAlgorithm, date_time_ymd,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Serial number of `revoked.pem`, listed in `ca.crl.pem`.
const REVOKED_SERIAL: u64 = 0x7e_0001;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: hotline-certgen <output dir>   (e.g. certs/test-pki)");
        return ExitCode::from(2);
    };
    match generate(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotline-certgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What kind of certificate to issue.
enum Kind {
    /// A node: EKU serverAuth + clientAuth, SAN `<name>.hotline.test` and 127.0.0.1.
    Node,
    /// An operator client certificate: EKU clientAuth only.
    Operator,
}

struct Leaf<'a> {
    name: &'a str,
    kind: Kind,
    alg: &'static SignatureAlgorithm,
    serial: u64,
    /// (year, month, day) of notBefore and notAfter.
    validity: ((i32, u8, u8), (i32, u8, u8)),
}

const NODE_VALIDITY: ((i32, u8, u8), (i32, u8, u8)) = ((2026, 1, 1), (2028, 1, 1));

fn leaf_params(leaf: &Leaf<'_>) -> Result<CertificateParams> {
    let sans = match leaf.kind {
        Kind::Node => vec![
            format!("{}.hotline.test", leaf.name),
            "127.0.0.1".to_owned(),
        ],
        Kind::Operator => vec![format!("{}.hotline.test", leaf.name)],
    };
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, leaf.name);
    params.serial_number = Some(SerialNumber::from(leaf.serial));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match leaf.kind {
        Kind::Node => vec![Eku::ServerAuth, Eku::ClientAuth],
        Kind::Operator => vec![Eku::ClientAuth],
    };
    let ((y0, m0, d0), (y1, m1, d1)) = leaf.validity;
    params.not_before = date_time_ymd(y0, m0, d0);
    params.not_after = date_time_ymd(y1, m1, d1);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn ca_params(name: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(SerialNumber::from(1u64));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2036, 1, 1);
    Ok(params)
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Issues `leaf` under `issuer` (or self-signed if `None`) and writes `<name>.pem`/`.key`.
fn issue(dir: &Path, leaf: &Leaf<'_>, issuer: Option<&Issuer<'_, KeyPair>>) -> Result<()> {
    let key = KeyPair::generate_for(leaf.alg)?;
    let params = leaf_params(leaf)?;
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer)?,
        None => params.self_signed(&key)?,
    };
    write(dir, &format!("{}.pem", leaf.name), &cert.pem())?;
    write(dir, &format!("{}.key", leaf.name), &key.serialize_pem())
}

fn generate(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let ed25519 = &rcgen::PKCS_ED25519;
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;

    // The test CA (ECDSA P-256, so chains exercise both allowed algorithms) and its issues.
    let ca_key = KeyPair::generate_for(p256)?;
    let ca_template = ca_params("hotline test CA")?;
    let ca_cert = ca_template.self_signed(&ca_key)?;
    write(dir, "ca.pem", &ca_cert.pem())?;
    write(dir, "ca.key", &ca_key.serialize_pem())?;
    let ca = Issuer::new(ca_template, ca_key);

    let node = |name, serial| Leaf {
        name,
        kind: Kind::Node,
        alg: ed25519,
        serial,
        validity: NODE_VALIDITY,
    };
    issue(dir, &node("node-a", 0x7e_000a), Some(&ca))?;
    issue(dir, &node("node-b", 0x7e_000b), Some(&ca))?;
    issue(
        dir,
        &Leaf {
            kind: Kind::Operator,
            ..node("operator", 0x7e_0010)
        },
        Some(&ca),
    )?;
    issue(
        dir,
        &Leaf {
            validity: ((2024, 1, 1), (2025, 6, 1)),
            ..node("expired", 0x7e_00e0)
        },
        Some(&ca),
    )?;
    issue(dir, &node("revoked", REVOKED_SERIAL), Some(&ca))?;

    let crl = CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 1, 2),
        next_update: date_time_ymd(2028, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(REVOKED_SERIAL),
            revocation_time: date_time_ymd(2026, 1, 2),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca)?;
    write(dir, "ca.crl.pem", &crl.pem()?)?;

    // Another CA nobody trusts, and a node certificate from it.
    let foreign_key = KeyPair::generate_for(p256)?;
    let foreign_params = ca_params("foreign test CA")?;
    write(
        dir,
        "foreign-ca.pem",
        &foreign_params.self_signed(&foreign_key)?.pem(),
    )?;
    let foreign = Issuer::new(foreign_params, foreign_key);
    issue(dir, &node("foreign-node", 0x7e_00f0), Some(&foreign))?;

    // Self-signed certificates for pinned mode: one Ed25519, one ECDSA P-256.
    issue(dir, &node("pinned-a", 0x7e_0101), None)?;
    issue(
        dir,
        &Leaf {
            alg: p256,
            ..node("pinned-b", 0x7e_0102)
        },
        None,
    )?;
    Ok(())
}
