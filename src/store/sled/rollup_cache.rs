//! The applier's write-back cache of rollup values: the decoded value of every rollup key it
//! wrote recently, so a group adds its deltas to the value in memory instead of reading and
//! decoding it from sled first. Each group still writes the encoded values into its own atomic
//! sled batch (what a crash leaves stays consistent, and reads see them at once); only the
//! read and decode are saved. Bounded by an estimate of the bytes held: past it, the cache is
//! emptied and refilled from sled.

use std::any::Any;
use std::collections::HashMap;

use crate::store::StoreError;

/// Estimated bytes of decoded values the cache may hold.
const BUDGET: usize = 32 << 20;

/// The usual estimate of a decoded value's bytes, from its encoding (values that know better,
/// like heat bands, count themselves).
pub fn weight_of_encoded<T>(_: &T, encoded: &[u8]) -> usize {
    2 * encoded.len() + 64
}

/// Decoded rollup values by key. Only the applier writes rollups, so a cached value is the
/// stored one as long as every batch built from it was applied ([`RollupCache::clear`] after a
/// failure).
#[derive(Default)]
pub struct RollupCache {
    values: HashMap<Vec<u8>, (Box<dyn Any + Send>, usize)>,
    bytes: usize,
}

impl RollupCache {
    /// Adds to the value stored under `key` (from the cache, else decoded by `load` from sled,
    /// else `T::default()`) with `add`, and returns its encoding (by `encode`) for the batch.
    /// `weight` estimates the decoded value's bytes.
    pub fn update<T: Any + Send + Default>(
        &mut self,
        key: Vec<u8>,
        load: impl FnOnce(&[u8]) -> Result<Option<T>, StoreError>,
        add: impl FnOnce(&mut T),
        encode: impl FnOnce(&T) -> Result<Vec<u8>, StoreError>,
        weight: impl FnOnce(&T, &[u8]) -> usize,
    ) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        let cached = self.values.get_mut(&key).and_then(|(v, w)| Some((v.downcast_mut::<T>()?, w)));
        if let Some((value, old_weight)) = cached {
            add(value);
            let encoded = encode(value)?;
            let new_weight = weight(value, &encoded) + key.len();
            self.bytes = self.bytes - *old_weight + new_weight;
            *old_weight = new_weight;
            return Ok((key, encoded));
        }
        let mut value = load(&key)?.unwrap_or_default();
        add(&mut value);
        let encoded = encode(&value)?;
        let w = weight(&value, &encoded) + key.len();
        if self.bytes + w > BUDGET {
            self.clear();
        }
        self.bytes += w;
        self.values.insert(key.clone(), (Box::new(value), w));
        Ok((key, encoded))
    }

    /// Forgets every value (after a failed write, the cache may be ahead of sled).
    pub fn clear(&mut self) {
        self.values.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(v: &u64) -> Result<Vec<u8>, StoreError> {
        Ok(v.to_be_bytes().to_vec())
    }

    #[test]
    fn values_are_read_once_then_kept() {
        let mut cache = RollupCache::default();
        let mut loads = 0;
        for _ in 0..3 {
            let load = |_: &[u8]| {
                loads += 1;
                Ok(Some(40u64))
            };
            cache.update(b"k".to_vec(), load, |v| *v += 1, encode, |_, e| e.len()).unwrap();
        }
        let (_, encoded) =
            cache.update(b"k".to_vec(), |_| Ok(None), |v: &mut u64| *v += 1, encode, |_, e| e.len()).unwrap();
        assert_eq!(loads, 1);
        assert_eq!(encoded, 44u64.to_be_bytes());
        cache.clear();
        let (_, encoded) =
            cache.update(b"k".to_vec(), |_| Ok(None), |v: &mut u64| *v += 1, encode, |_, e| e.len()).unwrap();
        assert_eq!(encoded, 1u64.to_be_bytes(), "after clear, read from the store again");
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let mut cache = RollupCache::default();
        for i in 0..10_000u64 {
            let heavy = |_: &u64, _: &[u8]| BUDGET / 100;
            cache.update(i.to_be_bytes().to_vec(), |_| Ok(None), |v: &mut u64| *v += 1, encode, heavy).unwrap();
            assert!(cache.bytes <= BUDGET);
        }
        assert!(cache.values.len() <= 100);
    }
}
