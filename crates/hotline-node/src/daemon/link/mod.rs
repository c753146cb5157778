//! The driver of one link: a tokio task that owns the peer's [`Session`], feeds it what the
//! QUIC connection delivers, performs what it asks (stream writes, resets, closes), and handles
//! its events with the crypto pool and the store.
//!
//! Read socket → `handle_*` → drain `poll_transmit` / `poll_event` → write socket / storage.
//!
//! Here: the messages into a link task, its context and the state of one connection; the loop
//! is in `driver`, and each of its jobs in a sibling module.
//!
//! [`Session`]: hotline_protocol::session::Session

mod connect;
mod driver;
mod duplicate;
mod events;
mod outbox;
mod receive;
mod streams;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use hotline_protocol::receipt::Receipt;
use hotline_protocol::session::{Config as SessionConfig, StreamId};
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
    /// Our encryption key pairs.
    pub keys: Arc<Vec<EncryptionKeypair>>,
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
}

struct Conn {
    id: u64,
    conn: quinn::Connection,
    control_tx: mpsc::UnboundedSender<(Bytes, bool)>,
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
