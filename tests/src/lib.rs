//! End-to-end, interop and fault tests against real `hotlined` processes.
//!
//! The node daemon is not built yet; this crate holds the workspace slot and the checks that
//! span crates. Tests that start real nodes arrive with the daemon.
#![forbid(unsafe_code)]
