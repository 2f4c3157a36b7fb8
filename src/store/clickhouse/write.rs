//! One group commit on ClickHouse: the versioned-claim protocol of the module doc (rounds of
//! read → plan → claim → check until every session of the group is stored or a duplicate),
//! then the rollups of the sessions whose claims won.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::claims::{self, read_states, Resolved, SessionKey, State, Version, CLAIM, CONFIRM, RETRACT};
use super::client::Db;
use super::rollups::{insert_marks, Marks, RollupRows};
use super::rows::BatchRow;
use super::{corrupt, Record};
use crate::model::{day_of, StoredBatch};
use crate::rollup::track::Deltas;
use crate::store::{StoreError, WriteOutcome};

/// How long a group may keep retrying contended sessions before it fails (the client resends).
const MAX_CONTENTION: Duration = Duration::from_secs(30);
/// A won claim is confirmed only if its confirmation is sent within this time of the claim.
const LEASE: Duration = Duration::from_secs(2);
/// How long a writer waits for a lone unconfirmed claim before treating it as void (its
/// collector died before confirming, so it never counted rollups or answered 204).
const ABANDONED_AFTER: Duration = Duration::from_secs(10);

/// One session's part of a group: its new version and what it adds.
struct Plan {
    version: Version,
    record: Record,
    deltas: Deltas,
    marks: Marks,
    /// Indexes (into the group) of the batches this plan stores.
    stored: Vec<usize>,
}

/// Sessions still to store, in first-seen order, each with its batches in arrival order.
type Pending = Vec<(SessionKey, Vec<usize>)>;

pub async fn write_group(db: &Db, batches: &[StoredBatch]) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batches.len()];
    let mut pending = by_session(batches);
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
        let (plans, mut deferred) = plan_round(db, batches, pending, &mut doubted, &mut outcomes).await?;
        if !plans.is_empty() {
            let lost = commit(db, batches, plans, &mut outcomes).await?;
            if !lost.is_empty() {
                tracing::debug!(sessions = lost.len(), attempt, "another collector claimed the same version; retrying");
            }
            deferred.extend(lost);
        }
        pending = deferred;
        if !pending.is_empty() {
            let ms = 2 + rand::random::<u64>() % (5 * attempt).min(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    outcomes.into_iter().map(|o| o.ok_or_else(|| StoreError::Backend("batch without an outcome".into()))).collect()
}

fn by_session(batches: &[StoredBatch]) -> Pending {
    let mut pending: Pending = Vec::new();
    let mut index: HashMap<SessionKey, usize> = HashMap::new();
    for (i, b) in batches.iter().enumerate() {
        let key = (b.site.clone(), b.sid.0);
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            pending.push((key, Vec::new()));
            pending.len() - 1
        });
        pending[slot].1.push(i);
    }
    pending
}

/// Reads the sessions' states and plans each on top of its own; sessions another collector
/// is mid-commit on are deferred (and remembered in `doubted`, to be given up on later).
async fn plan_round(
    db: &Db,
    batches: &[StoredBatch],
    pending: Pending,
    doubted: &mut HashMap<SessionKey, Instant>,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<(Vec<Plan>, Pending), StoreError> {
    // Sessions unsettled for too long: their claimant died before confirming.
    let abandoned = |k: &SessionKey| doubted.get(k).is_some_and(|t| t.elapsed() > ABANDONED_AFTER);
    let (given_up, waiting): (Vec<SessionKey>, Vec<SessionKey>) =
        pending.iter().map(|(k, _)| k.clone()).partition(|k| abandoned(k));
    let mut states = read_states(db, &waiting, false).await?;
    states.extend(read_states(db, &given_up, true).await?);
    let mut plans = Vec::new();
    let mut deferred = Vec::new();
    for (key, idxs) in pending {
        let state = match states.remove(&key).unwrap_or(Resolved::New) {
            Resolved::InDoubt(_) => {
                doubted.entry(key.clone()).or_insert_with(Instant::now);
                deferred.push((key, idxs));
                continue;
            }
            Resolved::Known(s) => Some(s),
            Resolved::New => None,
        };
        plans.extend(plan(key, state, &idxs, batches, outcomes));
    }
    Ok((plans, deferred))
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
    let mut marks = Marks::new();
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
            marks.insert((b.site.clone(), day_of(e.t), b.visitor));
        }
        stored.push(i);
    }
    if stored.is_empty() {
        return None;
    }
    let visitor = record.state.visitor.0;
    let version = Version { key, version, token: rand::random(), anchor, visitor };
    Some(Plan { version, record, deltas, marks, stored })
}

/// Stores the plans' events, claims their versions, confirms the winners and counts their
/// rollups; returns the sessions whose claims lost, to be tried again.
async fn commit(
    db: &Db,
    batches: &[StoredBatch],
    plans: Vec<Plan>,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<Pending, StoreError> {
    insert_batches(db, batches, &plans).await?;
    let records: Vec<Vec<u8>> =
        plans.iter().map(|p| serde_json::to_vec(&p.record)).collect::<Result<_, _>>().map_err(corrupt)?;
    let claimed = Instant::now();
    claims::insert_marks(db, plans.iter().zip(&records).map(|(p, r)| (&p.version, Some(r.as_slice()))), CLAIM).await?;
    let lost = claims::lost_claims(db, &plans.iter().map(|p| &p.version).collect::<Vec<_>>()).await?;
    // Past the lease, a win is not confirmed: a waiting writer may already treat it as
    // abandoned. Withdraw it like a loss and try again.
    let late = claimed.elapsed() > LEASE;
    let (won, lost): (Vec<Plan>, Vec<Plan>) = plans.into_iter().partition(|p| !late && !lost.contains(&p.version.key));
    let (confirmed, withdrawn) = tokio::join!(
        claims::insert_marks(db, won.iter().map(|p| (&p.version, None)), CONFIRM),
        claims::insert_marks(db, lost.iter().map(|p| (&p.version, None)), RETRACT)
    );
    confirmed?;
    withdrawn?;
    insert_rollups(db, &won).await?;
    for &i in won.iter().flat_map(|p| &p.stored) {
        outcomes[i] = Some(WriteOutcome::Stored);
    }
    Ok(lost.into_iter().map(|p| (p.version.key, p.stored)).collect())
}

async fn insert_batches(db: &Db, batches: &[StoredBatch], plans: &[Plan]) -> Result<(), StoreError> {
    let rows: Vec<BatchRow> = plans
        .iter()
        .flat_map(|p| &p.stored)
        .map(|&i| {
            let b = &batches[i];
            BatchRow {
                site: &b.site,
                sid: b.sid.0,
                seq: b.seq,
                received: b.received,
                day: claims::date(day_of(b.received)),
                keep: (i64::MAX - b.received.max(0)) as u64,
                events: &b.encoded,
            }
        })
        .collect();
    db.insert::<BatchRow>("batches", &rows).await
}

/// The won plans' rollup deltas, merged into one set of rows, and their visitor marks.
async fn insert_rollups(db: &Db, won: &[Plan]) -> Result<(), StoreError> {
    let mut deltas = Deltas::default();
    let mut marks = BTreeSet::new();
    for p in won {
        deltas.merge(&p.deltas);
        marks.extend(p.marks.iter().cloned());
    }
    let rows = RollupRows::of(&deltas);
    let (rollups, visitors) = tokio::join!(rows.insert(db), insert_marks(db, &marks));
    rollups.and(visitors)
}
