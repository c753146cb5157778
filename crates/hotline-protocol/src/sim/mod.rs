//! A deterministic two-peer harness: two [`Session`]s wired together over a simulated clock,
//! with hooks to drop, delay, duplicate, reorder and tamper with frames. Time jumps straight
//! to the next deadline; nothing sleeps. Each side runs a small driver that does what
//! `hotlined` does (verify, decrypt, store, sign receipts) with in-memory "storage".
//!
//! Also home of [`TestRng`], the seeded randomness used by tests and the vector generator.

mod node;
mod pair;
mod tls;

pub use node::{Accepted, SimNode, is_rejected_with, receipt_kinds};
pub use pair::{EPOCH, Faults, Pair, Who};

#[cfg(doc)]
use crate::session::Session;

/// Seeded deterministic randomness (SHA-256 in counter mode). **For tests and test vectors
/// only**: it is predictable by design.
#[derive(Clone, Debug)]
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 32],
    pos: usize,
}

impl TestRng {
    /// A generator from a number.
    pub fn new(seed: u64) -> Self {
        Self::from_seed_bytes(&seed.to_be_bytes())
    }

    /// A generator from arbitrary seed bytes.
    pub fn from_seed_bytes(seed: &[u8]) -> Self {
        TestRng {
            seed: crate::crypto::sha256_parts(&[b"hotline test rng", seed]),
            counter: 0,
            buf: [0; 32],
            pos: 32,
        }
    }

    /// A uniform number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        use rand_core::Rng;
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.below(1_000_000) as f64) < p * 1_000_000.0
    }

    /// 16 random bytes.
    pub fn id16(&mut self) -> [u8; 16] {
        use rand_core::Rng;
        let mut b = [0; 16];
        self.fill_bytes(&mut b);
        b
    }
}

impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            if self.pos == 32 {
                self.buf = crate::crypto::sha256_parts(&[&self.seed, &self.counter.to_be_bytes()]);
                self.counter += 1;
                self.pos = 0;
            }
            *byte = self.buf[self.pos];
            self.pos += 1;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}
