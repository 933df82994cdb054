//! Fault injection: per-request faults (by rate, or forced by the `X-Drover-Sim-Fault` header) and
//! the instance-level schedule (slow start, kill/revive, stall).
//!
//! Per-request faults apply to `POST /v1/*` only, before the OpenAI front sees the request, so
//! health, metrics and model listing keep answering. Fault timings are wall-clock durations: they
//! orchestrate tests and are not scaled by `--time-scale` (only the engine model is).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_server::ApiError;

use crate::error::SimError;
use crate::rng::Draws;
use crate::server::ConnHandle;

/// The header that forces one fault on one request.
pub const FAULT_HEADER: &str = "x-drover-sim-fault";

/// Fault-injection settings of one instance. Rates are probabilities per request.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Answer 500 (`--fail-rate`).
    pub fail_rate: f64,
    /// Answer 429 with `Retry-After` (`--rate-limit-rate`).
    pub rate_limit_rate: f64,
    /// `Retry-After` of those 429s (sent in whole seconds, rounded up).
    pub retry_after: Duration,
    /// Accept the request and never answer (`--hang-rate`).
    pub hang_rate: f64,
    /// Answer 200 with a body that is not JSON (`--garbage-rate`).
    pub garbage_rate: f64,
    /// Reset the connection (`--reset-rate`).
    pub reset_rate: f64,
    /// Answer only after `slow_delay` (`--slow-rate`).
    pub slow_rate: f64,
    /// Extra delay of a slow answer.
    pub slow_delay: Duration,
    /// After start (and after a revive), `/health` and requests answer 503 this long.
    pub slow_start: Duration,
    /// Kill the instance this long after start: listener closed, connections reset.
    pub kill_after: Option<Duration>,
    /// Revive a killed instance this long after the kill (fresh engine, cold prefix cache).
    pub revive_after: Option<Duration>,
    /// Stall the engine this long after start: health 200, no progress.
    pub stall_after: Option<Duration>,
    /// End the stall after this long (never, when unset).
    pub stall_for: Option<Duration>,
    /// Honour the `X-Drover-Sim-Fault` header.
    pub honor_header: bool,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            fail_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after: Duration::from_secs(1),
            hang_rate: 0.0,
            garbage_rate: 0.0,
            reset_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_secs(2),
            slow_start: Duration::ZERO,
            kill_after: None,
            revive_after: None,
            stall_after: None,
            stall_for: None,
            honor_header: true,
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with a vLLM-shaped body.
    ServerError,
    /// 429 with `Retry-After`.
    RateLimited,
    /// Never answer.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// Connection reset (RST).
    Reset,
    /// Answer after `slow_delay`.
    Slow,
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        Ok(match s.trim() {
            "500" => Fault::ServerError,
            "429" => Fault::RateLimited,
            "hang" => Fault::Hang,
            "garbage" => Fault::Garbage,
            "reset" => Fault::Reset,
            "slow" => Fault::Slow,
            other => {
                return Err(format!(
                    "unknown {FAULT_HEADER} value {other:?}: use 500, 429, hang, garbage, reset or slow"
                ));
            }
        })
    }
}

impl Faults {
    fn rates(&self) -> [(Fault, f64, &'static str); 6] {
        [
            (Fault::ServerError, self.fail_rate, "--fail-rate"),
            (
                Fault::RateLimited,
                self.rate_limit_rate,
                "--rate-limit-rate",
            ),
            (Fault::Hang, self.hang_rate, "--hang-rate"),
            (Fault::Garbage, self.garbage_rate, "--garbage-rate"),
            (Fault::Reset, self.reset_rate, "--reset-rate"),
            (Fault::Slow, self.slow_rate, "--slow-rate"),
        ]
    }

    /// Whether any per-request rate is set (otherwise no draw is made).
    pub fn any_rate(&self) -> bool {
        self.rates().iter().any(|&(_, r, _)| r > 0.0)
    }

    /// The fault for a uniform draw `u` in [0, 1): the rates are consecutive slices of [0, 1).
    pub fn pick(&self, u: f64) -> Option<Fault> {
        let mut edge = 0.0;
        for (fault, rate, _) in self.rates() {
            edge += rate;
            if u < edge {
                return Some(fault);
            }
        }
        None
    }

    /// Checks the rates; errors name the flag.
    pub fn validate(&self) -> Result<(), SimError> {
        let mut total = 0.0;
        for (_, rate, flag) in self.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimError::invalid(
                    flag,
                    format!("must be a probability in [0, 1], got {rate}"),
                ));
            }
            total += rate;
        }
        if total > 1.0 + 1e-9 {
            return Err(SimError::invalid(
                "--fail-rate",
                format!("the fault rates add up to {total}, more than 1"),
            ));
        }
        if self.revive_after.is_some() && self.kill_after.is_none() {
            return Err(SimError::invalid(
                "--revive-after",
                "needs --kill-after (nothing to revive)",
            ));
        }
        if self.stall_for.is_some() && self.stall_after.is_none() {
            return Err(SimError::invalid("--stall-for", "needs --stall-after"));
        }
        Ok(())
    }
}

/// State of the fault middleware of one instance.
pub(crate) struct FaultLayer {
    pub faults: Faults,
    pub draws: Draws,
}

/// The middleware: decides a request's fault and plays it.
pub(crate) async fn inject(
    State(layer): State<Arc<FaultLayer>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let faults = &layer.faults;
    let forced = if faults.honor_header {
        request.headers().get(FAULT_HEADER)
    } else {
        None
    };
    let fault = match forced {
        Some(value) => match value
            .to_str()
            .map_err(|e| e.to_string())
            .and_then(Fault::from_str)
        {
            Ok(f) => Some(f),
            Err(message) => return ApiError::bad_request(message).into_response(),
        },
        None if faults.any_rate() => faults.pick(layer.draws.next_f64()),
        None => None,
    };
    match fault {
        None => next.run(request).await,
        Some(Fault::ServerError) => {
            ApiError::internal("simulated server error (drover sim fault injection)")
                .into_response()
        }
        Some(Fault::RateLimited) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitError",
                "simulated rate limit (drover sim fault injection)",
            )
            .into_response();
            let seconds =
                faults.retry_after.as_secs() + u64::from(faults.retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        Some(Fault::Hang) => std::future::pending().await,
        Some(Fault::Garbage) => {
            let mut response = Response::new(Body::from(GARBAGE));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Some(Fault::Reset) => {
            match request.extensions().get::<ConnHandle>() {
                Some(conn) => conn.reset(),
                None => {
                    return ApiError::internal("simulated reset without a connection to reset")
                        .into_response();
                }
            }
            // The connection task is being aborted; this future is dropped with it.
            std::future::pending().await
        }
        Some(Fault::Slow) => {
            tokio::time::sleep(faults.slow_delay).await;
            next.run(request).await
        }
    }
}

/// A body that starts like an answer and is not JSON.
const GARBAGE: &str = "{\"id\":\"chatcmpl-garbage\",\"object\":\"chat.completion\",\"choices\":[{\"mess\u{fffd}\u{fffd} <html>502 Bad Gateway";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_consecutive_slices() {
        let f = Faults {
            fail_rate: 0.1,
            rate_limit_rate: 0.2,
            hang_rate: 0.05,
            ..Faults::default()
        };
        assert_eq!(f.pick(0.05), Some(Fault::ServerError));
        assert_eq!(f.pick(0.15), Some(Fault::RateLimited));
        assert_eq!(f.pick(0.32), Some(Fault::Hang));
        assert_eq!(f.pick(0.36), None);
        assert!(Faults::default().pick(0.0).is_none());
        assert!(!Faults::default().any_rate());
    }

    #[test]
    fn validation_names_flags() {
        let bad = Faults {
            hang_rate: 1.5,
            ..Faults::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--hang-rate:")
        );
        let sum = Faults {
            fail_rate: 0.6,
            garbage_rate: 0.6,
            ..Faults::default()
        };
        assert!(
            sum.validate()
                .unwrap_err()
                .to_string()
                .contains("add up to")
        );
        let revive = Faults {
            revive_after: Some(Duration::from_secs(1)),
            ..Faults::default()
        };
        assert!(
            revive
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("--revive-after:")
        );
    }

    #[test]
    fn header_values() {
        assert_eq!("429".parse(), Ok(Fault::RateLimited));
        assert_eq!("reset".parse(), Ok(Fault::Reset));
        assert!(
            "boom"
                .parse::<Fault>()
                .unwrap_err()
                .contains("500, 429, hang")
        );
        assert!(serde_json::from_str::<serde_json::Value>(GARBAGE).is_err());
    }
}
