//! The two floors a node's throughput is compared with, measured in the same run and build:
//!
//! - **transport**: bare QUIC request/response with the node's own mutual-TLS configuration,
//!   one bidirectional stream per message, no signing, no storage;
//! - **crypto**: the cryptography one delivered message needs (seal, open, receipt sign and
//!   verify), in a tight loop on every core.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hotline_protocol::content::{Draft, Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::{Envelope, SealParams};
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::time::DAY;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, NodeTlsKey, PeerTrust, TransportLimits};

use crate::Error;

/// Bytes of the transport floor's answer: about a DELIVERED receipt.
pub const RESPONSE_LEN: usize = 300;
/// Bytes of header before each request's payload (its index).
pub const REQUEST_HEADER_LEN: usize = 8;

/// A floor's measurement.
#[derive(Clone, Copy, Debug)]
pub struct Floor {
    /// Messages (requests) completed.
    pub messages: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Threads (crypto) or connections (transport) used.
    pub threads: usize,
}

impl Floor {
    /// Messages per second.
    pub fn per_s(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn rt() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error(format!("cannot start a runtime: {e}")))
}

/// The transport floor: a server endpoint (on its own thread and current-thread runtime, as a
/// node runs) and a client endpoint on this thread, on loopback, with the node's TLS setup
/// (pinned mutual TLS 1.3, ALPN `hotline/1`, no resumption, the node's transport limits).
/// `inflight` requests at a time on one connection; each opens a stream, writes a small header
/// and `size` bytes, finishes; the server reads it all, answers [`RESPONSE_LEN`] bytes and
/// finishes; the client reads the answer. Runs at least `min_requests` requests and at least
/// `min_time`.
pub fn transport(
    size: usize,
    inflight: usize,
    min_requests: u64,
    min_time: Duration,
) -> Result<Floor, Error> {
    let now = now_ms();
    let (nb, na) = (now.saturating_sub(60_000), now + DAY);
    let tls_err = |e: tls::TlsError| Error(format!("transport floor TLS setup: {e}"));
    let server_key = NodeTlsKey::generate("127.0.0.1", nb, na).map_err(tls_err)?;
    let client_key = NodeTlsKey::generate("127.0.0.1", nb, na).map_err(tls_err)?;
    let limits = TransportLimits {
        max_inflight: u32::try_from(inflight)
            .unwrap_or(u32::MAX)
            .max(TransportLimits::default().max_inflight),
        ..Default::default()
    };
    // As a node's listener: every pin behind one verifier, both ALPNs offered.
    let server_config = tls::server_config(
        &server_key,
        &PeerTrust::Mixed {
            pinned: vec![client_key.spki_sha256()],
            ca: None,
        },
        &[hotline_protocol::ALPN, hotline_protocol::OPERATOR_ALPN],
        &limits,
    )
    .map_err(tls_err)?;
    let client_config = tls::client_config(
        &client_key,
        &PeerTrust::Pinned {
            spki_sha256: vec![server_key.spki_sha256()],
        },
        hotline_protocol::ALPN,
        &limits,
    )
    .map_err(tls_err)?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .map_err(|e| Error(format!("transport floor: cannot bind: {e}")))?;
    let addr = socket
        .local_addr()
        .map_err(|e| Error(format!("transport floor: {e}")))?;
    let max_request = REQUEST_HEADER_LEN + size;
    let server = std::thread::Builder::new()
        .name("floor-server".into())
        .spawn(move || -> Result<(), Error> {
            rt()?.block_on(serve(socket, server_config, max_request))
        })
        .map_err(|e| Error(format!("transport floor: cannot start the server: {e}")))?;
    let result = rt()?.block_on(async move {
        let endpoint = quinn::Endpoint::client((std::net::Ipv4Addr::LOCALHOST, 0).into())
            .map_err(|e| Error(format!("transport floor: {e}")))?;
        let conn = endpoint
            .connect_with(client_config, addr, "127.0.0.1")
            .map_err(|e| Error(format!("transport floor: {e}")))?
            .await
            .map_err(|e| Error(format!("transport floor: connect: {e}")))?;
        let issued = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let payload = bytes::Bytes::from(vec![0x5a; size]);
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..inflight.max(1) {
            let (conn, issued, done, payload) =
                (conn.clone(), issued.clone(), done.clone(), payload.clone());
            tasks.spawn(async move {
                loop {
                    let i = issued.fetch_add(1, Ordering::Relaxed);
                    if i >= min_requests && t0.elapsed() >= min_time {
                        return Ok::<(), Error>(());
                    }
                    let e = |e: &dyn std::fmt::Display| Error(format!("transport floor: {e}"));
                    let (mut send, mut recv) = conn.open_bi().await.map_err(|x| e(&x))?;
                    send.write_all(&i.to_be_bytes()).await.map_err(|x| e(&x))?;
                    send.write_chunk(payload.clone()).await.map_err(|x| e(&x))?;
                    send.finish().map_err(|x| e(&x))?;
                    let answer = recv.read_to_end(4096).await.map_err(|x| e(&x))?;
                    if answer.len() != RESPONSE_LEN {
                        return Err(Error(format!(
                            "transport floor: a {}-byte answer",
                            answer.len()
                        )));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut first_error = None;
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(Error(format!("transport floor task: {e}")));
                }
            }
        }
        let elapsed = t0.elapsed();
        conn.close(quinn::VarInt::from_u32(0), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(Floor {
                messages: done.load(Ordering::Relaxed),
                elapsed,
                threads: 1,
            }),
        }
    });
    let served = server
        .join()
        .map_err(|_| Error("transport floor: the server thread panicked".into()))?;
    let floor = result?;
    served?;
    Ok(floor)
}

/// The floor's server: one connection, every stream answered.
async fn serve(
    socket: std::net::UdpSocket,
    config: quinn::ServerConfig,
    max_request: usize,
) -> Result<(), Error> {
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| Error(format!("transport floor server: {e}")))?;
    let incoming = tokio::time::timeout(Duration::from_secs(10), endpoint.accept())
        .await
        .map_err(|_| Error("transport floor server: no connection within 10 s".into()))?
        .ok_or_else(|| Error("transport floor server: endpoint closed".into()))?;
    let conn = incoming
        .await
        .map_err(|e| Error(format!("transport floor server: handshake: {e}")))?;
    let answer = bytes::Bytes::from(vec![0xa5; RESPONSE_LEN]);
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let answer = answer.clone();
        tokio::spawn(async move {
            if recv.read_to_end(max_request).await.is_ok() && send.write_chunk(answer).await.is_ok()
            {
                let _ = send.finish();
            }
        });
    }
    endpoint.wait_idle().await;
    Ok(())
}

/// Sender A's and receiver B's keys and one signed message from A to B.
struct Pair {
    a: IdentityKey,
    b: IdentityKey,
    b_keys: Vec<EncryptionKeypair>,
    b_certs: Vec<EncryptionKey>,
    content: SignedContent,
    message_id: [u8; 16],
    now: u64,
}

impl Pair {
    fn new(size: usize) -> Result<Self, Error> {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let now = now_ms();
        let a = IdentityKey::generate(&mut rng);
        let b = IdentityKey::generate(&mut rng);
        let b_keys = vec![EncryptionKeypair::generate(
            &b,
            now - DAY,
            now + 365 * DAY,
            &mut rng,
        )];
        let b_certs = b_keys.iter().map(|k| k.certificate.clone()).collect();
        let officer = OfficerKey::generate(
            &a,
            "Bench Officer",
            Role::Officer,
            now - DAY,
            now + 365 * DAY,
            &mut rng,
        )
        .map_err(|e| Error(format!("crypto floor: officer credential: {e}")))?;
        let mut message_id = [0u8; 16];
        getrandom::fill(&mut message_id).map_err(|e| Error(format!("crypto floor: {e}")))?;
        let content = Draft {
            subject: "hotline-bench crypto floor".into(),
            text: "x".repeat(size),
            ..Default::default()
        }
        .sign(&message_id, &b.id(), &officer, now)
        .map_err(|e| Error(format!("crypto floor: content: {e}")))?;
        Ok(Pair {
            a,
            b,
            b_keys,
            b_certs,
            content,
            message_id,
            now,
        })
    }

    /// One message's cryptography, as in `hotline-protocol`'s "whole per-message crypto"
    /// bench: A seals (HPKE + envelope signature); B parses, verifies strictly, decrypts and
    /// checks the officer's credential and content signature, then signs a DELIVERED receipt;
    /// A verifies the receipt and matches it to the envelope.
    fn one(&self, sequence: u64, rng: &mut impl rand_core::CryptoRng) -> Result<(), Error> {
        let e = |what: &str, x: &dyn std::fmt::Display| Error(format!("crypto floor: {what}: {x}"));
        let key = EncryptionKey::select(&self.b_certs, self.now)
            .ok_or_else(|| Error("crypto floor: B has no valid key".into()))?;
        let params = SealParams {
            recipient: self.b.id(),
            recipient_key: key,
            message_id: self.message_id,
            sequence,
            created: self.now,
            precedence: Precedence::Immediate,
            tlp: Tlp::Amber,
        };
        let sealed =
            Envelope::seal(&self.a, &params, &self.content, rng).map_err(|x| e("seal", &x))?;
        let received = Envelope::parse(sealed.bytes().clone()).map_err(|x| e("parse", &x))?;
        let opened = received
            .open(&self.b.id(), &self.a.id(), &self.b_keys, self.now)
            .map_err(|x| e("open", &x))?;
        black_box(opened);
        let receipt = Receipt::sign(
            &self.b,
            &Subject::from(&received),
            ReceiptBuild::Delivered,
            self.now,
        )
        .map_err(|x| e("receipt sign", &x))?;
        let back =
            Receipt::verify(receipt.bytes(), &self.b.id()).map_err(|x| e("receipt verify", &x))?;
        if !back.answers(&sealed) {
            return Err(Error(
                "crypto floor: the receipt does not answer the envelope".into(),
            ));
        }
        Ok(())
    }
}

/// The crypto floor: [`Pair::one`] in a loop on `available_parallelism()` threads for at least
/// `min_time`; messages per second is the total over the wall time.
pub fn crypto(size: usize, min_time: Duration) -> Result<Floor, Error> {
    let pair = Pair::new(size)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let barrier = std::sync::Barrier::new(threads + 1);
    let total = AtomicU64::new(0);
    let (elapsed, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (pair, barrier, total) = (&pair, &barrier, &total);
                s.spawn(move || -> Result<(), Error> {
                    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
                    barrier.wait();
                    let t0 = Instant::now();
                    let mut n = 0u64;
                    while t0.elapsed() < min_time {
                        n += 1;
                        pair.one(n, &mut rng)?;
                    }
                    total.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        let results: Vec<Result<(), Error>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error("crypto floor: a thread panicked".into())))
            })
            .collect();
        (t0.elapsed(), results)
    });
    for r in results {
        r?;
    }
    Ok(Floor {
        messages: total.load(Ordering::Relaxed),
        elapsed,
        threads,
    })
}
