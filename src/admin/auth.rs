//! Who is calling the admin API: the source address (the socket peer, or the forwarded-for
//! address when the peer is a proxy the operator listed), the Bearer token and its scope, and
//! the per-address limit on failed authentication.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// Failed authentications one address may make in a window before it is refused unread (429).
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses the limiter keeps at most (the oldest windows go first beyond it).
pub const MAX_TRACKED: usize = 65_536;
/// While an address is throttled, one audit entry is written per this many refused requests.
pub const BURST_LOG_EVERY: u64 = 100;

/// The limits on failed authentication.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    pub max_failures: u32,
    pub window: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits { max_failures: MAX_FAILURES, window: WINDOW }
    }
}

/// The client address: `peer`, unless `peer` is one of `trusted` proxies and sent
/// `X-Forwarded-For`; then the right-most address in it that is not a trusted proxy.
pub fn source(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

/// The token of an `Authorization: Bearer …` header; `None` when there is none or it is another
/// scheme (galley takes tokens from that header only, never from the query string).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    failures: u32,
    refused: u64,
}

/// Failed authentications per address within the current window.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: AuthLimits,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

/// A request from a throttled address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Requests refused unread in this window so far, this one included.
    pub refused: u64,
    /// Seconds until the window ends.
    pub retry_after: u64,
    /// Whether this one is to be written to the audit log (the first, then every
    /// [`BURST_LOG_EVERY`]th).
    pub log: bool,
}

impl Limiter {
    pub fn new(limits: AuthLimits) -> Limiter {
        Limiter { limits, windows: Mutex::new(HashMap::new()) }
    }

    pub fn limits(&self) -> AuthLimits {
        self.limits
    }

    /// Whether `ip` is over the limit at `now`; counts the refusal when it is.
    pub fn check(&self, ip: IpAddr, now: u64) -> Option<Throttled> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.get_mut(&ip)?;
        let end = w.start + self.limits.window.as_secs();
        if now >= end {
            windows.remove(&ip);
            return None;
        }
        if w.failures < self.limits.max_failures {
            return None;
        }
        w.refused += 1;
        Some(Throttled { refused: w.refused, retry_after: end - now, log: w.refused == 1 || w.refused % BURST_LOG_EVERY == 0 })
    }

    /// Count a failed authentication from `ip` at `now`; its number in the window.
    pub fn fail(&self, ip: IpAddr, now: u64) -> u32 {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.limits.window.as_secs();
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&ip) {
            windows.retain(|_, w| now < w.start + window);
            if windows.len() >= MAX_TRACKED
                && let Some(oldest) = windows.iter().min_by_key(|(_, w)| w.start).map(|(ip, _)| *ip)
            {
                windows.remove(&oldest);
            }
        }
        let w = windows.entry(ip).or_insert(Window { start: now, failures: 0, refused: 0 });
        if now >= w.start + window {
            *w = Window { start: now, failures: 0, refused: 0 };
        }
        w.failures += 1;
        w.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_listed_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(source(ip("127.0.0.1"), &headers, &proxies), ip("127.0.0.1"), "an unlisted peer forges nothing");
        assert_eq!(source(ip("10.0.0.1"), &headers, &proxies), ip("203.0.113.9"));
        headers.insert("x-forwarded-for", "junk".parse().unwrap());
        assert_eq!(source(ip("10.0.0.1"), &headers, &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn bearer_is_the_only_scheme() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(AUTHORIZATION, "Bearer glt_x".parse().unwrap());
        assert_eq!(bearer(&headers), Some("glt_x"));
    }

    #[test]
    fn an_address_is_throttled_after_the_limit_until_the_window_ends() {
        let l = Limiter::new(AuthLimits { max_failures: 3, window: Duration::from_secs(60) });
        let a = ip("127.0.0.2");
        for n in 1..=3 {
            assert_eq!(l.check(a, 100), None);
            assert_eq!(l.fail(a, 100), n);
        }
        let first = l.check(a, 110).unwrap();
        assert_eq!((first.refused, first.retry_after, first.log), (1, 50, true));
        assert!(!l.check(a, 110).unwrap().log);
        assert_eq!(l.check(ip("127.0.0.3"), 110), None, "another address is not throttled");
        assert_eq!(l.check(a, 160), None, "the window ended");
    }
}
