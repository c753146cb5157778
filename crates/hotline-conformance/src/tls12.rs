//! A TLS 1.2-only client for QUIC.
//!
//! rustls refuses to build a QUIC client without TLS 1.3, so this wraps quinn's rustls session
//! and rewrites the first ClientHello it writes into what a TLS 1.2-only client sends: no
//! `supported_versions` extension (the only thing that offers TLS 1.3, RFC 8446 §4.2.1), no
//! TLS 1.3-only extensions, TLS 1.2 cipher suites. A node must refuse it (SPEC.md §3.1); the
//! handshake then ends with the server's alert before any key is agreed, so the broken
//! transcript on this side never matters.

use std::any::Any;
use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use quinn_proto::crypto::{
    self, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, PacketKey, Session,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectError, ConnectionId, Side, TransportError};

/// Extensions only a TLS 1.3 client sends (RFC 8446 §4.2): dropped.
const TLS13_ONLY_EXTENSIONS: &[u16] = &[
    41, // pre_shared_key
    42, // early_data
    43, // supported_versions
    44, // cookie
    45, // psk_key_exchange_modes
    51, // key_share
];

/// What a TLS 1.2 client with ECDSA/EdDSA certificates offers (RFC 5289, RFC 7905).
const TLS12_SUITES: &[u16] = &[
    0xc02b, // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    0xc02c, // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    0xcca9, // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
];

/// quinn's rustls client configuration, with the first ClientHello made TLS 1.2-only.
pub struct Tls12Only(pub Arc<QuicClientConfig>);

impl crypto::ClientConfig for Tls12Only {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn Session>, ConnectError> {
        let inner =
            crypto::ClientConfig::start_session(self.0.clone(), version, server_name, params)?;
        Ok(Box::new(Tls12Session {
            inner,
            rewritten: false,
        }))
    }
}

struct Tls12Session {
    inner: Box<dyn Session>,
    rewritten: bool,
}

impl Session for Tls12Session {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        self.inner.read_handshake(buf)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        let start = buf.len();
        let keys = self.inner.write_handshake(buf);
        if !self.rewritten && buf.len() > start {
            self.rewritten = true;
            if let Some(hello) = tls12_client_hello(&buf[start..]) {
                buf.truncate(start);
                buf.extend_from_slice(&hello);
            }
        }
        keys
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}

/// A bounds-checked reader over a TLS handshake message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn push_u16(out: &mut Vec<u8>, n: usize) -> Option<()> {
    out.extend_from_slice(&u16::try_from(n).ok()?.to_be_bytes());
    Some(())
}

/// Rewrites one ClientHello handshake message (RFC 8446 §4.1.2) into a TLS 1.2-only one:
/// `legacy_version` 0x0303, TLS 1.2 suites, the TLS 1.3-only extensions removed, lengths fixed.
/// `None` if `msg` is not exactly one well-formed ClientHello.
pub fn tls12_client_hello(msg: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader { buf: msg };
    if r.u8()? != 1 {
        return None;
    }
    let len = r.take(3)?;
    let len = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
    if r.buf.len() != len {
        return None;
    }
    r.take(2)?; // legacy_version
    let random = r.take(32)?;
    let session_id = r.vec8()?;
    r.vec16()?; // cipher_suites
    let compression = r.vec8()?;
    let extensions = r.vec16()?;
    if !r.buf.is_empty() {
        return None;
    }
    let mut ext = Reader { buf: extensions };
    let mut kept = Vec::new();
    while !ext.buf.is_empty() {
        let ty = ext.u16()?;
        let data = ext.vec16()?;
        if TLS13_ONLY_EXTENSIONS.contains(&u16::try_from(ty).ok()?) {
            continue;
        }
        push_u16(&mut kept, ty)?;
        push_u16(&mut kept, data.len())?;
        kept.extend_from_slice(data);
    }
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(random);
    body.push(u8::try_from(session_id.len()).ok()?);
    body.extend_from_slice(session_id);
    push_u16(&mut body, TLS12_SUITES.len() * 2)?;
    for s in TLS12_SUITES {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.push(u8::try_from(compression.len()).ok()?);
    body.extend_from_slice(compression);
    push_u16(&mut body, kept.len())?;
    body.extend_from_slice(&kept);
    let n = u32::try_from(body.len()).ok()?;
    if n >= 1 << 24 {
        return None;
    }
    let mut out = vec![1];
    out.extend_from_slice(&n.to_be_bytes()[1..]);
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn hello(exts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01]);
        body.extend_from_slice(&[1, 0]);
        let all: Vec<u8> = exts.concat();
        body.extend_from_slice(&(all.len() as u16).to_be_bytes());
        body.extend_from_slice(&all);
        let mut msg = vec![1, 0, 0, body.len() as u8];
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn drops_supported_versions_and_fixes_lengths() {
        let alpn = ext(16, b"\x00\x0a\x09hotline/1");
        let quic = ext(57, &[1, 2, 3]);
        let original = hello(&[
            ext(43, &[2, 3, 4]),
            alpn.clone(),
            ext(51, &[9; 8]),
            quic.clone(),
        ]);
        let out = tls12_client_hello(&original).expect("rewrites");
        // The rewrite parses as a ClientHello and keeps only ALPN and the QUIC parameters.
        let mut r = Reader { buf: &out };
        assert_eq!(r.u8(), Some(1));
        let len = r.take(3).expect("len");
        assert_eq!(
            usize::from(len[2]) + (usize::from(len[1]) << 8),
            r.buf.len()
        );
        assert_eq!(r.take(2), Some(&[3u8, 3][..]));
        r.take(32).expect("random");
        r.vec8().expect("sid");
        assert_eq!(r.vec16().map(|s| s.len()), Some(TLS12_SUITES.len() * 2));
        r.vec8().expect("compression");
        assert_eq!(r.vec16(), Some(&[alpn, quic].concat()[..]));
        assert!(r.buf.is_empty());
        // Not a ClientHello, or trailing bytes: left alone.
        assert_eq!(tls12_client_hello(&[2, 0, 0, 0]), None);
        let mut trailing = original.clone();
        trailing.push(0);
        assert_eq!(tls12_client_hello(&trailing), None);
    }
}
