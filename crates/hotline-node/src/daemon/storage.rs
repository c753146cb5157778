//! The store thread: the daemon's only path to the database. Jobs run one after another on a
//! dedicated thread, so async tasks never block on fsync.

use std::sync::mpsc;

use crate::store::Store;

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

enum Msg {
    Job(Job),
    Stop,
}

/// A handle to the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

impl StoreHandle {
    /// Moves `store` onto its own thread.
    pub fn start(
        mut store: Box<dyn Store>,
    ) -> std::io::Result<(StoreHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let join = std::thread::Builder::new()
            .name("hotline-store".into())
            .spawn(move || {
                while let Ok(Msg::Job(job)) = rx.recv() {
                    job(store.as_mut());
                }
            })?;
        Ok((StoreHandle { tx }, join))
    }

    /// Stops the store thread after the jobs queued before this call; later calls get `None`.
    pub fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// Runs `f` against the store and returns its result; `None` if the store thread is gone.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx
            .send(Msg::Job(Box::new(move |s: &mut dyn Store| {
                let _ = tx.send(f(s));
            })))
            .ok()?;
        rx.await.ok()
    }
}
