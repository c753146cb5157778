//! The default mode: N messages from A to B (and B to A with `--both-ways`) through the
//! operator API of two node processes, then the transport and crypto floors.

use std::time::Duration;

use serde_json::{Value, json};

use crate::load::{self, DirResult};
use crate::setup::{self, NodeLimits, NodeProc};
use crate::stats::{self, Percentiles};
use crate::{Build, Error, Workdir, floor, procfs};

/// Options of the default mode.
#[derive(Clone, Debug)]
pub struct Options {
    /// Messages per direction.
    pub messages: usize,
    /// Bytes of message text.
    pub size: usize,
    /// Messages between Send and DELIVERED at once, per direction.
    pub inflight: usize,
    /// Also B to A.
    pub both_ways: bool,
    /// Skip the floors.
    pub skip_floors: bool,
    /// Keep the SPEC default rate limit in the nodes.
    pub spec_rate_limit: bool,
    /// Keep the temporary directory.
    pub keep_dir: bool,
    /// Check receipts with Show for at most this many messages per direction.
    pub verify_max: usize,
}

/// Minimum duration of each floor.
const FLOOR_TIME: Duration = Duration::from_secs(2);

/// Runs the benchmark and returns the report as JSON; `say` narrates progress (to stderr).
pub fn run(opts: &Options, build: &Build, say: &dyn Fn(&str)) -> Result<Value, Error> {
    let work = Workdir::new(opts.keep_dir)?;
    let limits = NodeLimits::new(!opts.spec_rate_limit);
    let (a, b) = setup::create(work.path(), limits)?;
    say(&format!("nodes created in {}", work.path().display()));
    let mut pa = NodeProc::spawn(&a)?;
    let mut pb = NodeProc::spawn(&b)?;
    let rt = crate::runtime()?;
    let clk = procfs::ClkTck::detect();
    let measured = rt.block_on(async {
        let (oa, _) = setup::connect_when_ready(&a, Duration::from_secs(30)).await?;
        let (ob, _) = setup::connect_when_ready(&b, Duration::from_secs(30)).await?;
        setup::wait_link_up(&oa, "A", Duration::from_secs(30)).await?;
        setup::wait_link_up(&ob, "B", Duration::from_secs(30)).await?;
        say(&format!(
            "link up; signing {} message(s) of {} bytes",
            if opts.both_ways {
                2 * opts.messages
            } else {
                opts.messages
            },
            opts.size
        ));
        let msgs_a = load::presign(&oa, opts.messages, opts.size)?;
        let msgs_b = if opts.both_ways {
            load::presign(&ob, opts.messages, opts.size)?
        } else {
            Vec::new()
        };
        say("sending");
        let cpu0 = (pa.cpu_ticks()?, pb.cpu_ticks()?, procfs::own_cpu_ticks());
        let results: Vec<DirResult> = if opts.both_ways {
            let (ra, rb) = tokio::join!(
                load::drive(&oa, "A→B", &msgs_a, opts.inflight),
                load::drive(&ob, "B→A", &msgs_b, opts.inflight)
            );
            vec![ra?, rb?]
        } else {
            vec![load::drive(&oa, "A→B", &msgs_a, opts.inflight).await?]
        };
        let cpu1 = (pa.cpu_ticks()?, pb.cpu_ticks()?, procfs::own_cpu_ticks());
        let rss = (pa.memory_kib("VmHWM"), pb.memory_kib("VmHWM"));
        say("checking every receipt");
        let mut verified =
            vec![load::verify_receipts(&oa, &msgs_a, opts.inflight, opts.verify_max).await?];
        if opts.both_ways {
            verified
                .push(load::verify_receipts(&ob, &msgs_b, opts.inflight, opts.verify_max).await?);
        }
        for (op, label) in [(&oa, "A"), (&ob, "B")] {
            let q = setup::queue_settled(op, 0, std::time::Duration::from_secs(15)).await?;
            if q != 0 {
                return Err(Error(format!(
                    "node {label} still reports {q} messages without a receipt"
                )));
            }
        }
        oa.close().await;
        ob.close().await;
        Ok::<_, Error>((results, cpu0, cpu1, rss, verified))
    });
    let stopped = (
        pa.terminate(Duration::from_secs(30)),
        pb.terminate(Duration::from_secs(30)),
    );
    let (results, cpu0, cpu1, rss, verified) = measured?;
    stopped.0?;
    stopped.1?;
    let floors = if opts.skip_floors {
        None
    } else {
        say("measuring the crypto floor");
        let crypto = floor::crypto(opts.size, FLOOR_TIME)?;
        say("measuring the transport floor");
        let transport =
            floor::transport(opts.size, opts.inflight, opts.messages as u64, FLOOR_TIME)?;
        Some((crypto, transport))
    };

    let total: usize = results.iter().map(|r| r.delivered).sum();
    let first = results.iter().map(|r| r.first_send).min();
    let last = results.iter().map(|r| r.last_receipt).max();
    let wall = match (first, last) {
        (Some(f), Some(l)) => l.saturating_duration_since(f),
        _ => Duration::ZERO,
    }
    .as_secs_f64()
    .max(1e-9);
    let expected = opts.messages * results.len();
    let duplicates: usize = results.iter().map(|r| r.duplicate_events).sum();
    if total != expected || duplicates != 0 {
        return Err(Error(format!(
            "receipts: {total} of {expected} messages delivered, {duplicates} duplicate DELIVERED events"
        )));
    }
    let latency = stats::summarize(results.iter().flat_map(|r| r.latency_ms.clone()).collect())
        .unwrap_or_default();
    let send = stats::summarize(results.iter().flat_map(|r| r.send_ms.clone()).collect())
        .unwrap_or_default();
    let cpu_a = clk.seconds(cpu1.0.saturating_sub(cpu0.0));
    let cpu_b = clk.seconds(cpu1.1.saturating_sub(cpu0.1));
    let cpu_client = match (cpu0.2, cpu1.2) {
        (Some(x), Some(y)) => Some(clk.seconds(y.saturating_sub(x))),
        _ => None,
    };
    let throughput = total as f64 / wall;
    let mb = throughput * opts.size as f64 / 1e6;
    let (crypto_floor, transport_floor) = match &floors {
        Some((c, t)) => (Some(c.per_s()), Some(t.per_s())),
        None => (None, None),
    };
    let ratio = |f: Option<f64>| f.map(|f| throughput / f);
    let directions: Vec<Value> = results
        .iter()
        .map(|r| {
            let wall = r
                .last_receipt
                .saturating_duration_since(r.first_send)
                .as_secs_f64()
                .max(1e-9);
            let p = stats::summarize(r.latency_ms.clone()).unwrap_or_default();
            json!({
                "direction": r.label,
                "delivered": r.delivered,
                "throughput_msgs_per_s": r.delivered as f64 / wall,
                "p50_ms": p.p50, "p99_ms": p.p99,
                "receipt_before_accept": r.receipt_before_accept,
                "foreign_delivered_events": r.foreign_events,
            })
        })
        .collect();
    Ok(json!({
        "mode": "pipeline",
        "messages": opts.messages,
        "size": opts.size,
        "inflight": opts.inflight,
        "both_ways": opts.both_ways,
        "cores": build.cores,
        "build": build.json(),
        "clk_tck": clk.hz,
        "clk_tck_assumed": clk.assumed,
        "node_rate_per_s": limits.rate_per_s,
        "node_burst": limits.burst,
        "node_max_inflight": limits.max_inflight,
        "delivered": total,
        "duplicate_delivered_events": duplicates,
        "receipts_checked_with_show": verified.iter().sum::<usize>(),
        "wall_s": wall,
        "throughput_msgs_per_s": throughput,
        "throughput_mb_per_s": mb,
        "p50_ms": latency.p50,
        "p90_ms": latency.p90,
        "p99_ms": latency.p99,
        "p999_ms": latency.p999,
        "max_ms": latency.max,
        "send_p50_ms": send.p50,
        "send_p99_ms": send.p99,
        "cpu_s_per_msg": (cpu_a + cpu_b) / total.max(1) as f64,
        "cpu_s_a": cpu_a,
        "cpu_s_b": cpu_b,
        "bench_client_cpu_s": cpu_client,
        "peak_rss_a_kib": rss.0,
        "peak_rss_b_kib": rss.1,
        "crypto_floor_msgs_per_s": crypto_floor,
        "crypto_floor_threads": floors.as_ref().map(|(c, _)| c.threads),
        "transport_floor_msgs_per_s": transport_floor,
        "transport_floor_requests": floors.as_ref().map(|(_, t)| t.messages),
        "crypto_floor_ratio": ratio(crypto_floor),
        "transport_floor_ratio": ratio(transport_floor),
        "directions": directions,
        "dir": work.kept(),
    }))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The report for people.
pub fn text(v: &Value) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let both = v["both_ways"].as_bool().unwrap_or(false);
    line(format!(
        "hotline-bench: {} messages of {} bytes{}, {} in flight{}",
        v["messages"],
        v["size"],
        if both { " each way" } else { " from A to B" },
        v["inflight"],
        if both { " per direction" } else { "" }
    ));
    line(format!(
        "machine: {} cores; build: {}; CLK_TCK {}{}",
        v["cores"],
        v["build"]["summary"].as_str().unwrap_or("?"),
        v["clk_tck"],
        if v["clk_tck_assumed"].as_bool().unwrap_or(false) {
            " (assumed: getconf did not answer)"
        } else {
            ""
        }
    ));
    line(format!(
        "nodes: limits.rate_per_s {}, burst {}, max_inflight {}",
        v["node_rate_per_s"], v["node_burst"], v["node_max_inflight"]
    ));
    line(String::new());
    line("pipeline: Send accepted by the operator API -> DELIVERED event at the sender".into());
    line(format!(
        "  throughput       {:.1} msg/s, {:.3} MB/s ({} messages in {:.2} s)",
        f(v, "throughput_msgs_per_s"),
        f(v, "throughput_mb_per_s"),
        v["delivered"],
        f(v, "wall_s")
    ));
    let p = Percentiles {
        p50: f(v, "p50_ms"),
        p90: f(v, "p90_ms"),
        p99: f(v, "p99_ms"),
        p999: f(v, "p999_ms"),
        max: f(v, "max_ms"),
    };
    line(format!(
        "  latency ms       p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        p.p50, p.p90, p.p99, p.p999, p.max
    ));
    line(format!(
        "  Send answer ms   p50 {:.2}  p99 {:.2}",
        f(v, "send_p50_ms"),
        f(v, "send_p99_ms")
    ));
    line(format!(
        "  CPU per message  {:.3} ms over both nodes (A {:.2} s, B {:.2} s; this client {} s, not counted)",
        f(v, "cpu_s_per_msg") * 1e3,
        f(v, "cpu_s_a"),
        f(v, "cpu_s_b"),
        v["bench_client_cpu_s"]
            .as_f64()
            .map_or("?".into(), |c| format!("{c:.2}"))
    ));
    line(format!(
        "  peak RSS         A {:.1} MiB, B {:.1} MiB",
        f(v, "peak_rss_a_kib") / 1024.0,
        f(v, "peak_rss_b_kib") / 1024.0
    ));
    line(format!(
        "  receipts         {} messages, each with exactly one DELIVERED event; {} checked with Show (one valid DELIVERED receipt each)",
        v["delivered"], v["receipts_checked_with_show"]
    ));
    if both {
        for d in v["directions"].as_array().into_iter().flatten() {
            line(format!(
                "  {}              {:.1} msg/s, p50 {:.2} ms, p99 {:.2} ms",
                d["direction"].as_str().unwrap_or("?"),
                d["throughput_msgs_per_s"].as_f64().unwrap_or(f64::NAN),
                d["p50_ms"].as_f64().unwrap_or(f64::NAN),
                d["p99_ms"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    line(String::new());
    if v["crypto_floor_msgs_per_s"].is_null() {
        line("floors: skipped (--skip-floors)".into());
    } else {
        line("floors (same build, measured after the nodes stopped)".into());
        line(format!(
            "  crypto           {:.1} msg/s on {} threads; pipeline = {:.1} % of it",
            f(v, "crypto_floor_msgs_per_s"),
            v["crypto_floor_threads"],
            f(v, "crypto_floor_ratio") * 100.0
        ));
        line(format!(
            "  transport        {:.1} req/s, {} in flight on one connection; pipeline = {:.2} % of it",
            f(v, "transport_floor_msgs_per_s"),
            v["inflight"],
            f(v, "transport_floor_ratio") * 100.0
        ));
    }
    if let Some(d) = v["dir"].as_str() {
        line(format!("kept {d}"));
    }
    out
}
