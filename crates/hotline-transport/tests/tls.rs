//! TLS of node links over real quinn endpoints on 127.0.0.1 (SPEC.md §3): both trust modes,
//! refusals checked on the side that verifies (a refused client may believe it is connected,
//! see FIELD-NOTES.md), the key exchange group, no 0-RTT, SPKI pins and the exporter.
//!
//! Certificates come from the committed test PKI in `certs/test-pki` (valid 2026-01-01 to
//! 2028-01-01; see certs/README.md).
//!
//! Not tested because it cannot happen: a TLS 1.2 client. QUIC runs only over TLS 1.3
//! (RFC 9001 §4.2); rustls in QUIC mode and quinn's `QuicClientConfig`/`QuicServerConfig`
//! negotiate nothing else, so no QUIC client can offer TLS 1.2 to a node. The verifiers refuse
//! TLS 1.2 signatures anyway.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hotline_protocol::{ALPN, EXPORTER_LABEL};
use hotline_transport::tls::{self, NodeTlsKey, PeerTrust, TransportLimits};
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use rustls::NamedGroup;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use sha2::{Digest, Sha256};

const TIMEOUT: Duration = Duration::from_secs(10);
const PAYLOAD: &[u8] = b"hotline echo";

// ---- test PKI ---------------------------------------------------------------------------

fn pki_file(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../certs/test-pki")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key(name: &str) -> NodeTlsKey {
    NodeTlsKey::from_pem(
        &pki_file(&format!("{name}.pem")),
        &pki_file(&format!("{name}.key")),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn key_der(name: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(&pki_file(&format!("{name}.key"))).expect("key PEM")
}

fn ca_trust() -> PeerTrust {
    PeerTrust::PrivateCa {
        roots: tls::certs_from_pem(&pki_file("ca.pem")).expect("ca.pem"),
        crls: tls::crls_from_pem(&pki_file("ca.crl.pem")).expect("ca.crl.pem"),
    }
}

fn pins(keys: &[&NodeTlsKey]) -> PeerTrust {
    PeerTrust::Pinned {
        spki_sha256: keys.iter().map(|k| k.spki_sha256()).collect(),
    }
}

fn limits() -> TransportLimits {
    TransportLimits::default()
}

fn server_config(key: &NodeTlsKey, trust: &PeerTrust) -> quinn::ServerConfig {
    tls::server_config(key, trust, &[ALPN], &limits()).expect("server config")
}

fn client_config(key: &NodeTlsKey, trust: &PeerTrust) -> quinn::ClientConfig {
    tls::client_config(key, trust, ALPN, &limits()).expect("client config")
}

/// A rustls client built by hand: same provider and server verifier as a node, but the
/// client certificate, ALPN, resumption and early data are up to the test.
fn raw_client_builder(
    trust: &PeerTrust,
    provider: Arc<CryptoProvider>,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(tls::server_cert_verifier(trust).expect("verifier"))
}

fn quic_client(mut config: rustls::ClientConfig, alpn: &[u8]) -> quinn::ClientConfig {
    config.alpn_protocols = vec![alpn.to_vec()];
    quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(config).expect("QUIC client"),
    ))
}

/// A certificate with a signing key that is not its own: passes any check that looks only
/// at the certificate, fails the CertificateVerify signature.
fn cert_with_wrong_key(cert: &CertificateDer<'static>) -> Arc<SingleCertAndKey> {
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
    let der = PrivateKeyDer::Pkcs8(other.serialize_der().into());
    let signer = tls::provider()
        .key_provider
        .load_private_key(der)
        .expect("load key");
    Arc::new(SingleCertAndKey::from(CertifiedKey::new(
        vec![cert.clone()],
        signer,
    )))
}

// ---- connection helpers -----------------------------------------------------------------

fn server_endpoint(config: quinn::ServerConfig) -> quinn::Endpoint {
    quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("server")
}

fn client_endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client")
}

/// Accepts one connection and echoes one bidirectional stream on it.
async fn serve_echo(server: quinn::Endpoint) -> Result<quinn::Connection, quinn::ConnectionError> {
    let conn = server.accept().await.expect("incoming").await?;
    let (mut send, mut recv) = conn.accept_bi().await?;
    let data = recv.read_to_end(1 << 20).await.expect("read");
    send.write_all(&data).await.expect("write");
    send.finish().expect("finish");
    Ok(conn)
}

async fn echo(conn: &quinn::Connection, payload: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = conn.open_bi().await.expect("open stream");
    send.write_all(payload).await.expect("write");
    send.finish().expect("finish");
    recv.read_to_end(1 << 20).await.expect("read echo")
}

/// Both ends of an established, echo-tested connection (the endpoints stay alive with it).
struct Pair {
    client: quinn::Connection,
    server: quinn::Connection,
    _endpoints: (quinn::Endpoint, quinn::Endpoint),
}

async fn connect(
    server_config: quinn::ServerConfig,
    client_config: quinn::ClientConfig,
    name: &str,
) -> Pair {
    let server = server_endpoint(server_config);
    let addr = server.local_addr().expect("addr");
    let accept = tokio::spawn(serve_echo(server.clone()));
    let client = client_endpoint();
    let run = async {
        let conn = client
            .connect_with(client_config, addr, name)
            .expect("connect")
            .await;
        let conn = conn.expect("client handshake");
        assert_eq!(echo(&conn, PAYLOAD).await, PAYLOAD);
        let server_conn = accept
            .await
            .expect("server task")
            .expect("server handshake");
        (conn, server_conn)
    };
    let (client_conn, server_conn) = tokio::time::timeout(TIMEOUT, run).await.expect("in time");
    Pair {
        client: client_conn,
        server: server_conn,
        _endpoints: (server, client),
    }
}

/// One handshake the server must refuse; returns the server's error. The client is kept
/// running until the server has decided.
async fn server_refuses(
    server_config: quinn::ServerConfig,
    client_config: quinn::ClientConfig,
    name: &str,
) -> quinn::ConnectionError {
    let server = server_endpoint(server_config);
    let addr = server.local_addr().expect("addr");
    let client = client_endpoint();
    let connecting = client
        .connect_with(client_config, addr, name)
        .expect("connect");
    let client_side = tokio::spawn(async move {
        if let Ok(conn) = connecting.await {
            let _ = conn.open_bi().await;
            conn.closed().await;
        }
        drop(client);
    });
    let accepted = async { server.accept().await.expect("incoming").await };
    let result = tokio::time::timeout(TIMEOUT, accepted)
        .await
        .expect("server decided in time");
    client_side.abort();
    match result {
        Ok(conn) => panic!(
            "server accepted {:?}",
            tls::peer_certificate(&conn).map(|c| c.len())
        ),
        Err(e) => e,
    }
}

/// One handshake the client must refuse; returns the client's error.
async fn client_refuses(
    server_config: quinn::ServerConfig,
    client_config: quinn::ClientConfig,
    name: &str,
) -> quinn::ConnectionError {
    let server = server_endpoint(server_config);
    let addr = server.local_addr().expect("addr");
    let server_side = tokio::spawn(async move {
        if let Some(incoming) = server.accept().await {
            let _ = incoming.await;
        }
        server.wait_idle().await;
    });
    let client = client_endpoint();
    let connecting = client
        .connect_with(client_config, addr, name)
        .expect("connect");
    let result = tokio::time::timeout(TIMEOUT, connecting)
        .await
        .expect("client decided in time");
    server_side.abort();
    result.expect_err("client must refuse the server")
}

// ---- successful connections -------------------------------------------------------------

#[tokio::test]
async fn pinned_mode_connects_and_echoes() {
    let (a, b) = (key("pinned-a"), key("pinned-b"));
    // The server pins two peers; either may connect.
    let pair = connect(
        server_config(&b, &pins(&[&key("node-a"), &a])),
        client_config(&a, &pins(&[&b])),
        "127.0.0.1",
    )
    .await;
    assert_eq!(
        tls::peer_certificate(&pair.server).as_ref(),
        Some(&a.cert_der)
    );
    assert_eq!(
        tls::peer_certificate(&pair.client).as_ref(),
        Some(&b.cert_der)
    );
}

#[tokio::test]
async fn private_ca_mode_connects_and_echoes() {
    let (a, b) = (key("node-a"), key("node-b"));
    let pair = connect(
        server_config(&b, &ca_trust()),
        client_config(&a, &ca_trust()),
        "node-b.hotline.test",
    )
    .await;
    assert_eq!(
        tls::peer_certificate(&pair.server).as_ref(),
        Some(&a.cert_der)
    );
    assert_eq!(
        tls::peer_certificate(&pair.client).as_ref(),
        Some(&b.cert_der)
    );
}

#[tokio::test]
async fn trust_modes_mix_on_one_link() {
    // SPEC.md §3.6: the two nodes of a link may use different modes. node-a is CA-issued,
    // so the server can pin it while the client validates node-b through the CA.
    let (a, b) = (key("node-a"), key("node-b"));
    connect(
        server_config(&b, &pins(&[&a])),
        client_config(&a, &ca_trust()),
        "node-b.hotline.test",
    )
    .await;
}

#[tokio::test]
async fn spki_pin_matches_what_the_peer_sees() {
    let (a, b) = (key("pinned-a"), key("pinned-b"));
    let pair = connect(
        server_config(&b, &pins(&[&a])),
        client_config(&a, &pins(&[&b])),
        "127.0.0.1",
    )
    .await;
    for (name, local, conn) in [
        ("pinned-a", &a, &pair.server),
        ("pinned-b", &b, &pair.client),
    ] {
        let pem_cert = tls::certs_from_pem(&pki_file(&format!("{name}.pem")))
            .expect("pem")
            .remove(0);
        let seen = tls::peer_certificate(conn).expect("peer certificate");
        let pin = tls::spki_sha256(&pem_cert).expect("spki");
        assert_eq!(tls::spki_sha256(&seen).expect("spki"), pin);
        assert_eq!(local.spki_sha256(), pin);
        // Independently: SHA-256 over the SPKI as rustls/webpki extracts it.
        let parsed = rustls::server::ParsedCertificate::try_from(&seen).expect("parse");
        let independent: [u8; 32] =
            Sha256::digest(parsed.subject_public_key_info().as_ref()).into();
        assert_eq!(independent, pin, "{name}");
    }
    assert_ne!(a.spki_sha256(), b.spki_sha256());
}

#[tokio::test]
async fn both_sides_derive_the_same_exporter_and_each_connection_another() {
    let (a, b) = (key("pinned-a"), key("pinned-b"));
    let mut values = Vec::new();
    for _ in 0..2 {
        let pair = connect(
            server_config(&b, &pins(&[&a])),
            client_config(&a, &pins(&[&b])),
            "127.0.0.1",
        )
        .await;
        let client = tls::exporter(&pair.client, EXPORTER_LABEL, b"");
        assert_eq!(client, tls::exporter(&pair.server, EXPORTER_LABEL, b""));
        assert_ne!(client, tls::exporter(&pair.client, b"EXPORTER-other", b""));
        values.push(client);
    }
    assert_ne!(values[0], values[1]);
}

// ---- key exchange group and 0-RTT --------------------------------------------------------

fn group(conn: &quinn::Connection) -> NamedGroup {
    let data = conn.handshake_data().expect("handshake data");
    data.downcast::<HandshakeData>()
        .expect("rustls handshake data")
        .negotiated_key_exchange_group
}

#[tokio::test]
async fn nodes_negotiate_x25519mlkem768() {
    let (a, b) = (key("node-a"), key("node-b"));
    let pair = connect(
        server_config(&b, &ca_trust()),
        client_config(&a, &ca_trust()),
        "node-b.hotline.test",
    )
    .await;
    assert_eq!(group(&pair.client), NamedGroup::X25519MLKEM768);
    assert_eq!(group(&pair.server), NamedGroup::X25519MLKEM768);
}

#[tokio::test]
async fn server_falls_back_to_x25519_for_a_classical_client() {
    // Control for the test above: the group is really observed, not a constant.
    let (a, b) = (key("node-a"), key("node-b"));
    let provider = Arc::new(CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        ..(*tls::provider()).clone()
    });
    let raw = raw_client_builder(&ca_trust(), provider).with_client_cert_resolver(Arc::new(
        SingleCertAndKey::from(
            CertifiedKey::from_der(
                vec![a.cert_der.clone()],
                key_der("node-a"),
                &tls::provider(),
            )
            .expect("key"),
        ),
    ));
    let pair = connect(
        server_config(&b, &ca_trust()),
        quic_client(raw, ALPN),
        "node-b.hotline.test",
    )
    .await;
    assert_eq!(group(&pair.server), NamedGroup::X25519);
}

/// The group a node's server selects for a client that offers `groups`, in that order (and,
/// as rustls does, a key share for the first).
async fn server_group_for(
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> NamedGroup {
    let (a, b) = (key("node-a"), key("node-b"));
    let provider = Arc::new(CryptoProvider {
        kx_groups: groups,
        ..(*tls::provider()).clone()
    });
    let raw = raw_client_builder(&ca_trust(), provider).with_client_cert_resolver(Arc::new(
        SingleCertAndKey::from(
            CertifiedKey::from_der(
                vec![a.cert_der.clone()],
                key_der("node-a"),
                &tls::provider(),
            )
            .expect("key"),
        ),
    ));
    let pair = connect(
        server_config(&b, &ca_trust()),
        quic_client(raw, ALPN),
        "node-b.hotline.test",
    )
    .await;
    assert_eq!(group(&pair.client), group(&pair.server));
    group(&pair.server)
}

/// SPEC.md §3.4: without the hybrid, the server takes the client's first group it supports
/// and has no preference of its own between X25519 and secp256r1; it follows the client's
/// order even when the hybrid is offered further down.
#[tokio::test]
async fn server_follows_the_clients_order_of_groups() {
    use rustls::crypto::aws_lc_rs::kx_group::{SECP256R1, X25519, X25519MLKEM768};
    assert_eq!(
        server_group_for(vec![SECP256R1, X25519]).await,
        NamedGroup::secp256r1
    );
    assert_eq!(
        server_group_for(vec![X25519, SECP256R1]).await,
        NamedGroup::X25519
    );
    assert_eq!(
        server_group_for(vec![X25519, X25519MLKEM768]).await,
        NamedGroup::X25519
    );
}

/// A server that allows resumption and 0-RTT, as quinn's convenience constructors would.
fn permissive_server(key_name: &str, trust: &PeerTrust) -> quinn::ServerConfig {
    let key = key(key_name);
    let mut config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_client_cert_verifier(tls::client_cert_verifier(trust).expect("verifier"))
        .with_single_cert(vec![key.cert_der.clone()], key_der(key_name))
        .expect("cert");
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = u32::MAX;
    quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(config).expect("QUIC server"),
    ))
}

/// A client that resumes and tries 0-RTT when it can.
fn permissive_client(key_name: &str, trust: &PeerTrust) -> quinn::ClientConfig {
    let mut config = raw_client_builder(trust, tls::provider())
        .with_client_auth_cert(vec![key(key_name).cert_der.clone()], key_der(key_name))
        .expect("client cert");
    config.enable_early_data = true;
    quic_client(config, ALPN)
}

/// Connects twice with the same client configuration (the first connection leaves any
/// session ticket behind) and reports whether the second could send 0-RTT data.
async fn second_connection_gets_0rtt(
    server_config: quinn::ServerConfig,
    client_config: quinn::ClientConfig,
) -> bool {
    let server = server_endpoint(server_config);
    let addr = server.local_addr().expect("addr");
    let srv = server.clone();
    let server_side = tokio::spawn(async move {
        while let Some(incoming) = srv.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        let data = recv.read_to_end(1 << 20).await.unwrap_or_default();
                        let _ = send.write_all(&data).await;
                        let _ = send.finish();
                    }
                }
            });
        }
    });
    let client = client_endpoint();
    let run = async {
        let first = client
            .connect_with(client_config.clone(), addr, "node-b.hotline.test")
            .expect("connect");
        let first = first.await.expect("first handshake");
        assert_eq!(echo(&first, PAYLOAD).await, PAYLOAD);
        first.close(0u32.into(), b"done");
        let second = client
            .connect_with(client_config, addr, "node-b.hotline.test")
            .expect("connect");
        let (conn, zero_rtt) = match second.into_0rtt() {
            Ok((conn, _accepted)) => (conn, true),
            Err(connecting) => (connecting.await.expect("second handshake"), false),
        };
        assert_eq!(echo(&conn, PAYLOAD).await, PAYLOAD);
        zero_rtt
    };
    let zero_rtt = tokio::time::timeout(TIMEOUT, run).await.expect("in time");
    server_side.abort();
    zero_rtt
}

#[tokio::test]
async fn zero_rtt_is_never_used() {
    let trust = ca_trust();
    // Control: a permissive pair does use 0-RTT, so the check below can fail.
    assert!(
        second_connection_gets_0rtt(
            permissive_server("node-b", &trust),
            permissive_client("node-a", &trust)
        )
        .await
    );
    // A node's server issues no ticket, so even an eager client cannot send early data.
    assert!(
        !second_connection_gets_0rtt(
            server_config(&key("node-b"), &trust),
            permissive_client("node-a", &trust)
        )
        .await
    );
    // A node's client never offers early data, even to a server that would take it.
    assert!(
        !second_connection_gets_0rtt(
            permissive_server("node-b", &trust),
            client_config(&key("node-a"), &trust)
        )
        .await
    );
}

// ---- refusals seen by the server -------------------------------------------------------

#[tokio::test]
async fn server_refuses_client_without_certificate() {
    let b = key("node-b");
    for trust in [ca_trust(), pins(&[&key("node-a")])] {
        let raw = raw_client_builder(&ca_trust(), tls::provider()).with_no_client_auth();
        let err = server_refuses(
            server_config(&b, &trust),
            quic_client(raw, ALPN),
            "node-b.hotline.test",
        )
        .await;
        assert_eq!(
            tls::connection_failure_reason(&err),
            "no_certificate",
            "{err}"
        );
    }
}

#[tokio::test]
async fn server_refuses_unpinned_client_certificate() {
    let b = key("pinned-b");
    let trust = pins(&[&key("pinned-a")]);
    for client in ["node-a", "pinned-b"] {
        let err = server_refuses(
            server_config(&b, &trust),
            client_config(&key(client), &pins(&[&b])),
            "127.0.0.1",
        )
        .await;
        assert_eq!(
            tls::connection_failure_reason(&err),
            "unknown_certificate",
            "{client}: {err}"
        );
    }
}

#[tokio::test]
async fn server_refuses_pinned_certificate_signed_with_another_key() {
    // The pin matches (it covers the certificate's key), but the client does not hold that
    // key: the CertificateVerify signature must fail. Same in private CA mode.
    let b = key("pinned-b");
    for (cert, trust) in [
        ("pinned-a", pins(&[&key("pinned-a")])),
        ("node-a", ca_trust()),
    ] {
        let raw = raw_client_builder(&pins(&[&b]), tls::provider())
            .with_client_cert_resolver(cert_with_wrong_key(&key(cert).cert_der));
        let err = server_refuses(
            server_config(&b, &trust),
            quic_client(raw, ALPN),
            "127.0.0.1",
        )
        .await;
        assert_eq!(
            tls::connection_failure_reason(&err),
            "bad_signature",
            "{cert}: {err}"
        );
    }
}

#[tokio::test]
async fn server_refuses_client_from_foreign_ca() {
    let err = server_refuses(
        server_config(&key("node-b"), &ca_trust()),
        client_config(&key("foreign-node"), &ca_trust()),
        "node-b.hotline.test",
    )
    .await;
    assert_eq!(
        tls::connection_failure_reason(&err),
        "unknown_issuer",
        "{err}"
    );
}

#[tokio::test]
async fn server_refuses_expired_client_certificate() {
    let (b, expired) = (key("node-b"), key("expired"));
    // In pinned mode too: matching the pin does not excuse the dates.
    for trust in [ca_trust(), pins(&[&expired])] {
        let err = server_refuses(
            server_config(&b, &trust),
            client_config(&expired, &ca_trust()),
            "node-b.hotline.test",
        )
        .await;
        assert_eq!(tls::connection_failure_reason(&err), "expired", "{err}");
    }
}

#[tokio::test]
async fn server_refuses_revoked_client_certificate() {
    let err = server_refuses(
        server_config(&key("node-b"), &ca_trust()),
        client_config(&key("revoked"), &ca_trust()),
        "node-b.hotline.test",
    )
    .await;
    assert_eq!(tls::connection_failure_reason(&err), "revoked", "{err}");
}

#[tokio::test]
async fn server_refuses_client_offering_another_alpn() {
    let (a, b) = (key("node-a"), key("node-b"));
    for alpn in [&b"other/1"[..], b"hotline-operator/1"] {
        let client = tls::client_config(&a, &ca_trust(), alpn, &limits()).expect("client config");
        let err = server_refuses(
            server_config(&b, &ca_trust()),
            client,
            "node-b.hotline.test",
        )
        .await;
        assert_eq!(tls::connection_failure_reason(&err), "alpn", "{err}");
    }
}

// ---- refusals seen by the client ---------------------------------------------------------

#[tokio::test]
async fn client_refuses_unpinned_server() {
    let (a, b) = (key("pinned-a"), key("pinned-b"));
    let err = client_refuses(
        server_config(&b, &pins(&[&a])),
        client_config(&a, &pins(&[&a])),
        "127.0.0.1",
    )
    .await;
    assert_eq!(
        tls::connection_failure_reason(&err),
        "unknown_certificate",
        "{err}"
    );
}

#[tokio::test]
async fn client_refuses_pinned_server_signing_with_another_key() {
    let (a, b) = (key("pinned-a"), key("pinned-b"));
    let mut server = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_client_cert_verifier(tls::client_cert_verifier(&pins(&[&a])).expect("verifier"))
        .with_cert_resolver(cert_with_wrong_key(&b.cert_der));
    server.alpn_protocols = vec![ALPN.to_vec()];
    let server = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(server).expect("QUIC"),
    ));
    let err = client_refuses(server, client_config(&a, &pins(&[&b])), "127.0.0.1").await;
    assert_eq!(
        tls::connection_failure_reason(&err),
        "bad_signature",
        "{err}"
    );
}

#[tokio::test]
async fn client_refuses_server_certificate_for_another_name() {
    let (a, b) = (key("node-a"), key("node-b"));
    let err = client_refuses(
        server_config(&b, &ca_trust()),
        client_config(&a, &ca_trust()),
        "node-a.hotline.test",
    )
    .await;
    assert_eq!(
        tls::connection_failure_reason(&err),
        "bad_certificate",
        "{err}"
    );
}

#[tokio::test]
async fn client_refuses_revoked_server() {
    let a = key("node-a");
    let err = client_refuses(
        server_config(&key("revoked"), &ca_trust()),
        client_config(&a, &ca_trust()),
        "revoked.hotline.test",
    )
    .await;
    assert_eq!(tls::connection_failure_reason(&err), "revoked", "{err}");
}

// ---- verifiers called directly ----------------------------------------------------------

fn now() -> UnixTime {
    UnixTime::now()
}

/// Runs both verifiers of `trust` on `cert` and returns the failure reason (or "ok").
fn verdict(trust: &PeerTrust, cert: &CertificateDer<'_>, at: UnixTime) -> &'static str {
    let client = tls::client_cert_verifier(trust).expect("client verifier");
    let server = tls::server_cert_verifier(trust).expect("server verifier");
    let name = ServerName::try_from("node-a.hotline.test").expect("name");
    let as_client = client.verify_client_cert(cert, &[], at).map(|_| ()).err();
    let as_server = server
        .verify_server_cert(cert, &[], &name, &[], at)
        .map(|_| ())
        .err();
    let reason = |e: &Option<rustls::Error>| e.as_ref().map_or("ok", tls::failure_reason);
    assert_eq!(
        reason(&as_client),
        reason(&as_server),
        "{as_client:?} / {as_server:?}"
    );
    reason(&as_client)
}

fn day_ms(n: u64) -> u64 {
    n * 86_400_000
}

/// A self-signed certificate built with rcgen, adjusted by `edit`.
fn custom_cert(
    alg: &'static rcgen::SignatureAlgorithm,
    edit: impl FnOnce(&mut rcgen::CertificateParams),
) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["node-a.hotline.test".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    edit(&mut params);
    params.self_signed(&key).expect("certificate").der().clone()
}

#[test]
fn pinned_verifier_checks_dates_even_when_the_pin_matches() {
    let start = 1_800_000_000_000; // 2027-01-15
    let key = NodeTlsKey::generate("node-a.hotline.test", start, start + day_ms(30)).expect("key");
    let trust = pins(&[&key]);
    let at = |ms: u64| UnixTime::since_unix_epoch(Duration::from_millis(ms));
    assert_eq!(verdict(&trust, &key.cert_der, at(start + day_ms(1))), "ok");
    assert_eq!(
        verdict(&trust, &key.cert_der, at(start + day_ms(31))),
        "expired"
    );
    assert_eq!(
        verdict(&trust, &key.cert_der, at(start - day_ms(1))),
        "expired"
    ); // not yet valid
    assert!(tls::check_validity(&key.cert_der, start + day_ms(31)).is_err());
    assert!(tls::check_validity(&key.cert_der, start + day_ms(1)).is_ok());
}

#[test]
fn verifiers_refuse_certificates_outside_the_profile() {
    let trust = PeerTrust::Pinned {
        spki_sha256: vec![[0; 32]],
    };
    let ok = custom_cert(&rcgen::PKCS_ECDSA_P256_SHA256, |_| {});
    let pinned_ok = PeerTrust::Pinned {
        spki_sha256: vec![tls::spki_sha256(&ok).expect("spki")],
    };
    assert_eq!(verdict(&pinned_ok, &ok, now()), "ok", "control");
    let cases = [
        (
            "P-384 key",
            custom_cert(&rcgen::PKCS_ECDSA_P384_SHA384, |_| {}),
        ),
        (
            "CA certificate",
            custom_cert(&rcgen::PKCS_ED25519, |p| {
                p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
            }),
        ),
        (
            "826 days",
            custom_cert(&rcgen::PKCS_ED25519, |p| {
                p.not_after = p.not_before + Duration::from_secs(826 * 86_400)
            }),
        ),
        (
            "keyUsage without digitalSignature",
            custom_cert(&rcgen::PKCS_ED25519, |p| {
                p.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment]
            }),
        ),
    ];
    for (what, cert) in &cases {
        assert_eq!(
            verdict(&trust, cert, now()),
            "bad_certificate",
            "pinned: {what}"
        );
        assert_eq!(
            verdict(&ca_trust(), cert, now()),
            "bad_certificate",
            "CA: {what}"
        );
        assert!(tls::spki_sha256(cert).is_err(), "{what}");
    }
}

#[test]
fn private_ca_verifier_refuses_an_825_day_violation_the_ca_signed() {
    let ca_key = rcgen::KeyPair::from_pem(std::str::from_utf8(&pki_file("ca.key")).expect("utf-8"))
        .expect("CA key");
    // The CA's name and key are all an issuer needs (rcgen's PEM import needs a feature the
    // workspace does not enable).
    let mut ca = rcgen::CertificateParams::default();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "hotline test CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let issue = |days: u64| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["node-a.hotline.test".to_owned()]).expect("params");
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = params.not_before + Duration::from_secs(days * 86_400);
        params
            .signed_by(&key, &issuer)
            .expect("issue")
            .der()
            .clone()
    };
    assert_eq!(verdict(&ca_trust(), &issue(825), now()), "ok", "control");
    assert_eq!(verdict(&ca_trust(), &issue(826), now()), "bad_certificate");
}

#[test]
fn committed_test_pki_gets_the_expected_verdicts() {
    let cert = |name: &str| key(name).cert_der.clone();
    assert_eq!(verdict(&ca_trust(), &cert("node-a"), now()), "ok");
    assert_eq!(verdict(&ca_trust(), &cert("expired"), now()), "expired");
    assert_eq!(verdict(&ca_trust(), &cert("revoked"), now()), "revoked");
    assert_eq!(
        verdict(&ca_trust(), &cert("foreign-node"), now()),
        "unknown_issuer"
    );
    assert_eq!(
        verdict(&ca_trust(), &cert("pinned-a"), now()),
        "unknown_issuer"
    );
    assert_eq!(
        verdict(&pins(&[&key("pinned-a")]), &cert("pinned-b"), now()),
        "unknown_certificate"
    );
    // The operator certificate lacks serverAuth: fine as a client, refused as a server.
    let operator = cert("operator");
    let client = tls::client_cert_verifier(&ca_trust()).expect("verifier");
    assert!(client.verify_client_cert(&operator, &[], now()).is_ok());
    let name = ServerName::try_from("operator.hotline.test").expect("name");
    let server = tls::server_cert_verifier(&ca_trust()).expect("verifier");
    let err = server
        .verify_server_cert(&operator, &[], &name, &[], now())
        .expect_err("no serverAuth");
    assert_eq!(tls::failure_reason(&err), "bad_certificate");
}

#[test]
fn configurations_need_pins_crls_and_an_alpn() {
    let a = key("node-a");
    let no_pins = PeerTrust::Pinned {
        spki_sha256: vec![],
    };
    assert!(matches!(
        tls::server_config(&a, &no_pins, &[ALPN], &limits()),
        Err(tls::TlsError::NoPins)
    ));
    let PeerTrust::PrivateCa { roots, .. } = ca_trust() else {
        unreachable!()
    };
    let no_crl = PeerTrust::PrivateCa {
        roots,
        crls: vec![],
    };
    assert!(matches!(
        tls::client_config(&a, &no_crl, ALPN, &limits()),
        Err(tls::TlsError::NoCrl)
    ));
    assert!(matches!(
        tls::server_config(&a, &ca_trust(), &[], &limits()),
        Err(tls::TlsError::NoAlpn)
    ));
    assert!(matches!(
        tls::client_config(&a, &ca_trust(), b"", &limits()),
        Err(tls::TlsError::NoAlpn)
    ));
}

#[test]
fn node_tls_key_round_trips_through_pem_and_keeps_the_key_out_of_debug() {
    let start = 1_790_000_000_000;
    let generated = NodeTlsKey::generate("198.51.100.7", start, start + day_ms(825))
        .expect("825 days is allowed");
    let (cert_pem, key_pem) = generated.to_pem();
    assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let back = NodeTlsKey::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).expect("from_pem");
    assert_eq!(back.cert_der, generated.cert_der);
    assert_eq!(back.spki_sha256(), generated.spki_sha256());
    let debug = format!("{generated:?}");
    let key_body = key_pem.lines().nth(1).expect("PEM body");
    assert!(
        !debug.contains(key_body) && !debug.to_lowercase().contains("private"),
        "{debug}"
    );

    assert!(NodeTlsKey::generate("node.test", start, start + day_ms(826)).is_err());
    assert!(NodeTlsKey::generate("node.test", start, start - 1).is_err());
    // A key that does not belong to the certificate is refused.
    let other = NodeTlsKey::generate("node.test", start, start + day_ms(1)).expect("key");
    assert!(NodeTlsKey::from_pem(cert_pem.as_bytes(), other.to_pem().1.as_bytes()).is_err());
    // The committed P-256 certificate loads as well as the Ed25519 ones.
    assert_eq!(
        key("pinned-b").spki_sha256(),
        tls::spki_sha256(&key("pinned-b").cert_der).expect("spki")
    );
}

#[test]
fn transport_limits_are_validated() {
    assert_eq!(TransportLimits::default().max_inflight, 256);
    assert_eq!(
        TransportLimits::default().idle_timeout,
        Duration::from_secs(30)
    );
    let huge = TransportLimits {
        idle_timeout: Duration::from_secs(u64::MAX),
        ..Default::default()
    };
    assert!(tls::transport_config(&huge).is_err());
    assert!(
        tls::transport_config(&TransportLimits {
            max_inflight: u32::MAX,
            ..Default::default()
        })
        .is_ok()
    );
}
