//! `hotline`: the duty officers' command-line client.
//!
//! It talks only to the operator's own node, over the operator API (SPEC.md §15): QUIC with
//! mutual TLS, both sides pinned, using the credential file the node's administrator issued
//! (`hotlined operator add`). Messages and acknowledgements are signed here, with the
//! operator's own key, so the node cannot forge them. `hotline verify` checks an evidence file
//! offline, with no node and no key. The command line itself is `hotline_client::cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hotline_client::cli::main()
}
