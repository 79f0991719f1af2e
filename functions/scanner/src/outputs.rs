//! Where a scan goes: the S3 object, the CloudWatch metrics and the SNS alert.

use anyhow::Context;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use compliance_rules::result::{ScanResult, Summary};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::alert;

/// The object key of a scan started at `at`: `scans/YYYY/MM/DD/YYYYMMDDTHHMMSS.mmmZ.json`
/// (ISO 8601 basic format: sorts by time and needs no URL escaping).
pub fn result_key(at: OffsetDateTime) -> String {
    let day = at
        .format(format_description!("[year]/[month]/[day]"))
        .expect("date formats");
    let stamp = at
        .format(format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .expect("timestamp formats");
    format!("scans/{day}/{stamp}.json")
}

/// Stores the serialized result under `key`; with an `owner`, only in a bucket that account owns.
pub async fn store(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    owner: Option<&str>,
    key: &str,
    json: Vec<u8>,
) -> anyhow::Result<()> {
    s3.put_object()
        .bucket(bucket)
        .set_expected_bucket_owner(owner.map(str::to_string))
        .key(key)
        .content_type("application/json")
        .body(json.into())
        .send()
        .await
        .with_context(|| format!("PutObject s3://{bucket}/{key}"))?;
    Ok(())
}

/// The metric names, in the order they are sent.
pub const METRIC_NAMES: [&str; 8] = [
    "CompliancePercentage",
    "ScannedInstances",
    "CompliantInstances",
    "NonCompliantInstances",
    "ExemptInstances",
    "InstancesMissingTags",
    "OpenSecurityGroupRules",
    "ExemptedFindings",
];

/// The scan's metrics, each with the dimension `Stack=<stack>`.
pub fn metric_data(summary: &Summary, stack: &str, at: OffsetDateTime) -> Vec<MetricDatum> {
    let dimension = Dimension::builder().name("Stack").value(stack).build();
    let values = [
        (summary.compliance_percentage, StandardUnit::Percent),
        (summary.scanned as f64, StandardUnit::Count),
        (summary.compliant as f64, StandardUnit::Count),
        (summary.non_compliant as f64, StandardUnit::Count),
        (summary.exempt as f64, StandardUnit::Count),
        (summary.instances_missing_tags as f64, StandardUnit::Count),
        (summary.open_rules as f64, StandardUnit::Count),
        (summary.exempted_findings as f64, StandardUnit::Count),
    ];
    let timestamp = aws_smithy_types::DateTime::from_secs(at.unix_timestamp());
    METRIC_NAMES
        .iter()
        .zip(values)
        .map(|(name, (value, unit))| {
            MetricDatum::builder()
                .metric_name(*name)
                .dimensions(dimension.clone())
                .value(value)
                .unit(unit)
                .timestamp(timestamp)
                .build()
        })
        .collect()
}

/// Publishes the metrics in one `PutMetricData` call.
pub async fn publish_metrics(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    data: Vec<MetricDatum>,
) -> anyhow::Result<()> {
    cw.put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .with_context(|| format!("PutMetricData in namespace {namespace}"))?;
    Ok(())
}

/// Sends the alert for a result with non-compliant instances.
pub async fn send_alert(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    result: &ScanResult,
    bucket: &str,
    key: &str,
) -> anyhow::Result<()> {
    sns.publish()
        .topic_arn(topic_arn)
        .subject(alert::subject(result))
        .message(alert::body(result, bucket, key))
        .send()
        .await
        .with_context(|| format!("Publish to {topic_arn}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn key_is_date_partitioned() {
        let key = result_key(datetime!(2024-03-07 05:06:07.089 UTC));
        assert_eq!(key, "scans/2024/03/07/20240307T050607.089Z.json");
    }
}
