//! `hotline demo`: two real nodes on loopback, a FLASH message through the operator API, and
//! both signed receipts verified, narrated step by step.
//!
//! Everything is the production path: `hotlined`'s init, peer pinning and operator
//! credentials, the node daemon (QUIC with mutual TLS, SQLite stores, crypto workers) started
//! in this process, and the same operator client the other commands use.

use std::path::Path;
use std::time::{Duration, Instant};

use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::material::{Material, now_ms};
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::{commands, operator};
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::Draft;
use hotline_protocol::envelope::Envelope;
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::wire;

use crate::client::{self, Client};
use crate::credential;

fn free_udp_port() -> Result<u16, String> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port on loopback: {e}"))
}

fn short(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// Sets up both nodes: init, pin each other, one duty officer each.
fn setup(root: &Path) -> Result<(String, String), String> {
    let (a, b) = (root.join("cert-a"), root.join("cert-b"));
    let a_addr = format!("127.0.0.1:{}", free_udp_port()?);
    let b_addr = format!("127.0.0.1:{}", free_udp_port()?);
    commands::quietly(|| -> Result<(), hotline_node::commands::CommandError> {
        commands::init(&a, "CERT-A", &a_addr)?;
        commands::init(&b, "CERT-B", &b_addr)?;
        commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b"))?;
        commands::peer_add(&b, &a.join(config::BUNDLE_FILE), &a_addr, Some("cert-a"))?;
        operator::add(&a, "Anna Kowalska", "officer", &a.join("anna.credential"))?;
        operator::add(&b, "Bruno Lefevre", "officer", &b.join("bruno.credential"))?;
        Ok(())
    })
    .map_err(|e| e.0)?;
    Ok((a_addr, b_addr))
}

async fn start(dir: &Path) -> Result<Node, String> {
    let cfg = config::Config::load(dir).map_err(|e| e.to_string())?;
    let m = Material::load(dir).map_err(|e| e.to_string())?;
    let store = SqliteStore::open(&dir.join(config::DB_FILE)).map_err(|e| e.to_string())?;
    Node::start(cfg, m, Box::new(store), None)
        .await
        .map_err(|e| e.0)
}

async fn connect(cred: &Path, addr: &str) -> Result<(Client, credential::Loaded), String> {
    let loaded = credential::load(cred).map_err(|e| e.message)?;
    let c = client::connect(&loaded, addr, Duration::from_secs(10))
        .await
        .map_err(|e| e.message)?;
    Ok((c, loaded))
}

async fn wait_for(
    what: &str,
    mut done: impl AsyncFnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let t0 = Instant::now();
    while !done().await? {
        if t0.elapsed() > Duration::from_secs(30) {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Runs the demo; any failed step or check is an error.
pub async fn run(keep: bool) -> Result<(), String> {
    let tmp = tempfile::Builder::new()
        .prefix("hotline-demo-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let root = tmp.path().to_owned();
    println!(
        "hotline demo: two national CERT nodes on loopback, in {}",
        root.display()
    );
    let (a_addr, b_addr) = setup(&root)?;
    let (a_dir, b_dir) = (root.join("cert-a"), root.join("cert-b"));
    let na = start(&a_dir).await?;
    let nb = start(&b_dir).await?;
    println!("\n1. Nodes created, bundles exchanged and pinned, one duty officer each");
    println!("   CERT-A  {a_addr}  fingerprint {}", na.id.fingerprint());
    println!("   CERT-B  {b_addr}  fingerprint {}", nb.id.fingerprint());

    let result = exchange(&a_dir, &b_dir, &a_addr, &b_addr, &nb).await;
    na.shutdown().await;
    nb.shutdown().await;
    if keep {
        let kept = tmp.keep();
        println!("\nKept {}", kept.display());
    }
    result?;
    println!("\nDone: delivered exactly once, both receipts verified. Temporary files removed.");
    Ok(())
}

async fn exchange(
    a_dir: &Path,
    b_dir: &Path,
    a_addr: &str,
    b_addr: &str,
    nb: &Node,
) -> Result<(), String> {
    let (anna, anna_cred) = connect(&a_dir.join("anna.credential"), a_addr).await?;
    let (bruno, bruno_cred) = connect(&b_dir.join("bruno.credential"), b_addr).await?;
    wait_for("the link to come up", async || {
        Ok(anna
            .status(wire::StatusRequest {})
            .await
            .map_err(|e| e.message)?
            .links
            .iter()
            .any(|l| l.up))
    })
    .await?;
    let status = anna
        .status(wire::StatusRequest {})
        .await
        .map_err(|e| e.message)?;
    let group = status
        .links
        .first()
        .map(|l| l.group.clone())
        .unwrap_or_default();
    println!("\n2. Link up: QUIC + TLS 1.3 with mutual certificates, key exchange {group},");
    println!("   and each node's identity bound to the connection by a signed Hello");

    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| e.to_string())?;
    let draft = Draft {
        subject: "Active phishing campaign against ministries".into(),
        text: "Lure domain login-gov.example; please block and confirm.".into(),
        language: "en".into(),
        ..Default::default()
    };
    let content = draft
        .sign(&id, &nb.id, &anna_cred.officer, now_ms())
        .map_err(|e| e.to_string())?;
    let sent = anna
        .send(wire::SendRequest {
            to: "cert-b".into(),
            message_id: id.to_vec().into(),
            precedence: wire::Precedence::Flash as i32,
            tlp: wire::Tlp::Amber as i32,
            content: content.as_bytes().to_vec().into(),
        })
        .await
        .map_err(|e| e.message)?;
    println!(
        "\n3. Duty officer {} (CERT-A) sends FLASH, TLP:AMBER",
        anna_cred.credential.name()
    );
    println!(
        "   message {} stored durably at CERT-A (sequence {}), sealed to CERT-B's key,",
        short(&id),
        sent.sequence
    );
    println!("   signed by CERT-A and by the officer's own key");

    wait_for("DELIVERED", async || {
        Ok(show(&anna, &id)
            .await?
            .summary
            .is_some_and(|s| s.state != "pending"))
    })
    .await?;
    let at_a = show(&anna, &id).await?;
    let envelope = Envelope::parse(at_a.envelope.clone()).map_err(|e| e.to_string())?;
    let receiver = PeerBundle::from_bytes(&at_a.receiver_bundle)
        .map_err(|e| e.to_string())?
        .identity();
    let delivered = find(&at_a.receipts, &receiver, &envelope, "DELIVERED")?;
    println!(
        "\n4. DELIVERED receipt from CERT-B (released only after the envelope was committed to its store)"
    );
    println!(
        "   names envelope SHA-256 {}…, signed by {}: signature verified",
        short(delivered.envelope_sha256()),
        receiver.fingerprint()
    );

    let inbox = bruno
        .list(wire::ListRequest {
            incoming: true,
            unacknowledged_only: true,
            ..Default::default()
        })
        .await
        .map_err(|e| e.message)?;
    let msg = inbox.messages.first().ok_or("CERT-B's inbox is empty")?;
    let precedence = wire::Precedence::try_from(msg.precedence).map_or("?", |p| p.as_str_name());
    println!(
        "\n5. At CERT-B, officer {} sees: [{}] \"{}\" from {}",
        bruno_cred.credential.name(),
        precedence.trim_start_matches("PRECEDENCE_"),
        msg.subject,
        msg.officer
    );
    let at_b = show(&bruno, &id).await?;
    let sha = hotline_protocol::crypto::sha256(&at_b.envelope);
    let ack = bruno_cred
        .officer
        .acknowledge(&id, &sha, now_ms(), "Domains blocked nationally.")
        .map_err(|e| e.to_string())?;
    bruno
        .ack(wire::AckRequest {
            message_id: id.to_vec().into(),
            ack: Some(ack),
        })
        .await
        .map_err(|e| e.message)?;
    println!("   and acknowledges it in their own name");

    wait_for("ACKNOWLEDGED", async || {
        Ok(show(&anna, &id)
            .await?
            .summary
            .is_some_and(|s| s.state == "acknowledged"))
    })
    .await?;
    let at_a = show(&anna, &id).await?;
    let acked = find(&at_a.receipts, &receiver, &envelope, "ACKNOWLEDGED")?;
    let ReceiptKind::Acknowledged { officer, note, .. } = acked.kind() else {
        return Err("not an ACKNOWLEDGED receipt".into());
    };
    println!(
        "\n6. ACKNOWLEDGED receipt back at CERT-A: officer \"{}\" of CERT-B, note \"{note}\"",
        officer.name()
    );
    println!(
        "   officer's signature verified (credential issued by CERT-B); CERT-B's signature verified"
    );

    println!(
        "\n7. Offline check, as a third party would: from the exported bytes and bundles only"
    );
    for r in [&delivered, &acked] {
        let again = Receipt::verify(r.bytes(), &receiver).map_err(|e| e.to_string())?;
        if !again.answers(&envelope) {
            return Err("a receipt does not name the envelope".into());
        }
        println!(
            "   {:<13} {:>4} bytes  signature ok, names the exact envelope",
            again.kind().as_str(),
            r.bytes().len()
        );
    }
    anna.close().await;
    bruno.close().await;
    Ok(())
}

async fn show(c: &Client, id: &[u8; 16]) -> Result<wire::ShowResponse, String> {
    c.show(wire::ShowRequest {
        message_id: id.to_vec().into(),
    })
    .await
    .map_err(|e| e.message)
}

fn find(
    receipts: &[bytes::Bytes],
    receiver: &hotline_protocol::NodeId,
    envelope: &Envelope,
    kind: &str,
) -> Result<Receipt, String> {
    receipts
        .iter()
        .filter_map(|r| Receipt::verify(r, receiver).ok())
        .find(|r| r.kind().as_str() == kind && r.answers(envelope))
        .ok_or_else(|| format!("no verified {kind} receipt"))
}
