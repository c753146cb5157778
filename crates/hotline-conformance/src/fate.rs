//! How a connection or stream ended, named the way SPEC.md (§12.1) and RFC 8446 (§6) name it.

use hotline_protocol::codes::CloseCode;

/// QUIC carries a TLS alert as the transport error CRYPTO_ERROR 0x100 + alert (RFC 9001 §4.8).
const CRYPTO_ERROR_BASE: u64 = 0x100;

/// TLS alerts (RFC 8446 §6).
pub mod alert {
    /// `bad_certificate`.
    pub const BAD_CERTIFICATE: u8 = 42;
    /// `unsupported_certificate`.
    pub const UNSUPPORTED_CERTIFICATE: u8 = 43;
    /// `certificate_revoked`.
    pub const CERTIFICATE_REVOKED: u8 = 44;
    /// `certificate_expired`: also "not currently valid" (not yet valid).
    pub const CERTIFICATE_EXPIRED: u8 = 45;
    /// `certificate_unknown`: another problem with the certificate.
    pub const CERTIFICATE_UNKNOWN: u8 = 46;
    /// `unknown_ca`: not issued by a trusted CA.
    pub const UNKNOWN_CA: u8 = 48;
    /// `access_denied`: a valid certificate the node does not admit (key not pinned).
    pub const ACCESS_DENIED: u8 = 49;
    /// `decrypt_error`: a handshake signature does not verify (RFC 8446 §4.4.3).
    pub const DECRYPT_ERROR: u8 = 51;
    /// `protocol_version`.
    pub const PROTOCOL_VERSION: u8 = 70;
    /// `certificate_required` (RFC 8446 §4.4.2.4).
    pub const CERTIFICATE_REQUIRED: u8 = 116;
    /// `no_application_protocol` (RFC 7301 §3.2).
    pub const NO_APPLICATION_PROTOCOL: u8 = 120;

    /// The alerts SPEC.md §3.5 allows for a refused certificate ("as fits").
    pub const REFUSED_CERTIFICATE: &[u8] = &[
        BAD_CERTIFICATE,
        UNSUPPORTED_CERTIFICATE,
        CERTIFICATE_EXPIRED,
        CERTIFICATE_REVOKED,
        CERTIFICATE_UNKNOWN,
        UNKNOWN_CA,
        ACCESS_DENIED,
    ];
    /// Of those, the ones that fit a certificate that is neither expired nor revoked.
    pub const BAD_OR_UNSUPPORTED: &[u8] = &[BAD_CERTIFICATE, UNSUPPORTED_CERTIFICATE];
    /// The ones that fit a valid certificate whose key is not pinned (SPEC.md §3.5).
    pub const NOT_PINNED: &[u8] = &[ACCESS_DENIED, BAD_CERTIFICATE];
    /// The ones that fit a certificate no trusted CA issued (SPEC.md §3.5).
    pub const UNKNOWN_ISSUER: &[u8] = &[UNKNOWN_CA, BAD_CERTIFICATE];
    /// The ones that fit a certificate outside the profile (SPEC.md §3.5).
    pub const OUT_OF_PROFILE: &[u8] = &[
        BAD_CERTIFICATE,
        UNSUPPORTED_CERTIFICATE,
        CERTIFICATE_UNKNOWN,
    ];
}

/// The RFC 8446 name of a TLS alert.
pub fn alert_name(alert: u8) -> String {
    let name = match alert {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return format!("TLS alert {alert}"),
    };
    name.to_owned()
}

/// Names a list of alerts: `bad_certificate or unsupported_certificate`.
pub fn alert_names(alerts: &[u8]) -> String {
    alerts
        .iter()
        .map(|a| alert_name(*a))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// `NAME (0xNN)` for a code of SPEC.md §12.1, or the bare number for an unregistered one.
pub fn code_name(code: u64) -> String {
    match u32::try_from(code).ok().and_then(CloseCode::from_code) {
        Some(c) => format!("{} (0x{:02X})", c.name(), c.code()),
        None => format!("unregistered code 0x{code:X}"),
    }
}

/// The numeric value of a close code, as quinn reports it.
pub fn code(c: CloseCode) -> u64 {
    u64::from(c.code())
}

/// How a connection ended, as the runner saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The target aborted the TLS handshake with this alert (QUIC CRYPTO_ERROR 0x100 + alert).
    TlsAlert(u8),
    /// The target closed with an application CONNECTION_CLOSE carrying this code.
    App(u64),
    /// Anything else: a QUIC transport error, a timeout, our own side giving up.
    Other(String),
}

impl Ending {
    /// Classifies quinn's view of a closed connection.
    pub fn from_error(e: &quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => Ending::App(c.error_code.into_inner()),
            quinn::ConnectionError::ConnectionClosed(c) => {
                let code = u64::from(c.error_code);
                match code
                    .checked_sub(CRYPTO_ERROR_BASE)
                    .and_then(|a| u8::try_from(a).ok())
                {
                    Some(alert) => Ending::TlsAlert(alert),
                    None => Ending::Other(format!("QUIC transport error from the target: {c}")),
                }
            }
            other => Ending::Other(other.to_string()),
        }
    }

    /// Words for the observed column.
    pub fn describe(&self) -> String {
        match self {
            Ending::TlsAlert(a) => format!(
                "TLS alert {} (QUIC CRYPTO_ERROR 0x{:X})",
                alert_name(*a),
                CRYPTO_ERROR_BASE + u64::from(*a)
            ),
            Ending::App(c) => format!("connection closed with {}", code_name(*c)),
            Ending::Other(s) => s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_alerts() {
        assert_eq!(code_name(4), "UNEXPECTED_FRAME (0x04)");
        assert_eq!(code_name(0x99), "unregistered code 0x99");
        assert_eq!(alert_name(116), "certificate_required");
        assert_eq!(
            alert_names(alert::BAD_OR_UNSUPPORTED),
            "bad_certificate or unsupported_certificate"
        );
    }
}
