//! An officer withdraws a message that never left (SPEC.md §15.5.10): the link forgets it if it
//! was never written to a connection, then the store marks it cancelled, with the audit row.
//!
//! "Never left" is known for certain only by the process that stored the message: its link
//! task knows whether the envelope was ever written to a stream. A message stored by an
//! earlier run of `hotlined` may have been written before that process stopped, so it is never
//! cancelled.

use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::NodeId;
use hotline_protocol::session::Withdrawal;
use tokio::sync::oneshot;

use super::Shared;
use super::link::LinkMsg;
use crate::store::{CancelOutcome, OutState};
use hotline_transport::now_ms;

/// A cancelled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    /// Its recipient.
    pub peer: NodeId,
    /// Its sequence number: the peer will never see it (SPEC.md §10.3).
    pub sequence: u64,
    /// The officer who cancelled it.
    pub by: String,
    /// When.
    pub at_ms: u64,
}

/// Why a message was not cancelled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CancelError {
    /// No message of this node has the id.
    #[error("no message of this node has id {0}")]
    NotFound(String),
    /// The id is a received message.
    #[error(
        "message {0} was received from the peer; only a message this node sends can be cancelled"
    )]
    Received(String),
    /// The peer answered already.
    #[error("message {0} is {1} already: too late to cancel it")]
    Final(String, &'static str),
    /// It was written to a connection: it may have reached the peer.
    #[error(
        "message {0} was already written to the link, so it may have reached the peer; it \
         cannot be cancelled (send a correction instead)"
    )]
    MayHaveLeft(String),
    /// Stored by an earlier run of hotlined, which may have sent it.
    #[error(
        "message {0} was stored before hotlined last restarted and may have been sent then; \
         it cannot be cancelled (send a correction instead)"
    )]
    EarlierRun(String),
    /// Storage failed: nothing changed.
    #[error("not cancelled, storage failed: {0}; the message is still queued")]
    Store(String),
}

impl CancelError {
    /// The operator API error code for this refusal.
    pub fn code(&self) -> hotline_protocol::wire::OperatorErrorCode {
        use hotline_protocol::wire::OperatorErrorCode as C;
        match self {
            CancelError::NotFound(_) => C::NotFound,
            CancelError::Store(_) => C::Unavailable,
            CancelError::Received(_)
            | CancelError::Final(..)
            | CancelError::MayHaveLeft(_)
            | CancelError::EarlierRun(_) => C::BadRequest,
        }
    }
}

fn state_name(s: OutState) -> &'static str {
    match s {
        OutState::Unsealed | OutState::Pending => "pending",
        OutState::Delivered => "delivered",
        OutState::Acknowledged => "acknowledged",
        OutState::Rejected => "rejected",
        OutState::Cancelled => "cancelled",
    }
}

impl Shared {
    /// Cancels one of this node's messages that was never sent, for `officer`.
    pub async fn cancel(&self, id: MessageId, officer: String) -> Result<Cancelled, CancelError> {
        let hex = data_encoding::HEXLOWER.encode(&id);
        let checked = self
            .store
            .call(move |s| s.cancel(&id, None))
            .await
            .ok_or_else(|| CancelError::Store("store stopped".into()))?
            .map_err(|e| CancelError::Store(e.to_string()))?;
        let peer = match checked {
            CancelOutcome::Cancellable { peer, .. } => peer,
            // Cancelled before: the first answer again.
            CancelOutcome::Cancelled {
                peer,
                sequence,
                by,
                at_ms,
            } => {
                return Ok(Cancelled {
                    peer,
                    sequence,
                    by,
                    at_ms,
                });
            }
            other => return Err(refusal(other, hex)),
        };
        // The link forgets the envelope if it never wrote it, and from now on drops it if the
        // backlog or the submit path hands it over again.
        let link = self.link(&peer);
        if let Some(tx) = &link {
            let (reply, answer) = oneshot::channel();
            if tx.send(LinkMsg::Cancel(id, reply)).is_ok()
                && let Ok(Withdrawal::MayHaveLeft) = answer.await
            {
                return Err(CancelError::MayHaveLeft(hex));
            }
            // No answer: the link task is gone (peer removed, shutdown); nothing sends it.
        }
        let now = now_ms();
        let done = self
            .store
            .call(move |s| s.cancel(&id, Some((&officer, now))))
            .await;
        let undo = || {
            if let Some(tx) = &link {
                let _ = tx.send(LinkMsg::Uncancel(id));
            }
        };
        match done {
            Some(Ok(CancelOutcome::Cancelled {
                peer,
                sequence,
                by,
                at_ms,
            })) => {
                tracing::info!(
                    peer = %self.alias(&peer),
                    id = %hex,
                    sequence,
                    officer = %by,
                    "message cancelled before it was sent"
                );
                self.event(
                    "cancelled",
                    Some(peer),
                    Some(id),
                    format!("sequence {sequence}, by {by}"),
                );
                Ok(Cancelled {
                    peer,
                    sequence,
                    by,
                    at_ms,
                })
            }
            Some(Ok(other)) => {
                undo();
                Err(refusal(other, hex))
            }
            Some(Err(e)) => {
                undo();
                Err(CancelError::Store(e.to_string()))
            }
            None => {
                undo();
                Err(CancelError::Store("store stopped".into()))
            }
        }
    }
}

fn refusal(o: CancelOutcome, hex: String) -> CancelError {
    match o {
        CancelOutcome::NotFound => CancelError::NotFound(hex),
        CancelOutcome::Received => CancelError::Received(hex),
        CancelOutcome::Final(s) => CancelError::Final(hex, state_name(s)),
        CancelOutcome::EarlierRun => CancelError::EarlierRun(hex),
        // Not refusals; not reached.
        CancelOutcome::Cancelled { .. } | CancelOutcome::Cancellable { .. } => {
            CancelError::Store("cancellation state changed meanwhile; try again".into())
        }
    }
}
