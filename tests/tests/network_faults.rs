//! Two real nodes in one process whose every datagram passes through an impairment relay:
//! loss, delay with reordering, duplication and a partition, one after another on the same
//! pair. After each fault clears, every message must be delivered exactly once, in one
//! contiguous run of sequence numbers, with a DELIVERED receipt back at the sender.
//!
//! The relay seed is printed; set `HOTLINE_RELAY_SEED` to replay a run's decisions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotline_node::commands;
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::OutState;
use hotline_node::store::sqlite::SqliteStore;
use hotline_protocol::NodeId;
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_tests::relay::{Faults, Relay, Stats};
use hotline_transport::material::Material;
use hotline_transport::now_ms;

/// Messages each node sends the other per scenario.
const PER_SCENARIO: usize = 50;
/// How long a fault stays on after the messages are submitted, for traffic to meet it.
const HOLD: Duration = Duration::from_secs(8);
/// Bound on delivery once a fault clears (the redial backoff alone may reach 30 s).
const DELIVERY_BOUND: Duration = Duration::from_secs(90);
/// SPEC.md §11.3: a silent peer is down after 15 s; slack for the check interval.
const DOWN_BOUND: Duration = Duration::from_secs(25);
/// How long the partition lasts.
const PARTITION: Duration = Duration::from_secs(30);

fn free_udp_addr() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
}

fn seed() -> u64 {
    std::env::var("HOTLINE_RELAY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).expect("random");
            u64::from_le_bytes(b)
        })
}

/// One side of the pair.
struct Side {
    node: Node,
    officer: OfficerKey,
    /// The other side's identity and alias as pinned here.
    peer: NodeId,
    peer_alias: &'static str,
    /// Every message id this side submitted.
    sent: Vec<[u8; 16]>,
}

async fn start(dir: &Path) -> Node {
    let cfg = config::Config::load(dir).expect("cfg");
    let m = Material::load(dir).expect("material");
    let store = SqliteStore::open(&dir.join(config::DB_FILE)).expect("db");
    Node::start(cfg, m, Box::new(store), None)
        .await
        .expect("start")
}

fn officer(dir: &Path, name: &str) -> OfficerKey {
    let m = Material::load(dir).expect("material");
    let now = now_ms();
    OfficerKey::generate(
        &m.identity,
        name,
        Role::Officer,
        now - 1000,
        now + 3_600_000,
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
    .expect("officer")
}

fn rand_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random");
    b
}

impl Side {
    async fn send(&mut self, n: usize, label: &str) {
        for i in 0..n {
            let id = rand_id();
            let draft = Draft {
                subject: format!("{label} {i}"),
                text: "body".into(),
                ..Default::default()
            };
            let content = draft
                .sign(&id, &self.peer, &self.officer, now_ms())
                .expect("sign");
            let precedence = if i % 3 == 0 {
                Precedence::Flash
            } else {
                Precedence::Routine
            };
            let got = self
                .node
                .submit(self.peer, id, precedence, Tlp::Amber, content)
                .await
                .expect("accepted");
            assert_eq!(got, id);
            self.sent.push(id);
        }
    }

    /// How many of this side's messages carry a DELIVERED receipt.
    async fn delivered(&self) -> usize {
        let ids = self.sent.clone();
        self.node
            .with_store(move |s| {
                ids.iter()
                    .filter(|id| matches!(s.out_state(id), Ok(Some(OutState::Delivered))))
                    .count()
            })
            .await
            .expect("store")
    }
}

/// Exactly once: `to` holds each id `from` sent once, in one contiguous sequence range, and
/// `from` holds a DELIVERED receipt for each.
async fn assert_exactly_once(from: &Side, to: &Side, what: &str) {
    let n = from.sent.len() as u64;
    let sender_id = to.peer;
    let last = from
        .node
        .with_store({
            let p = from.peer;
            move |s| s.last_sequence(&p)
        })
        .await
        .expect("store")
        .expect("ok");
    assert_eq!(last, n, "{what}: sender's last sequence");
    let inbox = to
        .node
        .with_store(|s| s.inbox(1_000_000))
        .await
        .expect("store")
        .expect("ok");
    let mut seen: HashMap<[u8; 16], usize> = HashMap::new();
    for row in inbox.iter().filter(|r| r.peer == sender_id) {
        *seen.entry(row.message_id).or_default() += 1;
    }
    assert_eq!(
        seen.values().sum::<usize>() as u64,
        n,
        "{what}: inbox rows from the sender"
    );
    for id in &from.sent {
        assert_eq!(seen.get(id), Some(&1), "{what}: message {id:02x?} not once");
    }
    let ranges = to
        .node
        .with_store(move |s| s.received_sequences(&sender_id))
        .await
        .expect("store")
        .expect("ok");
    assert_eq!(ranges, vec![(1, n)], "{what}: received sequences");
    let ids = from.sent.clone();
    let states = from
        .node
        .with_store(move |s| {
            ids.iter()
                .map(|id| s.out_state(id).expect("ok"))
                .collect::<Vec<_>>()
        })
        .await
        .expect("store");
    assert!(
        states.iter().all(|s| *s == Some(OutState::Delivered)),
        "{what}: sender states {states:?}"
    );
}

/// Waits (bounded) until `cond` holds, polling; returns how long it took.
async fn wait_until<F, Fut>(bound: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if cond().await {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < bound, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn diff(after: Stats, before: Stats) -> Stats {
    Stats {
        received: after.received - before.received,
        sent: after.sent - before.sent,
        lost: after.lost - before.lost,
        partitioned: after.partitioned - before.partitioned,
        duplicated: after.duplicated - before.duplicated,
        delayed: after.delayed - before.delayed,
        strays: after.strays - before.strays,
    }
}

struct Pair {
    a: Side,
    b: Side,
    ab: Relay,
    ba: Relay,
}

impl Pair {
    fn set(&self, faults: Faults) {
        self.ab.set(faults);
        self.ba.set(faults);
    }

    async fn all_delivered(&self) -> bool {
        self.a.delivered().await == self.a.sent.len()
            && self.b.delivered().await == self.b.sent.len()
    }

    fn links_up(&self) -> bool {
        self.a.node.link_up(self.a.peer_alias) && self.b.node.link_up(self.b.peer_alias)
    }

    fn links_down(&self) -> bool {
        !self.a.node.link_up(self.a.peer_alias) && !self.b.node.link_up(self.b.peer_alias)
    }

    fn stats(&self) -> (Stats, Stats) {
        (self.ab.stats(), self.ba.stats())
    }

    /// Submits `PER_SCENARIO` each way under `faults`, holds the fault for `hold`, clears it,
    /// waits for every message, checks exactly-once and prints what happened.
    async fn scenario(&mut self, name: &str, faults: Faults, hold: Duration) {
        let before = self.stats();
        let t0 = Instant::now();
        self.set(faults);
        self.a.send(PER_SCENARIO, &format!("{name} A→B")).await;
        self.b.send(PER_SCENARIO, &format!("{name} B→A")).await;
        let held = Instant::now();
        while held.elapsed() < hold && !self.all_delivered().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let under_fault = (self.a.delivered().await, self.b.delivered().await);
        let fault_time = t0.elapsed();
        self.set(Faults::default());
        let this = &*self;
        let after_clear = wait_until(DELIVERY_BOUND, name, || this.all_delivered()).await;
        let (ab, ba) = self.stats();
        let (ab, ba) = (diff(ab, before.0), diff(ba, before.1));
        eprintln!(
            "[{name}] {faults:?}\n  delivered under fault: A→B {}/{}, B→A {}/{} after {fault_time:.2?}; \
             all delivered {after_clear:.2?} after the fault cleared ({:.2?} total)\n  \
             relay A→B: {ab:?}\n  relay B→A: {ba:?}",
            under_fault.0,
            self.a.sent.len(),
            under_fault.1,
            self.b.sent.len(),
            t0.elapsed(),
        );
        assert_exactly_once(&self.a, &self.b, &format!("{name} A→B")).await;
        assert_exactly_once(&self.b, &self.a, &format!("{name} B→A")).await;
    }
}

#[test]
fn delivers_exactly_once_through_loss_delay_duplication_and_a_partition() {
    let seed = seed();
    eprintln!("relay seed {seed} (replay with HOTLINE_RELAY_SEED={seed})");
    let tmp = tempfile::tempdir().expect("tmp");
    let (a_dir, b_dir): (PathBuf, PathBuf) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_addr, b_addr) = (free_udp_addr(), free_udp_addr());
    commands::init(&a_dir, "CERT-A", &a_addr.to_string()).expect("init a");
    commands::init(&b_dir, "CERT-B", &b_addr.to_string()).expect("init b");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let t_total = Instant::now();
    rt.block_on(async {
        // Each node reaches the other only through a relay: A dials ab, B dials ba.
        let ab = Relay::start(Faults::default(), seed, b_addr).expect("relay ab");
        let ba = Relay::start(Faults::default(), seed ^ 0x5555_5555_5555_5555, a_addr)
            .expect("relay ba");
        commands::peer_add(
            &a_dir,
            &b_dir.join(config::BUNDLE_FILE),
            &ab.addr().to_string(),
            Some("cert-b"),
        )
        .expect("pin b");
        commands::peer_add(
            &b_dir,
            &a_dir.join(config::BUNDLE_FILE),
            &ba.addr().to_string(),
            Some("cert-a"),
        )
        .expect("pin a");
        let (ida, idb) = (
            Material::load(&a_dir).expect("a").identity.id(),
            Material::load(&b_dir).expect("b").identity.id(),
        );
        let mut p = Pair {
            a: Side {
                node: start(&a_dir).await,
                officer: officer(&a_dir, "Anna"),
                peer: idb,
                peer_alias: "cert-b",
                sent: Vec::new(),
            },
            b: Side {
                node: start(&b_dir).await,
                officer: officer(&b_dir, "Bruno"),
                peer: ida,
                peer_alias: "cert-a",
                sent: Vec::new(),
            },
            ab,
            ba,
        };
        let up = wait_until(Duration::from_secs(30), "link up", || {
            std::future::ready(p.links_up())
        })
        .await;
        eprintln!("link up through the relays after {up:.2?}");

        p.scenario(
            "20% loss",
            Faults {
                loss: 0.2,
                ..Faults::default()
            },
            HOLD,
        )
        .await;
        p.scenario(
            "300±100 ms delay",
            Faults {
                delay_ms: 200,
                jitter_ms: 200,
                ..Faults::default()
            },
            HOLD,
        )
        .await;
        p.scenario(
            "5% duplication",
            Faults {
                duplicate: 0.05,
                ..Faults::default()
            },
            HOLD,
        )
        .await;

        // Partition: both sides must see the link go down within the liveness window, and
        // come back once it heals; messages submitted during it arrive afterwards.
        let before = p.stats();
        let t0 = Instant::now();
        p.set(Faults {
            partition: true,
            ..Faults::default()
        });
        p.a.send(PER_SCENARIO, "partition A→B").await;
        p.b.send(PER_SCENARIO, "partition B→A").await;
        let down = wait_until(DOWN_BOUND, "both links down in the partition", || {
            std::future::ready(p.links_down())
        })
        .await;
        // Neither side may bring the link up through a partition.
        while t0.elapsed() < PARTITION {
            assert!(
                !p.a.node.link_up("cert-b") && !p.b.node.link_up("cert-a"),
                "a link came up during the partition"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p.set(Faults::default());
        let healed = Instant::now();
        let up = wait_until(DELIVERY_BOUND, "link up after the partition", || {
            std::future::ready(p.links_up())
        })
        .await;
        wait_until(DELIVERY_BOUND, "delivered after the partition", || {
            p.all_delivered()
        })
        .await;
        let delivered = healed.elapsed();
        let (ab, ba) = p.stats();
        eprintln!(
            "[30 s partition] both links down {down:.2?} after it began; up again {up:.2?} \
             after it healed; all delivered {:.2?} after it healed\n  relay A→B: {:?}\n  \
             relay B→A: {:?}",
            delivered,
            diff(ab, before.0),
            diff(ba, before.1),
        );
        assert_exactly_once(&p.a, &p.b, "partition A→B").await;
        assert_exactly_once(&p.b, &p.a, "partition B→A").await;

        eprintln!(
            "total: {} messages each way; relay A→B {:?}; relay B→A {:?}",
            p.a.sent.len(),
            p.ab.stats(),
            p.ba.stats()
        );
        let Pair { a, b, ab, ba } = p;
        a.node.shutdown().await;
        b.node.shutdown().await;
        drop((ab, ba));
    });
    eprintln!("test took {:.2?}", t_total.elapsed());
}
