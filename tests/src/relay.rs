//! A seeded UDP impairment relay for fault tests: it sits between a node and the peer that
//! node dials, on loopback only, and drops, delays, reorders and duplicates datagrams.
//!
//! Every random decision comes from one SplitMix64 stream seeded by the caller, drawn in
//! arrival order, so a failing run's decisions can be replayed from the printed seed (arrival
//! order itself depends on the kernel's scheduling, so a replay is close, not exact).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};

/// Largest datagram the relay forwards (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// The impairments applied to every datagram, in both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Fixed delay added to every datagram, in milliseconds.
    pub delay_ms: u64,
    /// Uniform extra delay in `0..=jitter_ms` per datagram; reorders them.
    pub jitter_ms: u64,
    /// Probability that a datagram is sent twice (each copy delayed independently).
    pub duplicate: f64,
    /// Drop everything.
    pub partition: bool,
}

/// What the relay has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received from either side.
    pub received: u64,
    /// Datagrams written to the other side (duplicates included).
    pub sent: u64,
    /// Dropped by `loss`.
    pub lost: u64,
    /// Dropped by `partition`.
    pub partitioned: u64,
    /// Extra copies sent by `duplicate`.
    pub duplicated: u64,
    /// Copies held back by `delay_ms`/`jitter_ms` before sending.
    pub delayed: u64,
    /// From an address that is neither the target nor the first client, or to a client not
    /// known yet: dropped.
    pub strays: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    lost: AtomicU64,
    partitioned: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
    strays: AtomicU64,
}

impl Counters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            received: r(&self.received),
            sent: r(&self.sent),
            lost: r(&self.lost),
            partitioned: r(&self.partitioned),
            duplicated: r(&self.duplicated),
            delayed: r(&self.delayed),
            strays: r(&self.strays),
        }
    }
}

/// SplitMix64: tiny, fast and good enough to drive test impairments reproducibly.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..=max`.
    fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        }
    }
}

/// A running relay. Dropping it stops its task and every datagram it still holds.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    seed: u64,
    faults: Arc<Mutex<Faults>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Binds `127.0.0.1:0` and starts forwarding between the first address that sends to it
    /// (the dialing node) and `target`. Must be called inside a tokio runtime.
    pub fn start(faults: Faults, seed: u64, target: SocketAddr) -> std::io::Result<Relay> {
        let std_socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let addr = socket.local_addr()?;
        let faults = Arc::new(Mutex::new(faults));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(
            socket,
            target,
            SplitMix64(seed),
            faults.clone(),
            counters.clone(),
        ));
        Ok(Relay {
            addr,
            target,
            seed,
            faults,
            counters,
            task,
        })
    }

    /// The address to dial instead of `target`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the relay forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The seed its decisions come from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Replaces the impairments; applies to datagrams that arrive from now on.
    pub fn set(&self, faults: Faults) {
        // A poisoned lock means a panicking test; keep going with the new value regardless.
        let mut g = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g = faults;
    }

    /// The impairments in force.
    pub fn faults(&self) -> Faults {
        *self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The task owns the JoinSet of delayed sends, so aborting it aborts them too.
        self.task.abort();
    }
}

async fn run(
    socket: Arc<UdpSocket>,
    target: SocketAddr,
    mut rng: SplitMix64,
    faults: Arc<Mutex<Faults>>,
    counters: Arc<Counters>,
) {
    let mut client: Option<SocketAddr> = None;
    let mut held: JoinSet<()> = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // Loopback ICMP errors (a node not listening yet) surface here; keep relaying.
                Err(_) => continue,
            },
            Some(_) = held.join_next(), if !held.is_empty() => continue,
        };
        Counters::bump(&counters.received);
        let to = if from == target {
            client
        } else if client.is_none_or(|c| c == from) {
            client = Some(from);
            Some(target)
        } else {
            None
        };
        let Some(to) = to else {
            Counters::bump(&counters.strays);
            continue;
        };
        let f = *faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Draw the same numbers for every datagram whatever the faults, so the stream of
        // decisions depends only on the seed and the arrival order.
        let (lose, dup) = (rng.unit(), rng.unit());
        let delays = [
            f.delay_ms + rng.up_to(f.jitter_ms),
            f.delay_ms + rng.up_to(f.jitter_ms),
        ];
        if f.partition {
            Counters::bump(&counters.partitioned);
            continue;
        }
        if lose < f.loss {
            Counters::bump(&counters.lost);
            continue;
        }
        let copies = if dup < f.duplicate {
            Counters::bump(&counters.duplicated);
            2
        } else {
            1
        };
        let data = bytes_of(&buf[..len]);
        for &delay in &delays[..copies] {
            if delay == 0 {
                if socket.send_to(&data, to).await.is_ok() {
                    Counters::bump(&counters.sent);
                }
                continue;
            }
            Counters::bump(&counters.delayed);
            let (socket, counters, data) = (socket.clone(), counters.clone(), data.clone());
            held.spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if socket.send_to(&data, to).await.is_ok() {
                    Counters::bump(&counters.sent);
                }
            });
        }
    }
}

fn bytes_of(b: &[u8]) -> Arc<[u8]> {
    Arc::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_in_range() {
        let (mut a, mut b) = (SplitMix64(7), SplitMix64(7));
        for _ in 0..1000 {
            let (x, y) = (a.unit(), b.unit());
            assert_eq!(x.to_bits(), y.to_bits());
            assert!((0.0..1.0).contains(&x));
            assert!(a.up_to(200) <= 200);
            b.up_to(200);
        }
        assert_eq!(a.up_to(0), 0);
    }

    #[test]
    fn forwards_both_ways_and_drops_everything_in_a_partition() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let server = UdpSocket::bind("127.0.0.1:0").await.expect("server");
            let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
            let relay = Relay::start(Faults::default(), 1, server.local_addr().expect("addr"))
                .expect("relay");
            let mut buf = [0u8; 16];
            client.send_to(b"ping", relay.addr()).await.expect("send");
            let (n, from) = server.recv_from(&mut buf).await.expect("recv");
            assert_eq!((&buf[..n], from), (&b"ping"[..], relay.addr()));
            server.send_to(b"pong", from).await.expect("send");
            let (n, from) = client.recv_from(&mut buf).await.expect("recv");
            assert_eq!((&buf[..n], from), (&b"pong"[..], relay.addr()));

            relay.set(Faults {
                partition: true,
                ..Faults::default()
            });
            client.send_to(b"lost", relay.addr()).await.expect("send");
            let r = tokio::time::timeout(Duration::from_millis(200), server.recv_from(&mut buf));
            assert!(r.await.is_err(), "a partition let a datagram through");
            let s = relay.stats();
            assert_eq!((s.received, s.sent, s.partitioned), (3, 2, 1));
        });
    }
}
