//! `hotline-fault-node DIR`: the node of DIR, started as `hotlined run --dir DIR` starts it
//! (the same library calls), and driven over stdin and stdout by the network-fault tests.
//!
//! Those tests run it inside a network namespace (`ip netns exec NS hotline-fault-node DIR`),
//! where their own process cannot reach the node's address; the pipes reach it anywhere.
//! `hotlined` itself belongs to another package, whose binaries Cargo does not hand to this
//! package's tests, so this small binary stands in for it. It also acts as the node's duty
//! officer, in process: `Node::submit` is what the operator API's Send calls.
//!
//! Lines it reads (stdin):
//! - `SEND <n> <label>`: submit n messages to the peer (precedences in turn), concurrently
//!   with everything else;
//! - `STATUS`: report progress;
//! - `STOP`, or the end of stdin (the test went away): shut down gracefully and exit.
//!
//! Lines it writes (stdout), each in one write:
//! - `STARTED <listen address>` once the node runs;
//! - `LINK UP` / `LINK DOWN` whenever the link to the peer changes (checked every 20 ms);
//! - `ACCEPTED <id hex>` when `Node::submit` returned Ok, and `SENT <n>` after the n of a SEND;
//! - `REFUSED <why>` for a submission that failed;
//! - `STATUS <stored> <pending> <transmitted>`: messages stored for the peer (its last
//!   sequence number), those still waiting for a receipt, and envelopes transmitted including
//!   retransmissions;
//! - `STOPPED` after a graceful shutdown, or `FAILED <why>` before exiting with status 2.
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::sqlite::SqliteStore;
use hotline_protocol::NodeId;
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_transport::material::Material;
use hotline_transport::now_ms;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        say("FAILED usage: hotline-fault-node DIR");
        return ExitCode::from(2);
    };
    hotline_node::daemon::init_logging(false);
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
        .and_then(|rt| rt.block_on(run(&dir)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("FAILED {e}"));
            ExitCode::from(2)
        }
    }
}

/// One line to stdout, in a single write.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{line}\n").as_bytes());
    let _ = out.flush();
}

async fn run(dir: &Path) -> Result<(), String> {
    // As `hotline_node::daemon::run` does.
    let cfg = config::Config::load(dir).map_err(|e| format!("config: {e}"))?;
    let material = Material::load(dir).map_err(|e| format!("keys: {e}"))?;
    let store = SqliteStore::open(&dir.join(config::DB_FILE)).map_err(|e| format!("db: {e}"))?;
    let now = now_ms();
    let officer = Arc::new(
        OfficerKey::generate(
            &material.identity,
            "Fault Tester",
            Role::Officer,
            now - 60_000,
            now + 3_600_000,
            &mut rand_core::UnwrapErr(getrandom::SysRng),
        )
        .map_err(|e| format!("officer key: {e}"))?,
    );
    let node = Node::start(cfg, material, Box::new(store), None)
        .await
        .map_err(|e| format!("node: {}", e.0))?;
    let node = Arc::new(node);
    let peers = node
        .with_store(|s| s.peers())
        .await
        .ok_or("store thread gone")?
        .map_err(|e| format!("peers: {e}"))?;
    let [peer] = &peers[..] else {
        return Err(format!(
            "want exactly one pinned peer, have {}",
            peers.len()
        ));
    };
    let (peer, alias) = (peer.identity, peer.alias.clone());
    say(&format!("STARTED {}", node.local_addr));

    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        // Dropping `tx` ends `commands`: stop.
    });
    let mut sends = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut up = None;
    loop {
        tokio::select! {
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                let words: Vec<&str> = cmd.splitn(3, ' ').collect();
                match words[..] {
                    ["STOP"] => break,
                    ["STATUS"] => say(&status(&node, peer).await?),
                    ["SEND", n, label] => {
                        let n: usize = n.parse().map_err(|_| format!("bad command {cmd:?}"))?;
                        sends.spawn(send(node.clone(), officer.clone(), peer, n, label.to_owned()));
                    }
                    _ => return Err(format!("unknown command {cmd:?}")),
                }
            }
            _ = tick.tick() => {
                let now_up = node.link_up(&alias);
                if up != Some(now_up) {
                    say(if now_up { "LINK UP" } else { "LINK DOWN" });
                    up = Some(now_up);
                }
            }
        }
    }
    while sends.join_next().await.is_some() {}
    let node = Arc::into_inner(node).ok_or("the node is still shared")?;
    node.shutdown().await;
    say("STOPPED");
    Ok(())
}

async fn status(node: &Node, peer: NodeId) -> Result<String, String> {
    let (stored, pending) = node
        .with_store(move |s| -> Result<(u64, usize), String> {
            let stored = s.last_sequence(&peer).map_err(|e| e.to_string())?;
            let sealed = s.pending_envelopes(&peer).map_err(|e| e.to_string())?;
            let unsealed = s.unsealed().map_err(|e| e.to_string())?;
            Ok((stored, sealed.len() + unsealed.len()))
        })
        .await
        .ok_or("store thread gone")??;
    let transmitted = node
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix("hotline_messages_sent_total ")?.parse().ok())
        .unwrap_or(0u64);
    Ok(format!("STATUS {stored} {pending} {transmitted}"))
}

async fn send(node: Arc<Node>, officer: Arc<OfficerKey>, to: NodeId, n: usize, label: String) {
    for i in 0..n {
        let mut id = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut id) {
            say(&format!("REFUSED no random message id: {e}"));
            continue;
        }
        let draft = Draft {
            subject: format!("{label} {i}"),
            text: "Indicators attached. This message crosses a faulty network.".into(),
            ..Default::default()
        };
        let content = match draft.sign(&id, &to, &officer, now_ms()) {
            Ok(c) => c,
            Err(e) => {
                say(&format!("REFUSED the officer cannot sign: {e}"));
                continue;
            }
        };
        let precedence = Precedence::ALL[i % Precedence::ALL.len()];
        match node.submit(to, id, precedence, Tlp::Amber, content).await {
            Ok(got) if got == id => say(&format!("ACCEPTED {}", hex(&id))),
            Ok(got) => say(&format!("REFUSED submit answered id {}", hex(&got))),
            Err(e) => say(&format!("REFUSED {}: {e}", hex(&id))),
        }
    }
    say(&format!("SENT {n}"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
