//! The operator client as a library: the connection to the operator's own node (SPEC.md
//! §15.3–§15.4), the credential file and its checks (§15.2.2), the failures a caller reports,
//! and the output helpers they need. The `hotline` command is built on it; so is
//! `hotline-bench`, which drives a node through the operator API exactly as `hotline` does.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod client;
pub mod credential;
pub mod error;
pub mod format;
pub mod parse;
