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
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// Runs the node in `dir` until SIGTERM or SIGINT.
pub fn run(dir: &Path, metrics_addr: Option<&str>) -> Result<(), CommandError> {
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let node = Node::start(cfg, material, Box::new(store), metrics_addr).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
