//! What went wrong, in words for the operator, and the exit status that tells a script which.

use std::fmt;

use hotline_protocol::wire::OperatorErrorCode;

/// Exit statuses of `hotline`. Each failure class has its own, so scripts can tell a node that
/// is down (retry later) from a credential problem (ask the administrator) or a bad id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Anything not listed below (including a request the node refused as malformed).
    General = 1,
    /// The command line is wrong (clap uses 2 as well).
    Usage = 2,
    /// The credential file is missing, unreadable, insecure or invalid, or the node refused it
    /// (revoked, expired, issued by another node), or the node is not the credential's node.
    Credential = 3,
    /// The node could not be reached (nothing answers, no operator API, shutting down).
    Unreachable = 4,
    /// The node refused the request: the credential's role does not allow it (a viewer
    /// sending or acknowledging) or it was revoked.
    Forbidden = 5,
    /// No installed peer has that alias or node id.
    UnknownPeer = 6,
    /// No message with that id.
    NotFound = 7,
    /// `send --wait`/`--wait-ack` gave up before the receipt arrived.
    Timeout = 8,
    /// A signature or an evidence check failed.
    Verification = 9,
    /// The node could not complete the request (storage failure, shutting down): nothing was
    /// stored; try again.
    Unavailable = 10,
    /// The peer refused the message with a signed REJECTED receipt.
    Rejected = 11,
}

/// The table printed in `hotline --help` and README.md.
pub const EXIT_TABLE: &str = "\
Exit status:
   0  success
   1  general error (also: the node refused a malformed request or content)
   2  usage error (bad arguments, no message body)
   3  credential problem: missing, insecure mode, invalid, refused by the node (revoked,
      expired, issued by another node), or the node is not the credential's node
   4  node unreachable: nothing answers at the address, or it offers no operator API
   5  forbidden: the node refused the request for this credential (viewer, revoked)
   6  unknown peer
   7  message not found
   8  timed out waiting for a receipt (send --wait / --wait-ack)
   9  verification failed (a signature or evidence check)
  10  node unavailable: it could not complete the request; nothing was stored, retry
  11  the peer rejected the message (signed REJECTED receipt)";

impl Exit {
    /// The process exit status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failed command: the exit status and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Exit status.
    pub exit: Exit,
    /// For people.
    pub message: String,
}

impl Failure {
    /// A failure of class `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }

    /// A general failure.
    pub fn general(message: impl Into<String>) -> Self {
        Self::new(Exit::General, message)
    }

    /// A usage failure.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    /// The failure for an `OperatorError` the node answered (SPEC.md §15.6). The node's
    /// message is text from the node (trusted less than our own): control characters removed.
    pub fn from_operator(code: i32, message: &str) -> Self {
        let message = crate::format::clean(message);
        let (exit, what) = match OperatorErrorCode::try_from(code) {
            Ok(OperatorErrorCode::BadRequest) => (Exit::General, "the node refused the request"),
            Ok(OperatorErrorCode::Forbidden) => (Exit::Forbidden, "forbidden"),
            Ok(OperatorErrorCode::UnknownPeer) => (Exit::UnknownPeer, "unknown peer"),
            Ok(OperatorErrorCode::NotFound) => (Exit::NotFound, "not found"),
            Ok(OperatorErrorCode::BadContent) => (Exit::General, "the node refused the content"),
            Ok(OperatorErrorCode::Unavailable) => (
                Exit::Unavailable,
                "the node could not complete the request (nothing was stored; try again)",
            ),
            Ok(OperatorErrorCode::Unspecified) | Err(_) => {
                (Exit::General, "the node answered with an unknown error")
            }
        };
        let message = if message.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {message}")
        };
        Failure::new(exit, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Result of a command.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_listed_in_the_table() {
        let all = [
            Exit::General,
            Exit::Usage,
            Exit::Credential,
            Exit::Unreachable,
            Exit::Forbidden,
            Exit::UnknownPeer,
            Exit::NotFound,
            Exit::Timeout,
            Exit::Verification,
            Exit::Unavailable,
            Exit::Rejected,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for c in codes {
            assert!(
                EXIT_TABLE.contains(&format!("\n{c:>4}  ")),
                "exit {c} missing from the table"
            );
        }
    }

    #[test]
    fn maps_every_operator_error_code_to_its_exit_status() {
        use OperatorErrorCode as C;
        let exit = |c: C| Failure::from_operator(c as i32, "x").exit;
        assert_eq!(exit(C::Forbidden), Exit::Forbidden);
        assert_eq!(exit(C::UnknownPeer), Exit::UnknownPeer);
        assert_eq!(exit(C::NotFound), Exit::NotFound);
        assert_eq!(exit(C::Unavailable), Exit::Unavailable);
        assert_eq!(exit(C::BadRequest), Exit::General);
        assert_eq!(exit(C::BadContent), Exit::General);
        assert_eq!(Failure::from_operator(0, "").exit, Exit::General);
        assert_eq!(Failure::from_operator(99, "").exit, Exit::General);
    }

    #[test]
    fn strips_terminal_escapes_from_node_messages() {
        let f = Failure::from_operator(OperatorErrorCode::NotFound as i32, "no\x1b[2Jsuch");
        assert!(!f.message.contains('\x1b'), "{:?}", f.message);
    }
}
