//! Frames split across reads. QUIC keeps no write boundaries: a receiver may get one frame in
//! any number of pieces, cut at any byte, and must decode exactly what it would decode from
//! the whole frame (SPEC.md §5.1–5.2). Covered here for the framing decoder alone, for every
//! frame type, and for two sessions over the deterministic harness: each Hello cut at every
//! offset in both directions, every write of a whole exchange (Hello, heartbeats, envelopes,
//! receipts, ReceiptStored) delivered in random pieces down to single bytes, and a Close in
//! single bytes.

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::content::Precedence;
use hotline_protocol::frame::{
    self, Decoder, Frame, FrameError, FrameType, HEADER_LEN, StreamKind,
};
use hotline_protocol::hello::PeerHello;
use hotline_protocol::session::{Config, Event, StreamId, Transmit};
use hotline_protocol::sim::{Pair, Who, receipt_kinds};
use proptest::prelude::*;
use proptest::sample::{Index, select};

const ALL_TYPES: [FrameType; 6] = [
    FrameType::Hello,
    FrameType::Heartbeat,
    FrameType::Close,
    FrameType::Envelope,
    FrameType::Receipt,
    FrameType::ReceiptStored,
];

fn kind_of(ty: FrameType) -> StreamKind {
    if ty.is_control() {
        StreamKind::Control
    } else {
        StreamKind::Message
    }
}

/// Pushes `pieces` of one frame of type `ty` into a fresh decoder, draining after each push;
/// checks that the decoder never holds more than the frame's header and its type's limit.
fn decode_pieces(ty: FrameType, pieces: &[&[u8]]) -> (Vec<Frame>, Option<FrameError>) {
    let mut d = Decoder::new(kind_of(ty));
    let mut frames = Vec::new();
    for piece in pieces {
        d.push(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
        assert!(
            d.buffered() <= HEADER_LEN + ty.max_len(),
            "decoder holds {} bytes",
            d.buffered()
        );
    }
    assert_eq!(d.finish(), Ok(()), "bytes left over after the last piece");
    (frames, None)
}

/// `data` cut at the given points (any order, repeats allowed).
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| (*c).min(data.len())).collect();
    at.extend([0, data.len()]);
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// A frame of `ty` with a payload of `len` bytes, the same for a given seed.
fn frame_of(ty: FrameType, len: usize, seed: u8) -> Bytes {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    frame::encode(ty, &payload)
}

fn payload_len(ty: FrameType) -> impl Strategy<Value = usize> {
    let max = ty.max_len();
    prop_oneof![0..=max.min(2048), Just(max), (max - 16)..=max]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every frame type, cut at arbitrary points, decodes to the frame the whole encoding
    /// decodes to.
    #[test]
    fn every_frame_type_split_anywhere_decodes_as_the_whole_frame(
        (ty, len) in select(ALL_TYPES.to_vec()).prop_flat_map(|ty| (Just(ty), payload_len(ty))),
        seed in any::<u8>(),
        cuts in proptest::collection::vec(any::<Index>(), 0..24),
    ) {
        let wire = frame_of(ty, len, seed);
        let cuts: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        let whole = decode_pieces(ty, &[&wire]);
        prop_assert_eq!(whole.1, None);
        prop_assert_eq!(whole.0.len(), 1);
        prop_assert_eq!(whole.0[0].ty, ty);
        prop_assert_eq!(whole.0[0].payload.len(), len);
        prop_assert_eq!(decode_pieces(ty, &cut(&wire, &cuts)), whole);
    }
}

#[test]
fn every_frame_type_in_single_bytes_decodes_as_the_whole_frame() {
    for ty in ALL_TYPES {
        for len in [0, 1, 4, 5, 300, ty.max_len()] {
            let wire = frame_of(ty, len, 7);
            let whole = decode_pieces(ty, &[&wire]);
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            assert_eq!(decode_pieces(ty, &bytes), whole, "{ty:?} of {len} bytes");
            assert_eq!(whole.0[0].payload.len(), len);
        }
    }
}

/// The size check runs once the 5 header bytes are in, not before, whatever the pieces; and
/// nothing of the refused frame stays buffered.
#[test]
fn over_limit_length_is_refused_as_soon_as_the_header_is_complete() {
    for ty in ALL_TYPES {
        for len in [ty.max_len() as u32 + 1, u32::MAX] {
            let mut header = vec![ty.byte()];
            header.extend_from_slice(&len.to_be_bytes());
            for split in 0..=HEADER_LEN {
                let mut d = Decoder::new(kind_of(ty));
                d.push(&header[..split]);
                if split < HEADER_LEN {
                    assert_eq!(
                        d.next_frame(),
                        Ok(None),
                        "{ty:?}: refused before the header"
                    );
                }
                d.push(&header[split..]);
                assert_eq!(
                    d.next_frame(),
                    Err(FrameError::TooLarge {
                        ty,
                        len: u64::from(len),
                        max: ty.max_len()
                    }),
                    "{ty:?} cut at {split}"
                );
                assert_eq!(d.buffered(), 0);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Two sessions

const SEED: u64 = 11;

/// A pair just connected: both Hellos queued, nothing delivered.
fn connected() -> Pair {
    let mut p = Pair::new(SEED, Config::default());
    p.connect();
    p
}

/// Takes `who`'s Hello off its transmit queue, before the harness delivers it.
fn take_hello(p: &mut Pair, who: Who) -> Bytes {
    match p.node(who).session.poll_transmit() {
        Some(Transmit::Data {
            stream: StreamId::Control,
            data,
            fin: false,
        }) => data,
        other => panic!("expected {who:?}'s Hello, got {other:?}"),
    }
}

/// Hands `from`'s Hello to the other side in `pieces`, lets the pair run (the other Hello
/// goes whole), and returns the Hello the receiver verified.
fn hello_in_pieces(from: Who, pieces: impl Fn(&[u8]) -> Vec<&[u8]>) -> Option<PeerHello> {
    let to = if from == Who::A { Who::B } else { Who::A };
    let mut p = connected();
    let hello = take_hello(&mut p, from);
    let now = p.mono();
    for piece in pieces(&hello) {
        p.node(to)
            .session
            .handle_data(now, StreamId::Control, piece, false);
    }
    p.run_for(100);
    let downs: Vec<_> = [&p.a, &p.b]
        .iter()
        .flat_map(|n| &n.events)
        .filter(|e| matches!(e, Event::LinkDown { .. }))
        .collect();
    assert!(downs.is_empty(), "{from:?}'s Hello in pieces: {downs:?}");
    assert!(p.a.session.is_up() && p.b.session.is_up());
    p.node(to).session.peer_hello().cloned()
}

#[test]
fn hello_split_at_every_offset_brings_the_link_up_in_both_directions() {
    for from in [Who::A, Who::B] {
        let whole = hello_in_pieces(from, |h| vec![h]);
        assert!(whole.is_some());
        let len = take_hello(&mut connected(), from).len();
        for at in 0..=len {
            let got = hello_in_pieces(from, |h| cut(h, &[at]));
            assert_eq!(got, whole, "{from:?}'s Hello cut after byte {at}");
        }
        let got = hello_in_pieces(from, |h| h.chunks(1).collect());
        assert_eq!(got, whole, "{from:?}'s Hello in single bytes");
    }
}

/// A Close frame from the peer, in single bytes, ends the link with the peer's code.
#[test]
fn close_in_single_bytes_is_read_as_the_whole_close() {
    let mut p = connected();
    p.run_for(100);
    assert!(p.a.session.is_up() && p.b.session.is_up());
    let now = p.mono();
    p.a.session.close(now, CloseCode::Shutdown, "going down");
    let close = match p.a.session.poll_transmit() {
        Some(Transmit::Data {
            stream: StreamId::Control,
            data,
            fin: true,
        }) => data,
        other => panic!("expected the Close frame, got {other:?}"),
    };
    assert_eq!(close[0], FrameType::Close.byte());
    for byte in close.chunks(1) {
        p.b.session.handle_data(now, StreamId::Control, byte, false);
    }
    let down: Vec<_> = std::iter::from_fn(|| p.b.session.poll_event())
        .filter_map(|e| match e {
            Event::LinkDown {
                code,
                reason,
                by_peer,
            } => Some((code, reason, by_peer)),
            _ => None,
        })
        .collect();
    assert_eq!(
        down,
        vec![(CloseCode::Shutdown, "going down".to_owned(), true)]
    );
}

/// A whole exchange with every write delivered in random pieces: the Hellos, heartbeats
/// (RTT measured), envelopes both ways, their receipts, an asynchronous receipt and its
/// ReceiptStored. Nothing is refused and everything arrives once.
#[test]
fn whole_exchange_with_every_write_in_random_pieces() {
    for (seed, split) in [(1, 1), (2, 2), (3, 7), (4, 64), (5, 1000)] {
        let mut p = Pair::new(seed, Config::default());
        p.split = split;
        p.connect();
        p.run_for(100);
        assert!(p.a.session.is_up() && p.b.session.is_up(), "split {split}");
        let now = p.now;
        let from_a: Vec<_> = (0..4)
            .map(|i| {
                p.a.send(now, &mut p.rng, &format!("a{i}"), Precedence::Priority)
            })
            .collect();
        let from_b: Vec<_> = (0..4)
            .map(|i| {
                p.b.send(now, &mut p.rng, &format!("b{i}"), Precedence::Routine)
            })
            .collect();
        p.run_for(12_000);
        let now = p.now;
        let ack = p.b.acknowledge(now, &from_a[0], "seen");
        p.run_for(12_000);
        for (node, ids) in [(&p.a, &from_a), (&p.b, &from_b)] {
            for id in ids {
                assert_eq!(receipt_kinds(node, id)[0], "DELIVERED", "split {split}");
            }
        }
        assert_eq!(
            receipt_kinds(&p.a, &from_a[0]),
            vec!["DELIVERED", "ACKNOWLEDGED"]
        );
        assert_eq!(p.b.stored_confirmed, vec![*ack.sha256()]);
        assert!(p.quiescent(), "split {split}");
        for node in [&p.a, &p.b] {
            let mut log = node.accept_log.clone();
            log.sort();
            log.dedup();
            assert_eq!(log.len(), node.accept_log.len(), "accepted twice");
            assert_eq!(log.len(), 4);
            assert!(
                node.events.iter().any(|e| matches!(e, Event::Rtt(_))),
                "no heartbeat answered (split {split})"
            );
            let faults: Vec<_> = node
                .events
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::LinkDown { .. }
                            | Event::StreamError { .. }
                            | Event::Retransmit { .. }
                    )
                })
                .collect();
            assert!(faults.is_empty(), "split {split}: {faults:?}");
        }
    }
}

/// What an interop peer saw: a Heartbeat written between two pieces of the Hello (a sender
/// whose writes are not frame-atomic) is read as Hello bytes, so its header `02 00 00 00`
/// becomes the Hello's length (cut after byte 1 or 2: FRAME_TOO_LARGE naming 2^25 or 2^17
/// bytes) or its payload (cut after byte 4 or later: MALFORMED_FRAME). Splitting alone never
/// does this (above); the receiver is right to refuse.
#[test]
fn a_heartbeat_written_inside_the_hello_is_read_as_hello_bytes_and_refused() {
    let heartbeat = frame::encode(FrameType::Heartbeat, &[0x08, 0x01]);
    for (at, want) in [
        (1, Some((CloseCode::FrameTooLarge, "33554432"))),
        (2, Some((CloseCode::FrameTooLarge, "131072"))),
        // The header now asks for a 512-byte payload: more than arrives, so the receiver waits
        // (HELLO_TIMEOUT later).
        (3, None),
        (4, Some((CloseCode::MalformedFrame, ""))),
        (5, Some((CloseCode::MalformedFrame, ""))),
        (100, Some((CloseCode::MalformedFrame, ""))),
    ] {
        let mut p = connected();
        let hello = take_hello(&mut p, Who::A);
        let now = p.mono();
        let s = &mut p.b.session;
        for piece in [&hello[..at], &heartbeat, &hello[at..]] {
            s.handle_data(now, StreamId::Control, piece, false);
        }
        let down: Vec<_> = std::iter::from_fn(|| s.poll_event())
            .filter_map(|e| match e {
                Event::LinkDown { code, reason, .. } => Some((code, reason)),
                _ => None,
            })
            .collect();
        assert!(!s.is_up(), "cut {at}");
        match want {
            Some((code, len)) => {
                assert_eq!(down.len(), 1, "cut {at}: {down:?}");
                assert_eq!(down[0].0, code, "cut {at}");
                assert!(down[0].1.contains(len), "cut {at}: {}", down[0].1);
            }
            None => assert!(down.is_empty(), "cut {at}: {down:?}"),
        }
    }
}
