//! Two nodes on loopback: their directories (made with `hotlined`'s own init, peer add and
//! operator add), their processes, and operator connections to them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline_client::client::{self, Client};
use hotline_client::credential::{self, Loaded};
use hotline_node::{commands, config, operator};
use hotline_protocol::NodeId;
use hotline_protocol::wire;

use crate::Error;
use crate::procfs;

/// One node's directory and what its operator needs to reach it.
#[derive(Clone, Debug)]
pub struct NodeDir {
    /// `A` or `B`.
    pub label: &'static str,
    /// The node directory.
    pub dir: PathBuf,
    /// Its UDP listen address.
    pub addr: String,
    /// The officer credential file issued by this node.
    pub credential: PathBuf,
    /// The alias under which this node knows the other.
    pub peer_alias: String,
}

/// What the benchmark writes into both nodes' `hotlined.toml`.
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    /// `limits.rate_per_s`: envelopes accepted per second from the peer.
    pub rate_per_s: u32,
    /// `limits.burst`.
    pub burst: u32,
    /// `limits.max_inflight` (left at the node's default).
    pub max_inflight: u32,
}

impl NodeLimits {
    /// The node defaults (SPEC.md §13.2: 200/s, burst 1000) or, if `raise`, a bucket no
    /// benchmark empties, so the figures show what the node can do rather than the
    /// configured limit.
    pub fn new(raise: bool) -> Self {
        let d = config::Limits::default();
        if raise {
            NodeLimits {
                rate_per_s: 100_000_000,
                burst: 100_000_000,
                max_inflight: d.max_inflight,
            }
        } else {
            NodeLimits {
                rate_per_s: d.rate_per_s,
                burst: d.burst,
                max_inflight: d.max_inflight,
            }
        }
    }
}

fn free_udp_port() -> Result<u16, Error> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error(format!("no free UDP port on loopback: {e}")))
}

/// Creates nodes A and B under `root`, pins them to each other on loopback, issues one officer
/// credential on each, and writes `limits` into both configurations.
pub fn create(root: &Path, limits: NodeLimits) -> Result<(NodeDir, NodeDir), Error> {
    let a = NodeDir {
        label: "A",
        dir: root.join("node-a"),
        addr: format!("127.0.0.1:{}", free_udp_port()?),
        credential: root.join("officer-a.credential"),
        peer_alias: "cert-b".into(),
    };
    let b = NodeDir {
        label: "B",
        dir: root.join("node-b"),
        addr: format!("127.0.0.1:{}", free_udp_port()?),
        credential: root.join("officer-b.credential"),
        peer_alias: "cert-a".into(),
    };
    commands::quietly(|| -> Result<(), commands::CommandError> {
        commands::init(&a.dir, "BENCH-A", &a.addr)?;
        commands::init(&b.dir, "BENCH-B", &b.addr)?;
        let (a_bundle, b_bundle) = (
            a.dir.join(config::BUNDLE_FILE),
            b.dir.join(config::BUNDLE_FILE),
        );
        commands::peer_add(&a.dir, &b_bundle, &b.addr, Some(&a.peer_alias))?;
        commands::peer_add(&b.dir, &a_bundle, &a.addr, Some(&b.peer_alias))?;
        operator::add(&a.dir, "Bench Officer A", "officer", &a.credential)?;
        operator::add(&b.dir, "Bench Officer B", "officer", &b.credential)?;
        Ok(())
    })
    .map_err(|e| Error(format!("setting up the nodes: {}", e.0)))?;
    for n in [&a, &b] {
        let mut cfg = config::Config::load(&n.dir).map_err(|e| Error(e.to_string()))?;
        cfg.limits.rate_per_s = limits.rate_per_s;
        cfg.limits.burst = limits.burst;
        cfg.limits.max_inflight = limits.max_inflight;
        std::fs::write(n.dir.join(config::CONFIG_FILE), cfg.to_toml())
            .map_err(|e| Error(format!("writing {}'s configuration: {e}", n.label)))?;
        // Read it back the way the node will.
        config::Config::load(&n.dir).map_err(|e| Error(e.to_string()))?;
    }
    Ok((a, b))
}

/// A node running as a child process (`hotline-bench node DIR`, i.e. `hotlined run`'s code).
/// Dropping it kills the process.
pub struct NodeProc {
    /// `A` or `B`.
    pub label: &'static str,
    child: Child,
    /// When it was spawned.
    pub started: Instant,
}

impl NodeProc {
    /// Starts the node in `node.dir`; its log (stderr) goes to `DIR/node.log`, appended.
    pub fn spawn(node: &NodeDir) -> Result<Self, Error> {
        let exe = std::env::current_exe()
            .map_err(|e| Error(format!("cannot find this program's path: {e}")))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("node.log"))
            .map_err(|e| Error(format!("cannot open node {}'s log: {e}", node.label)))?;
        let started = Instant::now();
        let child = Command::new(exe)
            .arg("node")
            .arg(&node.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error(format!("cannot start node {}: {e}", node.label)))?;
        Ok(NodeProc {
            label: node.label,
            child,
            started,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU ticks used so far, or an error if the process is gone.
    pub fn cpu_ticks(&self) -> Result<u64, Error> {
        procfs::cpu_ticks(self.pid())
            .ok_or_else(|| Error(format!("node {} is not running", self.label)))
    }

    /// `VmHWM` or `VmRSS` in KiB (0 if unreadable).
    pub fn memory_kib(&self, key: &str) -> u64 {
        procfs::memory_kib(self.pid(), key).unwrap_or(0)
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error(format!(
                "node {} exited ({status}); see its node.log",
                self.label
            ))),
            Err(e) => Err(Error(format!("node {}: {e}", self.label))),
        }
    }

    /// Sends SIGTERM (`hotlined`'s orderly shutdown) and waits for the exit; kills it after
    /// `grace`. Returns how long the shutdown took.
    pub fn terminate(&mut self, grace: Duration) -> Result<Duration, Error> {
        let t0 = Instant::now();
        if self.child.try_wait().ok().flatten().is_none() {
            // std can only SIGKILL a child, and calling libc's kill() would need unsafe code:
            // kill(1) sends the SIGTERM that triggers the daemon's orderly shutdown.
            let sent = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid().to_string())
                .status();
            if !sent.is_ok_and(|s| s.success()) {
                let _ = self.child.kill();
            }
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(t0.elapsed()),
                Ok(None) if t0.elapsed() > grace => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(Error(format!(
                        "node {} did not stop within {:?} of SIGTERM; killed",
                        self.label, grace
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(Error(format!("node {}: {e}", self.label))),
            }
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An operator connection to a node, with what the benchmark needs to know about it.
pub struct Operator {
    /// The connection (shared by the tasks that each carry one request).
    pub client: Arc<Client>,
    /// The credential (its officer key signs the contents).
    pub cred: Loaded,
    /// The node id of the peer messages go to.
    pub peer: NodeId,
    /// The peer's alias on this node.
    pub peer_alias: String,
}

impl Operator {
    /// Closes the connection with NO_ERROR (once no request task holds it any more).
    pub async fn close(self) {
        if let Ok(c) = Arc::try_unwrap(self.client) {
            c.close().await;
        }
    }
}

/// Connects to `node`, retrying with short attempts until it answers Status, for at most
/// `deadline`. Returns the connection and when Status was first answered.
pub async fn connect_when_ready(
    node: &NodeDir,
    deadline: Duration,
) -> Result<(Operator, Instant), Error> {
    let cred = credential::load(&node.credential)
        .map_err(|f| Error(format!("credential of {}: {}", node.label, f.message)))?;
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < deadline {
        // Short attempts: before the node listens, an Initial packet is lost and quinn would
        // wait a whole probe timeout (about a second) to repeat it.
        match client::connect(&cred, &node.addr, Duration::from_millis(100)).await {
            Ok(c) => match c.status(wire::StatusRequest {}).await {
                Ok(_) => {
                    let at = Instant::now();
                    let peers = c
                        .peers(wire::PeersRequest {})
                        .await
                        .map_err(|f| Error(f.message))?;
                    let info = peers
                        .peers
                        .iter()
                        .find(|p| p.alias == node.peer_alias)
                        .ok_or_else(|| {
                            Error(format!(
                                "node {} has no peer {}",
                                node.label, node.peer_alias
                            ))
                        })?;
                    let peer: NodeId = info
                        .node
                        .parse()
                        .map_err(|e| Error(format!("peer id: {e}")))?;
                    return Ok((
                        Operator {
                            client: Arc::new(c),
                            cred,
                            peer,
                            peer_alias: node.peer_alias.clone(),
                        },
                        at,
                    ));
                }
                Err(f) => last = f.message,
            },
            Err(f) => last = f.message,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(Error(format!(
        "node {}'s operator API did not answer within {deadline:?}: {last}",
        node.label
    )))
}

/// Waits until `op`'s node reports its link UP, for at most `deadline`.
pub async fn wait_link_up(op: &Operator, label: &str, deadline: Duration) -> Result<(), Error> {
    let t0 = Instant::now();
    loop {
        let status = op
            .client
            .status(wire::StatusRequest {})
            .await
            .map_err(|f| Error(f.message))?;
        if status.links.iter().any(|l| l.up) {
            return Ok(());
        }
        if t0.elapsed() > deadline {
            return Err(Error(format!(
                "node {label}'s link did not come up within {deadline:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The link's `queue` (messages without a receipt) as node `op` reports it.
/// The queue depth once it reads `want`, or the last reading after `within`. A node whose
/// outbox is longer than its in-memory window counts the stored backlog every 5 s, so the
/// figure can lag that long behind the store.
pub async fn queue_settled(
    op: &Operator,
    want: u64,
    within: std::time::Duration,
) -> Result<u64, Error> {
    let t0 = std::time::Instant::now();
    loop {
        let q = queue(op).await?;
        if q == want || t0.elapsed() >= within {
            return Ok(q);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub async fn queue(op: &Operator) -> Result<u64, Error> {
    let status = op
        .client
        .status(wire::StatusRequest {})
        .await
        .map_err(|f| Error(f.message))?;
    Ok(status
        .links
        .iter()
        .filter(|l| l.peer == op.peer_alias)
        .map(|l| l.queue)
        .sum())
}
