//! When certificates and CRLs stop being usable: for operators' warnings (`hotlined check`)
//! and the expiry metrics, so that a lapse is seen weeks ahead rather than when peers start
//! refusing the node.

use rustls::pki_types::CertificateDer;

use super::CaRoots;

/// Something that stops being usable at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lapse {
    /// What kind of thing: `ca_certificate` or `crl`.
    pub kind: &'static str,
    /// Which one, in words (a certificate's subject, a CRL's issuer).
    pub name: String,
    /// When: Unix milliseconds (a certificate's notAfter, a CRL's nextUpdate).
    pub at_ms: u64,
}

/// A certificate's notAfter, Unix milliseconds; `None` if it does not parse.
pub fn certificate_not_after(cert_der: &CertificateDer<'_>) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    seconds_to_ms(cert.validity().not_after.timestamp())
}

/// A certificate's serial number (big-endian bytes, as a CRL names it); `None` if it does
/// not parse.
pub fn certificate_serial(cert_der: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.raw_serial().to_vec())
}

/// Whether one of `ca`'s CRLs lists `cert`: a CRL of the certificate's issuer (by name) names
/// its serial number. For connections already up when a new CRL is loaded (SPEC.md §3.6.2);
/// new connections are checked in full by the TLS verifier.
pub fn listed_in_crl(ca: &CaRoots, cert: &CertificateDer<'_>) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert) else {
        return false;
    };
    ca.crls.iter().any(|crl| {
        x509_parser::parse_x509_crl(crl).is_ok_and(|(_, crl)| {
            crl.issuer().as_raw() == cert.issuer().as_raw()
                && crl
                    .iter_revoked_certificates()
                    .any(|r| r.raw_serial() == cert.raw_serial())
        })
    })
}

/// When each CA certificate expires and each CRL must be replaced (its nextUpdate: after it,
/// every certificate of that CA is refused). Roots and CRLs that do not parse, and CRLs without
/// a nextUpdate, are left out: `check_ca` reports them.
pub fn ca_lapses(ca: &CaRoots) -> Vec<Lapse> {
    let mut out = Vec::new();
    for root in &ca.roots {
        if let Ok((_, c)) = x509_parser::parse_x509_certificate(root)
            && let Some(at_ms) = seconds_to_ms(c.validity().not_after.timestamp())
        {
            out.push(Lapse {
                kind: "ca_certificate",
                name: c.subject().to_string(),
                at_ms,
            });
        }
    }
    for crl in &ca.crls {
        if let Ok((_, crl)) = x509_parser::parse_x509_crl(crl)
            && let Some(at_ms) = crl.next_update().and_then(|t| seconds_to_ms(t.timestamp()))
        {
            out.push(Lapse {
                kind: "crl",
                name: crl.issuer().to_string(),
                at_ms,
            });
        }
    }
    out
}

fn seconds_to_ms(s: i64) -> Option<u64> {
    u64::try_from(s).ok()?.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::NodeTlsKey;

    #[test]
    fn a_generated_certificate_expires_when_it_was_told_to() {
        let key = NodeTlsKey::generate("127.0.0.1", 1_000_000_000_000, 1_031_536_000_000)
            .expect("certificate");
        assert_eq!(
            certificate_not_after(&key.cert_der),
            Some(1_031_536_000_000)
        );
        assert_eq!(
            certificate_not_after(&CertificateDer::from(vec![1, 2, 3])),
            None
        );
    }

    /// The committed test PKI: its CA certificate runs to 2036-01-01, its CRL's nextUpdate is
    /// 2028-01-01.
    #[test]
    fn the_test_cas_certificate_and_crl() {
        let roots = crate::tls::certs_from_pem(include_bytes!("../../../../certs/test-pki/ca.pem"))
            .expect("ca.pem");
        let crls =
            crate::tls::crls_from_pem(include_bytes!("../../../../certs/test-pki/ca.crl.pem"))
                .expect("ca.crl.pem");
        let lapses = ca_lapses(&CaRoots { roots, crls });
        assert_eq!(
            lapses,
            vec![
                Lapse {
                    kind: "ca_certificate",
                    name: "CN=hotline test CA".into(),
                    at_ms: 2_082_758_400_000,
                },
                Lapse {
                    kind: "crl",
                    name: "CN=hotline test CA".into(),
                    at_ms: 1_830_297_600_000,
                },
            ]
        );
    }
}
