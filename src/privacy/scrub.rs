//! Free-text scrubbing: finds personal data and secrets in any stored string and replaces them with fixed tokens.
//!
//! Every rule is a candidate regex (compiled once) plus a `confirm` check written in
//! plain Rust (Luhn, mod-97, digit counts, "does this look random"), so the regexes stay readable
//! and the arithmetic stays testable. A [`RegexSet`] over all candidates is the pre-filter: text
//! that matches none of them is returned borrowed, without allocating, and text whose candidates
//! are all rejected is returned borrowed too.
//!
//! Rules run in a fixed order, and each replacement token contains no digit or letter run that a
//! later rule could match:
//!
//! | order | what | token |
//! | --- | --- | --- |
//! | 1 | e-mail address (also `%40`-encoded) | `[email]` |
//! | 2 | `Bearer <token>` | `[secret]` |
//! | 3 | JWT | `[secret]` |
//! | 4 | IPv6 address | `[ip]` |
//! | 5 | IPv4 address (not a version number) | `[ip]` |
//! | 6 | IBAN (mod-97) | `[iban]` |
//! | 7 | payment card (Luhn, issuer digit 2–6; spaces, dashes, dots, no-break spaces) | `[card]` |
//! | 8 | US SSN (dashes or spaces) | `[ssn]` |
//! | 9 | long random-looking token | `[secret]` |
//! | 10 | phone number (7–15 digits) | `[phone]` |
//!
//! A number that is the fraction or integer part of a decimal (`53.28513035220995`, as in CSS
//! and chart data) is never a card, SSN or phone number: confirms see the text around their
//! candidate for that.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// Replacement for an e-mail address.
pub const EMAIL_TOKEN: &str = "[email]";
/// Replacement for a payment card number.
pub const CARD_TOKEN: &str = "[card]";
/// Replacement for a phone number.
pub const PHONE_TOKEN: &str = "[phone]";
/// Replacement for an IBAN.
pub const IBAN_TOKEN: &str = "[iban]";
/// Replacement for a US social security number.
pub const SSN_TOKEN: &str = "[ssn]";
/// Replacement for a bearer token, JWT or other long secret.
pub const SECRET_TOKEN: &str = "[secret]";
/// Replacement for an IPv4 or IPv6 address.
pub const IP_TOKEN: &str = "[ip]";

/// Returns `s` with every e-mail address, card number, phone number, IBAN, SSN and secret
/// replaced by its token; borrowed (no allocation) when nothing was replaced.
pub fn scrub_text(s: &str) -> Cow<'_, str> {
    let mut out = scrub_once(s);
    if matches!(out, Cow::Borrowed(_)) {
        return out;
    }
    // A replacement can expose a match the original hid (`a@b.cde0532013000`: once the e-mail
    // is `[email]`, the digits after it stand alone as a phone number). Passes repeat until
    // nothing changes — a second pass runs only when the first replaced something.
    for _ in 0..MAX_PASSES {
        match scrub_once(&out) {
            Cow::Borrowed(_) => break,
            Cow::Owned(next) => out = Cow::Owned(next),
        }
    }
    out
}

/// Passes after the first; each one only ever shortens what a rule can match.
const MAX_PASSES: usize = 4;

fn scrub_once(s: &str) -> Cow<'_, str> {
    if !may_hold_a_match(s) {
        return Cow::Borrowed(s);
    }
    scrub_once_with_regexes(s)
}

/// One pass of the rules without the byte scan in front (the fuzz check compares the two).
#[doc(hidden)]
pub fn scrub_once_with_regexes(s: &str) -> Cow<'_, str> {
    let compiled = &*COMPILED;
    let hits = compiled.prefilter.matches(s);
    if !hits.matched_any() {
        return Cow::Borrowed(s);
    }
    RULES
        .iter()
        .zip(&compiled.regexes)
        .enumerate()
        .filter(|(i, _)| hits.matched(*i))
        .fold(Cow::Borrowed(s), |text, (_, (rule, regex))| apply(text, rule, regex))
}

/// Whether any rule could match and be confirmed in `s`: one pass over the bytes, so the
/// selectors, form names and page words that make up most stored strings never reach the
/// regexes (their `RegexSet` was the largest item of the scrub in profiles). Each condition is
/// what a rule's pattern *and* its confirm need at the least:
///
/// - e-mail: `@`, or `%40` (two digits);
/// - `Bearer`: the word, in any case; JWT: `eyJ`;
/// - IPv6: a digit (confirm) and two `:` (pattern);
/// - IPv4, IBAN, card, SSN, phone: two digits or more (4, 2, 13, 9 and 7);
/// - long secret: a digit (confirm: letters interleaved with digits) in a run of 24 or more
///   characters of the base64 / hex alphabet (pattern).
#[doc(hidden)]
pub fn may_hold_a_match(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (mut digits, mut colons, mut run, mut longest_run) = (0usize, 0usize, 0usize, 0usize);
    // Per byte, not with a substring searcher: most strings are a few dozen bytes, shorter
    // than a searcher takes to set up.
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'@' => return true,
            b'J' if i >= 2 && &bytes[i - 2..i] == b"ey" => return true,
            b'r' | b'R' if i >= 5 && bytes[i - 5..=i].eq_ignore_ascii_case(b"bearer") => return true,
            _ => {}
        }
        match b {
            b'0'..=b'9' => {
                digits += 1;
                run += 1;
            }
            b':' => {
                colons += 1;
                run = 0;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'+' | b'/' | b'_' | b'-' => run += 1,
            _ => run = 0,
        }
        longest_run = longest_run.max(run);
    }
    digits >= 2 || (digits == 1 && (colons >= 2 || longest_run >= 24))
}

/// Scrubs `s` in place; returns whether anything was replaced.
pub fn scrub_in_place(s: &mut String) -> bool {
    match scrub_text(s) {
        Cow::Owned(scrubbed) => {
            *s = scrubbed;
            true
        }
        Cow::Borrowed(_) => false,
    }
}

/// Whether `s` has a piece (split on anything not a letter or digit) of at least 8 characters
/// that interleaves ASCII letters and digits: what random ids and keys have and slugs such as
/// `how-to-install-rust-2024`, words such as `v10` and counters such as
/// `SvgjsLinearGradient10011` (one switch from letters to digits) don't. Shared with the URL
/// rules.
pub(super) fn has_random_piece(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphanumeric()).any(|piece| piece.len() >= 8 && interleaves_letters_and_digits(piece))
}

/// At least two switches between letters and digits (`a1b`, `1a2`).
fn interleaves_letters_and_digits(s: &str) -> bool {
    let kinds = s.bytes().map(|b| b.is_ascii_digit());
    kinds.clone().zip(kinds.skip(1)).filter(|(a, b)| a != b).nth(1).is_some()
}

// ---------------------------------------------------------------------------------------------
// Rules

/// A regex match with the text around it, for confirms that judge by context.
struct Candidate<'a> {
    text: &'a str,
    before: &'a str,
    after: &'a str,
}

impl Candidate<'_> {
    /// Whether the candidate is a piece of a decimal number: `53.|2851…` or `…2851|.53`.
    fn in_decimal(&self) -> bool {
        let b = self.before.as_bytes();
        let before = b.len() >= 2 && b[b.len() - 1] == b'.' && b[b.len() - 2].is_ascii_digit();
        let a = self.after.as_bytes();
        let after = a.len() >= 2 && a[0] == b'.' && a[1].is_ascii_digit();
        before || after
    }
}

/// Confirms a candidate match; returns the span of it (relative to the candidate) to replace.
/// Every span a confirm cuts out lies on char boundaries (group splits are by char).
type Confirm = fn(&Candidate) -> Option<Range<usize>>;

struct Rule {
    pattern: &'static str,
    confirm: Confirm,
    token: &'static str,
}

const RULES: [Rule; 10] = [
    Rule { pattern: EMAIL, confirm: whole, token: EMAIL_TOKEN },
    Rule { pattern: BEARER, confirm: confirm_bearer, token: SECRET_TOKEN },
    Rule { pattern: JWT, confirm: whole, token: SECRET_TOKEN },
    Rule { pattern: IPV6, confirm: confirm_ipv6, token: IP_TOKEN },
    Rule { pattern: IPV4, confirm: confirm_ipv4, token: IP_TOKEN },
    Rule { pattern: IBAN, confirm: confirm_iban, token: IBAN_TOKEN },
    Rule { pattern: CARD, confirm: confirm_card, token: CARD_TOKEN },
    Rule { pattern: SSN, confirm: confirm_ssn, token: SSN_TOKEN },
    Rule { pattern: SECRET, confirm: confirm_secret, token: SECRET_TOKEN },
    Rule { pattern: PHONE, confirm: confirm_phone, token: PHONE_TOKEN },
];

// All patterns are verbose (`x`) and ASCII-mode (`-u`), so `\b` is an ASCII word boundary
// (cheap, DFA-friendly, and a non-ASCII letter next to a number doesn't hide it); only the
// e-mail pattern opts back into Unicode classes for internationalised addresses.

const EMAIL: &str = r"(?x-u)
    (?u: [\p{L}\p{N}._%+-]+ )    # local part, internationalised ones too
    (?: @ | %40 )               # at sign, raw or percent-encoded
    (?u: [\p{L}\p{N}-]+ )        # first domain label
    (?u: \. [\p{L}\p{N}-]+ )*    # further labels
    (?u: \. \p{L}{2,} )          # top-level domain (greedy, so no boundary needed)
";

const BEARER: &str = r"(?x-u)
    \b (?i: bearer )            # the auth scheme, any case
    [\ \t]+                     # separating blanks
    [A-Za-z0-9._~+/-]+ =*       # token68 (RFC 7235); confirm rejects ordinary words
";

const JWT: &str = r"(?x-u)
    \b eyJ [A-Za-z0-9_-]{4,}    # header: base64url of a JSON object (starts with an opening brace)
    \. [A-Za-z0-9_-]{4,}        # payload
    \. [A-Za-z0-9_-]*           # signature (empty for alg none)
";

const IPV6: &str = r"(?x-u)
    (?: [0-9A-Fa-f]{0,4} : ){2,7}                  # hex groups, `::` for a run of zeros
    (?: (?: [0-9]{1,3} \. ){3} [0-9]{1,3}           # an embedded IPv4 tail (::ffff:192.0.2.1)
      | [0-9A-Fa-f]{1,4} )?                         # or a last group
";

const IPV4: &str = r"(?x-u)
    \b (?: [0-9]{1,3} \. ){3} [0-9]{1,3} \b        # dotted quad; confirm checks the octets
";

const IBAN: &str = r"(?xi-u)
    \b [A-Z]{2} [0-9]{2}        # country code, check digits (any case: mod-97 decides)
    (?:
        [A-Z0-9]{11,30}         # compact BBAN
      | (?: \ [A-Z0-9]{4} ){2,7} (?: \ [A-Z0-9]{1,4} )?   # or printed in groups of four
    )
    \b
";

const CARD: &str = r"(?x-u)
    \+?                         # taken only so confirm can reject `+4915…` (a phone number)
    \b [2-6]                    # issuer digit: Visa, Mastercard, Amex, Discover, JCB, UnionPay…
    (?:
        [0-9]{12,18}            # compact: 13–19 digits in all
      | [0-9]{2,5} (?: (?: [\ .-] | (?u: [\u{A0}\u{2009}\u{202F}] ) ) [0-9]{3,6} ){2,5}
                                # or groups split by spaces, dashes, dots or no-break spaces
    )
    \b
";

const SSN: &str = r"(?x-u)
    \b [0-9]{3}                 # area
    [\ -] [0-9]{2}              # group
    [\ -] [0-9]{4} \b           # serial (confirm wants one separator throughout)
";

const SECRET: &str = r"(?x-u)
    [A-Za-z0-9+/_-]{24,}        # a run in the base64 / base64url / hex alphabet; confirm
                                # wants letters mixed with digits, not a slug or a path
    ={0,2}                      # base64 padding (not inside, so `token=` stays readable)
";

const PHONE: &str = r"(?x-u)
    (?:
        \+ [1-9] [0-9]{0,2}                         # international: country code,
        (?: [\ .-]? \( [0-9]{1,4} \) )?             #   optional area code in parentheses,
        (?: [\ .-]? [0-9]{1,5} ){1,6}               #   digit groups: +44 20 7946 0958
      | \( [0-9]{2,4} \) \ ? [0-9]{3,4} [\ .-]? [0-9]{3,4}    # (555) 123-4567
      | \b (?: 1 [\ .-] )? [0-9]{3} [\ .-] [0-9]{3} [\ .-] [0-9]{4}   # (1-)555-123-4567
      | \b 0 [1-9] (?:                              # French style: 06 12 34 56 78,
            (?: \ [0-9]{2} ){4} | (?: \. [0-9]{2} ){4}        #   one separator throughout
          | (?: - [0-9]{2} ){4} | [0-9]{8} )                  #   (so a date never fits)
      | \b 0 [0-9]{2,4} [\ -] [0-9]{3,8} (?: [\ -] [0-9]{3,4} )?   # trunk prefix: 020 7946 0958
    )
    \b
";

struct Compiled {
    prefilter: RegexSet,
    regexes: Vec<Regex>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    prefilter: RegexSet::new(RULES.iter().map(|r| r.pattern)).expect("scrub rule patterns are valid"),
    regexes: RULES.iter().map(|r| Regex::new(r.pattern).expect("scrub rule pattern is valid")).collect(),
});

// ---------------------------------------------------------------------------------------------
// Replacement

fn apply<'a>(text: Cow<'a, str>, rule: &Rule, regex: &Regex) -> Cow<'a, str> {
    match redact(&text, rule, regex) {
        Some(scrubbed) => Cow::Owned(scrubbed),
        None => text,
    }
}

/// Replaces every confirmed candidate; `None` when nothing was confirmed. After a confirmed
/// span the search resumes right behind it, so a candidate that was trimmed (a card followed
/// by more digits) leaves its rest to be searched again.
fn redact(text: &str, rule: &Rule, regex: &Regex) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut pos = 0;
    while let Some(m) = regex.find_at(text, pos) {
        pos = m.end();
        let candidate = Candidate { text: m.as_str(), before: &text[..m.start()], after: &text[m.end()..] };
        let Some(span) = (rule.confirm)(&candidate).filter(|span| !span.is_empty()) else {
            continue;
        };
        let (start, end) = (m.start() + span.start, m.start() + span.end);
        let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
        buf.push_str(&text[copied..start]);
        buf.push_str(rule.token);
        copied = end;
        pos = end;
    }
    out.map(|mut buf| {
        buf.push_str(&text[copied..]);
        buf
    })
}

fn whole(candidate: &Candidate) -> Option<Range<usize>> {
    Some(0..candidate.text.len())
}

/// Longest sub-span of `candidate` made of whole groups (separated by any of `seps`) that
/// passes `valid`; only spans starting at the first group when `anchored`.
fn best_group_span(
    candidate: &str,
    seps: &[char],
    anchored: bool,
    valid: impl Fn(&str) -> bool,
) -> Option<Range<usize>> {
    let groups = group_ranges(candidate, seps);
    let n = groups.len();
    (1..=n).rev().find_map(|len| {
        let starts = if anchored { 0..1 } else { 0..n + 1 - len };
        starts
            .map(|first| groups[first].start..groups[first + len - 1].end)
            .find(|span| valid(&candidate[span.clone()]))
    })
}

fn group_ranges(s: &str, seps: &[char]) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if seps.contains(&c) {
            groups.push(start..i);
            start = i + c.len_utf8();
        }
    }
    groups.push(start..s.len());
    groups
}

fn digits(s: &str) -> impl Iterator<Item = u32> + '_ {
    s.bytes().filter(u8::is_ascii_digit).map(|b| u32::from(b - b'0'))
}

// ---------------------------------------------------------------------------------------------
// Confirmations

/// The token after `Bearer` must look like one: 8+ characters with a digit or symbol in them,
/// or 20+ letters. "the bearer of bad news" stays.
fn confirm_bearer(candidate: &Candidate) -> Option<Range<usize>> {
    let token = candidate.text.get(6..)?.trim_start();
    let looks_like_token = token.len() >= 20 || (token.len() >= 8 && token.bytes().any(|b| !b.is_ascii_alphabetic()));
    looks_like_token.then_some(0..candidate.text.len())
}

/// A whole IPv6 address (checked by the standard library's parser) with at least two non-empty
/// groups and a digit, so `a::before`, `std::map` and times (`12:30:45`) stay.
fn confirm_ipv6(candidate: &Candidate) -> Option<Range<usize>> {
    if candidate.before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == ':' || c == '.') {
        return None;
    }
    // The greedy pattern takes a sentence's `:` right after an address; give it back.
    let text = match candidate.text.strip_suffix(':') {
        Some(t) if !t.ends_with(':') => t,
        _ => candidate.text,
    };
    let glued_to_word =
        text.len() == candidate.text.len() && candidate.after.starts_with(|c: char| c.is_ascii_alphanumeric());
    let valid = !glued_to_word
        && text.split(':').filter(|g| !g.is_empty()).count() >= 2
        && text.bytes().any(|b| b.is_ascii_digit())
        && text.parse::<std::net::Ipv6Addr>().is_ok();
    valid.then_some(0..text.len())
}

/// Four octets 0–255 without leading zeros, not part of a longer dotted number and not a
/// version (`version 1.2.3.4`, `1.2.3.4-beta`; `v1.2.3.4` never matches, `\b` sees to that).
fn confirm_ipv4(candidate: &Candidate) -> Option<Range<usize>> {
    let octet = |s: &str| s.parse::<u8>().is_ok() && (s == "0" || !s.starts_with('0'));
    if !candidate.text.split('.').all(octet) {
        return None;
    }
    let after = candidate.after.as_bytes();
    let next_is = |i: usize, f: fn(&u8) -> bool| after.get(i).is_some_and(f);
    let dotted_on = candidate.before.ends_with('.') || (after.first() == Some(&b'.') && next_is(1, u8::is_ascii_digit));
    let suffixed = after.first() == Some(&b'-') && next_is(1, u8::is_ascii_alphanumeric);
    (!dotted_on && !suffixed && !after_version_word(candidate.before)).then_some(0..candidate.text.len())
}

/// Whether `before` ends with a word such as "version" or "build", then blanks or `:`.
fn after_version_word(before: &str) -> bool {
    let trimmed = before.trim_end_matches([' ', ':', '\u{a0}']);
    let letters = trimmed.bytes().rev().take_while(u8::is_ascii_alphabetic).count();
    let word = trimmed[trimmed.len() - letters..].to_ascii_lowercase();
    trimmed.len() < before.len() && matches!(word.as_str(), "v" | "ver" | "version" | "release" | "build" | "firmware")
}

fn confirm_iban(candidate: &Candidate) -> Option<Range<usize>> {
    best_group_span(candidate.text, &[' '], true, is_valid_iban)
}

/// 15–34 alphanumerics (spaces ignored, any case) whose mod-97 check (ISO 13616) gives 1.
fn is_valid_iban(s: &str) -> bool {
    let compact = || s.bytes().filter(|&b| b != b' ').map(|b| b.to_ascii_uppercase());
    let len = compact().count();
    if !(15..=34).contains(&len) || !compact().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) {
        return false;
    }
    // Move the first four characters to the end; letters count as 10..=35.
    let rearranged = compact().skip(4).chain(compact().take(4));
    let remainder = rearranged.fold(0u32, |acc, b| {
        let value = if b.is_ascii_digit() { u32::from(b - b'0') } else { u32::from(b - b'A') + 10 };
        let shift = if value < 10 { 10 } else { 100 };
        (acc * shift + value) % 97
    });
    remainder == 1
}

/// Card separators: what people type and what page formatting inserts.
const CARD_SEPS: [char; 6] = [' ', '-', '.', '\u{a0}', '\u{2009}', '\u{202f}'];

fn confirm_card(candidate: &Candidate) -> Option<Range<usize>> {
    if candidate.text.starts_with('+') || candidate.in_decimal() {
        return None;
    }
    best_group_span(candidate.text, &CARD_SEPS, false, |s| is_card_number(s) && dots_read_as_card(s))
}

/// A number with dots is a card only when written in fours with dots alone (`4111.1111.…`), not
/// when it reads as a decimal or as thousands (`234.567.890.123.456`).
fn dots_read_as_card(s: &str) -> bool {
    if !s.contains('.') {
        return true;
    }
    let groups: Vec<&str> = s.split('.').collect();
    groups.len() >= 4 && groups[0].len() == 4 && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
}

/// 13–19 digits (separators ignored), issuer digit 2–6, Luhn-valid.
fn is_card_number(s: &str) -> bool {
    let count = digits(s).count();
    (13..=19).contains(&count) && digits(s).next().is_some_and(|d| (2..=6).contains(&d)) && luhn_valid(s)
}

/// Luhn checksum over the digits of `s`.
fn luhn_valid(s: &str) -> bool {
    let sum: u32 = s
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
        .map(|(i, d)| match (i % 2 == 1, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Rejects numbers the SSA never issues (area 000, 666 or 9xx, group 00, serial 0000), mixed
/// separators, and a spaced triple that is only part of a longer list of numbers.
fn confirm_ssn(candidate: &Candidate) -> Option<Range<usize>> {
    let text = candidate.text;
    let (area, group, serial) = (&text[0..3], &text[4..6], &text[7..11]);
    let sep = text.as_bytes()[3];
    let issued = area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000";
    let in_list = sep == b' '
        && (number_then_blank(candidate.before.as_bytes(), true)
            || number_then_blank(candidate.after.as_bytes(), false));
    (issued && text.as_bytes()[6] == sep && !in_list && !candidate.in_decimal()).then_some(0..text.len())
}

/// Whether `side` (the text before the candidate when `before`, else after it) continues the
/// candidate as a blank-separated list of numbers: `… 12 |123 45 6789|` or `|…| 42`.
fn number_then_blank(side: &[u8], before: bool) -> bool {
    let (blank, digit) =
        if before { (side.last(), side.len().checked_sub(2).map(|i| &side[i])) } else { (side.first(), side.get(1)) };
    blank == Some(&b' ') && digit.is_some_and(u8::is_ascii_digit)
}

/// A run qualifies when a `/`-separated part of it has a random-looking piece. The part is
/// replaced together with its neighbours unless they read like path words (lower-case letters,
/// digits, `-`, `_`), so `assets/<hash>` keeps `assets/` while a base64 key with `/` in it
/// goes whole.
fn confirm_secret(candidate: &Candidate) -> Option<Range<usize>> {
    let candidate = candidate.text;
    let parts = group_ranges(candidate, &['/']);
    let text = |i: usize| &candidate[parts[i].clone()];
    let first = (0..parts.len()).find(|&i| has_random_piece(text(i)))?;
    let last = (first..parts.len()).rev().find(|&i| has_random_piece(text(i)))?;
    let keeps = |i: usize| text(i).is_empty() || is_path_word(text(i));
    let start = (0..first).rev().find(|&i| keeps(i)).map_or(0, |i| i + 1);
    let end = (last + 1..parts.len()).find(|&i| keeps(i)).unwrap_or(parts.len()) - 1;
    Some(parts[start].start..parts[end].end)
}

fn is_path_word(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// 7–15 digits (E.164 allows 15); a candidate that runs on into more numbers is cut back at a
/// separator until it fits. Never the digits of a decimal number.
fn confirm_phone(candidate: &Candidate) -> Option<Range<usize>> {
    if candidate.in_decimal() {
        return None;
    }
    best_group_span(candidate.text, &[' ', '.', '-'], true, |s| (7..=15).contains(&digits(s).count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(s: &str) -> String {
        scrub_text(s).into_owned()
    }

    fn assert_untouched(s: &str) {
        assert!(matches!(scrub_text(s), Cow::Borrowed(_)), "{s:?} was changed to {:?}", scrub_text(s));
    }

    /// What the byte scan must let through even with no or one digit in it, and what it spares
    /// the regexes.
    #[test]
    fn the_byte_scan_lets_every_digit_poor_match_through() {
        for s in [
            "mail me: jane@example.org",
            "Authorization: BEARER abcdefghijklmnopqrstuvwxyz",
            "token eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            "host fe::1 here",
            "key AbCdEfGhIjKlMnOpQrStUvWx1yZ",
            "jane%40example.org",
        ] {
            assert!(may_hold_a_match(s), "{s}");
            assert_ne!(scrub(s), s, "{s}");
        }
        for s in ["main > div.grid > a.card:nth-child(3)", "form#signup input[name=email]", "Checkout", ""] {
            assert!(!may_hold_a_match(s), "{s}");
            assert!(matches!(scrub_once_with_regexes(s), Cow::Borrowed(_)), "{s}");
        }
    }

    /// Random strings built from the pieces the rules look for: whatever the byte scan lets
    /// pass untouched, the regexes and confirms leave untouched too.
    #[test]
    fn the_byte_scan_never_hides_a_match_from_the_rules() {
        use rand::{Rng, SeedableRng};
        let pieces = [
            "0", "1", "7", "42", ":", "::", "@", ".", "-", " ", "/", "+", "_", "a", "B", "f", "x", "eyJ", "bearer ",
            "Bearer\t", "%", "\u{a0}", "é", "AbCdEfGh", "(", ")", "=", "DE", "4111",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let mut spared = 0;
        for _ in 0..50_000 {
            let n = rng.gen_range(1..24);
            let s: String = (0..n).map(|_| pieces[rng.gen_range(0..pieces.len())]).collect();
            if !may_hold_a_match(&s) {
                spared += 1;
                assert!(matches!(scrub_once_with_regexes(&s), Cow::Borrowed(_)), "{s:?}");
            }
        }
        assert!(spared > 1_000, "the scan spares the regexes some work: {spared}");
    }

    #[test]
    fn patterns_compile() {
        assert_eq!(COMPILED.regexes.len(), RULES.len());
        assert_eq!(COMPILED.prefilter.len(), RULES.len());
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert_untouched("");
        assert_untouched("Add to cart");
        assert_untouched("The quick brown fox jumps over the lazy dog.");
    }

    #[test]
    fn emails() {
        assert_eq!(scrub("mail jane.doe+news@example.co.uk now"), "mail [email] now");
        assert_eq!(scrub("JANE@EXAMPLE.COM"), "[email]");
        assert_eq!(scrub("/users/jane%40example.com/edit"), "/users/[email]/edit");
        assert_eq!(scrub("a@b.io, c@d.io"), "[email], [email]");
    }

    #[test]
    fn cards() {
        assert_eq!(scrub("card 4111 1111 1111 1111 ok"), "card [card] ok");
        assert_eq!(scrub("4111-1111-1111-1111"), "[card]");
        assert_eq!(scrub("5555555555554444"), "[card]");
        assert_eq!(scrub("amex 3782 822463 10005"), "amex [card]");
        assert_eq!(scrub("378282246310005"), "[card]");
    }

    #[test]
    fn card_surrounded_by_other_numbers_is_cut_out() {
        assert_eq!(scrub("qty 12 4111 1111 1111 1111 200 pcs"), "qty 12 [card] 200 pcs");
    }

    #[test]
    fn non_luhn_number_is_not_a_card() {
        assert!(!luhn_valid("1234567812345678"));
        assert!(!luhn_valid("4111111111111112"));
        assert_untouched("1234567812345678");
        assert_untouched("ref 4111 1111 1111 1112");
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(luhn_valid("4111 1111 1111 1111"));
    }

    #[test]
    fn phones() {
        assert_eq!(scrub("call +44 20 7946 0958 today"), "call [phone] today");
        assert_eq!(scrub("call (555) 123-4567"), "call [phone]");
        assert_eq!(scrub("555-123-4567"), "[phone]");
        assert_eq!(scrub("06 12 34 56 78"), "[phone]");
        assert_eq!(scrub("+1 (555) 123-4567"), "[phone]");
        assert_eq!(scrub("+4915112345678"), "[phone]");
        assert_eq!(scrub("020 7946 0958"), "[phone]");
        assert_eq!(scrub("1-800-555-0199"), "[phone]");
    }

    #[test]
    fn phone_needs_seven_digits() {
        assert_untouched("+1 23 45");
        assert_untouched("room 555-12");
    }

    #[test]
    fn ibans() {
        assert_eq!(scrub("IBAN DE89 3704 0044 0532 0130 00 thanks"), "IBAN [iban] thanks");
        assert_eq!(scrub("GB82WEST12345698765432"), "[iban]");
        assert_eq!(scrub("iban: de89 3704 0044 0532 0130 00"), "iban: [iban]");
        assert_eq!(scrub("to GB82 WEST 1234 5698 7654 32 PAID"), "to [iban] PAID");
        assert!(is_valid_iban("FR14 2004 1010 0505 0001 3M02 606"));
        assert!(!is_valid_iban("DE89 3704 0044 0532 0130 01"));
    }

    #[test]
    fn ssns() {
        assert_eq!(scrub("SSN 123-45-6789."), "SSN [ssn].");
        assert_untouched("000-45-6789");
        assert_untouched("666-45-6789");
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(scrub("Authorization: Bearer abc123def456ghi"), "Authorization: [secret]");
        assert_eq!(scrub("bearer mF_9.B5f-4.1JqM"), "[secret]");
        assert_untouched("the bearer of bad news");
        assert_untouched("Bearer authentication");
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.\
                   dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(scrub(&format!("token={jwt}&x=1")), "token=[secret]&x=1");
        assert_eq!(scrub(&format!("Bearer {jwt}")), "[secret]");
    }

    #[test]
    fn long_secrets() {
        assert_eq!(scrub("key sk_live_4eC39HqLyjWDarjtT1zdp7dc used"), "key [secret] used");
        assert_eq!(scrub("ghp_16C7e42F292c6912E7710c838347Ae178B4a"), "[secret]");
        assert_eq!(scrub("sha e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha [secret]");
        assert_eq!(scrub("wJalrXUtnFEMI/K7MDENG/bPxRfi9YEXAMPLEKEY"), "[secret]");
        assert_eq!(scrub("/assets/0a1b2c3d4e5f6a7b8c9d0e1f.js"), "/assets/[secret].js");
        assert_eq!(scrub("files/ab/Xy9Qm2Lp7Rt4Vw8Zs1Nd/cd/ef"), "files/ab/[secret]/cd/ef");
        assert_eq!(scrub("?token=abcdef0123456789abcdef0123456789&a=1"), "?token=[secret]&a=1");
        assert_eq!(scrub("dGhpcyBpcyBhIHNlY3JldCBrZXkgMTIz=="), "[secret]");
    }

    #[test]
    fn long_runs_that_are_not_secrets() {
        assert_untouched("how-to-install-rust-2024-edition");
        assert_untouched("/docs/getting-started/installation/v2");
        assert_untouched("abcdefghijklmnopqrstuvwxyzabcdef");
        assert_untouched("123456789012345678901234567890");
    }

    #[test]
    fn several_kinds_in_one_string() {
        assert_eq!(
            scrub("jane@example.com paid with 4111111111111111, call +33 6 12 34 56 78"),
            "[email] paid with [card], call [phone]"
        );
    }

    #[test]
    fn near_misses_stay_untouched() {
        for s in [
            "Only 123 left",
            "Copyright 2026",
            "version 1.2.3",
            "node v10.24.1",
            "on 2026-11-29",
            "on 29/11/2026",
            "at 12:30:45",
            "at 09:05",
            ".password-field",
            "input.password-field:focus",
            "div#main > ul li:nth-child(3)",
            "Thank you for your order! It ships within 3 days.",
            "color: #ff00aa",
            "$1,299.00",
            "1234567812345678",
            "ordered at 1764374400000",
            "version 1.2.3.4",
            "v1.2.3.4",
            "release 10.0.19045.3803",
            "1.2.3.4-beta",
            "Chrome/120.0.6099.109",
            "HTTP 404 Not Found",
            "503 Service Unavailable",
            "costs 1,299.99 EUR",
            "€ 4.111,11",
            "Born on 12 March 1984, moved 2001",
            "a::before",
            "::selection",
            "std::collections::HashMap",
            "at 12:30:45.123",
            "items 100 200 300 400",
        ] {
            assert_untouched(s);
        }
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(scrub("from 192.168.1.100 at noon"), "from [ip] at noon");
        assert_eq!(scrub("host=10.0.0.1:8080"), "host=[ip]:8080");
        assert_eq!(scrub("/admin/203.0.113.195/logs"), "/admin/[ip]/logs");
        assert_eq!(scrub("client 2001:db8:85a3::8a2e:370:7334 refused"), "client [ip] refused");
        assert_eq!(scrub("[fe80::1ff:fe23:4567:890a]:443"), "[[ip]]:443");
        assert_eq!(scrub("2001:0db8:0000:0000:0000:ff00:0042:8329"), "[ip]");
        assert_eq!(scrub("mapped ::ffff:192.0.2.128 here"), "mapped [ip] here");
        assert_eq!(scrub("peer 2001:db8::1: timed out"), "peer [ip]: timed out");
    }

    #[test]
    fn ip_near_misses() {
        for s in ["1.2.3.4.5", "256.1.1.1", "01.02.03.04", "12:30:45", "cafe::bead", "a::b", "00:1a:2b:3c:4d:5e"] {
            assert_untouched(s);
        }
    }

    #[test]
    fn cards_with_dots_and_no_break_spaces() {
        assert_eq!(scrub("card 4111.1111.1111.1111 ok"), "card [card] ok");
        assert_eq!(scrub("4111\u{a0}1111\u{a0}1111\u{a0}1111"), "[card]");
        assert_eq!(scrub("n° 4111\u{202f}1111\u{202f}1111\u{202f}1111."), "n° [card].");
        assert_eq!(scrub("5555\u{2009}5555\u{2009}5555\u{2009}4444"), "[card]");
    }

    #[test]
    fn decimals_are_not_cards_or_phones() {
        // ApexCharts/c3 path data and CSS: a long fraction is not a card (Luhn-valid by chance).
        assert!(luhn_valid("28513035220995"));
        assert_untouched("53.28513035220995");
        assert_untouched("M0,53.28513035220995L10,4.285130352209951");
        assert_untouched("left: 0.4111111111111111px");
        assert_untouched("4111111111111111.5");
        assert_untouched("234.567.890.123.456");
        assert_untouched("1.5551234567");
    }

    #[test]
    fn spaced_ssns() {
        assert_eq!(scrub("SSN 123 45 6789 on file"), "SSN [ssn] on file");
        assert_untouched("123 45-6789");
        assert_untouched("points 1 123 45 6789");
        assert_untouched("123 45 6789 12");
        assert_untouched("000 45 6789");
    }

    #[test]
    fn non_ascii_text_is_fine() {
        assert_eq!(scrub("écrire à zoé@exemple.fr"), "écrire à [email]");
        assert_eq!(scrub("info@münchen.de!"), "[email]!");
        assert_untouched("Größe: 42 — naïve café ☕");
    }

    #[test]
    fn in_place() {
        let mut s = String::from("reach me at jane@example.com");
        assert!(scrub_in_place(&mut s));
        assert_eq!(s, "reach me at [email]");
        assert!(!scrub_in_place(&mut s));
    }

    #[test]
    fn random_pieces() {
        assert!(has_random_piece("sk_live_4eC39HqLyjWDarjtT1zdp7dc"));
        assert!(!has_random_piece("how-to-install-rust-2024-edition"));
        assert!(!has_random_piece("es2015-modules"));
        assert!(!has_random_piece("SvgjsLinearGradient10011"));
        assert!(has_random_piece("9b5766c0"));
    }
}
