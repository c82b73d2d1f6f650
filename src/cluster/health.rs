//! Waiting for the cluster: a condition plus an explicit timeout, polled adaptively (fast at
//! first, backing off to 1 s), never a fixed 2 s sleep (O§5.11 item 13). A timeout names what
//! was awaited and the last state seen, so the operator knows where it stuck.

use std::future::Future;
use std::time::{Duration, Instant};

/// One look at a condition.
pub enum Check<T> {
    Done(T),
    /// Not yet; the text says what is still missing (shown if the wait times out).
    Waiting(String),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout { what: String, waited: Duration, last: String },
    #[error("gave up waiting for {what}: {reason}")]
    Failed { what: String, reason: String },
}

/// Polls `check` until it is done, fails, or `timeout` passes; the pause between looks grows
/// from 50 ms to 1 s.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, check: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, String>>,
{
    wait_until_polling(what, timeout, Duration::from_secs(1), check).await
}

/// [`wait_until`] with the pause between looks growing to `max_pause` at most: for waits
/// whose end starts more work (a queued op whose partition has a next op to submit).
pub async fn wait_until_polling<T, F, Fut>(
    what: &str,
    timeout: Duration,
    max_pause: Duration,
    mut check: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, String>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut indicator = crate::progress::WaitIndicator::new(what, timeout);
    loop {
        let last = match check().await {
            Ok(Check::Done(value)) => return Ok(value),
            Ok(Check::Waiting(state)) => state,
            Err(reason) => return Err(WaitError::Failed { what: what.to_string(), reason }),
        };
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Err(WaitError::Timeout { what: what.to_string(), waited: timeout, last });
        }
        tracing::trace!(what, ?elapsed, %last, "waiting");
        indicator.update(&last);
        tokio::time::sleep(delay.min(timeout - elapsed)).await;
        delay = (delay.mul_f32(1.5)).min(max_pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeout_names_what_and_last_state() {
        let err = wait_until("tablet 10.0.0.1:10921 healthy", Duration::from_millis(120), || async {
            Ok::<Check<()>, String>(Check::Waiting("state kOffline".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 120ms waiting for tablet 10.0.0.1:10921 healthy; last seen: state kOffline"
        );
    }

    #[tokio::test]
    async fn done_returns_value_and_failure_stops_at_once() {
        let mut n = 0;
        let v = wait_until("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let n = n;
            async move { Ok::<_, String>(if n >= 3 { Check::Done(n) } else { Check::Waiting(format!("n={n}")) }) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        let err =
            wait_until("op 7", Duration::from_secs(5), || async { Err::<Check<()>, _>("op 7 is kFailed".to_string()) })
                .await
                .unwrap_err();
        assert_eq!(err.to_string(), "gave up waiting for op 7: op 7 is kFailed");
    }
}
