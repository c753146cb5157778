//! The commands: each loads the credential, connects, makes its requests and prints.

use std::path::PathBuf;
use std::time::Duration;

use hotline_protocol::officer::Role;
use hotline_protocol::wire;

use crate::client::{self, Client};
use crate::credential::{self, Loaded};
use crate::error::{Exit, Failure, Result};
use crate::format::{Style, hex};
use crate::parse::{self, IdArg};

pub mod evidence;
pub mod keys;
pub mod messages;
pub mod node;
pub mod send;

/// What every command gets from the global options.
#[derive(Debug)]
pub struct Ctx {
    /// `--credential`.
    pub credential: Option<PathBuf>,
    /// `--node`.
    pub node: Option<String>,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// Colours on stdout.
    pub style: Style,
}

impl Ctx {
    /// Finds and checks the credential file.
    pub fn load(&self) -> Result<Loaded> {
        let path = credential::locate(self.credential.as_deref())?;
        credential::load(&path)
    }

    /// Connects to the node: `--node` if given, else the credential's `node_address`.
    pub async fn connect(&self, cred: &Loaded) -> Result<Client> {
        let address = self.node.as_deref().unwrap_or(&cred.node_address);
        let client = client::connect(cred, address, self.connect_timeout).await?;
        follow_tls_rotation(cred, &client).await;
        Ok(client)
    }

    /// Loads the credential and connects.
    pub async fn open(&self) -> Result<(Loaded, Client)> {
        let cred = self.load()?;
        let client = self.connect(&cred).await?;
        Ok((cred, client))
    }
}

/// Keeps the credential file's pin of the node's TLS key current across a rotation (SPEC.md
/// §15.5.9): the node's next key, as the bundle WhoAmI carries names it, is accepted beside the
/// current one; once the node presents it, it becomes the pin. The bundle must be signed by the
/// credential's node: a holder of the node's current TLS key alone cannot plant a key of its
/// own. A file that cannot be rewritten is said so and the command goes on.
async fn follow_tls_rotation(cred: &Loaded, client: &Client) {
    let presented = client.node_spki();
    let update = if presented.is_some() && presented == cred.node_pin_next {
        presented.map(|p| (p, None))
    } else {
        match client
            .whoami(hotline_protocol::wire::WhoAmIRequest {})
            .await
        {
            Ok(w) => next_pin(&cred.node, cred.node_pin, cred.node_pin_next, &w.bundle)
                .map(|next| (cred.node_pin, Some(next))),
            Err(_) => None,
        }
    };
    if let Some((pin, next)) = update
        && let Err(e) = hotline_transport::credential::set_node_pins(&cred.path, pin, next)
    {
        eprintln!(
            "warning: the node's TLS key is changing, and {} could not be updated to follow it \
             ({e}); once the node switches, ask your administrator for a renewed credential",
            cred.path.display()
        );
    }
}

/// The next TLS pin a WhoAmI `bundle` names for the node `node` whose key is pinned as `pin`
/// (and `next`, if one is known): `None` unless the bundle verifies as `node`'s and names a key
/// not known yet.
fn next_pin(
    node: &hotline_protocol::NodeId,
    pin: [u8; 32],
    next: Option<[u8; 32]>,
    bundle: &[u8],
) -> Option<[u8; 32]> {
    let b = hotline_protocol::bundle::PeerBundle::from_bytes(bundle).ok()?;
    let named = *b.tls_spki_sha256();
    (b.identity() == *node && named != pin && Some(named) != next).then_some(named)
}

/// Now, Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Refuses, before any request, what a viewer credential cannot do.
pub fn require_officer(cred: &Loaded, what: &str) -> Result<()> {
    if cred.credential.role() != Role::Officer {
        return Err(Failure::new(
            Exit::Forbidden,
            format!(
                "{} holds a viewer credential, which can only read; {what} needs an officer credential (ask your node's administrator)",
                crate::format::clean(cred.credential.name())
            ),
        ));
    }
    Ok(())
}

/// The full message id for what the operator typed: a full id as is, a prefix looked up among
/// the newest messages of the inbox and the outbox.
pub async fn resolve_id(client: &Client, text: &str) -> Result<[u8; 16]> {
    let prefix = match parse::message_id(text).map_err(Failure::usage)? {
        IdArg::Full(id) => return Ok(id),
        IdArg::Prefix(p) => p,
    };
    let mut found = Vec::new();
    for incoming in [true, false] {
        let list = client
            .list(wire::ListRequest {
                incoming,
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        for m in list.messages {
            if let Ok(id) = <[u8; 16]>::try_from(m.message_id.as_ref())
                && hex(&id).starts_with(&prefix)
                && !found.contains(&id)
            {
                found.push(id);
            }
        }
    }
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(Failure::new(
            Exit::NotFound,
            format!(
                "no message whose id starts with {prefix} (among the 10000 newest received and sent); `hotline inbox` and `hotline outbox` list them"
            ),
        )),
        _ => Err(Failure::usage(format!(
            "{} messages have ids starting with {prefix}; give more digits",
            found.len()
        ))),
    }
}

/// Finds a peer by alias or node id text form (as the node does, §15.5).
pub async fn find_peer(client: &Client, name: &str) -> Result<wire::PeerInfo> {
    let peers = client.peers(wire::PeersRequest {}).await?.peers;
    if let Some(p) = peers.iter().find(|p| p.alias == name) {
        return Ok(p.clone());
    }
    if let Some(p) = peers.iter().find(|p| p.node == name) {
        return Ok(p.clone());
    }
    let known: Vec<String> = peers
        .iter()
        .map(|p| crate::format::clean(&p.alias))
        .collect();
    Err(Failure::new(
        Exit::UnknownPeer,
        if known.is_empty() {
            format!(
                "no installed peer named {name:?}: this node has no peers yet (`hotlined peer add`)"
            )
        } else {
            format!(
                "no installed peer named {name:?}; the peers are: {} (`hotline peers` shows them)",
                known.join(", ")
            )
        },
    ))
}

#[cfg(test)]
mod tests {
    use hotline_protocol::bundle::PeerBundle;
    use hotline_protocol::identity::{EncryptionKeypair, IdentityKey};
    use hotline_protocol::sim::TestRng;

    fn bundle(id: &IdentityKey, pin: [u8; 32]) -> Vec<u8> {
        let key = EncryptionKeypair::generate(id, 1, 2_000_000, &mut TestRng::new(1));
        PeerBundle::create(id, "n", pin, &[key.certificate], &[], 5)
            .expect("bundle")
            .bytes()
            .to_vec()
    }

    #[test]
    fn a_next_pin_is_taken_only_from_the_nodes_own_bundle() {
        let mut rng = TestRng::new(2);
        let node = IdentityKey::generate(&mut rng);
        let other = IdentityKey::generate(&mut rng);
        let (pin, next) = ([1; 32], [2; 32]);
        let id = node.id();
        assert_eq!(
            super::next_pin(&id, pin, None, &bundle(&node, next)),
            Some(next)
        );
        // Known already, or the pin itself: nothing new.
        assert_eq!(
            super::next_pin(&id, pin, Some(next), &bundle(&node, next)),
            None
        );
        assert_eq!(super::next_pin(&id, pin, None, &bundle(&node, pin)), None);
        // Another node's bundle, or bytes that are no bundle: never.
        assert_eq!(super::next_pin(&id, pin, None, &bundle(&other, next)), None);
        assert_eq!(super::next_pin(&id, pin, None, b"not a bundle"), None);
        let mut forged = bundle(&node, next);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert_eq!(super::next_pin(&id, pin, None, &forged), None);
    }
}
