//! Durable store throughput: what one batch (one transaction, one WAL fsync) costs at batch
//! sizes 1 to 256, i.e. how much group commit buys.
//!
//! Runs on a temp-file database in the daemon's configuration (WAL, `synchronous = FULL`), so
//! the figures include the fsync and depend on the disk (FIELD-NOTES.md: 0.14 ms p50 here).
//! Criterion reports elements per second; an element is one message (or one receipt).
//! Release mode only: `cargo bench -p hotline-node --bench store`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::store::{Arrival, ReceiptRecord, Store, Submission};
use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
use hotline_protocol::crypto::sha256;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::IdentityKey;
use tempfile::TempDir;

const T0: u64 = 1_800_000_000_000;
/// Content (officer-signed plaintext) length: 1 KiB of text, like the protocol benches.
const CONTENT_LEN: usize = 1024;
/// Envelope length: the content sealed plus header and signature.
const ENVELOPE_LEN: usize = 1300;
/// Receipt length, roughly that of a signed DELIVERED receipt.
const RECEIPT_LEN: usize = 240;

struct Bench {
    _dir: TempDir,
    store: SqliteStore,
    peer: NodeId,
    next: u64,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("node.db")).expect("open store");
        let peer = IdentityKey::from_seed(&[7; 32]).expect("seed").id();
        Bench {
            _dir: dir,
            store,
            peer,
            next: 0,
        }
    }

    fn id(&mut self) -> MessageId {
        self.next += 1;
        let mut id = [0x42; 16];
        id[..8].copy_from_slice(&self.next.to_be_bytes());
        id
    }

    fn submissions(&mut self, n: usize) -> Vec<Submission> {
        (0..n)
            .map(|_| Submission {
                message_id: self.id(),
                peer: self.peer,
                precedence: Precedence::Routine,
                tlp: "amber".into(),
                created_ms: T0,
                content: Bytes::from(vec![b'c'; CONTENT_LEN]),
                subject: "Indicators for campaign X".into(),
                officer: "duty officer".into(),
            })
            .collect()
    }

    fn receipt(&self, message_id: MessageId, kind: &str) -> ReceiptRecord {
        let mut bytes = vec![b'r'; RECEIPT_LEN];
        bytes[..16].copy_from_slice(&message_id);
        let bytes = Bytes::from(bytes);
        ReceiptRecord {
            message_id,
            peer: self.peer,
            kind: kind.into(),
            sha256: sha256(&bytes),
            bytes,
            stored_ms: T0,
        }
    }

    fn envelope(message_id: &MessageId) -> (Bytes, [u8; 32]) {
        let mut bytes = vec![b'e'; ENVELOPE_LEN];
        bytes[..16].copy_from_slice(message_id);
        let bytes = Bytes::from(bytes);
        let sha = sha256(&bytes);
        (bytes, sha)
    }

    fn arrivals(&mut self, n: usize) -> Vec<Arrival> {
        (0..n)
            .map(|_| {
                let message_id = self.id();
                let (envelope, envelope_sha256) = Self::envelope(&message_id);
                Arrival {
                    message_id,
                    peer: self.peer,
                    sequence: self.next,
                    precedence: Precedence::Routine,
                    tlp: "amber".into(),
                    created_ms: T0,
                    received_ms: T0,
                    envelope,
                    envelope_sha256,
                    content: Bytes::from(vec![b'c'; CONTENT_LEN]),
                    subject: "Indicators for campaign X".into(),
                    officer: "their officer".into(),
                    receipt: self.receipt(message_id, "DELIVERED"),
                }
            })
            .collect()
    }

    /// Submits and seals `n` messages (untimed), returning receipts to record for them.
    fn sealed_with_receipts(&mut self, n: usize) -> Vec<ReceiptRecord> {
        let subs = self.submissions(n);
        self.store.submit(&subs).expect("submit");
        let envelopes: Vec<_> = subs
            .iter()
            .map(|s| {
                let (bytes, sha) = Self::envelope(&s.message_id);
                (s.message_id, bytes, sha)
            })
            .collect();
        self.store.attach_envelopes(&envelopes).expect("attach");
        subs.iter()
            .map(|s| self.receipt(s.message_id, "DELIVERED"))
            .collect()
    }
}

/// Runs `setup` untimed and `routine` timed, `iters` times, both on the same store (which
/// `iter_batched` cannot do: its two closures could not both borrow it).
fn timed<I>(
    iters: u64,
    bench: &mut Bench,
    setup: impl Fn(&mut Bench) -> I,
    routine: impl Fn(&mut Bench, I),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup(bench);
        let start = Instant::now();
        routine(bench, input);
        total += start.elapsed();
    }
    total
}

fn submit(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/submit");
    for n in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut bench = Bench::new();
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &mut bench,
                    |bench| bench.submissions(n),
                    |bench, batch| {
                        black_box(bench.store.submit(&batch).expect("submit"));
                    },
                )
            });
        });
    }
    g.finish();
}

/// An arriving envelope and its DELIVERED receipt, committed together.
fn accept(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/accept");
    for n in [1usize, 256] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut bench = Bench::new();
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &mut bench,
                    |bench| bench.arrivals(n),
                    |bench, batch| {
                        black_box(bench.store.accept(&batch).expect("accept"));
                    },
                )
            });
        });
    }
    g.finish();
}

/// Receipts from the peer for pending messages: store each and advance its state.
fn record_receipts(c: &mut Criterion) {
    let mut g = c.benchmark_group("store/record_receipts");
    for n in [1usize, 256] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut bench = Bench::new();
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &mut bench,
                    |bench| bench.sealed_with_receipts(n),
                    |bench, batch| {
                        bench.store.record_receipts(&batch).expect("record");
                    },
                )
            });
        });
    }
    g.finish();
}

criterion_group!(benches, submit, accept, record_receipts);
criterion_main!(benches);
