//! The hotline node daemon as a library: storage, TLS, configuration, key files and the link
//! driver. The `hotlined` binary is a thin command-line layer over it.
#![forbid(unsafe_code)]

pub mod commands;
pub mod config;
pub mod daemon;
pub mod keyfile;
pub mod material;
pub mod operator;
pub mod store;
pub mod tls;
