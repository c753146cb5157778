//! The store thread: the daemon's only path to the database. Work runs one item after another
//! on a dedicated thread, so async tasks never block on fsync.
//!
//! **Group commit.** The per-message writes (submit, attach a sealed envelope, accept an
//! arrival, record a receipt, confirm a receipt, audit) are typed operations. The thread takes
//! every operation already queued (up to [`MAX_GROUP`]) and writes each kind as one batch, all
//! in one transaction ([`Store::group`]), so a burst of N messages costs one fsync instead of
//! several per message. Replies are sent only after the group committed: nothing is reported
//! accepted or delivered before it is durable, and if the commit fails every caller of the
//! group gets the error. If a batch fails, its items are retried one by one, so one bad item
//! cannot fail its neighbours. Closures ([`StoreHandle::call`]) are barriers: operations
//! queued before one are committed before it runs.

use std::sync::mpsc;

use bytes::Bytes;
use hotline_protocol::envelope::MessageId;
use tokio::sync::oneshot;

use crate::store::{
    AcceptOutcome, Arrival, AuditEvent, ReceiptOutcome, ReceiptRecord, Store, Submission,
    SubmitOutcome,
};

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;
type Reply<T> = oneshot::Sender<crate::store::Result<T>>;

/// Most operations written in one group.
pub const MAX_GROUP: usize = 1024;

/// How long a group of audit rows alone waits for other writes to share its commit. Audit
/// rows follow the write they record (already committed) and nobody waits for them, so at low
/// load they join the next message's transaction instead of costing an fsync of their own.
/// A closure (a read) arriving meanwhile commits them first.
pub const AUDIT_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// A sealed envelope for a submitted message: id, bytes, SHA-256.
pub type Attachment = (MessageId, Bytes, [u8; 32]);

enum Op {
    Submit(Submission, Reply<SubmitOutcome>),
    Attach(Attachment, Reply<()>),
    Accept(Box<Arrival>, Reply<AcceptOutcome>),
    Receipt(ReceiptRecord, Reply<ReceiptOutcome>),
    Confirm([u8; 32], Reply<()>),
    Audit(AuditEvent, Reply<()>),
}

enum Msg {
    Job(Job),
    /// A read that needs only committed rows: it does not wait for the queued group.
    Read(Job),
    Op(Op),
    Stop,
}

/// A handle to the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

/// Operations gathered for one group, per kind, in arrival order.
#[derive(Default)]
struct Group {
    submit: Vec<(Submission, Reply<SubmitOutcome>)>,
    attach: Vec<(Attachment, Reply<()>)>,
    accept: Vec<(Box<Arrival>, Reply<AcceptOutcome>)>,
    receipt: Vec<(ReceiptRecord, Reply<ReceiptOutcome>)>,
    confirm: Vec<([u8; 32], Reply<()>)>,
    audit: Vec<(AuditEvent, Reply<()>)>,
}

impl Group {
    /// Operations held.
    fn len(&self) -> usize {
        self.submit.len()
            + self.attach.len()
            + self.accept.len()
            + self.receipt.len()
            + self.confirm.len()
            + self.audit.len()
    }

    /// Whether the group holds audit rows and nothing else.
    fn only_audit(&self) -> bool {
        !self.audit.is_empty() && self.len() == self.audit.len()
    }

    fn push(&mut self, op: Op) {
        match op {
            Op::Submit(s, r) => self.submit.push((s, r)),
            Op::Attach(a, r) => self.attach.push((a, r)),
            Op::Accept(a, r) => self.accept.push((a, r)),
            Op::Receipt(x, r) => self.receipt.push((x, r)),
            Op::Confirm(x, r) => self.confirm.push((x, r)),
            Op::Audit(x, r) => self.audit.push((x, r)),
        }
    }

    /// Writes every kind as one batch, all in one transaction, then answers the callers.
    fn commit(&mut self, store: &mut dyn Store) {
        if self.len() == 0 {
            return;
        }
        let mut submit = std::mem::take(&mut self.submit);
        let mut attach = std::mem::take(&mut self.attach);
        let mut accept: Vec<(Arrival, Reply<AcceptOutcome>)> = std::mem::take(&mut self.accept)
            .into_iter()
            .map(|(a, r)| (*a, r))
            .collect();
        let mut receipt = std::mem::take(&mut self.receipt);
        let mut confirm = std::mem::take(&mut self.confirm);
        let mut audit = std::mem::take(&mut self.audit);
        let mut answers: Vec<Answer> = Vec::new();
        let committed = store.group(&mut |s: &mut dyn Store| {
            batch(s, std::mem::take(&mut submit), &mut answers, |s, b| {
                s.submit(b).and_then(|seqs| exact(seqs, b.len()))
            });
            batch(s, std::mem::take(&mut attach), &mut answers, |s, b| {
                s.attach_envelopes(b).map(|()| vec![(); b.len()])
            });
            batch(s, std::mem::take(&mut accept), &mut answers, |s, b| {
                s.accept(b).and_then(|o| exact(o, b.len()))
            });
            batch(s, std::mem::take(&mut receipt), &mut answers, |s, b| {
                s.record_receipts(b).and_then(|o| exact(o, b.len()))
            });
            batch(s, std::mem::take(&mut confirm), &mut answers, |s, b| {
                for sha in b {
                    s.confirm_receipt(sha)?;
                }
                Ok(vec![(); b.len()])
            });
            batch(s, std::mem::take(&mut audit), &mut answers, |s, b| {
                s.audit(b).map(|()| vec![(); b.len()])
            });
        });
        let failed = committed.err();
        if let Some(e) = &failed {
            tracing::error!(
                "a group of {} store writes failed to commit: {e}",
                answers.len()
            );
        }
        for answer in answers {
            answer(failed.clone());
        }
    }
}

/// Sends one caller its outcome once the group's commit is known: its own result if the
/// group committed, the commit's error if not.
type Answer = Box<dyn FnOnce(Option<crate::store::StoreError>)>;

fn answer<T: Send + 'static>(reply: Reply<T>, result: crate::store::Result<T>) -> Answer {
    Box::new(move |failed| {
        let _ = reply.send(match failed {
            None => result,
            Some(e) => Err(e),
        });
    })
}

/// One result per item, or a store error (a caller bug in the store, never expected).
fn exact<T>(v: Vec<T>, n: usize) -> crate::store::Result<Vec<T>> {
    if v.len() == n {
        Ok(v)
    } else {
        Err(crate::store::StoreError::Database(format!(
            "the store answered {} results for a batch of {n}",
            v.len()
        )))
    }
}

/// Runs `f` over all items at once; if that fails, over each item alone, so every caller gets
/// its own outcome (queued in `answers` until the group's commit).
fn batch<I, T: Send + 'static>(
    store: &mut dyn Store,
    items: Vec<(I, Reply<T>)>,
    answers: &mut Vec<Answer>,
    f: impl Fn(&mut dyn Store, &[I]) -> crate::store::Result<Vec<T>>,
) {
    if items.is_empty() {
        return;
    }
    let (inputs, replies): (Vec<I>, Vec<Reply<T>>) = items.into_iter().unzip();
    match f(store, &inputs) {
        Ok(outs) => {
            for (reply, out) in replies.into_iter().zip(outs) {
                answers.push(answer(reply, Ok(out)));
            }
        }
        Err(e) if inputs.len() == 1 => {
            for reply in replies {
                answers.push(answer(reply, Err(e.clone())));
            }
        }
        Err(_) => {
            for (input, reply) in inputs.iter().zip(replies) {
                let one = f(store, std::slice::from_ref(input))
                    .and_then(|mut v| v.pop().ok_or_else(missing));
                answers.push(answer(reply, one));
            }
        }
    }
}

fn missing() -> crate::store::StoreError {
    crate::store::StoreError::Database("the store answered no result".into())
}

impl StoreHandle {
    /// Moves `store` onto its own thread.
    pub fn start(
        mut store: Box<dyn Store>,
    ) -> std::io::Result<(StoreHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let join = std::thread::Builder::new()
            .name("hotline-store".into())
            .spawn(move || {
                let mut group = Group::default();
                'outer: while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    let linger_until = std::time::Instant::now() + AUDIT_LINGER;
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Op(op) => group.push(op),
                            Msg::Job(job) => {
                                group.commit(store.as_mut());
                                job(store.as_mut());
                            }
                            Msg::Read(job) => job(store.as_mut()),
                            Msg::Stop => {
                                group.commit(store.as_mut());
                                break 'outer;
                            }
                        }
                        if group.len() < MAX_GROUP {
                            next = rx.try_recv().ok();
                            if next.is_none() && group.only_audit() {
                                let left = linger_until
                                    .saturating_duration_since(std::time::Instant::now());
                                next = rx.recv_timeout(left).ok();
                            }
                        }
                    }
                    group.commit(store.as_mut());
                }
                group.commit(store.as_mut());
            })?;
        Ok((StoreHandle { tx }, join))
    }

    /// Stops the store thread after the work queued before this call; later calls get `None`.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// Runs `f` against the store and returns its result; `None` if the store thread is gone.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(move |s: &mut dyn Store| {
                let _ = tx.send(f(s));
            })))
            .ok()?;
        rx.await.ok()
    }

    /// Runs the read `f` against what is committed now, ahead of the writes queued for the
    /// next group commit (which it does not see, and does not force out early: a per-request
    /// check must not cost a commit). Only for reads of rows the grouped writes never touch;
    /// `f` must not write.
    pub async fn read_committed<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Read(Box::new(move |s: &mut dyn Store| {
                let _ = tx.send(f(s));
            })))
            .ok()?;
        rx.await.ok()
    }

    async fn op<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Option<crate::store::Result<T>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Op(make(tx))).ok()?;
        rx.await.ok()
    }

    /// Stores a new outgoing message (group-committed): its sequence number, or why not.
    pub async fn submit(&self, s: Submission) -> Option<crate::store::Result<SubmitOutcome>> {
        self.op(|r| Op::Submit(s, r)).await
    }

    /// Stores the sealed envelope of a submitted message (group-committed).
    pub async fn attach(&self, a: Attachment) -> Option<crate::store::Result<()>> {
        self.op(|r| Op::Attach(a, r)).await
    }

    /// Stores an arrival with its DELIVERED receipt (group-committed).
    pub async fn accept(&self, a: Arrival) -> Option<crate::store::Result<AcceptOutcome>> {
        self.op(|r| Op::Accept(Box::new(a), r)).await
    }

    /// Stores a receipt from the peer (group-committed): what became of it.
    pub async fn record_receipt(
        &self,
        x: ReceiptRecord,
    ) -> Option<crate::store::Result<ReceiptOutcome>> {
        self.op(|r| Op::Receipt(x, r)).await
    }

    /// Marks an outgoing receipt as stored by the peer (group-committed).
    pub async fn confirm_receipt(&self, sha: [u8; 32]) -> Option<crate::store::Result<()>> {
        self.op(|r| Op::Confirm(sha, r)).await
    }

    /// Appends to the audit trail (group-committed).
    pub async fn audit(&self, e: AuditEvent) -> Option<crate::store::Result<()>> {
        self.op(|r| Op::Audit(e, r)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use hotline_protocol::content::Precedence;

    fn node(n: u8) -> hotline_protocol::NodeId {
        hotline_protocol::identity::IdentityKey::from_seed(&[n; 32])
            .expect("a valid seed")
            .id()
    }

    fn submission(id: u8, peer: u8) -> Submission {
        Submission {
            message_id: [id; 16],
            peer: node(peer),
            precedence: Precedence::Routine,
            tlp: "green".into(),
            created_ms: 1,
            content: Bytes::from_static(b"content"),
            subject: "s".into(),
            officer: "o".into(),
        }
    }

    /// A store thread over a fresh in-memory database, and a runtime to await it on.
    fn started() -> (
        StoreHandle,
        std::thread::JoinHandle<()>,
        tokio::runtime::Runtime,
    ) {
        let store = SqliteStore::open_in_memory().expect("store");
        let (h, join) = StoreHandle::start(Box::new(store)).expect("thread");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        (h, join, rt)
    }

    fn event(kind: &str) -> AuditEvent {
        AuditEvent {
            time_ms: 1,
            kind: kind.into(),
            peer: None,
            message_id: None,
            detail: String::new(),
        }
    }

    /// The kinds of the audit rows a read returned.
    fn kinds(r: Option<crate::store::Result<Vec<AuditEvent>>>) -> Vec<String> {
        r.expect("thread")
            .expect("read")
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// Audit rows alone still commit (after the linger), and a read queued behind them sees
    /// them at once.
    #[test]
    fn lingering_audit_rows_commit_and_a_read_sees_them() {
        let (h, join, rt) = started();
        rt.block_on(async {
            h.audit(event("alone"))
                .await
                .expect("thread")
                .expect("stored");
            let audit = h.audit(event("then read"));
            let read = h.call(|s| s.recent_audit(10));
            let (a, r) = tokio::join!(audit, read);
            a.expect("thread").expect("stored");
            let kinds = kinds(r);
            assert!(kinds.contains(&"alone".to_string()), "{kinds:?}");
            assert!(kinds.contains(&"then read".to_string()), "{kinds:?}");
        });
        h.stop();
        join.join().expect("store thread ends");
    }

    /// A committed-state read runs ahead of the queued writes without committing them early,
    /// and sees what was committed before.
    #[test]
    fn a_committed_read_does_not_wait_for_queued_writes() {
        let (h, join, rt) = started();
        rt.block_on(async {
            h.audit(event("committed"))
                .await
                .expect("thread")
                .expect("stored");
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let held = h.call(move |_| {
                let _ = release_rx.recv();
            });
            let queued = h.audit(event("queued"));
            let read = h.read_committed(|s| s.recent_audit(10));
            let release = async {
                tokio::task::yield_now().await;
                let _ = release_tx.send(());
            };
            let (_, q, r, ()) = tokio::join!(held, queued, read, release);
            q.expect("thread").expect("stored");
            let seen = kinds(r);
            assert!(seen.contains(&"committed".to_string()), "{seen:?}");
            assert!(!seen.contains(&"queued".to_string()), "{seen:?}");
            // The queued write still committed (after its linger).
            let after = kinds(h.call(|s| s.recent_audit(10)).await);
            assert!(after.contains(&"queued".to_string()), "{after:?}");
        });
        h.stop();
        join.join().expect("store thread ends");
    }

    /// Operations queued together commit as one group; a failing item (an envelope for a
    /// message that does not exist) gets its own error and does not fail its neighbours; a
    /// repeated submission gets its first sequence back; a closure sees everything queued
    /// before it.
    #[test]
    fn a_group_isolates_a_failing_item_and_closures_are_barriers() {
        let (h, join, rt) = started();
        rt.block_on(async {
            // Hold the thread so that the next operations queue up behind it.
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let held = h.call(move |_| {
                let _ = release_rx.recv();
            });
            let ops = async {
                let a = h.submit(submission(1, 7));
                let again = h.submit(submission(1, 7));
                let bad = h.attach(([9; 16], bytes::Bytes::from_static(b"x"), [0; 32]));
                let b = h.submit(submission(2, 7));
                let count = h.call(|s| s.last_sequence(&node(7)));
                tokio::join!(a, again, bad, b, count)
            };
            let release = async {
                tokio::task::yield_now().await;
                let _ = release_tx.send(());
            };
            let (_, (a, again, bad, b, count), ()) = tokio::join!(held, ops, release);
            assert_eq!(
                a.expect("thread").expect("stored"),
                SubmitOutcome::Stored(1)
            );
            assert_eq!(
                again.expect("thread").expect("answered"),
                SubmitOutcome::Repeated(1),
                "the same message again gets its first answer"
            );
            assert!(
                bad.expect("thread").is_err(),
                "no such message to attach to"
            );
            assert_eq!(
                b.expect("thread").expect("stored"),
                SubmitOutcome::Stored(2)
            );
            assert_eq!(count.expect("thread").expect("read"), 2);
        });
        h.stop();
        join.join().expect("store thread ends");
    }
}
