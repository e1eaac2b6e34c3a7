//! Fixed-size summaries kept per operation: a latency histogram and a distinct-count estimator. Both are
//! mergeable (templates re-merge, stores reload) and never grow with traffic.

use serde::{Deserialize, Serialize};

/// Stable 64-bit hash (FNV-1a, then the splitmix64 finaliser for well-spread bits): the same value hashes the
/// same in every run, so estimators saved to the store merge with new ones.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

const HLL_BITS: u32 = 7;
const HLL_REGISTERS: usize = 1 << HLL_BITS;

/// Distinct values counted exactly up to this many.
const EXACT_MAX: usize = 32;

/// Distinct-count estimate: exact up to 32 values, then HyperLogLog with 128 one-byte registers (about 9 %
/// standard error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hll {
    regs: Vec<u8>,
    /// Sorted hashes while there are at most `EXACT_MAX`; `None` past that.
    exact: Option<Vec<u64>>,
}

impl Default for Hll {
    fn default() -> Self {
        Hll { regs: vec![0; HLL_REGISTERS], exact: Some(Vec::new()) }
    }
}

impl Hll {
    pub fn add_hash(&mut self, h: u64) {
        if let Some(e) = &mut self.exact
            && let Err(pos) = e.binary_search(&h)
        {
            if e.len() >= EXACT_MAX {
                self.exact = None;
            } else {
                e.insert(pos, h);
            }
        }
        let idx = (h >> (64 - HLL_BITS)) as usize;
        let rest = h << HLL_BITS;
        let rank = (rest.leading_zeros() + 1).min(64 - HLL_BITS + 1) as u8;
        if let Some(r) = self.regs.get_mut(idx)
            && *r < rank
        {
            *r = rank;
        }
    }

    pub fn merge(&mut self, o: &Hll) {
        if self.regs.len() != HLL_REGISTERS {
            self.regs = vec![0; HLL_REGISTERS];
        }
        for (a, b) in self.regs.iter_mut().zip(o.regs.iter()) {
            *a = (*a).max(*b);
        }
        self.exact = match (self.exact.take(), &o.exact) {
            (Some(mut a), Some(b)) => {
                a.extend_from_slice(b);
                a.sort_unstable();
                a.dedup();
                (a.len() <= EXACT_MAX).then_some(a)
            }
            _ => None,
        };
    }

    pub fn estimate(&self) -> u64 {
        if let Some(e) = &self.exact {
            return e.len() as u64;
        }
        let m = HLL_REGISTERS as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for r in &self.regs {
            sum += 2f64.powi(-i32::from(*r));
            if *r == 0 {
                zeros += 1;
            }
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
        est.round() as u64
    }
}

/// Buckets per doubling of the latency: 4 gives bucket widths of about 19 %.
const LAT_SUB: f64 = 4.0;
const LAT_BUCKETS: usize = 100;

/// Latency histogram on a log scale from 1 µs to about 30 s (the last bucket holds everything slower).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    buckets: Vec<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { buckets: vec![0; LAT_BUCKETS] }
    }
}

impl Latency {
    pub fn add(&mut self, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let us = (seconds * 1e6).max(1.0);
        let i = ((us.log2() * LAT_SUB) as usize).min(LAT_BUCKETS - 1);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
    }

    pub fn merge(&mut self, o: &Latency) {
        if self.buckets.len() != LAT_BUCKETS {
            self.buckets = vec![0; LAT_BUCKETS];
        }
        for (a, b) in self.buckets.iter_mut().zip(o.buckets.iter()) {
            *a += b;
        }
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0..1) in milliseconds (bucket middle), None when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let target = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut acc = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b;
            if acc >= target {
                let us = 2f64.powf((i as f64 + 0.5) / LAT_SUB);
                return Some((us / 1000.0 * 1000.0).round() / 1000.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hll_counts_roughly() {
        let mut h = Hll::default();
        for i in 0..10u32 {
            h.add_hash(hash64(&i.to_be_bytes()));
            h.add_hash(hash64(&i.to_be_bytes()));
        }
        assert_eq!(h.estimate(), 10);
        let mut big = Hll::default();
        for i in 0..10_000u32 {
            big.add_hash(hash64(&i.to_be_bytes()));
        }
        let e = big.estimate() as f64;
        assert!((e - 10_000.0).abs() < 3_000.0, "{e}");
        h.merge(&big);
        assert!(h.estimate() >= big.estimate());
    }

    #[test]
    fn latency_quantiles() {
        let mut l = Latency::default();
        for i in 1..=100 {
            l.add(f64::from(i) / 1000.0);
        }
        let p50 = l.quantile_ms(0.5).unwrap();
        assert!((40.0..60.0).contains(&p50), "{p50}");
        let p99 = l.quantile_ms(0.99).unwrap();
        assert!((85.0..120.0).contains(&p99), "{p99}");
        l.add(f64::NAN);
        l.add(1e9);
        assert_eq!(l.count(), 101);
        assert_eq!(Latency::default().quantile_ms(0.5), None);
    }
}
