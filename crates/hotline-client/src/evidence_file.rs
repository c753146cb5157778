//! An evidence file (SPEC.md §15.7.1) read and written field by field, so that an export of
//! any size takes constant memory: one item at a time.
//!
//! The file is a canonical `EvidenceBundle`: its fields in ascending order (1 version, 2
//! created_ms, 3 exporter_bundle, 4 peer_bundles…, 5 items…), no field at its default value,
//! every length and number in its shortest form. Protobuf encodings of one message type
//! concatenate into their merge, so a writer emits the bundle without items, then each item as
//! an `EvidenceBundle` holding only that item; a reader takes one top-level field at a time and
//! refuses anything a canonical encoder would not have written.

use std::io::{BufRead, Write};

use hotline_protocol::bundle::MAX_BUNDLE_LEN;
use hotline_protocol::wire;
use prost::Message;

/// Largest item (an envelope of at most 1 MiB with its receipts) a reader accepts: the most a
/// node can put in one answer (SPEC.md §15.4).
pub const MAX_ITEM_LEN: usize = 16 * 1024 * 1024;

/// Why a file is not a readable evidence file (steps 1 of SPEC.md §15.7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// Not a protobuf encoding: truncated, or another kind of file.
    Undecodable,
    /// Decodes, but not as a canonical encoder writes it: altered after export.
    NotCanonical,
    /// A field larger than any part of an evidence file can be.
    TooLarge(usize),
    /// The file could not be read.
    Io(String),
}

/// One top-level field of an evidence file.
#[derive(Debug, PartialEq, Eq)]
pub enum Field {
    /// 1: the format version.
    Version(u64),
    /// 2: the exporter's claimed time.
    CreatedMs(u64),
    /// 3: the exporter's PeerBundle bytes.
    Exporter(Vec<u8>),
    /// 4: one peer's PeerBundle bytes.
    PeerBundle(Vec<u8>),
    /// 5: one `EvidenceItem`, canonical.
    Item(wire::EvidenceItem),
    /// 6: one `KeyRevocation`'s bytes (SPEC.md §4.6).
    Revocation(Vec<u8>),
}

/// Reads the fields of an evidence file in order.
pub struct Reader<R> {
    r: R,
    last: u64,
}

impl<R: BufRead> Reader<R> {
    /// A reader over `r` (buffer it: fields are read a byte at a time where they start).
    pub fn new(r: R) -> Self {
        Reader { r, last: 0 }
    }

    fn byte(&mut self) -> Result<Option<u8>, FileError> {
        let buf = self
            .r
            .fill_buf()
            .map_err(|e| FileError::Io(e.to_string()))?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.r.consume(1);
        Ok(Some(b))
    }

    /// A varint in its shortest form; `None` at the end of the file before its first byte.
    fn varint(&mut self) -> Result<Option<u64>, FileError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(b) = self.byte()? else {
                return if i == 0 {
                    Ok(None)
                } else {
                    Err(FileError::Undecodable)
                };
            };
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(FileError::Undecodable); // more than 64 bits
            }
            value |= part << (7 * i);
            if b & 0x80 == 0 {
                // Shortest form: no trailing zero group (except the single byte 0).
                if i > 0 && b == 0 {
                    return Err(FileError::NotCanonical);
                }
                return Ok(Some(value));
            }
        }
        Err(FileError::Undecodable)
    }

    fn bytes(&mut self, max: usize) -> Result<Vec<u8>, FileError> {
        let len = self.varint()?.ok_or(FileError::Undecodable)?;
        let len = usize::try_from(len).map_err(|_| FileError::TooLarge(usize::MAX))?;
        if len > max {
            return Err(FileError::TooLarge(len));
        }
        let mut out = vec![0u8; len];
        std::io::Read::read_exact(&mut self.r, &mut out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                FileError::Undecodable
            } else {
                FileError::Io(e.to_string())
            }
        })?;
        Ok(out)
    }

    /// The next field, `None` at the end of the file.
    pub fn next_field(&mut self) -> Result<Option<Field>, FileError> {
        let Some(key) = self.varint()? else {
            return Ok(None);
        };
        let (number, wire_type) = (key >> 3, key & 7);
        let expected = match number {
            1 | 2 => 0,
            3..=6 => 2,
            // An unknown field: a decoder would skip it, a canonical encoder never writes it.
            _ if matches!(wire_type, 0 | 1 | 2 | 5) => return Err(FileError::NotCanonical),
            _ => return Err(FileError::Undecodable),
        };
        if wire_type != expected {
            return Err(FileError::Undecodable);
        }
        // Ascending field numbers; only 4, 5 and 6 repeat.
        if number < self.last || (number == self.last && number < 4) {
            return Err(FileError::NotCanonical);
        }
        self.last = number;
        let field = match number {
            1 | 2 => {
                let v = self.varint()?.ok_or(FileError::Undecodable)?;
                if v == 0 {
                    return Err(FileError::NotCanonical); // a default is never written
                }
                if number == 1 {
                    Field::Version(v)
                } else {
                    Field::CreatedMs(v)
                }
            }
            3 => {
                let b = self.bytes(MAX_BUNDLE_LEN)?;
                if b.is_empty() {
                    return Err(FileError::NotCanonical);
                }
                Field::Exporter(b)
            }
            4 => Field::PeerBundle(self.bytes(MAX_BUNDLE_LEN)?),
            6 => Field::Revocation(self.bytes(hotline_protocol::revocation::MAX_REVOCATION_LEN)?),
            _ => {
                let b = self.bytes(MAX_ITEM_LEN)?;
                let item =
                    wire::EvidenceItem::decode(b.as_slice()).map_err(|_| FileError::Undecodable)?;
                if item.encode_to_vec() != b {
                    return Err(FileError::NotCanonical);
                }
                Field::Item(item)
            }
        };
        Ok(Some(field))
    }
}

/// Writes an evidence file: the bundle's fields before its items, then items one at a time,
/// then the revocations.
pub struct Writer<W> {
    w: W,
    written: u64,
    revocations: Vec<bytes::Bytes>,
}

impl<W: Write> Writer<W> {
    /// Writes `header` (an `EvidenceBundle` whose items are ignored) to `w`; its revocations
    /// are written by [`Writer::finish`], after the items.
    pub fn start(mut w: W, header: &wire::EvidenceBundle) -> std::io::Result<Self> {
        let head = wire::EvidenceBundle {
            items: Vec::new(),
            revocations: Vec::new(),
            ..header.clone()
        }
        .encode_to_vec();
        w.write_all(&head)?;
        Ok(Writer {
            w,
            written: head.len() as u64,
            revocations: header.revocations.clone(),
        })
    }

    /// Appends one item.
    pub fn item(&mut self, item: wire::EvidenceItem) -> std::io::Result<()> {
        let one = wire::EvidenceBundle {
            items: vec![item],
            ..Default::default()
        }
        .encode_to_vec();
        self.w.write_all(&one)?;
        self.written += one.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes the revocations; returns the underlying writer (flush and sync it) and the
    /// bytes written in all.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        let tail = wire::EvidenceBundle {
            revocations: std::mem::take(&mut self.revocations),
            ..Default::default()
        }
        .encode_to_vec();
        self.w.write_all(&tail)?;
        self.written += tail.len() as u64;
        Ok((self.w, self.written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u8) -> wire::EvidenceItem {
        wire::EvidenceItem {
            envelope: vec![n; 40].into(),
            receipts: vec![vec![n + 1; 10].into()],
            incoming: n.is_multiple_of(2),
            removed: None,
        }
    }

    fn bundle(items: usize) -> wire::EvidenceBundle {
        wire::EvidenceBundle {
            version: 1,
            created_ms: 1_800_000_000_000,
            exporter_bundle: vec![7; 30].into(),
            peer_bundles: vec![vec![8; 20].into(), vec![9; 20].into()],
            items: (0..items).map(|n| item(n as u8)).collect(),
            revocations: Vec::new(),
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Field>, FileError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    /// What the writer writes item by item is byte for byte the one-piece canonical
    /// encoding, and the reader gives back every field.
    #[test]
    fn written_in_pieces_equals_the_canonical_encoding_and_reads_back() {
        let mut b = bundle(5);
        b.revocations = vec![vec![6; 100].into(), vec![7; 90].into()];
        let mut w = Writer::start(Vec::new(), &b).unwrap();
        for i in &b.items {
            w.item(i.clone()).unwrap();
        }
        let (bytes, written) = w.finish().unwrap();
        assert_eq!(written as usize, b.encoded_len());
        assert_eq!(bytes, b.encode_to_vec());
        let fields = read_all(&bytes).unwrap();
        assert_eq!(fields.len(), 2 + 1 + 2 + 5 + 2);
        assert_eq!(fields[0], Field::Version(1));
        assert_eq!(fields[9], Field::Item(item(4)));
        assert_eq!(fields[11], Field::Revocation(vec![7; 90]));
    }

    #[test]
    fn refuses_what_a_canonical_encoder_would_not_write() {
        let good = bundle(2).encode_to_vec();
        // Fields out of order: an item, then the version again.
        let mut swapped = wire::EvidenceBundle {
            items: vec![item(1)],
            ..Default::default()
        }
        .encode_to_vec();
        swapped.extend_from_slice(&good);
        assert_eq!(read_all(&swapped), Err(FileError::NotCanonical));
        // A default value written out.
        assert_eq!(read_all(&[0x08, 0x00]), Err(FileError::NotCanonical));
        // A varint with a trailing zero group (1 written in two bytes).
        assert_eq!(read_all(&[0x08, 0x81, 0x00]), Err(FileError::NotCanonical));
        // An unknown field.
        assert_eq!(read_all(&[0x38, 0x01]), Err(FileError::NotCanonical));
        // Truncated anywhere inside a field, and another kind of file.
        for n in [1, 5, good.len() - 1] {
            assert!(read_all(&good[..n]).is_err(), "truncated to {n}");
        }
        assert_eq!(read_all(b"%PDF-1.7"), Err(FileError::Undecodable));
        // A length over the cap is refused before anything is allocated.
        let mut huge = vec![0x2a];
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(read_all(&huge), Err(FileError::TooLarge(_))));
    }
}
