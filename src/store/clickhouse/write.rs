//! One group commit on ClickHouse: the versioned-claim protocol of the module doc (rounds of
//! read → plan → claim → check until every session of the group is stored or a duplicate),
//! then the rollups of the sessions whose claims won.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::claims::{self, read_states, Resolved, SessionKey, State, Version, CLAIM, CONFIRM, COUNTED, RETRACT};
use super::client::Db;
use super::rollups::{self, insert_marks, tag, Marks, Part, Pending, RollupRows};
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
    /// Older confirmed versions whose rollups this plan counts if its claim wins.
    uncounted: Vec<(u32, u64)>,
}

/// Sessions still to store, in first-seen order, each with its batches in arrival order.
type ToDo = Vec<(SessionKey, Vec<usize>)>;

/// Since when a session in doubt has stood still, and its progress then (see [`claims::Read`]).
type Doubted = HashMap<SessionKey, (usize, Instant)>;

pub async fn write_group(db: &Db, batches: &[StoredBatch]) -> Result<Vec<WriteOutcome>, StoreError> {
    commit_rounds(db, batches, by_session(batches), Doubted::new()).await
}

/// Counts the rollups of sessions whose writer died between confirming a version and counting
/// it, found by [`claims::uncounted_sessions`] after standing still for [`ABANDONED_AFTER`]:
/// a version with no new batches is built on the given-up one, and its winner counts what is
/// missing. A session that moved since it was found is waited for as usual.
pub async fn count_abandoned(db: &Db, sessions: Vec<(SessionKey, usize)>) -> Result<(), StoreError> {
    let long_ago = Instant::now().checked_sub(ABANDONED_AFTER * 2).unwrap_or_else(Instant::now);
    let doubted = sessions.iter().map(|(k, progress)| (k.clone(), (*progress, long_ago))).collect();
    let pending = sessions.into_iter().map(|(k, _)| (k, Vec::new())).collect();
    commit_rounds(db, &[], pending, doubted).await.map(|_| ())
}

/// How often a collector looks for uncounted sessions.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Runs [`count_abandoned`] every [`SWEEP_EVERY`], for as long as the store lives.
pub async fn sweep(db: Db) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let found = match claims::uncounted_sessions(&db, ABANDONED_AFTER).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "looking for uncounted sessions failed");
                continue;
            }
        };
        if found.is_empty() {
            continue;
        }
        tracing::info!(sessions = found.len(), "counting the rollups of sessions whose writer died");
        if let Err(e) = count_abandoned(&db, found).await {
            tracing::warn!(error = %e, "counting abandoned sessions failed; will retry");
        }
    }
}

async fn commit_rounds(
    db: &Db,
    batches: &[StoredBatch],
    mut pending: ToDo,
    mut doubted: Doubted,
) -> Result<Vec<WriteOutcome>, StoreError> {
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batches.len()];
    let started = Instant::now();
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

fn by_session(batches: &[StoredBatch]) -> ToDo {
    let mut pending: ToDo = Vec::new();
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
    pending: ToDo,
    doubted: &mut Doubted,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<(Vec<Plan>, ToDo), StoreError> {
    // Sessions that stood still, unsettled, for too long: their writer died mid-commit.
    let abandoned = |k: &SessionKey, progress: usize| {
        doubted.get(k).is_some_and(|(p, since)| *p == progress && since.elapsed() > ABANDONED_AFTER)
    };
    let keys: Vec<SessionKey> = pending.iter().map(|(k, _)| k.clone()).collect();
    let mut states = read_states(db, &keys, abandoned).await?;
    let mut plans = Vec::new();
    let mut deferred = Vec::new();
    for (key, idxs) in pending {
        let (resolved, progress) = states.remove(&key).unwrap_or((Resolved::New(0), 0));
        let state = match resolved {
            Resolved::InDoubt(_) => {
                let since = doubted.entry(key.clone()).or_insert((progress, Instant::now()));
                if since.0 != progress {
                    *since = (progress, Instant::now());
                }
                deferred.push((key, idxs));
                continue;
            }
            Resolved::Known(s) => Ok(s),
            Resolved::New(newest) => Err(newest),
        };
        plans.extend(plan(key, state, &idxs, batches, outcomes));
    }
    Ok((plans, deferred))
}

/// Applies the batches `idxs` of one session on top of `state` (or, for a new session, above
/// the highest version any claim has); `None` when there is nothing to claim.
fn plan(
    key: SessionKey,
    state: Result<State, u32>,
    idxs: &[usize],
    batches: &[StoredBatch],
    outcomes: &mut [Option<WriteOutcome>],
) -> Option<Plan> {
    let mut deltas = Deltas::default();
    let (version, anchor, mut record, uncounted) = match state {
        Ok(s) => (s.newest + 1, s.anchor, s.record, s.uncounted),
        Err(newest) => {
            let first = &batches[*idxs.first()?];
            let record = Record::new(first);
            deltas.day(&first.site, day_of(record.state.start)).sessions += 1;
            (newest + 1, first.received, record, Vec::new())
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
    if stored.is_empty() && uncounted.is_empty() {
        return None;
    }
    let visitor = record.state.visitor.0;
    let version = Version { key, version, token: rand::random(), anchor, visitor };
    Some(Plan { version, record, deltas, marks, stored, uncounted })
}

/// Stores the plans' events, claims their versions, confirms the winners and counts their
/// rollups; returns the sessions whose claims lost, to be tried again.
async fn commit(
    db: &Db,
    batches: &[StoredBatch],
    plans: Vec<Plan>,
    outcomes: &mut [Option<WriteOutcome>],
) -> Result<ToDo, StoreError> {
    insert_batches(db, batches, &plans).await?;
    let data = claim_data(&plans)?;
    let claimed = Instant::now();
    let claims = plans.iter().zip(&data).map(|(p, (r, u))| (&p.version, Some((r.as_slice(), u.as_slice()))));
    claims::mark(db, claims, CLAIM).await?;
    let lost = claims::lost_claims(db, &plans.iter().map(|p| &p.version).collect::<Vec<_>>()).await?;
    // Past the lease, a win is not confirmed: a waiting writer may already treat it as
    // abandoned. Withdraw it like a loss and try again.
    let late = claimed.elapsed() > LEASE;
    let (won, lost): (Vec<Plan>, Vec<Plan>) = plans.into_iter().partition(|p| !late && !lost.contains(&p.version.key));
    let (confirmed, withdrawn) = tokio::join!(
        claims::mark(db, won.iter().map(|p| (&p.version, None)), CONFIRM),
        claims::mark(db, lost.iter().map(|p| (&p.version, None)), RETRACT)
    );
    confirmed?;
    withdrawn?;
    let mut views: Vec<(i64, &StoredBatch)> = Vec::new();
    for p in &won {
        views.extend(p.stored.iter().map(|&i| (p.version.anchor, &batches[i])));
    }
    let (counted, index) = tokio::join!(count(db, &won), super::analytics::insert_views(db, &views));
    counted.and(index)?;
    for &i in won.iter().flat_map(|p| &p.stored) {
        outcomes[i] = Some(WriteOutcome::Stored);
    }
    Ok(lost.into_iter().map(|p| (p.version.key, p.stored)).collect())
}

/// A claim's record and rollups, as JSON.
type Encoded = (Vec<u8>, Vec<u8>);

/// Each plan's claim data: its record, and its rollups until they are counted.
fn claim_data(plans: &[Plan]) -> Result<Vec<Encoded>, StoreError> {
    plans
        .iter()
        .map(|p| {
            let pending = Pending { rows: RollupRows::of(&p.deltas), marks: p.marks.iter().cloned().collect() };
            Ok((serde_json::to_vec(&p.record).map_err(corrupt)?, serde_json::to_vec(&pending).map_err(corrupt)?))
        })
        .collect()
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

/// Counts the won plans' rollups (merged into one set of rows) and the rollups of the older
/// versions they took over (only into the tables that lack them), then marks all of them
/// counted. A crash anywhere in here leaves the versions uncounted for the next writer.
async fn count(db: &Db, won: &[Plan]) -> Result<(), StoreError> {
    if won.is_empty() {
        return Ok(());
    }
    let taken_over: Vec<(SessionKey, u32, u64)> =
        won.iter().flat_map(|p| p.uncounted.iter().map(|(v, t)| (p.version.key.clone(), *v, *t))).collect();
    let older = claims::pending_rollups(db, &taken_over).await?;
    let mut deltas = Deltas::default();
    let mut marks = Marks::new();
    for p in won {
        deltas.merge(&p.deltas);
        marks.extend(p.marks.iter().cloned());
    }
    for (_, pending) in &older {
        marks.extend(pending.marks.iter().cloned());
    }
    let rows = RollupRows::of(&deltas);
    let own = [Part {
        tags: won.iter().map(|p| tag(&p.version.key, p.version.version, p.version.token)).collect(),
        rows: &rows,
    }];
    let older_parts: Vec<Part> =
        older.iter().map(|(t, pending)| Part { tags: vec![t.clone()], rows: &pending.rows }).collect();
    let (a, b, c) = tokio::join!(
        rollups::insert(db, &own, false),
        rollups::insert(db, &older_parts, true),
        insert_marks(db, marks.iter()),
    );
    a.and(b).and(c)?;
    let older_versions: Vec<Version> = won
        .iter()
        .flat_map(|p| {
            p.uncounted.iter().map(|(version, token)| Version { version: *version, token: *token, ..p.version.clone() })
        })
        .collect();
    let counted = won.iter().map(|p| &p.version).chain(&older_versions);
    claims::mark(db, counted.map(|v| (v, None)), COUNTED).await
}
