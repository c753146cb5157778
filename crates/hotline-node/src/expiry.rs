//! When the node's keys, certificates, credentials and CRLs stop being usable (issue: key
//! lifecycle, item 6): `hotlined check` warns 30 days ahead, and the running node exports each
//! time as `hotline_key_expiry_timestamp_seconds{kind,name}`, so that monitoring sees a lapse
//! coming instead of the link failing on the day.

use hotline_protocol::NodeId;
use hotline_protocol::officer::Credential;
use hotline_protocol::time::{DAY, UnixMillis};
use hotline_protocol::wire;
use hotline_transport::material::Material;
use hotline_transport::tls::{self, CaRoots};
use prost::Message;

use crate::store::OperatorRecord;

/// How far ahead `hotlined check` warns.
pub const WARN_AHEAD: u64 = 30 * DAY;

/// One thing that stops being usable at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// `encryption_key`, `tls_certificate`, `ca_certificate`, `crl` or `operator_credential`
    /// (the metric's `kind` label).
    pub kind: &'static str,
    /// Which one: an operator's name, a CA's subject; empty for the node's own keys (the
    /// metric's `name` label).
    pub name: String,
    /// When: Unix milliseconds.
    pub at_ms: UnixMillis,
}

impl Expiry {
    /// What it is, in words.
    fn what(&self) -> String {
        match self.kind {
            "encryption_key" => "the node's newest encryption key".into(),
            "peer_encryption_key" => format!("the newest encryption key of peer {}", self.name),
            "peer_tls_certificate" => format!("the TLS certificate of peer {}", self.name),
            "tls_certificate" => "the node's TLS certificate".into(),
            "ca_certificate" => format!("the CA certificate {}", self.name),
            "crl" => format!("the CRL of {}", self.name),
            "operator_credential" => format!("the operator credential of {}", self.name),
            other => format!("{other} {}", self.name),
        }
    }

    /// What to do about it.
    fn remedy(&self) -> &'static str {
        match self.kind {
            "encryption_key" => {
                "the running node renews it by [keys] encryption_renew_days, so this renewal is \
                 overdue: is `hotlined run` running? It makes a new key at start; \
                 `hotlined keys rotate` makes one now"
            }
            "tls_certificate" => {
                "peers refuse an expired certificate; issue a new one (pinned mode: a new \
                 bundle for the peers)"
            }
            "peer_encryption_key" => {
                "the peer has announced no newer key; after this nothing can be sealed to it. \
                 Ask its administrators (`hotlined keys list` there), or for a new bundle"
            }
            "peer_tls_certificate" => {
                "this node refuses it after that; ask the peer's administrators to renew it \
                 (`hotlined keys renew-tls` keeps the key, so nothing changes here)"
            }
            "ca_certificate" => "ask the CA for its new certificate and install it in [ca] roots",
            "crl" => {
                "after its nextUpdate every certificate of that CA is refused; fetch the CA's \
                 current CRL"
            }
            "operator_credential" => {
                "the operator cannot connect after it; renew it with `hotlined operator \
                 renew` (same keys, a new validity)"
            }
            _ => "renew it",
        }
    }
}

/// The node's own keys: the newest encryption key (the node can be reached until the last one
/// lapses), the TLS certificate, and with a private CA its certificates and CRLs.
pub fn of_node(m: &Material, ca: Option<&CaRoots>) -> Vec<Expiry> {
    of_parts(&m.encryption, &m.tls, ca)
}

/// [`of_node`] from the keys themselves (those a running node holds now).
pub fn of_parts(
    encryption: &[hotline_protocol::identity::EncryptionKeypair],
    tls_key: &tls::NodeTlsKey,
    ca: Option<&CaRoots>,
) -> Vec<Expiry> {
    let mut out = Vec::new();
    if let Some(at_ms) = encryption.iter().map(|k| k.certificate.not_after()).max() {
        out.push(Expiry {
            kind: "encryption_key",
            name: String::new(),
            at_ms,
        });
    }
    if let Some(at_ms) = tls::certificate_not_after(&tls_key.cert_der) {
        out.push(Expiry {
            kind: "tls_certificate",
            name: String::new(),
            at_ms,
        });
    }
    for l in ca.map(tls::ca_lapses).unwrap_or_default() {
        out.push(Expiry {
            kind: l.kind,
            name: l.name,
            at_ms: l.at_ms,
        });
    }
    out
}

/// How far ahead a peer's newest encryption key is warned about: a peer that rotates renews
/// well before (hotlined: 10 days), so only one that stopped renewing gets this close.
pub const PEER_KEY_WARN_AHEAD: u64 = 3 * DAY;

/// Whether `e` deserves a warning at `now`: within [`WARN_AHEAD`] of lapsing, except that the
/// node's own encryption keys renew by themselves `renew_before` ahead (a warning only once
/// that renewal is a day overdue) and a peer's within [`PEER_KEY_WARN_AHEAD`].
pub fn worth_warning(e: &Expiry, now: UnixMillis, renew_before: u64) -> bool {
    match e.kind {
        "encryption_key" => e.at_ms < now.saturating_add(renew_before).saturating_sub(DAY),
        "peer_encryption_key" => e.at_ms <= now.saturating_add(PEER_KEY_WARN_AHEAD),
        _ => e.at_ms <= now.saturating_add(WARN_AHEAD),
    }
}

/// The newest encryption key of each peer (`name` its alias), from the keys it can be sealed
/// to now.
pub fn of_peers<'a>(
    peers: impl IntoIterator<Item = (&'a str, &'a [hotline_protocol::identity::EncryptionKey])>,
) -> Vec<Expiry> {
    peers
        .into_iter()
        .filter_map(|(alias, keys)| {
            let at_ms = keys.iter().map(|k| k.not_after()).max()?;
            Some(Expiry {
                kind: "peer_encryption_key",
                name: alias.to_owned(),
                at_ms,
            })
        })
        .collect()
}

/// The credentials of operators who are not removed (a credential that does not parse is left
/// out: `hotlined operator list` shows it).
pub fn of_operators(node: &NodeId, operators: &[OperatorRecord]) -> Vec<Expiry> {
    operators
        .iter()
        .filter(|o| o.revoked_ms.is_none())
        .filter_map(|o| {
            let raw = wire::OfficerCredential::decode(o.credential.clone()).ok()?;
            let c = Credential::verify(&raw, node).ok()?;
            Some(Expiry {
                kind: "operator_credential",
                name: o.name.clone(),
                at_ms: c.not_after(),
            })
        })
        .collect()
}

/// Warnings for what lapses soon (by [`worth_warning`], the node's keys renewing
/// `renew_before` ahead) or has lapsed, soonest first, each saying when and what to do.
pub fn warnings(list: &[Expiry], now: UnixMillis, renew_before: u64) -> Vec<String> {
    let mut soon: Vec<&Expiry> = list
        .iter()
        .filter(|e| worth_warning(e, now, renew_before))
        .collect();
    soon.sort_by_key(|e| e.at_ms);
    soon.into_iter()
        .map(|e| {
            let when = hotline_transport::time::utc_minute(e.at_ms);
            if e.at_ms <= now {
                format!("{} expired on {when}: {}", e.what(), e.remedy())
            } else {
                let days = (e.at_ms - now).div_ceil(DAY);
                format!(
                    "{} expires on {when}, in {days} day{}: {}",
                    e.what(),
                    if days == 1 { "" } else { "s" },
                    e.remedy()
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: &'static str, name: &str, at_ms: u64) -> Expiry {
        Expiry {
            kind,
            name: name.into(),
            at_ms,
        }
    }

    #[test]
    fn warns_within_thirty_days_soonest_first_and_says_what_to_do() {
        let now = 1_800_000_000_000;
        let list = [
            e("tls_certificate", "", now + 40 * DAY),
            e("operator_credential", "Anna", now + 29 * DAY + 1),
            e("crl", "CN=ca", now - 1),
            e("encryption_key", "", now + 30 * DAY),
            e("encryption_key", "", now + 8 * DAY),
            e("peer_encryption_key", "cert-b", now + 4 * DAY),
            e("peer_encryption_key", "cert-c", now + 2 * DAY),
        ];
        let w = warnings(&list, now, 10 * DAY);
        // Not the key renewed in 20 days, nor the peer's with 4 days left.
        assert_eq!(w.len(), 4, "{w:?}");
        // Keys that renew by themselves: only an overdue renewal, only a peer's last days.
        assert!(
            w[1].starts_with("the newest encryption key of peer cert-c"),
            "{w:?}"
        );
        assert!(
            w[2].starts_with("the node's newest encryption key expires"),
            "{w:?}"
        );
        let w: Vec<_> = w
            .into_iter()
            .filter(|l| !l.contains("encryption key"))
            .collect();
        assert!(w[0].starts_with("the CRL of CN=ca expired on "), "{w:?}");
        assert!(w[0].contains("fetch the CA's current CRL"), "{w:?}");
        assert!(
            w[1].starts_with("the operator credential of Anna expires on ")
                && w[1].contains("in 30 days"),
            "{w:?}"
        );
        assert!(warnings(&list[..1], now, 10 * DAY).is_empty());
    }
}
