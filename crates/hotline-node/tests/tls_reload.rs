//! The TLS certificate and the `[ca]` files are re-read while the node runs (issue 14, item 3):
//! `hotlined keys renew-tls` gives the node a new certificate for the same key, which new
//! connections get within one key check while the link stays up; a certificate for another
//! key is refused and the running one kept.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, pki, runtime, start, status, two_nodes};
use hotline_node::config;
use rustls::pki_types::CertificateDer;

/// The certificate the node at `c`'s connection presented.
fn served(c: &Client) -> CertificateDer<'static> {
    let id = c.conn.peer_identity().expect("a peer identity");
    let certs = id
        .downcast::<Vec<CertificateDer<'static>>>()
        .expect("rustls certificates");
    certs[0].clone()
}

fn on_disk(dir: &Path) -> CertificateDer<'static> {
    let pem = std::fs::read(dir.join(config::TLS_CERT_FILE)).expect("tls.pem");
    hotline_transport::tls::certs_from_pem(&pem).expect("pem")[0].clone()
}

#[test]
fn a_renewed_certificate_for_the_same_key_is_served_without_dropping_the_link() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna Officer", "officer", "anna.cred"),
            ('b', "Bruno Officer", "officer", "bruno.cred"),
        ],
    );
    let old = on_disk(&a);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let t0 = Instant::now();
        while !status(&bruno).await.links.iter().all(|l| l.up) {
            assert!(t0.elapsed() < Duration::from_secs(20), "link never up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Past the start's dial race.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let since = status(&bruno).await.links[0].since_ms;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        assert_eq!(served(&anna), old);

        hotline_node::keys::renew_tls(&a, None).expect("renew-tls");
        let new = on_disk(&a);
        assert_ne!(new, old);
        // Within a key check, new connections get the new certificate; the operator's pin
        // (the key's) still holds.
        let t0 = Instant::now();
        loop {
            let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
                .await
                .expect("anna connects with the pin she has");
            if served(&anna) == new {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(15),
                "the node never served the renewed certificate"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(
            status(&bruno).await.links[0].since_ms,
            since,
            "link dropped"
        );

        // A certificate for another key is refused by the command, and by the running node
        // if written by hand: the renewed one stays in use.
        let other = tmp.path().join("other");
        hotline_node::commands::init(&other, "OTHER", "127.0.0.1:9").expect("init");
        let err = hotline_node::keys::renew_tls(&a, Some(&other.join(config::TLS_CERT_FILE)))
            .expect_err("another key");
        assert!(err.0.contains("this node's TLS key"), "{}", err.0);
        std::fs::copy(
            other.join(config::TLS_CERT_FILE),
            a.join(config::TLS_CERT_FILE),
        )
        .expect("copy");
        tokio::time::sleep(Duration::from_secs(6)).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna still connects");
        assert_eq!(served(&anna), new);
        assert_eq!(
            status(&bruno).await.links[0].since_ms,
            since,
            "link dropped"
        );
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// A CRL of the test CA revoking `cert` (PEM file), as PEM.
fn crl_revoking(cert: &Path) -> String {
    use rcgen::{
        CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams,
        SerialNumber, date_time_ymd,
    };
    let ca = common::test_ca();
    let der = hotline_transport::tls::certs_from_pem(&std::fs::read(cert).expect("cert"))
        .expect("pem")[0]
        .clone();
    let serial = hotline_transport::tls::certificate_serial(&der).expect("serial");
    let crl = CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 6, 1),
        next_update: date_time_ymd(2027, 12, 1),
        crl_number: SerialNumber::from_slice(&[2]),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from_slice(&serial),
            revocation_time: date_time_ymd(2026, 6, 1),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca)
    .expect("crl");
    crl.pem().expect("pem")
}

#[test]
fn a_new_crl_revoking_the_peer_closes_its_connection_and_refuses_the_next_without_a_restart() {
    use hotline_node::commands::{self, TlsImport};
    use hotline_node::store::TrustMode;
    let tmp = tempfile::tempdir().expect("tmp");
    let crl = tmp.path().join("ca.crl.pem");
    std::fs::copy(pki("ca.crl.pem"), &crl).expect("crl");
    let mk = |name: &str, cert: &str| {
        let dir = tmp.path().join(name);
        let addr = format!("127.0.0.1:{}", common::free_udp_port());
        let (c, k) = (pki(&format!("{cert}.pem")), pki(&format!("{cert}.key")));
        commands::init_with_tls(&dir, name, &addr, Some(TlsImport { cert: &c, key: &k }))
            .expect("init");
        let mut toml = std::fs::read_to_string(dir.join(config::CONFIG_FILE)).expect("cfg");
        toml.push_str(&format!(
            "\n[ca]\nroots = {:?}\ncrls = [{:?}]\n",
            pki("ca.pem").display().to_string(),
            crl.display().to_string()
        ));
        std::fs::write(dir.join(config::CONFIG_FILE), toml).expect("cfg");
        (dir, addr)
    };
    let (a, a_addr) = mk("CERT-A", "node-a");
    let (b, b_addr) = mk("CERT-B", "node-b");
    let pin = |at: &Path, peer: &Path, addr: &str, alias: &str| {
        commands::peer_add_with_trust(
            at,
            &peer.join(config::BUNDLE_FILE),
            addr,
            Some(alias),
            TrustMode::Ca,
        )
        .expect("peer add");
    };
    pin(&a, &b, &b_addr, "cert-b");
    pin(&b, &a, &a_addr, "cert-a");
    let up = |n: &hotline_node::daemon::Node, alias: &str| n.link_up(alias);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let t0 = Instant::now();
        while !(up(&na, "cert-b") && up(&nb, "cert-a")) {
            assert!(t0.elapsed() < Duration::from_secs(30), "link never up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The CA revokes A's certificate; the CRL file is replaced while both run.
        let new = tmp.path().join("ca.crl.new");
        std::fs::write(&new, crl_revoking(&pki("node-a.pem"))).expect("write");
        std::fs::rename(&new, &crl).expect("rename");
        // Within a key check B closes the connection up with A (SPEC.md §3.6.2), and refuses
        // A's certificate from then on, without a restart of either node.
        let needle = "hotline_handshake_failures_total{reason=\"revoked\"}";
        let t0 = Instant::now();
        while up(&nb, "cert-a") || !nb.metrics_text().contains(needle) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "B kept the revoked peer's connection:\n{}",
                nb.metrics_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            assert!(!up(&nb, "cert-a"), "B linked with a revoked certificate");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!up(&nb, "cert-a") && !up(&na, "cert-b"));
        na.shutdown().await;
        nb.shutdown().await;
    });
}
