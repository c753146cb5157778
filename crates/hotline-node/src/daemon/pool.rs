//! A small pool of crypto worker threads sized to the cores, so signature checks, HPKE and
//! signing never run on the async reactor.

use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send>;

/// The pool. Cloning shares it.
#[derive(Clone)]
pub struct CryptoPool {
    tx: mpsc::Sender<Job>,
}

impl CryptoPool {
    /// Starts `n` workers (at least one).
    pub fn new(n: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hotline-crypto-{i}"))
                .spawn(move || {
                    loop {
                        // A poisoned lock means another worker panicked while holding it: stop.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start crypto worker {i}: {e}");
            }
        }
        CryptoPool { tx }
    }

    /// Runs `f` on a worker and returns its result. `None` if the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .ok()?;
        rx.await.ok()
    }
}

impl std::fmt::Debug for CryptoPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoPool")
    }
}
