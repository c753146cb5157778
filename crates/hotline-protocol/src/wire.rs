//! Raw protobuf types generated from `proto/hotline/v1/wire.proto`.
//!
//! Normal code never uses these directly: decode them at the edge and convert into the
//! checked domain types of this crate. They are public for tooling that must build
//! deliberately invalid input (the conformance runner, fuzzers, vector generator).
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/hotline.v1.rs"));
