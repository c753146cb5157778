//! Private CA trust mode (SPEC.md §3.6.2) in real nodes: certificates imported at `init`,
//! `[ca]` in hotlined.toml, `peer add --trust ca`, and one listener serving peers of both
//! modes. Nodes run in-process over loopback, each in its own temporary directory.
//!
//! Certificates come from the committed test PKI in `certs/test-pki` (valid 2026-01-01 to
//! 2028-01-01; see certs/README.md). Its node certificates name `127.0.0.1` in their
//! subjectAltName, so nodes listen on and dial 127.0.0.1: a client in private CA mode checks
//! the dialed host against the server's certificate.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotline_node::commands::{self, TlsImport};
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::store::{Store, TrustMode};
use hotline_transport::material::Material;

use common::{free_udp_port, pki};

/// A node directory made by `init`.
struct NodeDir {
    dir: PathBuf,
    addr: String,
}

/// `init` a node named `name` in `root/name`. With `cert`, its TLS certificate and key are
/// `certs/test-pki/<cert>.{pem,key}`, imported as `--tls-cert`/`--tls-key` would, and
/// hotlined.toml gets a `[ca]` trusting the test CA; without, a self-signed pair is generated.
fn node(root: &Path, name: &str, cert: Option<&str>) -> NodeDir {
    let dir = root.join(name);
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let (cert_file, key_file) = cert
        .map(|c| (pki(&format!("{c}.pem")), pki(&format!("{c}.key"))))
        .unzip();
    let tls = cert_file
        .as_deref()
        .zip(key_file.as_deref())
        .map(|(cert, key)| TlsImport { cert, key });
    commands::init_with_tls(&dir, name, &addr, tls).expect("init");
    if cert.is_some() {
        write_ca(&dir, &pki("ca.pem"), &[&pki("ca.crl.pem")]);
    }
    NodeDir { dir, addr }
}

/// Appends a `[ca]` section to the node's hotlined.toml.
fn write_ca(dir: &Path, roots: &Path, crls: &[&Path]) {
    use std::io::Write;
    let crls: Vec<String> = crls
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(config::CONFIG_FILE))
        .expect("open config");
    write!(
        f,
        "\n[ca]\nroots = {:?}\ncrls = [{}]\n",
        roots.display().to_string(),
        crls.join(", ")
    )
    .expect("write config");
}

/// `peer add` of `peer` into `at` under `alias`.
fn add(at: &NodeDir, peer: &NodeDir, alias: &str, trust: TrustMode) {
    commands::peer_add_with_trust(
        &at.dir,
        &peer.dir.join(config::BUNDLE_FILE),
        &peer.addr,
        Some(alias),
        trust,
    )
    .expect("peer add");
}

async fn start(n: &NodeDir) -> Node {
    let cfg = config::Config::load(&n.dir).expect("cfg");
    let m = Material::load(&n.dir).expect("material");
    let store = SqliteStore::open(&n.dir.join(config::DB_FILE)).expect("db");
    Node::start(cfg, m, Box::new(store), None)
        .await
        .expect("start")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
}

/// Waits until every `(node, alias)` link is up; false after `limit`.
async fn all_up(links: &[(&Node, &str)], limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if links.iter().all(|(n, alias)| n.link_up(alias)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Waits until `refusing` has counted a handshake failure with `reason`, checking all along
/// that neither link comes up; then watches one more second.
async fn refused(refusing: (&Node, &str), other: (&Node, &str), reason: &str) {
    let needle = format!("hotline_handshake_failures_total{{reason=\"{reason}\"}}");
    let t0 = Instant::now();
    let mut seen_at = None;
    while seen_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(1)) {
        assert!(
            !refusing.0.link_up(refusing.1) && !other.0.link_up(other.1),
            "the link came up"
        );
        if seen_at.is_none() && refusing.0.metrics_text().contains(&needle) {
            seen_at = Some(Instant::now());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no {reason} refusal counted:\n{}",
            refusing.0.metrics_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn two_private_ca_nodes_bring_the_link_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    let b = node(tmp.path(), "CERT-B", Some("node-b"));
    add(&a, &b, "cert-b", TrustMode::Ca);
    add(&b, &a, "cert-a", TrustMode::Ca);
    assert_eq!(commands::check(&a.dir), Vec::<String>::new());
    runtime().block_on(async {
        let (na, nb) = (start(&a).await, start(&b).await);
        assert!(
            all_up(&[(&na, "cert-b"), (&nb, "cert-a")], Duration::from_secs(30)).await,
            "link did not come up; A metrics:\n{}",
            na.metrics_text()
        );
        na.shutdown().await;
        nb.shutdown().await;
    });
}

#[test]
fn a_node_with_a_revoked_certificate_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    let r = node(tmp.path(), "CERT-R", Some("revoked"));
    add(&a, &r, "cert-r", TrustMode::Ca);
    add(&r, &a, "cert-a", TrustMode::Ca);
    runtime().block_on(async {
        let (na, nr) = (start(&a).await, start(&r).await);
        refused((&na, "cert-r"), (&nr, "cert-a"), "revoked").await;
        na.shutdown().await;
        nr.shutdown().await;
    });
}

#[test]
fn a_node_with_a_certificate_from_a_foreign_ca_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    // F trusts the test CA (so it accepts A); its own certificate is from the foreign CA.
    let f = node(tmp.path(), "CERT-F", Some("foreign-node"));
    add(&a, &f, "cert-f", TrustMode::Ca);
    add(&f, &a, "cert-a", TrustMode::Ca);
    runtime().block_on(async {
        let (na, nf) = (start(&a).await, start(&f).await);
        refused((&na, "cert-f"), (&nf, "cert-a"), "unknown_issuer").await;
        na.shutdown().await;
        nf.shutdown().await;
    });
}

#[test]
fn one_node_serves_a_pinned_peer_and_a_private_ca_peer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    let b = node(tmp.path(), "CERT-B", None); // self-signed, no [ca]
    let c = node(tmp.path(), "CERT-C", Some("node-b"));
    add(&a, &b, "cert-b", TrustMode::Pinned);
    add(&a, &c, "cert-c", TrustMode::Ca);
    add(&b, &a, "cert-a", TrustMode::Pinned);
    add(&c, &a, "cert-a", TrustMode::Ca);
    runtime().block_on(async {
        let (na, nb, nc) = (start(&a).await, start(&b).await, start(&c).await);
        assert!(
            all_up(
                &[
                    (&na, "cert-b"),
                    (&na, "cert-c"),
                    (&nb, "cert-a"),
                    (&nc, "cert-a")
                ],
                Duration::from_secs(30)
            )
            .await,
            "links did not come up; A metrics:\n{}",
            na.metrics_text()
        );
        for n in [na, nb, nc] {
            n.shutdown().await;
        }
    });
}

#[test]
fn a_self_signed_peer_trusted_through_the_ca_is_refused() {
    // B (self-signed) pins A's CA-issued key; A trusts B through the CA, which B's
    // self-signed certificate cannot satisfy, although its key is the one B's bundle pins.
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    let b = node(tmp.path(), "CERT-B", None);
    add(&a, &b, "cert-b", TrustMode::Ca);
    add(&b, &a, "cert-a", TrustMode::Pinned);
    runtime().block_on(async {
        let (na, nb) = (start(&a).await, start(&b).await);
        refused((&na, "cert-b"), (&nb, "cert-a"), "unknown_issuer").await;
        na.shutdown().await;
        nb.shutdown().await;
    });
}

#[test]
fn init_imports_the_certificate_and_the_bundle_pins_its_key() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    let mode = std::fs::metadata(a.dir.join(config::TLS_KEY_FILE))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let imported = hotline_transport::tls::NodeTlsKey::from_pem(
        &std::fs::read(pki("node-a.pem")).expect("pem"),
        &std::fs::read(pki("node-a.key")).expect("key"),
    )
    .expect("parses");
    let m = Material::load(&a.dir).expect("material");
    assert_eq!(m.tls.cert_der, imported.cert_der);
    let bundle = hotline_protocol::bundle::PeerBundle::from_armored(
        &std::fs::read(a.dir.join(config::BUNDLE_FILE)).expect("bundle"),
    )
    .expect("bundle parses");
    assert_eq!(bundle.tls_spki_sha256(), &imported.spki_sha256());
}

#[test]
fn init_refuses_a_certificate_outside_the_profile_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (cert, key, says) in [
        ("ca.pem", "ca.key", "certificate profile"),
        ("expired.pem", "expired.key", "valid now"),
        ("node-a.pem", "node-b.key", "rustls"),
    ] {
        let dir = tmp.path().join(cert);
        let (cert, key) = (pki(cert), pki(key));
        let err = commands::init_with_tls(
            &dir,
            "CERT-A",
            "127.0.0.1:4433",
            Some(TlsImport {
                cert: &cert,
                key: &key,
            }),
        )
        .expect_err("must refuse");
        assert!(err.0.contains(says), "{}", err.0);
        assert!(!dir.exists(), "{} was created", dir.display());
    }
}

#[test]
fn peer_add_with_ca_trust_needs_a_ca_section_and_check_reports_one_missing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", None);
    let b = node(tmp.path(), "CERT-B", Some("node-b"));
    let err = commands::peer_add_with_trust(
        &a.dir,
        &b.dir.join(config::BUNDLE_FILE),
        &b.addr,
        Some("cert-b"),
        TrustMode::Ca,
    )
    .expect_err("must refuse");
    assert!(err.0.contains("[ca]"), "{}", err.0);

    // Added while [ca] was there, then [ca] removed: check says so, start refuses.
    let cfg_path = a.dir.join(config::CONFIG_FILE);
    let plain = std::fs::read_to_string(&cfg_path).expect("cfg");
    write_ca(&a.dir, &pki("ca.pem"), &[&pki("ca.crl.pem")]);
    add(&a, &b, "cert-b", TrustMode::Ca);
    std::fs::write(&cfg_path, plain).expect("cfg");
    let problems = commands::check(&a.dir);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("peer cert-b") && p.contains("no [ca]")),
        "{problems:?}"
    );
    runtime().block_on(async {
        let cfg = config::Config::load(&a.dir).expect("cfg");
        let m = Material::load(&a.dir).expect("material");
        let store = SqliteStore::open(&a.dir.join(config::DB_FILE)).expect("db");
        let err = Node::start(cfg, m, Box::new(store), None)
            .await
            .expect_err("must refuse");
        assert!(err.0.contains("no [ca]"), "{}", err.0);
    });
}

#[test]
fn check_reports_an_expired_crl_a_ca_without_crl_and_an_unreadable_file() {
    use rcgen::{
        CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer, KeyIdMethod,
        KeyPair, KeyUsagePurpose, SerialNumber, date_time_ymd,
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", None);
    // A CRL from another CA, whose nextUpdate has passed.
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "stale test CA");
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let crl = CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 1, 1),
        next_update: date_time_ymd(2026, 2, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&Issuer::new(params, key))
    .expect("crl");
    let stale = a.dir.join("stale.crl.pem");
    std::fs::write(&stale, crl.pem().expect("pem")).expect("write");
    // Relative paths are taken from the node directory.
    write_ca(&a.dir, &pki("ca.pem"), &[Path::new("stale.crl.pem")]);
    let problems = commands::check(&a.dir).join("\n");
    for needle in [
        "stale test CA expired at its nextUpdate",
        "no CRL for the CA CN=hotline test CA",
        "from none of the configured CA certificates",
    ] {
        assert!(problems.contains(needle), "{needle:?} not in:\n{problems}");
    }

    std::fs::remove_file(&stale).expect("rm");
    let problems = commands::check(&a.dir).join("\n");
    assert!(
        problems.contains("[ca] crls") && problems.contains("stale.crl.pem"),
        "{problems}"
    );
}

#[test]
fn peer_trust_is_stored_and_older_peers_migrate_as_pinned() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("hotline.db");
    let peer = |alias: &str, n: u8, trust| hotline_node::store::PeerRecord {
        alias: alias.into(),
        identity: hotline_protocol::identity::IdentityKey::from_seed(&[n; 32])
            .expect("key")
            .id(),
        address: "127.0.0.1:4433".into(),
        bundle: bytes::Bytes::from_static(b"bundle"),
        added_ms: 1,
        trust,
    };
    {
        let mut s = SqliteStore::open(&path).expect("open");
        s.add_peer(&peer("by-ca", 1, TrustMode::Ca)).expect("add");
        s.add_peer(&peer("pinned", 2, TrustMode::Pinned))
            .expect("add");
        let trusts: Vec<_> = s.peers().expect("peers").iter().map(|p| p.trust).collect();
        assert_eq!(trusts, [TrustMode::Ca, TrustMode::Pinned]);
    }
    // Back to schema version 2 (no trust column), as an older hotlined left it.
    let c = rusqlite::Connection::open(&path).expect("raw");
    c.execute_batch("ALTER TABLE peers DROP COLUMN trust; PRAGMA user_version = 2;")
        .expect("downgrade");
    drop(c);
    let mut s = SqliteStore::open(&path).expect("migrates");
    let trusts: Vec<_> = s.peers().expect("peers").iter().map(|p| p.trust).collect();
    assert_eq!(trusts, [TrustMode::Pinned, TrustMode::Pinned]);
    assert_eq!(s.check().expect("check"), Vec::<String>::new());
}

/// A fresh node certificate from the test CA (SAN 127.0.0.1, EKU serverAuth + clientAuth),
/// as PEM certificate and key.
fn issue_from_test_ca() -> (String, String) {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        date_time_ymd,
    };
    let ca = common::test_ca();
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "another key");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2027, 12, 31);
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca).expect("issue");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn a_ca_certificate_for_another_key_than_the_bundle_pins_is_refused_both_ways() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = node(tmp.path(), "CERT-A", Some("node-a"));
    let b = node(tmp.path(), "CERT-B", Some("node-b"));
    add(&a, &b, "cert-b", TrustMode::Ca);
    add(&b, &a, "cert-a", TrustMode::Ca);
    // B now runs with another key the CA vouches for; its bundle at A still pins the old one.
    let (cert, key) = issue_from_test_ca();
    std::fs::write(b.dir.join(config::TLS_CERT_FILE), cert).expect("cert");
    std::fs::write(b.dir.join(config::TLS_KEY_FILE), key).expect("key");
    runtime().block_on(async {
        let (na, nb) = (start(&a).await, start(&b).await);
        // A's listener refuses B as a client; A's client refuses B as a server, which B sees
        // as the alert access_denied. Without the client-side pin check the link would come
        // up over A's dial (B's identity and Hello are genuine).
        refused((&na, "cert-b"), (&nb, "cert-a"), "unknown_certificate").await;
        refused((&nb, "cert-a"), (&na, "cert-b"), "unknown_certificate").await;
        na.shutdown().await;
        nb.shutdown().await;
    });
}

#[test]
fn mixed_verifiers_choose_the_checks_by_the_pinned_key() {
    use hotline_transport::tls::{self, CaRoots, NodeTlsKey, PeerTrust};
    use rustls::pki_types::{ServerName, UnixTime};
    let key = |name: &str| {
        NodeTlsKey::from_pem(
            &std::fs::read(pki(&format!("{name}.pem"))).expect("pem"),
            &std::fs::read(pki(&format!("{name}.key"))).expect("key"),
        )
        .expect("key parses")
    };
    let ca = CaRoots {
        roots: tls::certs_from_pem(&std::fs::read(pki("ca.pem")).expect("ca")).expect("ca"),
        crls: tls::crls_from_pem(&std::fs::read(pki("ca.crl.pem")).expect("crl")).expect("crl"),
    };
    let (pinned, expired) = (key("pinned-a"), key("expired"));
    let trust = PeerTrust::Mixed {
        pinned: vec![pinned.spki_sha256(), expired.spki_sha256()],
        ca: Some((
            ca.clone(),
            ["node-a", "revoked", "foreign-node", "pinned-b"]
                .map(|n| key(n).spki_sha256())
                .to_vec(),
        )),
    };
    let client = tls::client_cert_verifier(&trust).expect("client verifier");
    let server = tls::server_cert_verifier(&trust).expect("server verifier");
    let now = UnixTime::now();
    let as_client = |name: &str| {
        client
            .verify_client_cert(&key(name).cert_der, &[], now)
            .map_or_else(|e| tls::failure_reason(&e), |_| "ok")
    };
    let as_server = |name: &str, host: &str| {
        let host = ServerName::try_from(host.to_owned()).expect("name");
        server
            .verify_server_cert(&key(name).cert_der, &[], &host, &[], now)
            .map_or_else(|e| tls::failure_reason(&e), |_| "ok")
    };
    for (cert, verdict) in [
        ("pinned-a", "ok"),                 // pinned peer: no chain needed
        ("node-a", "ok"),                   // CA peer with a valid certificate
        ("expired", "expired"),             // pinned, but the dates still count
        ("revoked", "revoked"),             // CA peer, revoked
        ("foreign-node", "unknown_issuer"), // CA peer, another CA
        ("pinned-b", "unknown_issuer"),     // CA peer, self-signed
        ("node-b", "unknown_certificate"),  // the CA vouches for it, but no peer pins it
    ] {
        assert_eq!(as_client(cert), verdict, "{cert} as client");
        assert_eq!(as_server(cert, "127.0.0.1"), verdict, "{cert} as server");
    }
    // The dialed name counts for a CA peer only.
    assert_eq!(as_server("node-a", "node-a.hotline.test"), "ok");
    assert_eq!(
        as_server("node-a", "node-b.hotline.test"),
        "bad_certificate"
    );
    assert_eq!(as_server("pinned-a", "node-b.hotline.test"), "ok");

    // Refused configurations: nobody to accept; a CA without CRL.
    for trust in [
        PeerTrust::Mixed {
            pinned: Vec::new(),
            ca: None,
        },
        PeerTrust::Mixed {
            pinned: Vec::new(),
            ca: Some((ca.clone(), Vec::new())),
        },
    ] {
        assert!(matches!(
            tls::client_cert_verifier(&trust),
            Err(tls::TlsError::NoPins)
        ));
    }
    let no_crl = PeerTrust::Mixed {
        pinned: Vec::new(),
        ca: Some((
            CaRoots {
                crls: Vec::new(),
                ..ca
            },
            vec![key("node-a").spki_sha256()],
        )),
    };
    assert!(matches!(
        tls::server_cert_verifier(&no_crl),
        Err(tls::TlsError::NoCrl)
    ));
}
