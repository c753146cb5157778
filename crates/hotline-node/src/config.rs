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
    /// How long stored messages are kept; forever by default.
    #[serde(default)]
    pub retention: Retention,
    /// How the node's encryption keys rotate.
    #[serde(default)]
    pub keys: Keys,
    /// The node directory the configuration was loaded from (not in the file).
    #[serde(skip)]
    pub dir: Option<std::path::PathBuf>,
}

/// `[keys]`: the node's encryption keys rotate by themselves (SPEC.md §4.3.4). The running node
/// reads it again at each key check (every 5 s): a change applies without a restart.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// Days a new encryption key is valid; also the forward-secrecy window of stored traffic.
    #[serde(default = "Keys::default_lifetime")]
    pub encryption_lifetime_days: u32,
    /// A new key is made when no key stays valid for longer than this many days.
    #[serde(default = "Keys::default_renew")]
    pub encryption_renew_days: u32,
    /// Days an expired key's secret is kept (for envelopes sealed to it still arriving), then
    /// destroyed; at least 30.
    #[serde(default = "Keys::default_retention")]
    pub encryption_retention_days: u32,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            encryption_lifetime_days: Self::default_lifetime(),
            encryption_renew_days: Self::default_renew(),
            encryption_retention_days: Self::default_retention(),
        }
    }
}

impl Keys {
    fn default_lifetime() -> u32 {
        30
    }
    fn default_renew() -> u32 {
        10
    }
    fn default_retention() -> u32 {
        30
    }

    /// The policy these settings make.
    pub fn policy(&self) -> hotline_protocol::keyring::KeyPolicy {
        let day = hotline_protocol::time::DAY;
        hotline_protocol::keyring::KeyPolicy {
            lifetime: u64::from(self.encryption_lifetime_days) * day,
            renew_before: u64::from(self.encryption_renew_days) * day,
            retention: u64::from(self.encryption_retention_days) * day,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.encryption_lifetime_days > 3650 {
            return Err("keys.encryption_lifetime_days is more than 3650 days".into());
        }
        self.policy().check().map_err(|e| {
            format!(
                "[keys] encryption_lifetime_days = {}, encryption_renew_days = {}, \
                 encryption_retention_days = {}: {e} (renewal must be below the lifetime, \
                 retention at least 30)",
                self.encryption_lifetime_days,
                self.encryption_renew_days,
                self.encryption_retention_days
            )
        })
    }
}

/// `[retention]`: how many days this node keeps each part of a stored message, counted from
/// when it stored it (SPEC.md §13.4); 0, the default, keeps it forever. Read at start: a change
/// takes effect when the node is restarted.
///
/// The content and subject (`plaintext_days`) can go first; the evidence of a message, its
/// envelope and its receipts, is kept at least as long, and at least 31 days: a receipt of
/// ours answers a retransmission of its envelope for 30 days + 5 minutes (§10.4). A sent
/// message loses nothing while it is unsealed or pending, nor its envelope while a receipt may
/// still come for it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days the content and subject of a message are kept (0: forever).
    #[serde(default)]
    pub plaintext_days: u32,
    /// Days the envelope bytes are kept (0: forever); their SHA-256 is kept forever.
    #[serde(default)]
    pub envelopes_days: u32,
    /// Days receipt bytes are kept, both directions (0: forever); their SHA-256 is kept forever.
    #[serde(default)]
    pub receipts_days: u32,
}

/// The shortest retention of evidence, in days: 30 days + 5 minutes, rounded up (SPEC.md §10.4).
pub const MIN_EVIDENCE_DAYS: u32 = 31;

/// The longest retention that can be configured, in days (100 years; 0 keeps forever).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl Retention {
    /// The policy the store applies.
    pub fn policy(&self) -> crate::store::RetentionPolicy {
        let ms = |days: u32| (days > 0).then(|| u64::from(days) * hotline_protocol::time::DAY);
        crate::store::RetentionPolicy {
            plaintext_ms: ms(self.plaintext_days),
            envelopes_ms: ms(self.envelopes_days),
            receipts_ms: ms(self.receipts_days),
        }
    }

    /// Checks the rules of SPEC.md §13.4; the message says what to set.
    pub fn validate(&self) -> Result<(), String> {
        for (key, days) in [
            ("plaintext_days", self.plaintext_days),
            ("envelopes_days", self.envelopes_days),
            ("receipts_days", self.receipts_days),
        ] {
            if days > MAX_RETENTION_DAYS {
                return Err(format!(
                    "retention.{key} = {days} is more than {MAX_RETENTION_DAYS} days; set 0 to \
                     keep forever"
                ));
            }
        }
        for (key, days, why) in [
            (
                "envelopes_days",
                self.envelopes_days,
                "an envelope is the evidence its receipts name",
            ),
            (
                "receipts_days",
                self.receipts_days,
                "a DELIVERED receipt answers a retransmission of its envelope for 30 days + 5 \
                 minutes (SPEC.md §10.4)",
            ),
        ] {
            if days != 0 && days < MIN_EVIDENCE_DAYS {
                return Err(format!(
                    "retention.{key} = {days} is too short: evidence is kept at least \
                     {MIN_EVIDENCE_DAYS} days ({why}); set {MIN_EVIDENCE_DAYS} or more, or 0 to \
                     keep forever"
                ));
            }
            if days != 0 && (self.plaintext_days == 0 || days < self.plaintext_days) {
                let plaintext = match self.plaintext_days {
                    0 => "0 (forever)".to_owned(),
                    n => n.to_string(),
                };
                return Err(format!(
                    "retention.{key} = {days} is shorter than retention.plaintext_days = \
                     {plaintext}: the evidence of a message is kept as long as its plaintext or \
                     longer; raise {key} to at least plaintext_days (0 keeps forever), or lower \
                     plaintext_days"
                ));
            }
        }
        Ok(())
    }
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
        cfg.dir = Some(dir.to_owned());
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
        self.retention.validate()?;
        self.keys.validate()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(retention: &str) -> Result<Config, String> {
        let text = format!("name = \"CERT-A\"\nlisten = \"127.0.0.1:4433\"\n{retention}");
        let cfg: Config = toml::from_str(&text).map_err(|e| e.to_string())?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn retention_is_forever_when_absent_and_written_by_init() {
        let cfg = config("").expect("a config without [retention]");
        assert_eq!(cfg.retention, Retention::default());
        assert!(cfg.retention.policy().keeps_everything());
        // The file `hotlined init` writes names every key, at its default.
        let written = cfg.to_toml();
        for key in [
            "[retention]",
            "plaintext_days = 0",
            "envelopes_days = 0",
            "receipts_days = 0",
        ] {
            assert!(written.contains(key), "{key} missing from:\n{written}");
        }
        assert_eq!(toml::from_str::<Config>(&written).expect("reread"), cfg);
    }

    #[test]
    fn retention_days_become_a_policy_in_milliseconds() {
        let cfg =
            config("[retention]\nplaintext_days = 90\nenvelopes_days = 365\n").expect("valid");
        let p = cfg.retention.policy();
        assert_eq!(p.plaintext_ms, Some(90 * 86_400_000));
        assert_eq!(p.envelopes_ms, Some(365 * 86_400_000));
        assert_eq!(p.receipts_ms, None, "receipts kept forever");
        config("[retention]\nplaintext_days = 1\nenvelopes_days = 31\nreceipts_days = 31\n")
            .expect("the shortest evidence retention");
    }

    #[test]
    fn refuses_evidence_kept_shorter_than_plaintext() {
        let err = config("[retention]\nplaintext_days = 400\nenvelopes_days = 365\n")
            .expect_err("envelopes shorter than plaintext");
        assert!(
            err.contains("retention.envelopes_days = 365")
                && err.contains("plaintext_days = 400")
                && err.contains("raise envelopes_days"),
            "{err}"
        );
        let err = config("[retention]\nplaintext_days = 100\nreceipts_days = 99\n")
            .expect_err("receipts shorter than plaintext");
        assert!(err.contains("retention.receipts_days = 99"), "{err}");
        // Plaintext kept forever: evidence must be kept forever too.
        let err = config("[retention]\nenvelopes_days = 60\n").expect_err("plaintext forever");
        assert!(err.contains("0 (forever)"), "{err}");
    }

    #[test]
    fn refuses_evidence_kept_less_than_31_days() {
        for key in ["envelopes_days", "receipts_days"] {
            let err = config(&format!("[retention]\nplaintext_days = 7\n{key} = 30\n"))
                .expect_err("30 days");
            assert!(
                err.contains(&format!("retention.{key} = 30 is too short"))
                    && err.contains("at least 31 days"),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_unknown_keys_and_absurd_values() {
        assert!(config("[retention]\nplaintext = 5\n").is_err());
        let err = config("[retention]\nplaintext_days = 36501\n").expect_err("too long");
        assert!(err.contains("more than 36500 days"), "{err}");
    }
}
