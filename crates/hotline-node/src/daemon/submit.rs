//! The submit path: an officer's signed message checked, stored durably, sealed for the peer
//! and queued on its link; and why a submission is refused.

use bytes::Bytes;
use hotline_protocol::content::{OpenedContent, Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::{Envelope, MAX_CONTENT_LEN, MessageId, SealParams};
use hotline_protocol::identity::{EncryptionKey, NodeId};

use super::Shared;
use super::link::LinkMsg;
use super::metrics;
use crate::store::{Submission, SubmitOutcome};
use hotline_transport::material::Material;
use hotline_transport::now_ms;

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The recipient is not a pinned peer.
    #[error("unknown peer: {0}; `hotlined peer list` shows the pinned peers")]
    UnknownPeer(String),
    /// The content is not validly signed by an officer of this node.
    #[error("content refused: {0}")]
    Content(String),
    /// The peer has no encryption key valid now.
    #[error("the peer has no encryption key valid now; ask them for a new bundle")]
    NoPeerKey,
    /// The content is too large to be sealed into one envelope.
    #[error(
        "the signed content is {0} bytes; at most {max} fit in one envelope (shorten the text)",
        max = MAX_CONTENT_LEN
    )]
    TooLarge(usize),
    /// The message id is used by another message of this node (sent or received).
    #[error(
        "message id {0} is already used by another message of this node; send the message again \
         under a new id"
    )]
    IdInUse(String),
    /// Storage failed: the message was not accepted.
    #[error("not accepted, storage failed: {0}")]
    Store(String),
    /// Free disk space is below the floor (SPEC.md §13.3).
    #[error("not accepted: {0}")]
    LowDisk(String),
}

impl SubmitError {
    /// The operator API error code for this refusal.
    pub fn code(&self) -> hotline_protocol::wire::OperatorErrorCode {
        use hotline_protocol::wire::OperatorErrorCode as C;
        match self {
            SubmitError::UnknownPeer(_) => C::UnknownPeer,
            SubmitError::Content(_) => C::BadContent,
            SubmitError::NoPeerKey => C::BadRequest,
            SubmitError::TooLarge(_) => C::BadContent,
            SubmitError::IdInUse(_) => C::BadRequest,
            SubmitError::Store(_) | SubmitError::LowDisk(_) => C::Unavailable,
        }
    }
}

impl Shared {
    /// Accepts a message an officer signed: stores it durably (then it is accepted and its
    /// id may be shown), seals it and queues it for the peer.
    pub async fn submit(
        &self,
        to: NodeId,
        message_id: MessageId,
        precedence: Precedence,
        tlp: Tlp,
        content: SignedContent,
    ) -> Result<(MessageId, u64), SubmitError> {
        if self.link(&to).is_none() {
            return Err(SubmitError::UnknownPeer(to.to_string()));
        }
        let me = self.id;
        let bytes = Bytes::copy_from_slice(content.as_bytes());
        let opened = self
            .pool
            .run(move || {
                OpenedContent::parse(&bytes, &message_id, &me, &to, now_ms(), precedence, tlp)
            })
            .await
            .ok_or_else(|| SubmitError::Store("worker pool stopped".into()))?
            .map_err(|e| SubmitError::Content(e.to_string()))?;
        self.submit_opened(to, message_id, precedence, tlp, opened)
            .await
    }

    /// [`Shared::submit`] for content already checked with [`OpenedContent::parse`] against
    /// this message id, this node and `to` (the operator API checks it to compare the
    /// officer key with the caller's credential; checking it twice would cost one more strict
    /// signature verification per message).
    pub async fn submit_opened(
        &self,
        to: NodeId,
        message_id: MessageId,
        precedence: Precedence,
        tlp: Tlp,
        opened: OpenedContent,
    ) -> Result<(MessageId, u64), SubmitError> {
        let link = self
            .link(&to)
            .ok_or_else(|| SubmitError::UnknownPeer(to.to_string()))?;
        if self.guard.refusing() {
            return Err(SubmitError::LowDisk(self.guard.low_space_message()));
        }
        let now = now_ms();
        let bytes = opened.plaintext.clone();
        // Checked before anything is stored: an accepted message can always be sealed, so no
        // sequence number is used up by a message that can never be sent.
        if bytes.len() > MAX_CONTENT_LEN {
            return Err(SubmitError::TooLarge(bytes.len()));
        }
        let keys = self
            .peer_keys
            .lock()
            .map(|g| g.get(&to).cloned().unwrap_or_default())
            .unwrap_or_default();
        if EncryptionKey::select(&keys, now).is_none() {
            return Err(SubmitError::NoPeerKey);
        }
        let submission = Submission {
            message_id,
            peer: to,
            precedence,
            tlp: tlp.as_str().trim_start_matches("TLP:").to_ascii_lowercase(),
            created_ms: now,
            content: bytes,
            subject: opened.draft.subject.clone(),
            officer: opened.officer.name().to_owned(),
        };
        let s2 = submission.clone();
        let seq = match self.store.submit(s2).await {
            Some(Ok(SubmitOutcome::Stored(seq))) => seq,
            // The same message submitted again (a client that retried): the first answer. It
            // is sealed and queued already, or will be at restart.
            Some(Ok(SubmitOutcome::Repeated(seq))) => return Ok((message_id, seq)),
            Some(Ok(SubmitOutcome::IdInUse)) => {
                return Err(SubmitError::IdInUse(
                    data_encoding::HEXLOWER.encode(&message_id),
                ));
            }
            Some(Err(e)) => return Err(SubmitError::Store(e.to_string())),
            None => return Err(SubmitError::Store("store stopped".into())),
        };
        metrics::count(&self.metrics, "accepted", 1);
        // Durable from here on: seal and queue. A crash now is recovered at start-up.
        let material = self.env.material.clone();
        let sealed = self
            .pool
            .run(move || {
                seal(
                    &material,
                    &submission,
                    seq,
                    &keys,
                    &mut rand_core::UnwrapErr(getrandom::SysRng),
                )
            })
            .await
            .ok_or_else(|| SubmitError::Store("worker pool stopped".into()))?;
        match sealed {
            Ok(env) => {
                let att = (message_id, env.bytes().clone(), *env.sha256());
                if let Some(Ok(())) = self.store.attach(att).await {
                    let _ = link.send(LinkMsg::Send(Box::new(env)));
                } else {
                    tracing::error!(
                        "cannot store a sealed envelope; it will be sealed again at restart"
                    );
                }
            }
            Err(e) => {
                tracing::error!(
                    "cannot seal an accepted message: {e}; it is tried again at restart"
                );
                // SPEC.md §15.5.1: the node reports it (status and metrics count it too).
                self.event("cannot_seal", Some(to), Some(message_id), e);
            }
        }
        self.event(
            "submitted",
            Some(to),
            Some(message_id),
            format!("sequence {seq}"),
        );
        Ok((message_id, seq))
    }
}

pub(super) fn seal(
    material: &Material,
    s: &Submission,
    sequence: u64,
    peer_keys: &[EncryptionKey],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<Envelope, String> {
    let key = EncryptionKey::select(peer_keys, s.created_ms)
        .ok_or("the peer has no encryption key valid at creation time")?;
    let tlp: Tlp = s.tlp.parse().map_err(|e: &str| e.to_owned())?;
    Envelope::seal(
        &material.identity,
        &SealParams {
            recipient: s.peer,
            recipient_key: key,
            message_id: s.message_id,
            sequence,
            created: s.created_ms,
            precedence: s.precedence,
            tlp,
        },
        &SignedContent::from_bytes(s.content.to_vec()),
        rng,
    )
    .map_err(|e| e.to_string())
}
