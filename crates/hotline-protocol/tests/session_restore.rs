//! What a session tells its driver about the peer's `received_through` (SPEC.md §10.1, §10.2):
//! the second line of defence of a node whose storage was restored from an older copy.

use hotline_protocol::content::Precedence;
use hotline_protocol::session::Config;
use hotline_protocol::sim::Pair;

/// B's Heartbeats carry `received_through`; A's status shows the latest one, so that a driver
/// can compare it with the highest sequence its storage holds.
#[test]
fn status_shows_the_received_through_of_the_peers_last_heartbeat() {
    let mut p = Pair::new(11, Config::default());
    p.connect();
    p.run_for(100);
    assert!(p.a.session.is_up() && p.b.session.is_up());
    assert_eq!(p.a.session.status().peer_received_through, 0);
    let now = p.now;
    for i in 0..3 {
        p.a.send(now, &mut p.rng, &format!("m{i}"), Precedence::Routine);
    }
    // Delivered at once; B's next Heartbeat (every 5 s) says so.
    p.run_for(6_000);
    assert!(p.a.all_delivered());
    assert_eq!(p.b.session.status().received_through, 3);
    assert_eq!(p.a.session.status().peer_received_through, 3);
    // B's own view of A is unaffected: A received nothing from B.
    assert_eq!(p.b.session.status().peer_received_through, 0);
}
