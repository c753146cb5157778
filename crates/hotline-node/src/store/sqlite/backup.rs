//! An online, consistent copy of the database (`hotlined backup`, issue 16 item 7): SQLite's
//! `VACUUM INTO` reads one snapshot while the node goes on writing (WAL mode), and writes a
//! compact database file that needs no WAL beside it.

use std::path::Path;

use super::SqliteStore;
use crate::store::{Result, StoreError};

impl SqliteStore {
    /// Writes a consistent copy of the database to `out` (which must not exist; made mode
    /// 0600), checks it (`PRAGMA integrity_check`), and returns its size in bytes.
    pub fn backup_into(&mut self, out: &Path) -> Result<u64> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e: std::io::Error| StoreError::Database(format!("{}: {e}", out.display()));
        // VACUUM INTO writes into an empty file: made here first, so that it is 0600 from
        // the start (the copy holds every message in the clear).
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(io)?;
        let target = out
            .to_str()
            .ok_or_else(|| StoreError::Database(format!("{}: not UTF-8", out.display())))?;
        if let Err(e) = self.conn.execute("VACUUM INTO ?1", [target]) {
            let _ = std::fs::remove_file(out);
            return Err(e.into());
        }
        let copy =
            rusqlite::Connection::open_with_flags(out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Database(format!(
                "{}: the copy fails its integrity check: {check}",
                out.display()
            )));
        }
        drop(copy);
        std::fs::File::open(out)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        Ok(std::fs::metadata(out).map_err(io)?.len())
    }
}
