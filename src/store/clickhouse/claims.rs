//! Versioned session claims (the protocol of the module doc): reading a session's rows and
//! resolving its newest confirmed version, inserting claims, retractions and confirmations,
//! and checking whether a claim won. Writers and readers both resolve through here.

use std::collections::{BTreeSet, HashMap};

use clickhouse::query::Query;
use clickhouse::Row;
use serde::Deserialize;

use super::client::{id_list, Db};
use super::rows::SessionRow;
use super::{corrupt, Record};
use crate::model::day_of;
use crate::store::StoreError;

/// `sessions.mark`: what a row says about its `(version, token)`.
pub const CLAIM: u8 = 0;
pub const RETRACT: u8 = 1;
pub const CONFIRM: u8 = 2;

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

/// The newest confirmed state of each session in `keys`: all claim rows first (small), then
/// the records of the chosen claims only. `skip_unsettled`: see [`resolve`].
pub async fn read_states(
    db: &Db,
    keys: &[SessionKey],
    skip_unsettled: bool,
) -> Result<HashMap<SessionKey, Resolved<State>>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let all = claim_rows(db, keys, None).await?;
    let mut chosen: HashMap<SessionKey, Resolved<(u32, u64)>> = HashMap::with_capacity(keys.len());
    for key in keys {
        let rows: Vec<&ClaimRow> = all.get(key).map(|v| v.iter().collect()).unwrap_or_default();
        chosen.insert(key.clone(), resolve(&rows, skip_unsettled));
    }
    let mut records = read_records(db, keys, &chosen).await?;
    let mut take = |key: &SessionKey, (v, t): (u32, u64)| {
        records
            .remove(&(key.clone(), v, t))
            .ok_or_else(|| StoreError::Backend("a session claim vanished while it was read".into()))
    };
    let mut out = HashMap::with_capacity(chosen.len());
    for (key, r) in chosen {
        let state = match r {
            Resolved::New => Resolved::New,
            Resolved::InDoubt(None) => Resolved::InDoubt(None),
            Resolved::Known(vt) => Resolved::Known(take(&key, vt)?),
            Resolved::InDoubt(Some(vt)) => Resolved::InDoubt(Some(take(&key, vt)?)),
        };
        out.insert(key, state);
    }
    Ok(out)
}

/// The records of the chosen `(version, token)` of each session.
async fn read_records(
    db: &Db,
    keys: &[SessionKey],
    chosen: &HashMap<SessionKey, Resolved<(u32, u64)>>,
) -> Result<HashMap<(SessionKey, u32, u64), State>, StoreError> {
    let wanted: Vec<String> = chosen
        .values()
        .filter_map(|r| match r {
            Resolved::Known((v, t)) | Resolved::InDoubt(Some((v, t))) => Some(format!("({v}, {t})")),
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
        let state = State { version: r.version, anchor: r.anchor, record };
        records.insert(((r.site, r.sid), r.version, r.token), state);
    }
    Ok(records)
}

/// Inserts a `mark` row for each version; claims carry the session's record as well.
pub async fn insert_marks<'a>(
    db: &Db,
    versions: impl Iterator<Item = (&'a Version, Option<&'a [u8]>)>,
    mark: u8,
) -> Result<(), StoreError> {
    let rows: Vec<SessionRow> = versions
        .map(|(v, record)| SessionRow {
            site: &v.key.0,
            sid: v.key.1,
            version: v.version,
            token: v.token,
            mark,
            anchor: v.anchor,
            day: date(day_of(v.anchor)),
            visitor: v.visitor,
            record: record.unwrap_or_default(),
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
}
