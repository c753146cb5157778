//! How a node trusts its peers (SPEC.md §3.6): the trust modes, a private CA's roots and CRLs
//! and their health check, and the rustls verifier each mode gets.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::error::TlsError;
use super::provider;
use super::verifier::{MixedVerifier, PinnedVerifier, ProfileChecked};

/// How a node authenticates one peer's certificate (SPEC.md §3.6).
#[derive(Clone, Debug)]
pub enum PeerTrust {
    /// Pinned mode (§3.6.1): the end-entity certificate's SPKI SHA-256 must be one of these;
    /// no chain, no subjectAltName check; dates, profile and handshake signature still checked.
    Pinned {
        /// The pinned peers' `tls_spki_sha256` values.
        spki_sha256: Vec<[u8; 32]>,
    },
    /// Private CA mode (§3.6.2): path validation to these roots only, revocation checked
    /// against these CRLs (a certificate whose status cannot be determined is refused, as is
    /// a CRL past its nextUpdate).
    PrivateCa {
        /// Trust anchors.
        roots: Vec<CertificateDer<'static>>,
        /// One CRL per CA.
        crls: Vec<CertificateRevocationListDer<'static>>,
    },
    /// Peers of both modes behind one verifier, each peer known by its bundle's SPKI pin: what
    /// a node's listener uses (one endpoint serves every peer), and what a client uses for a
    /// private-CA peer (the CA with that one pin).
    ///
    /// A certificate whose SPKI is in `pinned` gets the checks of pinned mode. One whose SPKI
    /// is among the private-CA pins gets every check of private CA mode (path to the roots,
    /// EKU, CRLs, a server's name): the CA vouches for the key, and the pin binds the key to
    /// the one peer whose bundle names it (§3.6.3: the expected peer is chosen by local
    /// configuration, never by the Hello). Any other certificate is refused as not pinned
    /// (alert `access_denied`), without building a chain.
    Mixed {
        /// `tls_spki_sha256` of the peers in pinned mode.
        pinned: Vec<[u8; 32]>,
        /// The private CA, and the `tls_spki_sha256` of the peers in private CA mode.
        ca: Option<(CaRoots, Vec<[u8; 32]>)>,
    },
    /// Refuse every certificate: the listener of a node that has no peer and no operator (yet,
    /// or any more). Said explicitly, so that an empty pin list elsewhere stays a
    /// configuration error ([`TlsError::NoPins`]).
    Nobody,
}

/// A private CA's trust anchors and revocation lists (SPEC.md §3.6.2).
#[derive(Clone, Debug, Default)]
pub struct CaRoots {
    /// Trust anchors: the CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// One CRL per CA; a certificate from a CA without one is refused.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

fn root_store(roots: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    Ok(Arc::new(store))
}

fn webpki_server_verifier(ca: &CaRoots) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    if ca.crls.is_empty() {
        return Err(TlsError::NoCrl);
    }
    Ok(
        WebPkiServerVerifier::builder_with_provider(root_store(&ca.roots)?, provider())
            .with_crls(ca.crls.clone())
            .enforce_revocation_expiration()
            .build()?,
    )
}

fn webpki_client_verifier(ca: &CaRoots) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if ca.crls.is_empty() {
        return Err(TlsError::NoCrl);
    }
    Ok(
        WebPkiClientVerifier::builder_with_provider(root_store(&ca.roots)?, provider())
            .with_crls(ca.crls.clone())
            .enforce_revocation_expiration()
            .build()?,
    )
}

/// Problems with a private CA's configuration, worded for an operator, each of which makes
/// the node refuse peers it should accept: roots or CRLs rustls refuses, a CRL that does not
/// parse, a CA without a CRL (its certificates' status is unknown), a CRL past its nextUpdate
/// at `now_ms` (Unix milliseconds), a CRL from none of the roots.
///
/// Node certificates are presented without intermediates, so the roots must be the CAs that
/// issue node certificates, and the CRLs theirs.
pub fn check_ca(ca: &CaRoots, now_ms: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if ca.roots.is_empty() {
        problems.push("no CA certificate configured".into());
    }
    if ca.crls.is_empty() {
        problems.push("no CRL configured; every certificate of the CA will be refused".into());
    }
    let usable = if ca.crls.is_empty() {
        root_store(&ca.roots).map(|_| ())
    } else {
        webpki_client_verifier(ca).map(|_| ())
    };
    if let Err(e) = usable {
        problems.push(format!("the CA certificates or CRLs are refused: {e}"));
    }
    let subjects: Vec<(String, Vec<u8>)> = ca
        .roots
        .iter()
        .filter_map(|r| x509_parser::parse_x509_certificate(r).ok())
        .map(|(_, c)| (c.subject().to_string(), c.subject().as_raw().to_vec()))
        .collect();
    let mut issuers = Vec::new();
    for (i, crl) in ca.crls.iter().enumerate() {
        let crl = match x509_parser::parse_x509_crl(crl) {
            Ok(([], crl)) => crl,
            _ => {
                problems.push(format!("CRL {} does not parse", i + 1));
                continue;
            }
        };
        let issuer = crl.issuer().to_string();
        if !subjects.iter().any(|(_, raw)| raw == crl.issuer().as_raw()) {
            problems.push(format!(
                "the CRL of {issuer} is from none of the configured CA certificates"
            ));
        }
        issuers.push(crl.issuer().as_raw().to_vec());
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        match crl.next_update() {
            Some(next) if next.timestamp() < now => problems.push(format!(
                "the CRL of {issuer} expired at its nextUpdate {next}; fetch the CA's current \
                 CRL: until then every certificate of that CA is refused"
            )),
            Some(_) => {}
            None => problems.push(format!(
                "the CRL of {issuer} has no nextUpdate; ask the CA for a CRL that has one"
            )),
        }
    }
    if !ca.crls.is_empty() {
        for (name, raw) in &subjects {
            if !issuers.contains(raw) {
                problems.push(format!(
                    "no CRL for the CA {name}; every certificate it issued will be refused"
                ));
            }
        }
    }
    problems
}

impl PeerTrust {
    fn pins(&self) -> Result<Option<&[[u8; 32]]>, TlsError> {
        match self {
            Self::Pinned { spki_sha256 } if spki_sha256.is_empty() => Err(TlsError::NoPins),
            Self::Pinned { spki_sha256 } => Ok(Some(spki_sha256)),
            Self::PrivateCa { crls, .. } if crls.is_empty() => Err(TlsError::NoCrl),
            Self::PrivateCa { .. } | Self::Mixed { .. } => Ok(None),
            // A pinned verifier with no pin refuses every certificate, as not pinned.
            Self::Nobody => Ok(Some(&[])),
        }
    }

    fn private_ca(&self) -> Option<CaRoots> {
        match self {
            Self::PrivateCa { roots, crls } => Some(CaRoots {
                roots: roots.clone(),
                crls: crls.clone(),
            }),
            _ => None,
        }
    }

    /// The verifier of [`PeerTrust::Mixed`], `None` for another mode; the private CA
    /// verifier comes from `webpki`. Refuses a configuration that would accept nobody.
    fn mixed<V: ?Sized>(
        &self,
        webpki: impl FnOnce(&CaRoots) -> Result<Arc<V>, TlsError>,
    ) -> Result<Option<MixedVerifier<V>>, TlsError> {
        let Self::Mixed { pinned, ca } = self else {
            return Ok(None);
        };
        let ca = ca.as_ref().filter(|(_, pins)| !pins.is_empty());
        if pinned.is_empty() && ca.is_none() {
            return Err(TlsError::NoPins);
        }
        let ca = match ca {
            Some((roots, pins)) => Some((
                pins.clone(),
                ProfileChecked {
                    inner: webpki(roots)?,
                },
            )),
            None => None,
        };
        Ok(Some(MixedVerifier {
            pinned: pinned.clone(),
            ca,
        }))
    }
}

/// The verifier a client uses for the server's certificate under `trust`.
///
/// In private CA mode the server name given to `Endpoint::connect` (the host of the dialed
/// address) must match a subjectAltName; pinned mode ignores it (SPEC.md §3.6.1).
pub fn server_cert_verifier(trust: &PeerTrust) -> Result<Arc<dyn ServerCertVerifier>, TlsError> {
    if let Some(pins) = trust.pins()? {
        return Ok(Arc::new(PinnedVerifier {
            pins: pins.to_vec(),
        }));
    }
    if let Some(verifier) = trust.mixed(webpki_server_verifier)? {
        return Ok(Arc::new(verifier));
    }
    let inner = webpki_server_verifier(&trust.private_ca().unwrap_or_default())?;
    Ok(Arc::new(ProfileChecked { inner }))
}

/// The verifier a server uses for the client's certificate under `trust`; a client
/// certificate is always required.
///
/// Rebuild it (and the server configuration, then `Endpoint::set_server_config`) to apply a
/// reloaded CRL to new connections.
pub fn client_cert_verifier(trust: &PeerTrust) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    if let Some(pins) = trust.pins()? {
        return Ok(Arc::new(PinnedVerifier {
            pins: pins.to_vec(),
        }));
    }
    if let Some(verifier) = trust.mixed(webpki_client_verifier)? {
        return Ok(Arc::new(verifier));
    }
    let inner = webpki_client_verifier(&trust.private_ca().unwrap_or_default())?;
    Ok(Arc::new(ProfileChecked { inner }))
}
