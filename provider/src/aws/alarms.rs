//! The four alarms: each function's errors and duration, with actions on the alert topic.

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricAlarm, StandardUnit, Statistic, Tag,
};

use super::functions::Function;
use super::{hcl, Clients, Desired, Difference, Hcl, PieceError};

/// One alarm as the stack wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// Alarm name.
    pub name: String,
    /// Function it watches.
    pub function: String,
    /// `Errors` or `Duration`.
    pub metric: &'static str,
    /// Threshold.
    pub threshold: f64,
    /// Comparison.
    pub comparison: ComparisonOperator,
    /// Statistic.
    pub statistic: Statistic,
}

/// The four alarms. The duration alarms fire when a run reaches the function's timeout, so their
/// threshold follows `lambda_timeout_seconds`.
pub fn specs(d: &Desired) -> Vec<AlarmSpec> {
    let timeout_ms = f64::from(d.timeout_seconds) * 1000.0;
    let mut out = Vec::new();
    for (i, f) in [Function::Scanner, Function::Reporter]
        .into_iter()
        .enumerate()
    {
        out.push(AlarmSpec {
            name: d.names.alarms[i * 2].clone(),
            function: f.name(d).to_string(),
            metric: "Errors",
            threshold: 0.0,
            comparison: ComparisonOperator::GreaterThanThreshold,
            statistic: Statistic::Sum,
        });
        out.push(AlarmSpec {
            name: d.names.alarms[i * 2 + 1].clone(),
            function: f.name(d).to_string(),
            metric: "Duration",
            threshold: timeout_ms,
            comparison: ComparisonOperator::GreaterThanOrEqualToThreshold,
            statistic: Statistic::Maximum,
        });
    }
    out
}

fn matches(spec: &AlarmSpec, a: &MetricAlarm, topic_arn: &str) -> Vec<Difference> {
    let mut out = Vec::new();
    let p = format!("alarm {}", spec.name);
    if a.metric_name() != Some(spec.metric) || a.namespace() != Some("AWS/Lambda") {
        out.push(Difference::new(
            &p,
            "metric",
            format!(
                "metric is {} in {}, want {} in {}",
                a.metric_name().hcl(),
                a.namespace().hcl(),
                spec.metric.hcl(),
                "AWS/Lambda".hcl()
            ),
        ));
    }
    if a.threshold() != Some(spec.threshold) || a.comparison_operator() != Some(&spec.comparison) {
        // The comparison operator is said only when it is what differs.
        let mut parts = Vec::new();
        if a.threshold() != Some(spec.threshold) {
            parts.push(format!(
                "threshold is {}, want {}",
                a.threshold().hcl(),
                spec.threshold.hcl()
            ));
        }
        if a.comparison_operator() != Some(&spec.comparison) {
            parts.push(format!(
                "comparison is {}, want {}",
                a.comparison_operator().map(|c| c.as_str()).hcl(),
                spec.comparison.as_str().hcl()
            ));
        }
        out.push(Difference::new(&p, "threshold", parts.join("; ")));
    }
    let dims: Vec<(&str, &str)> = a
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap_or_default(), d.value().unwrap_or_default()))
        .collect();
    let want_dims = vec![("FunctionName", spec.function.as_str())];
    if dims != want_dims {
        out.push(Difference::new(
            &p,
            "dimensions",
            format!(
                "dimensions is {}, want {}",
                hcl::object(dims),
                hcl::object(want_dims)
            ),
        ));
    }
    let want_actions = [topic_arn.to_string()];
    if a.alarm_actions() != want_actions {
        out.push(Difference::new(
            &p,
            "actions",
            format!(
                "actions is {}, want {}",
                a.alarm_actions().hcl(),
                want_actions.hcl()
            ),
        ));
    }
    if a.actions_enabled() == Some(false) {
        out.push(Difference::new(&p, "actions enabled", "actions disabled"));
    }
    out
}

/// Reads the alarms and returns, per spec, the differences (`None`: the alarm is missing).
pub async fn read(
    c: &Clients,
    d: &Desired,
) -> Result<Vec<(AlarmSpec, Option<Vec<Difference>>)>, PieceError> {
    let specs = specs(d);
    let out = c
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(specs.iter().map(|s| s.name.clone()).collect()))
        .send()
        .await
        .map_err(|e| PieceError::aws("alarms", "reading", e))?;
    let topic = d.topic_arn();
    Ok(specs
        .into_iter()
        .map(|s| {
            let found = out
                .metric_alarms()
                .iter()
                .find(|a| a.alarm_name() == Some(s.name.as_str()));
            let diff = found.map(|a| matches(&s, a, &topic));
            (s, diff)
        })
        .collect())
}

/// Differences from the desired alarms.
pub fn drift(found: &[(AlarmSpec, Option<Vec<Difference>>)]) -> Vec<Difference> {
    found
        .iter()
        .flat_map(|(s, diff)| match diff {
            None => vec![Difference::missing(format!("alarm {}", s.name))],
            Some(diff) => diff.clone(),
        })
        .collect()
}

/// Writes every alarm that is missing or differs (PutMetricAlarm creates or replaces).
pub async fn ensure(
    c: &Clients,
    d: &Desired,
    found: &[(AlarmSpec, Option<Vec<Difference>>)],
    retag: bool,
) -> Result<(), PieceError> {
    let tags: Vec<Tag> = d
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    for (s, diff) in found {
        if matches!(diff, Some(d) if d.is_empty()) && !retag {
            continue;
        }
        let p = format!("alarm {}", s.name);
        c.cloudwatch
            .put_metric_alarm()
            .alarm_name(&s.name)
            .alarm_description(format!(
                "{} of {} ({}).",
                s.metric, s.function, d.names.suffix
            ))
            .namespace("AWS/Lambda")
            .metric_name(s.metric)
            .dimensions(
                Dimension::builder()
                    .name("FunctionName")
                    .value(&s.function)
                    .build(),
            )
            .statistic(s.statistic.clone())
            .period(300)
            .evaluation_periods(1)
            .threshold(s.threshold)
            .comparison_operator(s.comparison.clone())
            .treat_missing_data("notBreaching")
            .unit(if s.metric == "Duration" {
                StandardUnit::Milliseconds
            } else {
                StandardUnit::Count
            })
            .actions_enabled(true)
            .alarm_actions(d.topic_arn())
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "writing", e))?;
        // PutMetricAlarm ignores tags when it updates an alarm that exists.
        if retag && diff.is_some() {
            retag_alarm(c, d, &s.name, &tags).await?;
        }
    }
    Ok(())
}

/// Brings an existing alarm's tags to the desired set.
async fn retag_alarm(c: &Clients, d: &Desired, name: &str, tags: &[Tag]) -> Result<(), PieceError> {
    let p = format!("alarm {name}");
    let arn = d.arn(&format!(
        "cloudwatch:{}:{}:alarm:{name}",
        d.region, d.account_id
    ));
    let current = c
        .cloudwatch
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| PieceError::aws(&p, "reading tags of", e))?;
    let current = super::tag_map(
        current
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
    );
    super::retag(
        &p,
        &current,
        &d.tags,
        || {
            c.cloudwatch
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(tags.to_vec()))
                .send()
        },
        |keys| {
            c.cloudwatch
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(keys))
                .send()
        },
    )
    .await
}

/// Deletes the four alarms (missing ones are ignored by CloudWatch).
/// Deletes the alarms a read found. DeleteAlarms deletes nothing when one name is missing, so
/// only present ones are named; a `ResourceNotFound` is a retried call whose first answer (which
/// deleted them) was lost.
pub async fn delete(
    c: &Clients,
    found: &[(AlarmSpec, Option<Vec<Difference>>)],
) -> Result<(), PieceError> {
    let names: Vec<String> = found
        .iter()
        .filter(|(_, diff)| diff.is_some())
        .map(|(s, _)| s.name.clone())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    match c
        .cloudwatch
        .delete_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if super::is_code(&e, super::codes::ALARM_NOT_FOUND) => Ok(()),
        Err(e) => Err(PieceError::aws("alarms", "deleting", e)),
    }
}
