//! The operator client as a library: the `hotline` command line ([`cli`]), the connection to
//! the operator's own node (SPEC.md §15.3–§15.4), the credential file and its checks (§15.2.2),
//! the failures a caller reports, and the output helpers they need. `hotline-bench` drives a
//! node through the operator API with the same [`client`].
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cli;
pub mod client;
mod commands;
pub mod credential;
mod demo;
pub mod error;
pub mod evidence_file;
pub mod format;
mod officer_info;
pub mod parse;
mod removed;
mod revocation_view;
mod show_check;
mod status_view;
mod verify;
