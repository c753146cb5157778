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
    let parts = decode_all(path, kind, text)?;
    if parts.len() != n {
        return Err(KeyFileError::Invalid {
            path: path.to_owned(),
            kind,
            msg: format!("expected {n} lines of key material, found {}", parts.len()),
        });
    }
    Ok(parts)
}

/// Like [`decode`], for a file holding any number of parts.
pub fn decode_all(
    path: &Path,
    kind: &'static str,
    text: &[u8],
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
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            b64_decode(l.trim())
                .map(Zeroizing::new)
                .ok_or_else(|| invalid("bad base64"))
        })
        .collect()
}

/// Replaces the secret file `path` with `contents` (mode 0600), atomically: a reader sees
/// the old file or the new one, and a crash leaves one of them. The old file's bytes are
/// then overwritten with zeros through a handle kept open across the rename, so that on a
/// filesystem that writes in place (ext4, xfs) they do not linger in freed blocks; on a
/// copy-on-write or journalled-data filesystem, or an SSD, older copies may survive and
/// only full-disk encryption protects them.
pub fn write_replace(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    use std::io::{Seek, Write};
    let io = |err| KeyFileError::Io {
        path: path.to_owned(),
        err,
    };
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, contents)?;
    let old = std::fs::OpenOptions::new().write(true).open(path).ok();
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    if let Some(mut old) = old {
        let len = old.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = old.seek(std::io::SeekFrom::Start(0));
        let _ = old.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)]);
        let _ = old.sync_all();
    }
    Ok(())
}

fn data_encoding_b64(b: &[u8]) -> String {
    data_encoding::BASE64.encode(b)
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(s.as_bytes()).ok()
}
