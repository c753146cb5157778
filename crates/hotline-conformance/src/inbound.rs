//! Streams the target opens to the runner: the runner reads the envelope on each far enough to
//! record its message id, then refuses the stream.
//!
//! The runner takes no messages. Refusing with INTERNAL_ERROR is the answer SPEC.md §7.6 gives
//! a receiver that cannot complete processing for a local reason: the target keeps its message
//! and sends it again later (§9.7), so nothing is lost at the target. The ids recorded here are
//! those of messages the target sent, which the `envelope-id-of-target-message` case sends back
//! to it (§10.5: one id space per node).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hotline_protocol::codes::CloseCode;
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::frame::{Decoder, Frame, FrameType, HEADER_LEN, StreamKind};
use hotline_protocol::identity::{EncryptionKeypair, KEY_ID_LEN, NodeId};
use hotline_transport::now_ms;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Most distinct envelopes recorded in one run; a target that sends more has the rest ignored
/// (the runner's memory stays bounded whatever the target sends).
pub const MAX_RECORDED: usize = 256;

/// Most bytes read from one stream the target opens: one Envelope frame of the largest size
/// SPEC.md allows (§5.2), with its header. [`Decoder`] also refuses a larger declared length
/// from the 5-byte header alone.
pub const MAX_READ: usize = HEADER_LEN + FrameType::Envelope.max_len();

/// An envelope the target sent the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Its message id.
    pub id: MessageId,
    /// SHA-256 of its exact bytes: a retransmission must carry the same (§9.7).
    pub sha256: [u8; 32],
    /// Its sequence number (target → runner).
    pub sequence: u64,
    /// The header's `recipient_key_id`: the runner's key the target sealed it to.
    pub recipient_key_id: [u8; KEY_ID_LEN],
    /// For an envelope sealed to a key a case gave [`FromTarget::open_with`]: whether it opened
    /// with that key (SPEC.md §7.6 steps 3–12, as the runner), or why not. `None` otherwise:
    /// the runner holds no other secret key.
    pub opened: Option<Result<(), String>>,
    /// How many times it arrived.
    pub arrivals: u32,
    /// When it last arrived.
    pub last: Instant,
}

/// The envelopes the target sent the runner in this run, distinct by id and bytes.
#[derive(Debug, Default)]
pub struct FromTarget {
    seen: Mutex<Vec<Seen>>,
    arrived: Notify,
    /// Key pairs of the runner's that cases announced to the target: envelopes sealed to one
    /// are opened as they are recorded.
    keys: Mutex<Vec<EncryptionKeypair>>,
}

impl FromTarget {
    /// Records `env` if it is an envelope from `target` to `runner`, as an arrival at `at`.
    /// Returns whether it was recorded.
    pub fn record(&self, env: &Envelope, target: &NodeId, runner: &NodeId, at: Instant) -> bool {
        let h = env.header();
        if h.sender != *target || h.recipient != *runner {
            return false;
        }
        let recorded = match self.seen.lock() {
            Ok(mut seen) => {
                if let Some(s) = seen
                    .iter_mut()
                    .find(|s| s.id == h.message_id && s.sha256 == *env.sha256())
                {
                    s.arrivals = s.arrivals.saturating_add(1);
                    s.last = at;
                    true
                } else if seen.len() < MAX_RECORDED {
                    seen.push(Seen {
                        id: h.message_id,
                        sha256: *env.sha256(),
                        sequence: h.sequence,
                        recipient_key_id: h.recipient_key_id,
                        opened: self.open(env, target, runner),
                        arrivals: 1,
                        last: at,
                    });
                    true
                } else {
                    false
                }
            }
            Err(_) => false,
        };
        if recorded {
            self.arrived.notify_waiters();
        }
        recorded
    }

    /// From now on, envelopes the target seals to `key` (a key of the runner's identity that a
    /// case announced) are opened as they arrive; [`Seen::opened`] says how that went.
    pub fn open_with(&self, key: EncryptionKeypair) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(key);
        }
    }

    fn open(&self, env: &Envelope, target: &NodeId, runner: &NodeId) -> Option<Result<(), String>> {
        let keys = self.keys.lock().ok()?;
        let id = env.header().recipient_key_id;
        keys.iter().any(|k| k.certificate.id() == id).then(|| {
            env.open(runner, target, &keys, now_ms())
                .map(|_| ())
                .map_err(|r| r.to_string())
        })
    }

    /// Everything recorded so far, in order of first arrival.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits up to `limit` for a recorded envelope matching `pred` (one recorded already
    /// counts); the first such.
    pub async fn wait(&self, limit: Duration, pred: impl Fn(&Seen) -> bool) -> Option<Seen> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the look, so an arrival in between is not missed.
            let notified = self.arrived.notified();
            if let Some(s) = self.seen().into_iter().find(|s| pred(s)) {
                return Some(s);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Serves the streams the target opens on `conn` until the connection ends: each is read
/// (for at most `step`) and refused with INTERNAL_ERROR; what it carried is recorded in
/// `from`. Reads run side by side and end with this task.
pub async fn refuse_streams(
    conn: quinn::Connection,
    from: std::sync::Arc<FromTarget>,
    target: NodeId,
    runner: NodeId,
    step: Duration,
) {
    let mut reads = JoinSet::new();
    loop {
        tokio::select! {
            accepted = conn.accept_bi() => {
                let Ok((send, recv)) = accepted else { break };
                reads.spawn(read_and_refuse(send, recv, from.clone(), target, runner, step));
            }
            Some(_) = reads.join_next(), if !reads.is_empty() => {}
        }
    }
}

async fn read_and_refuse(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    from: std::sync::Arc<FromTarget>,
    target: NodeId,
    runner: NodeId,
    step: Duration,
) {
    if let Ok(Some(f)) = tokio::time::timeout(step, first_frame(&mut recv)).await
        && f.ty == FrameType::Envelope
        && let Ok(env) = Envelope::parse(f.payload)
    {
        from.record(&env, &target, &runner, Instant::now());
    }
    let code = quinn::VarInt::from_u32(CloseCode::InternalError.code());
    let _ = send.reset(code);
    let _ = recv.stop(code);
}

/// The first frame on a message stream, or `None` if the stream ends first, carries a frame
/// error or more than [`MAX_READ`] bytes.
async fn first_frame(recv: &mut quinn::RecvStream) -> Option<Frame> {
    let mut d = Decoder::new(StreamKind::Message);
    let mut read = 0usize;
    loop {
        if let Some(f) = d.next_frame().ok()? {
            return Some(f);
        }
        if read >= MAX_READ {
            return None;
        }
        let chunk = recv.read_chunk(MAX_READ - read, true).await.ok()??;
        read += chunk.bytes.len();
        d.push(&chunk.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::rng;
    use hotline_protocol::content::{Draft, Precedence, Tlp};
    use hotline_protocol::envelope::SealParams;
    use hotline_protocol::identity::{EncryptionKeypair, IdentityKey};
    use hotline_protocol::officer::{OfficerKey, Role};
    use hotline_protocol::time::DAY;

    const NOW: u64 = 1_750_000_000_000;

    fn envelope(from: &IdentityKey, to: &IdentityKey, id: MessageId, seq: u64) -> Envelope {
        let key = EncryptionKeypair::generate(to, NOW - DAY, NOW + DAY, &mut rng());
        let officer =
            OfficerKey::generate(from, "o", Role::Officer, NOW - DAY, NOW + DAY, &mut rng())
                .expect("officer");
        let content = Draft {
            subject: "s".into(),
            text: "t".into(),
            ..Default::default()
        }
        .sign(&id, &to.id(), &officer, NOW)
        .expect("content");
        Envelope::seal(
            from,
            &SealParams {
                recipient: to.id(),
                recipient_key: &key.certificate,
                message_id: id,
                sequence: seq,
                created: NOW,
                precedence: Precedence::Routine,
                tlp: Tlp::Green,
            },
            &content,
            &mut rng(),
        )
        .expect("seal")
    }

    #[test]
    fn records_the_targets_envelopes_to_the_runner_once_per_id_and_bytes() {
        let (target, runner, other) = (
            IdentityKey::generate(&mut rng()),
            IdentityKey::generate(&mut rng()),
            IdentityKey::generate(&mut rng()),
        );
        let (t, r) = (target.id(), runner.id());
        let from = FromTarget::default();
        let t0 = Instant::now();
        let a = envelope(&target, &runner, [1; 16], 1);
        assert!(from.record(&a, &t, &r, t0));
        assert!(from.record(&a, &t, &r, t0 + Duration::from_secs(1)));
        let a2 = envelope(&target, &runner, [1; 16], 1);
        assert!(from.record(&a2, &t, &r, t0), "same id, other bytes");
        assert!(
            !from.record(&envelope(&other, &runner, [2; 16], 1), &t, &r, t0),
            "not from the target"
        );
        assert!(
            !from.record(&envelope(&target, &other, [3; 16], 1), &t, &r, t0),
            "not to the runner"
        );
        let seen = from.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (
                seen[0].id,
                seen[0].sha256,
                seen[0].arrivals,
                seen[0].sequence
            ),
            ([1; 16], *a.sha256(), 2, 1)
        );
        assert_eq!(seen[0].last, t0 + Duration::from_secs(1));
        assert_eq!(seen[1].sha256, *a2.sha256());
    }

    /// An envelope from `from` to `to`, sealed to `key` at `created`.
    fn sealed_to(
        from: &IdentityKey,
        to: &IdentityKey,
        key: &EncryptionKeypair,
        id: MessageId,
        created: u64,
    ) -> Envelope {
        let officer = OfficerKey::generate(
            from,
            "o",
            Role::Officer,
            created - DAY,
            created + DAY,
            &mut rng(),
        )
        .expect("officer");
        let content = Draft {
            subject: "s".into(),
            text: "t".into(),
            ..Default::default()
        }
        .sign(&id, &to.id(), &officer, created)
        .expect("content");
        Envelope::seal(
            from,
            &SealParams {
                recipient: to.id(),
                recipient_key: &key.certificate,
                message_id: id,
                sequence: 1,
                created,
                precedence: Precedence::Routine,
                tlp: Tlp::Green,
            },
            &content,
            &mut rng(),
        )
        .expect("seal")
    }

    #[test]
    fn opens_what_is_sealed_to_a_key_a_case_gave_it() {
        let (target, runner) = (
            IdentityKey::generate(&mut rng()),
            IdentityKey::generate(&mut rng()),
        );
        let (t, r) = (target.id(), runner.id());
        let now = now_ms();
        let given = EncryptionKeypair::generate(&runner, now - 60 * DAY, now + DAY, &mut rng());
        let other = EncryptionKeypair::generate(&runner, now - DAY, now + DAY, &mut rng());
        let (given_id, other_id) = (given.certificate.id(), other.certificate.id());
        let from = FromTarget::default();
        let before = sealed_to(&target, &runner, &given, [1; 16], now);
        assert!(from.record(&before, &t, &r, Instant::now()));
        let envelopes = [
            sealed_to(&target, &runner, &given, [2; 16], now),
            sealed_to(&target, &runner, &given, [3; 16], now - 40 * DAY),
            sealed_to(&target, &runner, &other, [4; 16], now),
        ];
        from.open_with(given);
        for env in &envelopes {
            assert!(from.record(env, &t, &r, Instant::now()));
        }
        let seen = from.seen();
        let got: Vec<_> = seen
            .iter()
            .map(|s| (s.recipient_key_id, s.opened.as_ref().map(|o| o.is_ok())))
            .collect();
        assert_eq!(
            got,
            vec![
                (given_id, None),
                (given_id, Some(true)),
                (given_id, Some(false)),
                (other_id, None),
            ],
            "before the key was given: not opened; then opened, or why not (too old); another \
             key: not opened"
        );
        assert!(
            matches!(&seen[2].opened, Some(Err(e)) if e.contains("30 days")),
            "{:?}",
            seen[2].opened
        );
    }

    #[test]
    fn keeps_at_most_max_recorded_envelopes() {
        let (target, runner) = (
            IdentityKey::generate(&mut rng()),
            IdentityKey::generate(&mut rng()),
        );
        let from = FromTarget::default();
        let now = Instant::now();
        for i in 0..=MAX_RECORDED {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let recorded = from.record(
                &envelope(&target, &runner, id, 1),
                &target.id(),
                &runner.id(),
                now,
            );
            assert_eq!(recorded, i < MAX_RECORDED, "envelope {i}");
        }
        assert_eq!(from.seen().len(), MAX_RECORDED);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn waits_for_an_arrival_within_its_limit() {
        let (target, runner) = (
            IdentityKey::generate(&mut rng()),
            IdentityKey::generate(&mut rng()),
        );
        let from = std::sync::Arc::new(FromTarget::default());
        assert_eq!(from.wait(Duration::from_millis(20), |_| true).await, None);
        let env = envelope(&target, &runner, [7; 16], 3);
        let f2 = from.clone();
        let (t, r) = (target.id(), runner.id());
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            f2.record(&env, &t, &r, Instant::now());
        });
        let got = from
            .wait(Duration::from_secs(10), |s| s.id == [7; 16])
            .await;
        assert_eq!(got.map(|s| s.sequence), Some(3));
        later.await.expect("task");
    }
}
