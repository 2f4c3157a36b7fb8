//! One group commit on ClickHouse: the versioned-claim protocol of the module doc, then the
//! rollup deltas of the sessions whose claims won.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::http::{id_lit, lit, Http};
use super::rowbinary::Rows;
use super::{corrupt, parse_id, Record};
use crate::model::{day_of, StoredBatch, VisitorKey};
use crate::rollup::sketch::VisitorSketch;
use crate::rollup::track::Deltas;
use crate::store::{StoreError, WriteOutcome};

/// How long a group may keep retrying contended sessions before it fails (the client resends).
const MAX_CONTENTION: Duration = Duration::from_secs(30);
/// A won claim is confirmed only if its confirmation is sent within this time of the claim.
const LEASE: Duration = Duration::from_secs(2);
/// How long a writer waits for a lone unconfirmed claim before treating it as void (its
/// collector died before confirming, so it never counted rollups or answered 204).
const ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// `sessions.mark`: what a row says about its `(version, token)`.
const CLAIM: u8 = 0;
const RETRACT: u8 = 1;
const CONFIRM: u8 = 2;

/// The session a batch belongs to.
pub type SessionKey = (String, [u8; 16]);

/// The newest valid state of a session.
#[derive(Debug, Clone)]
pub struct State {
    pub version: u32,
    pub anchor: i64,
    pub record: Record,
}

/// What `sessions` says about one session.
#[derive(Debug)]
pub enum Resolved<T> {
    New,
    Known(T),
    /// The newest version is not settled yet (a claim not yet confirmed or retracted): wait.
    /// Holds the newest confirmed state below it, if any, for readers that do not wait.
    InDoubt(Option<T>),
}

impl<T> Resolved<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Resolved<U> {
        match self {
            Resolved::New => Resolved::New,
            Resolved::Known(t) => Resolved::Known(f(t)),
            Resolved::InDoubt(t) => Resolved::InDoubt(t.map(f)),
        }
    }
}

/// One row of `sessions` without its record: a claim or a retraction.
#[derive(Debug, Clone, Deserialize)]
pub struct ClaimRow {
    pub site: String,
    pub hsid: String,
    pub version: u32,
    pub token: u64,
    pub mark: u8,
}

/// Resolves all rows of one session into its newest confirmed `(version, token)`. A newer
/// version with live (unretracted) but unconfirmed claims makes it [`Resolved::InDoubt`] —
/// unless `skip_unsettled`, for readers and for claims given up as abandoned.
pub fn resolve(rows: &[&ClaimRow], skip_unsettled: bool) -> Resolved<(u32, u64)> {
    let mut versions: Vec<u32> = rows.iter().map(|r| r.version).collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.dedup();
    let mut unsettled = false;
    for v in versions {
        let with = |mark: u8| -> BTreeSet<u64> {
            rows.iter().filter(|r| r.version == v && r.mark == mark).map(|r| r.token).collect()
        };
        let (claims, retracted, confirmed) = (with(CLAIM), with(RETRACT), with(CONFIRM));
        if let Some(t) = confirmed.iter().find(|t| claims.contains(t) && !retracted.contains(t)) {
            let known = (v, *t);
            return if unsettled { Resolved::InDoubt(Some(known)) } else { Resolved::Known(known) };
        }
        if claims.iter().any(|t| !retracted.contains(t)) && !skip_unsettled {
            unsettled = true;
        }
    }
    if unsettled {
        Resolved::InDoubt(None)
    } else {
        Resolved::New
    }
}

/// `(site = 'a' AND sid IN (…)) OR …` for a set of sessions, so the primary key is used.
pub fn sessions_condition<'a>(keys: impl Iterator<Item = &'a SessionKey>) -> String {
    let mut by_site: HashMap<&str, Vec<String>> = HashMap::new();
    for (site, sid) in keys {
        by_site.entry(site.as_str()).or_default().push(id_lit(sid));
    }
    let parts: Vec<String> = by_site
        .into_iter()
        .map(|(site, ids)| format!("(site = {} AND sid IN ({}))", lit(site), ids.join(", ")))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" OR ")
    }
}

/// Every claim and retraction of the sessions in `keys`, by session.
async fn claims(
    http: &Http,
    keys: &[SessionKey],
    versions: Option<&str>,
) -> Result<HashMap<SessionKey, Vec<ClaimRow>>, StoreError> {
    let mut sql = format!(
        "SELECT site, lower(hex(sid)) AS hsid, version, token, mark FROM sessions WHERE ({})",
        sessions_condition(keys.iter())
    );
    if let Some(v) = versions {
        sql.push_str(&format!(" AND version IN ({v})"));
    }
    let mut out: HashMap<SessionKey, Vec<ClaimRow>> = HashMap::new();
    for r in http.select::<ClaimRow>(&sql).await? {
        out.entry((r.site.clone(), parse_id(&r.hsid)?)).or_default().push(r);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct RecordRow {
    site: String,
    hsid: String,
    version: u32,
    token: u64,
    anchor: i64,
    record: String,
}

/// The newest confirmed state of each session in `keys`: all claim rows first (small), then
/// the records of the chosen claims only. `skip_unsettled`: see [`resolve`].
pub async fn read_states(
    http: &Http,
    keys: &[SessionKey],
    skip_unsettled: bool,
) -> Result<HashMap<SessionKey, Resolved<State>>, StoreError> {
    let mut out = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(out);
    }
    let all = claims(http, keys, None).await?;
    let mut chosen: HashMap<SessionKey, Resolved<(u32, u64)>> = HashMap::new();
    let mut wanted = Vec::new();
    for key in keys {
        let rows: Vec<&ClaimRow> = all.get(key).map(|v| v.iter().collect()).unwrap_or_default();
        let r = resolve(&rows, skip_unsettled);
        if let Resolved::Known((v, t)) | Resolved::InDoubt(Some((v, t))) = r {
            wanted.push(format!("({v}, {t})"));
        }
        chosen.insert(key.clone(), r);
    }
    let mut records: HashMap<(SessionKey, u32, u64), State> = HashMap::new();
    if !wanted.is_empty() {
        let rows: Vec<RecordRow> = http
            .select(&format!(
                "SELECT site, lower(hex(sid)) AS hsid, version, token, anchor, record FROM sessions \
                 WHERE ({}) AND mark = 0 AND (version, token) IN ({})",
                sessions_condition(keys.iter()),
                wanted.join(", ")
            ))
            .await?;
        for r in rows {
            let record: Record =
                serde_json::from_str(&r.record).map_err(|e| corrupt(format!("session record: {e}")))?;
            let key = (r.site, parse_id(&r.hsid)?);
            records.insert((key, r.version, r.token), State { version: r.version, anchor: r.anchor, record });
        }
    }
    for (key, r) in chosen {
        let state = r.map(|(v, t)| records.remove(&(key.clone(), v, t)));
        let vanished = || StoreError::Backend("a session claim vanished while it was read".into());
        let state = match state {
            Resolved::New => Resolved::New,
            Resolved::InDoubt(None) => Resolved::InDoubt(None),
            Resolved::Known(s) => Resolved::Known(s.ok_or_else(vanished)?),
            Resolved::InDoubt(Some(s)) => Resolved::InDoubt(Some(s.ok_or_else(vanished)?)),
        };
        out.insert(key, state);
    }
    Ok(out)
}

/// One session's part of a group: its new state and what it adds.
struct Plan {
    key: SessionKey,
    version: u32,
    token: u64,
    anchor: i64,
    record: Record,
    deltas: Deltas,
    marks: BTreeSet<(i32, VisitorKey)>,
    /// Indexes (into the group) of the batches this plan stores.
    stored: Vec<usize>,
}

pub async fn write_group(http: &Http, batches: &[StoredBatch]) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batches.len()];
    // Sessions in first-seen order, each with its batches in arrival order.
    let mut pending: Vec<(SessionKey, Vec<usize>)> = Vec::new();
    let mut index: HashMap<SessionKey, usize> = HashMap::new();
    for (i, b) in batches.iter().enumerate() {
        let key = (b.site.clone(), b.sid.0);
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            pending.push((key, Vec::new()));
            pending.len() - 1
        });
        pending[slot].1.push(i);
    }

    let started = Instant::now();
    let mut doubted: HashMap<SessionKey, Instant> = HashMap::new();
    let mut attempt = 0u64;
    while !pending.is_empty() {
        attempt += 1;
        if started.elapsed() > MAX_CONTENTION {
            return Err(StoreError::Backend(format!(
                "{} session(s) stayed contended by other collectors for {MAX_CONTENTION:?}",
                pending.len()
            )));
        }
        // Sessions unsettled for too long: their claimant died before confirming.
        let abandoned: Vec<SessionKey> = pending
            .iter()
            .filter(|(k, _)| doubted.get(k).is_some_and(|t| t.elapsed() > ABANDONED_AFTER))
            .map(|(k, _)| k.clone())
            .collect();
        let keys: Vec<SessionKey> = pending.iter().map(|(k, _)| k.clone()).filter(|k| !abandoned.contains(k)).collect();
        let mut states = read_states(http, &keys, false).await?;
        states.extend(read_states(http, &abandoned, true).await?);
        let mut plans = Vec::new();
        let mut deferred = Vec::new();
        for (key, idxs) in pending.drain(..) {
            let state = match states.remove(&key).unwrap_or(Resolved::New) {
                Resolved::InDoubt(_) => {
                    doubted.entry(key.clone()).or_insert_with(Instant::now);
                    deferred.push((key, idxs));
                    continue;
                }
                Resolved::Known(s) => Some(s),
                Resolved::New => None,
            };
            if let Some(plan) = plan(key, state, &idxs, batches, &mut outcomes) {
                plans.push(plan);
            }
        }
        if !plans.is_empty() {
            insert_batches(http, batches, &plans).await?;
            let claimed = Instant::now();
            insert_rows(http, &plans, CLAIM).await?;
            let lost = check_claims(http, &plans).await?;
            // Past the lease, a win is not confirmed: a waiting writer may already treat it
            // as abandoned. Withdraw it like a loss and try again.
            let late = claimed.elapsed() > LEASE;
            let (won, lost): (Vec<Plan>, Vec<Plan>) = plans.into_iter().partition(|p| !late && !lost.contains(&p.key));
            if !lost.is_empty() {
                tracing::debug!(sessions = lost.len(), attempt, "another collector claimed the same version; retrying");
            }
            let (confirmed, withdrawn) =
                tokio::join!(insert_rows(http, &won, CONFIRM), insert_rows(http, &lost, RETRACT));
            confirmed?;
            withdrawn?;
            insert_rollups(http, &won).await?;
            for p in &won {
                for &i in &p.stored {
                    outcomes[i] = Some(WriteOutcome::Stored);
                }
            }
            for p in lost {
                for &i in &p.stored {
                    outcomes[i] = None;
                }
                deferred.push((p.key, p.stored));
            }
        }
        pending = deferred;
        if !pending.is_empty() {
            let ms = 2 + rand::random::<u64>() % (5 * attempt).min(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    outcomes.into_iter().map(|o| o.ok_or_else(|| StoreError::Backend("batch without an outcome".into()))).collect()
}

/// Applies the batches `idxs` of one session on top of `state`; `None` when all are duplicates.
fn plan(
    key: SessionKey,
    state: Option<State>,
    idxs: &[usize],
    batches: &[StoredBatch],
    outcomes: &mut [Option<WriteOutcome>],
) -> Option<Plan> {
    let mut deltas = Deltas::default();
    let (version, anchor, mut record) = match state {
        Some(s) => (s.version + 1, s.anchor, s.record),
        None => {
            let first = &batches[idxs[0]];
            let record = Record::new(first);
            deltas.day(&first.site, day_of(record.state.start)).sessions += 1;
            (1, first.received, record)
        }
    };
    let mut marks = BTreeSet::new();
    let mut stored = Vec::new();
    for &i in idxs {
        let b = &batches[i];
        if record.seqs.contains(&b.seq) {
            outcomes[i] = Some(WriteOutcome::Duplicate);
            continue;
        }
        record.seqs.push(b.seq);
        record.state.apply(b, &mut deltas);
        for e in &b.events {
            marks.insert((day_of(e.t), b.visitor));
        }
        stored.push(i);
    }
    if stored.is_empty() {
        return None;
    }
    Some(Plan { key, version, token: rand::random(), anchor, record, deltas, marks, stored })
}

async fn insert_batches(http: &Http, batches: &[StoredBatch], plans: &[Plan]) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for p in plans {
        for &i in &p.stored {
            let b = &batches[i];
            rows.str(&b.site);
            rows.fixed(&b.sid.0);
            rows.u32(b.seq);
            rows.i64(b.received);
            rows.date(day_of(b.received));
            rows.u64((i64::MAX - b.received.max(0)) as u64);
            rows.bytes(&b.encoded);
        }
    }
    http.insert("batches", "site, sid, seq, received, day, keep, events", rows.buf).await
}

/// Claims, retracts or confirms (`mark`) each plan's version.
async fn insert_rows(http: &Http, plans: &[Plan], mark: u8) -> Result<(), StoreError> {
    let mut rows = Rows::default();
    for p in plans {
        rows.str(&p.key.0);
        rows.fixed(&p.key.1);
        rows.u32(p.version);
        rows.u64(p.token);
        rows.u8(mark);
        rows.i64(p.anchor);
        rows.date(day_of(p.anchor));
        rows.fixed(&p.record.state.visitor.0);
        if mark != CLAIM {
            rows.str("");
        } else {
            rows.bytes(&serde_json::to_vec(&p.record).map_err(corrupt)?);
        }
    }
    http.insert("sessions", "site, sid, version, token, mark, anchor, day, visitor, record", rows.buf).await
}

/// The sessions whose claim met another unretracted claim of the same version.
async fn check_claims(http: &Http, plans: &[Plan]) -> Result<BTreeSet<SessionKey>, StoreError> {
    let versions: BTreeSet<u32> = plans.iter().map(|p| p.version).collect();
    let versions: Vec<String> = versions.iter().map(u32::to_string).collect();
    let keys: Vec<SessionKey> = plans.iter().map(|p| p.key.clone()).collect();
    let rows = claims(http, &keys, Some(&versions.join(", "))).await?;
    let mut lost = BTreeSet::new();
    for p in plans {
        let mine: Vec<&ClaimRow> =
            rows.get(&p.key).map(|v| v.iter().filter(|r| r.version == p.version).collect()).unwrap_or_default();
        if !mine.iter().any(|r| r.token == p.token && r.mark == CLAIM) {
            return Err(StoreError::Backend("ClickHouse did not return a claim it acknowledged".into()));
        }
        let retracted: BTreeSet<u64> = mine.iter().filter(|r| r.mark == RETRACT).map(|r| r.token).collect();
        if mine.iter().any(|r| r.mark == CLAIM && r.token != p.token && !retracted.contains(&r.token)) {
            lost.insert(p.key.clone());
        }
    }
    Ok(lost)
}

/// Registers of the per-day visitor sketch (`rollup::sketch`, 2^12 registers).
const SKETCH_P: u32 = 12;

/// The register `visitor` sets in a [`VisitorSketch`] and the rank it sets there: the same
/// arithmetic as `VisitorSketch::add` (a test checks they agree).
pub fn sketch_register(visitor: &VisitorKey) -> (u16, u8) {
    let h = u64::from_be_bytes(visitor.0[..8].try_into().expect("16-byte key"));
    let index = (h >> (64 - SKETCH_P)) as u16;
    let rank = ((h << SKETCH_P) | (1 << (SKETCH_P - 1))).leading_zeros() as u8 + 1;
    (index, rank)
}

/// A visitor key that sets exactly register `idx` to `rank`: how a sketch is rebuilt from its
/// stored registers through `VisitorSketch::add` alone.
pub fn sketch_key(idx: u16, rank: u8) -> VisitorKey {
    let low_bits = 64 - SKETCH_P;
    let rank = u32::from(rank).clamp(1, low_bits + 1);
    let low = if rank <= low_bits { 1u64 << (low_bits - rank) } else { 0 };
    let h = (u64::from(idx) << low_bits) | low;
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&h.to_be_bytes());
    VisitorKey(key)
}

/// Rebuilds a day's sketch from `(register, rank)` pairs.
pub fn sketch_from(registers: impl IntoIterator<Item = (u16, u8)>) -> VisitorSketch {
    let mut s = VisitorSketch::default();
    for (idx, rank) in registers {
        s.add(&sketch_key(idx, rank));
    }
    s
}

/// Adds `from` into `into` (elements are not pruned here: that happens when read).
fn merge(into: &mut Deltas, from: &Deltas) {
    for (k, v) in &from.days {
        into.days.entry(k.clone()).or_default().merge(v);
    }
    for (k, v) in &from.pages {
        into.pages.entry(k.clone()).or_default().merge(v);
    }
    for (k, v) in &from.heat {
        into.heat.entry(k.clone()).or_default().merge(v);
    }
    for (k, v) in &from.elements {
        let e = into.elements.entry(k.clone()).or_default();
        for (sel, cell) in &v.by_selector {
            let c = e.by_selector.entry(sel.clone()).or_default();
            c.n += cell.n;
            for (p, n) in &cell.points {
                *c.points.entry(*p).or_default() += n;
            }
        }
    }
}

async fn insert_rollups(http: &Http, won: &[Plan]) -> Result<(), StoreError> {
    let mut d = Deltas::default();
    let mut marks = BTreeSet::new();
    for p in won {
        merge(&mut d, &p.deltas);
        for (day, v) in &p.marks {
            marks.insert((p.key.0.clone(), *day, *v));
        }
    }

    let mut days = Rows::default();
    for ((site, day), r) in &d.days {
        days.str(site);
        days.i32(*day);
        days.u64(r.pageviews);
        days.u64(r.sessions);
        days.u64(0);
        days.u64(r.load.count);
        days.f64(r.load.sum);
        days.array(r.load.buckets.keys(), |w, b| w.u16(*b));
        days.array(r.load.buckets.values(), |w, n| w.u64(*n));
    }
    let mut pages = Rows::default();
    for ((site, day, path), r) in &d.pages {
        pages.str(site);
        pages.i32(*day);
        pages.str(path);
        pages.u64(r.pageviews);
        pages.u64(r.load.count);
        pages.f64(r.load.sum);
        pages.array(r.load.buckets.keys(), |w, b| w.u16(*b));
        pages.array(r.load.buckets.values(), |w, n| w.u64(*n));
        pages.u64(r.clicks);
        pages.u64(r.rage_clicks);
        pages.u64(r.dead_clicks);
        pages.u64(r.depth_sum_pct);
        let reach: Vec<(u8, u64)> =
            r.reach.iter().enumerate().filter(|(_, n)| **n > 0).map(|(k, n)| (k as u8, *n)).collect();
        pages.array(reach.iter(), |w, (k, _)| w.u8(*k));
        pages.array(reach.iter(), |w, (_, n)| w.u64(*n));
        pages.f64(r.fold_sum_px);
        pages.f64(r.fold_sum_pct);
    }
    let mut heat = Rows::default();
    for (k, cells) in &d.heat {
        heat.str(&k.site);
        heat.str(&k.path);
        heat.u8(k.kind.tag());
        heat.u8(k.width.tag());
        heat.i32(k.day);
        heat.u16(k.band);
        heat.array(cells.cells.keys(), |w, (x, y)| w.u32((u32::from(*x) << 16) | u32::from(*y)));
        heat.array(cells.cells.values(), |w, n| w.u64(*n));
    }
    let mut elements = Rows::default();
    for ((site, path, day), clicks) in &d.elements {
        for (sel, cell) in &clicks.by_selector {
            elements.str(site);
            elements.str(path);
            elements.i32(*day);
            elements.str(sel);
            elements.u64(cell.n);
            elements.array(cell.points.keys(), |w, (x, y)| w.u16((*x << 8) | *y));
            elements.array(cell.points.values(), |w, n| w.u64(*n));
        }
    }
    let mut visitors = Rows::default();
    let mut sketches = Rows::default();
    for (site, day, v) in &marks {
        visitors.str(site);
        visitors.i32(*day);
        visitors.fixed(&v.0);
        let (idx, rank) = sketch_register(v);
        sketches.str(site);
        sketches.i32(*day);
        sketches.u16(idx);
        sketches.u8(rank);
    }
    // Independent tables: insert them concurrently.
    let (a, b, c, e, f, g) = tokio::join!(
        http.insert(
            "day_rollups",
            "site, day, pageviews, sessions, visitors_gone, load_count, load_sum, `loadMap.bucket`, `loadMap.n`",
            days.buf
        ),
        http.insert(
            "page_rollups",
            "site, day, path, pageviews, load_count, load_sum, `loadMap.bucket`, `loadMap.n`, clicks, rage_clicks, \
             dead_clicks, depth_sum_pct, `reachMap.step`, `reachMap.n`, fold_sum_px, fold_sum_pct",
            pages.buf
        ),
        http.insert("heat_rollups", "site, path, kind, width, day, band, `cellsMap.cell`, `cellsMap.n`", heat.buf),
        http.insert("element_rollups", "site, path, day, sel, n, `pointsMap.point`, `pointsMap.n`", elements.buf),
        http.insert("day_visitors", "site, day, visitor", visitors.buf),
        http.insert("day_sketches", "site, day, idx, rank", sketches.buf),
    );
    a.and(b).and(c).and(e).and(f).and(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: u32, token: u64, mark: u8) -> ClaimRow {
        ClaimRow { site: "s".into(), hsid: "00".repeat(16), version, token, mark }
    }

    fn resolve_rows(rows: &[ClaimRow], skip: bool) -> Resolved<(u32, u64)> {
        resolve(&rows.iter().collect::<Vec<_>>(), skip)
    }

    #[test]
    fn only_confirmed_claims_are_built_on() {
        let settled =
            [row(1, 10, CLAIM), row(1, 10, CONFIRM), row(2, 20, CLAIM), row(2, 30, CLAIM), row(2, 30, RETRACT)];
        // v2's live claim 20 is not confirmed yet: wait, unless told to skip unsettled claims.
        assert!(matches!(resolve_rows(&settled, false), Resolved::InDoubt(Some((1, 10)))));
        assert!(matches!(resolve_rows(&settled, true), Resolved::Known((1, 10))));
        let mut confirmed = settled.to_vec();
        confirmed.push(row(2, 20, CONFIRM));
        assert!(matches!(resolve_rows(&confirmed, false), Resolved::Known((2, 20))));
        let withdrawn = [row(1, 10, CLAIM), row(1, 10, RETRACT), row(1, 11, CLAIM), row(1, 11, RETRACT)];
        assert!(matches!(resolve_rows(&withdrawn, false), Resolved::New), "every claim of v1 was withdrawn");
        assert!(matches!(resolve_rows(&[row(1, 10, CLAIM)], false), Resolved::InDoubt(None)));
        assert!(matches!(resolve_rows(&[], false), Resolved::New));
    }

    #[test]
    fn sketch_registers_rebuild_the_same_sketch() {
        use sha2::Digest;
        let mut direct = VisitorSketch::default();
        let mut registers = vec![];
        for n in 0u64..3000 {
            let d = sha2::Sha256::digest(n.to_be_bytes());
            let v = VisitorKey(d[..16].try_into().unwrap());
            direct.add(&v);
            registers.push(sketch_register(&v));
        }
        // Extreme ranks too: a key whose low bits are all zero.
        let mut edge = VisitorKey([0; 16]);
        edge.0[0] = 0xab;
        direct.add(&edge);
        registers.push(sketch_register(&edge));
        assert_eq!(sketch_from(registers), direct);
    }
}
