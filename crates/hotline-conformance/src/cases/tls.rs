//! Transport: TLS 1.3 only, certificates in both trust modes, ALPN, no 0-RTT or resumption,
//! key exchange groups, QUIC streams and datagrams (SPEC.md §3).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hotline_protocol::ALPN;
use hotline_transport::tls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

use super::tri;
use crate::certs::{self, Window};
use crate::ctx::{Ctx, Trust};
use crate::fate::{Ending, alert, alert_name, alert_names};
use crate::peer::{Behaviour, Link, Raw};
use crate::suite::{Case, Outcome, delivered};
use crate::tls12::Tls12Only;

pub fn cases(trust: Trust) -> Vec<Case> {
    let refused = |alerts: &[u8]| {
        format!(
            "handshake refused with TLS alert {}; no link",
            alert_names(alerts)
        )
    };
    let unknown_ca = match trust {
        Trust::Pinned => {
            "accepted: pinned mode builds no chain, the pin alone decides; link UP".to_owned()
        }
        Trust::Ca => refused(alert::UNKNOWN_ISSUER),
    };
    vec![
        Case::new(
            "tls-no-client-certificate",
            "§3.3",
            refused(&[alert::CERTIFICATE_REQUIRED]),
            |cx| Box::pin(no_client_certificate(cx)),
        ),
        Case::new(
            "tls-certificate-not-pinned",
            match trust {
                Trust::Pinned => "§3.6.1 step 3",
                Trust::Ca => "§3.6.2 step 1",
            },
            refused(alert::NOT_PINNED),
            |cx| Box::pin(not_pinned(cx)),
        ),
        Case::new(
            "tls-certificate-unknown-ca",
            match trust {
                Trust::Pinned => "§3.6.1",
                Trust::Ca => "§3.6.2 step 1",
            },
            unknown_ca,
            |cx| Box::pin(unknown_ca_case(cx)),
        ),
        Case::new(
            "tls-certificate-expired",
            "§3.5 step 2",
            refused(&[alert::CERTIFICATE_EXPIRED]),
            |cx| Box::pin(expired(cx)),
        ),
        Case::new(
            "tls-certificate-not-yet-valid",
            "§3.5 step 2",
            refused(&[alert::CERTIFICATE_EXPIRED]),
            |cx| Box::pin(not_yet_valid(cx)),
        ),
        Case::new(
            "tls-certificate-over-825-days",
            "§3.5 step 3",
            refused(alert::OUT_OF_PROFILE),
            |cx| Box::pin(over_825_days(cx)),
        ),
        Case::new(
            "tls-certificate-revoked",
            "§3.6.2 step 4",
            refused(&[alert::CERTIFICATE_REVOKED]),
            |cx| Box::pin(revoked(cx)),
        ),
        Case::new(
            "tls-certificate-verify-by-another-key",
            "§3.5 step 4",
            format!(
                "{} (RFC 8446 §4.4.3): the pin matches but the key does not",
                refused(&[alert::DECRYPT_ERROR])
            ),
            |cx| Box::pin(certificate_verify_by_another_key(cx)),
        ),
        Case::new(
            "tls-wrong-alpn",
            "§3.2",
            refused(&[alert::NO_APPLICATION_PROTOCOL]),
            |cx| Box::pin(wrong_alpn(cx)),
        ),
        Case::new(
            "tls-no-alpn",
            "§3.2",
            refused(&[alert::NO_APPLICATION_PROTOCOL]),
            |cx| Box::pin(no_alpn(cx)),
        ),
        Case::new(
            "tls-1.2-only-client",
            "§3.1",
            refused(&[alert::PROTOCOL_VERSION]),
            |cx| Box::pin(tls12_only(cx)),
        ),
        Case::new(
            "tls-0rtt-attempt",
            "§3.3",
            "no ticket allowing early data and no resumption: no 0-RTT possible, every \
             connection a full handshake",
            |cx| Box::pin(zero_rtt(cx)),
        ),
        Case::new(
            "tls-x25519-only-client",
            "§3.4",
            "accepted (X25519 is mandatory): link UP, envelope DELIVERED",
            |cx| Box::pin(x25519_only(cx)),
        ),
        Case::new(
            "quic-no-datagrams",
            "§3.1",
            "the target does not advertise max_datagram_frame_size",
            |cx| Box::pin(no_datagrams(cx)),
        ),
        Case::new(
            "quic-unidirectional-stream",
            "§3.7",
            "no credit for unidirectional streams (initial_max_streams_uni = 0); the link \
             still answers",
            |cx| Box::pin(unidirectional(cx)),
        ),
    ]
}

/// Either the target refused the connection, or the link came up.
enum Attempt {
    Refused(Ending),
    Up(Box<Link>),
}

/// Dials with `cfg` and tries the Hello exchange. A TLS 1.3 server refuses a client
/// certificate after the client considers the handshake complete, so the refusal shows on
/// the first stream: the Hello exchange is what tells.
async fn attempt(cx: &Ctx, cfg: quinn::ClientConfig) -> Attempt {
    let raw = match Raw::connect(cx, cfg).await {
        Ok(raw) => raw,
        Err(e) => return Attempt::Refused(e),
    };
    let conn = raw.conn.clone();
    let hello = raw.hello(cx);
    match raw.into_link(cx, hello, Behaviour::default()).await {
        Ok(link) => Attempt::Up(Box::new(link)),
        Err(e) => match tokio::time::timeout(cx.step, conn.closed()).await {
            Ok(err) => Attempt::Refused(Ending::from_error(&err)),
            Err(_) => Attempt::Refused(Ending::Other(e)),
        },
    }
}

/// The connection must be refused with one of `alerts`.
async fn expect_refused(cx: &Ctx, cfg: quinn::ClientConfig, alerts: &[u8]) -> Outcome {
    match attempt(cx, cfg).await {
        Attempt::Refused(Ending::TlsAlert(a)) if alerts.contains(&a) => Outcome::pass(format!(
            "handshake refused with TLS alert {}",
            alert_name(a)
        )),
        Attempt::Refused(Ending::TlsAlert(a)) => Outcome::fail(format!(
            "handshake refused, but with TLS alert {} where SPEC.md requires {}",
            alert_name(a),
            alert_names(alerts)
        )),
        Attempt::Refused(other) => Outcome::fail(other.describe()),
        Attempt::Up(link) => {
            link.raw.close();
            Outcome::fail("the target accepted the connection: the link came UP")
        }
    }
}

/// A client configuration presenting `chain` with `key` (which need not match).
fn with_cert(
    cx: &Ctx,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<quinn::ClientConfig, String> {
    let signer = tls::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key: {e}"))?;
    let mut c = cx
        .rustls_builder()?
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
            chain, signer,
        ))));
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.resumption = Resumption::disabled();
    cx.quic(c)
}

/// The runner's own key with a certificate for `window`: issued by the CA in private CA mode,
/// self-signed in pinned mode; `serial` if given.
fn own_cert(
    cx: &Ctx,
    window: Window,
    serial: Option<&[u8]>,
) -> Result<quinn::ClientConfig, String> {
    let key = certs::own_key(&cx.me.tls_key)?;
    let cert = match (&cx.pki, cx.trust) {
        (Some(pki), Trust::Ca) => certs::issued(&key, &pki.issuer()?, window, serial)?,
        _ => certs::self_signed(&key, window)?,
    };
    with_cert(cx, vec![cert], cx.me.tls_key.clone_key())
}

async fn no_client_certificate(cx: &Ctx) -> Outcome {
    let mut c = tri!(cx.rustls_builder()).with_no_client_auth();
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.resumption = Resumption::disabled();
    let cfg = tri!(cx.quic(c));
    expect_refused(cx, cfg, &[alert::CERTIFICATE_REQUIRED]).await
}

async fn not_pinned(cx: &Ctx) -> Outcome {
    let (key, der) = tri!(certs::fresh_key());
    let cert = tri!(certs::self_signed(&key, Window::days(-1, 365)));
    let cfg = tri!(with_cert(cx, vec![cert], der));
    expect_refused(cx, cfg, alert::NOT_PINNED).await
}

async fn unknown_ca_case(cx: &Ctx) -> Outcome {
    let key = tri!(certs::own_key(&cx.me.tls_key));
    let ca = tri!(certs::foreign_ca());
    let cert = tri!(certs::issued(&key, &ca, Window::days(-1, 365), None));
    let cfg = tri!(with_cert(cx, vec![cert], cx.me.tls_key.clone_key()));
    match cx.trust {
        Trust::Ca => expect_refused(cx, cfg, alert::UNKNOWN_ISSUER).await,
        Trust::Pinned => match attempt(cx, cfg).await {
            Attempt::Up(link) => {
                link.raw.close();
                Outcome::pass("accepted: link UP with the pinned key under an unknown issuer")
            }
            Attempt::Refused(e) => Outcome::fail(format!(
                "refused ({}): a node in pinned mode must not build or validate a chain",
                e.describe()
            )),
        },
    }
}

async fn expired(cx: &Ctx) -> Outcome {
    let cfg = tri!(own_cert(cx, Window::days(-400, -30), None));
    expect_refused(cx, cfg, &[alert::CERTIFICATE_EXPIRED]).await
}

async fn not_yet_valid(cx: &Ctx) -> Outcome {
    let cfg = tri!(own_cert(cx, Window::days(30, 400), None));
    expect_refused(cx, cfg, &[alert::CERTIFICATE_EXPIRED]).await
}

async fn over_825_days(cx: &Ctx) -> Outcome {
    let cfg = tri!(own_cert(cx, Window::days(-10, 890), None));
    expect_refused(cx, cfg, alert::OUT_OF_PROFILE).await
}

async fn revoked(cx: &Ctx) -> Outcome {
    let Some(pki) = &cx.pki else {
        return Outcome::skip(
            "needs --pki: a CA the target trusts for the runner and the CRL it loaded \
             (private CA mode); a target that pins the runner (pinned mode) checks no CRL",
        );
    };
    let Some(serial) = pki.revoked_serial.clone() else {
        return Outcome::skip(format!(
            "needs a CRL that revokes something: {} lists no serial; give --pki the CA \
             whose CRL, loaded by the target, revokes a serial",
            pki.dir.join(certs::CA_CRL).display()
        ));
    };
    let cfg = tri!(own_cert(cx, Window::days(-1, 365), Some(&serial)));
    expect_refused(cx, cfg, &[alert::CERTIFICATE_REVOKED]).await
}

async fn certificate_verify_by_another_key(cx: &Ctx) -> Outcome {
    let (_, other) = tri!(certs::fresh_key());
    let cfg = tri!(with_cert(cx, vec![cx.me.tls.cert_der.clone()], other));
    expect_refused(cx, cfg, &[alert::DECRYPT_ERROR]).await
}

fn alpn_config(cx: &Ctx, alpn: Vec<Vec<u8>>) -> Result<quinn::ClientConfig, String> {
    let signer = tls::provider()
        .key_provider
        .load_private_key(cx.me.tls_key.clone_key())
        .map_err(|e| format!("key: {e}"))?;
    let mut c = cx
        .rustls_builder()?
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
            vec![cx.me.tls.cert_der.clone()],
            signer,
        ))));
    c.alpn_protocols = alpn;
    c.resumption = Resumption::disabled();
    cx.quic(c)
}

async fn wrong_alpn(cx: &Ctx) -> Outcome {
    let cfg = tri!(alpn_config(cx, vec![b"hotline/2".to_vec()]));
    expect_refused(cx, cfg, &[alert::NO_APPLICATION_PROTOCOL]).await
}

async fn no_alpn(cx: &Ctx) -> Outcome {
    let cfg = tri!(alpn_config(cx, Vec::new()));
    expect_refused(cx, cfg, &[alert::NO_APPLICATION_PROTOCOL]).await
}

async fn tls12_only(cx: &Ctx) -> Outcome {
    let signer = tri!(
        tls::provider()
            .key_provider
            .load_private_key(cx.me.tls_key.clone_key())
            .map_err(|e| e.to_string())
    );
    let mut c = tri!(cx.rustls_builder()).with_client_cert_resolver(Arc::new(
        SingleCertAndKey::from(CertifiedKey::new(vec![cx.me.tls.cert_der.clone()], signer)),
    ));
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.resumption = Resumption::disabled();
    let quic =
        tri!(quinn::crypto::rustls::QuicClientConfig::try_from(c).map_err(|e| e.to_string()));
    let cfg = cx.quic_with(Arc::new(Tls12Only(Arc::new(quic))));
    expect_refused(cx, cfg, &[alert::PROTOCOL_VERSION]).await
}

/// Counts the session tickets a server hands out.
#[derive(Debug)]
struct TicketLog {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
}

impl ClientSessionStore for TicketLog {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }
    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }
    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value)
    }
    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }
    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }
    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(server_name, value)
    }
    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// Counts full verifications of the server's certificate: a resumed handshake has none.
#[derive(Debug)]
struct CountingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    calls: AtomicUsize,
}

impl ServerCertVerifier for CountingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An eager client: keeps tickets, offers resumption, wants 0-RTT. Connects twice.
async fn zero_rtt(cx: &Ctx) -> Outcome {
    let tickets = Arc::new(TicketLog {
        inner: ClientSessionMemoryCache::new(16),
        tickets: AtomicUsize::new(0),
    });
    let verifier = Arc::new(CountingVerifier {
        inner: tri!(tls::server_cert_verifier(&cx.target_trust()).map_err(|e| e.to_string())),
        calls: AtomicUsize::new(0),
    });
    let signer = tri!(
        tls::provider()
            .key_provider
            .load_private_key(cx.me.tls_key.clone_key())
            .map_err(|e| e.to_string())
    );
    let mut c = tri!(
        rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())
    )
    .dangerous()
    .with_custom_certificate_verifier(verifier.clone())
    .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
        vec![cx.me.tls.cert_der.clone()],
        signer,
    ))));
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.resumption = Resumption::store(tickets.clone());
    c.enable_early_data = true;
    let cfg = tri!(cx.quic(c));

    // First connection: a full handshake; any ticket arrives after it, so make a round trip.
    let first = tri!(
        Raw::connect(cx, cfg.clone())
            .await
            .map_err(|e| e.describe()),
        "first connection"
    );
    let hello = first.hello(cx);
    let link = tri!(
        first.into_link(cx, hello, Behaviour::default()).await,
        "first connection"
    );
    tri!(link.ping(cx).await, "first connection");
    tokio::time::sleep(Duration::from_millis(200)).await;
    link.raw.close();
    drop(link);
    let issued = tickets.tickets.load(Ordering::SeqCst);
    let verified = verifier.calls.load(Ordering::SeqCst);

    // Second connection: try 0-RTT.
    let connecting = tri!(
        cx.endpoint
            .connect_with(cfg, cx.target.addr, &cx.target.server_name)
            .map_err(|e| e.to_string()),
        "second connection"
    );
    let ticket_note = if issued > 0 {
        format!(" (the target issued {issued} session ticket(s): SHOULD NOT, §3.3)")
    } else {
        String::new()
    };
    match connecting.into_0rtt() {
        Ok((conn, accepted)) => {
            let accepted = tokio::time::timeout(cx.step, accepted)
                .await
                .unwrap_or(false);
            conn.close(quinn::VarInt::from_u32(0), b"case done");
            if accepted {
                Outcome::fail(format!("the target ACCEPTED 0-RTT data{ticket_note}"))
            } else {
                Outcome::fail(format!(
                    "the target issued a ticket allowing early data (it then refused the \
                     0-RTT attempt, but MUST NOT send early_data in a NewSessionTicket){ticket_note}"
                ))
            }
        }
        Err(connecting) => {
            let conn = match tokio::time::timeout(cx.step, connecting).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    return Outcome::fail(format!(
                        "second connection: {}",
                        Ending::from_error(&e).describe()
                    ));
                }
                Err(_) => return Outcome::fail("second connection: no handshake in time"),
            };
            let resumed = verifier.calls.load(Ordering::SeqCst) == verified;
            let raw = Raw {
                exporter: tls::exporter(&conn, hotline_protocol::EXPORTER_LABEL, b""),
                conn,
            };
            let hello = raw.hello(cx);
            let up = raw.into_link(cx, hello, Behaviour::default()).await;
            if let Ok(link) = &up {
                link.raw.close();
            }
            if resumed {
                Outcome::fail(format!(
                    "the target resumed the session: the second handshake carried no server \
                     certificate{ticket_note}"
                ))
            } else if let Err(e) = up {
                Outcome::fail(format!("second connection: full handshake, then {e}"))
            } else {
                Outcome::pass(format!("no 0-RTT possible, full handshake{ticket_note}"))
            }
        }
    }
}

async fn x25519_only(cx: &Ctx) -> Outcome {
    let base = tls::provider();
    let provider = Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        ..(*base).clone()
    });
    let verifier = tri!(tls::server_cert_verifier(&cx.target_trust()).map_err(|e| e.to_string()));
    let signer = tri!(
        provider
            .key_provider
            .load_private_key(cx.me.tls_key.clone_key())
            .map_err(|e| e.to_string())
    );
    let mut c = tri!(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())
    )
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(
        vec![cx.me.tls.cert_der.clone()],
        signer,
    ))));
    c.alpn_protocols = vec![ALPN.to_vec()];
    c.resumption = Resumption::disabled();
    let cfg = tri!(cx.quic(c));
    let link = match attempt(cx, cfg).await {
        Attempt::Up(link) => link,
        Attempt::Refused(e) => return Outcome::fail(format!("refused: {}", e.describe())),
    };
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: over X25519"));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let r = delivered(cx, &answer, &env);
    link.raw.close();
    tri!(r);
    Outcome::pass("link UP over X25519, envelope DELIVERED")
}

async fn no_datagrams(cx: &Ctx) -> Outcome {
    let link = tri!(crate::peer::link(cx).await, "no link");
    let size = link.raw.conn.max_datagram_size();
    link.raw.close();
    match size {
        None => Outcome::pass("no max_datagram_frame_size from the target"),
        Some(n) => Outcome::fail(format!(
            "the target advertises DATAGRAM support (max datagram {n} bytes)"
        )),
    }
}

async fn unidirectional(cx: &Ctx) -> Outcome {
    let link = tri!(crate::peer::link(cx).await, "no link");
    let outcome = match tokio::time::timeout(Duration::from_secs(1), link.raw.conn.open_uni()).await
    {
        Err(_) => {
            Outcome::pass("no credit for unidirectional streams (initial_max_streams_uni = 0)")
        }
        Ok(Err(e)) => Outcome::fail(format!("cannot open a unidirectional stream: {e}")),
        Ok(Ok(_)) => Outcome::fail(
            "the target granted credit for a unidirectional stream (SPEC.md §3.7: \
             initial_max_streams_uni MUST be 0)",
        ),
    };
    let still = link.ping(cx).await;
    link.raw.close();
    match still {
        Ok(_) => outcome,
        Err(e) => Outcome::fail(format!("{}; then the link failed: {e}", outcome.observed)),
    }
}
