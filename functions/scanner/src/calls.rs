//! Counts every HTTP attempt the AWS clients make, per operation, so a run can show its API cost
//! (retries included) without a proxy in front of the endpoint.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Shared attempt counters, keyed `Service:Operation` (e.g. `EC2:DescribeInstances`).
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallCounter {
    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The counts made after `before` (an earlier [`snapshot`](Self::snapshot)).
    pub fn since(&self, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.snapshot()
            .into_iter()
            .map(|(k, n)| {
                let earlier = before.get(&k).copied().unwrap_or(0);
                (k, n.saturating_sub(earlier))
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let key = match cfg.load::<Metadata>() {
            Some(m) => format!("{}:{}", m.service(), m.name()),
            None => "unknown".to_string(),
        };
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(key).or_default() += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_counts_only_the_later_calls() {
        let counter = CallCounter::default();
        let bump = |key: &str, n: u64| {
            *counter
                .counts
                .lock()
                .unwrap()
                .entry(key.to_string())
                .or_default() += n;
        };
        bump("EC2:DescribeInstances", 2);
        bump("STS:GetCallerIdentity", 1);
        let before = counter.snapshot();
        bump("EC2:DescribeInstances", 1);
        bump("S3:PutObject", 1);
        assert_eq!(
            counter.since(&before),
            BTreeMap::from([
                ("EC2:DescribeInstances".to_string(), 1),
                ("S3:PutObject".to_string(), 1)
            ])
        );
    }
}
