//! Per-client rate limits (SPEC §6): each client (an access token's subject) on `/v1`, and
//! each client id and each remote address on `/auth/tokens`, may make so many requests per
//! second, in bursts of as many. A request over its limit is answered 429 with
//! `Retry-After`, before any work is done for it — on the token endpoint, before the slow
//! secret check that a flood would otherwise queue up for everyone.
//!
//! Each limit is a generic cell rate algorithm ([`RateLimiter`]): per key, one instant, the
//! "theoretical arrival time" at which the key's bucket would be full again. Keys are
//! hashed with a per-process random seed, so memory per key is fixed whatever a caller
//! sends as a client id, and keys whose bucket is full again are pruned.
//!
//! Answers carry the IETF `RateLimit-Policy` and `RateLimit` fields
//! (draft-ietf-httpapi-ratelimit-headers): the policy's quota and window, and what is left
//! of it with the seconds until it is whole again.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Every limit's window: quotas are per second.
const WINDOW: Duration = Duration::from_secs(1);

/// Independent locks per limiter, so concurrent requests of different clients rarely meet.
const SHARDS: usize = 16;

/// A shard is pruned of full buckets once it holds this many keys (and then again once it
/// has doubled since).
const PRUNE_FLOOR: usize = 1024;

pub static RATE_LIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub static RATE_LIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead: `remaining` more requests fit now, and the bucket is whole again in `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Over the limit: one more request fits in `retry_after`. Nothing was counted.
    Limited { retry_after: Duration },
}

/// A verdict with the policy it came from, as the headers and the 429 problem tell it.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub policy: &'static str,
    pub per_second: u32,
    pub verdict: Verdict,
}

impl Quota {
    pub fn is_limited(&self) -> bool {
        matches!(self.verdict, Verdict::Limited { .. })
    }

    /// Whole seconds to wait before retrying (at least 1), for `Retry-After`.
    pub fn retry_after_seconds(&self) -> u64 {
        match self.verdict {
            Verdict::Limited { retry_after } => whole_seconds(retry_after).max(1),
            Verdict::Allowed { .. } => 0,
        }
    }

    /// Adds `RateLimit-Policy` and `RateLimit` (and `Retry-After` when limited).
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let (remaining, reset) = match self.verdict {
            Verdict::Allowed { remaining, reset } => (remaining, whole_seconds(reset)),
            Verdict::Limited { .. } => (0, self.retry_after_seconds()),
        };
        let policy = format!(
            "\"{}\";q={};w={}",
            self.policy,
            self.per_second,
            WINDOW.as_secs()
        );
        let state = format!("\"{}\";r={remaining};t={reset}", self.policy);
        for (name, value) in [(&RATE_LIMIT_POLICY, policy), (&RATE_LIMIT, state)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name.clone(), value);
            }
        }
        if self.is_limited() {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_seconds()),
            );
        }
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_nanos().div_ceil(1_000_000_000) as u64
}

/// One limit: `per_second` requests per key per second, in bursts of as many.
pub struct RateLimiter {
    policy: &'static str,
    per_second: u32,
    /// Time one request uses up of the window, in nanoseconds.
    cost: u64,
    origin: Instant,
    seed: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    /// Per hashed key: when its bucket is whole again, in nanoseconds since `origin`.
    full_at: HashMap<u64, u64>,
    prune_at: usize,
}

impl RateLimiter {
    /// A limit named `policy` (as the headers show it); `None` when `per_second` is 0 (off).
    pub fn new(policy: &'static str, per_second: u32) -> Option<Self> {
        (per_second > 0).then(|| RateLimiter {
            policy,
            per_second,
            cost: window_nanos() / u64::from(per_second),
            origin: Instant::now(),
            seed: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        })
    }

    /// Counts one request of `key` if it fits.
    pub fn check(&self, key: impl Hash) -> Quota {
        self.check_at(key, self.origin.elapsed())
    }

    fn check_at(&self, key: impl Hash, elapsed: Duration) -> Quota {
        let now = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let hashed = self.seed.hash_one(key);
        let shard = &self.shards[(hashed % SHARDS as u64) as usize];
        // A panic while holding the lock cannot leave a shard half-written: recover it.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let full_at = shard.full_at.get(&hashed).copied().unwrap_or(now).max(now);
        let after = full_at.saturating_add(self.cost);
        let window = window_nanos();
        let verdict = if after - now > window {
            Verdict::Limited {
                retry_after: Duration::from_nanos(after - window - now),
            }
        } else {
            shard.full_at.insert(hashed, after);
            if shard.full_at.len() >= shard.prune_at.max(PRUNE_FLOOR) {
                shard.full_at.retain(|_, full_at| *full_at > now);
                shard.prune_at = 2 * shard.full_at.len();
            }
            Verdict::Allowed {
                remaining: u32::try_from((window - (after - now)) / self.cost).unwrap_or(u32::MAX),
                reset: Duration::from_nanos(after - now),
            }
        };
        Quota {
            policy: self.policy,
            per_second: self.per_second,
            verdict,
        }
    }
}

fn window_nanos() -> u64 {
    WINDOW.as_nanos() as u64
}

/// The service's limits, as configured (`None`: off).
pub struct RateLimits {
    /// `/v1`, per token subject.
    pub per_client: Option<RateLimiter>,
    /// `/auth/tokens`, per `client_id` asked for.
    pub tokens_per_client_id: Option<RateLimiter>,
    /// `/auth/tokens`, per remote address.
    pub tokens_per_address: Option<RateLimiter>,
}

impl RateLimits {
    pub fn new(options: &crate::config::RateLimitOptions) -> Self {
        RateLimits {
            per_client: RateLimiter::new("per-client", options.rate_limit),
            tokens_per_client_id: RateLimiter::new("token-per-client-id", options.token_rate_limit),
            tokens_per_address: RateLimiter::new("token-per-address", options.token_rate_limit),
        }
    }

    /// Counts a `/v1` request of `client`.
    pub fn client(&self, client: uuid::Uuid) -> Option<Quota> {
        self.per_client.as_ref().map(|limit| limit.check(client))
    }

    /// Counts a token request from `address`. IPv6 addresses count per /64, the block one
    /// host is usually given, so a host cannot step around its limit by changing address.
    pub fn token_address(&self, address: IpAddr) -> Option<Quota> {
        let key = match address {
            IpAddr::V4(v4) => u128::from(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => u128::from(v4.to_bits()),
                None => v6.to_bits() & !u128::from(u64::MAX),
            },
        };
        self.tokens_per_address
            .as_ref()
            .map(|limit| limit.check(key))
    }

    /// Counts a token request for `client_id` — the id it names, however spelt (a UUID
    /// has many spellings: case, hyphens, braces, `urn:uuid:`), so that one client cannot
    /// be given many buckets; ids that are no UUID share one bucket.
    pub fn token_client_id(&self, client_id: &str) -> Option<Quota> {
        let key = uuid::Uuid::parse_str(client_id).ok();
        self.tokens_per_client_id
            .as_ref()
            .map(|limit| limit.check(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn allowed(quota: Quota) -> u32 {
        match quota.verdict {
            Verdict::Allowed { remaining, .. } => remaining,
            Verdict::Limited { retry_after } => panic!("limited; retry after {retry_after:?}"),
        }
    }

    #[test]
    fn a_burst_of_the_quota_passes_and_the_next_request_waits_its_share_of_the_window() {
        let limit = RateLimiter::new("test", 10).unwrap();
        for expected_remaining in (0..10).rev() {
            assert_eq!(allowed(limit.check_at("a", at(0))), expected_remaining);
        }
        match limit.check_at("a", at(0)).verdict {
            Verdict::Limited { retry_after } => assert_eq!(retry_after, at(100)),
            other => panic!("{other:?}"),
        }
        // A refused request is not counted: one fits as soon as a tenth of a second passed.
        assert_eq!(allowed(limit.check_at("a", at(100))), 0);
        assert!(limit.check_at("a", at(150)).is_limited());
        // After a whole window the burst is whole again.
        assert_eq!(allowed(limit.check_at("a", at(1200))), 9);
    }

    #[test]
    fn keys_do_not_share_a_bucket() {
        let limit = RateLimiter::new("test", 2).unwrap();
        allowed(limit.check_at("a", at(0)));
        allowed(limit.check_at("a", at(0)));
        assert!(limit.check_at("a", at(0)).is_limited());
        assert_eq!(allowed(limit.check_at("b", at(0))), 1);
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_never_refused() {
        let limit = RateLimiter::new("test", 50).unwrap();
        for request in 0..500u64 {
            allowed(limit.check_at("steady", at(request * 20)));
        }
    }

    #[test]
    fn zero_turns_a_limit_off() {
        assert!(RateLimiter::new("off", 0).is_none());
    }

    #[test]
    fn full_buckets_are_pruned_so_memory_follows_recent_keys_only() {
        let limit = RateLimiter::new("test", 1000).unwrap();
        for key in 0..100_000u64 {
            // Each key's bucket is whole again 1 ms after its request: all but the
            // latest few are prunable.
            limit.check_at(key, Duration::from_millis(key));
        }
        let kept: usize = limit
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap().full_at.len())
            .sum();
        assert!(kept < SHARDS * PRUNE_FLOOR, "{kept} keys kept");
    }

    #[test]
    fn headers_follow_the_ietf_draft() {
        let limit = RateLimiter::new("per-client", 2).unwrap();
        let mut headers = HeaderMap::new();
        limit.check_at("a", at(0)).write_headers(&mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"per-client\";q=2;w=1");
        assert_eq!(headers["ratelimit"], "\"per-client\";r=1;t=1");
        assert!(headers.get("retry-after").is_none());
        limit.check_at("a", at(0));
        let mut headers = HeaderMap::new();
        limit.check_at("a", at(0)).write_headers(&mut headers);
        assert_eq!(headers["ratelimit"], "\"per-client\";r=0;t=1");
        assert_eq!(headers["retry-after"], "1");
    }

    #[test]
    fn addresses_count_per_ipv4_host_and_per_ipv6_64() {
        let limits = RateLimits::new(&crate::config::RateLimitOptions {
            rate_limit: 0,
            token_rate_limit: 1,
        });
        let address = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(!limits
            .token_address(address("2001:db8::1"))
            .unwrap()
            .is_limited());
        assert!(limits
            .token_address(address("2001:db8::2"))
            .unwrap()
            .is_limited());
        assert!(!limits
            .token_address(address("2001:db8:0:1::1"))
            .unwrap()
            .is_limited());
        assert!(!limits
            .token_address(address("192.0.2.1"))
            .unwrap()
            .is_limited());
        assert!(limits
            .token_address(address("::ffff:192.0.2.1"))
            .unwrap()
            .is_limited());
        assert!(!limits
            .token_address(address("192.0.2.2"))
            .unwrap()
            .is_limited());
        assert!(limits.client(uuid::Uuid::nil()).is_none(), "off");
    }

    #[test]
    fn every_spelling_of_a_client_id_counts_against_one_bucket() {
        let limits = RateLimits::new(&crate::config::RateLimitOptions {
            rate_limit: 0,
            token_rate_limit: 2,
        });
        let id = uuid::Uuid::now_v7();
        let spellings = [
            id.to_string(),
            id.to_string().to_uppercase(),
            id.simple().to_string(),
            id.urn().to_string(),
        ];
        let limited = spellings
            .iter()
            .filter(|spelling| {
                limits
                    .token_client_id(spelling)
                    .is_some_and(|quota| quota.is_limited())
            })
            .count();
        assert_eq!(limited, 2, "two requests fit, whatever the spelling");
        assert!(!limits.token_client_id("not a uuid").unwrap().is_limited());
        assert!(!limits
            .token_client_id("another non-uuid")
            .unwrap()
            .is_limited());
        assert!(
            limits.token_client_id("a third").unwrap().is_limited(),
            "non-UUIDs share a bucket"
        );
    }
}
