//! The operator's credential file (SPEC.md §15.2.2): where it is, and the failure a client
//! reports when it cannot be used. The format and its checks are `hotline_transport::credential`.

use std::path::{Path, PathBuf};

pub use hotline_transport::credential::Loaded;

use crate::error::{Exit, Failure, Result};

/// The environment variable naming the credential file.
pub const ENV: &str = "HOTLINE_CREDENTIAL";

/// The default location: `$XDG_CONFIG_HOME/hotline/credential`, else
/// `~/.config/hotline/credential`.
pub fn default_path() -> Option<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    )
}

fn default_path_from(
    xdg: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let base = xdg
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            home.filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("hotline").join("credential"))
}

/// Which file to use: `--credential`, else `$HOTLINE_CREDENTIAL`, else [`default_path`].
pub fn locate(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_owned());
    }
    if let Some(p) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    default_path().ok_or_else(|| {
        Failure::new(
            Exit::Credential,
            format!("no credential file: give --credential FILE or set {ENV} (HOME is not set, so there is no default path)"),
        )
    })
}

fn cred_err(path: &Path, what: impl std::fmt::Display) -> Failure {
    Failure::new(
        Exit::Credential,
        format!(
            "credential {}: {what}; ask your node's administrator for a new one (`hotlined operator add`)",
            path.display()
        ),
    )
}

/// Reads and checks the credential file at `path` (§15.2.2 steps 1–6).
pub fn load(path: &Path) -> Result<Loaded> {
    if !path.exists() {
        return Err(Failure::new(
            Exit::Credential,
            format!(
                "no credential file at {}: give one with --credential FILE or {ENV}=FILE, or put it at {} (your node's administrator issues it with `hotlined operator add`)",
                path.display(),
                default_path().map_or_else(
                    || "~/.config/hotline/credential".into(),
                    |p| p.display().to_string()
                ),
            ),
        ));
    }
    // Steps 1–6: mode, TOML and keys, node id, the credential issued by that node, the seed it
    // certifies, the TLS key and the node pin.
    hotline_transport::credential::load(path).map_err(|e| match e {
        hotline_transport::credential::CredentialError::Invalid { msg, .. } => cred_err(path, msg),
        other => Failure::new(
            Exit::Credential,
            format!(
                "{other}; ask your node's administrator for a new one (`hotlined operator add`)"
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_prefers_xdg_config_home_then_home() {
        let p = |x: Option<&str>, h: Option<&str>| {
            default_path_from(x.map(Into::into), h.map(Into::into))
        };
        assert_eq!(
            p(Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/hotline/credential"))
        );
        assert_eq!(
            p(Some(""), Some("/h")),
            Some(PathBuf::from("/h/.config/hotline/credential"))
        );
        assert_eq!(p(None, None), None);
    }

    #[test]
    fn a_missing_file_says_how_to_give_one() {
        let Err(f) = load(Path::new("/nonexistent/hotline-credential")) else {
            panic!("loaded");
        };
        assert_eq!(f.exit, Exit::Credential);
        assert!(
            f.message.contains("--credential") && f.message.contains(ENV),
            "{}",
            f.message
        );
    }
}
