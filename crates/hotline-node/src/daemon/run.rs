//! The process around the node: logging to stderr, the runtime, and running until a signal.

use std::path::Path;

use super::Node;
use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::store::sqlite::SqliteStore;
use hotline_transport::material::Material;

/// Sets up logging to stderr: text or JSON lines; `RUST_LOG` overrides the level (default info).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal (and never with NO_COLOR): a file or journald gets plain text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// Runs the node in `dir` until SIGTERM or SIGINT; SIGHUP (and the control socket) re-read
/// the peers and operators. After the signal the process exits within
/// [`super::SHUTDOWN_BOUND`] (see [`Node::shutdown`]).
pub fn run(dir: &Path, metrics_addr: Option<&str>) -> Result<(), CommandError> {
    let exposed = crate::commands::private_file_problems(dir);
    if !exposed.is_empty() {
        return Err(CommandError(exposed.join("\n")));
    }
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async move {
        let mut node = Node::start(cfg, material, Box::new(store), metrics_addr).await?;
        // Without the control socket the node still runs: changes then apply on SIGHUP.
        // Another node answering on it is the one case that stops the start.
        let socket = dir.join(config::CONTROL_SOCKET);
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Err(CommandError(format!(
                "another hotlined is running with {} (its control socket answers); stop it first",
                dir.display()
            )));
        }
        if let Err(e) = node.serve_control(&socket) {
            tracing::warn!(
                "{}; `hotlined peer` and `operator` commands cannot reach this node, send it \
                 SIGHUP after each change instead",
                e.0
            );
        }
        // systemd (`Type=notify`): ready now, and a watchdog if the unit asks for one.
        super::systemd::ready(&format!("listening on {}", node.local_addr));
        let watchdog = super::systemd::watchdog_interval()
            .map(|every| tokio::spawn(super::systemd::watchdog(every)));
        wait_for_signal(&node).await;
        super::systemd::stopping();
        if let Some(w) = watchdog {
            w.abort();
        }
        tracing::info!("shutting down");
        let t0 = std::time::Instant::now();
        node.shutdown().await;
        tracing::info!(ms = t0.elapsed().as_millis(), "stopped");
        Ok(())
    });
    // What the runtime still runs is abandoned, not awaited: a DNS lookup of the peer's
    // address runs on a blocking thread and could otherwise hold the exit for the resolver's
    // whole timeout (SHUTDOWN_BOUND is the promise).
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

/// Waits for SIGTERM or SIGINT; applies a reload for every SIGHUP meanwhile (administrators
/// send HUP to reload, as with Postfix or Suricata: it must not kill the node).
async fn wait_for_signal(node: &Node) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = term.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: re-reading peers and operators");
                super::systemd::reloading();
                if let Err(e) = node.reload().await {
                    tracing::error!("reload failed: {e}");
                }
                super::systemd::ready("reloaded");
            }
        }
    }
}
