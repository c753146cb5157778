//! [`SqliteStore`] administration: pinned peers, operators and the audit log.
//!
//! Bodies of [`Store`](crate::store::Store) methods; each one's documentation stays on the
//! `impl Store for SqliteStore` in the parent module.

use bytes::Bytes;
use rusqlite::{OptionalExtension, params};

use hotline_protocol::time::UnixMillis;

use super::super::{AuditEvent, InstalledBundle, OperatorRecord, PeerRecord, Result, StoreError};
use super::SqliteStore;
use super::convert::{int, message_id, node_id, uint};

impl SqliteStore {
    pub(super) fn peers(&mut self) -> Result<Vec<PeerRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT alias, identity, address, bundle, added_ms, trust FROM peers ORDER BY alias",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<PeerRecord> {
            Ok(PeerRecord {
                alias: r.get(0)?,
                identity: node_id(&r.get::<_, Vec<u8>>(1)?)?,
                address: r.get(2)?,
                bundle: Bytes::from(r.get::<_, Vec<u8>>(3)?),
                added_ms: uint(r.get(4)?, "added_ms")?,
                trust: r
                    .get::<_, String>(5)?
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("peer: {e}")))?,
            })
        })?;
        rows.collect()
    }

    pub(super) fn add_peer(&mut self, peer: &PeerRecord) -> Result<()> {
        let added_ms = int(peer.added_ms, "added_ms")?;
        let tx = self.write()?;
        {
            let by_alias = tx
                .prepare_cached("SELECT 1 FROM peers WHERE alias = ?1")?
                .exists([&peer.alias])?;
            if by_alias {
                return Err(StoreError::Conflict(format!(
                    "a peer with alias {alias:?} is already pinned; remove it first with \
                     `hotlined peer remove {alias}`",
                    alias = peer.alias
                )));
            }
            let by_identity: Option<String> = tx
                .prepare_cached("SELECT alias FROM peers WHERE identity = ?1")?
                .query_row([&peer.identity.as_bytes()[..]], |r| r.get(0))
                .optional()?;
            if let Some(alias) = by_identity {
                return Err(StoreError::Conflict(format!(
                    "node {} is already pinned as {alias:?}; remove it first with \
                     `hotlined peer remove {alias}`",
                    peer.identity
                )));
            }
            tx.prepare_cached(
                "INSERT INTO peers (alias, identity, address, bundle, added_ms, trust) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                peer.alias,
                &peer.identity.as_bytes()[..],
                peer.address,
                &peer.bundle[..],
                added_ms,
                peer.trust.as_str()
            ])?;
            tx.prepare_cached(INSTALL_BUNDLE)?.execute(params![
                &peer.identity.as_bytes()[..],
                &peer.bundle[..],
                added_ms
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn update_peer(
        &mut self,
        alias: &str,
        bundle: Option<&Bytes>,
        address: Option<&str>,
        now: UnixMillis,
    ) -> Result<bool> {
        let now = int(now, "now")?;
        let tx = self.write()?;
        {
            let identity: Option<Vec<u8>> = tx
                .prepare_cached("SELECT identity FROM peers WHERE alias = ?1")?
                .query_row([alias], |r| r.get(0))
                .optional()?;
            let Some(identity) = identity else {
                return Ok(false);
            };
            if let Some(bundle) = bundle {
                tx.prepare_cached("UPDATE peers SET bundle = ?2 WHERE alias = ?1")?
                    .execute(params![alias, &bundle[..]])?;
                tx.prepare_cached(INSTALL_BUNDLE)?.execute(params![
                    &identity[..],
                    &bundle[..],
                    now
                ])?;
            }
            if let Some(address) = address {
                tx.prepare_cached("UPDATE peers SET address = ?2 WHERE alias = ?1")?
                    .execute(params![alias, address])?;
            }
        }
        tx.commit()?;
        Ok(true)
    }

    pub(super) fn bundle_history(&mut self) -> Result<Vec<InstalledBundle>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT identity, bundle, installed_ms FROM peer_bundles ORDER BY installed_ms, rowid",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<InstalledBundle> {
            Ok(InstalledBundle {
                identity: node_id(&r.get::<_, Vec<u8>>(0)?)?,
                bundle: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                installed_ms: uint(r.get(2)?, "installed_ms")?,
            })
        })?;
        rows.collect()
    }

    pub(super) fn operators(&mut self) -> Result<Vec<OperatorRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, role, officer_key, tls_spki_sha256, credential, added_ms, revoked_ms \
             FROM operators ORDER BY name",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<OperatorRecord> {
            let key32 = |v: Vec<u8>, what: &str| -> Result<[u8; 32]> {
                v.try_into()
                    .map_err(|_| StoreError::Corrupt(format!("operator {what} is not 32 bytes")))
            };
            Ok(OperatorRecord {
                name: r.get(0)?,
                role: r.get(1)?,
                officer_key: key32(r.get(2)?, "key")?,
                tls_spki_sha256: key32(r.get(3)?, "TLS pin")?,
                credential: Bytes::from(r.get::<_, Vec<u8>>(4)?),
                added_ms: uint(r.get(5)?, "added_ms")?,
                revoked_ms: r
                    .get::<_, Option<i64>>(6)?
                    .map(|v| uint(v, "revoked_ms"))
                    .transpose()?,
            })
        })?;
        rows.collect()
    }

    pub(super) fn add_operator(&mut self, op: &OperatorRecord) -> Result<()> {
        let added_ms = int(op.added_ms, "added_ms")?;
        let tx = self.write()?;
        let taken = tx
            .prepare_cached("SELECT 1 FROM operators WHERE name = ?1 OR officer_key = ?2 OR tls_spki_sha256 = ?3")?
            .exists(params![op.name, &op.officer_key[..], &op.tls_spki_sha256[..]])?;
        if taken {
            return Err(StoreError::Conflict(format!(
                "an operator named {:?} (or with the same keys) exists already; choose another name, \
                 or revoke it first with `hotlined operator remove`",
                op.name
            )));
        }
        tx.prepare_cached(
            "INSERT INTO operators (name, role, officer_key, tls_spki_sha256, credential, added_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![op.name, op.role, &op.officer_key[..], &op.tls_spki_sha256[..], &op.credential[..], added_ms])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn renew_operator(&mut self, name: &str, credential: &[u8]) -> Result<bool> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE operators SET credential = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
            )?
            .execute(params![name, credential])?;
        tx.commit()?;
        Ok(n > 0)
    }

    pub(super) fn revoke_operator(
        &mut self,
        name: &str,
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<bool> {
        let now = int(now, "revoked_ms")?;
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE operators SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
            )?
            .execute(params![name, now])?;
        tx.commit()?;
        Ok(n > 0)
    }

    pub(super) fn remove_peer(&mut self, alias: &str) -> Result<bool> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached("DELETE FROM peers WHERE alias = ?1")?
            .execute([alias])?;
        tx.commit()?;
        Ok(n > 0)
    }

    pub(super) fn audit(&mut self, events: &[AuditEvent]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (time_ms, kind, peer, message_id, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in events {
                insert.execute(params![
                    int(e.time_ms, "time_ms")?,
                    e.kind,
                    e.peer.as_ref().map(|p| &p.as_bytes()[..]),
                    e.message_id.as_ref().map(|m| &m[..]),
                    e.detail,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub(super) fn recent_audit(&mut self, limit: usize) -> Result<Vec<AuditEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT time_ms, kind, peer, message_id, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_and_then([limit], |r| -> Result<AuditEvent> {
            Ok(AuditEvent {
                time_ms: uint(r.get(0)?, "time_ms")?,
                kind: r.get(1)?,
                peer: r
                    .get::<_, Option<Vec<u8>>>(2)?
                    .as_deref()
                    .map(node_id)
                    .transpose()?,
                message_id: r
                    .get::<_, Option<Vec<u8>>>(3)?
                    .as_deref()
                    .map(message_id)
                    .transpose()?,
                detail: r.get(4)?,
            })
        })?;
        rows.collect()
    }
}

/// Records a bundle in the history (once per node and bundle).
pub(super) const INSTALL_BUNDLE: &str = "INSERT INTO peer_bundles (identity, bundle, installed_ms) \
     VALUES (?1, ?2, ?3) ON CONFLICT (identity, bundle) DO NOTHING";
