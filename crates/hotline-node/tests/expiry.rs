//! `hotlined check` warns 30 days before a key, certificate or credential lapses (issue 14,
//! item 6): what a node made today shows, and when, if nobody renews anything; and the running
//! node exports every such time as a metric.

mod common;
mod raw_peer;

use hotline_node::{commands, operator};
use hotline_protocol::time::DAY;
use hotline_transport::now_ms;

#[test]
fn check_warns_a_month_ahead_of_every_lapse_and_says_what_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("a");
    commands::init(&dir, "CERT-A", "127.0.0.1:4433").expect("init");
    operator::add(&dir, "Anna Officer", "officer", &tmp.path().join("anna")).expect("operator");
    let now = now_ms();
    assert_eq!(
        commands::expiry_warnings_at(&dir, now),
        Vec::<String>::new()
    );

    // Encryption keys renew by themselves 10 days before they expire (`[keys]`): a node that
    // is not running misses the renewal, and a day after it was due, `check` says so.
    assert_eq!(
        commands::expiry_warnings_at(&dir, now + 20 * DAY),
        Vec::<String>::new()
    );
    let w = commands::expiry_warnings_at(&dir, now + 22 * DAY);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with("the node's newest encryption key expires on")
            && w[0].contains("hotlined keys rotate"),
        "{w:#?}"
    );

    // Eleven months on: the encryption key (lapsed long ago: the node was never run) and the
    // credential (one year).
    let w = commands::expiry_warnings_at(&dir, now + 340 * DAY);
    assert_eq!(w.len(), 2, "{w:#?}");
    for (what, fix) in [
        (
            "the node's newest encryption key expired on",
            "hotlined keys rotate",
        ),
        (
            "the operator credential of Anna Officer expires on",
            "hotlined operator renew",
        ),
    ] {
        assert!(
            w.iter().any(|l| l.starts_with(what) && l.contains(fix)),
            "no warning {what:?}: {w:#?}"
        );
    }

    // A year on: the credential has lapsed too.
    let w = commands::expiry_warnings_at(&dir, now + 400 * DAY);
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w.iter()
            .any(|l| l.starts_with("the operator credential of Anna Officer expired on")),
        "{w:#?}"
    );

    // The TLS certificate `init` makes runs longer; its turn comes too.
    let w = commands::expiry_warnings_at(&dir, now + 790 * DAY);
    assert!(
        w.iter()
            .any(|l| l.starts_with("the node's TLS certificate expires on")
                && l.contains("issue a new one")),
        "{w:#?}"
    );
}

/// The value of the expiry gauge for `kind` and `name`, in Unix seconds.
fn expiry_gauge(text: &str, kind: &str, name: &str) -> Option<u64> {
    let prefix =
        format!("hotline_key_expiry_timestamp_seconds{{kind=\"{kind}\",name=\"{name}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_running_node_exports_when_each_key_and_credential_lapses() {
    raw_peer::block_on(async {
        let w = raw_peer::World::start_with(common::with_bruno).await;
        w.wait_for_metric("hotline_key_expiry_timestamp_seconds{kind=\"operator_credential\"")
            .await;
        let text = w.b.metrics_text();
        let year_on = (now_ms() + 365 * DAY) / 1000;
        let near = |v: Option<u64>| v.is_some_and(|v| v.abs_diff(year_on) < 2 * 86_400);
        // Encryption keys live 30 days by default (`[keys]`, SPEC.md §4.3.4).
        let month_on = (now_ms() + 30 * DAY) / 1000;
        assert!(
            expiry_gauge(&text, "encryption_key", "")
                .is_some_and(|v| v.abs_diff(month_on) < 86_400),
            "{text}"
        );
        // The peer's newest key too (from its bundle here), by alias.
        assert!(
            expiry_gauge(&text, "peer_encryption_key", "cert-a")
                .is_some_and(|v| v.abs_diff(month_on) < 86_400),
            "{text}"
        );
        assert!(
            near(expiry_gauge(&text, "operator_credential", "Bruno")),
            "{text}"
        );
        assert!(
            expiry_gauge(&text, "tls_certificate", "").is_some_and(|v| v > year_on),
            "{text}"
        );
        // The same times in the operator API's status, soonest first (SPEC.md §15.5.5).
        let (bruno, _watch) =
            common::connect_and_watch(&w.b_dir.join(common::BRUNO), w.b_addr).await;
        let st = match bruno
            .call(hotline_protocol::wire::operator_request::Request::Status(
                Default::default(),
            ))
            .await
            .expect("status")
        {
            hotline_protocol::wire::operator_response::Response::Status(s) => s,
            other => panic!("{other:?}"),
        };
        let kinds: Vec<&str> = st.expiries.iter().map(|e| e.kind.as_str()).collect();
        for k in ["encryption_key", "operator_credential", "tls_certificate"] {
            assert!(kinds.contains(&k), "{k} missing: {st:?}");
        }
        assert!(
            st.expiries.windows(2).all(|p| p[0].at_ms <= p[1].at_ms),
            "{st:?}"
        );
        let bruno_at = st
            .expiries
            .iter()
            .find(|e| e.kind == "operator_credential" && e.name == "Bruno")
            .map(|e| e.at_ms / 1000);
        assert_eq!(
            bruno_at,
            expiry_gauge(&text, "operator_credential", "Bruno")
        );
        w.stop().await;
    });
}
