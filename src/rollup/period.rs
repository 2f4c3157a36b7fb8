//! Coarse rollup periods: ISO weeks (Monday to Sunday) and calendar months (UTC), kept beside
//! the day rollups with the same merge code, and the cover of a day range by the fewest of them.
//!
//! A rollup of a period is the sum of its days' rollups, so a range answered from whole
//! periods plus leftover days sums exactly the same values as the days alone — just fewer of
//! them (a 30-day range: about 4 weeks and a few days instead of 30 days).

/// 1970-01-01 (day 0) as a Julian day number.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Week,
    Month,
}

impl Level {
    pub const ALL: [Level; 2] = [Level::Week, Level::Month];

    /// Key byte of the level.
    pub fn tag(self) -> u8 {
        match self {
            Level::Week => b'w',
            Level::Month => b'm',
        }
    }
}

/// One week or month, named by its first day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub level: Level,
    pub start: i32,
}

impl Period {
    /// The week or month that contains `day`.
    pub fn of(level: Level, day: i32) -> Self {
        let start = match level {
            // Day 0 was a Thursday: Monday-based weekday is (day + 3) mod 7.
            Level::Week => day - (day + 3).rem_euclid(7),
            Level::Month => match date(day) {
                Some(d) => day - (d.day() as i32 - 1),
                // Outside the calendar's range: a period of its own (never used by real data).
                None => day,
            },
        };
        Self { level, start }
    }

    /// Last day of the period (inclusive).
    pub fn end(self) -> i32 {
        match self.level {
            Level::Week => self.start + 6,
            Level::Month => match date(self.start) {
                Some(d) => self.start + d.month().length(d.year()) as i32 - 1,
                None => self.start,
            },
        }
    }

    /// The periods a day's rollup is also merged into.
    pub fn all_of(day: i32) -> [Period; 2] {
        Level::ALL.map(|level| Period::of(level, day))
    }
}

fn date(day: i32) -> Option<time::Date> {
    time::Date::from_julian_day(day.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()
}

/// A part of a range: a run of single days, or one whole period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Days `from..=to`.
    Days {
        from: i32,
        to: i32,
    },
    Whole(Period),
}

/// Covers the days `from..=to` (each exactly once) with whole months, then whole weeks in what
/// is left on either side, then single days.
pub fn cover(from: i32, to: i32) -> Vec<Span> {
    let mut spans = Vec::new();
    if from > to {
        return spans;
    }
    let containing = Period::of(Level::Month, from);
    let mut m = if containing.start == from { containing } else { Period::of(Level::Month, containing.end() + 1) };
    let mut months = Vec::new();
    // `m.start > last end` also stops at the calendar's edge, where a "month" is one day.
    while m.end() <= to && months.last().is_none_or(|p: &Period| p.end() < m.start) {
        months.push(m);
        m = Period::of(Level::Month, m.end() + 1);
    }
    match (months.first(), months.last()) {
        (Some(first), Some(last)) => {
            let (first_start, last_end) = (first.start, last.end());
            cover_weeks(from, first_start - 1, &mut spans);
            spans.extend(months.into_iter().map(Span::Whole));
            cover_weeks(last_end + 1, to, &mut spans);
        }
        _ => cover_weeks(from, to, &mut spans),
    }
    spans
}

/// Whole weeks inside `from..=to`, and the days before and after them.
fn cover_weeks(from: i32, to: i32, spans: &mut Vec<Span>) {
    if from > to {
        return;
    }
    let week = Period::of(Level::Week, from);
    let mut start = if week.start == from { from } else { week.end() + 1 };
    if start + 6 > to {
        spans.push(Span::Days { from, to });
        return;
    }
    if start > from {
        spans.push(Span::Days { from, to: start - 1 });
    }
    while start + 6 <= to {
        spans.push(Span::Whole(Period { level: Level::Week, start }));
        start += 7;
    }
    if start <= to {
        spans.push(Span::Days { from: start, to });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-02, a Monday.
    const MONDAY: i32 = 20_759;

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        assert_eq!(Period::of(Level::Week, MONDAY + 6), Period { level: Level::Week, start: MONDAY });
        assert_eq!(Period::of(Level::Week, MONDAY + 7).start, MONDAY + 7);
        assert_eq!(Period::of(Level::Week, -1).start, -3, "1969-12-29 was a Monday");
        let day = |d: time::Date| d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY;
        assert_eq!(day(time::macros::date!(2026 - 11 - 02)), MONDAY);
        let nov = Period::of(Level::Month, day(time::macros::date!(2026 - 11 - 20)));
        assert_eq!(nov, Period { level: Level::Month, start: day(time::macros::date!(2026 - 11 - 01)) });
        assert_eq!(nov.end(), day(time::macros::date!(2026 - 11 - 30)));
        let feb = Period::of(Level::Month, day(time::macros::date!(2024 - 02 - 10)));
        assert_eq!(feb.end() - feb.start + 1, 29, "a leap February");
        assert_eq!(Period::of(Level::Month, -1), Period { level: Level::Month, start: -31 });
    }

    /// How many stored values a cover reads (per key).
    fn values(spans: &[Span]) -> i32 {
        spans.iter().map(|s| if let Span::Days { from, to } = s { to - from + 1 } else { 1 }).sum()
    }

    fn days_of(spans: &[Span]) -> Vec<i32> {
        spans
            .iter()
            .flat_map(|s| match *s {
                Span::Days { from, to } => (from..=to).collect::<Vec<_>>(),
                Span::Whole(p) => (p.start..=p.end()).collect(),
            })
            .collect()
    }

    #[test]
    fn a_cover_holds_every_day_once_in_order() {
        for from in 20_700..20_800 {
            for len in [1, 6, 7, 8, 13, 14, 30, 31, 62, 95, 400] {
                let to = from + len - 1;
                let spans = cover(from, to);
                assert_eq!(days_of(&spans), (from..=to).collect::<Vec<_>>(), "{from}..={to}: {spans:?}");
                for s in &spans {
                    if let Span::Whole(p) = s {
                        assert_eq!(Period::of(p.level, p.start), *p, "periods are aligned");
                    }
                }
            }
        }
    }

    #[test]
    fn thirty_days_need_few_values() {
        // 2026-10-31 (a Saturday) ..= 2026-11-29: two days and four weeks.
        let spans = cover(MONDAY - 2, MONDAY + 27);
        assert_eq!(values(&spans), 6, "{spans:?}");
        let worst = (20_700..20_800).map(|from| values(&cover(from, from + 29))).max().unwrap();
        assert_eq!(worst, 12, "six days, three weeks, three days");
        // A year: twelve months, or eleven and a few weeks and days around them (not 365).
        let worst = (20_700..20_800).map(|from| values(&cover(from, from + 364))).max().unwrap();
        assert!(worst <= 32, "{worst}");
    }
}
