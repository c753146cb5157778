//! Prometheus text-format metrics (`--metrics HOST:PORT`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Per-peer figures.
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics {
    /// 1 when the link is up.
    pub up: bool,
    /// Last RTT, ms.
    pub rtt_ms: Option<u64>,
    /// Messages waiting for a receipt.
    pub queue: u64,
    /// Messages past their precedence deadline without delivery.
    pub overdue: u64,
    /// Missing sequences reported.
    pub gaps: u64,
    /// The negotiated key-exchange group of the current connection.
    pub group: Option<String>,
    /// When the link last went up or down (Unix ms).
    pub since_ms: u64,
    /// When anything was last received from the peer (Unix ms, 0 if never).
    pub last_received_ms: u64,
    /// created_ms of the oldest message still waiting for a receipt (0: none).
    pub oldest_pending_ms: u64,
    /// Messages accepted but not sealed: never sent until resolved or cancelled.
    pub unsealed: u64,
}

/// All metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By peer alias.
    pub peers: BTreeMap<String, PeerMetrics>,
    /// Counters by name (e.g. `accepted`, `sent`, `delivered`).
    pub counters: BTreeMap<&'static str, u64>,
    /// Handshake failures by reason.
    pub handshake_failures: BTreeMap<String, u64>,
}

/// Shared metrics.
pub type SharedMetrics = Arc<Mutex<Metrics>>;

/// Adds `n` to counter `name`.
pub fn count(m: &SharedMetrics, name: &'static str, n: u64) {
    if let Ok(mut g) = m.lock() {
        *g.counters.entry(name).or_default() += n;
    }
}

/// Updates one peer's figures.
pub fn peer(m: &SharedMetrics, alias: &str, f: impl FnOnce(&mut PeerMetrics)) {
    if let Ok(mut g) = m.lock() {
        f(g.peers.entry(alias.to_owned()).or_default());
    }
}

/// Forgets a peer that was removed (its gauges would otherwise report it forever).
pub fn forget_peer(m: &SharedMetrics, alias: &str) {
    if let Ok(mut g) = m.lock() {
        g.peers.remove(alias);
    }
}

/// Counts a failed handshake.
pub fn handshake_failure(m: &SharedMetrics, reason: &str) {
    if let Ok(mut g) = m.lock() {
        *g.handshake_failures.entry(reason.to_owned()).or_default() += 1;
    }
}

const COUNTERS: [(&str, &str); 6] = [
    ("accepted", "Messages accepted from operators and stored"),
    ("sent", "Envelopes transmitted (including retransmissions)"),
    ("delivered", "Messages with a verified DELIVERED receipt"),
    (
        "acknowledged",
        "Messages with a verified ACKNOWLEDGED receipt",
    ),
    ("rejected", "Messages with a verified REJECTED receipt"),
    ("received", "Envelopes from peers stored in the inbox"),
];

/// Renders the Prometheus text format.
pub fn render(m: &Metrics) -> String {
    let mut s = String::new();
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let _ = writeln!(
        s,
        "# HELP hotline_link_up 1 if the link to the peer is up, else 0.\n# TYPE hotline_link_up gauge"
    );
    for (alias, p) in &m.peers {
        let _ = writeln!(
            s,
            "hotline_link_up{{peer=\"{}\"}} {}",
            esc(alias),
            u8::from(p.up)
        );
    }
    let _ = writeln!(
        s,
        "# HELP hotline_link_rtt_seconds Last measured round-trip time.\n# TYPE hotline_link_rtt_seconds gauge"
    );
    for (alias, p) in &m.peers {
        if let Some(rtt) = p.rtt_ms {
            let _ = writeln!(
                s,
                "hotline_link_rtt_seconds{{peer=\"{}\"}} {}",
                esc(alias),
                rtt as f64 / 1000.0
            );
        }
    }
    for (name, help, get) in [
        (
            "hotline_queue_depth",
            "Messages waiting for a receipt.",
            (|p: &PeerMetrics| p.queue) as fn(&PeerMetrics) -> u64,
        ),
        (
            "hotline_overdue_messages",
            "Undelivered messages past their precedence deadline.",
            |p| p.overdue,
        ),
        (
            "hotline_sequence_gaps",
            "Sequence numbers the peer sent that have not arrived.",
            |p| p.gaps,
        ),
        (
            "hotline_unsealed_messages",
            "Messages accepted but not sealed (no valid encryption key of the peer, or the officer's credential expired): never sent until that is resolved.",
            |p| p.unsealed,
        ),
        (
            "hotline_oldest_undelivered_timestamp_seconds",
            "Creation time (Unix seconds) of the oldest message without a receipt; 0 if none.",
            |p| p.oldest_pending_ms / 1000,
        ),
    ] {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (alias, p) in &m.peers {
            let _ = writeln!(s, "{name}{{peer=\"{}\"}} {}", esc(alias), get(p));
        }
    }
    let _ = writeln!(
        s,
        "# HELP hotline_link_info Negotiated TLS key-exchange group per link.\n# TYPE hotline_link_info gauge"
    );
    for (alias, p) in &m.peers {
        if let Some(g) = &p.group {
            let _ = writeln!(
                s,
                "hotline_link_info{{peer=\"{}\",group=\"{}\"}} 1",
                esc(alias),
                esc(g)
            );
        }
    }
    for (name, help) in COUNTERS {
        let _ = writeln!(
            s,
            "# HELP hotline_messages_{name}_total {help}.\n# TYPE hotline_messages_{name}_total counter"
        );
        let _ = writeln!(
            s,
            "hotline_messages_{name}_total {}",
            m.counters.get(name).copied().unwrap_or(0)
        );
    }
    let _ = writeln!(
        s,
        "# HELP hotline_handshake_failures_total Refused connections by reason.\n# TYPE hotline_handshake_failures_total counter"
    );
    for (reason, n) in &m.handshake_failures {
        let _ = writeln!(
            s,
            "hotline_handshake_failures_total{{reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    s
}

/// Serves the metrics over HTTP/1.0 until the task is dropped. Any GET path answers.
pub async fn serve(listener: tokio::net::TcpListener, m: SharedMetrics) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let m = m.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            // Read the request head (bounded); we answer every request the same way.
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), sock.read(&mut buf)).await;
            let body = match m.lock() {
                Ok(g) => render(&g),
                Err(_) => String::new(),
            };
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
