//! `hotline demo`: two real nodes on loopback, a FLASH message through the operator API, and
//! both signed receipts verified, narrated step by step.
//!
//! The demo does what an administrator and two duty officers would do: it runs the `hotlined`
//! program (`init`, `peer add`, `operator add --request` for the keys each officer made, as
//! `hotline keygen` makes them, then `run` as two daemon processes: QUIC with
//! mutual TLS, SQLite stores), and talks to each node only through its operator API, with the
//! same client and credential files the other commands use. `hotlined` is taken from
//! `--hotlined`, else `$HOTLINED`, else beside this program (one `cargo build` makes both),
//! else from `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline_protocol::NodeId;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::Draft;
use hotline_protocol::envelope::Envelope;
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::wire;
use hotline_transport::material::BUNDLE_FILE;
use hotline_transport::now_ms;
use hotline_transport::officer_keys::{self, OfficerKeys};
use hotline_transport::request::IssuedFile;

use crate::client::{self, Client};
use crate::credential;

/// The environment variable naming the `hotlined` program.
pub const HOTLINED_ENV: &str = "HOTLINED";

/// How long a node gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

fn free_udp_port() -> Result<u16, String> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free UDP port on loopback: {e}"))
}

fn short(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// Finds the `hotlined` program: `flag`, else `$HOTLINED`, else beside this executable, else
/// on `PATH`.
fn locate_hotlined(flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag.or_else(|| std::env::var_os(HOTLINED_ENV).map(PathBuf::from)) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{}: no such program", p.display()))
        };
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("hotlined")));
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("hotlined"))
                .collect()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "the demo runs two `hotlined` daemons, and none was found beside this program or \
             on PATH: build both with `cargo build --locked -p hotline-node -p hotline-client`, \
             or give --hotlined FILE"
                .to_owned()
        })
}

/// Runs one `hotlined` administration command to completion; its output is shown on failure.
fn admin(hotlined: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(hotlined)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", hotlined.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`hotlined {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Sets up both nodes as their administrators would: init, pin each other. Returns both
/// listening addresses.
fn setup(hotlined: &Path, a: &Path, b: &Path) -> Result<(String, String), String> {
    let a_addr = format!("127.0.0.1:{}", free_udp_port()?);
    let b_addr = format!("127.0.0.1:{}", free_udp_port()?);
    let (a_s, b_s) = (a.display().to_string(), b.display().to_string());
    let (a_bundle, b_bundle) = (
        a.join(BUNDLE_FILE).display().to_string(),
        b.join(BUNDLE_FILE).display().to_string(),
    );
    let steps: [&[&str]; 4] = [
        &[
            "init", "--dir", &a_s, "--name", "CERT-A", "--listen", &a_addr,
        ],
        &[
            "init", "--dir", &b_s, "--name", "CERT-B", "--listen", &b_addr,
        ],
        &[
            "peer",
            "add",
            "--dir",
            &a_s,
            &b_bundle,
            "--address",
            &b_addr,
            "--name",
            "cert-b",
        ],
        &[
            "peer",
            "add",
            "--dir",
            &b_s,
            &a_bundle,
            "--address",
            &a_addr,
            "--name",
            "cert-a",
        ],
    ];
    for args in steps {
        admin(hotlined, args)?;
    }
    Ok((a_addr, b_addr))
}

/// One duty officer of the node in `node`, as it is done for real (SPEC.md §15.2.5): the officer
/// makes their keys in `keys` (`hotline keygen`, here in this process), the administrator
/// issues the credential from the request (`hotlined operator add --request`), the officer
/// completes it (`hotline credential import`). The node never sees the officer's secrets.
/// Returns the credential file.
fn officer(hotlined: &Path, node: &Path, name: &str, keys: &Path) -> Result<PathBuf, String> {
    let (officer, _) =
        OfficerKeys::create(keys, name, now_ms()).map_err(|e| format!("keygen: {e}"))?;
    let issued = keys.with_extension("issued");
    admin(
        hotlined,
        &[
            "operator",
            "add",
            "--dir",
            &node.display().to_string(),
            "--request",
            &keys.join(officer_keys::REQUEST_FILE).display().to_string(),
            "--role",
            "officer",
            "--out",
            &issued.display().to_string(),
        ],
    )?;
    let file = IssuedFile::load(&issued).map_err(|e| e.to_string())?;
    let out = keys.join(officer_keys::CREDENTIAL_FILE);
    officer
        .import(&file, &issued, &out)
        .map_err(|e| format!("credential import: {e}"))?;
    Ok(out)
}

/// A `hotlined run` process; its log goes to `DIR/hotlined.log`. Stopped with SIGTERM.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    fn start(hotlined: &Path, dir: &Path, name: &'static str) -> Result<Daemon, String> {
        let log = std::fs::File::create(dir.join("hotlined.log"))
            .map_err(|e| format!("cannot create {name}'s log: {e}"))?;
        let child = Command::new(hotlined)
            .arg("run")
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {name}'s hotlined: {e}"))?;
        Ok(Daemon { name, child })
    }

    /// Fails if the daemon has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{}'s hotlined exited ({status}); its log is hotlined.log in its directory \
                 (--keep keeps it)",
                self.name
            )),
            Err(e) => Err(format!("{}'s hotlined: {e}", self.name)),
        }
    }

    /// SIGTERM (the daemon's orderly shutdown), then a kill after [`STOP_GRACE`].
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // std can only SIGKILL a child, and calling libc's kill() would need unsafe code:
        // kill(1) sends the SIGTERM that triggers the daemon's orderly shutdown.
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let t0 = Instant::now();
        while sent.as_ref().is_ok_and(|s| s.success()) && t0.elapsed() < STOP_GRACE {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects to a node's operator API with `cred`, retrying while the daemon starts.
async fn connect(
    cred: &Path,
    addr: &str,
    daemon: &mut Daemon,
) -> Result<(Client, credential::Loaded), String> {
    let loaded = credential::load(cred).map_err(|e| e.message)?;
    let t0 = Instant::now();
    loop {
        daemon.check_alive()?;
        match client::connect(&loaded, addr, Duration::from_millis(500)).await {
            Ok(c) => return Ok((c, loaded)),
            Err(e) if t0.elapsed() > Duration::from_secs(30) => {
                return Err(format!(
                    "{}'s node did not answer: {}",
                    daemon.name, e.message
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
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

fn node_id(dir: &Path) -> Result<NodeId, String> {
    let path = dir.join(BUNDLE_FILE);
    let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    PeerBundle::from_armored(&raw)
        .map(|b| b.identity())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the demo with the `hotlined` of `hotlined` (see [`locate_hotlined`]); any failed step
/// or check is an error.
pub async fn run(keep: bool, hotlined: Option<PathBuf>) -> Result<(), String> {
    let hotlined = locate_hotlined(hotlined)?;
    let tmp = tempfile::Builder::new()
        .prefix("hotline-demo-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let root = tmp.path().to_owned();
    println!(
        "hotline demo: two national CERT nodes on loopback, in {}",
        root.display()
    );
    let (a_dir, b_dir) = (root.join("cert-a"), root.join("cert-b"));
    let result = async {
        let (a_addr, b_addr) = setup(&hotlined, &a_dir, &b_dir)?;
        let anna_cred = officer(&hotlined, &a_dir, "Anna Kowalska", &root.join("anna"))?;
        let bruno_cred = officer(&hotlined, &b_dir, "Bruno Lefevre", &root.join("bruno"))?;
        let (a_id, b_id) = (node_id(&a_dir)?, node_id(&b_dir)?);
        let mut na = Daemon::start(&hotlined, &a_dir, "CERT-A")?;
        let mut nb = Daemon::start(&hotlined, &b_dir, "CERT-B")?;
        println!(
            "\n1. Nodes created with `hotlined init`, bundles exchanged and pinned (`peer add`),"
        );
        println!(
            "   one duty officer each (keys made by the officer, `hotline keygen`; credential\n   \
             issued from the request, `operator add --request`), both daemons started"
        );
        println!("   CERT-A  {a_addr}  fingerprint {}", a_id.fingerprint());
        println!("   CERT-B  {b_addr}  fingerprint {}", b_id.fingerprint());
        let anna = connect(&anna_cred, &a_addr, &mut na).await?;
        let bruno = connect(&bruno_cred, &b_addr, &mut nb).await?;
        let done = exchange(anna, bruno, &b_id).await;
        na.stop();
        nb.stop();
        done
    }
    .await;
    if keep {
        let kept = tmp.keep();
        println!("\nKept {}", kept.display());
    }
    result?;
    println!("\nDone: delivered exactly once, both receipts verified. Temporary files removed.");
    Ok(())
}

async fn exchange(
    (anna, anna_cred): (Client, credential::Loaded),
    (bruno, bruno_cred): (Client, credential::Loaded),
    b_id: &NodeId,
) -> Result<(), String> {
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
    // Both nodes speak version 2: Anna's signature binds her credential, FLASH and TLP:AMBER
    // too (SPEC.md §7.5).
    let content = draft
        .sign_marked(
            &id,
            b_id,
            &anna_cred.officer,
            now_ms(),
            hotline_protocol::content::Precedence::Flash,
            hotline_protocol::content::Tlp::Amber,
        )
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
        .acknowledge_as(
            &id,
            &sha,
            now_ms(),
            "Domains blocked nationally.",
            hotline_protocol::officer::Binding::Marked,
        )
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
