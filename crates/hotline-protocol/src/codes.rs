//! The registries of SPEC.md §12: close/stream error codes and receipt reject reasons.

use core::fmt;

macro_rules! registry {
    ($(#[$m:meta])* $name:ident: $repr:ty { $($(#[$vm:meta])* $var:ident = $val:expr, $text:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $var,)*
        }

        impl $name {
            /// Every value of the registry, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The registered number.
            pub const fn code(self) -> $repr {
                match self { $($name::$var => $val,)* }
            }

            /// Looks a number up; `None` for numbers not in the registry.
            pub fn from_code(code: $repr) -> Option<Self> {
                match code { $($val => Some($name::$var),)* _ => None }
            }

            /// The registered name, as SPEC.md writes it.
            pub const fn name(self) -> &'static str {
                match self { $($name::$var => $text,)* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

registry! {
    /// QUIC application error codes used to close a connection or reset/stop a stream
    /// (SPEC.md §12.1).
    CloseCode: u32 {
        /// Orderly close.
        NoError = 0x00, "NO_ERROR";
        /// The peer broke a rule with no more specific code.
        ProtocolViolation = 0x01, "PROTOCOL_VIOLATION";
        /// A frame header announced a payload over the limit for its type.
        FrameTooLarge = 0x02, "FRAME_TOO_LARGE";
        /// A frame payload did not decode, or was not canonical.
        MalformedFrame = 0x03, "MALFORMED_FRAME";
        /// A frame of an unknown type, or of a type not allowed here.
        UnexpectedFrame = 0x04, "UNEXPECTED_FRAME";
        /// No Hello within the Hello timeout.
        HelloTimeout = 0x05, "HELLO_TIMEOUT";
        /// The Hello signature does not bind this connection.
        BadChannelBinding = 0x06, "BAD_CHANNEL_BINDING";
        /// The Hello identity is not the identity pinned for this peer.
        IdentityMismatch = 0x07, "IDENTITY_MISMATCH";
        /// No protocol version in common.
        UnsupportedVersion = 0x08, "UNSUPPORTED_VERSION";
        /// No suite in common.
        UnsupportedSuite = 0x09, "UNSUPPORTED_SUITE";
        /// The peer exceeded a rate limit.
        RateLimited = 0x0A, "RATE_LIMITED";
        /// Nothing received within the liveness window.
        LinkTimeout = 0x0B, "LINK_TIMEOUT";
        /// The node is shutting down.
        Shutdown = 0x0C, "SHUTDOWN";
        /// Another connection between the same two nodes is kept instead.
        DuplicateConnection = 0x0D, "DUPLICATE_CONNECTION";
        /// A local fault; the peer did nothing wrong.
        InternalError = 0x0E, "INTERNAL_ERROR";
        /// The stream ended in the middle of a frame.
        TruncatedFrame = 0x0F, "TRUNCATED_FRAME";
        /// A receipt names a message this node never sent.
        UnknownMessage = 0x10, "UNKNOWN_MESSAGE";
        /// A receipt failed verification.
        BadReceipt = 0x11, "BAD_RECEIPT";
        /// More message streams than the receiver allows at once.
        TooManyStreams = 0x12, "TOO_MANY_STREAMS";
    }
}

registry! {
    /// Why a receiver refused an envelope: the `reason` of a REJECTED receipt (SPEC.md §12.3).
    /// The numbers are `hotline.v1.RejectReason`.
    RejectReason: i32 {
        /// The envelope, its header or a required field is malformed or not canonical.
        Malformed = 1, "MALFORMED";
        /// The header's protocol version is not supported.
        UnsupportedVersion = 2, "UNSUPPORTED_VERSION";
        /// The header's sender is not the peer of this link.
        UnknownSender = 3, "UNKNOWN_SENDER";
        /// The header's recipient is not this node.
        WrongRecipient = 4, "WRONG_RECIPIENT";
        /// The sender's signature does not verify (strictly).
        BadSignature = 5, "BAD_SIGNATURE";
        /// `created_ms` is too far in the future.
        CreatedInFuture = 6, "CREATED_IN_FUTURE";
        /// `created_ms` is older than the acceptance window.
        TooOld = 7, "TOO_OLD";
        /// The suite is not supported.
        UnsupportedSuite = 8, "UNSUPPORTED_SUITE";
        /// The recipient key id names no key this node holds.
        UnknownKey = 9, "UNKNOWN_KEY";
        /// The named encryption key was not valid when the envelope was created.
        ExpiredKey = 10, "EXPIRED_KEY";
        /// HPKE decryption failed.
        CannotDecrypt = 11, "CANNOT_DECRYPT";
        /// The decrypted content is malformed, inconsistent with the header, or of an unknown type.
        BadContent = 12, "BAD_CONTENT";
        /// The duty officer's credential or signature does not verify.
        BadOfficerSignature = 13, "BAD_OFFICER_SIGNATURE";
        /// The content exceeds the receiver's size policy.
        TooLarge = 14, "TOO_LARGE";
        /// The message id was already received with different bytes.
        Conflict = 15, "CONFLICT";
        /// Refused by local policy.
        Policy = 16, "POLICY";
        /// Version 2: the officer key that signed the content was revoked by the sender, with a
        /// cutoff at or before the envelope's `created_ms` (SPEC.md §4.6).
        RevokedKey = 17, "REVOKED_KEY";
    }
}

impl From<RejectReason> for crate::wire::RejectReason {
    fn from(r: RejectReason) -> Self {
        crate::wire::RejectReason::try_from(r.code())
            .unwrap_or(crate::wire::RejectReason::Unspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_match_the_proto_enum() {
        for r in RejectReason::ALL {
            let w = crate::wire::RejectReason::try_from(r.code()).expect("in proto");
            let proto_name = w.as_str_name().trim_start_matches("REJECT_REASON_");
            assert_eq!(proto_name, r.name());
        }
        assert!(crate::wire::RejectReason::try_from(RejectReason::ALL.len() as i32 + 1).is_err());
    }

    #[test]
    fn close_codes_round_trip() {
        for c in CloseCode::ALL {
            assert_eq!(CloseCode::from_code(c.code()), Some(*c));
        }
        assert_eq!(CloseCode::from_code(0xFFFF), None);
    }
}
