//! Conversion funnels from the index of per-session page sequences (never from raw events).
//!
//! A session reaches step *n* when it viewed steps 1…n in order, each within `within_ms` of the
//! previous. Views are walked once in time order keeping, per step, the latest time it was
//! reached (a later predecessor leaves the most room for the next step), so the deepest step
//! any chain of views reaches is found in one pass. Backends feed sessions newest first.

use std::collections::HashMap;

use serde::Serialize;

/// Most steps in one funnel.
pub const MAX_STEPS: usize = 10;
/// Sessions listed per drop-off.
pub const MAX_DROPPED: usize = 100;
/// `within_ms` when not given: 30 minutes.
pub const DEFAULT_WITHIN_MS: i64 = 30 * 60 * 1000;
/// Views kept per session in the index.
pub const MAX_VIEWS_PER_SESSION: usize = 1000;

/// One step: a normalised path whose `*` segments match any one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub path: String,
}

impl Step {
    /// Parses a `steps=` list (`/a,/b/*,/c`).
    pub fn parse_list(raw: &str) -> Result<Vec<Step>, String> {
        let steps: Vec<Step> = raw
            .split(',')
            .map(|s| {
                let s = s.trim();
                if !s.starts_with('/') {
                    return Err(format!("step {s:?} must be a path starting with /"));
                }
                Ok(Step { path: normalize_step(s) })
            })
            .collect::<Result<_, _>>()?;
        if !(2..=MAX_STEPS).contains(&steps.len()) {
            return Err(format!("a funnel has 2 to {MAX_STEPS} steps"));
        }
        Ok(steps)
    }

    pub fn matches(&self, path: &[u8]) -> bool {
        let mut want = self.path.as_bytes().split(|b| *b == b'/');
        let mut have = path.split(|b| *b == b'/');
        loop {
            match (want.next(), have.next()) {
                (None, None) => return true,
                (Some(b"*"), Some(_)) => {}
                (Some(w), Some(h)) if w == h => {}
                _ => return false,
            }
        }
    }
}

/// Normalises a step like a stored path, keeping `*` segments as they are.
fn normalize_step(raw: &str) -> String {
    let parts: Vec<String> = raw
        .trim_start_matches('/')
        .split('/')
        .map(|seg| if seg == "*" { "*".to_owned() } else { crate::privacy::url::normalize_path(seg) })
        .map(|seg| seg.trim_start_matches('/').to_owned())
        .collect();
    format!("/{}", parts.join("/"))
}

/// `GET /api/sites/{site}/funnel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
    /// `dropped[i]`: up to 100 sessions (newest first) that reached step `i` but not `i+1`.
    pub dropped: Vec<Vec<String>>,
    pub within_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    pub path: String,
    pub sessions: u64,
    /// `sessions` over the first step's sessions.
    pub conversion: f64,
    /// Median time from the previous step (`null` for the first step or without sessions).
    pub median_ms_from_previous: Option<f64>,
}

/// Counts sessions into a funnel, one at a time, newest first.
pub struct FunnelCounter {
    steps: Vec<Step>,
    within_ms: i64,
    sessions: Vec<u64>,
    gaps: Vec<Vec<i64>>,
    dropped: Vec<Vec<String>>,
    /// Which steps each distinct path matches (bit per step): a path is matched once per query.
    memo: HashMap<Vec<u8>, u16>,
    views: Vec<(i64, u16)>,
}

impl FunnelCounter {
    pub fn new(steps: Vec<Step>, within_ms: i64) -> Self {
        let n = steps.len();
        Self {
            steps,
            within_ms,
            sessions: vec![0; n],
            gaps: vec![Vec::new(); n],
            dropped: vec![Vec::new(); n.saturating_sub(1)],
            memo: HashMap::new(),
            views: Vec::new(),
        }
    }

    fn mask(&mut self, path: &[u8]) -> u16 {
        if let Some(m) = self.memo.get(path) {
            return *m;
        }
        let m = self.steps.iter().enumerate().filter(|(_, s)| s.matches(path)).fold(0u16, |m, (i, _)| m | 1 << i);
        self.memo.insert(path.to_vec(), m);
        m
    }

    /// Adds one session's views `(t, path)` (any order).
    pub fn add<'p>(&mut self, sid: &[u8; 16], views: impl IntoIterator<Item = (i64, &'p [u8])>) {
        let mut seq = std::mem::take(&mut self.views);
        seq.clear();
        for (t, path) in views {
            let m = self.mask(path);
            if m != 0 {
                seq.push((t, m));
            }
        }
        if seq.first().is_some_and(|_| !seq.is_sorted_by_key(|v| v.0)) {
            seq.sort_by_key(|v| v.0);
        }
        let n = self.steps.len();
        let mut reached: [Option<i64>; MAX_STEPS] = [None; MAX_STEPS];
        let mut gap: [i64; MAX_STEPS] = [0; MAX_STEPS];
        for &(t, m) in &seq {
            for k in (0..n).rev() {
                if m & (1 << k) == 0 {
                    continue;
                }
                if k == 0 {
                    reached[0] = Some(t);
                } else if let Some(prev) = reached[k - 1].filter(|p| t >= *p && t - p <= self.within_ms) {
                    if reached[k].is_none() {
                        gap[k] = t - prev;
                    }
                    reached[k] = Some(t);
                }
            }
        }
        self.views = seq;
        let Some(deepest) = (0..n).rev().find(|k| reached[*k].is_some()) else { return };
        for (k, gap) in gap.iter().enumerate().take(deepest + 1) {
            self.sessions[k] += 1;
            if k > 0 {
                self.gaps[k].push(*gap);
            }
        }
        if let Some(list) = self.dropped.get_mut(deepest).filter(|l| l.len() < MAX_DROPPED) {
            list.push(hex::encode(sid));
        }
    }

    pub fn finish(self) -> Funnel {
        let first = self.sessions.first().copied().unwrap_or(0);
        let steps = self
            .steps
            .into_iter()
            .zip(self.sessions)
            .zip(self.gaps)
            .enumerate()
            .map(|(k, ((step, sessions), gaps))| FunnelStep {
                path: step.path,
                sessions,
                conversion: if first == 0 { 0.0 } else { (sessions as f64 / first as f64 * 1000.0).round() / 1000.0 },
                median_ms_from_previous: if k == 0 { None } else { median(gaps) },
            })
            .collect();
        Funnel { steps, dropped: self.dropped, within_ms: self.within_ms }
    }
}

fn median(mut v: Vec<i64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] as f64 } else { (v[mid - 1] + v[mid]) as f64 / 2.0 })
}

/// A session's views as kept in an index value: `(t: i64 BE, len: u16 BE, path)` repeated.
pub fn encode_views<'p>(out: &mut Vec<u8>, views: impl IntoIterator<Item = (i64, &'p str)>) {
    for (t, path) in views {
        let path = &path.as_bytes()[..path.len().min(u16::MAX as usize)];
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&(path.len() as u16).to_be_bytes());
        out.extend_from_slice(path);
    }
}

/// Reads back what [`encode_views`] wrote; stops at the first malformed entry.
pub fn decode_views(mut bytes: &[u8]) -> impl Iterator<Item = (i64, &[u8])> {
    std::iter::from_fn(move || {
        let t = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = u16::from_be_bytes(bytes.get(8..10)?.try_into().ok()?) as usize;
        let path = bytes.get(10..10 + len)?;
        bytes = &bytes[10 + len..];
        Some((t, path))
    })
}

/// How many views an encoded value holds (to cap a session's index).
pub fn count_views(bytes: &[u8]) -> usize {
    decode_views(bytes).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(steps: &str, within: i64, sessions: &[&[(i64, &str)]]) -> Funnel {
        let mut c = FunnelCounter::new(Step::parse_list(steps).unwrap(), within);
        for (i, s) in sessions.iter().enumerate() {
            c.add(&[i as u8; 16], s.iter().map(|(t, p)| (*t, p.as_bytes())));
        }
        c.finish()
    }

    #[test]
    fn steps_count_in_order_within_the_window() {
        let f = run(
            "/a,/b/*,/c",
            1000,
            &[
                &[(0, "/a"), (500, "/b/1"), (900, "/c")],   // converts: gaps 500, 400
                &[(0, "/a"), (2000, "/b/2"), (2100, "/c")], // too slow to /b
                &[(0, "/b/1"), (10, "/a"), (20, "/c")],     // out of order: /a only
                &[(0, "/a"), (5000, "/a"), (5300, "/b/x")], // a later /a still counts: gap 300
                &[(0, "/x")],                               // never enters
                &[(0, "/a"), (100, "/b/1/2")],              // `*` is one segment only
            ],
        );
        let sessions: Vec<u64> = f.steps.iter().map(|s| s.sessions).collect();
        assert_eq!(sessions, [5, 2, 1]);
        assert_eq!(f.steps[1].conversion, 0.4);
        assert_eq!(f.steps[1].median_ms_from_previous, Some(400.0));
        assert_eq!(f.steps[2].median_ms_from_previous, Some(400.0));
        assert_eq!(f.steps[0].median_ms_from_previous, None);
        assert_eq!(f.dropped.len(), 2);
        assert_eq!(f.dropped[0], [hex::encode([1u8; 16]), hex::encode([2u8; 16]), hex::encode([5u8; 16])]);
        assert_eq!(f.dropped[1], [hex::encode([3u8; 16])]);
    }

    #[test]
    fn a_repeated_step_needs_two_views() {
        let f = run("/a,/a", 1000, &[&[(0, "/a")], &[(0, "/a"), (10, "/a")]]);
        assert_eq!(f.steps[1].sessions, 1);
    }

    #[test]
    fn views_round_trip_and_steps_parse() {
        let mut buf = Vec::new();
        encode_views(&mut buf, [(5, "/a"), (-1, "/b/c")]);
        let back: Vec<(i64, &[u8])> = decode_views(&buf).collect();
        assert_eq!(back, [(5, &b"/a"[..]), (-1, &b"/b/c"[..])]);
        assert_eq!(count_views(&buf), 2);
        assert!(Step::parse_list("/a").is_err());
        assert!(Step::parse_list("a,/b").is_err());
        assert_eq!(Step::parse_list("/u/*,/users/123456789").unwrap()[1].path, "/users/:id");
    }
}
