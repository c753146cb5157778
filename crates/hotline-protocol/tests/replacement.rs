//! A connection that replaces the UP one (SPEC.md §3.9, issue 13 item A5): the link moves to it
//! only once the peer's Hello on it verified. Before, the winner of a dial race replaced a
//! working connection at once, so anyone holding only the peer's TLS key could take the link
//! down for the length of a Hello timeout, over and over.

use hotline_protocol::codes::CloseCode;
use hotline_protocol::content::Precedence;
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::hello::Side;
use hotline_protocol::session::{Config, Event, HelloProgress, StreamId, Transmit};
use hotline_protocol::sim::{EPOCH, Pair, SimNode, receipt_kinds};
use hotline_protocol::wire;
use prost::Message;

fn up_pair(seed: u64) -> Pair {
    let mut p = Pair::new(seed, Config::default());
    p.connect();
    p.run_for(100);
    assert!(p.a.session.is_up() && p.b.session.is_up(), "link not up");
    p
}

/// The link's ups and downs `n` reported, in order.
fn link_events(n: &SimNode) -> Vec<String> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::LinkUp(_) => Some("up".to_string()),
            Event::LinkDown { code, .. } => Some(format!("down:{code}")),
            _ => None,
        })
        .collect()
}

fn exporter(byte: u8) -> [u8; 32] {
    [byte; 32]
}

/// Both sides replace the UP connection by a verified one; a message in flight on the old
/// connection arrives exactly once, over the new one.
#[test]
fn the_link_moves_to_a_new_connection_once_its_hello_verified() {
    let mut p = up_pair(1);
    let now = p.now;
    let id = p.a.send(now, &mut p.rng, "in flight", Precedence::Flash);
    // A's envelope has left but nothing has arrived yet.
    let (a, b) = p.replace_connection();
    assert_eq!((a, b), (HelloProgress::Verified, HelloProgress::Verified));
    p.run_for(2_000);
    for n in [&p.a, &p.b] {
        assert_eq!(
            link_events(n),
            ["up", "down:DUPLICATE_CONNECTION", "up"],
            "{n:?}"
        );
        assert!(n.session.is_up());
    }
    assert_eq!(receipt_kinds(&p.a, &id), vec!["DELIVERED"]);
    assert_eq!(p.b.accept_log, vec![id]);
}

/// A Hello that fails on the new connection (here: bound to another TLS session, as a holder
/// of the peer's TLS key without its identity key would produce) leaves the UP connection
/// alone: no event, nothing requeued, and traffic goes on over it.
#[test]
fn a_failed_hello_on_a_new_connection_leaves_the_up_one_untouched() {
    let mut p = up_pair(2);
    let mono = p.mono();
    let (_, forged) = p.a.session.start_pending(mono, Side::Client, exporter(1));
    let (mut pending, _ours) = p.b.session.start_pending(mono, Side::Server, exporter(2));
    let before = p.b.events.len();
    assert_eq!(
        p.b.session.pending_data(&mut pending, &forged, false),
        HelloProgress::Failed(CloseCode::BadChannelBinding, "peer Hello refused")
    );
    assert!(!pending.verified());
    assert!(!p.b.session.adopt(mono, pending), "adopted a failed Hello");
    assert_eq!(p.b.events.len(), before);
    assert!(p.b.session.is_up());
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "still flowing", Precedence::Routine);
    p.run_for(1_000);
    assert_eq!(receipt_kinds(&p.a, &id), vec!["DELIVERED"]);
    assert_eq!(link_events(&p.b), ["up"]);
}

/// Anything but a Hello first, and a control stream finished before the Hello, fail too.
#[test]
fn the_new_connection_must_start_with_a_hello() {
    let p = up_pair(3);
    let mono = p.mono();
    let (mut pending, _) = p.b.session.start_pending(mono, Side::Server, exporter(3));
    assert_eq!(
        p.b.session
            .pending_data(&mut pending, &heartbeat_frame(1), false),
        HelloProgress::Failed(
            CloseCode::UnexpectedFrame,
            "first control frame must be Hello"
        )
    );
    let (mut pending, _) = p.b.session.start_pending(mono, Side::Server, exporter(3));
    let (_, hello) = p.a.session.start_pending(mono, Side::Client, exporter(3));
    assert_eq!(
        p.b.session
            .pending_data(&mut pending, &hello[..hello.len() - 1], true),
        HelloProgress::Failed(
            CloseCode::ProtocolViolation,
            "control stream finished without Close"
        )
    );
    assert!(p.b.session.is_up());
}

/// The peer's Hello may come in pieces (SPEC.md §5.1), and what follows it on the control
/// stream in the same read is processed once the connection is adopted: a ping right after
/// the Hello is echoed on the new connection. Our Hello is not sent a second time.
#[test]
fn a_hello_in_pieces_and_the_frames_after_it() {
    let mut p = up_pair(4);
    let mono = p.mono();
    let (_, hello) = p.a.session.start_pending(mono, Side::Client, exporter(4));
    let mut bytes = hello.to_vec();
    bytes.extend_from_slice(&heartbeat_frame(77));
    let (mut pending, ours) = p.b.session.start_pending(mono, Side::Server, exporter(4));
    assert_eq!(ours[0], 0x01, "our Hello frame");
    // Drain what B had queued on the old connection.
    while p.b.session.poll_transmit().is_some() {}
    let cut = hello.len() - 1;
    for (i, byte) in bytes[..cut].iter().enumerate() {
        assert_eq!(
            p.b.session.pending_data(&mut pending, &[*byte], false),
            HelloProgress::NeedMore,
            "after byte {i}"
        );
    }
    assert_eq!(
        p.b.session.pending_data(&mut pending, &bytes[cut..], false),
        HelloProgress::Verified
    );
    assert!(p.b.session.adopt(mono, pending));
    let ts: Vec<Transmit> = std::iter::from_fn(|| p.b.session.poll_transmit()).collect();
    let mut dec = Decoder::new(StreamKind::Control);
    for t in &ts {
        if let Transmit::Data {
            stream: StreamId::Control,
            data,
            ..
        } = t
        {
            dec.push(data);
        }
    }
    let frames: Vec<_> = std::iter::from_fn(|| dec.next_frame().ok().flatten()).collect();
    assert!(
        frames.iter().all(|f| f.ty != FrameType::Hello),
        "B sent its Hello twice"
    );
    let echoes: Vec<u64> = frames
        .iter()
        .filter(|f| f.ty == FrameType::Heartbeat)
        .map(|f| {
            wire::Heartbeat::decode(f.payload.clone())
                .expect("decodes")
                .echo
        })
        .collect();
    assert!(echoes.contains(&77), "{echoes:?}");
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
