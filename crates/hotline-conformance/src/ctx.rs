//! What every case needs: the target (from its bundle), the runner's own identity (from the node
//! directory the target pins), the optional private CA, the QUIC endpoint, and the sequence
//! numbers of the runner's direction of the link.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::envelope::{Envelope, MessageId, SealParams};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::time::{DAY, MINUTE};
use hotline_transport::material::{BUNDLE_FILE, Material, TLS_CERT_FILE};
use hotline_transport::now_ms;
use hotline_transport::tls::{self, NodeTlsKey, PeerTrust, TransportLimits};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use crate::certs::Pki;
use crate::inbound::FromTarget;

/// The node under test, as its bundle and the operator describe it.
#[derive(Debug)]
pub struct Target {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    /// The host part of `--target`, given to TLS as the server name (pinned mode ignores it).
    pub server_name: String,
    /// Its node id.
    pub id: NodeId,
    /// The SHA-256 of its TLS SubjectPublicKeyInfo: the runner pins it (SPEC.md §3.6.1).
    pub spki: [u8; 32],
    /// The encryption keys of its bundle.
    pub bundle_keys: Vec<EncryptionKey>,
    /// Its name, from the bundle.
    pub name: String,
}

/// The runner's own identity: the node directory whose bundle the target pins.
pub struct Me {
    /// Identity key: signs Hellos, envelopes and receipts.
    pub identity: Arc<IdentityKey>,
    /// Encryption key certificates announced in Hello.
    pub keys: Vec<EncryptionKey>,
    /// TLS key and certificate, as the target pins or its CA vouches for.
    pub tls: NodeTlsKey,
    /// The TLS private key (PKCS#8 DER), to issue other certificates for the same key.
    pub tls_key: PrivateKeyDer<'static>,
    /// An officer credential issued by the identity for this run (SPEC.md §4.5, §7.5).
    pub officer: OfficerKey,
    /// The node's name, from its configuration.
    pub name: String,
}

/// How the target authenticates the runner's certificate (SPEC.md §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Pinned mode: the target pins the SPKI of the runner's bundle.
    Pinned,
    /// Private CA mode: the CA of `--pki` vouches for the runner's certificate.
    Ca,
}

/// Sequence numbers of the direction runner → target (SPEC.md §10.1).
///
/// The run continues from the target's `received_through` (§10.2), and every number it uses
/// ends up counted as received at the target: envelopes that fail before their signature is
/// checked (§7.6 steps 1–6, whose sequence does not count) borrow the number and message id
/// that the next valid envelope then uses, so a run leaves no gap behind it.
#[derive(Debug, Default)]
pub struct Sequencer {
    next: u64,
    reserved: Option<(MessageId, u64)>,
    sent_max: u64,
}

impl Sequencer {
    /// Starts after `received_through`.
    pub fn starting_after(received_through: u64) -> Self {
        Sequencer {
            next: received_through.saturating_add(1),
            reserved: None,
            sent_max: received_through,
        }
    }

    /// A fresh message id and the next sequence number, for an envelope whose sequence will
    /// count: the pending reservation if there is one.
    pub fn alloc(&mut self) -> (MessageId, u64) {
        let slot = match self.reserved.take() {
            Some(slot) => slot,
            None => (random_id(), self.take()),
        };
        self.sent_max = self.sent_max.max(slot.1);
        slot
    }

    /// The id and number the next [`Sequencer::alloc`] will return, for an envelope the target
    /// must refuse before checking its signature.
    pub fn reserve(&mut self) -> (MessageId, u64) {
        if let Some(slot) = self.reserved {
            return slot;
        }
        let slot = (random_id(), self.take());
        self.reserved = Some(slot);
        slot
    }

    /// Gives the reservation a fresh message id, keeping its number: after a case that went
    /// wrong the target may hold the reserved id, but the number must still be filled.
    pub fn refresh_reservation(&mut self) {
        if let Some((_, n)) = self.reserved {
            self.reserved = Some((random_id(), n));
        }
    }

    /// Two consecutive fresh numbers (for the gap case), with fresh ids.
    pub fn alloc_pair(&mut self) -> ((MessageId, u64), (MessageId, u64)) {
        let a = self.alloc();
        let b = (random_id(), self.take());
        self.sent_max = self.sent_max.max(b.1);
        (a, b)
    }

    /// The highest sequence number sent whose sequence counts: `last_sequence_sent`.
    pub fn sent_max(&self) -> u64 {
        self.sent_max
    }

    fn take(&mut self) -> u64 {
        let n = self.next.max(1);
        self.next = n + 1;
        n
    }
}

/// 16 random bytes.
pub fn random_id() -> MessageId {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b
}

/// Fills `b` from the system's random source. If that fails (it does not on a working
/// system) the bytes come from the clock, which is enough for ids in a test tool.
pub fn fill_random(b: &mut [u8]) {
    if getrandom::fill(b).is_err() {
        let seed = now_ms().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = seed[i % 8] ^ (i as u8).wrapping_mul(31);
        }
    }
}

/// The system random source as a `rand_core` generator (for key generation and HPKE).
pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Everything a case works with.
pub struct Ctx {
    /// The node under test.
    pub target: Target,
    /// The runner's identity.
    pub me: Me,
    /// The private CA (`--pki`), if given.
    pub pki: Option<Pki>,
    /// How the target trusts the runner.
    pub trust: Trust,
    /// One client endpoint for the whole run.
    pub endpoint: quinn::Endpoint,
    /// Sequence numbers runner → target.
    pub seq: Arc<Mutex<Sequencer>>,
    /// How long one step (a handshake, an answer) may take before it counts as no answer.
    pub step: Duration,
    /// The target's encryption keys from its most recent Hello (SPEC.md §4.3.3).
    pub hello_keys: Mutex<Vec<EncryptionKey>>,
    /// The envelopes the target sent the runner on any link of this run (read, recorded,
    /// refused: the target keeps them).
    pub from_target: Arc<FromTarget>,
    /// `--target-send CMD`: a shell command that makes the target queue one message to the
    /// runner's identity.
    pub target_send: Option<String>,
    /// `--target-rotate CMD`: a shell command that makes the target make a new encryption key
    /// (SPEC.md §4.3.4), for the case that needs the target to rotate during the run; it is
    /// skipped without it. Set after [`Ctx::load`] (`None` until then) rather than in
    /// [`Inputs`], which tests elsewhere in the workspace build as a struct literal.
    pub target_rotate: Option<String>,
}

/// Why the runner could not start: the operator's inputs, or the target unreachable.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The operator's inputs.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `--target HOST:PORT`.
    pub target: String,
    /// `--target-bundle FILE`.
    pub target_bundle: PathBuf,
    /// `--identity DIR`.
    pub identity: PathBuf,
    /// `--pki DIR`.
    pub pki: Option<PathBuf>,
    /// `--step-timeout`.
    pub step: Duration,
    /// `--target-send CMD`: a shell command (run with `sh -c`) that makes the target queue one
    /// message to the runner's identity, for the cases that need the target to seal a new
    /// message during the run; they are skipped without it.
    pub target_send: Option<String>,
}

impl Ctx {
    /// Loads the inputs and binds the endpoint; does not contact the target yet.
    pub async fn load(inputs: &Inputs) -> Result<Ctx, SetupError> {
        let text = std::fs::read(&inputs.target_bundle).map_err(|e| {
            SetupError(format!(
                "--target-bundle {}: {e}",
                inputs.target_bundle.display()
            ))
        })?;
        let bundle = PeerBundle::from_armored(&text).map_err(|e| {
            SetupError(format!(
                "--target-bundle {}: not a valid peer bundle: {e}",
                inputs.target_bundle.display()
            ))
        })?;
        let (host, addr) = resolve(&inputs.target).await?;
        let me = load_me(&inputs.identity)?;
        if me.identity.id() == bundle.identity() {
            return Err(SetupError(
                "--identity and --target-bundle are the same node; the runner needs an identity \
                 of its own that the target pins as a peer"
                    .into(),
            ));
        }
        let pki = match &inputs.pki {
            Some(dir) => Some(Pki::load(dir).map_err(SetupError)?),
            None => None,
        };
        let trust = match &pki {
            Some(pki) => {
                pki.check_issued(&me.tls.cert_der).map_err(|e| {
                    SetupError(format!(
                        "--pki {}: {e}; in private CA mode the runner's own TLS certificate ({}) \
                         must come from that CA (hotlined init --tls-cert/--tls-key)",
                        pki.dir.display(),
                        inputs.identity.join(TLS_CERT_FILE).display()
                    ))
                })?;
                Trust::Ca
            }
            None => Trust::Pinned,
        };
        let bind: SocketAddr = if addr.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let endpoint = quinn::Endpoint::client(bind)
            .map_err(|e| SetupError(format!("cannot bind a UDP socket: {e}")))?;
        Ok(Ctx {
            target: Target {
                addr,
                server_name: host,
                id: bundle.identity(),
                spki: *bundle.tls_spki_sha256(),
                bundle_keys: bundle.encryption_keys().to_vec(),
                name: bundle.name().to_owned(),
            },
            me,
            pki,
            trust,
            endpoint,
            seq: Arc::new(Mutex::new(Sequencer::default())),
            step: inputs.step,
            hello_keys: Mutex::new(Vec::new()),
            from_target: Arc::new(FromTarget::default()),
            target_send: inputs.target_send.clone(),
            target_rotate: None,
        })
    }

    /// The pin of the target, for the runner's verifier.
    pub fn target_trust(&self) -> PeerTrust {
        PeerTrust::Pinned {
            spki_sha256: vec![self.target.spki],
        }
    }

    /// The runner's transport settings: those of a node with default limits.
    pub fn limits() -> TransportLimits {
        TransportLimits::default()
    }

    /// A client configuration exactly as a node builds it: TLS 1.3, the runner's certificate,
    /// the target pinned, ALPN `hotline/1`, no resumption, no early data.
    pub fn client_config(&self) -> Result<quinn::ClientConfig, String> {
        tls::client_config(
            &self.me.tls,
            &self.target_trust(),
            hotline_protocol::ALPN,
            &Self::limits(),
        )
        .map_err(|e| format!("client configuration: {e}"))
    }

    /// A rustls client configuration builder up to the client certificate: TLS 1.3, the
    /// node's provider, the target pinned.
    pub fn rustls_builder(
        &self,
    ) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, String>
    {
        let verifier = tls::server_cert_verifier(&self.target_trust())
            .map_err(|e| format!("verifier: {e}"))?;
        Ok(rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| format!("TLS 1.3: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier))
    }

    /// Finishes a rustls client configuration the runner built by hand: ALPN `hotline/1`
    /// unless set, no resumption unless set, and the node's transport settings.
    pub fn quic(&self, tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, String> {
        let tls = QuicClientConfig::try_from(tls)
            .map_err(|e| format!("QUIC client configuration: {e}"))?;
        Ok(self.quic_with(Arc::new(tls)))
    }

    /// Wraps any QUIC crypto configuration with the node's transport settings.
    pub fn quic_with(&self, crypto: Arc<dyn quinn::crypto::ClientConfig>) -> quinn::ClientConfig {
        let mut config = quinn::ClientConfig::new(crypto);
        if let Ok(t) = tls::transport_config(&Self::limits()) {
            config.transport_config(t);
        }
        config
    }

    /// The key the runner seals to (SPEC.md §4.3.3): of the bundle's keys and those of the
    /// target's most recent Hello, valid at `at`, the newest.
    pub fn recipient_key(&self, at: u64) -> Option<EncryptionKey> {
        let mut keys = self.target.bundle_keys.clone();
        if let Ok(h) = self.hello_keys.lock() {
            keys.extend(h.iter().cloned());
        }
        EncryptionKey::select(&keys, at).cloned()
    }

    /// Every key the target announced (bundle and Hello).
    pub fn target_keys(&self) -> Vec<EncryptionKey> {
        let mut keys = self.target.bundle_keys.clone();
        if let Ok(h) = self.hello_keys.lock() {
            for k in h.iter() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        keys
    }

    /// A valid envelope from the runner to the target: `id`, `sequence`, created now, signed
    /// by the runner's officer, sealed to the target's current key.
    pub fn seal(&self, id: MessageId, sequence: u64, subject: &str) -> Result<Envelope, String> {
        self.seal_at(id, sequence, subject, now_ms())
    }

    /// [`Ctx::seal`] created at `created`.
    pub fn seal_at(
        &self,
        id: MessageId,
        sequence: u64,
        subject: &str,
        created: u64,
    ) -> Result<Envelope, String> {
        self.seal_draft(id, sequence, &runner_draft(subject), created)
    }

    /// A valid envelope carrying `draft`, signed by the runner's officer.
    pub fn seal_draft(
        &self,
        id: MessageId,
        sequence: u64,
        draft: &Draft,
        created: u64,
    ) -> Result<Envelope, String> {
        let key = self
            .recipient_key(created)
            .ok_or("the target has no encryption key valid now (SPEC.md §4.3.3)")?;
        self.seal_draft_to(&key, id, sequence, draft, created)
    }

    /// [`Ctx::seal`] to the target's key `key`, whichever key the runner would choose.
    pub fn seal_to(
        &self,
        key: &EncryptionKey,
        id: MessageId,
        sequence: u64,
        subject: &str,
    ) -> Result<Envelope, String> {
        self.seal_draft_to(key, id, sequence, &runner_draft(subject), now_ms())
    }

    fn seal_draft_to(
        &self,
        key: &EncryptionKey,
        id: MessageId,
        sequence: u64,
        draft: &Draft,
        created: u64,
    ) -> Result<Envelope, String> {
        let content = draft
            .sign(&id, &self.target.id, &self.me.officer, created)
            .map_err(|e| format!("content: {e}"))?;
        Envelope::seal(
            &self.me.identity,
            &SealParams {
                recipient: self.target.id,
                recipient_key: key,
                message_id: id,
                sequence,
                created,
                precedence: Precedence::Routine,
                tlp: Tlp::Green,
            },
            &content,
            &mut rng(),
        )
        .map_err(|e| format!("seal: {e}"))
    }

    /// Allocates a fresh id and sequence number for a counting envelope.
    pub fn alloc(&self) -> (MessageId, u64) {
        match self.seq.lock() {
            Ok(mut s) => s.alloc(),
            Err(_) => (random_id(), u64::MAX / 2),
        }
    }

    /// Reserves the id and number of the next counting envelope (see [`Sequencer`]).
    pub fn reserve(&self) -> (MessageId, u64) {
        match self.seq.lock() {
            Ok(mut s) => s.reserve(),
            Err(_) => (random_id(), u64::MAX / 2),
        }
    }

    /// `last_sequence_sent` for heartbeats.
    pub fn sent_max(&self) -> u64 {
        self.seq.lock().map(|s| s.sent_max()).unwrap_or(0)
    }
}

/// The content of the runner's valid messages: `subject` and a text saying where it comes from.
fn runner_draft(subject: &str) -> Draft {
    Draft {
        subject: subject.into(),
        text: "Sent by hotline-conformance, the interop conformance runner. Nothing to act on."
            .into(),
        language: "en".into(),
        ..Default::default()
    }
}

async fn resolve(target: &str) -> Result<(String, SocketAddr), SetupError> {
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| SetupError(format!("--target {target:?} must be HOST:PORT")))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(SetupError(format!("--target {target:?} must be HOST:PORT")));
    }
    let addr = tokio::net::lookup_host(target)
        .await
        .map_err(|e| SetupError(format!("--target {target}: cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| SetupError(format!("--target {target}: resolves to nothing")))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), addr))
}

fn load_me(dir: &Path) -> Result<Me, SetupError> {
    let bundle_path = dir.join(BUNDLE_FILE);
    let bundle = std::fs::read(&bundle_path)
        .map_err(|e| e.to_string())
        .and_then(|raw| PeerBundle::from_armored(&raw).map_err(|e| e.to_string()))
        .map_err(|e| {
            SetupError(format!(
                "--identity {}: {e} (it must be a node directory made by `hotlined init`)",
                bundle_path.display()
            ))
        })?;
    let material = Material::load(dir)
        .map_err(|e| SetupError(format!("--identity {}: {e}", dir.display())))?;
    let (_, key_pem) = material.tls.to_pem();
    let tls_key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| SetupError(format!("--identity {}: TLS key: {e}", dir.display())))?;
    let now = now_ms();
    let officer = OfficerKey::generate(
        &material.identity,
        "hotline-conformance officer",
        Role::Officer,
        now - MINUTE,
        now + DAY,
        &mut rng(),
    )
    .map_err(|e| SetupError(format!("officer credential: {e}")))?;
    Ok(Me {
        keys: material.certificates(),
        identity: material.identity.clone(),
        tls: material.tls.clone(),
        tls_key,
        officer,
        name: bundle.name().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_used_by_the_next_counting_envelope() {
        let mut s = Sequencer::starting_after(41);
        let r = s.reserve();
        assert_eq!(r.1, 42);
        assert_eq!(s.reserve(), r, "a reservation is stable");
        assert_eq!(s.sent_max(), 41, "a reservation is not sent yet");
        assert_eq!(s.alloc(), r);
        assert_eq!(s.sent_max(), 42);
        assert_eq!(s.alloc().1, 43);
        let ((_, a), (_, b)) = s.alloc_pair();
        assert_eq!((a, b), (44, 45));
        let (id, n) = s.reserve();
        s.refresh_reservation();
        let again = s.alloc();
        assert_eq!(again.1, n, "the number is kept");
        assert_ne!(again.0, id, "the id is fresh");
        assert_eq!(s.sent_max(), 46);
    }
}
