//! A peer's bundle taken over the link (SPEC.md §4.4.4), and the TLS key it replaced, which is
//! still accepted until a connection shows the new one.

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::time::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::admin::INSTALL_BUNDLE;
use super::convert::int;
use crate::store::Result;

impl SqliteStore {
    pub(super) fn take_peer_bundle(
        &mut self,
        peer: &NodeId,
        bundle: &Bytes,
        previous_pin: Option<[u8; 32]>,
        history: bool,
        now: UnixMillis,
    ) -> Result<bool> {
        let now = int(now, "now")?;
        let id = &peer.as_bytes()[..];
        let tx = self.write()?;
        let n = tx
            .prepare_cached("UPDATE peers SET bundle = ?2 WHERE identity = ?1")?
            .execute(params![id, &bundle[..]])?;
        if n == 0 {
            return Ok(false);
        }
        if history {
            tx.prepare_cached(INSTALL_BUNDLE)?
                .execute(params![id, &bundle[..], now])?;
        }
        if let Some(pin) = previous_pin {
            tx.prepare_cached(
                "INSERT INTO peer_previous_pins (peer, spki, since_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (peer) DO UPDATE SET spki = excluded.spki, since_ms = excluded.since_ms",
            )?
            .execute(params![id, &pin[..], now])?;
        }
        tx.commit()?;
        Ok(true)
    }

    pub(super) fn previous_pin(&mut self, peer: &NodeId) -> Result<Option<[u8; 32]>> {
        let pin: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT spki FROM peer_previous_pins WHERE peer = ?1")?
            .query_row([&peer.as_bytes()[..]], |r| r.get(0))
            .optional()?;
        Ok(pin.and_then(|p| <[u8; 32]>::try_from(p.as_slice()).ok()))
    }

    pub(super) fn forget_previous_pin(&mut self, peer: &NodeId) -> Result<()> {
        let tx = self.write()?;
        tx.prepare_cached("DELETE FROM peer_previous_pins WHERE peer = ?1")?
            .execute([&peer.as_bytes()[..]])?;
        tx.commit()?;
        Ok(())
    }
}
