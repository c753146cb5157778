//! Canonical protobuf decoding (SPEC.md §5.3).
//!
//! Every signed, hashed or AEAD-bound protobuf message must be in canonical form, so that
//! two implementations can never disagree about what a signature covers. The check is simple
//! and strict: decode, re-encode, and require the exact same bytes.

use prost::Message;

/// Decodes `bytes` as `M` and requires that they are its canonical encoding.
pub(crate) fn decode<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    let msg = M::decode(bytes).ok()?;
    if msg.encoded_len() != bytes.len() {
        return None;
    }
    let mut again = Vec::with_capacity(bytes.len());
    msg.encode(&mut again).ok()?;
    (again == bytes).then_some(msg)
}
