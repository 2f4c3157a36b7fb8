//! The key layout of the sled store.
//!
//! Everything lives in one sled tree so that a group commit (events, session summaries, rollups)
//! is a single atomic `sled::Batch`. Each key starts with a namespace byte and, but for `s` and
//! `m`, the site id and a NUL:
//!
//! | ns | key after `ns site 0x00`   | value                                               |
//! |----|----------------------------|-----------------------------------------------------|
//! | s  | (site id only, no NUL)     | site settings (JSON)                                |
//! | m  | (`seg`, no site)           | last segment id (u64 BE)                            |
//! | m  | (`log`, no site)           | group log id of the last group applied (u64 BE)     |
//! | g  | segment id                 | where the segment lies in its file ([`super::segfiles`]) |
//! | F  | day, roll                  | a segment file's committed length (u64 BE)          |
//! | i  | sid                        | session anchor (u64 BE)                             |
//! | S  | anchor, sid                | session summary + where each of its batches lies    |
//! | v  | visitor key, anchor, sid   | empty: visitor → sessions                           |
//! | u  | day, visitor key           | empty: visitors seen per day                        |
//! | d  | day                        | the day's rollup (MessagePack)                      |
//! | p  | day, path                  | one page's rollup for the day                       |
//! | h  | path 0, kind, width, day, band | heatmap cells of a band of rows                 |
//! | c  | path 0, day                | clicks per element selector                         |
//! | f  | path 0, day                | form analytics: forms and fields of the page        |
//! | a  | path 0, day                | attention: visible-and-active ms per 5 % band       |
//! | q  | anchor, sid                | funnel index: the session's views `(t, path)…`      |
//! | P  | period, path               | one page's rollup for a week or month               |
//! | H  | path 0, kind, width, period, band | heatmap cells of a band, week or month       |
//! | C  | path 0, period             | clicks per element selector, week or month          |
//! | o  | day                        | every path's page rollup for the day, in one value  |
//! | O  | period                     | every path's page rollup for a week or month        |
//! | m  | (`rollups`, no site)       | the rollup format (1: `P`/`H`/`C` kept beside days; 2: `o`/`O` too) |
//!
//! A *period* is a level byte (`w` week, `m` month) and its first day: a week or month value is
//! the sum of its days' values, keyed exactly like them otherwise ([`period_key`]).
//! Page and heat values are [`crate::rollup::codec`] arrays; the rest are MessagePack.
//!
//! Why: sled is fast with few, large values under keys that mostly increase, and slow when
//! tree nodes fill with big values (every insert re-materialises its node), and each insert
//! costs microseconds. So the events of a group commit go into one large *segment* per site,
//! written to an append-only file outside sled and indexed under an ever-increasing segment id
//! (µs since the epoch; stores written before kept segments in a sled tree of their own, moved
//! to files once at open); a
//! batch adds only a 20-byte reference to its session's summary, which is rewritten anyway, so
//! a batch of a running session costs one small insert. Summaries are keyed by the session's
//! *anchor* (the server time its first batch arrived), so writes land near the right edge of
//! the range, the newest-first session list is a reverse range scan, and retention deletes
//! contiguous ranges. Numbers are big-endian so byte order is
//! numeric order.

use crate::rollup::heat::{HeatKind, WidthClass};
use crate::rollup::period::Period;

pub const NS_SITE: u8 = b's';
pub const NS_SESSION_INDEX: u8 = b'i';
pub const NS_SESSION: u8 = b'S';
pub const NS_SEGMENT: u8 = b'g';
pub const NS_SEGMENT_FILE: u8 = b'F';
pub const LAST_SEGMENT: &[u8] = b"mseg";
/// The group log's id of the last group applied (see `pipeline`).
pub const LOG_APPLIED: &[u8] = b"mlog";
pub const NS_VISITOR: u8 = b'v';
pub const NS_DAY_VISITOR: u8 = b'u';
pub const NS_DAY_ROLLUP: u8 = b'd';
pub const NS_PAGE_ROLLUP: u8 = b'p';
pub const NS_HEAT: u8 = b'h';
pub const NS_ELEMENTS: u8 = b'c';
pub const NS_FORMS: u8 = b'f';
pub const NS_ATTENTION: u8 = b'a';
pub const NS_SESSION_PATHS: u8 = b'q';
pub const NS_PAGE_PERIOD: u8 = b'P';
pub const NS_HEAT_PERIOD: u8 = b'H';
pub const NS_ELEMENTS_PERIOD: u8 = b'C';
pub const NS_SITE_PAGES: u8 = b'o';
pub const NS_SITE_PAGES_PERIOD: u8 = b'O';
/// The rollup format version, absent in stores written before week and month rollups.
pub const ROLLUP_FORMAT: &[u8] = b"mrollups";

/// `ns site 0x00`: the prefix of every per-site key in a namespace.
pub fn prefix(ns: u8, site: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + site.len() + 44);
    k.push(ns);
    k.extend_from_slice(site.as_bytes());
    k.push(0);
    k
}

pub fn site_key(site: &str) -> Vec<u8> {
    let mut k = vec![NS_SITE];
    k.extend_from_slice(site.as_bytes());
    k
}

/// Days are signed; flipping the sign bit keeps byte order equal to numeric order.
pub fn day_bytes(day: i32) -> [u8; 4] {
    ((day as u32) ^ 0x8000_0000).to_be_bytes()
}

pub fn day_from_bytes(b: &[u8]) -> Option<i32> {
    Some((u32::from_be_bytes(b.try_into().ok()?) ^ 0x8000_0000) as i32)
}

pub fn anchor_bytes(anchor: i64) -> [u8; 8] {
    (anchor.max(0) as u64).to_be_bytes()
}

pub fn session_index(site: &str, sid: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix(NS_SESSION_INDEX, site);
    k.extend_from_slice(sid);
    k
}

pub fn session(site: &str, anchor: i64, sid: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix(NS_SESSION, site);
    k.extend_from_slice(&anchor_bytes(anchor));
    k.extend_from_slice(sid);
    k
}

pub fn segment(site: &str, id: u64) -> Vec<u8> {
    let mut k = prefix(NS_SEGMENT, site);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub fn segment_file(site: &str, day: u32, roll: u32) -> Vec<u8> {
    let mut k = prefix(NS_SEGMENT_FILE, site);
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(&roll.to_be_bytes());
    k
}

/// The site and id of a segment key ([`segment`]).
pub fn parse_segment(k: &[u8]) -> Option<(&str, u64)> {
    let (head, id) = k.split_at_checked(k.len().checked_sub(8)?)?;
    let site = head.strip_prefix(&[NS_SEGMENT])?.strip_suffix(&[0])?;
    Some((std::str::from_utf8(site).ok()?, u64::from_be_bytes(id.try_into().ok()?)))
}

pub fn visitor_session(site: &str, visitor: &[u8; 16], anchor: i64, sid: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix(NS_VISITOR, site);
    k.extend_from_slice(visitor);
    k.extend_from_slice(&anchor_bytes(anchor));
    k.extend_from_slice(sid);
    k
}

pub fn day_visitor(site: &str, day: i32, visitor: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix(NS_DAY_VISITOR, site);
    k.extend_from_slice(&day_bytes(day));
    k.extend_from_slice(visitor);
    k
}

pub fn day_rollup(site: &str, day: i32) -> Vec<u8> {
    let mut k = prefix(NS_DAY_ROLLUP, site);
    k.extend_from_slice(&day_bytes(day));
    k
}

pub fn page_rollup(site: &str, day: i32, path: &str) -> Vec<u8> {
    let mut k = prefix(NS_PAGE_ROLLUP, site);
    k.extend_from_slice(&day_bytes(day));
    k.extend_from_slice(path.as_bytes());
    k
}

/// Every path's page rollup of one site and day (see [`crate::rollup::page::SitePages`]).
pub fn site_pages(site: &str, day: i32) -> Vec<u8> {
    let mut k = prefix(NS_SITE_PAGES, site);
    k.extend_from_slice(&day_bytes(day));
    k
}

/// The all-pages key of a page key's site and day, and the page key's path.
pub fn site_pages_of(page_key: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let day_at = page_key.iter().position(|b| *b == 0)? + 1;
    let path_at = day_at + 4;
    if page_key.first() != Some(&NS_PAGE_ROLLUP) || page_key.len() < path_at {
        return None;
    }
    let mut k = Vec::with_capacity(path_at);
    k.push(NS_SITE_PAGES);
    k.extend_from_slice(&page_key[1..path_at]);
    Some((k, &page_key[path_at..]))
}

/// `h site 0 path 0 kind width`: all days and bands of one heatmap.
pub fn heat_prefix(site: &str, path: &str, kind: HeatKind, width: WidthClass) -> Vec<u8> {
    let mut k = prefix(NS_HEAT, site);
    k.extend_from_slice(path.as_bytes());
    k.push(0);
    k.push(kind.tag());
    k.push(width.tag());
    k
}

pub fn heat(site: &str, path: &str, kind: HeatKind, width: WidthClass, day: i32, band: u16) -> Vec<u8> {
    let mut k = heat_prefix(site, path, kind, width);
    k.extend_from_slice(&day_bytes(day));
    k.extend_from_slice(&band.to_be_bytes());
    k
}

pub fn elements_prefix(site: &str, path: &str) -> Vec<u8> {
    let mut k = prefix(NS_ELEMENTS, site);
    k.extend_from_slice(path.as_bytes());
    k.push(0);
    k
}

pub fn elements(site: &str, path: &str, day: i32) -> Vec<u8> {
    let mut k = elements_prefix(site, path);
    k.extend_from_slice(&day_bytes(day));
    k
}

/// `ns site 0 path 0 day`: a per-page, per-day value (forms, attention).
pub fn page_day(ns: u8, site: &str, path: &str, day: i32) -> Vec<u8> {
    let mut k = prefix(ns, site);
    k.extend_from_slice(path.as_bytes());
    k.push(0);
    k.extend_from_slice(&day_bytes(day));
    k
}

/// The funnel index entry of a session: keyed like its summary, so a day range is a key range.
pub fn session_paths(site: &str, anchor: i64, sid: &[u8; 16]) -> Vec<u8> {
    let mut k = prefix(NS_SESSION_PATHS, site);
    k.extend_from_slice(&anchor_bytes(anchor));
    k.extend_from_slice(sid);
    k
}

/// The namespace of the week and month values beside a day-keyed namespace.
pub fn period_ns(day_ns: u8) -> Option<u8> {
    match day_ns {
        NS_PAGE_ROLLUP => Some(NS_PAGE_PERIOD),
        NS_HEAT => Some(NS_HEAT_PERIOD),
        NS_ELEMENTS => Some(NS_ELEMENTS_PERIOD),
        NS_SITE_PAGES => Some(NS_SITE_PAGES_PERIOD),
        _ => None,
    }
}

/// Where the day lies in a key of a namespace that has week and month values.
fn day_at(key: &[u8]) -> Option<usize> {
    let at = match *key.first()? {
        NS_PAGE_ROLLUP | NS_SITE_PAGES => key.iter().position(|b| *b == 0)? + 1,
        NS_HEAT => key.len().checked_sub(6)?,
        NS_ELEMENTS => key.len().checked_sub(4)?,
        _ => return None,
    };
    (at + 4 <= key.len()).then_some(at)
}

/// The day of a page (`p`), heat (`h`) or elements (`c`) key.
pub fn day_of_key(key: &[u8]) -> Option<i32> {
    let at = day_at(key)?;
    day_from_bytes(&key[at..at + 4])
}

/// The key of `period`'s value beside the day-keyed `key` (a page, heat or elements key): the
/// same key in the period namespace, with the day replaced by the period.
pub fn period_key(key: &[u8], period: Period) -> Option<Vec<u8>> {
    let at = day_at(key)?;
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(period_ns(key[0])?);
    k.extend_from_slice(&key[1..at]);
    k.push(period.level.tag());
    k.extend_from_slice(&day_bytes(period.start));
    k.extend_from_slice(&key[at + 4..]);
    Some(k)
}

/// Splits a session key (`S site 0 anchor sid`) back into its anchor and sid.
pub fn parse_session(key: &[u8], prefix_len: usize) -> Option<(i64, [u8; 16])> {
    let rest = key.get(prefix_len..)?;
    if rest.len() != 24 {
        return None;
    }
    let anchor = u64::from_be_bytes(rest[..8].try_into().ok()?) as i64;
    Some((anchor, rest[8..].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_sort_numerically() {
        assert!(day_bytes(-1) < day_bytes(0));
        assert!(day_bytes(0) < day_bytes(20_000));
        assert_eq!(day_from_bytes(&day_bytes(-5)), Some(-5));
    }

    #[test]
    fn period_keys_replace_the_day_and_keep_the_rest() {
        use crate::rollup::period::Level;
        let week = Period { level: Level::Week, start: 20_759 };
        let page = page_rollup("s", 20_760, "/a");
        assert_eq!(day_of_key(&page), Some(20_760));
        let pk = period_key(&page, week).unwrap();
        assert_eq!(pk[0], NS_PAGE_PERIOD);
        assert!(
            pk.starts_with(&period_key(&page_rollup("s", 20_000, ""), week).unwrap()),
            "a period's pages share a prefix"
        );
        assert!(pk.ends_with(b"w\x80\x00\x51\x17/a"));
        let heat = heat("s", "/a", HeatKind::Move, WidthClass::Mobile, 20_760, 3);
        assert_eq!(day_of_key(&heat), Some(20_760));
        let hk = period_key(&heat, week).unwrap();
        assert_eq!(&hk[hk.len() - 7..], [b'w', 0x80, 0x00, 0x51, 0x17, 0, 3]);
        let el = elements("s", "/a", 20_760);
        assert_eq!(period_key(&el, week).unwrap(), [&b"Cs\0/a\0w"[..], &day_bytes(20_759)].concat());
        assert_eq!(period_key(&day_rollup("s", 1), week), None, "days only");
        let all = site_pages("s", 20_760);
        assert_eq!(site_pages_of(&page), Some((all.clone(), &b"/a"[..])));
        assert_eq!(day_of_key(&all), Some(20_760));
        assert_eq!(period_key(&all, week).unwrap(), [&b"Os\0w"[..], &day_bytes(20_759)].concat());
        assert_eq!(site_pages_of(&all), None);
        assert_eq!(day_of_key(&[NS_HEAT, 1]), None);
    }

    #[test]
    fn later_sessions_sort_later_and_sites_do_not_mix() {
        let sid = [9u8; 16];
        assert!(session("a", 1, &sid) < session("a", 2, &sid));
        // "a" + NUL sorts before "ab": one site's range never contains another's keys.
        assert!(session("a", i64::MAX, &sid) < session("ab", 0, &sid));
        assert_eq!(parse_session(&session("a", 7, &sid), prefix(NS_SESSION, "a").len()), Some((7, sid)));
    }
}
