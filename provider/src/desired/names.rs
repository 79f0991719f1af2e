//! The names of every AWS piece of one stack, all derived from the environment suffix so two
//! stacks live side by side in one account and region.

use crate::desired::pair::{FailureDuration, ScannerReporter};

/// Longest suffix that keeps every derived name within its service's limit: the longest prefix
/// is `compliance-reporter-` (20 characters) and Lambda function and IAM role names stop at 64.
pub const MAX_SUFFIX_LEN: usize = 44;

/// Names of the stack's pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackNames {
    /// The environment suffix.
    pub suffix: String,
    /// S3 bucket for results.
    pub bucket: String,
    /// SNS topic for alerts.
    pub topic: String,
    /// Scanner Lambda function, IAM role and schedule rule.
    pub scanner: String,
    /// Reporter Lambda function, IAM role and schedule rule.
    pub reporter: String,
    /// Scanner log group.
    pub scanner_log_group: String,
    /// Reporter log group.
    pub reporter_log_group: String,
    /// The alarms on each function: `scanner-failure-alarm-<suffix>` and so on.
    pub alarms: ScannerReporter<FailureDuration<String>>,
    /// CloudWatch dashboard.
    pub dashboard: String,
    /// CloudWatch metric namespace of the scanner's metrics.
    pub metric_namespace: String,
    /// SQS queue between the change rule and the scanner (`event_driven`).
    pub events_queue: String,
    /// Its dead-letter queue.
    pub dead_letter_queue: String,
    /// EventBridge rule that sends the changes that can break compliance to the queue.
    pub change_rule: String,
}

impl StackNames {
    /// Derives every name from the suffix.
    pub fn new(suffix: &str) -> StackNames {
        let scanner = format!("compliance-scanner-{suffix}");
        let reporter = format!("compliance-reporter-{suffix}");
        StackNames {
            suffix: suffix.to_string(),
            bucket: format!("compliance-results-{suffix}"),
            topic: format!("compliance-alerts-{suffix}"),
            scanner_log_group: format!("/aws/lambda/{scanner}"),
            reporter_log_group: format!("/aws/lambda/{reporter}"),
            alarms: ScannerReporter::new(|f| {
                FailureDuration::new(|k| format!("{}-{}-alarm-{suffix}", f.as_str(), k.as_str()))
            }),
            dashboard: format!("compliance-dashboard-{suffix}"),
            metric_namespace: "ComplianceMonitoring".to_string(),
            events_queue: format!("compliance-events-{suffix}"),
            dead_letter_queue: format!("compliance-events-dlq-{suffix}"),
            change_rule: format!("compliance-changes-{suffix}"),
            scanner,
            reporter,
        }
    }

    /// The names with the bucket's set by `bucket_name`, when the configuration sets it.
    pub fn with_bucket(mut self, bucket: Option<&str>) -> StackNames {
        if let Some(b) = bucket {
            self.bucket = b.to_string();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_seed() {
        let n = StackNames::new("dev");
        assert_eq!(n.bucket, "compliance-results-dev");
        assert_eq!(n.topic, "compliance-alerts-dev");
        assert_eq!(n.scanner, "compliance-scanner-dev");
        assert_eq!(n.reporter_log_group, "/aws/lambda/compliance-reporter-dev");
        assert_eq!(n.alarms.scanner.failure, "scanner-failure-alarm-dev");
        assert_eq!(n.alarms.scanner.duration, "scanner-duration-alarm-dev");
        assert_eq!(n.alarms.reporter.failure, "reporter-failure-alarm-dev");
        assert_eq!(n.alarms.reporter.duration, "reporter-duration-alarm-dev");
        assert_eq!(n.dashboard, "compliance-dashboard-dev");
    }

    #[test]
    fn longest_suffix_fits_lambda_and_iam_limits() {
        let n = StackNames::new(&"a".repeat(MAX_SUFFIX_LEN));
        assert_eq!(n.reporter.len(), 64);
        assert!(n.bucket.len() <= 63);
    }
}
