//! ClickHouse's `RowBinary` input format, written by hand: little-endian numbers, strings as
//! LEB128 length + bytes, `FixedString(N)` as N bytes, arrays as LEB128 length + elements,
//! `Date` as u16 days since 1970-01-01. A row is its columns in the order of the INSERT.

#[derive(Default)]
pub struct Rows {
    pub buf: Vec<u8>,
}

impl Rows {
    pub fn uvarint(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn fixed(&mut self, b: &[u8; 16]) {
        self.buf.extend_from_slice(b);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `Date`: days since the epoch, clamped to its range.
    pub fn date(&mut self, day: i32) {
        self.u16(day.clamp(0, u16::MAX as i32) as u16);
    }

    /// An `Array(T)`.
    pub fn array<T>(&mut self, items: impl ExactSizeIterator<Item = T>, mut each: impl FnMut(&mut Self, T)) {
        self.uvarint(items.len() as u64);
        for item in items {
            each(self, item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_strings() {
        let mut r = Rows::default();
        r.uvarint(300);
        r.str("ab");
        r.array([1u16, 2].into_iter(), |r, v| r.u16(v));
        assert_eq!(r.buf, [0xac, 0x02, 2, b'a', b'b', 2, 1, 0, 2, 0]);
    }
}
