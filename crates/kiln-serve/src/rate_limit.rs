//! Per-client token buckets: requests per minute and tokens per minute. A bucket holds a
//! minute's allowance and refills continuously; a request that does not fit is refused
//! with the wait until it would (429 + Retry-After).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::ClientId;
use crate::openai::error::ApiError;
use crate::options::RateLimits;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    level: f64,
    per_second: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: f64, now: Instant) -> Self {
        Self {
            capacity: per_minute,
            level: per_minute,
            per_second: per_minute / 60.0,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// How long until `amount` fits (zero if it does now).
    fn wait_for(&self, amount: f64) -> Duration {
        if self.level >= amount {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((amount - self.level) / self.per_second)
    }
}

#[derive(Debug, Default)]
struct ClientBuckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: RateLimits,
    clients: Mutex<HashMap<ClientId, ClientBuckets>>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            clients: Mutex::default(),
        }
    }

    /// Admits one request costing `tokens` for `client`, or says how long to wait.
    pub fn check(&self, client: &ClientId, tokens: u64) -> Result<(), ApiError> {
        self.check_at(client, tokens, Instant::now())
    }

    fn check_at(&self, client: &ClientId, tokens: u64, now: Instant) -> Result<(), ApiError> {
        let (rpm, tpm) = (
            self.limits.requests_per_minute,
            self.limits.tokens_per_minute,
        );
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        if let Some(tpm) = tpm.filter(|&t| tokens > t) {
            return Err(ApiError::rate_limited(
                format!(
                    "Request too large: it needs up to {tokens} tokens (prompt plus max_tokens \
                     per choice) but the limit is {tpm} tokens per minute. Lower max_tokens."
                ),
                60,
            ));
        }
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| ApiError::internal("rate limiter lock poisoned"))?;
        let c = clients.entry(client.clone()).or_default();
        let mut req_wait = Duration::ZERO;
        if let Some(r) = rpm {
            let b = c.requests.get_or_insert_with(|| Bucket::new(r as f64, now));
            b.refill(now);
            req_wait = b.wait_for(1.0);
        }
        let mut tok_wait = Duration::ZERO;
        if let Some(t) = tpm {
            let b = c.tokens.get_or_insert_with(|| Bucket::new(t as f64, now));
            b.refill(now);
            tok_wait = b.wait_for(tokens as f64);
        }
        let wait = req_wait.max(tok_wait);
        if !wait.is_zero() {
            let which = if req_wait >= tok_wait {
                format!("{} requests", rpm.unwrap_or(0))
            } else {
                format!("{} tokens", tpm.unwrap_or(0))
            };
            return Err(ApiError::rate_limited(
                format!(
                    "Rate limit reached: {which} per minute. Please try again in {:.1} s.",
                    wait.as_secs_f64()
                ),
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        if let Some(b) = c.requests.as_mut() {
            b.level -= 1.0;
        }
        if let Some(b) = c.tokens.as_mut() {
            b.level -= tokens as f64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_then_refill() {
        let lim = RateLimiter::new(RateLimits {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(100),
        });
        let (a, b) = (ClientId("a".into()), ClientId("b".into()));
        let t0 = Instant::now();
        assert!(lim.check_at(&a, 10, t0).is_ok());
        assert!(lim.check_at(&a, 10, t0).is_ok());
        let e = lim.check_at(&a, 10, t0).unwrap_err();
        assert_eq!(e.status.as_u16(), 429);
        assert_eq!(e.retry_after, Some(30));
        assert!(
            lim.check_at(&b, 90, t0).is_ok(),
            "clients have their own buckets"
        );
        let e = lim.check_at(&b, 20, t0).unwrap_err();
        assert!(e.message.contains("100 tokens"), "{}", e.message);
        assert!(lim.check_at(&a, 10, t0 + Duration::from_secs(30)).is_ok());
        assert!(lim.check_at(&a, 1000, t0).is_err());
    }
}
