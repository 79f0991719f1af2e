//! Where an event batch's verdict goes: one S3 object per batch, the metrics, the alert.

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use compliance_rules::result::{ScanResult, Summary};
use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::OffsetDateTime;

use super::clients::{classify, CallError, Context};
use super::parse::{Change, Dropped};
use super::read::Skipped;

/// The value of `trigger` in an event result.
pub const TRIGGER: &str = "event";

/// The stored verdict of one SQS batch: a scan result (every field of `docs/scan-result.md`, at
/// the top level, over the instances and groups the changes concern) plus the changes that
/// triggered it. A reader of scan results reads it as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventResult {
    /// The verdict, as a scan writes it.
    #[serde(flatten)]
    pub scan: ScanResult,
    /// Always [`TRIGGER`]: tells an event result from a scheduled scan's.
    pub trigger: String,
    /// The batch's id: the first change's event id, followed by `-and-<n>-<digest>` when the
    /// batch held `n` more changes (see [`batch_id`]).
    pub batch_id: String,
    /// The changes judged, earliest first: event id, name, actor, time, what each named and the
    /// instances judged because of it.
    pub events: Vec<JudgedChange>,
    /// Named resources that are gone or had nothing to judge.
    pub skipped: Vec<Skipped>,
    /// Records of the batch that reported nothing to judge (malformed or irrelevant), and why.
    pub dropped: Vec<Dropped>,
    /// Non-compliant instances plus violating groups a change named that no active exemption
    /// covers: the `EventFindings` metric.
    pub findings: u64,
}

/// A change and the instances judged because of it (named, behind a named group or interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgedChange {
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// Instances judged because of it, sorted.
    pub judged: Vec<String>,
}

/// The batch id of `changes` (earliest first): the first change's id alone, or with how many
/// more and a digest of every id, so the same changes always make the same key (a redelivery
/// overwrites its own result) and different batches never share one.
pub fn batch_id(changes: &[Change]) -> String {
    let Some(first) = changes.first() else {
        return String::new();
    };
    let id = key_safe(&first.id);
    if changes.len() == 1 {
        return id;
    }
    let mut ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in ids {
        for b in id.bytes().chain([b'\n']) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{id}-and-{}-{hash:016x}", changes.len() - 1)
}

/// An id as a key segment: letters, digits, `-`, `_` and `.` kept, anything else `_`.
fn key_safe(id: &str) -> String {
    id.chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `events/YYYY/MM/DD/<YYYYMMDDTHHMMSSZ>-<batch id>.json`, dated by the first change's time.
pub fn result_key(first_at: OffsetDateTime, batch_id: &str) -> String {
    let at = first_at.to_offset(time::UtcOffset::UTC);
    let day = at
        .format(format_description!("[year]/[month]/[day]"))
        .expect("date formats");
    let stamp = at
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("timestamp formats");
    format!("events/{day}/{stamp}-{batch_id}.json")
}

/// Stores `json` under `key`; with a bucket owner, only in a bucket that account owns.
pub async fn store(ctx: &Context, key: &str, json: Vec<u8>) -> Result<(), CallError> {
    let s = &ctx.settings;
    ctx.s3
        .put_object()
        .bucket(&s.bucket)
        .set_expected_bucket_owner(s.bucket_owner.clone())
        .key(key)
        .content_type("application/json")
        .body(json.into())
        .send()
        .await
        .map_err(|e| classify(&format!("PutObject s3://{}/{key}", s.bucket), &e))?;
    Ok(())
}

/// The scan's metric names, sent for a batch too (with the `Trigger=Event` dimension).
pub const SCAN_METRICS: [&str; 9] = [
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

/// The metric only the event mode sends, with the `Stack` dimension alone.
pub const EVENT_FINDINGS: &str = "EventFindings";

/// The batch's metrics: the scan's set over the instances judged (`ScanErrors`: the member
/// accounts and regions not read), dimensions `Stack` and `Trigger=Event` (a separate series, so
/// the fleet-wide `Stack` series and the alarm on its `ScanErrors` stay the scheduled scan's), and
/// `EventFindings` with `Stack` alone (one series to alarm on).
pub fn metric_data(
    summary: &Summary,
    findings: u64,
    scan_errors: u64,
    stack: &str,
    at: OffsetDateTime,
) -> Vec<MetricDatum> {
    let stack_dim = Dimension::builder().name("Stack").value(stack).build();
    let trigger_dim = Dimension::builder().name("Trigger").value("Event").build();
    let timestamp = aws_smithy_types::DateTime::from_secs(at.unix_timestamp());
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
    let mut data: Vec<MetricDatum> = SCAN_METRICS
        .iter()
        .zip(values)
        .map(|(name, (value, unit))| {
            MetricDatum::builder()
                .metric_name(*name)
                .dimensions(stack_dim.clone())
                .dimensions(trigger_dim.clone())
                .value(value)
                .unit(unit)
                .timestamp(timestamp)
                .build()
        })
        .collect();
    data.push(
        MetricDatum::builder()
            .metric_name(EVENT_FINDINGS)
            .dimensions(stack_dim)
            .value(findings as f64)
            .unit(StandardUnit::Count)
            .timestamp(timestamp)
            .build(),
    );
    data
}

/// Publishes the metrics in one `PutMetricData` call.
pub async fn publish_metrics(ctx: &Context, data: Vec<MetricDatum>) -> Result<(), CallError> {
    let namespace = &ctx.settings.metric_namespace;
    ctx.cloudwatch
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(data))
        .send()
        .await
        .map_err(|e| classify(&format!("PutMetricData in namespace {namespace}"), &e))?;
    Ok(())
}

/// Publishes the alert.
pub async fn publish_alert(
    ctx: &Context,
    topic: &str,
    subject: String,
    body: String,
) -> Result<(), CallError> {
    ctx.sns
        .publish()
        .topic_arn(topic)
        .subject(subject)
        .message(body)
        .send()
        .await
        .map_err(|e| classify(&format!("Publish to {topic}"), &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn change(id: &str) -> Change {
        Change {
            id: id.into(),
            name: "n".into(),
            source: "aws.ec2".into(),
            actor: None,
            time: "2024-05-02T10:11:12Z".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            change: String::new(),
            instances: vec![],
            groups: vec![],
            network_interfaces: vec![],
        }
    }

    #[test]
    fn a_single_change_names_the_batch() {
        let id = "7bf73129-1428-4cd3-a780-95db273d1602";
        assert_eq!(batch_id(&[change(id)]), id);
        assert_eq!(
            result_key(datetime!(2024-05-02 10:11:12 UTC), id),
            format!("events/2024/05/02/20240502T101112Z-{id}.json")
        );
    }

    #[test]
    fn several_changes_make_a_stable_distinct_id() {
        let ab = batch_id(&[change("a"), change("b")]);
        assert!(
            ab.starts_with("a-and-1-") && ab.len() == "a-and-1-".len() + 16,
            "{ab}"
        );
        // The same ids make the same id whatever their order after the first.
        assert_eq!(ab, batch_id(&[change("a"), change("b")]));
        assert_ne!(ab, batch_id(&[change("a"), change("c")]));
        assert_ne!(ab, batch_id(&[change("a"), change("b"), change("c")]));
        // An odd id cannot leave its key segment.
        assert_eq!(batch_id(&[change("x/../y z")]), "x_.._y_z");
    }
}
