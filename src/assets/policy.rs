//! What the collector may fetch for a site: only URLs of the site's own asset origins, and
//! never private, loopback, link-local or otherwise non-public addresses unless the site says
//! its assets live there (`assets_private`). This is the SSRF guard; the fetcher applies the
//! address rule again to every address a name resolves to, at connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

use crate::model::SiteSettings;

/// A site's capture rules, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `scheme://host[:port]`, lower case; empty: nothing is captured for the site.
    pub origins: Vec<String>,
    pub private_ok: bool,
}

impl Policy {
    /// The site's `asset_origins`, else its `origins` (without `"*"`: a site that accepts any
    /// origin names none it owns, so nothing is fetched for it unless `asset_origins` is set).
    pub fn of(site: &SiteSettings) -> Self {
        let list = site.asset_origins.as_ref().unwrap_or(&site.origins);
        let origins =
            list.iter().filter(|o| o.as_str() != "*").map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        Self { origins, private_ok: site.assets_private }
    }

    pub fn captures_anything(&self) -> bool {
        !self.origins.is_empty()
    }

    /// Whether `url` may be fetched: http(s), one of the site's origins, no credentials, and
    /// (when the host is an address) a public one.
    pub fn allows(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        let origin = url.origin().ascii_serialization();
        if !self.origins.contains(&origin) {
            return false;
        }
        match url.host() {
            Some(url::Host::Ipv4(a)) => self.address_ok(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => self.address_ok(IpAddr::V6(a)),
            Some(url::Host::Domain(d)) => self.private_ok || !d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
    }

    pub fn address_ok(&self, ip: IpAddr) -> bool {
        self.private_ok || is_public(ip)
    }
}

/// True for globally routable unicast addresses.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => public_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(a),
        },
    }
}

fn public_v4(a: Ipv4Addr) -> bool {
    let [x, y, ..] = a.octets();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_multicast()
        || x == 0
        || (x == 100 && (64..128).contains(&y)) // carrier-grade NAT
        || (x == 192 && y == 0 && a.octets()[2] == 0) // IETF protocol assignments
        || (x == 198 && (18..20).contains(&y)) // benchmarking
        || x >= 240)
}

fn public_v6(a: Ipv6Addr) -> bool {
    let s = a.segments();
    !(a.is_unspecified()
        || a.is_loopback()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] & 0xffc0) == 0xfec0 // site local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 (embeds v4)
        || s[0] == 0x2002 // 6to4 (embeds v4)
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0))
    // v4-compatible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(origins: &[&str], asset_origins: Option<&[&str]>, private: bool) -> SiteSettings {
        SiteSettings {
            id: "s".into(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            keep_titles: false,
            allowed_params: vec![],
            retention_days: 30,
            asset_origins: asset_origins.map(|l| l.iter().map(|s| s.to_string()).collect()),
            assets_private: private,
            mask_text: Default::default(),
            replay_canvas: false,
        }
    }

    fn allows(p: &Policy, u: &str) -> bool {
        p.allows(&Url::parse(u).unwrap())
    }

    #[test]
    fn only_the_sites_own_origins() {
        let p = Policy::of(&site(&["https://shop.example"], None, false));
        assert!(allows(&p, "https://shop.example/a.css"));
        assert!(allows(&p, "https://SHOP.example:443/a.css"));
        assert!(!allows(&p, "http://shop.example/a.css"), "another scheme is another origin");
        assert!(!allows(&p, "https://evil.example/a.css"));
        assert!(!allows(&p, "https://shop.example.evil.example/a.css"));
        assert!(!allows(&p, "https://user:pw@shop.example/a.css"));
        let any = Policy::of(&site(&["*"], None, false));
        assert!(!any.captures_anything() && !allows(&any, "https://shop.example/a.css"));
        let cdn = Policy::of(&site(&["*"], Some(&["https://cdn.example"]), false));
        assert!(allows(&cdn, "https://cdn.example/x.png"));
    }

    #[test]
    fn no_private_or_loopback_address_unless_the_site_says_so() {
        let origins = [
            "http://127.0.0.1:8080",
            "http://10.1.2.3",
            "http://[::1]:9000",
            "http://169.254.169.254",
            "http://localhost:80",
            "http://[::ffff:127.0.0.1]",
        ];
        let p = Policy::of(&site(&origins, None, false));
        for o in origins {
            assert!(!allows(&p, &format!("{o}/x.css")), "{o}");
        }
        let ok = Policy::of(&site(&origins, None, true));
        assert!(allows(&ok, "http://127.0.0.1:8080/x.css"));
        for ip in [
            "100.64.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "fd00::1",
            "fe80::1",
            "::",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
