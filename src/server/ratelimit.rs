//! Per-client token buckets kept in memory only (the IP is never stored or logged), for
//! `/collect` and the visitor-rights endpoints. The client is the address `server::client`
//! resolved (behind a trusted proxy: the visitor, not the proxy); an IPv6 client counts by its
//! /64, since one host usually holds a whole /64.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed limiter; `None` quota means unlimited.
pub struct IpLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl IpLimiter {
    /// `per_second` sustained with bursts of `burst`; 0 disables the limit.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        let quota = NonZeroU32::new(per_second)
            .map(|r| Quota::per_second(r).allow_burst(NonZeroU32::new(burst.max(per_second)).unwrap_or(r)));
        Self::new(quota)
    }

    /// `per_minute` sustained with bursts of `burst`; 0 disables the limit.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        let quota = NonZeroU32::new(per_minute)
            .map(|r| Quota::per_minute(r).allow_burst(NonZeroU32::new(burst.max(1)).unwrap_or(r)));
        Self::new(quota)
    }

    fn new(quota: Option<Quota>) -> Self {
        Self { limiter: quota.map(RateLimiter::keyed), clock: DefaultClock::default() }
    }

    /// `Ok` when `ip` may proceed, else the whole seconds to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), u32> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&address_key(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            (wait.as_secs_f64().ceil() as u32).max(1)
        })
    }

    /// Forgets idle addresses so memory stays bounded; call periodically.
    pub fn prune(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The key one client is counted under: IPv4 as is (mapped IPv6 included), IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_with_a_wait() {
        let l = IpLimiter::per_minute(2, 2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_ok());
        let wait = l.check(ip).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(l.check("10.0.0.2".parse().unwrap()).is_ok());
        assert!(IpLimiter::per_second(0, 0).check(ip).is_ok());
        let l = IpLimiter::per_minute(1, 1);
        assert!(l.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(l.check("2001:db8::2:1".parse().unwrap()).is_err(), "one /64 is one client");
        assert!(l.check("::ffff:10.0.0.1".parse().unwrap()).is_ok());
        assert!(l.check("10.0.0.1".parse().unwrap()).is_err(), "mapped IPv4 is the same client");
    }
}

/// Runs until aborted: forgets idle addresses of the server's limiters, so that their memory
/// follows the addresses seen lately, not all seen since start.
pub async fn prune(app: std::sync::Arc<crate::app::App>) {
    let mut tick = tokio::time::interval(app.config.retention.interval);
    loop {
        tick.tick().await;
        app.collect_limiter.prune();
        app.visitor_limiter.prune();
        app.auth_throttle.prune();
    }
}

/// Failed bearer attempts per client address: after [`AuthThrottle::MAX_FAILURES`] wrong tokens
/// within a window, the address gets 429 for the rest of the window, right token or not, so a
/// token cannot be guessed at network speed.
#[derive(Default)]
pub struct AuthThrottle {
    failures: std::sync::Mutex<std::collections::HashMap<IpAddr, (u32, std::time::Instant)>>,
}

impl AuthThrottle {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
    /// Most addresses remembered; beyond it the oldest windows are forgotten first.
    const MAX_ADDRESSES: usize = 100_000;

    /// `Err(seconds)` while `ip` is shut out.
    pub fn check(&self, ip: IpAddr) -> Result<(), u32> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&ip) {
            Some((n, since)) if *n >= Self::MAX_FAILURES && since.elapsed() < Self::WINDOW => {
                Err((Self::WINDOW - since.elapsed()).as_secs() as u32 + 1)
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= Self::MAX_ADDRESSES {
            failures.retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
        }
        let entry = failures.entry(ip).or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= Self::WINDOW {
            *entry = (0, std::time::Instant::now());
        }
        entry.0 += 1;
    }

    pub fn prune(&self) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (_, since)| since.elapsed() < Self::WINDOW);
    }
}
