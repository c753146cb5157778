//! Prometheus text-format metrics (`--metrics HOST:PORT`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Per-peer figures.
#[derive(Clone, Debug, Default)]
pub struct PeerMetrics {
    /// 1 when the link is up.
    pub up: bool,
    /// The protocol version negotiated on the current or last connection (0: none yet).
    pub version: u32,
    /// When the TLS certificate the peer presented on the current or last connection expires
    /// (Unix ms; `None` before the first connection).
    pub peer_tls_not_after: Option<u64>,
    /// Last RTT from the session's heartbeats (ping to echo), in whole milliseconds of a
    /// millisecond clock: on a link faster than 1 ms a sample reads 0 or 1 depending on where
    /// the clock ticks fall. Use [`PeerMetrics::rtt`], not this, for display.
    pub rtt_ms: Option<u64>,
    /// QUIC's smoothed RTT estimate of the current connection (`quinn::Connection::rtt`),
    /// microsecond resolution, updated on every acknowledgement; preferred over `rtt_ms`.
    pub quic_rtt: Option<Duration>,
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
    /// The peer's clock minus ours, ms (SPEC.md §11.2); `None` until measured.
    pub clock_skew_ms: Option<i64>,
    /// The peer's implausible `last_sequence_sent` while it stands capped (SPEC.md §10.3).
    pub claim_capped: Option<u64>,
}

impl PeerMetrics {
    /// The link's round-trip time, as the metrics and `hotline status` show it: QUIC's
    /// estimate when the link has one, else the last heartbeat sample rounded up to 1 ms (a
    /// sample of 0 means "under 1 ms", never "no time at all"); `None` until measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.quic_rtt
            .or_else(|| self.rtt_ms.map(|ms| Duration::from_millis(ms.max(1))))
    }

    /// [`PeerMetrics::rtt`] in whole milliseconds (nearest, at least 1), for the operator
    /// API's `rtt_ms`, where 0 means "not measured".
    pub fn rtt_whole_ms(&self) -> u64 {
        self.rtt().map_or(0, |d| {
            let ms = (d.as_micros() + 500) / 1000;
            u64::try_from(ms).unwrap_or(u64::MAX).max(1)
        })
    }
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
    /// Free bytes under the database at the last sample (`None`: not sampled).
    pub disk_free_bytes: Option<u64>,
    /// Whether new messages are refused for lack of disk space (SPEC.md §13.3).
    pub storage_refusing: bool,
    /// When the node's keys, certificates, CRLs and operators' credentials lapse.
    pub expiries: Vec<crate::expiry::Expiry>,
}

/// Shared metrics.
pub type SharedMetrics = Arc<Mutex<Metrics>>;

/// Adds `n` to counter `name`.
pub fn count(m: &SharedMetrics, name: &'static str, n: u64) {
    if let Ok(mut g) = m.lock() {
        *g.counters.entry(name).or_default() += n;
    }
}

/// The TLS certificate each peer presented on its current or last connection, by alias: a
/// pinned peer renews its own (`hotlined keys renew-tls`), and this node sees the lapse
/// coming. Read from the peers' figures as they are now (not every minute like the others).
pub fn peer_tls_expiries(m: &Metrics) -> Vec<crate::expiry::Expiry> {
    m.peers
        .iter()
        .filter_map(|(alias, p)| {
            Some(crate::expiry::Expiry {
                kind: "peer_tls_certificate",
                name: alias.clone(),
                at_ms: p.peer_tls_not_after?,
            })
        })
        .collect()
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
        // Its keys' expiry too, without waiting for the next refresh.
        g.expiries
            .retain(|e| !(e.kind.starts_with("peer_") && e.name == alias));
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

/// Counters of events an operator should see rise (`hotline_NAME_total`).
const EVENT_COUNTERS: [(&str, &str); 10] = [
    (
        "encryption_key_created",
        "Encryption keys this node made (rotation, SPEC 4.3.4)",
    ),
    (
        "encryption_key_destroyed",
        "Expired encryption secrets this node destroyed after their retention (SPEC 4.3.4)",
    ),
    (
        "receipts_discarded",
        "Receipts from peers not stored: one of their kind was held already for the message",
    ),
    (
        "receipts_contradictory",
        "Receipts from peers contradicting the first final receipt of a message (SPEC 8.6)",
    ),
    (
        "sequence_reused",
        "Envelopes from peers whose sequence number another message already had (SPEC 10.1)",
    ),
    (
        "sequence_rollback",
        "Times this node found it had been restored from an older copy and skipped sequences (SPEC 10.1)",
    ),
    (
        "retention_removed",
        "Parts of stored messages (contents, envelopes, receipts) removed by the retention policy (SPEC 13.4)",
    ),
    (
        "gap_claims_capped",
        "Times a peer claimed to have sent sequences far beyond what arrived; gaps are capped (SPEC 10.3)",
    ),
    (
        "refused_low_disk",
        "Envelopes from peers refused for lack of disk space; the peer retries (SPEC 13.3)",
    ),
    (
        "peer_revocations",
        "Revocations of officer keys received from peers (SPEC 4.6)",
    ),
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
        if let Some(rtt) = p.rtt() {
            let _ = writeln!(
                s,
                "hotline_link_rtt_seconds{{peer=\"{}\"}} {}",
                esc(alias),
                rtt.as_secs_f64()
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP hotline_link_clock_skew_seconds The peer's clock minus this node's (SPEC 11.2).\n# TYPE hotline_link_clock_skew_seconds gauge"
    );
    for (alias, p) in &m.peers {
        if let Some(skew) = p.clock_skew_ms {
            let _ = writeln!(
                s,
                "hotline_link_clock_skew_seconds{{peer=\"{}\"}} {}",
                esc(alias),
                skew as f64 / 1000.0
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
        "# HELP hotline_key_expiry_timestamp_seconds When a key, certificate, CRL (its nextUpdate) or operator credential stops being usable (Unix seconds).\n# TYPE hotline_key_expiry_timestamp_seconds gauge"
    );
    let peer_tls = peer_tls_expiries(m);
    for e in m
        .expiries
        .iter()
        .filter(|e| e.kind != "peer_tls_certificate")
        .chain(&peer_tls)
    {
        let _ = writeln!(
            s,
            "hotline_key_expiry_timestamp_seconds{{kind=\"{}\",name=\"{}\"}} {}",
            e.kind,
            esc(&e.name),
            e.at_ms / 1000
        );
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
    for (name, help) in EVENT_COUNTERS {
        let _ = writeln!(
            s,
            "# HELP hotline_{name}_total {help}.\n# TYPE hotline_{name}_total counter\nhotline_{name}_total {}",
            m.counters.get(name).copied().unwrap_or(0)
        );
    }
    if let Some(free) = m.disk_free_bytes {
        let _ = writeln!(
            s,
            "# HELP hotline_disk_free_bytes Free space under the node's database.\n# TYPE hotline_disk_free_bytes gauge\nhotline_disk_free_bytes {free}"
        );
    }
    let _ = writeln!(
        s,
        "# HELP hotline_storage_refusing 1 while new messages are refused for lack of disk space.\n# TYPE hotline_storage_refusing gauge\nhotline_storage_refusing {}",
        u8::from(m.storage_refusing)
    );
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

/// Binds the metrics listener at `addr`, `HOST:PORT` or `:PORT`: the latter on every
/// interface, as people expect of `--metrics :9199` (IPv6 and IPv4 where the system allows
/// both, else IPv4), and said in the log.
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let Some(port) = addr.strip_prefix(':') else {
        return tokio::net::TcpListener::bind(addr).await;
    };
    let listener = match tokio::net::TcpListener::bind(format!("[::]:{port}")).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await?,
    };
    tracing::warn!(
        "metrics are served on every interface (port {port}); give HOST:PORT to limit them"
    );
    Ok(listener)
}

#[cfg(test)]
mod tests {

    /// `:PORT` binds every interface; `HOST:PORT` only that host.
    #[test]
    fn a_bare_port_binds_every_interface() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let all = super::bind(":0").await.expect("bind :0");
            assert!(all.local_addr().expect("addr").ip().is_unspecified());
            let one = super::bind("127.0.0.1:0").await.expect("bind");
            assert!(one.local_addr().expect("addr").ip().is_loopback());
            assert!(super::bind("nonsense").await.is_err());
        });
    }
    use super::*;

    fn rendered_rtt(p: PeerMetrics) -> Option<String> {
        let mut m = Metrics::default();
        m.peers.insert("cert-b".into(), p);
        render(&m)
            .lines()
            .find_map(|l| l.strip_prefix("hotline_link_rtt_seconds{peer=\"cert-b\"} "))
            .map(str::to_owned)
    }

    #[test]
    fn clock_skew_and_storage_are_rendered() {
        let mut m = Metrics::default();
        m.peers.insert(
            "cert-b".into(),
            PeerMetrics {
                clock_skew_ms: Some(-90_500),
                ..Default::default()
            },
        );
        m.disk_free_bytes = Some(1234);
        m.storage_refusing = true;
        *m.counters.entry("receipts_discarded").or_default() += 3;
        let text = render(&m);
        for line in [
            "hotline_link_clock_skew_seconds{peer=\"cert-b\"} -90.5",
            "hotline_disk_free_bytes 1234",
            "hotline_storage_refusing 1",
            "hotline_receipts_discarded_total 3",
            "hotline_sequence_reused_total 0",
            "hotline_gap_claims_capped_total 0",
            "hotline_retention_removed_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn a_sub_millisecond_heartbeat_sample_does_not_read_zero() {
        // The heartbeat's millisecond clock gives 0 for a ping answered within the same
        // millisecond; the link was measured, and faster than 1 ms.
        let p = PeerMetrics {
            rtt_ms: Some(0),
            ..Default::default()
        };
        assert_eq!(rendered_rtt(p.clone()).as_deref(), Some("0.001"));
        assert_eq!(p.rtt_whole_ms(), 1);
    }

    #[test]
    fn rtt_in_seconds_agrees_with_the_status_milliseconds() {
        for (ms, text) in [(1, "0.001"), (12, "0.012"), (1500, "1.5")] {
            let p = PeerMetrics {
                rtt_ms: Some(ms),
                ..Default::default()
            };
            assert_eq!(rendered_rtt(p.clone()).as_deref(), Some(text));
            assert_eq!(p.rtt_whole_ms(), ms);
        }
    }

    #[test]
    fn the_quic_estimate_is_preferred_at_microsecond_resolution() {
        let p = PeerMetrics {
            rtt_ms: Some(0),
            quic_rtt: Some(Duration::from_micros(350)),
            ..Default::default()
        };
        assert_eq!(rendered_rtt(p.clone()).as_deref(), Some("0.00035"));
        assert_eq!(p.rtt_whole_ms(), 1);
        let p = PeerMetrics {
            rtt_ms: Some(40),
            quic_rtt: Some(Duration::from_micros(41_200)),
            ..Default::default()
        };
        assert_eq!(rendered_rtt(p.clone()).as_deref(), Some("0.0412"));
        assert_eq!(p.rtt_whole_ms(), 41);
    }

    #[test]
    fn an_unmeasured_link_has_no_rtt_line() {
        assert_eq!(rendered_rtt(PeerMetrics::default()), None);
        assert_eq!(PeerMetrics::default().rtt_whole_ms(), 0);
    }
}
