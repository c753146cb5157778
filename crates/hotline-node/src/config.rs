//! `hotlined.toml`: the node's configuration file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Name of the configuration file inside the node directory.
pub const CONFIG_FILE: &str = "hotlined.toml";
/// The running node's control socket inside the node directory (see `daemon::control`).
pub const CONTROL_SOCKET: &str = "control.sock";
/// Name of the database file inside the node directory.
pub const DB_FILE: &str = "hotline.db";
pub use hotline_transport::material::{
    BUNDLE_FILE, ENCRYPTION_FILE, IDENTITY_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
};

/// Default for the most outgoing items a link holds in memory (`[limits] outbox_window`). A
/// longer outbox stays in the store and is paged in as receipts come back, so a backlog of any
/// size costs bounded memory and start-up time.
pub const DEFAULT_OUTBOX_WINDOW: usize = 4096;

/// The configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Human name of this node (in its bundle).
    pub name: String,
    /// Where to listen for peers and operators: HOST:PORT (UDP).
    pub listen: String,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Delivery deadlines per precedence, after which an undelivered message is overdue.
    #[serde(default)]
    pub deadlines: Deadlines,
    /// The private CA for peers added with `--trust ca` (SPEC.md §3.6.2); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaConfig>,
    /// Disk space and per-peer storage limits.
    #[serde(default)]
    pub storage: Storage,
}

/// `[storage]`: what a peer may make this node store, and the free disk space below which the
/// node stops taking new messages instead of failing writes (SPEC.md §13.3).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Free space (MiB) on the database's file system below which the node refuses new
    /// envelopes (the peer retries later) and new Sends, and says so.
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
    /// Most bytes of received messages (envelopes and their plaintext, MiB) kept per peer;
    /// a new envelope beyond it is answered REJECTED (POLICY) naming the quota.
    #[serde(default = "default_peer_quota_mib")]
    pub peer_quota_mib: u64,
}

fn default_min_free_mib() -> u64 {
    512
}

fn default_peer_quota_mib() -> u64 {
    10 * 1024
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            min_free_mib: default_min_free_mib(),
            peer_quota_mib: default_peer_quota_mib(),
        }
    }
}

/// `[ca]`: the private CA that vouches for the TLS keys of peers in private CA mode.
///
/// Relative paths are taken from the node directory; [`Config::load`] makes them absolute.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// PEM file with the CA certificate(s): the trust anchors, and the only ones.
    pub roots: PathBuf,
    /// PEM files with the CRL of each CA. Required: a certificate whose revocation status
    /// cannot be determined is refused (SPEC.md §3.6.2 step 5).
    pub crls: Vec<PathBuf>,
}

impl CaConfig {
    /// Reads and parses the CA certificates and CRLs. The message names the file and what to do.
    pub fn load(&self) -> Result<hotline_transport::tls::CaRoots, String> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                format!(
                    "[ca] {what} {}: {e}; fix the path in {CONFIG_FILE} (relative paths are \
                     taken from the node directory)",
                    path.display()
                )
            })
        };
        let roots =
            hotline_transport::tls::certs_from_pem(&read(&self.roots, "roots")?).map_err(|e| {
                format!(
                    "[ca] roots {}: {e}; it must hold the CA certificate(s) in PEM",
                    self.roots.display()
                )
            })?;
        let mut crls = Vec::new();
        for path in &self.crls {
            crls.extend(
                hotline_transport::tls::crls_from_pem(&read(path, "crls")?).map_err(|e| {
                    format!(
                        "[ca] crls {}: {e}; it must hold the CA's CRL in PEM (X509 CRL)",
                        path.display()
                    )
                })?,
            );
        }
        Ok(hotline_transport::tls::CaRoots { roots, crls })
    }
}

/// Limits and rates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Message streams accepted at once per peer connection.
    pub max_inflight: u32,
    /// Envelopes accepted per second per peer (sustained).
    pub rate_per_s: u32,
    /// Burst allowance above the rate.
    pub burst: u32,
    /// Outgoing messages per peer held in memory; a longer outbox stays on disk and is paged
    /// in as receipts return (bounded memory for any backlog).
    #[serde(default = "default_outbox_window")]
    pub outbox_window: usize,
    /// MiB of envelope and receipt frames accepted per second per peer (sustained).
    #[serde(default = "default_byte_rate_mib")]
    pub byte_rate_mib: u64,
    /// Burst allowance above that, MiB (at least 2: one largest envelope must fit).
    #[serde(default = "default_byte_burst_mib")]
    pub byte_burst_mib: u64,
}

fn default_byte_rate_mib() -> u64 {
    32
}

fn default_byte_burst_mib() -> u64 {
    64
}

fn default_outbox_window() -> usize {
    DEFAULT_OUTBOX_WINDOW
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight: 256,
            rate_per_s: 200,
            burst: 1000,
            outbox_window: default_outbox_window(),
            byte_rate_mib: default_byte_rate_mib(),
            byte_burst_mib: default_byte_burst_mib(),
        }
    }
}

/// Overdue thresholds in seconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Deadlines {
    /// FLASH (default 10 min).
    pub flash_s: u64,
    /// IMMEDIATE (default 30 min).
    pub immediate_s: u64,
    /// PRIORITY (default 3 h).
    pub priority_s: u64,
    /// ROUTINE (default 6 h).
    pub routine_s: u64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            flash_s: 600,
            immediate_s: 1800,
            priority_s: 3 * 3600,
            routine_s: 6 * 3600,
        }
    }
}

impl Deadlines {
    /// The deadline for a precedence, in milliseconds.
    pub fn for_precedence(&self, p: hotline_protocol::content::Precedence) -> u64 {
        use hotline_protocol::content::Precedence as P;
        1000 * match p {
            P::Flash => self.flash_s,
            P::Immediate => self.immediate_s,
            P::Priority => self.priority_s,
            P::Routine => self.routine_s,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {err}; is --dir the directory `hotlined init` created?")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        err: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path} is not valid: {msg}")]
    Invalid {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl Config {
    /// Loads and checks `DIR/hotlined.toml`.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| ConfigError::Read {
            path: path.clone(),
            err,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        if let Some(ca) = &mut cfg.ca {
            ca.roots = dir.join(&ca.roots);
            for crl in &mut ca.crls {
                *crl = dir.join(&*crl);
            }
        }
        cfg.validate()
            .map_err(|msg| ConfigError::Invalid { path, msg })?;
        Ok(cfg)
    }

    /// Checks values; returns what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > hotline_protocol::bundle::MAX_NAME_LEN {
            return Err("name must be 1..=64 bytes".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "listen = {:?} is not HOST:PORT with an IP address (e.g. 0.0.0.0:4433)",
                self.listen
            ));
        }
        if self.limits.max_inflight == 0 || self.limits.max_inflight > 10_000 {
            return Err("limits.max_inflight must be 1..=10000".into());
        }
        if !(2..=1_000_000).contains(&self.limits.outbox_window) {
            return Err("limits.outbox_window must be 2..=1000000".into());
        }
        if self.storage.peer_quota_mib < 4 {
            return Err("storage.peer_quota_mib must be at least 4 (two largest messages)".into());
        }
        if self.limits.byte_rate_mib == 0 || self.limits.byte_burst_mib < 2 {
            return Err(
                "limits.byte_rate_mib must be at least 1 and limits.byte_burst_mib at least 2 \
                 (one largest envelope, 1 MiB, must fit in the burst)"
                    .into(),
            );
        }
        if self.limits.rate_per_s == 0 {
            return Err("limits.rate_per_s must be at least 1".into());
        }
        if self.ca.as_ref().is_some_and(|ca| ca.crls.is_empty()) {
            return Err(
                "[ca] crls must name at least one CRL file: a certificate whose \
                        revocation status is unknown is refused"
                    .into(),
            );
        }
        Ok(())
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}
