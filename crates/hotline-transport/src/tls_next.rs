//! A node's next TLS key (SPEC.md §3.6.1, §4.4.4): made by `hotlined keys rotate --tls` and kept
//! beside the current one (`tls.next.key`, mode 0600, and `tls.next.pem`) while the running
//! node announces its pin to the peers in a new bundle; promoted to `tls.key` and `tls.pem`
//! once every peer holds that bundle. The old key's file is overwritten, as every replaced
//! secret is (`keyfile::write_replace`).

use std::path::Path;

use hotline_protocol::time::UnixMillis;

use crate::keyfile::{self, KeyFileError};
use crate::material::{TLS_CERT_FILE, TLS_KEY_FILE, TLS_LIFETIME, alt_name};
use crate::tls::NodeTlsKey;

/// The next TLS private key (PEM), while it waits to be used.
pub const TLS_NEXT_KEY_FILE: &str = "tls.next.key";
/// Its self-signed certificate (PEM).
pub const TLS_NEXT_CERT_FILE: &str = "tls.next.pem";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |err| KeyFileError::Io {
        path: path.to_owned(),
        err,
    }
}

/// Makes a new TLS key with a self-signed certificate (the profile of `hotlined init`) and
/// keeps it as the next key in `dir`, replacing a next key made before.
pub fn make(
    dir: &Path,
    name: &str,
    listen: &str,
    now: UnixMillis,
) -> Result<NodeTlsKey, KeyFileError> {
    let key_path = dir.join(TLS_NEXT_KEY_FILE);
    let key = NodeTlsKey::generate_named(
        name,
        &[alt_name(name, listen)],
        now.saturating_sub(60_000),
        now + TLS_LIFETIME,
    )
    .map_err(|e| KeyFileError::Invalid {
        path: key_path.clone(),
        kind: "TLS key",
        msg: e.to_string(),
    })?;
    let (cert_pem, key_pem) = key.to_pem();
    // The certificate first: a next key file without its certificate is never read.
    let cert_path = dir.join(TLS_NEXT_CERT_FILE);
    let tmp = cert_path.with_extension("new");
    std::fs::write(&tmp, cert_pem).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &cert_path).map_err(io(&cert_path))?;
    if key_path.exists() {
        keyfile::write_replace(&key_path, key_pem.as_bytes())?;
    } else {
        keyfile::write_new(&key_path, key_pem.as_bytes())?;
    }
    Ok(key)
}

/// The next TLS key in `dir`, if one waits (both files present and matching).
pub fn load(dir: &Path) -> Result<Option<NodeTlsKey>, KeyFileError> {
    let key_path = dir.join(TLS_NEXT_KEY_FILE);
    if !key_path.exists() {
        return Ok(None);
    }
    let key_pem = keyfile::read_secret(&key_path)?;
    let cert_path = dir.join(TLS_NEXT_CERT_FILE);
    let cert_pem = std::fs::read(&cert_path).map_err(io(&cert_path))?;
    NodeTlsKey::from_pem(&cert_pem, &key_pem)
        .map(Some)
        .map_err(|e| KeyFileError::Invalid {
            path: key_path,
            kind: "next TLS key",
            msg: e.to_string(),
        })
}

/// Makes the next key the node's TLS key: `tls.key` is replaced (its old bytes overwritten),
/// then `tls.pem`, then the next key's files are removed (the key's bytes overwritten first).
/// A reader of `tls.key` and `tls.pem` between the two replacements sees a key and a
/// certificate that do not match, and keeps what it had (`NodeTlsKey::from_pem` refuses the
/// pair). Returns the promoted key; `None` if no next key waits.
pub fn promote(dir: &Path) -> Result<Option<NodeTlsKey>, KeyFileError> {
    let Some(next) = load(dir)? else {
        return Ok(None);
    };
    let (cert_pem, key_pem) = next.to_pem();
    keyfile::write_replace(&dir.join(TLS_KEY_FILE), key_pem.as_bytes())?;
    let cert_path = dir.join(TLS_CERT_FILE);
    let tmp = cert_path.with_extension("new");
    std::fs::write(&tmp, cert_pem).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &cert_path).map_err(io(&cert_path))?;
    discard(dir)?;
    Ok(Some(next))
}

/// Removes a waiting next key (its bytes overwritten first).
pub fn discard(dir: &Path) -> Result<(), KeyFileError> {
    let key_path = dir.join(TLS_NEXT_KEY_FILE);
    if key_path.exists() {
        keyfile::write_replace(&key_path, &[])?;
        std::fs::remove_file(&key_path).map_err(io(&key_path))?;
    }
    let cert_path = dir.join(TLS_NEXT_CERT_FILE);
    if cert_path.exists() {
        std::fs::remove_file(&cert_path).map_err(io(&cert_path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_key_is_made_loaded_promoted_and_gone() {
        let dir = tempfile::tempdir().expect("dir");
        let now = 1_800_000_000_000;
        let m = crate::material::Material::create(dir.path(), "CERT-A", now).expect("init");
        assert!(load(dir.path()).expect("load").is_none());
        let next = make(dir.path(), "CERT-A", "127.0.0.1:4433", now).expect("make");
        assert_ne!(next.spki_sha256(), m.tls.spki_sha256());
        let mode = std::fs::metadata(dir.path().join(TLS_NEXT_KEY_FILE))
            .map(|md| std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777)
            .expect("mode");
        assert_eq!(mode, 0o600);
        let loaded = load(dir.path()).expect("load").expect("a next key");
        assert_eq!(loaded.spki_sha256(), next.spki_sha256());
        let promoted = promote(dir.path()).expect("promote").expect("promoted");
        assert_eq!(promoted.spki_sha256(), next.spki_sha256());
        let reloaded = crate::material::Material::load(dir.path()).expect("reload");
        assert_eq!(reloaded.tls.spki_sha256(), next.spki_sha256());
        assert!(!dir.path().join(TLS_NEXT_KEY_FILE).exists());
        assert!(!dir.path().join(TLS_NEXT_CERT_FILE).exists());
        assert!(promote(dir.path()).expect("again").is_none());
    }
}
