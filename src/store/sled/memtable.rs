//! The sled applier's memtable: every group applied since the last drain, held in memory —
//! touched session records, funnel index entries, day-visitor marks, rollup deltas and the
//! segment being filled per site — so a group's only write is its record in the group log.
//! [`super::write::drain`] writes it to sled; the pipeline drains at every checkpoint, before
//! every read of the store, and when the memtable outgrows [`BUDGET`].
//!
//! Applying a group is two passes: first every read it needs from sled (which may fail) loads
//! clean state into the memtable, then the batches are added, which cannot fail — so a group
//! that fails leaves nothing of itself behind.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::keys;
use super::write::{BatchRef, SessionRecord};
use crate::model::{day_of, EventData, StoredBatch, DAY_MS};
use crate::query::funnel::{count_views, encode_views, MAX_VIEWS_PER_SESSION};
use crate::rollup::track::Deltas;
use crate::store::{StoreError, WriteOutcome};

/// Estimated bytes the memtable may hold before the applier drains it (by default).
pub const BUDGET: usize = 8 << 20;
/// Segment ids from here up are provisional: a segment gets its real id when it is drained,
/// so it is never older than a session it holds (retention relies on that).
const PROVISIONAL: u64 = 1 << 63;
/// Segments are cut at about this size: the unit that retention zeroes in a segment file
/// whose other segments are younger, and that one index entry in sled locates.
pub const SEGMENT_BYTES: usize = 96 * 1024;
/// Segment buffers kept from one drain to the next (at most 6 MiB): about what a full
/// memtable fills with one busy site.
const SPARE_BUFFERS: usize = 64;
/// Rough bytes of rollup deltas and bookkeeping per event, and per new session.
const EVENT_WEIGHT: usize = 64;
const SESSION_WEIGHT: usize = 512;

/// A session the memtable knows: where it is keyed, its record, whether that changed.
pub struct OpenSession {
    pub anchor: i64,
    pub record: SessionRecord,
    pub dirty: bool,
}

/// What the memtable knows of a session: `None` when neither sled nor the memtable has it
/// (its first batch creates it).
type Slot = Option<OpenSession>;

/// A segment waiting for the drain: its site, provisional id and bytes.
pub struct Segment {
    pub site: String,
    pub provisional: u64,
    pub bytes: Vec<u8>,
}

/// Everything applied since the last drain (see the module docs).
pub struct Memtable {
    /// Estimated bytes past which [`Memtable::is_full`].
    budget: usize,
    /// Per site: the segment being filled.
    open_segments: HashMap<String, Segment>,
    /// Segments filled up to [`SEGMENT_BYTES`].
    pub(super) full_segments: Vec<Segment>,
    /// Provisional segment id → its real id, once the drain has given it one.
    pub(super) segment_ids: HashMap<u64, u64>,
    next_provisional: u64,
    sessions: HashMap<(String, [u8; 16]), Slot>,
    /// Funnel index entries: key → encoded views.
    pub(super) session_paths: HashMap<Vec<u8>, Vec<u8>>,
    /// Day-visitor marks: `true` for new ones (to write), `false` for ones sled has.
    day_visitors: HashMap<Vec<u8>, bool>,
    /// Index entries of new sessions: key → value.
    pub(super) new_index: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) deltas: Deltas,
    /// The group log's id of the last group applied.
    pub(super) last_group: Option<u64>,
    bytes: usize,
    /// Emptied buffers of drained segments, for the next ones: a fresh segment-sized buffer
    /// costs page faults each time (glibc gives the freed ones back to the kernel), which
    /// made allocating it ~3 % of the applier's time.
    spare_buffers: Vec<Vec<u8>>,
}

impl Memtable {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            open_segments: HashMap::new(),
            full_segments: Vec::new(),
            segment_ids: HashMap::new(),
            next_provisional: 0,
            sessions: HashMap::new(),
            session_paths: HashMap::new(),
            day_visitors: HashMap::new(),
            new_index: Vec::new(),
            deltas: Deltas::default(),
            last_group: None,
            bytes: 0,
            spare_buffers: Vec::new(),
        }
    }

    /// Applies one logged group (id `group`); one outcome per batch, in order. On an error
    /// nothing of the group was applied.
    pub fn apply(
        &mut self,
        tree: &sled::Tree,
        batches: &[&StoredBatch],
        group: u64,
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        for b in batches {
            self.prefetch(tree, b)?;
        }
        let outcomes = batches.iter().map(|b| self.add(b)).collect();
        self.last_group = Some(group);
        Ok(outcomes)
    }

    /// Past its budget: the applier should drain it.
    pub fn is_full(&self) -> bool {
        self.bytes >= self.budget
    }

    /// Loads from sled what adding `b` will read: its session, its funnel index entry, its
    /// day-visitor marks.
    fn prefetch(&mut self, tree: &sled::Tree, b: &StoredBatch) -> Result<(), StoreError> {
        let id = (b.site.clone(), b.sid.0);
        if !self.sessions.contains_key(&id) {
            let slot = load_session(tree, b)?;
            self.sessions.insert(id.clone(), slot);
        }
        if let Some(Some(session)) = self.sessions.get(&id) {
            if has_view(b) {
                let key = keys::session_paths(&b.site, session.anchor, &b.sid.0);
                if let Entry::Vacant(entry) = self.session_paths.entry(key) {
                    let stored = tree.get(entry.key())?.map(|v| v.to_vec()).unwrap_or_default();
                    entry.insert(stored);
                }
            }
        }
        for day in days_of(b) {
            let key = keys::day_visitor(&b.site, day, &b.visitor.0);
            if !self.day_visitors.contains_key(&key) && tree.contains_key(&key)? {
                self.day_visitors.insert(key, false);
            }
        }
        Ok(())
    }

    /// Adds one prefetched batch.
    fn add(&mut self, b: &StoredBatch) -> WriteOutcome {
        let id = (b.site.clone(), b.sid.0);
        let slot = self.sessions.get_mut(&id).expect("prefetched");
        if slot.is_none() {
            let anchor = b.received;
            self.new_index.push((keys::session_index(&b.site, &b.sid.0), anchor.to_be_bytes().to_vec()));
            self.new_index.push((keys::visitor_session(&b.site, &b.visitor.0, anchor, &b.sid.0), Vec::new()));
            let record = SessionRecord::new(b);
            self.deltas.day(&b.site, day_of(record.state.start)).sessions += 1;
            self.bytes += SESSION_WEIGHT;
            *slot = Some(OpenSession { anchor, record, dirty: false });
        }
        let session = slot.as_mut().expect("opened above");
        if session.record.batches.iter().any(|r| r.seq() == b.seq) {
            return WriteOutcome::Duplicate;
        }
        let anchor = session.anchor;
        let mut reference = self.append(&b.site, &b.encoded);
        reference.0 = b.seq;
        let session = self.sessions.get_mut(&id).and_then(Option::as_mut).expect("opened above");
        session.dirty = true;
        session.record.batches.push(reference);
        session.record.state.apply(b, &mut self.deltas);
        self.index_views(b, anchor);
        for day in days_of(b) {
            self.count_visitor(b, day);
        }
        self.bytes += b.encoded.len() + b.events.len() * EVENT_WEIGHT;
        WriteOutcome::Stored
    }

    /// Appends the batch's pageviews to its session's funnel index entry.
    fn index_views(&mut self, b: &StoredBatch, anchor: i64) {
        let mut views = b.events.iter().filter_map(|e| match &e.data {
            EventData::View(v) => Some((e.t, v.path.as_str())),
            _ => None,
        });
        let Some(first) = views.next() else { return };
        // Prefetched unless the session is new (then sled has no entry for it).
        let entry = self.session_paths.entry(keys::session_paths(&b.site, anchor, &b.sid.0)).or_default();
        let room = MAX_VIEWS_PER_SESSION.saturating_sub(count_views(entry));
        encode_views(entry, std::iter::once(first).chain(views).take(room));
    }

    fn count_visitor(&mut self, b: &StoredBatch, day: i32) {
        let key = keys::day_visitor(&b.site, day, &b.visitor.0);
        if self.day_visitors.contains_key(&key) {
            return;
        }
        self.day_visitors.insert(key, true);
        let day = self.deltas.day(&b.site, day);
        day.visitors += 1;
        day.visitor_sketch.add(&b.visitor);
    }

    /// Appends one batch's events to the site's open segment, starting a new one when full.
    fn append(&mut self, site: &str, encoded: &[u8]) -> BatchRef {
        if self.open_segments.get(site).is_some_and(|s| s.bytes.len() + encoded.len() > SEGMENT_BYTES) {
            let full = self.open_segments.remove(site).expect("checked above");
            self.full_segments.push(full);
        }
        let (next, spares) = (&mut self.next_provisional, &mut self.spare_buffers);
        let segment = self.open_segments.entry(site.to_owned()).or_insert_with(|| {
            *next += 1;
            // Sized for the whole segment up front: grown by doubling, its reallocations and
            // copies were ~6 % of the applier's time.
            let bytes = spares
                .pop()
                .filter(|b| b.capacity() >= encoded.len())
                .unwrap_or_else(|| Vec::with_capacity(SEGMENT_BYTES.max(encoded.len())));
            Segment { site: site.to_owned(), provisional: PROVISIONAL + *next, bytes }
        });
        let offset = segment.bytes.len() as u32;
        segment.bytes.extend_from_slice(encoded);
        BatchRef(0, segment.provisional, offset, encoded.len() as u32)
    }

    /// Closes every open segment and gives each segment without one its real id from `next_id`.
    pub(super) fn seal_segments(&mut self, next_id: &dyn Fn() -> u64) {
        self.full_segments.extend(std::mem::take(&mut self.open_segments).into_values());
        for segment in &self.full_segments {
            self.segment_ids.entry(segment.provisional).or_insert_with(next_id);
        }
    }

    /// The changed session records, their segment ids made real ([`Memtable::seal_segments`]
    /// first).
    pub(super) fn dirty_sessions(&mut self) -> impl Iterator<Item = (&str, &[u8; 16], &OpenSession)> {
        let ids = &self.segment_ids;
        self.sessions.iter_mut().filter_map(move |((site, sid), slot)| match slot {
            Some(s) if s.dirty => {
                for r in s.record.batches.iter_mut().filter(|r| r.1 >= PROVISIONAL) {
                    r.1 = ids[&r.1];
                }
                Some((site.as_str(), sid, &*s))
            }
            _ => None,
        })
    }

    /// The day-visitor marks to write.
    pub(super) fn new_day_visitors(&self) -> impl Iterator<Item = &[u8]> {
        self.day_visitors.iter().filter(|(_, new)| **new).map(|(k, _)| k.as_slice())
    }

    /// Forgets everything (after a drain wrote it to sled), keeping up to [`SPARE_BUFFERS`]
    /// segment buffers for the next segments.
    pub(super) fn clear(&mut self) {
        let mut spares = std::mem::take(&mut self.spare_buffers);
        let segments = self.full_segments.drain(..).chain(self.open_segments.drain().map(|(_, s)| s));
        for mut bytes in segments.map(|s| s.bytes) {
            if spares.len() >= SPARE_BUFFERS {
                break;
            }
            bytes.clear();
            spares.push(bytes);
        }
        let mut next = Memtable::new(self.budget);
        next.spare_buffers = spares;
        // The maps a batch adds to are kept with their tables (up to KEPT_ENTRIES): built anew
        // after every drain, their growth (rehashing) was ~2-3 % of the applier's time.
        next.sessions = kept(std::mem::take(&mut self.sessions));
        next.session_paths = kept(std::mem::take(&mut self.session_paths));
        next.day_visitors = kept(std::mem::take(&mut self.day_visitors));
        next.segment_ids = kept(std::mem::take(&mut self.segment_ids));
        *self = next;
    }
}

/// Entries a map emptied by [`Memtable::clear`] keeps room for (more after a burst, such as a
/// recovery's replay, are given back).
const KEPT_ENTRIES: usize = 4096;

/// `map` emptied, with room for up to [`KEPT_ENTRIES`] entries kept.
fn kept<K, V>(mut map: HashMap<K, V>) -> HashMap<K, V>
where
    K: Eq + std::hash::Hash,
{
    map.clear();
    map.shrink_to(KEPT_ENTRIES);
    map
}

/// The session `b` belongs to, as sled holds it.
fn load_session(tree: &sled::Tree, b: &StoredBatch) -> Result<Slot, StoreError> {
    let Some(anchor) = tree.get(keys::session_index(&b.site, &b.sid.0))? else {
        return Ok(None);
    };
    let anchor =
        i64::from_be_bytes(anchor.as_ref().try_into().map_err(|_| StoreError::Corrupt("session anchor".into()))?);
    let record = match tree.get(keys::session(&b.site, anchor, &b.sid.0))? {
        Some(v) => super::write::decode(&v)?,
        None => SessionRecord::new(b),
    };
    Ok(Some(OpenSession { anchor, record, dirty: false }))
}

fn has_view(b: &StoredBatch) -> bool {
    b.events.iter().any(|e| matches!(e.data, EventData::View(_)))
}

/// The days of `b`'s events, each run of equal days once. An event inside the last day's
/// bounds is in that day: the division (a 64-bit `idiv` per event, twice per batch, ~3.5 % of
/// the applier's time) is only done when an event leaves them.
fn days_of(b: &StoredBatch) -> impl Iterator<Item = i32> + '_ {
    // `[start, end)` of the last day computed: every time in it has that `day_of`. (A time
    // whose day does not fit an `i32` gets another day's range, one it is not in itself.)
    let mut bounds: Option<(i64, i64)> = None;
    let mut last = None;
    b.events.iter().filter_map(move |e| {
        if bounds.is_some_and(|(start, end)| (start..end).contains(&e.t)) {
            return None;
        }
        let day = day_of(e.t);
        let start = i64::from(day) * DAY_MS; // an `i32` of days in ms: far from overflowing
        bounds = Some((start, start + DAY_MS));
        (last != Some(day)).then(|| {
            last = Some(day);
            day
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Client, Event, Id128, VisitorKey};

    fn batch_at(times: &[i64]) -> StoredBatch {
        let events = times.iter().map(|&t| Event { t, data: EventData::Scroll { y: 1.0 } }).collect();
        let client = Client { device: "desktop".into(), browser: "chrome".into() };
        StoredBatch::new("s".into(), VisitorKey([1; 16]), Id128([2; 16]), 0, 0, client, events)
    }

    /// The plain definition: each run of equal `day_of` once.
    fn days_by_division(times: &[i64]) -> Vec<i32> {
        let mut days: Vec<i32> = times.iter().map(|&t| day_of(t)).collect();
        days.dedup();
        days
    }

    #[test]
    fn days_of_matches_a_division_per_event() {
        let mut rng = crate::test_rng::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next_u64();
        for _ in 0..2_000 {
            let mut t = 1_764_374_400_000 + (next() % (4 * DAY_MS as u64)) as i64 - 2 * DAY_MS;
            let times: Vec<i64> = (0..1 + next() % 60)
                .map(|_| {
                    // Mostly forward in small steps, sometimes across or back over a midnight.
                    t += match next() % 8 {
                        0 => -((next() % DAY_MS as u64) as i64),
                        1 => (next() % (2 * DAY_MS as u64)) as i64,
                        _ => (next() % 2_000) as i64,
                    };
                    t
                })
                .collect();
            assert_eq!(days_of(&batch_at(&times)).collect::<Vec<_>>(), days_by_division(&times), "{times:?}");
        }
        let edges =
            [0, -1, DAY_MS - 1, DAY_MS, -DAY_MS, -DAY_MS - 1, i64::MIN, i64::MIN + 1, i64::MAX, 5, i64::MAX - 1];
        assert_eq!(days_of(&batch_at(&edges)).collect::<Vec<_>>(), days_by_division(&edges));
    }
}
