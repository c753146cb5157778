//! The node's encryption key file (`encryption.key`): every key pair the node holds, the
//! secrets of expired keys included until their retention ends (SPEC.md §4.3.4).
//!
//! The file is rewritten whole, atomically ([`keyfile::write_replace`]), under a lock on
//! `encryption.lock`, so `hotlined keys rotate` and a running node never lose each other's
//! changes: whoever holds the lock reads the file, changes it and writes it back.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hotline_protocol::crypto::SecretAgreementKey;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::keyring::{KeyChange, KeyPolicy, KeyRing};
use hotline_protocol::time::UnixMillis;
use hotline_protocol::wire;
use prost::Message;

use crate::keyfile::{self, KeyFileError};
use crate::material::ENCRYPTION_FILE;

/// The lock file beside the key file.
pub const LOCK_FILE: &str = "encryption.lock";
/// Most key pairs the file may hold (a policy keeps three or four).
pub const MAX_KEYS: usize = 64;

const KIND: &str = "encryption key";

/// The key file's lock, held until dropped.
#[derive(Debug)]
pub struct KeysLock {
    _file: std::fs::File,
}

/// Takes the lock of the key file in `dir`, waiting for another holder.
pub fn lock(dir: &Path) -> Result<KeysLock, KeyFileError> {
    let path = dir.join(LOCK_FILE);
    let io = |err| KeyFileError::Io {
        path: path.clone(),
        err,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(KeysLock { _file: file })
}

/// The path of the key file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(ENCRYPTION_FILE)
}

/// Loads every key pair from `dir`, checking each certificate against `identity` and its
/// secret against the certificate. Newest first.
pub fn load(dir: &Path, identity: &IdentityKey) -> Result<Vec<EncryptionKeypair>, KeyFileError> {
    let path = path(dir);
    let text = keyfile::read_secret(&path)?;
    let parts = keyfile::decode_all(&path, KIND, &text)?;
    let invalid = |msg: String| KeyFileError::Invalid {
        path: path.clone(),
        kind: KIND,
        msg,
    };
    if parts.is_empty() || parts.len() % 2 != 0 || parts.len() / 2 > MAX_KEYS {
        return Err(invalid(format!(
            "expected 1 to {MAX_KEYS} keys (two lines each), found {} lines",
            parts.len()
        )));
    }
    let mut keys = Vec::with_capacity(parts.len() / 2);
    for (i, pair) in parts.chunks(2).enumerate() {
        let n = i + 1;
        let secret: [u8; 32] = pair[0]
            .as_slice()
            .try_into()
            .map_err(|_| invalid(format!("key {n}: secret must be 32 bytes")))?;
        let secret = SecretAgreementKey::from_bytes(&secret)
            .ok_or_else(|| invalid(format!("key {n}: not an X25519 key")))?;
        let raw = wire::SignedEncryptionKey::decode(pair[1].as_slice())
            .map_err(|_| invalid(format!("key {n}: certificate does not decode")))?;
        let certificate = EncryptionKey::verify(&raw, &identity.id())
            .map_err(|e| invalid(format!("key {n}: {e}")))?;
        if certificate.public() != &secret.public() {
            return Err(invalid(format!(
                "key {n}: certificate does not match the secret key"
            )));
        }
        keys.push(EncryptionKeypair {
            secret,
            certificate,
        });
    }
    Ok(KeyRing::new(keys).into_keys())
}

/// The file's text for `keys`.
fn encode(keys: &[EncryptionKeypair]) -> zeroize::Zeroizing<String> {
    let certs: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| k.certificate.to_wire().encode_to_vec())
        .collect();
    let secrets: Vec<_> = keys.iter().map(|k| k.secret.dangerous_bytes()).collect();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(keys.len() * 2);
    for (s, c) in secrets.iter().zip(&certs) {
        parts.push(&s[..]);
        parts.push(c);
    }
    keyfile::encode(KIND, &parts)
}

/// Writes a new key file in `dir` (there must be none).
pub fn create(dir: &Path, keys: &[EncryptionKeypair]) -> Result<(), KeyFileError> {
    keyfile::write_new(&path(dir), encode(keys).as_bytes())
}

/// Replaces the key file in `dir` with `keys` (the caller holds the [`lock`]).
pub fn save(dir: &Path, keys: &[EncryptionKeypair]) -> Result<(), KeyFileError> {
    keyfile::write_replace(&path(dir), encode(keys).as_bytes())
}

/// Under the lock: loads the keys of `dir`, brings them up to date at `now` by `policy`
/// ([`KeyRing::maintain`]), and writes them back if anything changed. With `force`, a new
/// key is made in any case (`hotlined keys rotate`). Returns the keys, newest first, and
/// what changed.
pub fn maintain(
    dir: &Path,
    identity: &IdentityKey,
    now: UnixMillis,
    policy: &KeyPolicy,
    force: bool,
) -> Result<(Vec<EncryptionKeypair>, Vec<KeyChange>), KeyFileError> {
    let _lock = lock(dir)?;
    let mut ring = KeyRing::new(load(dir, identity)?);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let mut changes = Vec::new();
    if force {
        changes.push(ring.rotate(identity, now, policy, &mut rng));
    }
    changes.extend(ring.maintain(identity, now, policy, &mut rng));
    if !changes.is_empty() {
        save(dir, ring.keys())?;
    }
    Ok((ring.into_keys(), changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotline_protocol::time::DAY;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hotline-enc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keys_round_trip_rotate_and_expire_through_the_file() {
        let d = dir("rt");
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let id = IdentityKey::generate(&mut rng);
        let now = 1_800_000_000_000;
        let first = EncryptionKeypair::generate(&id, now - DAY, now + 365 * DAY, &mut rng);
        create(&d, &[first]).unwrap();
        assert_eq!(load(&d, &id).unwrap().len(), 1);
        let policy = KeyPolicy::default();
        // Nothing to do yet; then a forced rotation.
        assert!(maintain(&d, &id, now, &policy, false).unwrap().1.is_empty());
        let (keys, changes) = maintain(&d, &id, now, &policy, true).unwrap();
        assert_eq!((keys.len(), changes.len()), (2, 1));
        let reread = load(&d, &id).unwrap();
        assert_eq!(reread[0].certificate, keys[0].certificate);
        assert!(reread[0].certificate.not_before() > reread[1].certificate.not_before());
        // A year and a half later: a new key, both old secrets destroyed.
        let later = now + 500 * DAY;
        let (keys, changes) = maintain(&d, &id, later, &policy, false).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(changes.len(), 3);
        assert!(keys[0].certificate.valid_at(later));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path(&d)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        // Someone else's key in the file is refused.
        let other = IdentityKey::generate(&mut rng);
        assert!(load(&d, &other).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
