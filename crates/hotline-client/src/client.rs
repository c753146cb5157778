//! The connection to the operator's own node (SPEC.md §15.3–§15.4): QUIC, mutual TLS with
//! both sides pinned, ALPN `hotline-operator/1`, one bidirectional stream per request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hotline_protocol::CloseCode;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::tls::{self, PeerTrust, TransportLimits};
use prost::Message;

use crate::credential::Loaded;
use crate::error::{Exit, Failure, Result};

/// Largest response (§15.4); requests are at most 2 MiB.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Where to dial for `address`: `0.0.0.0` and `::` (a node listening on every interface, as
/// the credential file may say) become the loopback address of the same family.
pub async fn resolve(address: &str) -> Result<SocketAddr> {
    let unreachable = |why: String| {
        Failure::new(
            Exit::Unreachable,
            format!("node address {address:?}: {why}; give HOST:PORT with --node"),
        )
    };
    let mut addrs = tokio::net::lookup_host(address)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut sock = addrs
        .next()
        .ok_or_else(|| unreachable("resolves to no address".into()))?;
    if sock.ip().is_unspecified() {
        sock.set_ip(match sock.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(sock)
}

/// An open operator connection.
pub struct Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    addr: SocketAddr,
}

/// What a connection error means for the operator.
fn connection_failure(addr: SocketAddr, e: &quinn::ConnectionError) -> Failure {
    use quinn::ConnectionError as E;
    let crypto_alert = |code: u64| code.checked_sub(0x100).filter(|a| *a < 0x100);
    match e {
        E::TimedOut => Failure::new(
            Exit::Unreachable,
            format!(
                "node at {addr} stopped answering (timed out); is hotlined running? check with your administrator or retry"
            ),
        ),
        // Our side refused the node's certificate: not the node the credential names.
        E::TransportError(t) if crypto_alert(u64::from(t.code)).is_some() => Failure::new(
            Exit::Credential,
            format!(
                "the node at {addr} is not the node of this credential: its TLS certificate does not match node_tls_spki_sha256 ({}). Check --node / node_address, or, if the node's TLS key changed, ask for a new credential file",
                t.reason
            ),
        ),
        // The node refused our certificate.
        E::ConnectionClosed(c) if crypto_alert(u64::from(c.error_code)).is_some() => {
            match tls::connection_failure_reason(e) {
                "alpn" => Failure::new(
                    Exit::Unreachable,
                    format!(
                        "the node at {addr} does not offer the operator API (ALPN hotline-operator/1); is it an older hotlined, or another service?"
                    ),
                ),
                reason => Failure::new(
                    Exit::Credential,
                    format!(
                        "the node at {addr} refused this credential ({reason}): it was revoked, has expired, or was issued by another node; ask your node's administrator for a new one (`hotlined operator add`)"
                    ),
                ),
            }
        }
        E::ApplicationClosed(c)
            if u64::from(c.error_code) == u64::from(CloseCode::ProtocolViolation.code()) =>
        {
            Failure::new(
                Exit::Credential,
                format!(
                    "the node at {addr} refused this credential (closed with PROTOCOL_VIOLATION): it is not an operator credential of this node; ask your node's administrator for one"
                ),
            )
        }
        E::ApplicationClosed(c)
            if u64::from(c.error_code) == u64::from(CloseCode::Shutdown.code()) =>
        {
            Failure::new(
                Exit::Unreachable,
                format!("the node at {addr} is shutting down; retry when it is back"),
            )
        }
        E::Reset => Failure::new(
            Exit::Unreachable,
            format!("the node at {addr} reset the connection (restarted?); retry"),
        ),
        e => Failure::new(
            Exit::Unreachable,
            format!("connection to the node at {addr} failed: {e}"),
        ),
    }
}

/// Connects to the node at `address` with the credential's TLS key, pinning the node's key.
/// Gives up after `timeout` without an answer.
pub async fn connect(cred: &Loaded, address: &str, timeout: Duration) -> Result<Client> {
    let addr = resolve(address).await?;
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let trust = PeerTrust::Pinned {
        spki_sha256: std::iter::once(cred.node_pin)
            .chain(cred.node_pin_next)
            .collect(),
    };
    let config = tls::client_config(
        &cred.tls,
        &trust,
        hotline_protocol::OPERATOR_ALPN,
        &TransportLimits::default(),
    )
    .map_err(|e| {
        Failure::new(
            Exit::Credential,
            format!("cannot use the credential's TLS key: {e}"),
        )
    })?;
    let endpoint = quinn::Endpoint::client(bind)
        .map_err(|e| Failure::general(format!("cannot open a UDP socket: {e}")))?;
    // The node is authenticated by its pin alone (§15.3); the name is not checked.
    let connecting = endpoint
        .connect_with(config, addr, &addr.ip().to_string())
        .map_err(|e| Failure::new(Exit::Unreachable, format!("cannot dial {addr}: {e}")))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(Failure::new(
                Exit::Unreachable,
                format!(
                    "no answer from the node at {addr} within {}s: is hotlined running there and UDP port {} reachable? Give another address with --node HOST:PORT",
                    timeout.as_secs_f32(),
                    addr.port()
                ),
            ));
        }
        Ok(Err(e)) => return Err(connection_failure(addr, &e)),
        Ok(Ok(c)) => c,
    };
    // Only the client opens streams (§15.3): one the node opens is reset with UNEXPECTED_FRAME.
    let refuse = conn.clone();
    tokio::spawn(async move {
        let code = quinn::VarInt::from_u32(CloseCode::UnexpectedFrame.code());
        while let Ok((mut send, mut recv)) = refuse.accept_bi().await {
            let _ = send.reset(code);
            let _ = recv.stop(code);
        }
    });
    Ok(Client {
        endpoint,
        conn,
        addr,
    })
}

fn name_of(req: &Request) -> &'static str {
    match req {
        Request::Send(_) => "send",
        Request::List(_) => "list",
        Request::Show(_) => "show",
        Request::Ack(_) => "ack",
        Request::Status(_) => "status",
        Request::Peers(_) => "peers",
        Request::Export(_) => "export",
        Request::Watch(_) => "watch",
        Request::Whoami(_) => "whoami",
        Request::Cancel(_) => "cancel",
    }
}

impl Client {
    /// SHA-256 of the SPKI of the TLS key the node presented.
    pub fn node_spki(&self) -> Option<[u8; 32]> {
        tls::peer_certificate(&self.conn).and_then(|c| tls::spki_sha256(&c).ok())
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lost(&self, e: &quinn::ConnectionError) -> Failure {
        connection_failure(self.addr, e)
    }

    fn read_failure(&self, e: quinn::ReadError) -> Failure {
        match e {
            quinn::ReadError::ConnectionLost(c) => self.lost(&c),
            quinn::ReadError::Reset(code) => {
                let name = u32::try_from(code.into_inner())
                    .ok()
                    .and_then(CloseCode::from_code)
                    .map_or("unknown code", CloseCode::name);
                Failure::general(format!(
                    "the node reset the request ({name}, {code}); is the client newer than the node?"
                ))
            }
            e => Failure::general(format!("reading the node's answer failed: {e}")),
        }
    }

    async fn open(&self, req: Request) -> Result<quinn::RecvStream> {
        let body = wire::OperatorRequest { request: Some(req) }.encode_to_vec();
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| self.lost(&e))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
        frame.extend_from_slice(&body);
        let written = send.write_all(&frame).await;
        if let Err(e) = written {
            return Err(match e {
                quinn::WriteError::ConnectionLost(c) => self.lost(&c),
                e => Failure::general(format!("sending the request failed: {e}")),
            });
        }
        // One request per stream: finish the sending side (§15.4).
        let _ = send.finish();
        Ok(recv)
    }

    /// Reads one response; `None` if the stream ended cleanly before one began.
    async fn read(&self, recv: &mut quinn::RecvStream) -> Result<Option<Response>> {
        let mut len = [0u8; 4];
        match recv.read_exact(&mut len).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(_)) => {
                return Err(Failure::general("the node's answer was cut short"));
            }
            Err(quinn::ReadExactError::ReadError(e)) => return Err(self.read_failure(e)),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(Failure::general(format!(
                "the node announced a {len}-byte answer, over the 16 MiB limit"
            )));
        }
        let mut buf = vec![0u8; len];
        match recv.read_exact(&mut buf).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => {
                return Err(Failure::general("the node's answer was cut short"));
            }
            Err(quinn::ReadExactError::ReadError(e)) => return Err(self.read_failure(e)),
        }
        let resp = wire::OperatorResponse::decode(buf.as_slice())
            .map_err(|_| Failure::general("the node's answer does not decode"))?;
        match resp.response {
            Some(Response::Error(e)) => Err(Failure::from_operator(e.code, &e.message)),
            Some(r) => Ok(Some(r)),
            None => Err(Failure::general(
                "the node answered with an empty or unknown response; is the node newer than the client?",
            )),
        }
    }

    /// Sends one request and returns the node's answer. An `OperatorError` becomes the
    /// matching [`Failure`]; an answer of another case than the request's is a failure too.
    pub async fn request(&self, req: Request) -> Result<Response> {
        let name = name_of(&req);
        let mut recv = self.open(req).await?;
        let resp = self.read(&mut recv).await?.ok_or_else(|| {
            Failure::general(format!(
                "the node closed the {name} request without answering"
            ))
        })?;
        let matches = matches!(
            (name, &resp),
            ("send", Response::Send(_))
                | ("list", Response::List(_))
                | ("show", Response::Show(_))
                | ("ack", Response::Ack(_))
                | ("status", Response::Status(_))
                | ("peers", Response::Peers(_))
                | ("export", Response::Export(_))
                | ("whoami", Response::Whoami(_))
                | ("cancel", Response::Cancel(_))
        );
        if !matches {
            return Err(Failure::general(format!(
                "the node answered the {name} request with another kind of answer"
            )));
        }
        Ok(resp)
    }

    /// Opens a Watch stream (§15.5.8).
    pub async fn watch(&self) -> Result<Watch<'_>> {
        let recv = self.open(Request::Watch(wire::WatchRequest {})).await?;
        Ok(Watch { client: self, recv })
    }

    /// Closes the connection with NO_ERROR and waits briefly for the close to be sent.
    pub async fn close(self) {
        self.conn
            .close(quinn::VarInt::from_u32(CloseCode::NoError.code()), b"done");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

/// A stream of events.
pub struct Watch<'a> {
    client: &'a Client,
    recv: quinn::RecvStream,
}

impl Watch<'_> {
    /// The next event; `None` when the node ended the stream (it is shutting down).
    pub async fn next(&mut self) -> Result<Option<wire::OperatorEvent>> {
        match self.client.read(&mut self.recv).await? {
            None => Ok(None),
            Some(Response::Event(e)) => Ok(Some(e)),
            Some(_) => Err(Failure::general(
                "the node sent something other than an event on the watch stream",
            )),
        }
    }
}

/// Typed requests: each returns the response case of its name.
macro_rules! typed {
    ($($fn:ident: $req:ident($ty:ty) -> $resp:ident($out:ty);)*) => {
        impl Client {
            $(
                #[doc = concat!("The ", stringify!($fn), " request.")]
                pub async fn $fn(&self, r: $ty) -> Result<$out> {
                    match self.request(Request::$req(r)).await? {
                        Response::$resp(x) => Ok(x),
                        _ => Err(Failure::general("unexpected answer")),
                    }
                }
            )*
        }
    };
}

typed! {
    send: Send(wire::SendRequest) -> Send(wire::SendResponse);
    list: List(wire::ListRequest) -> List(wire::ListResponse);
    show: Show(wire::ShowRequest) -> Show(wire::ShowResponse);
    ack: Ack(wire::AckRequest) -> Ack(wire::AckResponse);
    status: Status(wire::StatusRequest) -> Status(wire::StatusResponse);
    peers: Peers(wire::PeersRequest) -> Peers(wire::PeersResponse);
    export: Export(wire::ExportRequest) -> Export(wire::ExportResponse);
    whoami: Whoami(wire::WhoAmIRequest) -> Whoami(wire::WhoAmIResponse);
    cancel: Cancel(wire::CancelRequest) -> Cancel(wire::CancelResponse);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dials_loopback_for_an_unspecified_listen_address() {
        assert_eq!(
            resolve("0.0.0.0:4433").await.unwrap(),
            "127.0.0.1:4433".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve("[::]:4433").await.unwrap(),
            "[::1]:4433".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve("192.0.2.7:1").await.unwrap(),
            "192.0.2.7:1".parse::<SocketAddr>().unwrap()
        );
        let e = resolve("no-port").await.unwrap_err();
        assert_eq!(e.exit, Exit::Unreachable);
        assert!(e.message.contains("--node"));
    }
}
