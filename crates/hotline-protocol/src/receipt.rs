//! Signed receipts (SPEC.md §8).
//!
//! Nothing but a valid signed DELIVERED or ACKNOWLEDGED receipt counts as delivery. Receipts
//! name the envelope by the SHA-256 of its exact bytes, so a receipt is evidence, to anyone
//! holding the envelope and the receiver's bundle, that the receiver had exactly those bytes.

use core::fmt;

use bytes::Bytes;
use prost::Message;

use crate::canonical;
use crate::codes::RejectReason;
use crate::crypto::{self, Label, SIGNATURE_LEN};
use crate::envelope::{Envelope, MESSAGE_ID_LEN, MessageId};
use crate::identity::{IdentityKey, NodeId};
use crate::officer::{Binding, Credential};
use crate::time::UnixMillis;
use crate::wire;

/// Largest encoded receipt.
pub const MAX_RECEIPT_LEN: usize = 16 * 1024;
/// Longest REJECTED detail text, in bytes.
pub const MAX_DETAIL_LEN: usize = 256;

/// What a receipt says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    /// The receiver stored the envelope durably.
    Delivered,
    /// A named duty officer of the receiver accepted the message.
    Acknowledged {
        /// The officer's credential, issued by the receiver.
        officer: Credential,
        /// When the officer acknowledged.
        time: UnixMillis,
        /// The officer's note.
        note: String,
        /// What the officer's signature binds: version 2 also this credential (SPEC.md §8.3).
        binding: Binding,
    },
    /// The receiver refused the envelope.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// Explanation for people.
        detail: String,
    },
}

impl ReceiptKind {
    /// DELIVERED, ACKNOWLEDGED or REJECTED.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiptKind::Delivered => "DELIVERED",
            ReceiptKind::Acknowledged { .. } => "ACKNOWLEDGED",
            ReceiptKind::Rejected { .. } => "REJECTED",
        }
    }

    /// Whether an envelope answered with this kind makes its sequence number count as
    /// received (SPEC.md §10.2): a delivery receipt, or REJECTED for a reason of §7.6 steps
    /// 7-14. Steps 1-6 fail before the sequence number is authenticated.
    pub fn counts_as_received(&self) -> bool {
        match self {
            ReceiptKind::Delivered | ReceiptKind::Acknowledged { .. } => true,
            ReceiptKind::Rejected { reason, .. } => !matches!(
                reason,
                RejectReason::Malformed
                    | RejectReason::UnsupportedVersion
                    | RejectReason::UnknownSender
                    | RejectReason::WrongRecipient
                    | RejectReason::BadSignature
            ),
        }
    }

    /// Whether this kind counts as delivery.
    pub fn is_delivery(&self) -> bool {
        !matches!(self, ReceiptKind::Rejected { .. })
    }
}

/// A receipt whose signature and fields were verified.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    message_id: MessageId,
    envelope_sha256: [u8; 32],
    sender: Bytes,
    receiver: NodeId,
    time: UnixMillis,
    sequence: u64,
    kind: ReceiptKind,
    bytes: Bytes,
    sha256: [u8; 32],
}

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Too large, or not a canonical Receipt with a canonical body: the frame is garbage.
    #[error("receipt does not decode: {0}")]
    Undecodable(&'static str),
    /// Decodes, but fields are inconsistent with the kind or out of range.
    #[error("malformed receipt: {0}")]
    Malformed(&'static str),
    /// Signed by someone other than the expected receiver, or the signature is invalid.
    #[error("receipt signature does not verify")]
    BadSignature,
    /// The officer's credential or acknowledgement signature does not verify.
    #[error("officer acknowledgement does not verify: {0}")]
    BadOfficer(&'static str),
}

/// The fields a receipt copies from the envelope it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Message id.
    pub message_id: MessageId,
    /// SHA-256 of the exact envelope bytes.
    pub envelope_sha256: [u8; 32],
    /// The envelope's sender bytes, as found in the header.
    pub sender: Bytes,
    /// The envelope's sequence number, 0 if unknown.
    pub sequence: u64,
}

impl From<&Envelope> for Subject {
    fn from(e: &Envelope) -> Self {
        Subject {
            message_id: *e.message_id(),
            envelope_sha256: *e.sha256(),
            sender: Bytes::copy_from_slice(e.header().sender.as_bytes()),
            sequence: e.header().sequence,
        }
    }
}

impl ReceiptError {
    /// The stream code a node answers a refused receipt with (SPEC.md §8.4).
    pub fn code(&self) -> crate::codes::CloseCode {
        match self {
            ReceiptError::Undecodable(_) => crate::codes::CloseCode::MalformedFrame,
            _ => crate::codes::CloseCode::BadReceipt,
        }
    }
}

impl Receipt {
    /// Makes and signs a receipt as `receiver`.
    ///
    /// For ACKNOWLEDGED, `ack` must be the officer's signed acknowledgement of this envelope.
    pub fn sign(
        receiver: &IdentityKey,
        subject: &Subject,
        kind: ReceiptBuild<'_>,
        now: UnixMillis,
    ) -> Result<Self, ReceiptError> {
        let mut body = wire::ReceiptBody {
            version: crate::PROTOCOL_VERSION,
            message_id: Bytes::copy_from_slice(&subject.message_id),
            envelope_sha256: Bytes::copy_from_slice(&subject.envelope_sha256),
            sender: subject.sender.clone(),
            receiver: Bytes::copy_from_slice(receiver.id().as_bytes()),
            time_ms: now,
            sequence: subject.sequence,
            ..Default::default()
        };
        match kind {
            ReceiptBuild::Delivered => body.kind = wire::ReceiptKind::Delivered as i32,
            ReceiptBuild::Rejected(reason, detail) => {
                body.kind = wire::ReceiptKind::Rejected as i32;
                body.reason = reason.code();
                body.detail = truncate(detail, MAX_DETAIL_LEN).to_owned();
            }
            ReceiptBuild::Acknowledged(ack) => {
                body.kind = wire::ReceiptKind::Acknowledged as i32;
                body.ack = Some(ack.clone());
            }
        }
        let body = body.encode_to_vec();
        let signature = receiver.sign(Label::Receipt, &[&body]);
        let bytes = wire::Receipt {
            body: body.into(),
            signature: Bytes::copy_from_slice(&signature),
        }
        .encode_to_vec();
        // We just made the signature: check everything but it (an officer's acknowledgement is
        // still verified, so the node never signs over an invalid one).
        Self::decode(&bytes, &receiver.id(), false)
    }

    /// Verifies encoded receipt bytes signed by `receiver` (SPEC.md §8.4 steps 1–5).
    /// Matching it to an envelope is [`Receipt::answers`].
    pub fn verify(bytes: &[u8], receiver: &NodeId) -> Result<Self, ReceiptError> {
        Self::decode(bytes, receiver, true)
    }

    fn decode(
        bytes: &[u8],
        receiver: &NodeId,
        check_signature: bool,
    ) -> Result<Self, ReceiptError> {
        use ReceiptError::Malformed as M;
        use ReceiptError::Undecodable as U;
        if bytes.len() > MAX_RECEIPT_LEN {
            return Err(U("larger than 16 KiB"));
        }
        let outer: wire::Receipt = canonical::decode(bytes).ok_or(U("receipt not canonical"))?;
        let body: wire::ReceiptBody =
            canonical::decode(&outer.body).ok_or(U("body not canonical"))?;
        if body.version != crate::PROTOCOL_VERSION {
            return Err(M("version is not 1"));
        }
        let message_id: MessageId = body
            .message_id
            .as_ref()
            .try_into()
            .map_err(|_| M("message_id must be 16 bytes"))?;
        let envelope_sha256: [u8; 32] = body
            .envelope_sha256
            .as_ref()
            .try_into()
            .map_err(|_| M("envelope_sha256 must be 32 bytes"))?;
        if outer.signature.len() != SIGNATURE_LEN {
            return Err(M("signature must be 64 bytes"));
        }
        if body.receiver.as_ref() != receiver.as_bytes()
            || (check_signature
                && !receiver.verify(Label::Receipt, &[&outer.body], &outer.signature))
        {
            return Err(ReceiptError::BadSignature);
        }
        let kind = match wire::ReceiptKind::try_from(body.kind) {
            Ok(wire::ReceiptKind::Delivered) => {
                if body.reason != 0 || !body.detail.is_empty() || body.ack.is_some() {
                    return Err(M("DELIVERED carries a reason or an acknowledgement"));
                }
                ReceiptKind::Delivered
            }
            Ok(wire::ReceiptKind::Rejected) => {
                let reason =
                    RejectReason::from_code(body.reason).ok_or(M("unknown reject reason"))?;
                if body.ack.is_some() || body.detail.len() > MAX_DETAIL_LEN {
                    return Err(M("REJECTED carries an acknowledgement or a long detail"));
                }
                ReceiptKind::Rejected {
                    reason,
                    detail: body.detail,
                }
            }
            Ok(wire::ReceiptKind::Acknowledged) => {
                if body.reason != 0 || !body.detail.is_empty() {
                    return Err(M("ACKNOWLEDGED carries a reason"));
                }
                let ack = body.ack.ok_or(M("ACKNOWLEDGED without acknowledgement"))?;
                let (officer, binding) = check_ack(&ack, receiver, &message_id, &envelope_sha256)?;
                ReceiptKind::Acknowledged {
                    officer,
                    time: ack.time_ms,
                    note: ack.note,
                    binding,
                }
            }
            _ => return Err(M("unknown receipt kind")),
        };
        Ok(Receipt {
            message_id,
            envelope_sha256,
            sender: body.sender,
            receiver: *receiver,
            time: body.time_ms,
            sequence: body.sequence,
            kind,
            bytes: Bytes::copy_from_slice(bytes),
            sha256: crypto::sha256(bytes),
        })
    }

    /// Whether this receipt answers `envelope`: same message id, same envelope bytes, naming
    /// its sender and sequence, and signed by its recipient. A REJECTED receipt may also come from a node
    /// the envelope was not addressed to (WRONG_RECIPIENT): the caller has already checked
    /// that the signer is the peer it sent the envelope to.
    pub fn answers(&self, envelope: &Envelope) -> bool {
        self.message_id == *envelope.message_id()
            && self.envelope_sha256 == *envelope.sha256()
            && self.sender.as_ref() == envelope.header().sender.as_bytes()
            && self.sequence == envelope.header().sequence
            && (self.receiver == envelope.header().recipient || !self.kind.is_delivery())
    }

    /// The message id.
    pub fn message_id(&self) -> &MessageId {
        &self.message_id
    }
    /// SHA-256 of the envelope it names.
    pub fn envelope_sha256(&self) -> &[u8; 32] {
        &self.envelope_sha256
    }
    /// The signer.
    pub fn receiver(&self) -> NodeId {
        self.receiver
    }
    /// The envelope sender bytes it names.
    pub fn sender(&self) -> &Bytes {
        &self.sender
    }
    /// Receiver's clock at signing.
    pub fn time(&self) -> UnixMillis {
        self.time
    }
    /// The sequence number it names.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
    /// What it says.
    pub fn kind(&self) -> &ReceiptKind {
        &self.kind
    }
    /// The exact encoded receipt.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// SHA-256 of the exact receipt bytes (what ReceiptStored names).
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }
}

/// The kind-specific input to [`Receipt::sign`].
#[derive(Debug, Clone, Copy)]
pub enum ReceiptBuild<'a> {
    /// DELIVERED.
    Delivered,
    /// ACKNOWLEDGED with the officer's signed acknowledgement.
    Acknowledged(&'a wire::OfficerAck),
    /// REJECTED with a reason and a short detail.
    Rejected(RejectReason, &'a str),
}

fn check_ack(
    ack: &wire::OfficerAck,
    receiver: &NodeId,
    message_id: &[u8; MESSAGE_ID_LEN],
    envelope_sha256: &[u8; 32],
) -> Result<(Credential, Binding), ReceiptError> {
    let cred = ack
        .credential
        .as_ref()
        .ok_or(ReceiptError::BadOfficer("no credential"))?;
    let officer = Credential::verify(cred, receiver)
        .map_err(|_| ReceiptError::BadOfficer("credential not issued by the receiver"))?;
    officer
        .check_officer_at(ack.time_ms)
        .map_err(|_| ReceiptError::BadOfficer("not an officer at that time"))?;
    if ack.note.len() > crate::officer::MAX_NOTE_LEN {
        return Err(ReceiptError::Malformed("note longer than 1024 bytes"));
    }
    let binding = officer
        .verify_ack_binding(
            message_id,
            envelope_sha256,
            ack.time_ms,
            &ack.note,
            &ack.signature,
        )
        .ok_or(ReceiptError::BadOfficer("signature does not verify"))?;
    Ok((officer, binding))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Receipt({} for {} by {})",
            self.kind.as_str(),
            crypto::hexs(&self.message_id),
            self.receiver
        )
    }
}

/// Encodes the ReceiptStored answer to an asynchronous receipt.
pub fn stored_ack(receipt_sha256: &[u8; 32]) -> Vec<u8> {
    wire::ReceiptStored {
        receipt_sha256: Bytes::copy_from_slice(receipt_sha256),
    }
    .encode_to_vec()
}

/// Parses a ReceiptStored payload into the receipt digest it names.
pub fn parse_stored_ack(bytes: &[u8]) -> Option<[u8; 32]> {
    let m: wire::ReceiptStored = canonical::decode(bytes)?;
    m.receipt_sha256.as_ref().try_into().ok()
}
