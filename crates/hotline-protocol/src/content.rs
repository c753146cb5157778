//! The plaintext of an envelope: what the duty officer wrote (SPEC.md §7.4).

use bytes::Bytes;
use prost::Message;

use crate::canonical;
use crate::identity::NodeId;
use crate::officer::{Binding, Credential, Marking, OfficerKey};
use crate::time::UnixMillis;
use crate::wire;

/// Longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;
/// Longest language tag, in bytes.
pub const MAX_LANGUAGE_LEN: usize = 35;
/// Most indicators in one incident.
pub const MAX_INDICATORS: usize = 10_000;

/// How urgent a message is. Ordered: `Flash < Immediate < Priority < Routine`, so sorting
/// ascending puts FLASH first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precedence {
    /// Life or national security at stake; handle at once.
    Flash,
    /// Urgent.
    Immediate,
    /// Important.
    Priority,
    /// Normal business.
    Routine,
}

impl Precedence {
    /// All values, most urgent first.
    pub const ALL: [Precedence; 4] = [
        Precedence::Flash,
        Precedence::Immediate,
        Precedence::Priority,
        Precedence::Routine,
    ];

    pub(crate) fn to_wire(self) -> i32 {
        (match self {
            Precedence::Flash => wire::Precedence::Flash,
            Precedence::Immediate => wire::Precedence::Immediate,
            Precedence::Priority => wire::Precedence::Priority,
            Precedence::Routine => wire::Precedence::Routine,
        }) as i32
    }

    /// The value of a wire enum, if registered (SPEC.md §12.8).
    pub fn from_wire(v: i32) -> Option<Self> {
        match wire::Precedence::try_from(v).ok()? {
            wire::Precedence::Flash => Some(Precedence::Flash),
            wire::Precedence::Immediate => Some(Precedence::Immediate),
            wire::Precedence::Priority => Some(Precedence::Priority),
            wire::Precedence::Routine => Some(Precedence::Routine),
            wire::Precedence::Unspecified => None,
        }
    }

    /// Upper-case name as operators see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Precedence::Flash => "FLASH",
            Precedence::Immediate => "IMMEDIATE",
            Precedence::Priority => "PRIORITY",
            Precedence::Routine => "ROUTINE",
        }
    }
}

impl core::str::FromStr for Precedence {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "flash" => Ok(Precedence::Flash),
            "immediate" => Ok(Precedence::Immediate),
            "priority" => Ok(Precedence::Priority),
            "routine" => Ok(Precedence::Routine),
            _ => Err("precedence is one of flash, immediate, priority, routine"),
        }
    }
}

/// Traffic Light Protocol 2.0 label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tlp {
    /// TLP:CLEAR
    Clear,
    /// TLP:GREEN
    Green,
    /// TLP:AMBER
    Amber,
    /// TLP:AMBER+STRICT
    AmberStrict,
    /// TLP:RED
    Red,
}

impl Tlp {
    pub(crate) fn to_wire(self) -> i32 {
        (match self {
            Tlp::Clear => wire::Tlp::Clear,
            Tlp::Green => wire::Tlp::Green,
            Tlp::Amber => wire::Tlp::Amber,
            Tlp::AmberStrict => wire::Tlp::AmberStrict,
            Tlp::Red => wire::Tlp::Red,
        }) as i32
    }

    /// The value of a wire enum, if registered (SPEC.md §12.8).
    pub fn from_wire(v: i32) -> Option<Self> {
        match wire::Tlp::try_from(v).ok()? {
            wire::Tlp::Clear => Some(Tlp::Clear),
            wire::Tlp::Green => Some(Tlp::Green),
            wire::Tlp::Amber => Some(Tlp::Amber),
            wire::Tlp::AmberStrict => Some(Tlp::AmberStrict),
            wire::Tlp::Red => Some(Tlp::Red),
            wire::Tlp::Unspecified => None,
        }
    }

    /// The label as TLP 2.0 writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }
}

impl core::str::FromStr for Tlp {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.to_ascii_lowercase();
        match s.strip_prefix("tlp:").unwrap_or(&s) {
            "clear" => Ok(Tlp::Clear),
            "green" => Ok(Tlp::Green),
            "amber" => Ok(Tlp::Amber),
            "amber+strict" => Ok(Tlp::AmberStrict),
            "red" => Ok(Tlp::Red),
            _ => Err("TLP is one of clear, green, amber, amber+strict, red"),
        }
    }
}

/// An indicator of compromise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indicator {
    /// Kind, e.g. `ipv4`, `domain`, `sha256`, `url`.
    pub kind: String,
    /// Value.
    pub value: String,
}

/// Structured incident fields.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Incident {
    /// The sender's incident identifier.
    pub incident_id: String,
    /// Severity: 0 unspecified, 1 low … 4 critical.
    pub severity: i32,
    /// Category, free text (e.g. a taxonomy term).
    pub category: String,
    /// Indicators.
    pub indicators: Vec<Indicator>,
}

/// What an officer writes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Draft {
    /// Subject line, 1..=256 bytes.
    pub subject: String,
    /// Body text.
    pub text: String,
    /// BCP 47 language tag, or empty.
    pub language: String,
    /// Optional incident fields.
    pub incident: Option<Incident>,
    /// The message this replies to.
    pub reply_to: Option<[u8; 16]>,
    /// Thread id.
    pub thread_id: Option<[u8; 16]>,
}

/// Why content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// Malformed, not canonical, or inconsistent with the header.
    #[error("bad content: {0}")]
    Bad(&'static str),
    /// The officer's credential or signature does not verify.
    #[error("officer signature invalid: {0}")]
    Officer(&'static str),
}

impl Draft {
    fn check(&self) -> Result<(), ContentError> {
        if self.subject.is_empty() || self.subject.len() > MAX_SUBJECT_LEN {
            return Err(ContentError::Bad("subject must be 1..=256 bytes"));
        }
        if self.language.len() > MAX_LANGUAGE_LEN {
            return Err(ContentError::Bad("language tag too long"));
        }
        if let Some(i) = &self.incident {
            if !(0..=4).contains(&i.severity) {
                return Err(ContentError::Bad("unknown severity"));
            }
            if i.indicators.len() > MAX_INDICATORS {
                return Err(ContentError::Bad("too many indicators"));
            }
        }
        Ok(())
    }

    /// Encodes the canonical `MessageBody` for message `message_id` to `recipient`.
    pub fn encode_body(
        &self,
        message_id: &[u8; 16],
        recipient: &NodeId,
    ) -> Result<Vec<u8>, ContentError> {
        self.check()?;
        let opt = |v: &Option<[u8; 16]>| v.map(|b| Bytes::copy_from_slice(&b)).unwrap_or_default();
        Ok(wire::MessageBody {
            message_id: Bytes::copy_from_slice(message_id),
            recipient: Bytes::copy_from_slice(recipient.as_bytes()),
            subject: self.subject.clone(),
            text: self.text.clone(),
            language: self.language.clone(),
            incident: self.incident.as_ref().map(|i| wire::Incident {
                incident_id: i.incident_id.clone(),
                severity: i.severity,
                category: i.category.clone(),
                indicators: i
                    .indicators
                    .iter()
                    .map(|x| wire::Indicator {
                        kind: x.kind.clone(),
                        value: x.value.clone(),
                    })
                    .collect(),
            }),
            reply_to: opt(&self.reply_to),
            thread_id: opt(&self.thread_id),
        }
        .encode_to_vec())
    }

    /// Builds the signed `Content` plaintext: the body signed by `officer` by the version 1
    /// rule (the body only; for a peer that speaks version 1 only).
    pub fn sign(
        &self,
        message_id: &[u8; 16],
        recipient: &NodeId,
        officer: &OfficerKey,
        now: UnixMillis,
    ) -> Result<SignedContent, ContentError> {
        self.sign_with(message_id, recipient, officer, now, None)
    }

    /// Builds the signed `Content` plaintext of a message sent with `precedence` and `tlp`,
    /// signed by the version 2 rule: the body, the officer's credential, precedence and TLP
    /// (SPEC.md §7.5).
    pub fn sign_marked(
        &self,
        message_id: &[u8; 16],
        recipient: &NodeId,
        officer: &OfficerKey,
        now: UnixMillis,
        precedence: Precedence,
        tlp: Tlp,
    ) -> Result<SignedContent, ContentError> {
        let marking = marking(precedence, tlp);
        self.sign_with(message_id, recipient, officer, now, Some(marking))
    }

    fn sign_with(
        &self,
        message_id: &[u8; 16],
        recipient: &NodeId,
        officer: &OfficerKey,
        now: UnixMillis,
        marking: Option<Marking>,
    ) -> Result<SignedContent, ContentError> {
        officer
            .credential()
            .check_officer_at(now)
            .map_err(|_| ContentError::Officer("not an officer now"))?;
        let body = self.encode_body(message_id, recipient)?;
        let sig = match marking {
            Some(m) => officer.sign_message_marked(&body, m),
            None => officer.sign_message(&body),
        };
        Ok(SignedContent(
            wire::Content {
                body: body.into(),
                officer: Some(sig),
            }
            .encode_to_vec(),
        ))
    }
}

/// Canonical `Content` bytes, ready to seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedContent(pub(crate) Vec<u8>);

impl SignedContent {
    /// The plaintext bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Wraps bytes that an officer's client already built and signed (the node checks them
    /// with [`OpenedContent::parse`] before sealing).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SignedContent(bytes)
    }
}

/// Content that decrypted and verified: the message and the officer who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedContent {
    /// What the officer wrote.
    pub draft: Draft,
    /// The officer's verified credential (issued by the sending node).
    pub officer: Credential,
    /// The exact decrypted `Content` bytes (what the officer signed, for the record).
    pub plaintext: Bytes,
    /// What the officer's signature binds: version 2 also the credential, precedence and TLP.
    pub binding: Binding,
}

/// The marking a version 2 officer signature binds.
pub fn marking(precedence: Precedence, tlp: Tlp) -> Marking {
    let byte = |v: i32| u8::try_from(v).unwrap_or(0);
    Marking {
        precedence: byte(precedence.to_wire()),
        tlp: byte(tlp.to_wire()),
    }
}

impl OpenedContent {
    /// Parses and checks decrypted content against its header (SPEC.md §7.6 steps 11–12):
    /// `precedence` and `tlp` are the header's, which a version 2 officer signature binds.
    pub fn parse(
        plaintext: &[u8],
        message_id: &[u8; 16],
        sender: &NodeId,
        recipient: &NodeId,
        created: UnixMillis,
        precedence: Precedence,
        tlp: Tlp,
    ) -> Result<Self, ContentError> {
        let content: wire::Content =
            canonical::decode(plaintext).ok_or(ContentError::Bad("content not canonical"))?;
        let body: wire::MessageBody =
            canonical::decode(&content.body).ok_or(ContentError::Bad("body not canonical"))?;
        if body.message_id.as_ref() != message_id {
            return Err(ContentError::Bad("body message_id differs from header"));
        }
        if body.recipient.as_ref() != recipient.as_bytes() {
            return Err(ContentError::Bad("body recipient differs from header"));
        }
        let id16 = |b: &Bytes| -> Result<Option<[u8; 16]>, ContentError> {
            if b.is_empty() {
                Ok(None)
            } else {
                b.as_ref()
                    .try_into()
                    .map(Some)
                    .map_err(|_| ContentError::Bad("reply_to/thread_id must be 16 bytes"))
            }
        };
        let draft = Draft {
            subject: body.subject,
            text: body.text,
            language: body.language,
            incident: body.incident.map(|i| Incident {
                incident_id: i.incident_id,
                severity: i.severity,
                category: i.category,
                indicators: i
                    .indicators
                    .into_iter()
                    .map(|x| Indicator {
                        kind: x.kind,
                        value: x.value,
                    })
                    .collect(),
            }),
            reply_to: id16(&body.reply_to)?,
            thread_id: id16(&body.thread_id)?,
        };
        draft.check()?;
        let sig = content
            .officer
            .ok_or(ContentError::Officer("no officer signature"))?;
        let cred = sig
            .credential
            .as_ref()
            .ok_or(ContentError::Officer("no credential"))?;
        let officer = Credential::verify(cred, sender)
            .map_err(|_| ContentError::Officer("credential not issued by sender"))?;
        officer
            .check_officer_at(created)
            .map_err(|_| ContentError::Officer("not an officer when sent"))?;
        let binding = officer
            .verify_message_marked(&content.body, marking(precedence, tlp), &sig.signature)
            .ok_or(ContentError::Officer("signature does not verify"))?;
        Ok(OpenedContent {
            draft,
            officer,
            plaintext: Bytes::copy_from_slice(plaintext),
            binding,
        })
    }
}
