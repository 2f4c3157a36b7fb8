//! Pseudonymous visitor keys: `HMAC-SHA256(server secret, site ‖ vid)`, so stored data never
//! holds a raw visitor id and keys of two sites cannot be joined.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::{Id128, VisitorKey};

/// The server's HMAC secret (32 random bytes, generated once into the data folder).
#[derive(Clone)]
pub struct VisitorKeyer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for VisitorKeyer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorKeyer(..)")
    }
}

impl VisitorKeyer {
    pub fn new(secret: &[u8]) -> Self {
        Self { mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length") }
    }

    pub fn key(&self, site: &str, vid: &Id128) -> VisitorKey {
        let mut mac = self.mac.clone();
        mac.update(site.as_bytes());
        mac.update(&[0]); // separator: site ids never contain NUL
        mac.update(&vid.0);
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        VisitorKey(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_site_and_secret() {
        let vid = Id128([7; 16]);
        let a = VisitorKeyer::new(b"secret-a");
        assert_eq!(a.key("s1", &vid), a.key("s1", &vid));
        assert_ne!(a.key("s1", &vid), a.key("s2", &vid));
        assert_ne!(a.key("s1", &vid), VisitorKeyer::new(b"secret-b").key("s1", &vid));
        assert_ne!(a.key("s1", &vid).0, vid.0);
    }
}
