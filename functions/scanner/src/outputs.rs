//! Where a scan goes: the S3 object, the CloudWatch metrics and the SNS alert.

use anyhow::Context;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use compliance_rules::result::Summary;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::alert::{self, Digest};

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

/// The metric names, in the order they are sent.
pub const METRIC_NAMES: [&str; 9] = [
    "CompliancePercentage",
    "ScannedInstances",
    "CompliantInstances",
    "NonCompliantInstances",
    "ExemptInstances",
    "InstancesMissingTags",
    "OpenSecurityGroupRules",
    "ExemptedFindings",
    "ScanErrors",
];

/// The scan's metrics, each with the dimension `Stack=<stack>`; `ScanErrors` is the number of
/// accounts or (account, region) pairs that could not be read (the result's `errors`).
pub fn metric_data(
    summary: &Summary,
    scan_errors: u64,
    stack: &str,
    at: OffsetDateTime,
) -> Vec<MetricDatum> {
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
        (scan_errors as f64, StandardUnit::Count),
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

/// Most metrics CloudWatch takes in one `PutMetricData` request.
const METRICS_PER_REQUEST: usize = 1000;

/// Each (account, region) share's `CompliancePercentage` and `NonCompliantInstances`, with the
/// dimensions `Stack`, `Account` and `Region`, so the dashboard shows compliance by account and
/// region; none when the scan covers one account in one region (the stack's own series says it).
pub fn share_metric_data(summary: &Summary, stack: &str, at: OffsetDateTime) -> Vec<MetricDatum> {
    let shares: Vec<_> = summary
        .accounts
        .iter()
        .flat_map(|a| a.regions.iter().map(move |r| (a.account_id.as_str(), r)))
        .collect();
    if shares.len() < 2 {
        return Vec::new();
    }
    let timestamp = aws_smithy_types::DateTime::from_secs(at.unix_timestamp());
    shares
        .into_iter()
        .flat_map(|(account, region)| {
            let dimensions = [
                ("Stack", stack),
                ("Account", account),
                ("Region", &region.region),
            ]
            .map(|(k, v)| Dimension::builder().name(k).value(v).build());
            [
                (
                    "CompliancePercentage",
                    region.counts.compliance_percentage,
                    StandardUnit::Percent,
                ),
                (
                    "NonCompliantInstances",
                    region.counts.non_compliant as f64,
                    StandardUnit::Count,
                ),
            ]
            .map(|(name, value, unit)| {
                MetricDatum::builder()
                    .metric_name(name)
                    .set_dimensions(Some(dimensions.to_vec()))
                    .value(value)
                    .unit(unit)
                    .timestamp(timestamp)
                    .build()
            })
        })
        .collect()
}

/// Publishes the metrics, in as few `PutMetricData` calls as CloudWatch's limit allows.
pub async fn publish_metrics(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    data: Vec<MetricDatum>,
) -> anyhow::Result<()> {
    for chunk in data.chunks(METRICS_PER_REQUEST) {
        cw.put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .with_context(|| format!("PutMetricData in namespace {namespace}"))?;
    }
    Ok(())
}

/// Sends the alert for a result with non-compliant instances.
pub async fn send_alert(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
    result: &Digest,
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

#[cfg(test)]
mod share_tests {
    use super::*;
    use compliance_rules::result::{AccountSummary, Counts, RegionSummary};

    fn share(region: &str, pct: f64) -> RegionSummary {
        RegionSummary {
            region: region.into(),
            counts: Counts {
                compliance_percentage: pct,
                ..Counts::default()
            },
        }
    }

    #[test]
    fn each_account_and_region_gets_its_own_series_only_when_there_are_several() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let mut summary = Summary {
            accounts: vec![AccountSummary {
                account_id: "111111111111".into(),
                regions: vec![share("us-east-1", 50.0)],
                ..AccountSummary::default()
            }],
            ..Summary::default()
        };
        assert!(share_metric_data(&summary, "dev", at).is_empty());
        summary.accounts[0].regions.push(share("eu-west-1", 100.0));
        let data = share_metric_data(&summary, "dev", at);
        assert_eq!(data.len(), 4);
        let first = &data[0];
        assert_eq!(first.metric_name(), Some("CompliancePercentage"));
        let dims: Vec<(&str, &str)> = first
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or(""), d.value().unwrap_or("")))
            .collect();
        assert_eq!(
            dims,
            [
                ("Stack", "dev"),
                ("Account", "111111111111"),
                ("Region", "us-east-1")
            ]
        );
        assert_eq!(first.value(), Some(50.0));
    }
}
