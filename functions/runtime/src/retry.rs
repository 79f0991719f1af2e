//! How both functions' AWS clients retry: the SDK's standard mode (exponential backoff with jitter
//! on throttling, 5xx answers and dropped connections), a bounded number of attempts per call.

use std::str::FromStr;
use std::time::Duration;

use anyhow::bail;
use aws_config::retry::{RetryConfig, RetryMode};
use aws_config::{BehaviorVersion, SdkConfig};

/// Attempts per AWS call (the first plus retries) when `AWS_MAX_ATTEMPTS` is not set. Above the
/// SDK's 3: a scheduled run that fails costs a whole interval of results, a few seconds more of
/// backoff costs nothing.
pub const MAX_ATTEMPTS: u32 = 5;

/// Upper bound of the first backoff (jittered, then doubling per attempt).
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// Upper bound of any one backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The retry settings for the given values of `AWS_MAX_ATTEMPTS` and `AWS_RETRY_MODE` (`None` or
/// blank when unset). A value the SDK would refuse is refused here too, naming the variable: with
/// an explicit retry configuration the SDK no longer reads them itself.
pub fn retry_config(max_attempts: Option<&str>, mode: Option<&str>) -> anyhow::Result<RetryConfig> {
    let attempts = match set(max_attempts) {
        None => MAX_ATTEMPTS,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => bail!("AWS_MAX_ATTEMPTS must be a whole number of attempts, 1 or more; got `{v}`"),
        },
    };
    let base = match set(mode).map(RetryMode::from_str) {
        None | Some(Ok(RetryMode::Standard)) => RetryConfig::standard(),
        Some(Ok(RetryMode::Adaptive)) => RetryConfig::adaptive(),
        Some(_) => bail!(
            "AWS_RETRY_MODE must be `standard` or `adaptive`; got `{}`",
            mode.unwrap_or_default().trim()
        ),
    };
    Ok(base
        .with_max_attempts(attempts)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF))
}

/// A variable's value when it is set and not blank.
fn set(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// The SDK configuration from the standard chain (environment, profile, container or instance
/// credentials; `AWS_ENDPOINT_URL` for an emulator) with [`retry_config`] from the environment.
pub async fn load_sdk_config() -> anyhow::Result<SdkConfig> {
    let var = |name: &str| std::env::var(name).ok();
    let retry = retry_config(
        var("AWS_MAX_ATTEMPTS").as_deref(),
        var("AWS_RETRY_MODE").as_deref(),
    )?;
    Ok(aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .load()
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_means_standard_mode_with_our_attempts() {
        for blank in [None, Some(""), Some("  ")] {
            let c = retry_config(blank, blank).unwrap();
            assert_eq!(c.max_attempts(), MAX_ATTEMPTS);
            assert_eq!(c.mode(), RetryMode::Standard);
            assert_eq!(c.initial_backoff(), INITIAL_BACKOFF);
            assert_eq!(c.max_backoff(), MAX_BACKOFF);
        }
    }

    #[test]
    fn the_environment_overrides_attempts_and_mode() {
        let c = retry_config(Some(" 12 "), Some("Adaptive")).unwrap();
        assert_eq!(c.max_attempts(), 12);
        assert_eq!(c.mode(), RetryMode::Adaptive);
        assert_eq!(retry_config(Some("1"), None).unwrap().max_attempts(), 1);
    }

    #[test]
    fn values_the_sdk_refuses_are_refused_by_name() {
        for bad in ["0", "-1", "five", "2.5"] {
            let e = retry_config(Some(bad), None).unwrap_err().to_string();
            assert!(e.starts_with("AWS_MAX_ATTEMPTS"), "{e}");
        }
        let e = retry_config(None, Some("legacy")).unwrap_err().to_string();
        assert!(e.starts_with("AWS_RETRY_MODE"), "{e}");
    }
}
