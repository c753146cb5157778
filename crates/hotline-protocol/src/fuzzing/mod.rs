//! Entry points for fuzz targets (SPEC-independent shims live in `fuzz/`).
//!
//! Each `pub fn NAME(data: &[u8])` takes arbitrary bytes and must never panic; the only
//! panics are `assert!`s of invariants the code really guarantees, so a crash is a bug either
//! way. `cargo test` runs each one over the committed seed corpus in `fuzz/corpus/`
//! (`tests/fuzz_corpus.rs`), so stable CI exercises them every time.
//!
//! Keys, identities and valid wire objects come from one fixture built once (per process)
//! from [`TestRng`] with a fixed seed, so every run sees the same node "me" and the same
//! "peer", and a saved crash input reproduces exactly. [`fixture_frame`] hands out its valid
//! frames so the seed corpus can start from inputs that pass every check (a fuzzer does not
//! forge an Ed25519 signature on its own).

mod decoders;
mod fixture;
mod session_driver;
mod session_ops;

pub use decoders::{
    bundle, bundle_update, envelope_open, frame_decoder, hello_verify, key_update, receipt_verify,
    revocation,
};
pub use fixture::{
    FixtureBundle, FixtureFrame, FixtureRevocation, fixture_bundle, fixture_frame,
    fixture_revocation,
};
pub use session_driver::{SessionTrace, session, session_run};
pub use session_ops::{SessionOp, StreamSel, session_script};

#[cfg(doc)]
use crate::sim::TestRng;
