//! Entry points for fuzz targets (SPEC-independent shims live in `fuzz/`).
//!
//! Each function takes arbitrary bytes and must never panic. `cargo test` runs each one over
//! the committed seed corpus in `fuzz/corpus/`, so stable CI exercises them every time.
