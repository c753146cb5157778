//! A node's encryption keys over time (SPEC.md §4.3.4): when to make a new one, which to
//! announce, which secrets to keep for envelopes still in flight, and when to destroy them.
//!
//! Sans-IO: the caller stores the keys and runs [`KeyRing::maintain`] on a timer; the
//! deterministic harness runs the same code over simulated years.

use rand_core::CryptoRng;

use crate::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use crate::session::MAX_ANNOUNCED_KEYS;
use crate::time::{DAY, UnixMillis};

/// How long a secret must be kept after its key's `not_after` at least: the acceptance window
/// of an envelope's `created_ms` (SPEC.md §10.6) plus the time a retransmission may take.
pub const MIN_RETENTION: u64 = 30 * DAY;
/// How far before `not_before` a new key is dated, so that a peer whose clock is behind
/// accepts it at once.
pub const BACKDATE: u64 = 60_000;

/// When keys are made and destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// Validity of a new key (`not_after - not_before`, less [`BACKDATE`]). It is also the
    /// forward-secrecy window of stored traffic.
    pub lifetime: u64,
    /// A new key is made when the newest one expires within this time.
    pub renew_before: u64,
    /// How long a secret is kept after its key's `not_after`; at least [`MIN_RETENTION`].
    pub retention: u64,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            lifetime: 30 * DAY,
            renew_before: 10 * DAY,
            retention: MIN_RETENTION,
        }
    }
}

impl KeyPolicy {
    /// Checks the policy: a lifetime of at least a day, renewal at least an hour before expiry
    /// and less than the lifetime, retention at least [`MIN_RETENTION`].
    pub fn check(&self) -> Result<(), &'static str> {
        if self.lifetime < DAY {
            return Err("an encryption key must live at least one day");
        }
        if self.renew_before < DAY / 24 || self.renew_before >= self.lifetime {
            return Err("renewal must come at least an hour before expiry, within the lifetime");
        }
        if self.retention < MIN_RETENTION {
            return Err("old encryption secrets must be kept at least 30 days after expiry");
        }
        Ok(())
    }
}

/// What [`KeyRing::maintain`] or [`KeyRing::rotate`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// A new key pair was made; its certificate.
    Created(EncryptionKey),
    /// A secret was destroyed: its key's certificate.
    Destroyed(EncryptionKey),
}

/// A node's encryption key pairs, newest first.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<EncryptionKeypair>,
}

impl KeyRing {
    /// A ring holding `keys` (any order).
    pub fn new(mut keys: Vec<EncryptionKeypair>) -> Self {
        sort(&mut keys);
        KeyRing { keys }
    }

    /// The key pairs, newest first.
    pub fn keys(&self) -> &[EncryptionKeypair] {
        &self.keys
    }

    /// Takes the key pairs out.
    pub fn into_keys(self) -> Vec<EncryptionKeypair> {
        self.keys
    }

    /// The certificates to announce at `now` (in Hello, KeyUpdate and the bundle): those not
    /// yet expired, newest first, at most four. If every key has expired, the newest one, so
    /// that a Hello is still well formed (senders will not use it).
    pub fn announced(&self, now: UnixMillis) -> Vec<EncryptionKey> {
        announced(&self.keys, now)
    }

    /// Makes a new key pair valid from now (less [`BACKDATE`]) for `policy.lifetime`.
    pub fn rotate(
        &mut self,
        identity: &IdentityKey,
        now: UnixMillis,
        policy: &KeyPolicy,
        rng: &mut impl CryptoRng,
    ) -> KeyChange {
        let key = EncryptionKeypair::generate(
            identity,
            now.saturating_sub(BACKDATE),
            now.saturating_add(policy.lifetime),
            rng,
        );
        let cert = key.certificate.clone();
        self.keys.push(key);
        sort(&mut self.keys);
        KeyChange::Created(cert)
    }

    /// Brings the ring up to date at `now`: makes a new key when no key is valid for longer
    /// than `policy.renew_before` (or none is valid at all), and destroys the secrets of keys
    /// that expired more than `policy.retention` ago. The newest key is never destroyed.
    pub fn maintain(
        &mut self,
        identity: &IdentityKey,
        now: UnixMillis,
        policy: &KeyPolicy,
        rng: &mut impl CryptoRng,
    ) -> Vec<KeyChange> {
        let mut changes = Vec::new();
        let renew_at = now.saturating_add(policy.renew_before);
        let fresh = self
            .keys
            .iter()
            .any(|k| k.certificate.not_before() <= now && k.certificate.not_after() > renew_at);
        if !fresh {
            changes.push(self.rotate(identity, now, policy, rng));
        }
        let retention = policy.retention.max(MIN_RETENTION);
        let mut i = 1;
        while i < self.keys.len() {
            let expired = self.keys[i].certificate.not_after();
            if expired.saturating_add(retention) < now {
                let gone = self.keys.remove(i);
                changes.push(KeyChange::Destroyed(gone.certificate.clone()));
                // `gone` is dropped here: its secret is zeroized (SecretAgreementKey).
            } else {
                i += 1;
            }
        }
        changes
    }
}

/// [`KeyRing::announced`] for key pairs sorted newest first.
pub fn announced(keys: &[EncryptionKeypair], now: UnixMillis) -> Vec<EncryptionKey> {
    let mut out: Vec<EncryptionKey> = keys
        .iter()
        .filter(|k| k.certificate.not_after() >= now)
        .take(MAX_ANNOUNCED_KEYS)
        .map(|k| k.certificate.clone())
        .collect();
    if out.is_empty() {
        out.extend(keys.first().map(|k| k.certificate.clone()));
    }
    out
}

fn sort(keys: &mut [EncryptionKeypair]) {
    keys.sort_by_key(|k| {
        core::cmp::Reverse((k.certificate.not_before(), k.certificate.not_after()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::TestRng;

    #[test]
    fn a_year_of_defaults_rotates_every_twenty_days_and_keeps_secrets_thirty_days_after_expiry() {
        let mut rng = TestRng::new(7);
        let id = IdentityKey::generate(&mut rng);
        let policy = KeyPolicy::default();
        let mut ring = KeyRing::default();
        let start = 1_767_225_600_000;
        let mut created = 0;
        let mut destroyed = 0;
        for day in 0..=365 {
            let now = start + day * DAY;
            for c in ring.maintain(&id, now, &policy, &mut rng) {
                match c {
                    KeyChange::Created(_) => created += 1,
                    KeyChange::Destroyed(k) => {
                        destroyed += 1;
                        assert!(k.not_after() + MIN_RETENTION < now);
                    }
                }
            }
            // Always a key valid now and for longer than the renewal window.
            let newest = EncryptionKey::select(&ring.announced(now), now).cloned();
            let newest = newest.expect("a key valid now");
            assert!(newest.not_after() > now + policy.renew_before);
            // Every secret within retention is still there.
            assert!(
                ring.keys().len() <= 4,
                "day {day}: {} keys",
                ring.keys().len()
            );
            assert!(ring.announced(now).len() <= MAX_ANNOUNCED_KEYS);
        }
        assert!(created >= 18, "{created} keys made");
        assert!(destroyed >= 14, "{destroyed} secrets destroyed");
    }

    #[test]
    fn an_expired_ring_gets_a_new_key_at_once() {
        let mut rng = TestRng::new(8);
        let id = IdentityKey::generate(&mut rng);
        let old = EncryptionKeypair::generate(&id, 0, 1000, &mut rng);
        let mut ring = KeyRing::new(vec![old]);
        let now = 400 * DAY;
        let changes = ring.maintain(&id, now, &KeyPolicy::default(), &mut rng);
        assert!(matches!(changes[0], KeyChange::Created(_)));
        // The old one is long past retention: destroyed in the same pass.
        assert!(matches!(changes[1], KeyChange::Destroyed(_)));
        assert_eq!(ring.keys().len(), 1);
        assert!(ring.keys()[0].certificate.valid_at(now));
    }

    #[test]
    fn policy_limits() {
        assert!(KeyPolicy::default().check().is_ok());
        let short = KeyPolicy {
            retention: DAY,
            ..KeyPolicy::default()
        };
        assert!(short.check().is_err());
        let late = KeyPolicy {
            renew_before: 30 * DAY,
            ..KeyPolicy::default()
        };
        assert!(late.check().is_err());
    }
}
