//! Load through the operator API: pre-signed Send requests, a window of messages in flight,
//! and the DELIVERED events that close each message's window slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_client::parse;
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::wire;
use tokio::sync::{Semaphore, mpsc};

use crate::Error;
use crate::setup::Operator;

/// One message, signed by the officer and ready to hand to Send.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Its id.
    pub id: [u8; 16],
    /// The Send request.
    pub request: wire::SendRequest,
}

/// Builds and signs `n` messages of `size` bytes of text from `op`'s officer to its peer,
/// on every core (the officer's signature is the client's work, done before any clock runs).
pub fn presign(op: &Operator, n: usize, size: usize) -> Result<Vec<Prepared>, Error> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n.max(1));
    let text = "x".repeat(size);
    let now = hotline_transport::now_ms();
    let chunk = n.div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Prepared>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let text = &text;
                s.spawn(move || {
                    let range = (t * chunk).min(n)..((t + 1) * chunk).min(n);
                    let mut out = Vec::with_capacity(range.len());
                    for i in range {
                        out.push(prepare(op, i, text, now)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error("a signing thread panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(n);
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn prepare(op: &Operator, i: usize, text: &str, now: u64) -> Result<Prepared, Error> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| Error(format!("no system randomness: {e}")))?;
    let draft = Draft {
        subject: format!("hotline-bench message {i}"),
        text: text.to_owned(),
        ..Default::default()
    };
    let content = draft
        .sign(&id, &op.peer, &op.cred.officer, now)
        .map_err(|e| Error(format!("cannot sign a message: {e}")))?;
    Ok(Prepared {
        id,
        request: wire::SendRequest {
            to: op.peer_alias.clone(),
            message_id: Bytes::copy_from_slice(&id),
            precedence: parse::precedence_wire(Precedence::Immediate),
            tlp: parse::tlp_wire(Tlp::Amber),
            content: Bytes::from(content.as_bytes().to_vec()),
        },
    })
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    issued: Option<Instant>,
    accepted: Option<Instant>,
    delivered: Option<Instant>,
    delivered_events: u32,
}

/// What one direction of a run measured.
#[derive(Debug)]
pub struct DirResult {
    /// `A→B` or `B→A`.
    pub label: &'static str,
    /// When the first Send was issued.
    pub first_send: Instant,
    /// When the last DELIVERED event arrived.
    pub last_receipt: Instant,
    /// Per message: Send accepted → DELIVERED event, ms.
    pub latency_ms: Vec<f64>,
    /// Per message: Send issued → Send accepted, ms.
    pub send_ms: Vec<f64>,
    /// Messages with exactly one DELIVERED event.
    pub delivered: usize,
    /// DELIVERED events for a message that already had one.
    pub duplicate_events: usize,
    /// DELIVERED events naming no message of this run.
    pub foreign_events: usize,
    /// DELIVERED events seen before the Send answer (latency counted as 0).
    pub receipt_before_accept: usize,
}

/// How long without progress before a run is declared stuck.
pub const STALL: Duration = Duration::from_secs(60);

type Slots = Arc<Mutex<Vec<Slot>>>;

fn lock(slots: &Slots) -> std::sync::MutexGuard<'_, Vec<Slot>> {
    slots.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Issues Send `i` on its own task; its answer time goes into `slots`, a failure to `fail`.
fn spawn_send(
    op: &Operator,
    msg: &Prepared,
    i: usize,
    slots: &Slots,
    accepted: &Arc<AtomicUsize>,
    fail: &mpsc::UnboundedSender<Error>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let (client, req, slots, accepted, fail) = (
        op.client.clone(),
        msg.request.clone(),
        slots.clone(),
        accepted.clone(),
        fail.clone(),
    );
    lock(&slots)[i].issued = Some(Instant::now());
    tokio::spawn(async move {
        match client.send(req).await {
            Ok(_) => {
                lock(&slots)[i].accepted = Some(Instant::now());
                accepted.fetch_add(1, Ordering::Release);
            }
            Err(f) => {
                let _ = fail.send(Error(format!("Send {i} refused: {}", f.message)));
            }
        }
        drop(permit);
    });
}

/// Sends every message of `msgs` through `op` with at most `inflight` messages between Send
/// and their DELIVERED event, and waits for every receipt. Fails if a Send is refused, the
/// node reports a rejection, events were dropped, or nothing is delivered for [`STALL`].
pub async fn drive(
    op: &Operator,
    label: &'static str,
    msgs: &[Prepared],
    inflight: usize,
) -> Result<DirResult, Error> {
    let n = msgs.len();
    let index: HashMap<[u8; 16], usize> = msgs.iter().enumerate().map(|(i, m)| (m.id, i)).collect();
    let slots: Slots = Arc::new(Mutex::new(vec![Slot::default(); n]));
    let accepted = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(Semaphore::new(inflight.max(1)));
    let (fail_tx, mut fail_rx) = mpsc::unbounded_channel();
    // The Watch stream is open before the first Send, so no DELIVERED event can be missed.
    let mut watch = op
        .client
        .watch()
        .await
        .map_err(|f| Error(format!("Watch: {}", f.message)))?;
    let first_send = Instant::now();
    let sender = async {
        for (i, m) in msgs.iter().enumerate() {
            match window.acquire().await {
                Ok(p) => p.forget(),
                Err(_) => break,
            }
            spawn_send(op, m, i, &slots, &accepted, &fail_tx, None);
        }
        std::future::pending::<()>().await;
    };
    let mut r = DirResult {
        label,
        first_send,
        last_receipt: first_send,
        latency_ms: Vec::with_capacity(n),
        send_ms: Vec::with_capacity(n),
        delivered: 0,
        duplicate_events: 0,
        foreign_events: 0,
        receipt_before_accept: 0,
    };
    let watcher = async {
        while r.delivered < n {
            let ev = tokio::select! {
                ev = tokio::time::timeout(STALL, watch.next()) => ev,
                Some(e) = fail_rx.recv() => return Err(e),
            };
            let ev = match ev {
                Err(_) => {
                    return Err(Error(format!(
                        "{label}: no DELIVERED receipt for {}s; {} of {n} delivered, link queue {}",
                        STALL.as_secs(),
                        r.delivered,
                        crate::setup::queue(op)
                            .await
                            .map_or_else(|e| e.0, |q| q.to_string())
                    )));
                }
                Ok(Err(f)) => return Err(Error(format!("{label}: Watch: {}", f.message))),
                Ok(Ok(None)) => return Err(Error(format!("{label}: the node ended Watch"))),
                Ok(Ok(Some(ev))) => ev,
            };
            let id: Option<usize> = <[u8; 16]>::try_from(ev.message_id.as_ref())
                .ok()
                .and_then(|id| index.get(&id).copied());
            match (ev.kind.as_str(), id) {
                ("delivered", None) => r.foreign_events += 1,
                ("delivered", Some(i)) => {
                    let now = Instant::now();
                    let mut s = lock(&slots);
                    s[i].delivered_events += 1;
                    if s[i].delivered_events == 1 {
                        s[i].delivered = Some(now);
                        r.delivered += 1;
                        r.last_receipt = now;
                        window.add_permits(1);
                    } else {
                        r.duplicate_events += 1;
                    }
                }
                ("lagged", _) => {
                    return Err(Error(format!(
                        "{label}: the node dropped Watch events ({}): receipts cannot be counted; \
                         its event buffer overflowed",
                        ev.detail
                    )));
                }
                ("rejected" | "cannot_seal", Some(i)) => {
                    return Err(Error(format!(
                        "{label}: message {i}: {} ({})",
                        ev.kind, ev.detail
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    };
    tokio::select! {
        res = watcher => res?,
        () = sender => {}
    }
    // The last Send answers may still be on their way to their tasks.
    let t0 = Instant::now();
    while accepted.load(Ordering::Acquire) < n {
        if let Ok(e) = fail_rx.try_recv() {
            return Err(e);
        }
        if t0.elapsed() > STALL {
            return Err(Error(format!(
                "{label}: delivered but {} Send answers missing",
                n - accepted.load(Ordering::Acquire)
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for s in lock(&slots).iter() {
        let (Some(issued), Some(accepted), Some(delivered)) = (s.issued, s.accepted, s.delivered)
        else {
            return Err(Error(format!("{label}: a message has no complete record")));
        };
        if delivered < accepted {
            r.receipt_before_accept += 1;
        }
        r.latency_ms
            .push(delivered.saturating_duration_since(accepted).as_secs_f64() * 1e3);
        r.send_ms
            .push(accepted.saturating_duration_since(issued).as_secs_f64() * 1e3);
    }
    Ok(r)
}

/// What queueing measured.
#[derive(Debug)]
pub struct QueueResult {
    /// From the first Send issued to the last answer.
    pub elapsed: Duration,
    /// Per message: Send issued → accepted, ms.
    pub send_ms: Vec<f64>,
}

/// Hands every message of `msgs` to `op`'s node with at most `inflight` Send requests
/// outstanding, as fast as the node answers; does not wait for receipts. `on_progress` is
/// called now and then with the number accepted so far.
pub async fn queue_all(
    op: &Operator,
    msgs: &[Prepared],
    inflight: usize,
    mut on_progress: impl FnMut(usize),
) -> Result<QueueResult, Error> {
    let n = msgs.len();
    let slots: Slots = Arc::new(Mutex::new(vec![Slot::default(); n]));
    let accepted = Arc::new(AtomicUsize::new(0));
    let window = Arc::new(Semaphore::new(inflight.max(1)));
    let (fail_tx, mut fail_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let mut last_report = t0;
    for (i, m) in msgs.iter().enumerate() {
        let permit = tokio::select! {
            p = window.clone().acquire_owned() => p.map_err(|_| Error("window closed".into()))?,
            Some(e) = fail_rx.recv() => return Err(e),
        };
        spawn_send(op, m, i, &slots, &accepted, &fail_tx, Some(permit));
        if last_report.elapsed() > Duration::from_millis(100) {
            last_report = Instant::now();
            on_progress(accepted.load(Ordering::Acquire));
        }
    }
    let mut last_progress = (Instant::now(), accepted.load(Ordering::Acquire));
    while accepted.load(Ordering::Acquire) < n {
        if let Ok(e) = fail_rx.try_recv() {
            return Err(e);
        }
        let now = accepted.load(Ordering::Acquire);
        if now != last_progress.1 {
            last_progress = (Instant::now(), now);
        } else if last_progress.0.elapsed() > STALL {
            return Err(Error(format!("{} Send answers missing", n - now)));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = t0.elapsed();
    on_progress(n);
    let send_ms = lock(&slots)
        .iter()
        .filter_map(|s| Some(s.accepted?.saturating_duration_since(s.issued?)))
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    Ok(QueueResult { elapsed, send_ms })
}

/// `min(n, k)` indices of `0..n`, evenly spaced, starting at 0: all of them if `n <= k`.
fn sample(n: usize, k: usize) -> impl Iterator<Item = usize> {
    let k = k.min(n);
    (0..k).map(move |i| i * n / k)
}

/// Checks with Show that the node holds exactly one DELIVERED receipt for each message (all
/// of them if there are at most `max_checked`, else an evenly spaced sample), each verifying
/// as signed by the peer (SPEC.md §8.4), and that the message's state is `delivered`.
/// Returns how many messages were checked.
pub async fn verify_receipts(
    op: &Operator,
    msgs: &[Prepared],
    inflight: usize,
    max_checked: usize,
) -> Result<usize, Error> {
    let picked: Vec<[u8; 16]> = sample(msgs.len(), max_checked)
        .map(|i| msgs[i].id)
        .collect();
    let window = Arc::new(Semaphore::new(inflight.max(1)));
    let (fail_tx, mut fail_rx) = mpsc::unbounded_channel::<Error>();
    let mut tasks = tokio::task::JoinSet::new();
    for id in &picked {
        let permit = window
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error("window closed".into()))?;
        let (client, fail, peer, id) = (op.client.clone(), fail_tx.clone(), op.peer, *id);
        tasks.spawn(async move {
            let shown = client
                .show(wire::ShowRequest {
                    message_id: Bytes::copy_from_slice(&id),
                })
                .await;
            let problem = match shown {
                Err(f) => Some(f.message),
                Ok(show) => {
                    let delivered = show
                        .receipts
                        .iter()
                        .filter(|r| {
                            Receipt::verify(r, &peer)
                                .is_ok_and(|r| matches!(r.kind(), ReceiptKind::Delivered))
                        })
                        .count();
                    let state = show.summary.map(|s| s.state).unwrap_or_default();
                    (delivered != 1 || state != "delivered").then(|| {
                        format!(
                            "{} DELIVERED receipts (state {state:?}, {} receipts in all)",
                            delivered,
                            show.receipts.len()
                        )
                    })
                }
            };
            if let Some(p) = problem {
                let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                let _ = fail.send(Error(format!("message {hex}: {p}")));
            }
            drop(permit);
        });
        if let Ok(e) = fail_rx.try_recv() {
            return Err(e);
        }
    }
    while tasks.join_next().await.is_some() {}
    if let Ok(e) = fail_rx.try_recv() {
        return Err(e);
    }
    Ok(picked.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receipt_sample_is_everything_up_to_its_size_then_evenly_spaced() {
        assert_eq!(sample(5, 10).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(sample(5, 5).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(sample(10, 4).collect::<Vec<_>>(), [0, 2, 5, 7]);
        let s: Vec<usize> = sample(20_001, 20_000).collect();
        assert_eq!(s.len(), 20_000);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[19_999] < 20_001);
        assert_eq!(sample(0, 10).count(), 0);
        assert_eq!(sample(10, 0).count(), 0);
    }
}
