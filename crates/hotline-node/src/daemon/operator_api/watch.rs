//! Watch (SPEC.md §15.5.8): the node's events streamed to an operator, for as long as the
//! operator's credential holds.

use std::sync::Arc;

use hotline_protocol::wire::OperatorErrorCode as Code;
use hotline_protocol::wire::{self, operator_response::Response};

use super::super::Shared;
use super::{Operator, authorized, write_frame};
use hotline_transport::now_ms;

/// How often an open Watch re-checks its credential when no event comes.
const WATCH_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Streams events until the client goes away, the node stops, or the credential is revoked or
/// expires: then an `OperatorError` FORBIDDEN and FIN (§15.5.8). The credential is checked
/// before every event, on every reload, and every [`WATCH_RECHECK`].
pub(super) async fn watch(shared: Arc<Shared>, op: Arc<Operator>, mut send: quinn::SendStream) {
    let mut rx = shared.events.subscribe();
    let mut changes = shared.changes.subscribe();
    let mut tick = tokio::time::interval(WATCH_RECHECK);
    loop {
        // Every wake-up checks the credential once: before an event is sent, on a reload, and
        // on the tick.
        let ev = tokio::select! {
            ev = rx.recv() => Some(ev),
            changed = changes.changed() => {
                if changed.is_err() {
                    return; // the node is gone
                }
                None
            }
            _ = tick.tick() => None,
        };
        if let Err(why) = authorized(&shared, &op) {
            let forbidden = Response::Error(wire::OperatorError {
                code: Code::Forbidden as i32,
                message: why.to_owned(),
            });
            if write_frame(&mut send, forbidden).await {
                let _ = send.finish();
            }
            return;
        }
        let Some(ev) = ev else { continue };
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => wire::OperatorEvent {
                time_ms: now_ms(),
                kind: "lagged".into(),
                detail: format!("{n} events dropped"),
                ..Default::default()
            },
            Err(_) => {
                let _ = send.finish();
                return;
            }
        };
        if !write_frame(&mut send, Response::Event(ev)).await {
            return;
        }
    }
}
