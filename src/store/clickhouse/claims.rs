//! Versioned session claims (the protocol of the module doc): reading a session's rows and
//! resolving its newest confirmed version, inserting claims, retractions and confirmations,
//! and checking whether a claim won. Writers and readers both resolve through here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use clickhouse::query::Query;
use clickhouse::Row;
use serde::Deserialize;

use super::client::{id_list, Db};
use super::rollups::{tag, Pending};
use super::rows::SessionRow;
use super::{corrupt, Record};
use crate::model::day_of;
use crate::store::StoreError;

/// `sessions.mark`: what a row says about its `(version, token)`.
pub const CLAIM: u8 = 0;
pub const RETRACT: u8 = 1;
pub const CONFIRM: u8 = 2;
/// The confirmed version's rollups are all counted.
pub const COUNTED: u8 = 3;

/// The session a batch belongs to.
pub type SessionKey = (String, [u8; 16]);

/// One claimed version of a session: what every row about it repeats.
#[derive(Debug, Clone)]
pub struct Version {
    pub key: SessionKey,
    pub version: u32,
    pub token: u64,
    pub anchor: i64,
    pub visitor: [u8; 16],
}

/// The newest valid state of a session.
#[derive(Debug, Clone)]
pub struct State {
    pub anchor: i64,
    pub record: Record,
    /// Confirmed `(version, token)`s whose rollups are not all counted yet (their writer died
    /// or was given up on): whoever builds the next version counts them.
    pub uncounted: Vec<(u32, u64)>,
    /// The highest version any row of the session has: the next claim goes above it, past
    /// claims given up on (whose unretracted rows would make every claim of theirs lose).
    pub newest: u32,
}

/// The version a session's state is read from, and the versions still to count.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    pub version: u32,
    pub token: u64,
    pub uncounted: Vec<(u32, u64)>,
    pub newest: u32,
}

/// What `sessions` says about one session.
#[derive(Debug)]
pub enum Resolved<T> {
    /// No confirmed version: a new session. Holds the highest version of any (withdrawn or
    /// given-up) claim, to claim above it.
    New(u32),
    Known(T),
    /// The newest version is not settled yet (a claim not yet confirmed or retracted): wait.
    /// Holds the newest confirmed state below it, if any, for readers that do not wait.
    InDoubt(Option<T>),
}

/// One row of `sessions` without its record.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct ClaimRow {
    pub site: String,
    pub sid: [u8; 16],
    pub version: u32,
    pub token: u64,
    pub mark: u8,
}

/// Resolves all rows of one session into its newest confirmed `(version, token)`. A newer
/// version with live (unretracted) but unconfirmed claims, or a newest confirmed version not
/// counted yet, makes it [`Resolved::InDoubt`] (its writer is mid-commit) — unless
/// `skip_unsettled`, for readers and for writers that gave up on it as abandoned.
pub fn resolve(rows: &[&ClaimRow], skip_unsettled: bool) -> Resolved<Chosen> {
    let mut by_version: BTreeMap<u32, Vec<&ClaimRow>> = BTreeMap::new();
    for r in rows {
        by_version.entry(r.version).or_default().push(r);
    }
    let newest = by_version.keys().next_back().copied().unwrap_or(0);
    let mut unsettled = false;
    let mut chosen: Option<Chosen> = None;
    for (v, rows) in by_version.iter().rev() {
        let with = |mark: u8| -> BTreeSet<u64> { rows.iter().filter(|r| r.mark == mark).map(|r| r.token).collect() };
        let (claims, retracted, confirmed) = (with(CLAIM), with(RETRACT), with(CONFIRM));
        match confirmed.iter().find(|t| claims.contains(t) && !retracted.contains(t)) {
            Some(t) => {
                let c = chosen.get_or_insert(Chosen { version: *v, token: *t, uncounted: Vec::new(), newest });
                // Whoever counted a version counted the older ones it took over in the same
                // insert: below a counted version, all are counted.
                if with(COUNTED).contains(t) {
                    break;
                }
                c.uncounted.push((*v, *t));
            }
            None if chosen.is_none() && claims.iter().any(|t| !retracted.contains(t)) => unsettled = true,
            None => {}
        }
    }
    let newest_uncounted = chosen.as_ref().is_some_and(|c| c.uncounted.first().is_some_and(|u| u.0 == c.version));
    match (chosen, !skip_unsettled && (unsettled || newest_uncounted)) {
        (None, false) => Resolved::New(newest),
        (c, true) => Resolved::InDoubt(c),
        (Some(c), false) => Resolved::Known(c),
    }
}

/// `(site = ? AND sid IN (…)) OR …` for a set of sessions, so the primary key is used; bind
/// the sites with [`SessionsFilter::bind`] in the place of the `?`s.
pub struct SessionsFilter {
    pub sql: String,
    sites: Vec<String>,
}

impl SessionsFilter {
    pub fn of<'a>(keys: impl Iterator<Item = &'a SessionKey>) -> Self {
        let mut by_site: HashMap<&str, Vec<&[u8; 16]>> = HashMap::new();
        for (site, sid) in keys {
            by_site.entry(site.as_str()).or_default().push(sid);
        }
        let mut sites = Vec::with_capacity(by_site.len());
        let mut parts = Vec::with_capacity(by_site.len());
        for (site, ids) in by_site {
            sites.push(site.to_owned());
            parts.push(format!("(site = ? AND sid IN ({}))", id_list(ids)));
        }
        let sql = if parts.is_empty() { "0".into() } else { parts.join(" OR ") };
        Self { sql, sites }
    }

    pub fn bind(&self, mut query: Query) -> Query {
        for site in &self.sites {
            query = query.bind(site);
        }
        query
    }
}

/// Every claim, retraction and confirmation of the sessions in `keys` (of `versions` only,
/// if given), by session.
pub async fn claim_rows(
    db: &Db,
    keys: &[SessionKey],
    versions: Option<&BTreeSet<u32>>,
) -> Result<HashMap<SessionKey, Vec<ClaimRow>>, StoreError> {
    let filter = SessionsFilter::of(keys.iter());
    let mut sql = format!("SELECT site, sid, version, token, mark FROM sessions WHERE ({})", filter.sql);
    if let Some(v) = versions {
        let list: Vec<String> = v.iter().map(u32::to_string).collect();
        sql.push_str(&format!(" AND version IN ({})", list.join(", ")));
    }
    let mut out: HashMap<SessionKey, Vec<ClaimRow>> = HashMap::new();
    for r in Db::fetch::<ClaimRow>(filter.bind(db.query(&sql))).await? {
        out.entry((r.site.clone(), r.sid)).or_default().push(r);
    }
    Ok(out)
}

#[derive(Row, Deserialize)]
struct RecordRow {
    site: String,
    sid: [u8; 16],
    version: u32,
    token: u64,
    anchor: i64,
    record: String,
}

/// A session's resolved state, and how many rows it has (its *progress*: rows are only ever
/// added, so a writer waiting on an unsettled session sees from it whether anything moved).
pub type Read = (Resolved<State>, usize);

/// The newest confirmed state of each session in `keys`: all claim rows first (small), then
/// the records of the chosen claims only. `give_up(key, progress)` says whether to skip what
/// is unsettled (see [`resolve`]): always for readers, for writers once nothing moved for long.
pub async fn read_states(
    db: &Db,
    keys: &[SessionKey],
    give_up: impl Fn(&SessionKey, usize) -> bool,
) -> Result<HashMap<SessionKey, Read>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let all = claim_rows(db, keys, None).await?;
    let mut chosen: HashMap<SessionKey, Resolved<Chosen>> = HashMap::with_capacity(keys.len());
    let mut progress: HashMap<SessionKey, usize> = HashMap::with_capacity(keys.len());
    for key in keys {
        let rows: Vec<&ClaimRow> = all.get(key).map(|v| v.iter().collect()).unwrap_or_default();
        chosen.insert(key.clone(), resolve(&rows, give_up(key, rows.len())));
        progress.insert(key.clone(), rows.len());
    }
    let mut records = read_records(db, keys, &chosen).await?;
    let mut take = |key: &SessionKey, c: Chosen| {
        let mut state = records
            .remove(&(key.clone(), c.version, c.token))
            .ok_or_else(|| StoreError::Backend("a session claim vanished while it was read".into()))?;
        state.uncounted = c.uncounted;
        state.newest = c.newest;
        Ok::<_, StoreError>(state)
    };
    let mut out = HashMap::with_capacity(chosen.len());
    for (key, r) in chosen {
        let state = match r {
            Resolved::New(n) => Resolved::New(n),
            Resolved::InDoubt(None) => Resolved::InDoubt(None),
            Resolved::Known(c) => Resolved::Known(take(&key, c)?),
            Resolved::InDoubt(Some(c)) => Resolved::InDoubt(Some(take(&key, c)?)),
        };
        let rows = progress.get(&key).copied().unwrap_or(0);
        out.insert(key, (state, rows));
    }
    Ok(out)
}

/// The records of the chosen `(version, token)` of each session.
async fn read_records(
    db: &Db,
    keys: &[SessionKey],
    chosen: &HashMap<SessionKey, Resolved<Chosen>>,
) -> Result<HashMap<(SessionKey, u32, u64), State>, StoreError> {
    let wanted: Vec<String> = chosen
        .values()
        .filter_map(|r| match r {
            Resolved::Known(c) | Resolved::InDoubt(Some(c)) => Some(format!("({}, {})", c.version, c.token)),
            _ => None,
        })
        .collect();
    let mut records = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(records);
    }
    let filter = SessionsFilter::of(keys.iter());
    let sql = format!(
        "SELECT site, sid, version, token, anchor, record FROM sessions \
         WHERE ({}) AND mark = {CLAIM} AND (version, token) IN ({})",
        filter.sql,
        wanted.join(", ")
    );
    for r in Db::fetch::<RecordRow>(filter.bind(db.query(&sql))).await? {
        let record: Record = serde_json::from_str(&r.record).map_err(|e| corrupt(format!("session record: {e}")))?;
        let state = State { anchor: r.anchor, record, uncounted: Vec::new(), newest: r.version };
        records.insert(((r.site, r.sid), r.version, r.token), state);
    }
    Ok(records)
}

/// What a claim row carries besides the version: the session's record and the rollup rows
/// of the version, both JSON.
pub type ClaimData<'a> = Option<(&'a [u8], &'a [u8])>;

/// Inserts a `mark` row for each version (claims with their [`ClaimData`]).
pub async fn mark<'a>(
    db: &Db,
    versions: impl Iterator<Item = (&'a Version, ClaimData<'a>)>,
    mark: u8,
) -> Result<(), StoreError> {
    let rows: Vec<SessionRow> = versions
        .map(|(v, data)| SessionRow {
            site: &v.key.0,
            sid: v.key.1,
            version: v.version,
            token: v.token,
            mark,
            anchor: v.anchor,
            day: date(day_of(v.anchor)),
            visitor: v.visitor,
            record: data.map_or(&[][..], |d| d.0),
            rollups: data.map_or(&[][..], |d| d.1),
        })
        .collect();
    db.insert::<SessionRow>("sessions", &rows).await
}

/// The versions whose claim met another unretracted claim of the same version.
pub async fn lost_claims(db: &Db, claims: &[&Version]) -> Result<BTreeSet<SessionKey>, StoreError> {
    let versions: BTreeSet<u32> = claims.iter().map(|c| c.version).collect();
    let keys: Vec<SessionKey> = claims.iter().map(|c| c.key.clone()).collect();
    let rows = claim_rows(db, &keys, Some(&versions)).await?;
    let mut lost = BTreeSet::new();
    for c in claims {
        let mine: Vec<&ClaimRow> =
            rows.get(&c.key).map(|v| v.iter().filter(|r| r.version == c.version).collect()).unwrap_or_default();
        if !mine.iter().any(|r| r.token == c.token && r.mark == CLAIM) {
            return Err(StoreError::Backend("ClickHouse did not return a claim it acknowledged".into()));
        }
        let retracted: BTreeSet<u64> = mine.iter().filter(|r| r.mark == RETRACT).map(|r| r.token).collect();
        if mine.iter().any(|r| r.mark == CLAIM && r.token != c.token && !retracted.contains(&r.token)) {
            lost.insert(c.key.clone());
        }
    }
    Ok(lost)
}

#[derive(Row, Deserialize)]
struct RollupsRow {
    site: String,
    sid: [u8; 16],
    version: u32,
    token: u64,
    rollups: String,
}

/// The rollup rows that the claims of `versions` hold, each with its session version's tag.
pub async fn pending_rollups(
    db: &Db,
    versions: &[(SessionKey, u32, u64)],
) -> Result<Vec<(String, Pending)>, StoreError> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    let filter = SessionsFilter::of(versions.iter().map(|(k, _, _)| k));
    let wanted: Vec<String> = versions.iter().map(|(_, v, t)| format!("({v}, {t})")).collect();
    let sql = format!(
        "SELECT site, sid, version, token, rollups FROM sessions WHERE ({}) AND mark = {CLAIM} \
         AND (version, token) IN ({})",
        filter.sql,
        wanted.join(", ")
    );
    let mut out = Vec::with_capacity(versions.len());
    for r in Db::fetch::<RollupsRow>(filter.bind(db.query(&sql))).await? {
        let key = (r.site, r.sid);
        if !versions.contains(&(key.clone(), r.version, r.token)) {
            continue;
        }
        let pending: Pending =
            serde_json::from_str(&r.rollups).map_err(|e| corrupt(format!("pending rollups: {e}")))?;
        out.push((tag(&key, r.version, r.token), pending));
    }
    Ok(out)
}

#[derive(Row, Deserialize)]
struct KeyRow {
    site: String,
    sid: [u8; 16],
    n: u64,
}

/// Sessions (of the last days) with a confirmed version whose rollups are not counted and no
/// row for `quiet`: their writer died between confirming and counting. With each, its
/// progress (see [`Read`]) when it was found.
pub async fn uncounted_sessions(db: &Db, quiet: Duration) -> Result<Vec<(SessionKey, usize)>, StoreError> {
    let sql = format!(
        "SELECT site, sid, count() AS n FROM sessions WHERE day >= today() - 2 GROUP BY site, sid \
         HAVING uniqExactIf(version, token, mark = {CONFIRM}) > uniqExactIf(version, token, mark = {COUNTED}) \
           AND max(written) < now() - {} LIMIT 1000",
        quiet.as_secs()
    );
    let rows = Db::fetch::<KeyRow>(db.query(&sql)).await?;
    Ok(rows.into_iter().map(|r| ((r.site, r.sid), r.n as usize)).collect())
}

/// A `Date` column's value: days since the epoch, clamped to its range.
pub fn date(day: i32) -> u16 {
    day.clamp(0, i32::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: u32, token: u64, mark: u8) -> ClaimRow {
        ClaimRow { site: "s".into(), sid: [0; 16], version, token, mark }
    }

    /// `(version, token)` of the resolved state, and whether it is in doubt.
    fn resolve_rows(rows: &[ClaimRow], skip: bool) -> Resolved<(u32, u64)> {
        match resolve(&rows.iter().collect::<Vec<_>>(), skip) {
            Resolved::New(n) => Resolved::New(n),
            Resolved::Known(c) => Resolved::Known((c.version, c.token)),
            Resolved::InDoubt(c) => Resolved::InDoubt(c.map(|c| (c.version, c.token))),
        }
    }

    #[test]
    fn only_confirmed_claims_are_built_on() {
        let settled = [
            row(1, 10, CLAIM),
            row(1, 10, CONFIRM),
            row(1, 10, COUNTED),
            row(2, 20, CLAIM),
            row(2, 30, CLAIM),
            row(2, 30, RETRACT),
        ];
        // v2's live claim 20 is not confirmed yet: wait, unless told to skip unsettled claims.
        assert!(matches!(resolve_rows(&settled, false), Resolved::InDoubt(Some((1, 10)))));
        assert!(matches!(resolve_rows(&settled, true), Resolved::Known((1, 10))));
        let mut confirmed = settled.to_vec();
        confirmed.push(row(2, 20, CONFIRM));
        // Confirmed but not counted: its writer is still inserting rollups; wait for it.
        assert!(matches!(resolve_rows(&confirmed, false), Resolved::InDoubt(Some((2, 20)))));
        confirmed.push(row(2, 20, COUNTED));
        assert!(matches!(resolve_rows(&confirmed, false), Resolved::Known((2, 20))));
        let withdrawn = [row(1, 10, CLAIM), row(1, 10, RETRACT), row(1, 11, CLAIM), row(1, 11, RETRACT)];
        assert!(matches!(resolve_rows(&withdrawn, false), Resolved::New(1)), "every claim of v1 was withdrawn");
        assert!(matches!(resolve_rows(&[row(1, 10, CLAIM)], false), Resolved::InDoubt(None)));
        assert!(matches!(resolve_rows(&[], false), Resolved::New(0)));
    }

    #[test]
    fn uncounted_versions_are_handed_to_the_next_writer() {
        // v1 counted; v2 confirmed, its writer died before counting; v3 built on it after
        // the wait, and died too.
        let rows = [
            row(1, 10, CLAIM),
            row(1, 10, CONFIRM),
            row(1, 10, COUNTED),
            row(2, 20, CLAIM),
            row(2, 20, CONFIRM),
            row(3, 30, CLAIM),
            row(3, 30, CONFIRM),
        ];
        let refs: Vec<&ClaimRow> = rows.iter().collect();
        assert!(matches!(resolve(&refs, false), Resolved::InDoubt(Some(_))));
        let Resolved::Known(c) = resolve(&refs, true) else { panic!("given up on: known") };
        assert_eq!(c, Chosen { version: 3, token: 30, uncounted: vec![(3, 30), (2, 20)], newest: 3 });
    }
}
