//! The high-water mark of outgoing sequences: per peer, the highest sequence number this node
//! has assigned, kept in a small file beside the database ([`HWM_FILE`]).
//!
//! **Why outside the database.** A database restored from a backup (`hotline.db` copied back
//! from last week) has forgotten the sequences assigned since the copy was taken; on its own it
//! would assign them again, and the peer would hold two different envelopes with one sequence
//! (SPEC.md §10.1). This file is not part of the database, so a restore of the database alone
//! leaves it ahead: at start-up a mark above the database's highest sequence for a peer shows
//! the restore, and the store continues from the mark ([`Store::raise_sequence_floor`]). A
//! restore of the whole node directory takes this file back too; the peer's `received_through`
//! is the second line of defence (the link driver).
//!
//! **Why written lazily.** A restore happens long after the last write (an operator copies a
//! backup back in, hours or days later), so the file needs to be current only within about a
//! second: the store notes each assigned sequence in memory after its commit ([`note`]), and
//! the daemon rewrites the file at most once a second when a mark changed, and once more when
//! the store closes. A message therefore costs no write and no fsync of its own here. A crash
//! can lose the last second of marks, but then the database, which is durable, holds them.
//!
//! The file is written whole to a temporary file (mode 0600), synced and renamed over the old
//! one, so a crash leaves either the old or the new file. One line per peer: the peer's node id
//! (`hl1…`) and the mark, separated by a space; lines starting with `#` are comments.
//!
//! [`Store::raise_sequence_floor`]: super::Store::raise_sequence_floor
//! [`note`]: HighWater::note

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hotline_protocol::NodeId;

/// The file's name, in the node directory beside the database.
pub const HWM_FILE: &str = "sequences.hwm";

/// The highest floor a store records ([`Store::raise_sequence_floor`]): far above any sequence a
/// node can assign (2^48: 44,000 years at 200 messages a second) and far below where a
/// sequence stops fitting the database (2^63). A higher claim, from a garbled file or a hostile
/// peer's Heartbeat, is refused rather than allowed to exhaust the sequence space.
///
/// [`Store::raise_sequence_floor`]: super::Store::raise_sequence_floor
pub const MAX_SEQUENCE_FLOOR: u64 = 1 << 48;

/// The marks of one node, shared by the store (which notes them) and the task that writes them.
#[derive(Debug)]
pub struct HighWater {
    path: PathBuf,
    marks: Mutex<Marks>,
    /// Held while the file is written: the periodic writer and the store's last write never
    /// share the temporary file.
    writing: Mutex<()>,
}

#[derive(Debug, Default)]
struct Marks {
    by_peer: BTreeMap<NodeId, u64>,
    /// Changed since the file was last written.
    dirty: bool,
}

impl HighWater {
    /// Reads the marks from `path`; a missing file is no marks. Also returns the lines that
    /// could not be read (each worded for an operator): they are skipped, and the file is
    /// rewritten without them at the next change.
    pub fn load(path: &Path) -> std::io::Result<(HighWater, Vec<String>)> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let (by_peer, problems) = parse(&text);
        let problems = problems
            .into_iter()
            .map(|p| format!("{}: {p}", path.display()))
            .collect();
        let hw = HighWater {
            path: path.to_owned(),
            marks: Mutex::new(Marks {
                by_peer,
                dirty: false,
            }),
            writing: Mutex::new(()),
        };
        Ok((hw, problems))
    }

    /// Where the marks are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every peer's mark.
    pub fn marks(&self) -> BTreeMap<NodeId, u64> {
        self.marks
            .lock()
            .map(|m| m.by_peer.clone())
            .unwrap_or_default()
    }

    /// Raises `peer`'s mark to `sequence` if it is higher (in memory; written later).
    pub fn note(&self, peer: NodeId, sequence: u64) {
        if let Ok(mut m) = self.marks.lock() {
            let mark = m.by_peer.entry(peer).or_default();
            if sequence > *mark {
                *mark = sequence;
                m.dirty = true;
            }
        }
    }

    /// Whether a mark changed since the file was last written.
    pub fn dirty(&self) -> bool {
        self.marks.lock().is_ok_and(|m| m.dirty)
    }

    /// Writes the file if a mark changed since the last write: temporary file, fsync, rename,
    /// fsync of the directory. Blocking (tens of milliseconds on a slow disk); returns whether
    /// it wrote. On failure the marks stay to be written next time.
    pub fn flush(&self) -> std::io::Result<bool> {
        let _writing = self.writing.lock();
        let snapshot = match self.marks.lock() {
            Ok(mut m) if m.dirty => {
                m.dirty = false;
                m.by_peer.clone()
            }
            _ => return Ok(false),
        };
        let written = write_atomically(&self.path, render(&snapshot).as_bytes());
        if written.is_err()
            && let Ok(mut m) = self.marks.lock()
        {
            m.dirty = true;
        }
        written.map(|()| true)
    }
}

/// The marks in `text`, and what is wrong with the lines that are skipped.
fn parse(text: &str) -> (BTreeMap<NodeId, u64>, Vec<String>) {
    let mut marks = BTreeMap::new();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let parsed = match (fields.next(), fields.next(), fields.next()) {
            (Some(peer), Some(mark), None) => peer.parse::<NodeId>().ok().zip(
                mark.parse::<u64>()
                    .ok()
                    .filter(|m| *m <= MAX_SEQUENCE_FLOOR),
            ),
            _ => None,
        };
        match parsed {
            Some((peer, mark)) => {
                let held: &mut u64 = marks.entry(peer).or_default();
                *held = (*held).max(mark);
            }
            None => problems.push(format!(
                "line {} is not a node id and a sequence number; skipped",
                n + 1
            )),
        }
    }
    (marks, problems)
}

fn render(marks: &BTreeMap<NodeId, u64>) -> String {
    let mut text = String::from(
        "# hotlined: the highest sequence number assigned to each peer (SPEC.md §10.1).\n\
         # Kept outside hotline.db to detect a restored database; do not edit.\n",
    );
    for (peer, mark) in marks {
        text.push_str(&format!("{peer} {mark}\n"));
    }
    text
}

/// Replaces `path` with `bytes`: a crash leaves the old file or the new one, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("hwm.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        hotline_protocol::identity::IdentityKey::from_seed(&[n; 32])
            .expect("seed")
            .id()
    }

    #[test]
    fn marks_are_written_only_when_raised_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HWM_FILE);
        let (hw, problems) = HighWater::load(&path).unwrap();
        assert!(problems.is_empty() && hw.marks().is_empty());
        assert!(!hw.flush().unwrap(), "nothing changed: nothing written");
        assert!(!path.exists());
        hw.note(node(1), 7);
        hw.note(node(1), 5); // never lowered
        hw.note(node(2), 1);
        assert!(hw.dirty());
        assert!(hw.flush().unwrap());
        assert!(!hw.dirty() && !hw.flush().unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, problems) = HighWater::load(&path).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(again.marks(), BTreeMap::from([(node(1), 7), (node(2), 1)]));
    }

    #[test]
    fn unreadable_lines_are_skipped_and_named() {
        let good = node(3);
        let text = format!(
            "# comment\n{good} 12\nnot-a-node 4\n{good} 9\n{} {}\n",
            node(4),
            MAX_SEQUENCE_FLOOR + 1
        );
        let (marks, problems) = parse(&text);
        assert_eq!(marks, BTreeMap::from([(good, 12)]));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("line 3"), "{problems:?}");
    }
}
