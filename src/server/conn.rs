//! What keeps idle sockets from holding connection slots: a per-address connection cap, and a
//! watchdog per connection that closes it when the first request is late (protocol detection,
//! TLS handshake and request head included) or when no request has been in flight for the idle
//! timeout — on HTTP/1.1 keep-alive and HTTP/2 alike, however many PINGs the client answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// Open connections per client address (an IPv6 client counts by its /64).
pub struct PerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it frees the slot.
pub struct Slot {
    owner: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max, open: Mutex::new(HashMap::new()) })
    }

    /// A slot for `ip`, or `None` when that address already has `max` connections open.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = crate::server::ratelimit::address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot { owner: self.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Request activity on one connection, shared by its service and its watchdog.
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `started` when the last request ended (or began).
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Marks a request as started; it counts as in flight until the guard (carried by the
    /// response body) is dropped, i.e. until the whole response has been sent or abandoned.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.last_ms.store(self.now_ms(), Ordering::Release);
        RequestGuard(self.clone())
    }

    /// Has any request arrived on this connection?
    pub fn served_any(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// Resolves when the connection should be closed: no request within `first` of the
    /// connection opening, or nothing in flight for `idle`. Wakes only when a deadline could
    /// have passed, not on a fixed tick.
    pub async fn expired(&self, first: Duration, idle: Duration) {
        let (first, idle) = (first.as_millis() as u64, idle.as_millis() as u64);
        loop {
            let now = self.now_ms();
            let due = if self.requests.load(Ordering::Relaxed) == 0 {
                first
            } else if self.in_flight.load(Ordering::Acquire) > 0 {
                now + idle // look again once this request could have gone idle
            } else {
                self.last_ms.load(Ordering::Acquire) + idle
            };
            if due <= now {
                return;
            }
            tokio::time::sleep(Duration::from_millis(due - now)).await;
        }
    }
}

pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request "in flight" until it is fully sent.
pub struct TrackedBody {
    inner: Full<Bytes>,
    _guard: RequestGuard,
}

impl TrackedBody {
    pub fn new(inner: Full<Bytes>, guard: RequestGuard) -> Self {
        Self { inner, _guard: guard }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_per_address_and_frees_on_drop() {
        let cap = PerAddress::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let (s1, _s2) = (cap.acquire(a).unwrap(), cap.acquire(a).unwrap());
        assert!(cap.acquire(a).is_none());
        assert!(cap.acquire("192.0.2.2".parse().unwrap()).is_some());
        drop(s1);
        assert!(cap.acquire(a).is_some());
        // One IPv6 /64 is one address.
        let cap = PerAddress::new(1);
        let _x = cap.acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(cap.acquire("2001:db8::ffff:2".parse().unwrap()).is_none());
        assert!(cap.acquire("2001:db8:0:1::1".parse().unwrap()).is_some());
    }
}
