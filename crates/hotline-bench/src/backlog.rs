//! `hotline-bench backlog`: a large outbox while the peer is down, a restart with it, and the
//! drain once the peer comes back.
//!
//! 1. Only A runs. N messages are queued through A's operator API as fast as it answers
//!    (`--inflight` Send requests outstanding); A's resident memory is sampled throughout.
//! 2. A is stopped with SIGTERM and started again: the time until its operator API answers
//!    Status, and until it accepts a Send (one more message, so N + 1 are pending).
//! 3. B is started; A's DELIVERED events are counted until every message has its receipt: the
//!    drain rate, with A's memory sampled again.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load;
use crate::setup::{self, NodeLimits, NodeProc};
use crate::{Build, Error, Workdir, procfs, stats};

/// Options of the backlog mode.
#[derive(Clone, Debug)]
pub struct Options {
    /// Messages to queue.
    pub messages: usize,
    /// Bytes of text each.
    pub size: usize,
    /// Send requests outstanding while queueing.
    pub inflight: usize,
    /// Keep the SPEC default rate limit in the nodes.
    pub spec_rate_limit: bool,
    /// Keep the temporary directory.
    pub keep_dir: bool,
    /// Check receipts with Show for at most this many messages.
    pub verify_max: usize,
}

/// Samples a process's `VmRSS` every 50 ms on its own thread.
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), samples.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let t0 = Instant::now();
                while !s.load(Ordering::Relaxed) {
                    if let Some(kib) = procfs::memory_kib(pid, "VmRSS") {
                        out.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push((t0.elapsed().as_secs_f64(), kib));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
            .ok();
        Sampler {
            stop,
            samples,
            thread,
        }
    }

    /// Stops sampling; returns (seconds since start, KiB) pairs.
    fn finish(mut self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// At most `max` evenly spaced samples, always with the last, as `[t_s, rss_kib]` pairs.
fn thin(samples: &[(f64, u64)], max: usize) -> Value {
    let step = samples.len().div_ceil(max.max(1)).max(1);
    let mut picked: Vec<Value> = samples
        .iter()
        .step_by(step)
        .map(|(t, k)| json!([(t * 100.0).round() / 100.0, k]))
        .collect();
    if let Some((t, k)) = samples.last()
        && !(samples.len() - 1).is_multiple_of(step)
    {
        picked.push(json!([(t * 100.0).round() / 100.0, k]));
    }
    Value::Array(picked)
}

fn peak(samples: &[(f64, u64)]) -> u64 {
    samples.iter().map(|s| s.1).max().unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the backlog benchmark; returns the report as JSON.
pub fn run(opts: &Options, build: &Build, say: &dyn Fn(&str)) -> Result<Value, Error> {
    let n = opts.messages;
    let work = Workdir::new(opts.keep_dir)?;
    let limits = NodeLimits::new(!opts.spec_rate_limit);
    let (a, b) = setup::create(work.path(), limits)?;
    let clk = procfs::ClkTck::detect();
    let rt = crate::runtime()?;
    say(&format!(
        "nodes created in {}; starting A only",
        work.path().display()
    ));

    // 1. Queue with the peer down.
    let mut pa = NodeProc::spawn(&a)?;
    let (msgs, queued) = rt.block_on(async {
        let (oa, _) = setup::connect_when_ready(&a, Duration::from_secs(30)).await?;
        say(&format!(
            "signing {} messages of {} bytes",
            n + 1,
            opts.size
        ));
        let msgs = load::presign(&oa, n + 1, opts.size)?;
        say(&format!("queueing {n} messages at A (B is down)"));
        let cpu0 = pa.cpu_ticks()?;
        let sampler = Sampler::start(pa.pid());
        let mut last = Instant::now();
        let q = load::queue_all(&oa, &msgs[..n], opts.inflight, |done| {
            if last.elapsed() > Duration::from_secs(5) {
                last = Instant::now();
                say(&format!("  {done} of {n} accepted"));
            }
        })
        .await?;
        let samples = sampler.finish();
        let cpu = clk.seconds(pa.cpu_ticks()?.saturating_sub(cpu0));
        let hwm = pa.memory_kib("VmHWM");
        let pending = setup::queue_settled(&oa, n as u64, Duration::from_secs(15)).await?;
        if pending != n as u64 {
            return Err(Error(format!(
                "after queueing {n}, A reports {pending} messages pending"
            )));
        }
        oa.close().await;
        Ok::<_, Error>((msgs, (q, samples, cpu, hwm)))
    })?;
    let (q, q_samples, q_cpu, q_hwm) = queued;
    let send = stats::summarize(q.send_ms.clone()).unwrap_or_default();

    // 2. Restart A with the backlog.
    say("stopping A (SIGTERM) and starting it again");
    let shutdown = pa.terminate(Duration::from_secs(600))?;
    drop(pa);
    let mut pa = NodeProc::spawn(&a)?;
    let restart = rt.block_on(async {
        let (oa, status_at) = setup::connect_when_ready(&a, Duration::from_secs(3600)).await?;
        let extra = &msgs[n];
        oa.client
            .send(extra.request.clone())
            .await
            .map_err(|f| Error(format!("Send after restart: {}", f.message)))?;
        let send_at = Instant::now();
        let rss = (pa.memory_kib("VmRSS"), pa.memory_kib("VmHWM"));
        Ok::<_, Error>((oa, status_at, send_at, rss))
    });
    let (oa, status_at, send_at, restart_rss) = restart?;
    let restart_status = status_at.saturating_duration_since(pa.started);
    let restart_send = send_at.saturating_duration_since(pa.started);

    // 3. Start B and drain.
    say(&format!("starting B; draining {} messages", n + 1));
    let total = n + 1;
    let ids: HashSet<[u8; 16]> = msgs.iter().map(|m| m.id).collect();
    let drained = rt.block_on(async {
        let mut watch = oa
            .client
            .watch()
            .await
            .map_err(|f| Error(format!("Watch: {}", f.message)))?;
        let cpu_a0 = pa.cpu_ticks()?;
        let sampler = Sampler::start(pa.pid());
        let mut pb = NodeProc::spawn(&b)?;
        let b_started = pb.started;
        let mut seen: HashSet<[u8; 16]> = HashSet::with_capacity(total);
        let (mut duplicates, mut lagged) = (0usize, 0u64);
        let mut link_up: Option<Instant> = None;
        let mut last_receipt = b_started;
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        let mut last_progress = (Instant::now(), 0usize);
        let mut last_say = Instant::now();
        let done_at = loop {
            if seen.len() == total {
                break last_receipt;
            }
            tokio::select! {
                ev = watch.next() => {
                    let ev = ev
                        .map_err(|f| Error(format!("Watch: {}", f.message)))?
                        .ok_or_else(|| Error("A ended Watch".into()))?;
                    match ev.kind.as_str() {
                        "link_up" => { link_up.get_or_insert_with(Instant::now); }
                        "lagged" => {
                            lagged += ev.detail.split_whitespace().next()
                                .and_then(|x| x.parse::<u64>().ok()).unwrap_or(1);
                        }
                        "delivered" => {
                            if let Ok(id) = <[u8; 16]>::try_from(ev.message_id.as_ref())
                                && ids.contains(&id)
                            {
                                if seen.insert(id) {
                                    last_receipt = Instant::now();
                                } else {
                                    duplicates += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                }
                _ = poll.tick() => {
                    pb.check_alive()?;
                    pa.check_alive()?;
                    if seen.len() != last_progress.1 {
                        last_progress = (Instant::now(), seen.len());
                    } else if last_progress.0.elapsed() > load::STALL {
                        return Err(Error(format!(
                            "drain stalled: {} of {total} DELIVERED events, A's queue {}",
                            seen.len(),
                            setup::queue(&oa).await.map_or_else(|e| e.0, |q| q.to_string())
                        )));
                    }
                    if last_say.elapsed() > Duration::from_secs(5) {
                        last_say = Instant::now();
                        say(&format!("  {} of {total} delivered", seen.len()));
                    }
                    // Events were dropped: the store's count decides when the drain is over.
                    if lagged > 0 && setup::queue(&oa).await? == 0 {
                        break Instant::now();
                    }
                }
            }
        };
        let samples = sampler.finish();
        let cpu_a = clk.seconds(pa.cpu_ticks()?.saturating_sub(cpu_a0));
        let cpu_b = clk.seconds(pb.cpu_ticks()?);
        let hwm = (pa.memory_kib("VmHWM"), pb.memory_kib("VmHWM"));
        let pending = setup::queue_settled(&oa, 0, Duration::from_secs(15)).await?;
        if pending != 0 {
            return Err(Error(format!(
                "after the drain A reports {pending} pending"
            )));
        }
        drop(watch);
        say("checking receipts");
        let verified = load::verify_receipts(&oa, &msgs, opts.inflight, opts.verify_max).await?;
        oa.close().await;
        let b_stop = pb.terminate(Duration::from_secs(60));
        Ok::<_, Error>((
            b_started,
            link_up,
            done_at,
            seen.len(),
            duplicates,
            lagged,
            samples,
            cpu_a,
            cpu_b,
            hwm,
            verified,
            b_stop,
        ))
    });
    let a_stop = pa.terminate(Duration::from_secs(600));
    let (
        b_started,
        link_up,
        done_at,
        delivered,
        duplicates,
        lagged,
        d_samples,
        cpu_a,
        cpu_b,
        d_hwm,
        verified,
        b_stop,
    ) = drained?;
    b_stop?;
    a_stop?;
    if lagged == 0 && (delivered != total || duplicates != 0) {
        return Err(Error(format!(
            "receipts: {delivered} of {total} delivered, {duplicates} duplicate DELIVERED events"
        )));
    }
    let drain_from = link_up.unwrap_or(b_started);
    let drain = done_at
        .saturating_duration_since(drain_from)
        .as_secs_f64()
        .max(1e-9);
    let queue_s = q.elapsed.as_secs_f64().max(1e-9);
    Ok(json!({
        "mode": "backlog",
        "messages": n,
        "size": opts.size,
        "inflight": opts.inflight,
        "cores": build.cores,
        "build": build.json(),
        "clk_tck": clk.hz,
        "clk_tck_assumed": clk.assumed,
        "node_rate_per_s": limits.rate_per_s,
        "node_burst": limits.burst,
        "node_max_inflight": limits.max_inflight,
        "queue_s": queue_s,
        "queue_msgs_per_s": n as f64 / queue_s,
        "queue_send_p50_ms": send.p50,
        "queue_send_p99_ms": send.p99,
        "queue_cpu_s_per_msg_a": q_cpu / n.max(1) as f64,
        "queue_peak_rss_a_kib": q_hwm,
        "queue_rss_a_kib": thin(&q_samples, 40),
        "shutdown_ms": ms(shutdown),
        "restart_status_ms": ms(restart_status),
        "restart_send_ms": ms(restart_send),
        "restart_rss_a_kib": restart_rss.0,
        "restart_peak_rss_a_kib": restart_rss.1,
        "link_up_ms_after_b_start": link_up.map(|t| ms(t.saturating_duration_since(b_started))),
        "drain_messages": total,
        "drain_s": drain,
        "drain_receipts_per_s": delivered as f64 / drain,
        "drain_s_from_b_start": done_at.saturating_duration_since(b_started).as_secs_f64(),
        "drain_peak_rss_a_kib": peak(&d_samples),
        "drain_rss_a_kib": thin(&d_samples, 40),
        "peak_rss_a_kib_since_restart": d_hwm.0,
        "peak_rss_b_kib": d_hwm.1,
        "drain_cpu_s_per_msg": (cpu_a + cpu_b) / total as f64,
        "drain_cpu_s_a": cpu_a,
        "drain_cpu_s_b_since_start": cpu_b,
        "delivered_events": delivered,
        "duplicate_delivered_events": duplicates,
        "lagged_events": lagged,
        "receipts_checked_with_show": verified,
        "dir": work.kept(),
    }))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn mib(v: &Value, key: &str) -> f64 {
    f(v, key) / 1024.0
}

/// The report for people.
pub fn text(v: &Value) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "hotline-bench backlog: {} messages of {} bytes queued at A while B is down, {} Send requests in flight",
        v["messages"], v["size"], v["inflight"]
    ));
    line(format!(
        "machine: {} cores; build: {}; nodes: limits.rate_per_s {}, burst {}",
        v["cores"],
        v["build"]["summary"].as_str().unwrap_or("?"),
        v["node_rate_per_s"],
        v["node_burst"]
    ));
    line(String::new());
    line("queue (B down)".into());
    line(format!(
        "  rate             {:.1} msg/s ({:.2} s); Send answer p50 {:.2} ms, p99 {:.2} ms",
        f(v, "queue_msgs_per_s"),
        f(v, "queue_s"),
        f(v, "queue_send_p50_ms"),
        f(v, "queue_send_p99_ms")
    ));
    line(format!(
        "  A                peak RSS {:.1} MiB; CPU {:.3} ms per message",
        mib(v, "queue_peak_rss_a_kib"),
        f(v, "queue_cpu_s_per_msg_a") * 1e3
    ));
    line("restart of A with the backlog".into());
    line(format!("  SIGTERM -> exit  {:.0} ms", f(v, "shutdown_ms")));
    line(format!(
        "  start -> Status  {:.0} ms; start -> Send accepted {:.0} ms",
        f(v, "restart_status_ms"),
        f(v, "restart_send_ms")
    ));
    line(format!(
        "  A                RSS {:.1} MiB once answering (peak so far {:.1} MiB)",
        mib(v, "restart_rss_a_kib"),
        mib(v, "restart_peak_rss_a_kib")
    ));
    line("drain (B started)".into());
    line(format!(
        "  link up          {} ms after B's start",
        v["link_up_ms_after_b_start"]
            .as_f64()
            .map_or("?".into(), |x| format!("{x:.0}"))
    ));
    line(format!(
        "  drain            {:.1} receipts/s ({} messages in {:.2} s from link up; {:.2} s from B's start)",
        f(v, "drain_receipts_per_s"),
        v["drain_messages"],
        f(v, "drain_s"),
        f(v, "drain_s_from_b_start")
    ));
    line(format!(
        "  memory           A peak RSS during the drain {:.1} MiB (since restart {:.1} MiB); B peak {:.1} MiB",
        mib(v, "drain_peak_rss_a_kib"),
        mib(v, "peak_rss_a_kib_since_restart"),
        mib(v, "peak_rss_b_kib")
    ));
    line(format!(
        "  CPU per message  {:.3} ms (A {:.2} s, B {:.2} s)",
        f(v, "drain_cpu_s_per_msg") * 1e3,
        f(v, "drain_cpu_s_a"),
        f(v, "drain_cpu_s_b_since_start")
    ));
    let lagged = v["lagged_events"].as_u64().unwrap_or(0);
    line(format!(
        "  receipts         {} DELIVERED events{}; {} checked with Show",
        v["delivered_events"],
        if lagged > 0 {
            format!(" ({lagged} events dropped by A's Watch: completion decided by A's queue)")
        } else {
            ", one per message".into()
        },
        v["receipts_checked_with_show"]
    ));
    if let Some(d) = v["dir"].as_str() {
        line(format!("kept {d}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_first_and_last_samples_and_at_most_about_max() {
        let s: Vec<(f64, u64)> = (0..1000)
            .map(|i| (f64::from(i) * 0.05, 1000 + u64::from(i as u32)))
            .collect();
        let t = thin(&s, 40);
        let t = t.as_array().unwrap();
        assert!(t.len() <= 41, "{}", t.len());
        assert_eq!(t[0], json!([0.0, 1000]));
        assert_eq!(t[t.len() - 1], json!([49.95, 1999]));
        assert_eq!(thin(&[], 40), json!([]));
        assert_eq!(peak(&s), 1999);
    }
}
