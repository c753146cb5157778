//! The hotline node daemon as a library: storage, configuration, the link driver and the
//! operator API. The `hotlined` binary is a thin command-line layer over it; TLS, key files and
//! credential files come from `hotline-transport`, below it.
#![forbid(unsafe_code)]

pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod expiry;
pub mod keys;
pub mod listing;
pub mod notify;
pub mod operator;
pub mod operator_renew;
pub mod revoke;
pub mod store;
