//! Two-peer tests of what a session does against clocks that step and peers that push too
//! hard: timers on the monotonic clock (SPEC.md §14.8), the ping limit and coalesced echoes
//! (§11.1, §13.2), receipt streams through the rate limit (§13.2), jittered retransmission
//! (§9.7), and the answer to a Close frame (§3.8).

use hotline_protocol::codes::CloseCode;
use hotline_protocol::content::Precedence;
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::session::{Config, Event, StreamId, Transmit};
use hotline_protocol::sim::{EPOCH, Pair, SimNode, Who};
use hotline_protocol::wire;
use prost::Message;

const HOUR: i64 = 3_600_000;

fn up_pair(seed: u64, config: Config) -> Pair {
    let mut p = Pair::new(seed, config);
    p.connect();
    p.run_for(100);
    assert!(p.a.session.is_up() && p.b.session.is_up(), "link not up");
    p
}

fn link_downs(n: &SimNode) -> Vec<(CloseCode, bool)> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::LinkDown { code, by_peer, .. } => Some((*code, *by_peer)),
            _ => None,
        })
        .collect()
}

fn count(n: &SimNode, pred: impl Fn(&Event) -> bool) -> usize {
    n.events.iter().filter(|e| pred(e)).count()
}

fn heartbeat_frame(ping: u64) -> Vec<u8> {
    let hb = wire::Heartbeat {
        ping,
        echo: 0,
        time_ms: EPOCH,
        last_sequence_sent: 0,
        received_through: 0,
    };
    frame::encode(FrameType::Heartbeat, &hb.encode_to_vec()).to_vec()
}

/// Everything `who` wants to transmit now, taken off its queue.
fn transmits(p: &mut Pair, who: Who) -> Vec<Transmit> {
    let s = &mut p.node(who).session;
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

/// The Heartbeats among `ts`, decoded.
fn heartbeats(ts: &[Transmit]) -> Vec<wire::Heartbeat> {
    let mut dec = Decoder::new(StreamKind::Control);
    for t in ts {
        if let Transmit::Data {
            stream: StreamId::Control,
            data,
            ..
        } = t
        {
            dec.push(data);
        }
    }
    std::iter::from_fn(|| dec.next_frame().ok().flatten())
        .filter(|f| f.ty == FrameType::Heartbeat)
        .map(|f| wire::Heartbeat::decode(f.payload).expect("heartbeat decodes"))
        .collect()
}

fn closes(ts: &[Transmit]) -> Vec<CloseCode> {
    ts.iter()
        .filter_map(|t| match t {
            Transmit::Close { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

// ----- A7: timers on the monotonic clock ---------------------------------------------------

/// The wall clocks of both nodes jump an hour back, then an hour forward (each the other way
/// from its peer), while an envelope cannot get through: its receipt timeout still fires on
/// time and it is sent again each time, heartbeats go on (RTT measured), the link never goes
/// down, and the envelope is delivered once the clocks are right and the network lets it.
#[test]
fn wall_clock_steps_neither_stall_retransmission_and_liveness_nor_kill_the_link() {
    let mut p = up_pair(21, Config::default());
    p.faults.drop = 1.0; // message streams are lost; the control stream still flows
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "across clock steps", Precedence::Flash);
    p.run_for(1_000);
    let retransmits = |n: &SimNode| count(n, |e| matches!(e, Event::Retransmit { .. }));
    let rtts = |n: &SimNode| count(n, |e| matches!(e, Event::Rtt(_)));
    let (rtt_a, rtt_b) = (rtts(&p.a), rtts(&p.b));

    p.a.wall_offset = -HOUR;
    p.b.wall_offset = HOUR;
    p.run_for(35_000);
    assert_eq!(
        retransmits(&p.a),
        1,
        "the receipt timeout fired once in 35 s"
    );
    assert!(
        rtts(&p.a) >= rtt_a + 6 && rtts(&p.b) >= rtt_b + 6,
        "heartbeats stalled"
    );

    p.a.wall_offset = HOUR;
    p.b.wall_offset = -HOUR;
    let (rtt_a, rtt_b) = (rtts(&p.a), rtts(&p.b));
    p.run_for(35_000);
    assert_eq!(retransmits(&p.a), 2, "the next attempt timed out once more");
    assert!(
        rtts(&p.a) >= rtt_a + 6 && rtts(&p.b) >= rtt_b + 6,
        "heartbeats stalled"
    );

    // The clocks are set right (B an hour behind would rightly refuse the envelope as
    // CREATED_IN_FUTURE: that check is on the wall clock), and the network heals.
    p.a.wall_offset = 0;
    p.b.wall_offset = 0;
    p.faults.drop = 0.0;
    p.run_for(40_000);
    assert!(link_downs(&p.a).is_empty() && link_downs(&p.b).is_empty());
    assert!(p.a.session.is_up() && p.b.session.is_up());
    assert_eq!(p.b.accept_log, vec![id], "delivered exactly once");
    assert!(p.a.all_delivered());
}

/// Only what goes on the wire and what is signed reads the wall clock: the Hello and the
/// heartbeats carry the sender's wall time, the envelope's `created_ms` too.
#[test]
fn hello_heartbeat_and_envelope_carry_the_wall_clock() {
    let mut p = Pair::new(22, Config::default());
    p.a.wall_offset = -HOUR;
    p.connect();
    p.run_for(100);
    let wall_a = EPOCH as i64 - HOUR;
    let hello = p.b.session.peer_hello().expect("A's Hello verified");
    assert_eq!(hello.time as i64, wall_a);
    let hb = heartbeats(&transmits(&mut p, Who::A));
    assert!(hb.is_empty(), "nothing queued between runs");
    let now = p.now;
    p.a.session.probe(p.mono());
    let hb = heartbeats(&transmits(&mut p, Who::A));
    assert_eq!(hb.len(), 1);
    assert_eq!(hb[0].time_ms as i64, now as i64 - HOUR);
    let id = p.a.send(now, &mut p.rng, "dated", Precedence::Routine);
    assert_eq!(p.a.outbox[&id].header().created as i64, now as i64 - HOUR);
    let since = p.a.session.status().since as i64;
    assert!(
        (wall_a..wall_a + 100).contains(&since),
        "link up at {since}"
    );
}

// ----- A1: the ping limit and coalesced echoes ---------------------------------------------

/// A peer that pings far faster than the heartbeat interval (each ping its own read) gets its
/// burst of 16 answered (less the ping that came with the link), then the connection closed
/// with RATE_LIMITED.
#[test]
fn a_ping_flood_closes_the_connection_with_rate_limited() {
    let mut p = up_pair(23, Config::default());
    let _ = transmits(&mut p, Who::B);
    let now = p.mono();
    for ping in 1..=200u64 {
        p.b.session
            .handle_data(now, StreamId::Control, &heartbeat_frame(ping), false);
    }
    let ts = transmits(&mut p, Who::B);
    let echoes: Vec<u64> = heartbeats(&ts).iter().map(|h| h.echo).collect();
    let burst = echoes.len() as u64;
    assert!((15..=16).contains(&burst), "{echoes:?}");
    assert_eq!(
        echoes,
        (1..=burst).collect::<Vec<_>>(),
        "the burst answered"
    );
    assert_eq!(closes(&ts), vec![CloseCode::RateLimited]);
    let downs: Vec<_> = std::iter::from_fn(|| p.b.session.poll_event())
        .filter_map(|e| match e {
            Event::LinkDown { code, by_peer, .. } => Some((code, by_peer)),
            _ => None,
        })
        .collect();
    assert_eq!(downs, vec![(CloseCode::RateLimited, false)]);
}

/// Pings at the limit's sustained rate (4 a second) are all answered, for as long as they
/// come.
#[test]
fn pings_at_four_a_second_are_all_answered() {
    let mut p = up_pair(24, Config::default());
    let _ = transmits(&mut p, Who::B);
    let start = p.mono();
    for ping in 1..=120u64 {
        let at = start.after(ping * 250);
        p.b.session
            .handle_data(at, StreamId::Control, &heartbeat_frame(ping), false);
    }
    let ts = transmits(&mut p, Who::B);
    let answered = heartbeats(&ts).iter().filter(|h| h.echo != 0).count();
    assert_eq!(answered, 120);
    assert!(closes(&ts).is_empty() && p.b.session.is_up());
}

/// Pings read together (a peer that wrote faster than we read) are answered for the latest
/// three only: a pinger keeps at least its three latest pings, earlier echoes could be
/// unmatched anyway (SPEC.md §11.1). Two read together are both answered.
#[test]
fn pings_read_together_get_replies_for_the_latest_three() {
    let mut p = up_pair(25, Config::default());
    let _ = transmits(&mut p, Who::B);
    let batch: Vec<u8> = (1..=10).flat_map(heartbeat_frame).collect();
    let now = p.mono();
    p.b.session
        .handle_data(now, StreamId::Control, &batch, false);
    let hb = heartbeats(&transmits(&mut p, Who::B));
    assert_eq!(
        hb.iter().map(|h| h.echo).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    let pair: Vec<u8> = (11..=12).flat_map(heartbeat_frame).collect();
    p.b.session
        .handle_data(now.after(1_000), StreamId::Control, &pair, false);
    let hb = heartbeats(&transmits(&mut p, Who::B));
    assert_eq!(hb.iter().map(|h| h.echo).collect::<Vec<_>>(), vec![11, 12]);
    assert!(p.b.session.is_up());
}

/// Our own probes keep to the same limit, so a peer that keeps dialing cannot make us flood it
/// with pings (and be closed by a peer that enforces the limit).
#[test]
fn probes_beyond_the_ping_limit_are_not_sent() {
    let mut p = up_pair(26, Config::default());
    let _ = transmits(&mut p, Who::A);
    let now = p.mono();
    for _ in 0..100 {
        p.a.session.probe(now);
    }
    let sent = heartbeats(&transmits(&mut p, Who::A)).len();
    assert!((14..=16).contains(&sent), "{sent} probes sent at once");
    p.run_for(60_000);
    assert!(link_downs(&p.a).is_empty() && link_downs(&p.b).is_empty());
}

// ----- A2: receipt streams take tokens -----------------------------------------------------

/// Asynchronous receipts (officers' acknowledgements) take tokens from the same bucket as
/// envelopes: beyond the burst their streams are reset with RATE_LIMITED, and the receipts
/// still all arrive, after the sender's backoff.
#[test]
fn receipt_streams_beyond_the_burst_are_reset_rate_limited_and_arrive_later() {
    let config = Config {
        rate_per_s: 2,
        burst: 3,
        ..Config::default()
    };
    let mut p = up_pair(27, config);
    let now = p.now;
    let ids: Vec<_> = (0..8)
        .map(|i| {
            let subject = format!("to acknowledge {i}");
            p.a.send(now, &mut p.rng, &subject, Precedence::Routine)
        })
        .collect();
    p.run_for(30_000);
    assert!(p.a.all_delivered(), "the envelopes got through the limit");
    let limited = |n: &SimNode| {
        count(n, |e| {
            matches!(
                e,
                Event::StreamError {
                    code: CloseCode::RateLimited,
                    ..
                }
            )
        })
    };
    assert_eq!(limited(&p.a), 0, "A has received no stream yet");
    let now = p.now;
    for id in &ids {
        p.b.acknowledge(now, id, "seen");
    }
    p.run_for(60_000);
    assert!(limited(&p.a) >= 5, "receipt streams beyond the burst reset");
    assert_eq!(
        p.b.stored_confirmed.len(),
        ids.len(),
        "every receipt stored"
    );
    for id in &ids {
        let kinds = hotline_protocol::sim::receipt_kinds(&p.a, id);
        assert!(kinds.contains(&"ACKNOWLEDGED"), "{kinds:?}");
    }
    assert!(link_downs(&p.a).is_empty() && link_downs(&p.b).is_empty());
}

// ----- B §9.7: jittered retransmission -----------------------------------------------------

/// A's in-flight count, sampled every millisecond from 150 to 350 ms after eight envelopes
/// timed out together.
fn in_flight_after_a_common_timeout(seed: u64) -> Vec<usize> {
    let mut p = up_pair(seed, Config::default());
    p.faults.drop = 1.0;
    let now = p.now;
    for i in 0..8 {
        let subject = format!("batch {i}");
        p.a.send(now, &mut p.rng, &subject, Precedence::Routine);
    }
    p.run_for(1_000);
    assert_eq!(p.a.session.status().in_flight, 8);
    p.run_until(now + 30_000);
    p.run_for(1);
    assert_eq!(p.a.session.status().in_flight, 0, "all timed out at once");
    p.run_for(149);
    (0..200)
        .map(|_| {
            p.run_for(1);
            p.a.session.status().in_flight
        })
        .collect()
}

/// Items that time out together are not all sent again in the same instant: the 250 ms
/// backoff is spread over 188..=312 ms. The spread comes from the session's seed: the same
/// seed replays exactly.
#[test]
fn items_that_time_out_together_are_retried_at_spread_times() {
    let samples = in_flight_after_a_common_timeout(28);
    let mut steps = samples.clone();
    steps.dedup();
    assert!(
        steps.len() >= 4,
        "retries came back in {} steps: {steps:?}",
        steps.len() - 1
    );
    assert_eq!(samples.first(), Some(&0), "none before 150 ms");
    assert_eq!(samples.last(), Some(&8), "all by 350 ms");
    assert_eq!(
        samples,
        in_flight_after_a_common_timeout(28),
        "deterministic"
    );
    assert_ne!(samples, in_flight_after_a_common_timeout(29), "seeded");
}

// ----- B §3.8: the answer to a Close frame -------------------------------------------------

/// A Close frame is answered by closing the connection with NO_ERROR, whatever code it
/// carries; the link-down event shows the peer's code (an unregistered one as
/// PROTOCOL_VIOLATION, a Close that does not decode as MALFORMED_FRAME).
#[test]
fn a_close_frame_is_answered_with_no_error_and_its_code_is_the_reason() {
    let close = |code: u32| {
        let c = wire::Close {
            code,
            reason: "bye".into(),
        };
        frame::encode(FrameType::Close, &c.encode_to_vec()).to_vec()
    };
    let cases = [
        (close(CloseCode::Shutdown.code()), CloseCode::Shutdown),
        (close(CloseCode::NoError.code()), CloseCode::NoError),
        (close(CloseCode::LinkTimeout.code()), CloseCode::LinkTimeout),
        (close(0x4242), CloseCode::ProtocolViolation),
        (
            frame::encode(FrameType::Close, &[0xff, 0xff]).to_vec(),
            CloseCode::MalformedFrame,
        ),
    ];
    for (i, (bytes, shown)) in cases.into_iter().enumerate() {
        let mut p = up_pair(30 + i as u64, Config::default());
        let _ = transmits(&mut p, Who::B);
        let _: Vec<_> = std::iter::from_fn(|| p.b.session.poll_event()).collect();
        let now = p.mono();
        p.b.session
            .handle_data(now, StreamId::Control, &bytes, true);
        let ts = transmits(&mut p, Who::B);
        assert_eq!(closes(&ts), vec![CloseCode::NoError], "case {i}");
        assert!(
            heartbeats(&ts).is_empty(),
            "nothing more on the control stream"
        );
        let downs: Vec<_> = std::iter::from_fn(|| p.b.session.poll_event())
            .filter_map(|e| match e {
                Event::LinkDown { code, by_peer, .. } => Some((code, by_peer)),
                _ => None,
            })
            .collect();
        assert_eq!(downs, vec![(shown, true)], "case {i}");
    }
}

/// SPEC.md §11.2: the skew between the two clocks is measured from Hello and Heartbeat times,
/// and follows a clock that is stepped.
#[test]
fn clock_skew_is_measured_from_hello_and_heartbeats() {
    let mut p = up_pair(31, Config::default());
    p.run_for(6_000);
    let skew = |n: &SimNode| n.session.status().clock_skew_ms.expect("measured");
    assert!(
        skew(&p.a).abs() < 50 && skew(&p.b).abs() < 50,
        "clocks agree"
    );
    // B's clock runs 90 s ahead: A sees +90 s, B sees -90 s, once heartbeats carried it.
    p.b.wall_offset = 90_000;
    p.run_for(11_000);
    assert!((skew(&p.a) - 90_000).abs() < 50, "{}", skew(&p.a));
    assert!((skew(&p.b) + 90_000).abs() < 50, "{}", skew(&p.b));
}

/// SPEC.md §13.2: the bytes of envelope and receipt frames come out of a byte budget too; an
/// envelope over it is reset RATE_LIMITED and gets through later, exactly once.
#[test]
fn envelopes_beyond_the_byte_budget_are_reset_rate_limited_and_arrive_later() {
    let config = Config {
        rate_per_s: 10_000,
        burst: 10_000,
        bytes_per_s: 1_000,
        byte_burst: 3_000,
        ..Config::default()
    };
    let mut p = up_pair(33, config);
    let now = p.now;
    for i in 0..8 {
        let subject = format!("bulky {i}");
        p.a.send(now, &mut p.rng, &subject, Precedence::Routine);
    }
    p.run_for(120_000);
    let limited = count(&p.b, |e| {
        matches!(
            e,
            Event::StreamError {
                code: CloseCode::RateLimited,
                ..
            }
        )
    });
    assert!(
        limited >= 3,
        "only {limited} streams were over the byte budget"
    );
    assert!(p.a.all_delivered(), "every envelope got through in the end");
    let mut log = p.b.accept_log.clone();
    log.sort();
    log.dedup();
    assert_eq!(log.len(), 8, "each accepted once");
}
