//! One SQS batch, start to end: parse every record, read what the changes name (batched across
//! the whole batch), judge with the scan's rules, store one result, publish the metrics, alert
//! once when something is non-compliant, and say which records SQS must deliver again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use compliance_rules::exemptions::Day;
use compliance_rules::result::{ScanResult, SCAN_SCHEMA_VERSION};
use compliance_rules::verdict::evaluate;
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::clients::{CallError, Context};
use super::message;
use super::output::{
    batch_id, metric_data, publish_alert, publish_metrics, result_key, store, EventResult,
    JudgedChange, TRIGGER,
};
use super::parse::{parse_batch, Change, Dropped, Received};
use super::read::{read_region, Skipped, Targets};

/// How long after its change an instance EC2 says does not exist is asked for again (its
/// records go back to the queue) rather than dropped: EC2 documents that a new instance may not
/// be described at once after `RunInstances`. Older, it is gone.
pub const NOT_VISIBLE_YET: time::Duration = time::Duration::minutes(5);

/// What an invocation did. Its [`response`](Outcome::response) is the partial batch response;
/// the rest is logged (and read by the benchmark).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// `messageId` of every record SQS must deliver again: only those whose changes could not be
    /// read, stored or alerted for a retryable reason.
    pub batch_item_failures: Vec<String>,
    /// Records in the batch.
    pub records: usize,
    /// Distinct changes accepted (parsed, in scope).
    pub changes: usize,
    /// Records dropped: malformed, irrelevant or out of scope.
    pub dropped: usize,
    /// Named resources not judged (gone, terminated, attached to nothing).
    pub skipped: usize,
    /// Where the result was stored, when one was.
    pub result_key: Option<String>,
    /// Instances judged.
    pub judged: u64,
    /// Of which non-compliant.
    pub non_compliant: u64,
    /// The `EventFindings` metric.
    pub findings: u64,
    /// Whether the alert went out.
    pub alert_sent: bool,
    /// Wall time of the invocation, in milliseconds.
    pub run_ms: u64,
    /// From the start until the result was stored.
    pub stored_ms: Option<u64>,
    /// Wall time with at least one AWS call in flight.
    pub aws_ms: u64,
    /// `run_ms` less `aws_ms`: the function's own time.
    pub own_ms: u64,
    /// HTTP attempts per `Service:Operation`, retries included.
    pub api_calls: BTreeMap<String, u64>,
    /// What failed without failing the invocation (retried records, metrics).
    pub errors: Vec<String>,
}

impl Outcome {
    /// The response an SQS event source mapping with `ReportBatchItemFailures` reads.
    pub fn response(&self) -> Value {
        json!({
            "batchItemFailures": self
                .batch_item_failures
                .iter()
                .map(|id| json!({"itemIdentifier": id}))
                .collect::<Vec<_>>()
        })
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("UTC time formats as RFC 3339")
}

/// Handles one SQS batch. `Err` only when a call was refused (see [`CallError::Refused`]): the
/// invocation fails, so the errors alarm fires and SQS keeps the messages.
pub async fn handle(ctx: &Context, payload: &Value) -> Result<Outcome, CallError> {
    let clock = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    // The clients outlive an invocation: count this one's calls and AWS time.
    let calls_before = ctx.api_calls();
    let aws_before = ctx.aws_time();
    let mut outcome = Outcome {
        records: payload
            .get("Records")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
        ..Outcome::default()
    };
    let finish = |mut outcome: Outcome| {
        outcome.batch_item_failures.sort();
        outcome.batch_item_failures.dedup();
        outcome.run_ms = clock.elapsed().as_millis() as u64;
        outcome.aws_ms = (ctx.aws_time().saturating_sub(aws_before)).as_millis() as u64;
        outcome.own_ms = outcome.run_ms.saturating_sub(outcome.aws_ms);
        outcome.api_calls = ctx.api_calls_since(&calls_before);
        tracing::info!(
            records = outcome.records,
            changes = outcome.changes,
            dropped = outcome.dropped,
            skipped = outcome.skipped,
            retried = outcome.batch_item_failures.len(),
            judged = outcome.judged,
            non_compliant = outcome.non_compliant,
            findings = outcome.findings,
            alert_sent = outcome.alert_sent,
            result_key = outcome.result_key.as_deref().unwrap_or(""),
            run_ms = outcome.run_ms,
            stored_ms = outcome.stored_ms.unwrap_or(0),
            aws_ms = outcome.aws_ms,
            own_ms = outcome.own_ms,
            api_calls = %serde_json::to_string(&outcome.api_calls).unwrap_or_default(),
            "event batch handled"
        );
        outcome
    };

    let parsed = parse_batch(payload);
    let mut dropped: Vec<Dropped> = parsed.dropped;
    if parsed.changes.is_empty() {
        log_dropped(&dropped);
        outcome.dropped = dropped.len();
        return Ok(finish(outcome));
    }
    let account = match ctx.account().await {
        Ok(account) => account,
        Err(CallError::Retryable(m)) => {
            tracing::error!(error = %m, "no account: every change goes back to the queue");
            outcome.batch_item_failures = parsed
                .changes
                .iter()
                .flat_map(|r| r.message_ids.iter().cloned())
                .collect();
            outcome.errors.push(m);
            log_dropped(&dropped);
            outcome.dropped = dropped.len();
            return Ok(finish(outcome));
        }
        Err(refused) => return Err(refused),
    };

    let accepted = in_scope(ctx, &account, parsed.changes, &mut dropped);
    log_dropped(&dropped);
    outcome.dropped = dropped.len();
    outcome.changes = accepted.len();
    if accepted.is_empty() {
        return Ok(finish(outcome));
    }

    let mut by_region: BTreeMap<&str, Targets> = BTreeMap::new();
    for (n, r) in accepted.iter().enumerate() {
        let c = &r.change;
        let t = by_region.entry(c.region.as_str()).or_default();
        for i in &c.instances {
            t.instances.insert(i.clone());
            t.note(i, n);
        }
        for g in &c.groups {
            t.groups.insert(g.clone());
            t.note(g, n);
        }
        for e in &c.network_interfaces {
            t.network_interfaces.insert(e.clone());
            t.note(e, n);
        }
    }
    let reads = futures::future::try_join_all(
        by_region
            .iter()
            .map(|(region, t)| async move { read_region(&ctx.ec2(region), region, t).await }),
    )
    .await?;

    let mut failed: BTreeSet<usize> = BTreeSet::new();
    let mut instances = Vec::new();
    let mut groups = Vec::new();
    let mut skipped = Vec::new();
    let mut causes: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for read in reads {
        failed.extend(read.failed);
        for e in read.errors {
            tracing::error!(error = %e, "read failed after retries: its changes go back to the queue");
            outcome.errors.push(e);
        }
        for (i, from) in read.instances {
            causes.insert(i.id.clone(), from);
            instances.push(i);
        }
        groups.extend(read.groups);
        skipped.extend(read.skipped);
        for (id, from) in read.missing {
            // EC2 is eventually consistent: an instance just launched may not be described yet.
            let young: Vec<usize> = from
                .iter()
                .copied()
                // Either way round: a change dated far ahead (a bad clock) is not young.
                .filter(|n| (started_at - accepted[*n].change.at()).abs() < NOT_VISIBLE_YET)
                .collect();
            if young.is_empty() {
                skipped.push(Skipped {
                    id,
                    region: accepted[from.first().copied().unwrap_or(0)]
                        .change
                        .region
                        .clone(),
                    reason: "does not exist".to_string(),
                });
            } else {
                tracing::info!(id = %id, "instance not visible yet: its change goes back to the queue");
                failed.extend(young);
            }
        }
    }
    skipped.sort();
    skipped.dedup();
    for s in &skipped {
        tracing::info!(id = %s.id, region = %s.region, reason = %s.reason, "named resource not judged");
    }
    outcome.skipped = skipped.len();
    let retry = |failed: &BTreeSet<usize>| -> Vec<String> {
        failed
            .iter()
            .flat_map(|n| accepted[*n].message_ids.iter().cloned())
            .collect()
    };
    outcome.batch_item_failures = retry(&failed);
    let processed: Vec<usize> = (0..accepted.len())
        .filter(|n| !failed.contains(n))
        .collect();
    if processed.is_empty() {
        return Ok(finish(outcome));
    }

    // The day the batch started decides which exemptions have expired.
    let today = Day::from_unix_seconds(started_at.unix_timestamp());
    let evaluation = evaluate(instances, &groups, &ctx.settings.rules, today);
    drop(groups);
    let mut judged_instances = evaluation.instances;
    let mut judged_groups = evaluation.security_groups;
    for i in &mut judged_instances {
        i.account_id = account.clone();
    }
    for g in &mut judged_groups {
        g.account_id = account.clone();
    }
    let events: Vec<JudgedChange> = processed
        .iter()
        .map(|&n| JudgedChange {
            change: accepted[n].change.clone(),
            judged: causes
                .iter()
                .filter(|(_, from)| from.contains(&n))
                .map(|(id, _)| id.clone())
                .collect(),
        })
        .collect();
    let named: BTreeSet<(&str, &str)> = events
        .iter()
        .flat_map(|e| {
            e.change
                .groups
                .iter()
                .map(|g| (e.change.region.as_str(), g.as_str()))
        })
        .collect();
    let open_named = judged_groups
        .iter()
        .filter(|g| {
            g.exemptions.is_empty() && named.contains(&(g.region.as_str(), g.group_id.as_str()))
        })
        .count() as u64;
    let findings = evaluation.summary.non_compliant + open_named;
    let regions: Vec<String> = events
        .iter()
        .map(|e| e.change.region.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let changes: Vec<Change> = events.iter().map(|e| e.change.clone()).collect();
    let id = batch_id(&changes);
    let key = result_key(changes[0].at(), &id);
    let finished_at = OffsetDateTime::now_utc();
    let result = EventResult {
        scan: ScanResult {
            schema_version: SCAN_SCHEMA_VERSION,
            started_at: rfc3339(started_at),
            finished_at: rfc3339(finished_at),
            duration_ms: clock.elapsed().as_millis() as u64,
            stack: ctx.settings.stack.clone(),
            account_id: Some(account.clone()),
            regions,
            settings: ctx.settings.rules.clone(),
            summary: evaluation.summary,
            instances: judged_instances,
            security_groups: judged_groups,
            errors: Vec::new(),
        },
        trigger: TRIGGER.to_string(),
        batch_id: id,
        events,
        skipped,
        dropped,
        findings,
    };
    outcome.judged = result.scan.summary.scanned;
    outcome.non_compliant = result.scan.summary.non_compliant;
    outcome.findings = findings;

    let json = serde_json::to_vec(&result)
        .map_err(|e| CallError::Refused(format!("serialize the event result: {e}")))?;
    let every_processed: BTreeSet<usize> = processed.iter().copied().collect();
    match store(ctx, &key, json).await {
        Ok(()) => {}
        Err(CallError::Retryable(m)) => {
            tracing::error!(error = %m, key = %key, "result not stored: the batch goes back to the queue");
            outcome.batch_item_failures.extend(retry(&every_processed));
            outcome.errors.push(m);
            return Ok(finish(outcome));
        }
        Err(refused) => return Err(refused),
    }
    outcome.stored_ms = Some(clock.elapsed().as_millis() as u64);
    outcome.result_key = Some(key.clone());
    tracing::info!(bucket = %ctx.settings.bucket, key = %key, "event result stored");

    // Metrics and alert do not depend on each other: both at once, neither stops the other.
    let data = metric_data(
        &result.scan.summary,
        findings,
        &ctx.settings.stack,
        finished_at,
    );
    let metrics = publish_metrics(ctx, data);
    let alert = async {
        if findings == 0 {
            return Ok(false);
        }
        match &ctx.settings.topic_arn {
            Some(topic) => publish_alert(
                ctx,
                topic,
                message::subject(&result),
                message::body(&result, &ctx.settings.bucket, &key),
            )
            .await
            .map(|()| true),
            None => {
                tracing::warn!("findings but no TOPIC_ARN: no alert sent");
                Ok(false)
            }
        }
    };
    let (metrics, alert) = tokio::join!(metrics, alert);
    let stored = |e: CallError| {
        CallError::Refused(format!(
            "result stored at s3://{}/{key} but: {}",
            ctx.settings.bucket,
            e.message()
        ))
    };
    match metrics {
        Ok(()) => {}
        // A lost data point is not worth judging the batch again (and alerting twice).
        Err(CallError::Retryable(m)) => {
            tracing::error!(error = %m, key = %key, "metrics not published");
            outcome.errors.push(m);
        }
        Err(refused) => return Err(stored(refused)),
    }
    match alert {
        Ok(sent) => outcome.alert_sent = sent,
        // The alert is the point of the event mode: the changes come back and are alerted again.
        Err(CallError::Retryable(m)) => {
            tracing::error!(error = %m, key = %key, "alert not sent: the batch goes back to the queue");
            outcome.batch_item_failures.extend(retry(&every_processed));
            outcome.errors.push(m);
        }
        Err(refused) => return Err(stored(refused)),
    }
    Ok(finish(outcome))
}

/// The changes this function can judge, earliest first: in its own account (it reads with its
/// own credentials) and in a scanned region. The others are dropped, one entry per record.
fn in_scope(
    ctx: &Context,
    account: &str,
    changes: Vec<Received>,
    dropped: &mut Vec<Dropped>,
) -> Vec<Received> {
    let regions = &ctx.settings.regions;
    let every_region = regions.len() == 1 && regions[0] == compliance_rules::contract::ALL_REGIONS;
    let mut accepted = Vec::new();
    for r in changes {
        let why = if r.change.account != account {
            Some(format!(
                "not judged: account {} is not the function's own ({account})",
                compliance_rules::sns::field(&r.change.account, 40)
            ))
        } else if !every_region && !regions.contains(&r.change.region) {
            Some(format!(
                "not judged: region {} is not scanned",
                compliance_rules::sns::field(&r.change.region, 40)
            ))
        } else {
            None
        };
        match why {
            Some(reason) => dropped.extend(r.message_ids.iter().map(|m| Dropped {
                message_id: m.clone(),
                event_id: Some(r.change.id.clone()),
                reason: reason.clone(),
            })),
            None => accepted.push(r),
        }
    }
    accepted.sort_by(|a, b| (a.change.at(), &a.change.id).cmp(&(b.change.at(), &b.change.id)));
    accepted
}

fn log_dropped(dropped: &[Dropped]) {
    for d in dropped {
        tracing::warn!(
            message_id = %d.message_id,
            event_id = d.event_id.as_deref().unwrap_or(""),
            reason = %d.reason,
            "record dropped"
        );
    }
}
