//! `status`, `peers`, `whoami` and `watch`.

use std::io::IsTerminal;
use std::time::Duration;

use hotline_protocol::wire;
use serde_json::json;

use super::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::format::{self, clean, emit, emit_json, second};

/// `status`.
pub async fn status(ctx: &Ctx, json: bool) -> Result<()> {
    let (_cred, client) = ctx.open().await?;
    let s = client.status(wire::StatusRequest {}).await?;
    client.close().await;
    if json {
        emit_json(&format::status_json(&s));
    } else {
        emit(&format::status_text(&ctx.style, &s));
    }
    Ok(())
}

/// `peers`.
pub async fn peers(ctx: &Ctx, json: bool) -> Result<()> {
    let (_cred, client) = ctx.open().await?;
    let p = client.peers(wire::PeersRequest {}).await?;
    client.close().await;
    if json {
        emit_json(&format::peers_json(&p));
    } else {
        emit(&format::peers_text(&ctx.style, &p));
    }
    Ok(())
}

/// `whoami`: what the node says, checked against the credential file (§15.5.9).
pub async fn whoami(ctx: &Ctx, json: bool) -> Result<()> {
    let (cred, client) = ctx.open().await?;
    let w = client.whoami(wire::WhoAmIRequest {}).await?;
    let addr = client.addr();
    client.close().await;
    if w.node != cred.node.to_string() {
        return Err(Failure::new(
            Exit::Credential,
            format!(
                "the node at {addr} is {} but the credential was issued by {}: check --node / node_address",
                clean(&w.node),
                cred.node
            ),
        ));
    }
    let c = &cred.credential;
    if json {
        emit_json(&json!({
            "name": w.name,
            "role": format::role_name(w.role),
            "node": w.node,
            "node_name": w.node_name,
            "node_fingerprint": cred.node.fingerprint(),
            "node_address": addr.to_string(),
            "credential_file": cred.path.display().to_string(),
            "not_before_ms": c.not_before(),
            "not_after_ms": c.not_after(),
        }));
    } else {
        emit(&format!(
            "{} ({}) at node {} {} (fingerprint {})\nnode address   {addr}\ncredential     {}, valid {} to {}\n",
            clean(&w.name),
            format::role_name(w.role),
            clean(&w.node_name),
            cred.node,
            cred.node.fingerprint(),
            cred.path.display(),
            second(c.not_before()),
            second(c.not_after()),
        ));
    }
    Ok(())
}

/// One watch connection: prints events until the stream or the connection ends.
async fn watch_once(ctx: &Ctx, json: bool, connected: &mut bool) -> Result<()> {
    let (_cred, client) = ctx.open().await?;
    let mut events = client.watch().await?;
    if std::io::stderr().is_terminal() && !json {
        eprintln!(
            "Watching the events of the node at {} (Ctrl-C to stop)…",
            client.addr()
        );
    }
    *connected = true;
    while let Some(e) = events.next().await? {
        if json {
            emit(&format!("{}\n", format::event_json(&e)));
        } else {
            emit(&format::event_line(&ctx.style, &e));
        }
    }
    Ok(())
}

/// `watch`: live events until Ctrl-C. Reconnects with backoff if the node goes away (§15.3).
pub async fn watch(ctx: &Ctx, json: bool) -> Result<()> {
    let run = async {
        let mut backoff = Duration::from_millis(250);
        loop {
            let mut connected = false;
            let why = match watch_once(ctx, json, &mut connected).await {
                Ok(()) => "the node ended the event stream (shutting down?)".to_owned(),
                Err(f) if f.exit == Exit::Unreachable => f.message,
                Err(f) => return Err(f),
            };
            if connected {
                backoff = Duration::from_millis(250);
            }
            eprintln!("{why}; reconnecting in {:.1}s", backoff.as_secs_f32());
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    };
    tokio::select! {
        r = run => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
