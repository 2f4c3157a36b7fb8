//! Compact stored encodings of count arrays (heat cells, histogram buckets): fixed-shape
//! arrays of counts written as LEB128 varint *tokens*, decoded by adding straight into the
//! caller's accumulator — no map, no allocation per value.
//!
//! A token `t` is either a count (`t` even: the next slot holds `t >> 1`) or a run of empty
//! slots (`t` odd: skip `t >> 1` slots). A full array is one byte per small count, a sparse one
//! a few bytes per filled slot, and both decode in one pass over the bytes.
//!
//! Every encoded value starts with a format byte that MessagePack never uses to begin a map,
//! so values written by older versions (MessagePack structs, which begin with a map marker)
//! are told apart and still read.

use std::fmt;

/// The value could not be decoded (a truncated or foreign value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one varint at `*at`, advancing it.
#[inline]
pub fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, Corrupt> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(Corrupt("value ends inside a number"))?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Corrupt("number longer than 64 bits"))
}

pub fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub fn f64_at(bytes: &[u8], at: &mut usize) -> Result<f64, Corrupt> {
    let b = bytes.get(*at..*at + 8).ok_or(Corrupt("value ends inside a float"))?;
    *at += 8;
    Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Appends the tokens of `counts` (trailing empty slots are left out).
pub fn put_counts(out: &mut Vec<u8>, counts: impl IntoIterator<Item = u64>) {
    let mut empty = 0u64;
    for n in counts {
        if n == 0 {
            empty += 1;
            continue;
        }
        if empty > 0 {
            put_varint(out, empty << 1 | 1);
            empty = 0;
        }
        // Counts above 2^63 cannot be told from a skip; no real count gets there.
        put_varint(out, n.min(u64::MAX >> 1) << 1);
    }
}

/// Appends the tokens of sparse `(slot, count)` pairs in increasing slot order.
pub fn put_sparse_counts(out: &mut Vec<u8>, counts: impl IntoIterator<Item = (usize, u64)>) {
    let mut next = 0;
    for (slot, n) in counts {
        if n == 0 || slot < next {
            continue;
        }
        if slot > next {
            put_varint(out, ((slot - next) as u64) << 1 | 1);
        }
        put_varint(out, n.min(u64::MAX >> 1) << 1);
        next = slot + 1;
    }
}

/// Appends `counts` in one of two layouts — tokens ([`put_counts`]) or a dense block
/// ([`add_dense`]: the low byte of every slot in the filled slots' span, then the few higher
/// parts) — and returns true for the dense block. The dense block is chosen unless it is more
/// than [`DENSE_SLACK`] times the tokens' size.
pub fn put_counts_chosen(out: &mut Vec<u8>, counts: &[u64]) -> bool {
    put_counts_in(out, counts, Layout::Chosen)
}

/// How many times the tokens' size a dense block may take and still be chosen. A dense block
/// adds its low bytes in a straight loop the compiler vectorises (a fraction of a cycle a
/// slot), while each token costs a few cycles of a serial slot count: measured at 10 M events,
/// a click band (ten filled cells a row, two bytes a filled cell as tokens) adds several
/// times faster dense, at 2.5 times the bytes. Beyond this the value's size (rewritten at
/// each merge) weighs more.
const DENSE_SLACK: usize = 3;

/// Which layout [`put_counts_in`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As [`put_counts_chosen`] chooses.
    Chosen,
    /// Tokens (what versions before the dense block wrote).
    Tokens,
    /// The dense block whenever a slot is filled.
    Dense,
}

/// Appends `counts` in `layout`; returns true if that is a dense block.
pub fn put_counts_in(out: &mut Vec<u8>, counts: &[u64], layout: Layout) -> bool {
    let start = out.len();
    if layout != Layout::Dense {
        put_counts(out, counts.iter().copied());
    }
    let tokens_end = out.len();
    if layout == Layout::Tokens || !put_dense(out, counts) {
        return false;
    }
    if layout == Layout::Chosen && out.len() - tokens_end > (tokens_end - start) * DENSE_SLACK {
        out.truncate(tokens_end);
        return false;
    }
    out.drain(start..tokens_end);
    true
}

/// Appends the dense block of `counts` (nothing, and false, when every slot is empty).
fn put_dense(out: &mut Vec<u8>, counts: &[u64]) -> bool {
    let Some(first) = counts.iter().position(|n| *n > 0) else { return false };
    let last = counts.iter().rposition(|n| *n > 0).expect("a filled slot");
    out.push(LOW_BYTES);
    put_varint(out, first as u64);
    put_varint(out, (last + 1 - first) as u64);
    out.extend(counts[first..=last].iter().map(|n| *n as u8));
    let mut next = 0;
    for (slot, n) in counts[first..=last].iter().enumerate().filter(|(_, n)| **n > 0xff) {
        put_varint(out, (slot - next) as u64);
        put_varint(out, n >> 8);
        next = slot + 1;
    }
    true
}

/// The first byte of a dense block written by this version: a slot's low byte, then its
/// higher bits apart. (1, 2, 4 or 8 there: fixed-width counts of that many bytes.)
const LOW_BYTES: u8 = 0;

/// Adds the dense block at `bytes[at..]` (the rest of the value) to `acc` slot by slot. A block
/// is a layout byte, the first slot and the number of slots as varints, then either (layout
/// [`LOW_BYTES`]) each slot's low byte followed by `(gap, count >> 8)` varint pairs for the
/// slots holding more (`gap`: slots skipped since the previous one), or (layout 1, 2, 4 or 8)
/// each slot's count as a little-endian integer of that many bytes.
pub fn add_dense(bytes: &[u8], at: usize, acc: &mut [u64]) -> Result<(), Corrupt> {
    let block = dense_block(bytes, at)?;
    let span = block.counts.len() / block.width;
    let acc = acc.get_mut(block.first..block.first + span).ok_or(Corrupt("count beyond the value's shape"))?;
    // One loop per width, each a plain zip the compiler vectorises.
    let data = block.counts;
    match block.width {
        1 => acc.iter_mut().zip(data).for_each(|(a, b)| *a += u64::from(*b)),
        2 => acc
            .iter_mut()
            .zip(data.chunks_exact(2))
            .for_each(|(a, b)| *a += u64::from(u16::from_le_bytes([b[0], b[1]]))),
        4 => acc
            .iter_mut()
            .zip(data.chunks_exact(4))
            .for_each(|(a, b)| *a += u64::from(u32::from_le_bytes(b.try_into().expect("4")))),
        _ => acc
            .iter_mut()
            .zip(data.chunks_exact(8))
            .for_each(|(a, b)| *a += u64::from_le_bytes(b.try_into().expect("8"))),
    }
    add_high_parts(block.high, acc)
}

/// Adds a low-byte block's `(gap, count >> 8)` pairs to `acc` (the block's span of slots).
fn add_high_parts(high: &[u8], acc: &mut [u64]) -> Result<(), Corrupt> {
    let (mut at, mut next) = (0, 0usize);
    while at < high.len() {
        let slot = next.saturating_add(usize::try_from(varint(high, &mut at)?).unwrap_or(usize::MAX));
        let high = varint(high, &mut at)?;
        let cell = acc.get_mut(slot).ok_or(Corrupt("count beyond the value's shape"))?;
        *cell += high.checked_shl(8).filter(|_| high >> 56 == 0).ok_or(Corrupt("dense counts: count"))?;
        next = slot + 1;
    }
    Ok(())
}

/// Low-byte blocks added into [`DenseSums`]' 16-bit lanes before those are moved into the sums:
/// 257 × 255 still fits in 16 bits.
const LOW_BLOCKS_PER_MOVE: u16 = 257;

/// The sums of many values' counts over a fixed number of slots, for a query that adds dense
/// blocks ([`add_dense`]) into them: a block's low bytes are added into 16-bit lanes (widening
/// each byte to 64 bits was most of the cost of adding a busy value; 16-bit lanes take a
/// quarter of the work and of the memory), which are moved into the 64-bit sums before they
/// could overflow and when the sums are read ([`DenseSums::sums`]). Its high parts and any
/// other layout are added into the sums directly. The sums are exactly [`add_dense`]'s.
#[derive(Debug, Clone)]
pub struct DenseSums {
    sums: Vec<u64>,
    /// Low bytes not yet in `sums` (empty until a low-byte block is added).
    low: Vec<u16>,
    /// Low-byte blocks added into `low` since it was last moved into `sums`.
    pending: u16,
}

impl DenseSums {
    /// `len` empty slots.
    pub fn new(len: usize) -> Self {
        DenseSums { sums: vec![0; len], low: Vec::new(), pending: 0 }
    }

    /// Like [`add_dense`] into these sums.
    pub fn add_dense(&mut self, bytes: &[u8], at: usize) -> Result<(), Corrupt> {
        let block = dense_block(bytes, at)?;
        if block.width != 1 {
            return add_dense(bytes, at, &mut self.sums);
        }
        let end = block.first.checked_add(block.counts.len()).filter(|end| *end <= self.sums.len());
        let end = end.ok_or(Corrupt("count beyond the value's shape"))?;
        if self.pending == LOW_BLOCKS_PER_MOVE {
            self.move_low();
        }
        if self.low.is_empty() {
            self.low = vec![0; self.sums.len()];
        }
        // A plain zip the compiler vectorises, 16 lanes of 8 bits into 16-bit lanes.
        self.low[block.first..end].iter_mut().zip(block.counts).for_each(|(a, b)| *a += u16::from(*b));
        self.pending += 1;
        add_high_parts(block.high, &mut self.sums[block.first..end])
    }

    /// The sums, for adding other layouts into (the low bytes are moved in first).
    pub fn sums_mut(&mut self) -> &mut [u64] {
        self.move_low();
        &mut self.sums
    }

    /// Every count added so far, slot by slot.
    pub fn sums(&mut self) -> &[u64] {
        self.move_low();
        &self.sums
    }

    fn move_low(&mut self) {
        if self.pending > 0 {
            self.sums.iter_mut().zip(&mut self.low).for_each(|(s, l)| *s += u64::from(std::mem::take(l)));
            self.pending = 0;
        }
    }
}

/// Like [`DenseSums`] over a vector that grows as [`add_dense_growing`]'s does (a pages query's
/// load histogram per path: a few values each, most of them dense blocks of a hundred or more
/// slots). Low bytes go into 16-bit lanes as long as the sums, everything else into the sums;
/// [`GrowingDenseSums::into_sums`] gives exactly what [`add_dense_growing`] and
/// [`add_counts_growing`] would have summed.
#[derive(Debug, Clone, Default)]
pub struct GrowingDenseSums {
    sums: Vec<u64>,
    /// Low bytes not yet in `sums` (no longer than `sums`).
    low: Vec<u16>,
    /// Low-byte blocks added into `low` since it was last moved into `sums`.
    pending: u16,
}

impl GrowingDenseSums {
    /// Like [`add_dense_growing`] into these sums.
    pub fn add_dense(&mut self, bytes: &[u8], at: usize, max_len: usize) -> Result<(), Corrupt> {
        let block = dense_block(bytes, at)?;
        if block.width != 1 {
            return add_dense_growing(bytes, at, &mut self.sums, max_len);
        }
        let end = block.first.checked_add(block.counts.len()).filter(|end| *end <= max_len);
        let end = end.ok_or(Corrupt("count beyond the value's shape"))?;
        if end > self.sums.len() {
            self.sums.resize(end.next_power_of_two().max(FIRST_GROWTH).min(max_len), 0);
        }
        if self.pending == LOW_BLOCKS_PER_MOVE {
            self.move_low();
        }
        if self.low.len() < end {
            self.low.resize(self.sums.len(), 0);
        }
        // A plain zip the compiler vectorises, 16 lanes of 8 bits into 16-bit lanes.
        self.low[block.first..end].iter_mut().zip(block.counts).for_each(|(a, b)| *a += u16::from(*b));
        self.pending += 1;
        add_high_parts(block.high, &mut self.sums[block.first..end])
    }

    /// Like [`add_counts_growing`] into these sums.
    pub fn add_counts(&mut self, bytes: &[u8], at: usize, max_len: usize) -> Result<(), Corrupt> {
        add_counts_growing(bytes, at, &mut self.sums, max_len)
    }

    /// Every count added, slot by slot (as long as the highest slot needed, rounded up as
    /// [`add_dense_growing`] rounds).
    pub fn into_sums(mut self) -> Vec<u64> {
        self.move_low();
        self.sums
    }

    fn move_low(&mut self) {
        if self.pending > 0 {
            self.sums.iter_mut().zip(&mut self.low).for_each(|(s, l)| *s += u64::from(std::mem::take(l)));
            self.pending = 0;
        }
    }
}

/// Like [`add_dense`] into a vector that grows as [`add_counts_growing`]'s does.
pub fn add_dense_growing(bytes: &[u8], at: usize, acc: &mut Vec<u64>, max_len: usize) -> Result<(), Corrupt> {
    let block = dense_block(bytes, at)?;
    let end = block.first.checked_add(block.counts.len() / block.width).filter(|end| *end <= max_len);
    let end = end.ok_or(Corrupt("count beyond the value's shape"))?;
    if end > acc.len() {
        acc.resize(end.next_power_of_two().max(FIRST_GROWTH).min(max_len), 0);
    }
    add_dense(bytes, at, acc)
}

/// A dense block's parts: its first slot, the bytes per count in `counts`, and the higher
/// parts that follow low bytes (empty for fixed-width counts).
struct DenseBlock<'a> {
    first: usize,
    width: usize,
    counts: &'a [u8],
    high: &'a [u8],
}

fn dense_block(bytes: &[u8], mut at: usize) -> Result<DenseBlock<'_>, Corrupt> {
    let layout = *bytes.get(at).ok_or(Corrupt("value ends before its counts"))?;
    if !matches!(layout, LOW_BYTES | 1 | 2 | 4 | 8) {
        return Err(Corrupt("dense counts: layout"));
    }
    at += 1;
    let first = usize::try_from(varint(bytes, &mut at)?).map_err(|_| Corrupt("dense counts: first slot"))?;
    let span = usize::try_from(varint(bytes, &mut at)?).map_err(|_| Corrupt("dense counts: length"))?;
    let width = usize::from(layout.max(1));
    let end = span.checked_mul(width).and_then(|len| at.checked_add(len)).filter(|end| *end <= bytes.len());
    let end = end.ok_or(Corrupt("dense counts: length"))?;
    if first.checked_add(span).is_none() || (layout != LOW_BYTES && end != bytes.len()) {
        return Err(Corrupt("dense counts: length"));
    }
    Ok(DenseBlock { first, width, counts: &bytes[at..end], high: &bytes[end..] })
}

/// Adds the counts encoded in `bytes[at..]` to `acc` slot by slot.
pub fn add_counts(bytes: &[u8], at: usize, acc: &mut [u64]) -> Result<(), Corrupt> {
    add_tokens(bytes, at, acc, |_, _| Err(Corrupt("count beyond the value's shape")))
}

/// Like [`add_counts`] into a vector that grows (up to `max_len` slots) as counts need it: to
/// at least [`FIRST_GROWTH`] slots, then to the next power of two, so an accumulator that many
/// values are added into is (re)allocated a few times, not once per value (slots past the
/// last count stay zero).
pub fn add_counts_growing(bytes: &[u8], at: usize, acc: &mut Vec<u64>, max_len: usize) -> Result<(), Corrupt> {
    add_tokens(bytes, at, acc, |acc, slot| {
        if slot >= max_len {
            return Err(Corrupt("count beyond the value's shape"));
        }
        acc.resize((slot + 1).next_power_of_two().max(FIRST_GROWTH).min(max_len), 0);
        Ok(())
    })
}

/// The fewest slots [`add_counts_growing`] grows an accumulator to.
const FIRST_GROWTH: usize = 256;

/// Adds the tokens of `bytes[at..]` into `acc`; `grow(acc, slot)` is called when a count falls
/// at `slot`, outside `acc`, and must make room or fail. Most tokens are one byte (a small
/// count or a short skip): runs of those are added in a tight loop, longer tokens one by one.
fn add_tokens<A: AsMut<[u64]> + ?Sized>(
    bytes: &[u8],
    mut at: usize,
    acc: &mut A,
    mut grow: impl FnMut(&mut A, usize) -> Result<(), Corrupt>,
) -> Result<(), Corrupt> {
    let mut slot = 0usize;
    while at < bytes.len() {
        let (next, used) = add_one_byte_tokens(&bytes[at..], slot, acc.as_mut());
        (slot, at) = (next, at + used);
        let Some(&b) = bytes.get(at) else { break };
        let t = if b < 0x80 {
            at += 1; // a count outside `acc`
            u64::from(b)
        } else {
            varint(bytes, &mut at)?
        };
        if t & 1 == 1 {
            slot = slot.saturating_add((t >> 1) as usize);
            continue;
        }
        if slot >= acc.as_mut().len() {
            grow(acc, slot)?;
        }
        *acc.as_mut().get_mut(slot).ok_or(Corrupt("count beyond the value's shape"))? += t >> 1;
        slot += 1;
    }
    Ok(())
}

/// Adds the one-byte tokens at the start of `bytes` until a longer token or a count outside
/// `acc`; returns the next slot and how many bytes were used. No branch on the token's kind
/// (counts and skips alternate unpredictably in a sparse value): a skip adds zero.
#[inline]
fn add_one_byte_tokens(bytes: &[u8], mut slot: usize, acc: &mut [u64]) -> (usize, usize) {
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x80 {
            return (slot, i);
        }
        let is_count = usize::from(b & 1 == 0);
        let half = usize::from(b >> 1);
        match acc.get_mut(slot) {
            Some(cell) => *cell += (half * is_count) as u64,
            None if is_count == 1 => return (slot, i),
            None => {}
        }
        slot = slot.saturating_add(is_count + half * (1 - is_count));
    }
    (slot, bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_sums_add_as_add_dense_does_across_many_values_and_layouts() {
        let mut rng = crate::test_rng::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = || rng.next_u64();
        const LEN: usize = 700;
        // Enough low-byte values of 255s to need the 16-bit lanes moved several times.
        for values in [1usize, 3, 256, 257, 258, 600] {
            let (mut plain, mut dense) = (vec![0u64; LEN], DenseSums::new(LEN));
            for v in 0..values {
                let (first, len) = ((next() % 100) as usize, (next() % 600) as usize + 1);
                let top = [0xff, 0x1_0000, 1 << 40, 3][v % 4];
                let mut counts = vec![0u64; LEN];
                for c in &mut counts[first..first + len] {
                    *c = if v % 4 == 0 { 255 } else { next() % top };
                }
                let layout = match v {
                    v if v % 7 == 6 => Layout::Tokens,
                    v if v % 4 == 0 => Layout::Dense,
                    _ => Layout::Chosen,
                };
                let mut bytes = vec![];
                let is_dense = put_counts_in(&mut bytes, &counts, layout);
                if is_dense {
                    add_dense(&bytes, 0, &mut plain).unwrap();
                    dense.add_dense(&bytes, 0).unwrap();
                } else {
                    add_counts(&bytes, 0, &mut plain).unwrap();
                    add_counts(&bytes, 0, dense.sums_mut()).unwrap();
                }
            }
            // A fixed-width block (layout 2: two bytes a slot), as the format allows.
            let fixed = [2u8, 5, 3, 1, 0, 0, 1, 0xff, 0xff];
            add_dense(&fixed, 0, &mut plain).unwrap();
            dense.add_dense(&fixed, 0).unwrap();
            assert_eq!(dense.sums(), plain, "{values} values");
            assert_eq!(dense.clone().sums(), plain, "read twice");
        }
        let mut too_long = vec![];
        assert!(put_counts_in(&mut too_long, &[0, 7, 300, 9], Layout::Chosen));
        assert!(DenseSums::new(3).add_dense(&too_long, 0).is_err());
        assert!(DenseSums::new(4).add_dense(&too_long, 0).is_ok());
    }

    #[test]
    fn counts_round_trip_dense_and_sparse() {
        let counts: Vec<u64> = (0..2500u64).map(|i| if i % 7 == 0 { 0 } else { i * i }).collect();
        let mut bytes = vec![];
        put_counts(&mut bytes, counts.iter().copied());
        let mut acc = vec![1u64; 2500];
        add_counts(&bytes, 0, &mut acc).unwrap();
        assert!(acc.iter().zip(&counts).all(|(a, c)| *a == c + 1));

        let mut sparse = vec![];
        put_sparse_counts(&mut sparse, [(3, 5), (4, 1), (2000, 1 << 40)]);
        let mut acc = vec![0u64; 2500];
        add_counts(&sparse, 0, &mut acc).unwrap();
        assert_eq!((acc[3], acc[4], acc[2000], acc.iter().sum::<u64>()), (5, 1, 1 << 40, 6 + (1 << 40)));
        assert!(sparse.len() < 12, "{}", sparse.len());

        let mut grown = vec![];
        add_counts_growing(&sparse, 0, &mut grown, 2500).unwrap();
        assert!(grown.len() >= 2001 && grown[2001..].iter().all(|n| *n == 0), "{}", grown.len());
        assert_eq!(grown[..2001], acc[..2001]);
        let mut long = vec![];
        put_counts(&mut long, (0..300u64).map(|i| i * 1000));
        let mut grown = vec![];
        add_counts_growing(&long, 0, &mut grown, 2500).unwrap();
        add_counts_growing(&long, 0, &mut grown, 2500).unwrap();
        assert!((0..300).all(|i| grown[i] == i as u64 * 2000), "multi-byte tokens and growth");
    }

    #[test]
    fn the_smaller_layout_is_chosen_and_both_add_the_same() {
        let mut rng = crate::test_rng::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.next_u64();
        let shapes: [fn(usize, u64) -> u64; 5] = [
            |i, r| if (100..300).contains(&i) { r % 60 } else { 0 },
            |i, r| if i % 97 == 0 { r % 5 + 1 } else { 0 },
            |_, r| r % 250,
            |i, r| match (i >= 1500, i % 50 == 0) {
                (true, true) => 1000 + r % 5000,
                (true, false) => r % 60 + 1,
                (false, _) => 0,
            },
            |i, _| if i % 50 == 1 { u64::MAX >> 2 } else { 0 },
        ];
        for (k, shape) in shapes.iter().enumerate() {
            let counts: Vec<u64> = (0..2500).map(|i| shape(i, next())).collect();
            let (mut tokens, mut chosen) = (vec![], vec![]);
            put_counts(&mut tokens, counts.iter().copied());
            let dense = put_counts_chosen(&mut chosen, &counts);
            assert!(chosen.len() <= tokens.len() * DENSE_SLACK, "shape {k}");
            assert_eq!(dense, [true, false, true, true, false][k], "shape {k}: sparse values stay tokens");
            let mut acc = vec![3u64; 2500];
            match dense {
                true => add_dense(&chosen, 0, &mut acc).unwrap(),
                false => add_counts(&chosen, 0, &mut acc).unwrap(),
            }
            assert!(acc.iter().zip(&counts).all(|(a, c)| *a == c + 3), "shape {k}");
            let mut grown = vec![];
            if dense {
                add_dense_growing(&chosen, 0, &mut grown, 2500).unwrap();
                assert_eq!(grown[..], counts[..grown.len()], "shape {k}");
                assert!(grown.len() > counts.iter().rposition(|n| *n > 0).unwrap());
            }
        }
        let mut empty = vec![];
        assert!(!put_counts_chosen(&mut empty, &[0; 40]) && empty.is_empty());
    }

    #[test]
    fn foreign_dense_blocks_are_an_error_not_a_panic() {
        let mut acc = vec![0u64; 10];
        add_dense(&[1, 8, 2, 5, 6], 0, &mut acc).unwrap();
        assert_eq!((acc[8], acc[9]), (5, 6), "fixed-width counts");
        add_dense(&[0, 7, 3, 1, 2, 3, 1, 4], 0, &mut acc).unwrap();
        assert_eq!(acc[7..], [1, 5 + 2 + (4 << 8), 6 + 3], "low bytes, then slot 8's higher part");
        for bad in [
            &[1, 9, 2, 5, 6][..],
            &[3, 0, 1, 5],
            &[1, 0, 2, 5],
            &[1, 0, 1, 5, 6],
            &[2, 0, 1, 5],
            &[],
            &[1],
            &[0, 9, 2, 5],
            &[0, 9, 1, 5, 1, 1],
            &[0, 9, 1, 5, 0],
            &[0, 9, 1, 5, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ] {
            assert!(add_dense(bad, 0, &mut acc).is_err(), "{bad:?}");
        }
        let huge = [8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(add_dense_growing(&huge, 0, &mut vec![], 1001).is_err());
        assert!(add_dense_growing(&[1, 0xe9, 0x07, 1, 1], 0, &mut vec![], 1001).is_err(), "slot 1001");
        assert!(add_dense_growing(&[0, 0xe8, 0x07, 1, 1], 0, &mut vec![], 1001).is_ok(), "slot 1000");
    }

    #[test]
    fn full_values_cost_a_byte_per_small_count() {
        let mut bytes = vec![];
        put_counts(&mut bytes, std::iter::repeat_n(63, 2500));
        assert_eq!(bytes.len(), 2500);
    }

    #[test]
    fn foreign_bytes_are_an_error_not_a_panic() {
        let mut acc = vec![0u64; 10];
        add_counts(&[22, 17, 2], 0, &mut acc).unwrap(); // 11 at slot 0, skip 8, 1 at slot 9
        assert_eq!((acc[0], acc[9]), (11, 1));
        assert!(add_counts(&[21, 2], 0, &mut acc).is_err(), "skip 10: slot 10 is outside");
        assert!(add_counts(&[0x80], 0, &mut acc).is_err(), "truncated varint");
        assert!(add_counts(&[0xff; 11], 0, &mut acc).is_err(), "overlong varint");
        assert!(add_counts_growing(&[0x81, 0x80, 0x80, 0x80, 0x10, 2], 0, &mut vec![], 1001).is_err());
    }
}
