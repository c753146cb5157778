//! `hotlined backup --dir DIR --out FILE` (issue 16 item 7): a consistent copy of the node's
//! database, taken while the node runs, and how to restore it without reusing a sequence
//! number (SPEC.md §10.1).

use std::path::Path;

use crate::commands::CommandError;
use crate::config;
use crate::say;
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditEvent, Store};
use hotline_transport::now_ms;

/// Copies `DIR/hotline.db` to `out` (never overwriting), checked, and says what else to keep
/// and how to restore.
pub fn backup(dir: &Path, out: &Path) -> Result<(), CommandError> {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let bytes = store.backup_into(out)?;
    store.audit(&[AuditEvent {
        time_ms: now_ms(),
        kind: "backup".into(),
        peer: None,
        message_id: None,
        detail: format!("{} ({bytes} bytes)", out.display()),
    }])?;
    say!(
        "Wrote a consistent copy of {} to {} ({bytes} bytes, mode 0600: it holds every message \
         in the clear; keep it as safe as the node).",
        dir.join(config::DB_FILE).display(),
        out.display()
    );
    say!(
        "The database alone does not make a node: keep a copy of the key files too (identity.key, \
         encryption.key, tls.key, tls.pem, hotlined.toml), and copy encryption.key again after \
         each rotation."
    );
    say!(
        "To restore: stop hotlined, copy the file to {} (remove hotline.db-wal and \
         hotline.db-shm beside it), keep {} where it is, and start: the node continues above \
         every sequence number it used after the copy was taken, and its peers' heartbeats \
         correct it if that file was lost too (SPEC.md §10.1).",
        dir.join(config::DB_FILE).display(),
        dir.join(crate::store::high_water::HWM_FILE).display()
    );
    Ok(())
}
