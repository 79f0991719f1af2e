//! Waiting on AWS's asynchronous work (a Lambda function's `Pending` and `InProgress`) and on its
//! eventual consistency (a new IAM role Lambda cannot assume yet), bounded by elapsed time, with
//! backoff, and stopped by Terraform's StopProvider.
//!
//! Polls start after one second and grow by a quarter each time up to five seconds: a wait of a
//! few seconds ends within a second of the work, and a long one costs at most one request per
//! second of waiting.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::PieceError;

/// How long the stack waits for a new role to become usable by Lambda. IAM documents no bound;
/// terraform-provider-aws waits two minutes.
pub const IAM_PROPAGATION: Duration = Duration::from_secs(120);

/// How long the stack waits for a function to become `Active` or for an update to finish
/// (terraform-provider-aws's default create/update timeout for functions is ten minutes).
pub const LAMBDA_SETTLE: Duration = Duration::from_secs(600);

/// The delays between polls: 1 s, then a quarter longer each time, at most 5 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: Duration::from_secs(1),
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now + now / 4).min(Duration::from_secs(5));
        Some(now)
    }
}

/// The error of a wait that Terraform stopped.
pub fn stopped(piece: &str, action: &'static str) -> PieceError {
    PieceError::new(piece, action, "stopped by Terraform (interrupt)")
}

/// Sleeps `delay` unless Terraform stops the provider first (then `Err`).
pub async fn sleep(delay: Duration, cancel: &CancellationToken) -> Result<(), ()> {
    tokio::select! {
        _ = tokio::time::sleep(delay) => Ok(()),
        _ = cancel.cancelled() => Err(()),
    }
}

/// What one poll found.
#[derive(Debug)]
pub enum Poll<T> {
    /// Done, with the result.
    Ready(T),
    /// Not yet, with what is still awaited (for the log and a timeout's message).
    Waiting(String),
}

/// Polls `check` with [`Backoff`], the first time after the first delay (the caller has just
/// been told the work is under way), until it is ready, fails, `limit` has passed (an error
/// naming the piece and the last state seen) or Terraform stops the provider.
pub async fn until<T, F, Fut>(
    piece: &str,
    action: &'static str,
    limit: Duration,
    cancel: &CancellationToken,
    mut check: F,
) -> Result<T, PieceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, PieceError>>,
{
    let start = Instant::now();
    let mut delays = Backoff::default();
    let mut waiting = "under way".to_string();
    loop {
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        if start.elapsed() + delay > limit {
            return Err(PieceError::new(
                piece,
                action,
                format!(
                    "still {waiting} after {} s; it may finish later: run `terraform apply` again",
                    start.elapsed().as_secs()
                ),
            ));
        }
        tracing::info!(piece, waiting = %waiting, ?delay, "waiting");
        sleep(delay, cancel)
            .await
            .map_err(|()| stopped(piece, action))?;
        waiting = match check().await? {
            Poll::Ready(t) => return Ok(t),
            Poll::Waiting(why) => why,
        };
    }
}

/// Calls `op` again while its error is one `retryable` names (eventual consistency), with
/// [`Backoff`], until `limit` has passed or Terraform stops the provider; then returns the last
/// result (the error) as it is, or `Err(None)` when stopped.
pub async fn retry_while<T, E, F, Fut>(
    limit: Duration,
    cancel: &CancellationToken,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, Option<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut delays = Backoff::default();
    loop {
        match op().await {
            Err(e) if retryable(&e) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                if start.elapsed() + delay > limit {
                    return Err(Some(e));
                }
                tracing::info!(
                    elapsed = ?start.elapsed(),
                    ?delay,
                    "retrying while AWS catches up (eventual consistency)"
                );
                if sleep(delay, cancel).await.is_err() {
                    return Err(None);
                }
            }
            other => return other.map_err(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_a_second_grows_and_is_capped() {
        let d: Vec<u64> = Backoff::default()
            .take(12)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(&d[..4], &[1000, 1250, 1562, 1953]);
        assert!(d.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*d.last().unwrap(), 5000);
        // At most one poll per second of waiting, however long the wait.
        let mut total = Duration::ZERO;
        for (n, delay) in Backoff::default().take(200).enumerate() {
            total += delay;
            assert!(total.as_secs_f64() >= (n + 1) as f64);
        }
    }

    #[tokio::test]
    async fn until_stops_at_the_limit_naming_the_piece_and_state() {
        let start = Instant::now();
        let e = until(
            "Lambda function f",
            "waiting for",
            Duration::from_millis(2500),
            &CancellationToken::new(),
            || async { Ok::<Poll<()>, PieceError>(Poll::Waiting("Pending".into())) },
        )
        .await
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(e.piece, "Lambda function f");
        assert!(e.message.contains("still Pending"), "{e}");
    }

    #[tokio::test]
    async fn a_stop_ends_a_wait_at_once() {
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopper.cancel();
        });
        let start = Instant::now();
        let e = until("f", "waiting for", LAMBDA_SETTLE, &cancel, || async {
            Ok::<Poll<()>, PieceError>(Poll::Waiting("InProgress".into()))
        })
        .await
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        assert!(e.message.contains("stopped by Terraform"));
        let r: Result<(), Option<&str>> =
            retry_while(IAM_PROPAGATION, &cancel, |_| true, || async { Err("x") }).await;
        assert_eq!(r, Err(None));
    }

    #[tokio::test]
    async fn retry_while_retries_only_what_it_is_told_to() {
        let mut calls = 0;
        let r: Result<u32, Option<&str>> = retry_while(
            Duration::from_secs(10),
            &CancellationToken::new(),
            |e| *e == "not yet",
            || {
                calls += 1;
                let n = calls;
                async move {
                    match n {
                        1 => Err("not yet"),
                        _ => Err("denied"),
                    }
                }
            },
        )
        .await;
        assert_eq!(r, Err(Some("denied")));
        assert_eq!(calls, 2);
    }
}
