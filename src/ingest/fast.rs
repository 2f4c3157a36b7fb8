//! A direct reader for the common shape of a batch, in front of the serde decoders.
//!
//! It reads a batch whose every value is of the plain kind the snippet sends (a map of known
//! keys, an array of event maps, numbers, booleans, strings without escapes) straight into the
//! batch vectors, and gives up — returning `None`, never an error — at the first byte it is not
//! sure about: anything else (escapes, a snapshot's `d`, a nested unknown value, a duplicate
//! key, a wrong type, a truncated body, more than [`HARD_MAX_EVENTS`] events …) is decoded again
//! from the start by the serde path, which alone decides errors and their messages. So the
//! accepted language and every refusal stay serde's; what this module must get right is only
//! that a batch it does return is the one serde would return (`decode::tests` checks that
//! differentially over the fuzz seeds, generated batches and mutations of both).
//!
//! Each event is filled into a [`WireEvent`] and turned into what the store keeps by the same
//! [`event_data`] the serde path calls, so validation and scrubbing are untouched.

use std::borrow::Cow;

use super::validate::event_data;
use super::wire::{BoundedEvents, DecodedEvent, WireBatch, WireEvent, HARD_MAX_EVENTS, TYPICAL_EVENTS};

/// What the batch reader needs from a format. Every method returns `None` to give up.
pub(super) trait Reader<'de> {
    /// Enters a map; the state is passed to [`Reader::next_key`].
    fn map(&mut self) -> Option<u32>;
    /// The next key of the map (`Some(None)` at its end). Keys are compared as bytes.
    fn next_key(&mut self, state: &mut u32) -> Option<Option<&'de [u8]>>;
    /// Enters an array: its state and, when the format says, its length.
    fn array(&mut self) -> Option<(u32, Option<usize>)>;
    /// Whether the array has another element.
    fn next_element(&mut self, state: &mut u32) -> Option<bool>;
    /// `null` (absent) or a number, as serde reads it into an `f64`.
    fn opt_f64(&mut self) -> Option<Option<f64>>;
    /// A number as serde reads it into a `u32` (integers in range only).
    fn u32(&mut self) -> Option<u32>;
    fn opt_bool(&mut self) -> Option<Option<bool>>;
    /// `null` (absent) or a string, borrowed from the body.
    fn opt_str(&mut self) -> Option<Option<&'de str>>;
    /// Skips an unknown key's value: only a scalar (a nested value gives up).
    fn skip_scalar(&mut self) -> Option<()>;
    /// The end of the body after the batch.
    fn finish(&mut self) -> Option<()>;
}

/// Reads a whole batch, or `None` when the serde path must decide.
pub(super) fn batch<'de, R: Reader<'de>>(r: &mut R) -> Option<WireBatch<'de>> {
    let mut state = r.map()?;
    let (mut v, mut site, mut vid, mut sid, mut seq, mut sent, mut events) = (None, None, None, None, None, None, None);
    while let Some(key) = r.next_key(&mut state)? {
        match key {
            b"v" => once(&mut v, r.u32()?)?,
            b"site" => once(&mut site, r.opt_str()??)?,
            b"vid" => once(&mut vid, r.opt_str()??)?,
            b"sid" => once(&mut sid, r.opt_str()??)?,
            b"seq" => once(&mut seq, r.u32()?)?,
            b"sent" => once(&mut sent, r.opt_f64()??)?,
            b"events" => once(&mut events, read_events(r)?)?,
            _ => r.skip_scalar()?,
        }
    }
    r.finish()?;
    Some(WireBatch {
        v: v?,
        site: Cow::Borrowed(site?),
        vid: Cow::Borrowed(vid?),
        sid: Cow::Borrowed(sid?),
        seq: seq?,
        sent: sent?,
        events: events?,
    })
}

/// Sets a slot that must not be set yet (serde refuses a key sent twice).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

fn read_events<'de, R: Reader<'de>>(r: &mut R) -> Option<BoundedEvents> {
    let (mut state, len) = r.array()?;
    let hint = len.unwrap_or(TYPICAL_EVENTS);
    if hint > HARD_MAX_EVENTS {
        return None;
    }
    let mut out = BoundedEvents {
        kept: Vec::with_capacity(hint),
        client_t: Vec::with_capacity(hint),
        ..BoundedEvents::default()
    };
    while r.next_element(&mut state)? {
        let mut wire = WireEvent::default();
        read_event(r, &mut wire)?;
        out.push(DecodedEvent { t: wire.t, data: event_data(&mut wire) });
        if out.len() > HARD_MAX_EVENTS {
            return None;
        }
    }
    Some(out)
}

fn read_event<'de, R: Reader<'de>>(r: &mut R, e: &mut WireEvent<'de>) -> Option<()> {
    let mut state = r.map()?;
    while let Some(key) = r.next_key(&mut state)? {
        match key {
            b"k" => text(&mut e.k, r)?,
            b"t" => num(&mut e.t, r)?,
            b"url" => text(&mut e.url, r)?,
            b"ref" => text(&mut e.referrer, r)?,
            b"title" => text(&mut e.title, r)?,
            b"vw" => num(&mut e.vw, r)?,
            b"vh" => num(&mut e.vh, r)?,
            b"dw" => num(&mut e.dw, r)?,
            b"dh" => num(&mut e.dh, r)?,
            b"load_ms" => num(&mut e.load_ms, r)?,
            b"ttfb_ms" => num(&mut e.ttfb_ms, r)?,
            b"spa" => flag(&mut e.spa, r)?,
            b"x" => num(&mut e.x, r)?,
            b"y" => num(&mut e.y, r)?,
            b"sel" => text(&mut e.sel, r)?,
            b"ex" => num(&mut e.ex, r)?,
            b"ey" => num(&mut e.ey, r)?,
            b"dead" => flag(&mut e.dead, r)?,
            b"w" => num(&mut e.w, r)?,
            b"h" => num(&mut e.h, r)?,
            b"len" => num(&mut e.len, r)?,
            b"hidden" => flag(&mut e.hidden, r)?,
            b"msg" => text(&mut e.msg, r)?,
            b"form" => text(&mut e.form, r)?,
            // A document (`snap`, `mut`) is left to serde: it builds the tree.
            b"d" => return None,
            _ => r.skip_scalar()?,
        }
    }
    Some(())
}

// The serde path's slots (`wire::slot`, `wire::text`) refuse a key that is already *set*: a
// first `null` leaves it unset, so a second occurrence is allowed there and here alike.

fn num<'de, R: Reader<'de>>(slot: &mut Option<f64>, r: &mut R) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = r.opt_f64()?;
    Some(())
}

fn flag<'de, R: Reader<'de>>(slot: &mut Option<bool>, r: &mut R) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = r.opt_bool()?;
    Some(())
}

fn text<'de, R: Reader<'de>>(slot: &mut Option<Cow<'de, str>>, r: &mut R) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = r.opt_str()?.map(Cow::Borrowed);
    Some(())
}

/// MessagePack, as `rmp_serde` reads it (see its `any_inner` and `any_num`).
pub(super) struct MsgPack<'de> {
    bytes: &'de [u8],
    at: usize,
}

impl<'de> MsgPack<'de> {
    #[inline]
    pub(super) fn new(bytes: &'de [u8]) -> Self {
        MsgPack { bytes, at: 0 }
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'de [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    #[inline]
    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// The length of a string whose marker is `m`, if it is a string.
    #[inline]
    fn str_len(&mut self, m: u8) -> Option<usize> {
        Some(match m {
            0xa0..=0xbf => (m & 0x1f) as usize,
            0xd9 => self.byte()? as usize,
            0xda => u16::from_be_bytes(self.be()?) as usize,
            0xdb => u32::from_be_bytes(self.be()?) as usize,
            _ => return None,
        })
    }

    /// A number after its marker `m`, as the `f64` visitor gets it; `None` if not a number.
    #[inline]
    fn number(&mut self, m: u8) -> Option<f64> {
        Some(match m {
            0x00..=0x7f => m as f64,
            0xe0..=0xff => m as i8 as f64,
            0xcc => self.byte()? as f64,
            0xcd => u16::from_be_bytes(self.be()?) as f64,
            0xce => u32::from_be_bytes(self.be()?) as f64,
            0xcf => u64::from_be_bytes(self.be()?) as f64,
            0xd0 => i8::from_be_bytes(self.be()?) as f64,
            0xd1 => i16::from_be_bytes(self.be()?) as f64,
            0xd2 => i32::from_be_bytes(self.be()?) as f64,
            0xd3 => i64::from_be_bytes(self.be()?) as f64,
            0xca => f32::from_be_bytes(self.be()?) as f64,
            0xcb => f64::from_be_bytes(self.be()?),
            _ => return None,
        })
    }
}

impl<'de> Reader<'de> for MsgPack<'de> {
    #[inline]
    fn map(&mut self) -> Option<u32> {
        Some(match self.byte()? {
            m @ 0x80..=0x8f => (m & 0x0f) as u32,
            0xde => u16::from_be_bytes(self.be()?) as u32,
            0xdf => u32::from_be_bytes(self.be()?),
            _ => return None,
        })
    }

    #[inline]
    fn next_key(&mut self, left: &mut u32) -> Option<Option<&'de [u8]>> {
        if *left == 0 {
            return Some(None);
        }
        *left -= 1;
        let m = self.byte()?;
        let len = self.str_len(m)?;
        self.take(len).map(Some)
    }

    #[inline]
    fn array(&mut self) -> Option<(u32, Option<usize>)> {
        let len = match self.byte()? {
            m @ 0x90..=0x9f => (m & 0x0f) as u32,
            0xdc => u16::from_be_bytes(self.be()?) as u32,
            0xdd => u32::from_be_bytes(self.be()?),
            _ => return None,
        };
        Some((len, Some(len as usize)))
    }

    #[inline]
    fn next_element(&mut self, left: &mut u32) -> Option<bool> {
        if *left == 0 {
            return Some(false);
        }
        *left -= 1;
        Some(true)
    }

    #[inline]
    fn opt_f64(&mut self) -> Option<Option<f64>> {
        match self.byte()? {
            0xc0 => Some(None),
            m => self.number(m).map(Some),
        }
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        let v: i128 = match self.byte()? {
            m @ 0x00..=0x7f => m.into(),
            0xcc => self.byte()?.into(),
            0xcd => u16::from_be_bytes(self.be()?).into(),
            0xce => u32::from_be_bytes(self.be()?).into(),
            0xcf => u64::from_be_bytes(self.be()?).into(),
            0xd0 => i8::from_be_bytes(self.be()?).into(),
            0xd1 => i16::from_be_bytes(self.be()?).into(),
            0xd2 => i32::from_be_bytes(self.be()?).into(),
            0xd3 => i64::from_be_bytes(self.be()?).into(),
            _ => return None,
        };
        u32::try_from(v).ok()
    }

    #[inline]
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.byte()? {
            0xc0 => Some(None),
            0xc2 => Some(Some(false)),
            0xc3 => Some(Some(true)),
            _ => None,
        }
    }

    #[inline]
    fn opt_str(&mut self) -> Option<Option<&'de str>> {
        match self.byte()? {
            0xc0 => Some(None),
            m => {
                let len = self.str_len(m)?;
                std::str::from_utf8(self.take(len)?).ok().map(Some)
            }
        }
    }

    #[inline]
    fn skip_scalar(&mut self) -> Option<()> {
        match self.byte()? {
            0xc0 | 0xc2 | 0xc3 => Some(()),
            m @ (0xa0..=0xbf | 0xd9..=0xdb) => {
                let len = self.str_len(m)?;
                std::str::from_utf8(self.take(len)?).ok().map(drop)
            }
            m => self.number(m).map(drop),
        }
    }

    #[inline]
    fn finish(&mut self) -> Option<()> {
        // rmp_serde reads one value and leaves whatever follows it.
        Some(())
    }
}

/// JSON, as `serde_json` reads a `&str` (the caller has checked the whole body is UTF-8).
pub(super) struct Json<'de> {
    text: &'de str,
    bytes: &'de [u8],
    at: usize,
}

impl<'de> Json<'de> {
    #[inline]
    pub(super) fn new(text: &'de str) -> Self {
        Json { text, bytes: text.as_bytes(), at: 0 }
    }

    /// The next byte that is not JSON whitespace (not consumed).
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            match b {
                b' ' | b'\n' | b'\t' | b'\r' => self.at += 1,
                _ => return Some(b),
            }
        }
        None
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A string without escapes or control characters, after its opening quote; `&str` because
    /// the whole body is UTF-8 and a quote (ASCII) cannot end a string inside a character.
    #[inline]
    fn string(&mut self) -> Option<&'de str> {
        let start = self.at;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0x00..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        let s = self.text.get(start..self.at)?;
        self.at += 1;
        Some(s)
    }

    /// The characters a JSON number can be made of, from the current byte on.
    #[inline]
    fn number_text(&mut self) -> &'de [u8] {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
        }
        &self.bytes[start..self.at]
    }

    /// A number as serde_json reads it into an `f64`. Up to 15 digits without sign, fraction or
    /// exponent is an integer below 2^53: serde_json reads it as `u64` and converts, exactly.
    /// Any other number text is handed to serde_json itself (its number parser does not depend
    /// on what surrounds the number), which also refuses what it would refuse in place.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let text = self.number_text();
        match text {
            [] => None,
            [b'0'] => Some(0.0),
            [b'1'..=b'9', ..] if text.len() <= 15 && text.iter().all(u8::is_ascii_digit) => {
                Some(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64)
            }
            _ => serde_json::from_slice::<f64>(text).ok(),
        }
    }
}

impl<'de> Reader<'de> for Json<'de> {
    #[inline]
    fn map(&mut self) -> Option<u32> {
        self.eat(b'{')?;
        Some(0)
    }

    #[inline]
    fn next_key(&mut self, seen: &mut u32) -> Option<Option<&'de [u8]>> {
        match self.peek()? {
            b'}' => {
                self.at += 1;
                return Some(None);
            }
            b',' if *seen > 0 => {
                self.at += 1;
                self.eat(b'"')?;
            }
            b'"' if *seen == 0 => self.at += 1,
            _ => return None,
        }
        *seen = 1;
        let key = self.string()?;
        self.eat(b':')?;
        Some(Some(key.as_bytes()))
    }

    #[inline]
    fn array(&mut self) -> Option<(u32, Option<usize>)> {
        self.eat(b'[')?;
        Some((0, None))
    }

    #[inline]
    fn next_element(&mut self, seen: &mut u32) -> Option<bool> {
        match self.peek()? {
            b']' => {
                self.at += 1;
                return Some(false);
            }
            b',' if *seen > 0 => self.at += 1,
            _ if *seen == 0 => {}
            _ => return None,
        }
        *seen = 1;
        Some(true)
    }

    #[inline]
    fn opt_f64(&mut self) -> Option<Option<f64>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'-' | b'0'..=b'9' => self.number().map(Some),
            _ => None,
        }
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        self.peek()?;
        match self.number_text() {
            [b'0'] => Some(0),
            text @ [b'1'..=b'9', ..] if text.len() <= 10 && text.iter().all(u8::is_ascii_digit) => {
                u32::try_from(text.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))).ok()
            }
            _ => None,
        }
    }

    #[inline]
    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b't' => self.literal(b"true").map(|()| Some(true)),
            b'f' => self.literal(b"false").map(|()| Some(false)),
            _ => None,
        }
    }

    #[inline]
    fn opt_str(&mut self) -> Option<Option<&'de str>> {
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'"' => {
                self.at += 1;
                self.string().map(Some)
            }
            _ => None,
        }
    }

    #[inline]
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'"' => {
                self.at += 1;
                self.string().map(drop)
            }
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }

    #[inline]
    fn finish(&mut self) -> Option<()> {
        // serde_json's `end`: nothing but whitespace after the batch.
        self.peek().is_none().then_some(())
    }
}
