//! One SQS batch, start to end: parse every record, reach each account the changes are in (the
//! own account with the function's credentials, a member account through its member role), read
//! what the changes name (batched per account and region across the whole batch), judge with the
//! scan's rules, store one result, publish the metrics, alert once when something is
//! non-compliant, and say which records SQS must deliver again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_config::SdkConfig;
use compliance_rules::contract::Members;
use compliance_rules::exemptions::Day;
use compliance_rules::result::{
    AccountSummary, Counts, RegionSummary, ScanError, ScanResult, Summary, SCAN_SCHEMA_VERSION,
};
use compliance_rules::verdict::{compliance_percentage, evaluate};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::clients::{CallError, Context, Unreachable};
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
    /// Member accounts (or regions of them) that could not be read, their changes recorded in
    /// the result's `errors`: the role could not be assumed, or a read was refused.
    pub scan_errors: usize,
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
            scan_errors = outcome.scan_errors,
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
    let me = match ctx.identity().await {
        Ok(me) => me,
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
    let account = me.account_id.clone();

    let accepted = in_scope(ctx, &account, parsed.changes, &mut dropped);
    log_dropped(&dropped);
    outcome.dropped = dropped.len();
    outcome.changes = accepted.len();
    if accepted.is_empty() {
        return Ok(finish(outcome));
    }
    let concurrency = ctx.settings.concurrency.max(1) as usize;
    let of_account = |a: &str| -> BTreeSet<usize> {
        (0..accepted.len())
            .filter(|n| accepted[*n].change.account == a)
            .collect()
    };

    // Each account the changes are in, reached at once: the own account with the function's
    // credentials, a member through its role.
    let mut failed: BTreeSet<usize> = BTreeSet::new();
    let mut scan_errors: Vec<ScanError> = Vec::new();
    let wanted: BTreeSet<&str> = accepted.iter().map(|r| r.change.account.as_str()).collect();
    // The futures are made before the stream: the compiler cannot show a stream mapped by a
    // closure over borrowed items to be `Send` for every lifetime, which the runtime needs.
    let me_ref = &me;
    let reaching: Vec<_> = wanted
        .into_iter()
        .map(|a| async move { (a, ctx.reach(me_ref, a).await) })
        .collect();
    let reached: Vec<(&str, Result<SdkConfig, Unreachable>)> = futures::stream::iter(reaching)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut sdks: BTreeMap<&str, SdkConfig> = BTreeMap::new();
    for (a, r) in reached {
        match r {
            Ok(sdk) => {
                sdks.insert(a, sdk);
            }
            Err(Unreachable::Retryable(m)) => {
                tracing::error!(account = %a, error = %m, "member role not assumed after retries: its changes go back to the queue");
                failed.extend(of_account(a));
                outcome.errors.push(m);
            }
            // Recorded, not retried: a missing role will still be missing on the next delivery.
            Err(Unreachable::Refused(e)) => {
                tracing::warn!(account = %a, cause = %e.cause, "member account not read: its changes are recorded with the error");
                scan_errors.push(e);
            }
        }
    }

    let mut by_pair: BTreeMap<(&str, &str), Targets> = BTreeMap::new();
    for (n, r) in accepted.iter().enumerate() {
        let c = &r.change;
        if !sdks.contains_key(c.account.as_str()) {
            continue;
        }
        let t = by_pair
            .entry((c.account.as_str(), c.region.as_str()))
            .or_default();
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
    let reads: Vec<_> = futures::stream::iter(
        by_pair
            .iter()
            .map(|(&(a, region), t)| {
                let ec2 = ctx.ec2(a, region, &sdks[a]);
                async move { ((a, region), read_region(&ec2, region, t).await) }
            })
            .collect::<Vec<_>>(),
    )
    .buffer_unordered(concurrency)
    .collect()
    .await;

    // The day the batch started decides which exemptions have expired.
    let today = Day::from_unix_seconds(started_at.unix_timestamp());
    let mut judged_instances = Vec::new();
    let mut judged_groups = Vec::new();
    let mut shares: Vec<(String, String, Counts)> = Vec::new();
    let mut skipped = Vec::new();
    let mut causes: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for ((a, region), read) in reads {
        let read = match read {
            Ok(read) => read,
            // The own account's role is the stack's: refused, the invocation fails so the alarm
            // fires. A member's role is the member's: that (account, region) is an error.
            Err(CallError::Refused(m)) if a != account => {
                tracing::warn!(account = %a, region = %region, error = %m, "member region not read: its changes are recorded with the error");
                scan_errors.push(ScanError {
                    account_id: a.to_string(),
                    region: Some(region.to_string()),
                    operation: m
                        .split_whitespace()
                        .next()
                        .unwrap_or("Describe")
                        .to_string(),
                    code: None,
                    cause: format!("{m} (account {a})"),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        failed.extend(read.failed);
        for e in read.errors {
            tracing::error!(error = %e, "read failed after retries: its changes go back to the queue");
            outcome.errors.push(e);
        }
        let mut instances = Vec::with_capacity(read.instances.len());
        for (i, from) in read.instances {
            causes.entry(i.id.clone()).or_default().extend(from);
            instances.push(i);
        }
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
                    region: region.to_string(),
                    reason: "does not exist".to_string(),
                });
            } else {
                tracing::info!(id = %id, "instance not visible yet: its change goes back to the queue");
                failed.extend(young);
            }
        }
        // Judged per (account, region): an instance's groups are those of its own.
        let evaluation = evaluate(instances, &read.groups, &ctx.settings.rules, today);
        shares.push((
            a.to_string(),
            region.to_string(),
            Counts::of(&evaluation.summary),
        ));
        judged_instances.extend(evaluation.instances.into_iter().map(|mut i| {
            i.account_id = a.to_string();
            i
        }));
        judged_groups.extend(evaluation.security_groups.into_iter().map(|mut g| {
            g.account_id = a.to_string();
            g
        }));
    }
    skipped.sort();
    skipped.dedup();
    for s in &skipped {
        tracing::info!(id = %s.id, region = %s.region, reason = %s.reason, "named resource not judged");
    }
    outcome.skipped = skipped.len();
    scan_errors.sort();
    outcome.scan_errors = scan_errors.len();
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
    judged_instances.sort_by(|x, y| {
        (&x.account_id, &x.region, &x.instance_id).cmp(&(&y.account_id, &y.region, &y.instance_id))
    });
    judged_groups.sort_by(|x, y| {
        (&x.account_id, &x.region, &x.group_id).cmp(&(&y.account_id, &y.region, &y.group_id))
    });
    let involved: BTreeSet<&str> = processed
        .iter()
        .map(|&n| accepted[n].change.account.as_str())
        .collect();
    let summary = summarize(&account, &involved, &shares, &scan_errors);
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
    let named: BTreeSet<(&str, &str, &str)> = events
        .iter()
        .flat_map(|e| {
            e.change.groups.iter().map(|g| {
                (
                    e.change.account.as_str(),
                    e.change.region.as_str(),
                    g.as_str(),
                )
            })
        })
        .collect();
    let open_named = judged_groups
        .iter()
        .filter(|g| {
            g.exemptions.is_empty()
                && named.contains(&(
                    g.account_id.as_str(),
                    g.region.as_str(),
                    g.group_id.as_str(),
                ))
        })
        .count() as u64;
    let findings = summary.non_compliant + open_named;
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
            summary,
            instances: judged_instances,
            security_groups: judged_groups,
            errors: scan_errors,
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
        result.scan.errors.len() as u64,
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

/// The batch's totals: the sum of every (account, region) judged. With a member account among
/// the changes (judged or not reached), also per account and region, each account with its
/// errors, as a scheduled scan writes them; a batch of the own account alone has none, as before.
fn summarize(
    own: &str,
    involved: &BTreeSet<&str>,
    shares: &[(String, String, Counts)],
    errors: &[ScanError],
) -> Summary {
    let mut total = Counts::default();
    let mut by_account: BTreeMap<&str, AccountSummary> = involved
        .iter()
        .map(|a| {
            (
                *a,
                AccountSummary {
                    account_id: a.to_string(),
                    ..AccountSummary::default()
                },
            )
        })
        .collect();
    for (a, region, counts) in shares {
        total.add(counts);
        let entry = by_account
            .entry(a.as_str())
            .or_insert_with(|| AccountSummary {
                account_id: a.clone(),
                ..AccountSummary::default()
            });
        entry.counts.add(counts);
        entry.regions.push(RegionSummary {
            region: region.clone(),
            counts: counts.clone(),
        });
    }
    for e in errors {
        if let Some(a) = by_account.get_mut(e.account_id.as_str()) {
            a.errors += 1;
        }
    }
    // Nothing judged is 100 %, as for an empty fleet.
    total.compliance_percentage =
        compliance_percentage(total.compliant, total.scanned - total.exempt);
    let mut summary = total.summary();
    if by_account.keys().any(|a| *a != own) {
        summary.accounts = by_account
            .into_values()
            .map(|mut a| {
                a.regions.sort_by(|x, y| x.region.cmp(&y.region));
                a.counts.compliance_percentage =
                    compliance_percentage(a.counts.compliant, a.counts.scanned - a.counts.exempt);
                a
            })
            .collect();
    }
    summary
}

/// Whether the scanner judges changes in `account` besides its own (`own`): a listed member
/// account, or with `ORGANIZATION_ACCOUNTS` any other account, left to AssumeRole to decide. The
/// organization is not listed per batch: only accounts the default bus's policy admits can send
/// these events, and the scanner's role may assume the member role only within its organization,
/// so an account outside it fails AssumeRole and is recorded as such.
fn is_member(members: &Members, own: &str, account: &str) -> bool {
    account != own && (members.organization || members.accounts.iter().any(|a| a == account))
}

/// The changes this function can judge, earliest first: in its own account or a member account
/// (read through the member role), and in a scanned region. The others are dropped, one entry
/// per record.
fn in_scope(
    ctx: &Context,
    account: &str,
    changes: Vec<Received>,
    dropped: &mut Vec<Dropped>,
) -> Vec<Received> {
    let regions = &ctx.settings.regions;
    let every_region = regions.len() == 1 && regions[0] == compliance_rules::contract::ALL_REGIONS;
    let members = &ctx.settings.members;
    let mut accepted = Vec::new();
    for r in changes {
        let why = if r.change.account != account && !is_member(members, account, &r.change.account)
        {
            Some(format!(
                "not judged: account {} is neither the function's own ({account}) nor a member account",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn members(accounts: &[&str], organization: bool) -> Members {
        Members {
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            organization,
            ..Members::default()
        }
    }

    #[test]
    fn members_are_the_listed_accounts_or_with_the_organization_any_other() {
        let own = "123456789012";
        let listed = members(&["222222222222"], false);
        assert!(is_member(&listed, own, "222222222222"));
        assert!(!is_member(&listed, own, "333333333333"));
        assert!(
            !is_member(&listed, own, own),
            "the own account is no member"
        );
        let org = members(&[], true);
        assert!(is_member(&org, own, "333333333333"));
        assert!(!is_member(&org, own, own));
        assert!(!is_member(&Members::default(), own, "222222222222"));
    }

    fn counts(scanned: u64, compliant: u64) -> Counts {
        let mut c = Counts::default();
        c.add(&Counts {
            scanned,
            compliant,
            non_compliant: scanned - compliant,
            ..Counts::default()
        });
        c
    }

    #[test]
    fn the_own_account_alone_has_no_breakdown_and_a_member_has_one() {
        let own = "123456789012";
        let shares = vec![
            (own.to_string(), "us-east-1".to_string(), counts(2, 1)),
            (own.to_string(), "eu-west-1".to_string(), counts(1, 1)),
        ];
        let s = summarize(own, &BTreeSet::from([own]), &shares, &[]);
        assert_eq!((s.scanned, s.compliant, s.non_compliant), (3, 2, 1));
        assert!(s.accounts.is_empty());

        let refused = ScanError {
            account_id: "333333333333".into(),
            region: None,
            operation: "AssumeRole".into(),
            code: Some("AccessDenied".into()),
            cause: "no".into(),
        };
        let mut shares = shares;
        shares.push(("222222222222".into(), "us-east-1".into(), counts(1, 0)));
        let involved = BTreeSet::from([own, "222222222222", "333333333333"]);
        let s = summarize(own, &involved, &shares, &[refused]);
        assert_eq!((s.scanned, s.compliant, s.non_compliant), (4, 2, 2));
        assert_eq!(s.compliance_percentage, 50.0);
        let by: Vec<(&str, u64, u64, usize)> = s
            .accounts
            .iter()
            .map(|a| {
                (
                    a.account_id.as_str(),
                    a.counts.scanned,
                    a.errors,
                    a.regions.len(),
                )
            })
            .collect();
        assert_eq!(
            by,
            [
                (own, 3, 0, 2),
                ("222222222222", 1, 0, 1),
                ("333333333333", 0, 1, 0)
            ]
        );
        assert_eq!(s.accounts[0].regions[0].region, "eu-west-1", "sorted");
        assert_eq!(
            s.accounts[2].counts.compliance_percentage, 100.0,
            "nothing judged"
        );
        let nothing = summarize(own, &BTreeSet::from([own]), &[], &[]);
        assert_eq!(nothing.compliance_percentage, 100.0);
    }
}
