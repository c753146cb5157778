//! Network faults between two node processes, each in its own Linux network namespace, joined
//! by a veth pair; the faults are iptables rules inside the namespaces (`netns` in this crate).
//! Unlike `network_faults.rs` (a relay on loopback, nodes in one process), the kernel drops
//! the packets here, and each node is a process of its own: `hotline-fault-node`, which starts
//! a node as `hotlined run` does, under `ip netns exec`.
//!
//! - `delivers_exactly_once_through_20_percent_loss_both_ways`: 20 % of the packets arriving at
//!   either node are dropped while each node sends the other 200 messages in rounds over 20 s;
//!   all of them must be delivered while the loss lasts, and the link must stay up (15 s of
//!   silence, the liveness window, does not happen at 20 % loss).
//! - `partition_takes_the_link_down_and_delivers_everything_after_it_heals`: every packet is
//!   dropped for 30 s; messages submitted during the partition wait; both nodes must report
//!   the link DOWN within the liveness window of SPEC.md §11.3 (and not before 15 s of silence
//!   can have passed), keep it down while the partition lasts, report it UP once it heals, and
//!   then deliver everything.
//!
//! Both then stop the nodes and check both databases (`check`): every message exactly once,
//! contiguous sequence numbers, and a verified DELIVERED receipt at the sender, byte for byte
//! the one the receiver made.
//!
//! The tests need root, `ip` and `iptables` (`.ci/run` installs them). Without them, or if the
//! kernel refuses namespaces, each test prints why and passes without running: a skip.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotline_node::commands;
use hotline_node::config;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use hotline_tests::check;
use hotline_tests::netns::{Counters, Pair};
use hotline_transport::material::Material;

/// The node process (this package's binary).
const NODE_BIN: &str = env!("CARGO_BIN_EXE_hotline-fault-node");
/// Each node listens on this port of its veth address.
const PORT: u16 = 4433;
const NAMES: [&str; 2] = ["A", "B"];

/// Packets dropped at random, at each end.
const LOSS: f64 = 0.2;
/// Under the loss, each node sends the other `LOSS_BATCH` messages `LOSS_ROUNDS` times, one
/// round every `LOSS_GAP`: traffic both ways for longer than the liveness window.
const LOSS_ROUNDS: usize = 10;
const LOSS_BATCH: usize = 20;
const LOSS_GAP: Duration = Duration::from_secs(2);
/// Messages each node sends the other before the partition (so that it begins at some moment
/// of a link in use, not just after the Hellos), and during it.
const BEFORE_PARTITION: usize = 20;
const PARTITION_MESSAGES: usize = 50;
/// How long the link runs between the messages before the partition and the partition.
const BEFORE_PARTITION_IDLE: Duration = Duration::from_secs(3);
/// How long the partition lasts.
const PARTITION: Duration = Duration::from_secs(30);
/// SPEC.md §11.3: a link is DOWN once nothing was received for 15 s. Heartbeats go every 5 s
/// (§11.1) and are answered at once, so at the start of a partition a node has heard from its
/// peer within the last 5 s: DOWN comes 10 to 15 s into the partition.
const LIVENESS: Duration = Duration::from_secs(15);
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Slack for timers and the 20 ms polling of the node process.
const SLACK: Duration = Duration::from_secs(2);
/// Bound on the first link-up of a fresh pair.
const UP_BOUND: Duration = Duration::from_secs(30);
/// Bound on link-up after the partition heals: a dial under way when it heals may wait for
/// its handshake retransmission, and a new one for the redial backoff (at most 30 s).
const HEAL_UP_BOUND: Duration = Duration::from_secs(60);
/// Bound on delivering everything (through the loss, or once the link is back).
const DELIVERY_BOUND: Duration = Duration::from_secs(120);
/// Bound on submitting a batch, and on a graceful stop.
const STEP_BOUND: Duration = Duration::from_secs(60);

#[test]
fn delivers_exactly_once_through_20_percent_loss_both_ways() {
    let Some(mut h) = Harness::start("loss") else {
        return;
    };
    let t0 = Instant::now();
    h.wait_until(UP_BOUND, "link up on both nodes", Harness::both_up);
    let up = h.link[0].1.max(h.link[1].1) - h.spawned;
    let before = h.counters();
    h.net.lose(LOSS).unwrap_or_else(|e| h.fail(&e));
    let loss_start = Instant::now();
    for round in 0..LOSS_ROUNDS {
        if round > 0 {
            h.pump_for(LOSS_GAP);
        }
        h.send_both(LOSS_BATCH, &format!("loss round {round}"));
    }
    let submitted = loss_start.elapsed();
    let delivered =
        h.wait_delivered(DELIVERY_BOUND, "every message delivered through the loss") + submitted;
    let during = diff(h.counters(), before);
    let downs = h.downs_since(loss_start);
    h.net.clear().unwrap_or_else(|e| h.fail(&e));
    let transmitted = h.transmitted();

    for (side, c) in during.iter().enumerate() {
        if c.dropped == 0 {
            h.fail(&format!(
                "the loss rule dropped no packet arriving at node {}: no fault happened ({c:?})",
                NAMES[side]
            ));
        }
    }
    if downs.iter().any(|&d| d > 0) {
        h.fail(&format!(
            "the link went DOWN under {}% loss (A {} times, B {} times)",
            LOSS * 100.0,
            downs[0],
            downs[1]
        ));
    }
    let counts = h.stop_and_check();
    report(&format!(
        "netns loss test ({}): {} messages (A→B {}, B→A {}) under {:.0}% random loss at both \
         ends\n  packets arriving at A: {} of which {} dropped; at B: {} of which {} dropped\n  \
         envelopes transmitted (retransmissions included): A {}, B {}; link-down events: 0\n  \
         link up {:.1?} after the nodes started; all delivered {:.1?} after the loss began \
         (messages submitted over {:.1?}); total {:.1?}",
        h.net.iptables(),
        counts[0] + counts[1],
        counts[0],
        counts[1],
        LOSS * 100.0,
        during[0].arrived,
        during[0].dropped,
        during[1].arrived,
        during[1].dropped,
        transmitted[0],
        transmitted[1],
        up,
        delivered,
        submitted,
        t0.elapsed(),
    ));
    h.close();
}

#[test]
fn partition_takes_the_link_down_and_delivers_everything_after_it_heals() {
    let Some(mut h) = Harness::start("part") else {
        return;
    };
    let t0 = Instant::now();
    h.wait_until(UP_BOUND, "link up on both nodes", Harness::both_up);
    let up = h.link[0].1.max(h.link[1].1) - h.spawned;
    h.send_both(BEFORE_PARTITION, "before the partition");
    h.wait_delivered(
        DELIVERY_BOUND,
        "every message delivered before the partition",
    );
    h.pump_for(BEFORE_PARTITION_IDLE);
    h.net.partition().unwrap_or_else(|e| h.fail(&e));
    let start = Instant::now();
    // Read once the rules are in, so that every packet counted from here on was dropped.
    let before = h.counters();
    h.send_both(PARTITION_MESSAGES, "partition");
    h.wait_until(
        LIVENESS + SLACK,
        "both nodes report the link DOWN within the liveness window",
        |h| !h.link[0].0 && !h.link[1].0,
    );
    let down = [0, 1].map(|s| h.link[s].1.saturating_duration_since(start));
    for (side, d) in down.iter().enumerate() {
        if *d > LIVENESS + SLACK {
            h.fail(&format!(
                "node {} reported the link DOWN only {d:.1?} into the partition (SPEC.md §11.3: \
                 15 s without a packet)",
                NAMES[side]
            ));
        }
        if *d + SLACK < LIVENESS - HEARTBEAT {
            h.fail(&format!(
                "node {} reported the link DOWN {d:.1?} into the partition, before 15 s without \
                 a packet can have passed (SPEC.md §11.3)",
                NAMES[side]
            ));
        }
    }
    // The partition holds: the link stays down and nothing is delivered.
    while start.elapsed() < PARTITION {
        h.pump_for(Duration::from_millis(200));
        if h.link[0].0 || h.link[1].0 {
            h.fail("a node reported the link UP during the partition");
        }
    }
    h.refresh_status();
    let waiting = h.status.map(|s| s.map(|s| s.pending));
    if waiting != [Some(PARTITION_MESSAGES); 2] {
        h.fail(&format!(
            "during the partition, messages awaiting receipts {waiting:?}, want all \
             {PARTITION_MESSAGES} on each side"
        ));
    }
    let during = diff(h.counters(), before);
    h.net.clear().unwrap_or_else(|e| h.fail(&e));
    let healed = Instant::now();
    h.wait_until(
        HEAL_UP_BOUND,
        "link UP on both nodes after the partition",
        |h| h.both_up(),
    );
    let back = [0, 1].map(|s| h.link[s].1.saturating_duration_since(healed));
    let delivered = h.wait_delivered(
        DELIVERY_BOUND,
        "every message delivered after the partition",
    ) + healed.elapsed();
    for (side, c) in during.iter().enumerate() {
        if c.dropped == 0 || c.dropped != c.arrived {
            h.fail(&format!(
                "the partition at node {} dropped {} of {} arriving packets",
                NAMES[side], c.dropped, c.arrived
            ));
        }
    }
    let transmitted = h.transmitted();
    let counts = h.stop_and_check();
    report(&format!(
        "netns partition test ({}): {} messages (A→B {}, B→A {}), {} of them submitted during \
         a {:.0?} partition\n  packets dropped by the partition: at A {}, at B {}\n  \
         link DOWN after {:.1?} at A, {:.1?} at B (liveness window {LIVENESS:?}); \
         UP again {:.1?} at A, {:.1?} at B after the partition healed\n  \
         all delivered {:.1?} after it healed; envelopes transmitted (retransmissions \
         included): A {}, B {}\n  link up {:.1?} after the nodes started; total {:.1?}",
        h.net.iptables(),
        counts[0] + counts[1],
        counts[0],
        counts[1],
        2 * PARTITION_MESSAGES,
        PARTITION,
        during[0].dropped,
        during[1].dropped,
        down[0],
        down[1],
        back[0],
        back[1],
        delivered,
        transmitted[0],
        transmitted[1],
        up,
        t0.elapsed(),
    ));
    h.close();
}

// ---------------------------------------------------------------------------------------------
// The harness: the namespaces, the two node processes and what they say.
// ---------------------------------------------------------------------------------------------

/// What a node process said.
#[derive(Debug)]
enum Line {
    Started,
    Link(bool),
    Accepted(MessageId),
    Sent,
    Status(Status),
    Refused(String),
    Failed(String),
    Stopped,
    /// Its stdout closed.
    Eof,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Status {
    stored: u64,
    pending: usize,
    transmitted: u64,
}

struct Event {
    side: usize,
    at: Instant,
    line: Line,
}

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Harness {
    // Field order is drop order: the processes go before their namespaces.
    procs: [Option<Proc>; 2],
    net: Pair,
    tmp: Option<tempfile::TempDir>,
    dirs: [PathBuf; 2],
    logs: [PathBuf; 2],
    ids: [NodeId; 2],
    rx: mpsc::Receiver<Event>,
    /// The link as each node last reported it, and since when.
    link: [(bool, Instant); 2],
    /// Every DOWN report, per node.
    down_at: [Vec<Instant>; 2],
    accepted: [Vec<MessageId>; 2],
    /// SEND commands each node finished.
    sends_done: [usize; 2],
    status: [Option<Status>; 2],
    statuses: [u64; 2],
    started: [bool; 2],
    stopped: [bool; 2],
    /// When the node processes were started.
    spawned: Instant,
}

impl Harness {
    /// Namespaces, two initialised nodes pinned to each other at their veth addresses, both
    /// processes started. `None` (after saying why) if this machine cannot run the test.
    fn start(tag: &str) -> Option<Harness> {
        let net = match Pair::create(tag) {
            Ok(n) => n,
            Err(why) => {
                report(&format!("SKIPPED netns fault test {tag}: {why}"));
                return None;
            }
        };
        let tmp = tempfile::tempdir().expect("tmp");
        let dirs = [tmp.path().join("a"), tmp.path().join("b")];
        let logs = [tmp.path().join("a.log"), tmp.path().join("b.log")];
        let addrs = [0, 1].map(|s| format!("{}:{PORT}", net.addr(s)));
        for s in 0..2 {
            commands::init(&dirs[s], &format!("CERT-{}", NAMES[s]), &addrs[s]).expect("init");
        }
        for s in 0..2 {
            let o = 1 - s;
            let alias = format!("cert-{}", NAMES[o].to_lowercase());
            commands::peer_add(
                &dirs[s],
                &dirs[o].join(config::BUNDLE_FILE),
                &addrs[o],
                Some(&alias),
            )
            .expect("pin the peer");
        }
        let ids = [0, 1].map(|s| Material::load(&dirs[s]).expect("keys").identity.id());
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        let mut h = Harness {
            procs: [None, None],
            net,
            tmp: Some(tmp),
            dirs,
            logs,
            ids,
            rx,
            link: [(false, now); 2],
            down_at: [Vec::new(), Vec::new()],
            accepted: [Vec::new(), Vec::new()],
            sends_done: [0, 0],
            status: [None, None],
            statuses: [0, 0],
            started: [false, false],
            stopped: [false, false],
            spawned: now,
        };
        for side in 0..2 {
            h.spawn(side, tx.clone());
        }
        h.wait_until(STEP_BOUND, "both nodes started", |h| h.started == [true; 2]);
        Some(h)
    }

    fn spawn(&mut self, side: usize, tx: mpsc::Sender<Event>) {
        let log = File::create(&self.logs[side]).expect("log file");
        let mut child = self
            .net
            .command(side, NODE_BIN)
            .arg(&self.dirs[side])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("ip netns exec hotline-fault-node");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        std::thread::spawn(move || read_node(BufReader::new(stdout), side, &tx));
        self.procs[side] = Some(Proc { child, stdin });
    }

    fn tell(&mut self, side: usize, line: &str) {
        let ok = self.procs[side]
            .as_mut()
            .and_then(|p| p.stdin.as_mut())
            .is_some_and(|i| writeln!(i, "{line}").and_then(|()| i.flush()).is_ok());
        if !ok {
            self.fail(&format!("node {} does not take commands", NAMES[side]));
        }
    }

    fn pump_for(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while let Ok(ev) = self
            .rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            self.handle(ev);
        }
    }

    fn handle(&mut self, ev: Event) {
        let side = ev.side;
        match ev.line {
            Line::Started => self.started[side] = true,
            Line::Link(up) => {
                self.link[side] = (up, ev.at);
                if !up {
                    self.down_at[side].push(ev.at);
                }
            }
            Line::Accepted(id) => self.accepted[side].push(id),
            Line::Sent => self.sends_done[side] += 1,
            Line::Status(s) => {
                self.status[side] = Some(s);
                self.statuses[side] += 1;
            }
            Line::Refused(why) => {
                self.fail(&format!("node {} refused a message: {why}", NAMES[side]))
            }
            Line::Failed(why) => self.fail(&format!("node {} failed: {why}", NAMES[side])),
            Line::Stopped => self.stopped[side] = true,
            Line::Eof if !self.stopped[side] => {
                self.fail(&format!("node {} exited unexpectedly", NAMES[side]))
            }
            Line::Eof => {}
        }
    }

    /// Pumps until `cond` holds; how long that took. Fails after `bound`.
    fn wait_until(
        &mut self,
        bound: Duration,
        what: &str,
        mut cond: impl FnMut(&Harness) -> bool,
    ) -> Duration {
        let t0 = Instant::now();
        while !cond(self) {
            if t0.elapsed() > bound {
                self.fail(&format!("not within {bound:?}: {what}"));
            }
            self.pump_for(Duration::from_millis(50));
        }
        t0.elapsed()
    }

    fn both_up(&self) -> bool {
        self.link[0].0 && self.link[1].0
    }

    /// Asks both nodes for their status and waits for the answers.
    fn refresh_status(&mut self) {
        let seen = self.statuses;
        self.tell(0, "STATUS");
        self.tell(1, "STATUS");
        self.wait_until(STEP_BOUND, "status answers", |h| {
            h.statuses[0] > seen[0] && h.statuses[1] > seen[1]
        });
    }

    /// Asks both nodes, every 200 ms, until every message either accepted has its receipt;
    /// how long that took. Fails after `bound`.
    fn wait_delivered(&mut self, bound: Duration, what: &str) -> Duration {
        let t0 = Instant::now();
        loop {
            self.refresh_status();
            let done = (0..2).all(|s| {
                self.status[s]
                    .is_some_and(|st| st.pending == 0 && st.stored == self.accepted[s].len() as u64)
            });
            if done {
                return t0.elapsed();
            }
            if t0.elapsed() > bound {
                let status = self.status;
                self.fail(&format!("not within {bound:?}: {what} (status {status:?})"));
            }
            self.pump_for(Duration::from_millis(200));
        }
    }

    /// Submits `n` messages on each node, at once, and waits until both accepted them all.
    fn send_both(&mut self, n: usize, label: &str) {
        let done = self.sends_done;
        for (side, name) in NAMES.iter().enumerate() {
            self.tell(side, &format!("SEND {n} {label} {name}→"));
        }
        self.wait_until(STEP_BOUND, "submission", |h| {
            h.sends_done[0] > done[0] && h.sends_done[1] > done[1]
        });
    }

    fn counters(&mut self) -> [Counters; 2] {
        let mut c = [Counters::default(); 2];
        for (side, slot) in c.iter_mut().enumerate() {
            *slot = self.net.counters(side).unwrap_or_else(|e| self.fail(&e));
        }
        c
    }

    fn transmitted(&mut self) -> [u64; 2] {
        self.refresh_status();
        self.status.map(|s| s.map_or(0, |s| s.transmitted))
    }

    fn downs_since(&self, t: Instant) -> [usize; 2] {
        [0, 1].map(|s| self.down_at[s].iter().filter(|&&d| d >= t).count())
    }

    /// Stops both nodes gracefully, then runs the exactly-once checks on their databases;
    /// the number of messages each way (A→B, B→A).
    fn stop_and_check(&mut self) -> [usize; 2] {
        self.tell(0, "STOP");
        self.tell(1, "STOP");
        self.wait_until(STEP_BOUND, "both nodes stopped", |h| h.stopped == [true; 2]);
        for (side, name) in NAMES.iter().enumerate() {
            let status = self.procs[side]
                .take()
                .map(|mut p| p.child.wait().expect("wait"));
            if !status.is_some_and(|s| s.success()) {
                self.fail(&format!("node {name} exited with {status:?}"));
            }
        }
        let mut problems = Vec::new();
        let dbs = [0, 1].map(|s| self.dirs[s].join(config::DB_FILE));
        let sides = [0, 1].map(|s| check::Side {
            name: NAMES[s],
            db: &dbs[s],
            id: self.ids[s],
        });
        let mut counts = [0; 2];
        for from in 0..2 {
            let c = check::direction(
                sides[from],
                sides[1 - from],
                &self.accepted[from],
                &mut problems,
            );
            if c.unannounced > 0 {
                problems.push(format!(
                    "{}: {} messages delivered that the test never submitted",
                    NAMES[from], c.unannounced
                ));
            }
            counts[from] = c.messages;
        }
        for side in sides {
            check::integrity(side, &mut problems);
        }
        if !problems.is_empty() {
            let shown: Vec<&str> = problems.iter().take(30).map(String::as_str).collect();
            self.fail(&format!(
                "{} problems (first {} shown):\n{}",
                problems.len(),
                shown.len(),
                shown.join("\n")
            ));
        }
        counts
    }

    /// Deletes the namespaces (the nodes have stopped) and checks that nothing is left.
    fn close(self) {
        let Harness { procs, net, .. } = self;
        drop(procs);
        if let Err(e) = net.close() {
            panic!("cleaning up the namespaces: {e}");
        }
    }

    /// Kills the nodes, keeps their directories, shows the logs' tails, panics. The
    /// namespaces go when the harness drops.
    fn fail(&mut self, msg: &str) -> ! {
        self.procs = [None, None];
        let mut out = String::new();
        for (log, name) in self.logs.iter().zip(NAMES) {
            out.push_str(&format!(
                "\n--- last lines of node {name}'s log ---\n{}",
                tail(log, 30)
            ));
        }
        let kept = self.tmp.take().map(|t| t.keep());
        panic!("{msg}{out}\n(node directories kept in {kept:?})");
    }
}

/// Forwards a node's lines to the test, stamped with when they arrived.
fn read_node(out: BufReader<std::process::ChildStdout>, side: usize, tx: &mpsc::Sender<Event>) {
    let send = |line| {
        let _ = tx.send(Event {
            side,
            at: Instant::now(),
            line,
        });
    };
    for l in out.lines() {
        let Ok(l) = l else { break };
        let mut words = l.splitn(2, ' ');
        let line = match (words.next(), words.next()) {
            (Some("STARTED"), _) => Line::Started,
            (Some("LINK"), Some("UP")) => Line::Link(true),
            (Some("LINK"), Some("DOWN")) => Line::Link(false),
            (Some("ACCEPTED"), Some(h)) => match parse_id(h) {
                Some(id) => Line::Accepted(id),
                None => Line::Refused(format!("unreadable line {l:?}")),
            },
            (Some("SENT"), _) => Line::Sent,
            (Some("STATUS"), Some(rest)) => {
                let n: Vec<u64> = rest.split(' ').filter_map(|w| w.parse().ok()).collect();
                match n[..] {
                    [stored, pending, transmitted] => Line::Status(Status {
                        stored,
                        pending: pending as usize,
                        transmitted,
                    }),
                    _ => Line::Failed(format!("unreadable line {l:?}")),
                }
            }
            (Some("REFUSED"), Some(why)) => Line::Refused(why.to_owned()),
            (Some("FAILED"), why) => Line::Failed(why.unwrap_or_default().to_owned()),
            (Some("STOPPED"), _) => Line::Stopped,
            _ => continue,
        };
        send(line);
    }
    send(Line::Eof);
}

fn diff(after: [Counters; 2], before: [Counters; 2]) -> [Counters; 2] {
    [0, 1].map(|s| Counters {
        arrived: after[s].arrived - before[s].arrived,
        dropped: after[s].dropped - before[s].dropped,
    })
}

/// Writes to the test's stderr directly, past libtest's capture, so that the counts and the
/// reason for a skip show in the log of a passing run too.
fn report(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn parse_id(h: &str) -> Option<MessageId> {
    if h.len() != 32 {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(id)
}
