//! What the measurement examples share: the workload's keys and the process's resident bytes.

/// Resident bytes of this process (`/proc/self/statm`).
pub fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// A xorshift generator: the same sequence on every run, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Key `i` shaped like `regatta-bench materializer`'s: 16–32 bytes, unique by the
/// zero-padded index, spread by a hashed prefix.
pub fn key(i: usize, rng: &mut Rng) -> Vec<u8> {
    let len = 16 + (rng.next() % 17) as usize;
    let mut k = format!(
        "{:04x}/{i:010}/",
        (i as u32).wrapping_mul(2_654_435_761) >> 16
    )
    .into_bytes();
    while k.len() < len {
        k.push(b'a' + (rng.next() % 26) as u8);
    }
    k.truncate(len);
    k
}
