//! Secret key files: created mode 0600, refused when others can read them, zeroized in memory.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file exists already (init never overwrites keys).
    #[error(
        "{0} exists already; hotlined never overwrites keys (move it away if you really mean to replace it)"
    )]
    Exists(PathBuf),
    /// Others can read or write it.
    #[error(
        "{path} is readable or writable by others (mode {mode:o}); fix it with: chmod 600 {path}"
    )]
    Permissions {
        /// Path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// It could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// Its content is not a valid key of this kind.
    #[error("{path} is not a valid {kind} file: {msg}")]
    Invalid {
        /// Path.
        path: PathBuf,
        /// Which kind of key.
        kind: &'static str,
        /// What is wrong.
        msg: String,
    },
}

/// Writes a new secret file with mode 0600, refusing to overwrite, and syncs it.
pub fn write_new(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| {
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists(path.to_owned())
            } else {
                KeyFileError::Io {
                    path: path.to_owned(),
                    err,
                }
            }
        })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|err| KeyFileError::Io {
            path: path.to_owned(),
            err,
        })
}

/// Checks that only the owner can read or write `path`.
pub fn check_permissions(path: &Path) -> Result<(), KeyFileError> {
    let meta = std::fs::metadata(path).map_err(|err| KeyFileError::Io {
        path: path.to_owned(),
        err,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

/// Reads a secret file after checking its permissions; the buffer is zeroized on drop.
pub fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    check_permissions(path)?;
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|err| KeyFileError::Io {
            path: path.to_owned(),
            err,
        })
}

/// Encodes a key file: a header line naming the kind, then base64 lines.
pub fn encode(kind: &str, parts: &[&[u8]]) -> Zeroizing<String> {
    let mut s = Zeroizing::new(format!("hotline {kind} v1\n"));
    for p in parts {
        let enc = Zeroizing::new(data_encoding_b64(p));
        s.push_str(&enc);
        s.push('\n');
    }
    s
}

/// Decodes a key file written by [`encode`], expecting `n` parts.
pub fn decode(
    path: &Path,
    kind: &'static str,
    text: &[u8],
    n: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>, KeyFileError> {
    let invalid = |msg: &str| KeyFileError::Invalid {
        path: path.to_owned(),
        kind,
        msg: msg.to_owned(),
    };
    let text = std::str::from_utf8(text).map_err(|_| invalid("not text"))?;
    let mut lines = text.lines();
    if lines.next() != Some(format!("hotline {kind} v1").as_str()) {
        return Err(invalid(&format!(
            "first line must be \"hotline {kind} v1\""
        )));
    }
    let parts: Vec<Zeroizing<Vec<u8>>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            b64_decode(l.trim())
                .map(Zeroizing::new)
                .ok_or_else(|| invalid("bad base64"))
        })
        .collect::<Result<_, _>>()?;
    if parts.len() != n {
        return Err(invalid(&format!(
            "expected {n} lines of key material, found {}",
            parts.len()
        )));
    }
    Ok(parts)
}

fn data_encoding_b64(b: &[u8]) -> String {
    data_encoding::BASE64.encode(b)
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(s.as_bytes()).ok()
}
