//! Key revocations (SPEC.md §4.6): kept as the signed bytes, never deleted.

use hotline_protocol::NodeId;
use hotline_protocol::revocation::Revocation;
use hotline_protocol::time::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::convert::int;
use crate::store::{Result, RevocationAdded};

impl SqliteStore {
    pub(super) fn add_revocation(
        &mut self,
        r: &Revocation,
        now: UnixMillis,
        max_per_issuer: usize,
    ) -> Result<RevocationAdded> {
        let now = int(now, "stored_ms")?;
        let revoked = int(r.revoked(), "revoked_ms")?;
        let compromised = r
            .compromised_since()
            .map(|c| int(c, "compromised_since_ms"))
            .transpose()?;
        let sha = r.sha256();
        let issuer = r.issuer();
        let tx = self.write()?;
        let known = tx
            .prepare_cached("SELECT 1 FROM revocations WHERE sha256 = ?1")?
            .query_row([&sha[..]], |_| Ok(()))
            .optional()?
            .is_some();
        if known {
            return Ok(RevocationAdded::Known);
        }
        let held: i64 = tx
            .prepare_cached("SELECT count(*) FROM revocations WHERE issuer = ?1")?
            .query_row([&issuer.as_bytes()[..]], |row| row.get(0))?;
        if usize::try_from(held).unwrap_or(usize::MAX) >= max_per_issuer {
            return Ok(RevocationAdded::Full);
        }
        tx.prepare_cached(
            "INSERT INTO revocations (sha256, issuer, kind, key, revoked_ms, compromised_since_ms, \
             bytes, stored_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            &sha[..],
            &issuer.as_bytes()[..],
            r.kind().as_str(),
            &r.key()[..],
            revoked,
            compromised,
            &r.bytes()[..],
            now,
        ])?;
        tx.commit()?;
        Ok(RevocationAdded::Added)
    }

    pub(super) fn unsent_signed_by(
        &mut self,
        officer_key: &[u8; 32],
        since: UnixMillis,
    ) -> Result<Vec<hotline_protocol::envelope::MessageId>> {
        let since = int(since, "created_ms")?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT message_id, content FROM outbox \
             WHERE created_ms >= ?1 AND state IN ('unsealed', 'pending')",
        )?;
        let rows = stmt.query_map([since], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, content) = row?;
            let keys = hotline_protocol::revocation::officer_keys_in(&content, &[]);
            if keys.first() == Some(officer_key)
                && let Ok(id) = <[u8; 16]>::try_from(id.as_slice())
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    pub(super) fn revocations(&mut self) -> Result<Vec<Revocation>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT issuer, bytes FROM revocations ORDER BY stored_ms, sha256")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (issuer, bytes) = row?;
            // Every row was checked before it was stored; one that no longer verifies was
            // changed behind our back and counts for nothing (`hotlined check` says so).
            let checked =
                NodeId::from_bytes(&issuer).and_then(|i| Revocation::from_bytes(&bytes, &i).ok());
            match checked {
                Some(r) => out.push(r),
                None => tracing::error!("a stored key revocation does not verify; ignored"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use hotline_protocol::identity::IdentityKey;
    use hotline_protocol::revocation::{Revocation, RevokedKind};

    use crate::store::RevocationAdded;

    #[test]
    fn revocations_are_kept_once_and_bounded_per_issuer() {
        let dir = tempfile::tempdir().expect("dir");
        let mut s = super::SqliteStore::open(&dir.path().join("db")).expect("open");
        let a = IdentityKey::from_seed(&[1; 32]).expect("key");
        let b = IdentityKey::from_seed(&[2; 32]).expect("key");
        let rev = |who: &IdentityKey, k: u8| {
            Revocation::issue(who, RevokedKind::Officer, [k; 32], 10, Some(5), "why").expect("r")
        };
        assert_eq!(
            s.add_revocation(&rev(&a, 1), 1, 2).expect("add"),
            RevocationAdded::Added
        );
        assert_eq!(
            s.add_revocation(&rev(&a, 1), 2, 2).expect("add"),
            RevocationAdded::Known
        );
        assert_eq!(
            s.add_revocation(&rev(&a, 2), 3, 2).expect("add"),
            RevocationAdded::Added
        );
        assert_eq!(
            s.add_revocation(&rev(&a, 3), 4, 2).expect("add"),
            RevocationAdded::Full
        );
        assert_eq!(
            s.add_revocation(&rev(&b, 3), 5, 2).expect("add"),
            RevocationAdded::Added
        );
        let all = s.revocations().expect("read");
        assert_eq!(all, vec![rev(&a, 1), rev(&a, 2), rev(&b, 3)]);
        drop(s);
        let mut s = super::SqliteStore::open(&dir.path().join("db")).expect("reopen");
        assert_eq!(s.revocations().expect("read").len(), 3);
    }
}
