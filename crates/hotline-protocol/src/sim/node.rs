//! One simulated node: a session plus the storage, crypto and receipts a node driver adds.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::TestRng;
use crate::codes::{CloseCode, RejectReason};
use crate::content::{Draft, OpenedContent, Precedence, Tlp};
use crate::envelope::{Envelope, MessageId, SealParams};
use crate::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use crate::keyring::{KeyChange, KeyPolicy, KeyRing};
use crate::officer::OfficerKey;
use crate::receipt::{Receipt, ReceiptBuild, ReceiptKind, Subject};
use crate::session::{Event, Monotonic, Session};
use crate::time::UnixMillis;

/// A message this node accepted into its inbox.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The envelope.
    pub envelope: Envelope,
    /// What it said.
    pub content: OpenedContent,
    /// The DELIVERED receipt sent.
    pub receipt: Receipt,
}

/// One simulated node: a session plus the storage and crypto a node driver adds.
pub struct SimNode {
    /// Identity.
    pub identity: Arc<IdentityKey>,
    /// Encryption keys held.
    pub keys: Vec<EncryptionKeypair>,
    /// A duty officer of this node.
    pub officer: OfficerKey,
    /// The link state machine.
    pub session: Session,
    /// The peer's identity.
    pub peer: NodeId,
    /// The peer's encryption key certificates.
    pub peer_keys: Vec<EncryptionKey>,
    /// Revocations the peer sent (SPEC.md §4.6), distinct.
    pub peer_revocations: Vec<crate::revocation::Revocation>,
    /// The TLS key this node presents (its SPKI digest).
    pub tls_spki: [u8; 32],
    /// A TLS key announced in a bundle and the bundle's SHA-256, until the peer accepts it.
    pub next_tls: Option<([u8; 32], [u8; 32])>,
    /// `created_ms` of the last bundle this node made.
    pub own_bundle_created: UnixMillis,
    /// The TLS keys accepted for the peer.
    pub peer_pins: Vec<[u8; 32]>,
    /// The newest bundle the peer sent, if any.
    pub peer_bundle: Option<crate::bundle::PeerBundle>,
    /// Accepted messages, by id.
    pub inbox: BTreeMap<MessageId, Accepted>,
    /// Every acceptance, in order (a duplicate would show twice).
    pub accept_log: Vec<MessageId>,
    /// Every envelope sent, by id.
    pub outbox: BTreeMap<MessageId, Envelope>,
    /// Verified receipts for our envelopes: the latest of each kind.
    pub receipts: BTreeMap<MessageId, Vec<Receipt>>,
    /// Asynchronous receipts the peer confirmed storing.
    pub stored_confirmed: Vec<[u8; 32]>,
    /// Every event seen, for assertions.
    pub events: Vec<Event>,
    /// Next sequence number to assign.
    pub next_sequence: u64,
    /// How far this node's wall clock is off the simulated time, in ms (negative: behind).
    /// Its monotonic clock is the simulated time itself: stepping this moves only what the
    /// node signs and reads as the date.
    pub wall_offset: i64,
}

impl core::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SimNode({})", self.identity.id())
    }
}

impl SimNode {
    /// The node's monotonic clock at simulated time `now`.
    pub fn mono(now: UnixMillis) -> Monotonic {
        Monotonic::from_millis(now)
    }

    /// The node's wall clock at simulated time `now`.
    pub fn wall(&self, now: UnixMillis) -> UnixMillis {
        now.saturating_add_signed(self.wall_offset)
    }

    /// Tells the session both clocks at simulated time `now` (as a driver does before each
    /// input).
    pub fn tick(&mut self, now: UnixMillis) {
        let wall = self.wall(now);
        self.session.set_wall_clock(Self::mono(now), wall);
    }

    /// Seals a message to the peer, puts it in the outbox and queues it.
    pub fn send(
        &mut self,
        now: UnixMillis,
        rng: &mut TestRng,
        subject: &str,
        precedence: Precedence,
    ) -> MessageId {
        let seq = self.next_sequence;
        self.next_sequence += 1;
        self.send_with_sequence(now, rng, subject, precedence, seq)
    }

    /// Like [`SimNode::send`] with an explicit sequence number (to simulate a lost one).
    pub fn send_with_sequence(
        &mut self,
        now: UnixMillis,
        rng: &mut TestRng,
        subject: &str,
        precedence: Precedence,
        sequence: u64,
    ) -> MessageId {
        let envelope = self.seal(self.wall(now), rng, subject, precedence, sequence);
        let id = *envelope.message_id();
        self.outbox.insert(id, envelope.clone());
        self.tick(now);
        self.session.send_envelope(Self::mono(now), envelope);
        id
    }

    /// Seals without sending, at wall time `now`.
    pub fn seal(
        &self,
        now: UnixMillis,
        rng: &mut TestRng,
        subject: &str,
        precedence: Precedence,
        sequence: u64,
    ) -> Envelope {
        let message_id = rng.id16();
        let draft = Draft {
            subject: subject.into(),
            text: format!("body of {subject}"),
            ..Default::default()
        };
        // Both sides speak version 2: the officer signature binds the marking too (§7.5).
        let content = draft
            .sign_marked(
                &message_id,
                &self.peer,
                &self.officer,
                now,
                precedence,
                Tlp::Amber,
            )
            .expect("officer valid");
        let key = EncryptionKey::select(&self.peer_keys, now).expect("peer key valid");
        Envelope::seal(
            &self.identity,
            &SealParams {
                recipient: self.peer,
                recipient_key: key,
                message_id,
                sequence,
                created: now,
                precedence,
                tlp: Tlp::Amber,
            },
            &content,
            rng,
        )
        .expect("seal")
    }

    /// The officer acknowledges an accepted message: an ACKNOWLEDGED receipt goes back.
    pub fn acknowledge(&mut self, now: UnixMillis, id: &MessageId, note: &str) -> Receipt {
        let wall = self.wall(now);
        let acc = self.inbox.get(id).expect("accepted");
        let ack = self
            .officer
            .acknowledge(id, acc.envelope.sha256(), wall, note)
            .expect("officer");
        let r = Receipt::sign(
            &self.identity,
            &Subject::from(&acc.envelope),
            ReceiptBuild::Acknowledged(&ack),
            wall,
        )
        .expect("sign");
        self.tick(now);
        self.session.send_receipt(Self::mono(now), r.clone());
        r
    }

    /// Whether every outbox message has a verified delivery receipt.
    pub fn all_delivered(&self) -> bool {
        self.outbox.keys().all(|id| {
            self.receipts
                .get(id)
                .is_some_and(|rs| rs.iter().any(|r| r.kind().is_delivery()))
        })
    }

    fn reject(
        &self,
        subject: &Subject,
        reason: RejectReason,
        detail: &str,
        now: UnixMillis,
    ) -> Receipt {
        Receipt::sign(
            &self.identity,
            subject,
            ReceiptBuild::Rejected(reason, detail),
            now,
        )
        .expect("sign")
    }

    /// Takes the peer's announced keys: they join the candidates, and keys the peer no longer
    /// announces are dropped once expired.
    fn learn_peer_keys(&mut self, keys: &[EncryptionKey]) {
        for k in keys {
            if !self.peer_keys.contains(k) {
                self.peer_keys.push(k.clone());
            }
        }
        let newest_start = keys
            .iter()
            .map(EncryptionKey::not_before)
            .max()
            .unwrap_or(0);
        self.peer_keys
            .retain(|k| keys.contains(k) || k.not_after() >= newest_start);
    }

    /// Runs the key ring (SPEC.md §4.3.4) at simulated time `at`: makes and destroys keys as
    /// `policy` says and announces the change to the session, as `hotlined`'s key task does.
    pub fn maintain_keys(
        &mut self,
        at: UnixMillis,
        policy: &KeyPolicy,
        rng: &mut TestRng,
    ) -> Vec<KeyChange> {
        let now = self.wall(at);
        let mut ring = KeyRing::new(core::mem::take(&mut self.keys));
        let changes = ring.maintain(&self.identity, now, policy, rng);
        let announced = ring.announced(now);
        self.keys = ring.into_keys();
        if !changes.is_empty() {
            let _ = self.session.update_keys(Self::mono(at), announced);
        }
        changes
    }

    /// What `hotlined` does with each event, done inline, at simulated time `at`.
    pub(super) fn handle_event(&mut self, at: UnixMillis, ev: Event) {
        let (now, mono) = (self.wall(at), Self::mono(at));
        match &ev {
            Event::Envelope { stream, envelope } => {
                let id = *envelope.message_id();
                let receipt = if let Some(prev) = self.inbox.get(&id) {
                    if prev.envelope.sha256() == envelope.sha256() {
                        prev.receipt.clone()
                    } else {
                        self.reject(
                            &Subject::from(envelope),
                            RejectReason::Conflict,
                            "id reused",
                            now,
                        )
                    }
                } else {
                    match envelope.open_checked(
                        &self.identity.id(),
                        &self.peer,
                        &self.keys,
                        now,
                        &self.peer_revocations,
                    ) {
                        Ok(content) => {
                            let r = Receipt::sign(
                                &self.identity,
                                &Subject::from(envelope),
                                ReceiptBuild::Delivered,
                                now,
                            )
                            .expect("sign");
                            self.inbox.insert(
                                id,
                                Accepted {
                                    envelope: envelope.clone(),
                                    content,
                                    receipt: r.clone(),
                                },
                            );
                            self.accept_log.push(id);
                            r
                        }
                        Err(rej) => {
                            self.reject(&Subject::from(envelope), rej.reason, rej.detail, now)
                        }
                    }
                };
                self.session.respond(mono, *stream, &receipt);
            }
            Event::MalformedEnvelope {
                stream,
                subject,
                detail,
            } => {
                let r = self.reject(subject, RejectReason::Malformed, detail, now);
                self.session.respond(mono, *stream, &r);
            }
            Event::Receipt { envelope, receipt } => {
                let ok = match Receipt::verify(receipt, &self.peer) {
                    Ok(r) if r.answers(envelope) => {
                        self.receipts.entry(*r.message_id()).or_default().push(r);
                        true
                    }
                    _ => false,
                };
                self.session
                    .receipt_verified(mono, envelope.message_id(), ok);
            }
            Event::AsyncReceipt { stream, receipt } => match Receipt::verify(receipt, &self.peer) {
                Ok(r) => match self.outbox.get(r.message_id()) {
                    Some(e) if r.answers(e) => {
                        let sha = *r.sha256();
                        self.receipts.entry(*r.message_id()).or_default().push(r);
                        self.session.respond_stored(*stream, &sha);
                    }
                    _ => self.session.refuse(*stream, CloseCode::UnknownMessage),
                },
                Err(e) => self.session.refuse(*stream, e.code()),
            },
            Event::ReceiptStored { receipt_sha256 } => self.stored_confirmed.push(*receipt_sha256),
            // What the peer announces replaces what we knew (SPEC.md §4.3.3): its Hello, then
            // its KeyUpdate frames. Keys from before stay candidates until they expire.
            Event::LinkUp(h) => self.learn_peer_keys(&h.encryption_keys),
            Event::PeerKeys(keys) => self.learn_peer_keys(keys),
            Event::PeerBundle(b) => {
                self.take_peer_bundle(at, b);
                self.learn_peer_keys(b.encryption_keys());
            }
            Event::BundleAccepted(sha) => self.bundle_taken(sha),
            Event::PeerRevocations(revs) => {
                for r in revs {
                    if !self.peer_revocations.contains(r) {
                        self.peer_revocations.push(r.clone());
                    }
                }
            }
            _ => {}
        }
        self.events.push(ev);
    }
}

/// Returns every receipt kind name for a message at `node`, for assertions.
pub fn receipt_kinds(node: &SimNode, id: &MessageId) -> Vec<&'static str> {
    node.receipts
        .get(id)
        .map(|rs| rs.iter().map(|r| r.kind().as_str()).collect())
        .unwrap_or_default()
}

/// Whether `kind` is REJECTED with `reason`.
pub fn is_rejected_with(kind: &ReceiptKind, reason: RejectReason) -> bool {
    matches!(kind, ReceiptKind::Rejected { reason: r, .. } if *r == reason)
}
