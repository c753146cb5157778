//! The driver of one link: a tokio task that owns the peer's [`Session`], feeds it what the
//! QUIC connection delivers, performs what it asks (stream writes, resets, closes), and handles
//! its events with the crypto pool and the store.
//!
//! Read socket → `handle_*` → drain `poll_transmit` / `poll_event` → write socket / storage.
//!
//! Here: the messages into a link task, its context, the state of one connection and the
//! monotonic clock the session's timers run on; the loop is in `driver`, and each of its jobs
//! in a sibling module.
//!
//! [`Session`]: hotline_protocol::session::Session

mod connect;
mod driver;
mod duplicate;
mod events;
mod outbox;
mod receive;
mod replace;
mod streams;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::receipt::Receipt;
use hotline_protocol::session::{Config as SessionConfig, Monotonic, StreamId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::metrics::SharedMetrics;
use super::pool::CryptoPool;
use super::storage::StoreHandle;

pub use driver::run;

/// Messages into a link task.
#[derive(Debug)]
pub enum LinkMsg {
    /// An authenticated connection from this peer was accepted by the listener.
    Incoming(quinn::Connection),
    /// Our dial finished.
    Dialed(u64, Result<quinn::Connection, String>),
    /// Something happened on connection `conn`.
    Input(u64, Input),
    /// An asynchronous job for connection `conn` finished.
    Done(u64, Done),
    /// Queue a sealed envelope (already durable in the outbox).
    Send(Box<Envelope>),
    /// Queue an asynchronous receipt (already durable).
    SendReceipt(Box<Receipt>),
    /// The next page of the outbox backlog: sealed envelopes, and whether the page was full.
    Refill(Vec<Bytes>, bool),
    /// An officer cancels this message: withdraw it if it was never written to a stream, and
    /// from then on drop it wherever it turns up (answered on the channel).
    Cancel(
        MessageId,
        tokio::sync::oneshot::Sender<hotline_protocol::session::Withdrawal>,
    ),
    /// The cancellation could not be stored: the message is to be sent after all (it comes back
    /// with the backlog).
    Uncancel(MessageId),
    /// Counts of the whole outbox, for status while a backlog is paged.
    Summary(crate::store::PendingSummary),
    /// The TLS configuration to dial with from now on (a renewed certificate, new CA files);
    /// with the private CA's new CRLs for a peer in private CA mode, whose connection up now
    /// is closed if they list its certificate (SPEC.md §3.6.2).
    ClientConfig(
        Box<quinn::ClientConfig>,
        Option<hotline_transport::tls::CaRoots>,
    ),
    /// Our encryption keys changed: announce these (SPEC.md §4.3.5).
    Keys(Vec<EncryptionKey>),
    /// Our bundle changed: send it to the peer (SPEC.md §4.4.4).
    OwnBundle(Box<hotline_protocol::bundle::PeerBundle>),
    /// The peer's bundle held now (one it sent, or the one held already): take it up, and
    /// tell the peer (SPEC.md §4.4.4).
    PeerBundleHeld(Box<hotline_protocol::bundle::PeerBundle>),
    /// Our key revocations, all of them: the new ones are sent at once (SPEC.md §4.6.2).
    Revocations(Vec<hotline_protocol::revocation::Revocation>),
    /// Shut down: close the connection with SHUTDOWN and this reason, and stop (node shutdown,
    /// or the peer removed or updated by the administrator).
    Shutdown(&'static str),
}

/// Transport input.
#[derive(Debug)]
pub enum Input {
    /// Stream data.
    Data {
        stream: StreamId,
        data: Bytes,
        fin: bool,
    },
    /// The peer reset a stream.
    Reset { stream: StreamId, code: u64 },
    /// The peer opened message stream `n`.
    Opened {
        n: u64,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    },
    /// The connection is gone.
    Closed(String),
}

/// Results of asynchronous work.
#[derive(Debug)]
pub enum Done {
    /// Answer an incoming envelope with this receipt.
    Respond {
        stream: StreamId,
        receipt: Box<Receipt>,
    },
    /// Verdict on a receipt for one of our envelopes.
    ReceiptVerdict { id: MessageId, valid: bool },
    /// An asynchronous receipt is stored.
    Stored { stream: StreamId, sha256: [u8; 32] },
    /// Refuse an incoming stream.
    Refuse { stream: StreamId, code: CloseCode },
}

/// What a link task needs.
pub struct LinkCtx {
    /// Our identity.
    pub identity: Arc<IdentityKey>,
    /// Our encryption key pairs, replaced when they rotate.
    pub keys: Arc<crate::daemon::own_keys::OwnKeys>,
    /// The peer's alias.
    pub alias: String,
    /// The peer's bundle.
    pub bundle: PeerBundle,
    /// Where to dial it.
    pub address: String,
    /// The QUIC endpoint.
    pub endpoint: quinn::Endpoint,
    /// Client config pinned to this peer.
    pub client_config: quinn::ClientConfig,
    /// Session settings.
    pub session: SessionConfig,
    /// Workers.
    pub pool: CryptoPool,
    /// Storage.
    pub store: StoreHandle,
    /// Metrics.
    pub metrics: SharedMetrics,
    /// Our own mailbox (for spawned tasks to report back).
    pub tx: mpsc::UnboundedSender<LinkMsg>,
    /// Envelopes pending at start-up: the first `window` of the outbox.
    pub pending: Vec<Envelope>,
    /// Receipts to re-send at start-up.
    pub pending_receipts: Vec<Receipt>,
    /// Received sequences and last sent, from the store.
    pub restore: (Vec<(u64, u64)>, u64),
    /// Outgoing items held in memory (`[limits] outbox_window`).
    pub window: usize,
    /// Delivery deadlines per precedence.
    pub deadlines: crate::config::Deadlines,
    /// Events for watching operators.
    pub events: tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    /// The peer's current encryption keys, shared with the submit path (updated from Hello).
    pub shared_keys: Arc<std::sync::Mutex<HashMap<NodeId, Vec<EncryptionKey>>>>,
    /// Disk-space floor and per-peer quota.
    pub guard: Arc<crate::daemon::guard::StorageGuard>,
    /// Key revocations: ours to announce, the peer's to enforce (SPEC.md §4.6).
    pub revocations: Arc<crate::daemon::revocations::RevocationBook>,
    /// The node, for what a link changes in it (the peer's bundle and TLS keys, §4.4.4).
    pub shared: std::sync::Weak<crate::daemon::Shared>,
    /// Why the last connection closed, so that a cause repeated at every retry is said once.
    pub last_close: std::sync::Mutex<String>,
}

/// Most frames queued for the control stream's writer. The session sends a heartbeat every
/// 5 s and answers at most a few pings a second (SPEC.md §13.2), so the queue fills only when
/// the peer stops reading its control stream (QUIC flow control then holds the writer): the
/// connection is closed rather than the queue left to grow.
const CONTROL_QUEUE: usize = 256;

struct Conn {
    id: u64,
    conn: quinn::Connection,
    control_tx: mpsc::Sender<(Bytes, bool)>,
    /// Notified when the control stream's writer is done (its last frame acknowledged, or
    /// given up): a Close waits for it (`streams::close_after_flush`).
    control_flushed: Arc<tokio::sync::Notify>,
    in_send: HashMap<u64, quinn::SendStream>,
    tasks: Vec<JoinHandle<()>>,
    out_tasks: HashMap<u64, JoinHandle<()>>,
    /// Readers of the streams the peer opened, each with a way to stop it (STOP_SENDING).
    in_readers: HashMap<u64, (JoinHandle<()>, tokio::sync::oneshot::Sender<u32>)>,
    dialed_by_us: bool,
    group: Option<String>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let readers = self.in_readers.drain().map(|(n, (t, _))| (n, t));
        for (_, t) in self.out_tasks.drain().chain(readers) {
            t.abort();
        }
    }
}

/// The origin of the link tasks' monotonic clock: the first time any link read it.
fn origin() -> tokio::time::Instant {
    static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(tokio::time::Instant::now)
}

/// The monotonic clock the sessions' timers run on (SPEC.md §14.8): tokio's, which never steps
/// with the wall clock (and which paused-time tests move). The wall clock (`now_ms`) is given to
/// a session separately, for the times it puts on the wire.
fn mono_now() -> Monotonic {
    let ms = origin().elapsed().as_millis();
    Monotonic::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// When a session deadline falls, as a tokio instant.
fn instant_of(at: Monotonic) -> tokio::time::Instant {
    origin() + Duration::from_millis(at.as_millis())
}

/// Reads both clocks for `session`: tells it the wall clock, returns the monotonic reading to
/// pass to its inputs.
fn clock(session: &mut hotline_protocol::session::Session) -> Monotonic {
    let now = mono_now();
    session.set_wall_clock(now, hotline_transport::now_ms());
    now
}

#[cfg(test)]
mod tests {
    use super::{instant_of, mono_now};

    /// A reading of the session clock maps back to the tokio instant it was read at, and a
    /// deadline after it to the instant that far ahead.
    #[test]
    fn session_clock_readings_map_to_tokio_instants() {
        let before = tokio::time::Instant::now();
        let t = mono_now();
        let after = tokio::time::Instant::now();
        // Readings are whole milliseconds, rounded down.
        let read = instant_of(t);
        assert!(read <= after && read + std::time::Duration::from_millis(1) > before);
        assert_eq!(
            instant_of(t.after(250)) - read,
            std::time::Duration::from_millis(250)
        );
        assert!(mono_now() >= t);
    }
}
