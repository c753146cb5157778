//! The certificate profile (SPEC.md §3.5) as the two trust modes apply it: what `hotlined init`
//! puts in a node's self-signed certificate, and which profile items a pinned-mode verifier
//! checks (issue 13 B: §3.5 and §3.6.1 disagreed, and `init` named the node, not its address).

use std::time::{Duration, SystemTime};

use hotline_transport::material::Material;
use hotline_transport::tls::{self, PeerTrust};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

const NOW: u64 = 1_790_000_000_000;

fn alt_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse");
    let san = cert
        .subject_alternative_name()
        .expect("SAN parses")
        .expect("SAN present");
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::IPAddress(ip) => format!("ip:{}", hex(ip)),
            other => format!("{other:?}"),
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn the_self_signed_certificate_names_the_address_the_node_listens_on() {
    let cases = [
        ("192.0.2.7:4433", "ip:c0000207"),
        ("[2001:db8::1]:4433", "ip:20010db8000000000000000000000001"),
        ("hotline.cert.example:4433", "dns:hotline.cert.example"),
        // Every interface names no address a peer could dial: the node's name stands in.
        ("0.0.0.0:4433", "dns:CERT-A"),
        ("[::]:4433", "dns:CERT-A"),
    ];
    for (listen, want) in cases {
        let key = Material::self_signed("CERT-A", listen, NOW).expect("generate");
        assert_eq!(alt_names(&key.cert_der), vec![want.to_owned()], "{listen}");
        let (_, cert) = x509_parser::parse_x509_certificate(&key.cert_der).expect("parse");
        let eku = cert.extended_key_usage().expect("eku").expect("present");
        assert!(eku.value.server_auth && eku.value.client_auth, "{listen}");
        let cn = cert.subject().iter_common_name().next().expect("CN");
        assert_eq!(cn.as_str().expect("utf8"), "CERT-A");
    }
}

/// A certificate made with `params` for a fresh Ed25519 key, valid around NOW.
fn certificate(mut params: rcgen::CertificateParams) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    params.not_before = at(NOW - 86_400_000).into();
    params.not_after = at(NOW + 86_400_000).into();
    params.self_signed(&key).expect("sign").der().clone()
}

/// Whether a pinned-mode client verifier (pin = this certificate's key) accepts `cert`.
fn pinned_accepts(cert: &CertificateDer<'static>) -> Result<(), String> {
    let pin = tls::spki_sha256(cert).map_err(|e| e.to_string())?;
    let trust = PeerTrust::Pinned {
        spki_sha256: vec![pin],
    };
    let verifier = tls::server_cert_verifier(&trust).map_err(|e| e.to_string())?;
    let name = ServerName::try_from("peer.invalid").expect("name");
    verifier
        .verify_server_cert(
            cert,
            &[],
            &name,
            &[],
            UnixTime::since_unix_epoch(Duration::from_millis(NOW)),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn pinned_mode_checks_the_key_not_names_or_purposes() {
    // Neither subjectAltName nor extendedKeyUsage: the pin authenticates the key (§3.6.1).
    let bare = rcgen::CertificateParams::default();
    assert_eq!(pinned_accepts(&certificate(bare)), Ok(()));
    // A name that has nothing to do with the address dialed is not checked either.
    let named = rcgen::CertificateParams::new(vec!["elsewhere.example".to_owned()]).expect("p");
    assert_eq!(pinned_accepts(&certificate(named)), Ok(()));
}

#[test]
fn pinned_mode_still_refuses_a_ca_or_a_key_not_for_signatures() {
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert!(pinned_accepts(&certificate(ca)).is_err(), "cA = TRUE");
    let mut ku = rcgen::CertificateParams::default();
    ku.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
    assert!(
        pinned_accepts(&certificate(ku)).is_err(),
        "keyUsage without digitalSignature"
    );
}

fn pki(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../certs/test-pki")
            .join(name),
    )
    .expect("test PKI file")
}

#[test]
fn a_renewed_self_signed_certificate_keeps_the_key_and_its_pin() {
    let old = Material::self_signed("CERT-A", "192.0.2.1:4433", NOW).expect("cert");
    let new =
        Material::renewed_self_signed(&old, "CERT-A", "192.0.2.1:4433", NOW + 700 * 86_400_000)
            .expect("renewed");
    assert_eq!(new.spki_sha256(), old.spki_sha256());
    assert_ne!(new.cert_der, old.cert_der);
    assert!(tls::certificate_not_after(&new.cert_der) > tls::certificate_not_after(&old.cert_der));
    assert_eq!(alt_names(&new.cert_der), alt_names(&old.cert_der));
}

#[test]
fn a_crl_lists_the_revoked_certificate_and_not_the_others() {
    let ca = tls::CaRoots {
        roots: tls::certs_from_pem(&pki("ca.pem")).expect("ca"),
        crls: tls::crls_from_pem(&pki("ca.crl.pem")).expect("crl"),
    };
    let cert = |name: &str| tls::certs_from_pem(&pki(name)).expect("cert")[0].clone();
    assert!(tls::listed_in_crl(&ca, &cert("revoked.pem")));
    assert!(!tls::listed_in_crl(&ca, &cert("node-a.pem")));
    assert!(!tls::listed_in_crl(&ca, &cert("foreign-node.pem")));
}
