//! Bearer tokens (from a file) and a per-client request rate limit.

use super::status::{Code, Reply, Status};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// Token → the models it may use (`None`: every model).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    tokens: HashMap<String, Option<Vec<String>>>,
}

impl Tokens {
    /// One token per line, optionally followed by the comma-separated models it may use
    /// (`TOKEN model_a,model_b`); no models or `*`: all. `#` starts a comment.
    pub fn read(path: &Path) -> Result<Tokens> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        let mut tokens = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut parts = line.split_whitespace();
            let Some(token) = parts.next() else {
                continue;
            };
            let models = match parts.next() {
                None | Some("*") => None,
                Some(list) => Some(list.split(',').map(str::to_string).collect()),
            };
            tokens.insert(token.to_string(), models);
        }
        if tokens.is_empty() {
            return Err(Error::Usage(format!("{}: no tokens", path.display())));
        }
        Ok(Tokens { tokens })
    }

    /// Checks an `Authorization` header value for `model` (`None`: a call naming no model).
    pub fn check(&self, header: Option<&str>, model: Option<&str>) -> Reply<()> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| Status::new(Code::Unauthenticated, "missing bearer token"))?;
        let allowed = self
            .tokens
            .get(token)
            .ok_or_else(|| Status::new(Code::Unauthenticated, "unknown bearer token"))?;
        match (allowed, model) {
            (Some(models), Some(m)) if !models.iter().any(|x| x == m) => Err(Status::new(
                Code::PermissionDenied,
                format!("this token may not use model '{m}'"),
            )),
            _ => Ok(()),
        }
    }
}

/// A token bucket per client: `rate` requests a second, bursts of as many.
pub struct RateLimit {
    rate: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Clients remembered at most; past it, full buckets are forgotten.
const MAX_CLIENTS: usize = 100_000;

impl RateLimit {
    pub fn new(rate: f64) -> RateLimit {
        RateLimit {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn admit(&self, client: &str) -> Reply<()> {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= MAX_CLIENTS {
            let rate = self.rate;
            b.retain(|_, (level, t)| *level + now.duration_since(*t).as_secs_f64() * rate < rate);
        }
        let burst = self.rate.max(1.0);
        let (level, last) = b.entry(client.to_string()).or_insert((burst, now));
        *level = (*level + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Status::new(
                Code::ResourceExhausted,
                format!(
                    "rate limit: at most {} requests a second per client",
                    self.rate
                ),
            ))
        }
    }
}
