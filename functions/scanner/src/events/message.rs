//! The event alert: which change made what non-compliant, and who made it. Every value that came
//! from an event or the fleet stays on its own line and is clipped, as in the scan's alert
//! ([`compliance_rules::sns::field`]); the body stays under SNS's cap however large the batch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use compliance_rules::report::describe_violation;
use compliance_rules::result::{GroupResult, InstanceResult};
use compliance_rules::sns::{field, MAX_MESSAGE_BYTES};

use super::output::{EventResult, JudgedChange};

/// The body's own budget: below the cap, with room for the closing line.
const BODY_BUDGET: usize = MAX_MESSAGE_BYTES - 4_096;

/// Changes listed before "and N more".
const MAX_CHANGES: usize = 50;

/// Ids listed per change before "and N more".
const IDS_PER_CHANGE: usize = 10;

/// Who made a change, for a person: the ARN's resource part (`user/alice`,
/// `assumed-role/Admin/alice`), or that the event names nobody.
fn actor_short(c: &JudgedChange) -> String {
    match &c.change.actor {
        Some(arn) => field(arn.splitn(6, ':').nth(5).unwrap_or(arn), 100),
        None => "(not named by the event)".to_string(),
    }
}

/// The non-compliant instances and violating named groups of `c`.
fn offenders_of(c: &JudgedChange, bad: &BTreeSet<&str>) -> Vec<String> {
    c.judged
        .iter()
        .filter(|i| bad.contains(i.as_str()))
        .cloned()
        .collect()
}

/// The ids of the result's findings: non-compliant instances and unwaived violating groups.
fn findings(result: &EventResult) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let instances = result
        .scan
        .instances
        .iter()
        .filter(|i| !i.compliant && !i.exempt)
        .map(|i| i.instance_id.as_str())
        .collect();
    let groups = named_groups(result)
        .into_iter()
        .filter(|g| g.exemptions.is_empty())
        .map(|g| g.group_id.as_str())
        .collect();
    (instances, groups)
}

/// The violating groups a change named.
fn named_groups(result: &EventResult) -> Vec<&GroupResult> {
    let named: BTreeSet<(&str, &str)> = result
        .events
        .iter()
        .flat_map(|c| {
            c.change
                .groups
                .iter()
                .map(|g| (c.change.region.as_str(), g.as_str()))
        })
        .collect();
    result
        .scan
        .security_groups
        .iter()
        .filter(|g| named.contains(&(g.region.as_str(), g.group_id.as_str())))
        .collect()
}

/// The alert's subject, change and actor first (they are what a subject cut at 100 characters
/// must keep): `[stack] <change> by <actor>: <findings>`, or `[stack] <n> EC2 changes: ...`.
pub fn subject(result: &EventResult) -> String {
    let (instances, groups) = findings(result);
    let what = match (instances.len(), groups.len()) {
        (n, 0) => format!("{n} instance(s) non-compliant"),
        (0, g) => format!("{g} group(s) open to the world"),
        (n, g) => format!("{n} instance(s) non-compliant, {g} group(s) open"),
    };
    let change = match result.events.as_slice() {
        [one] if one.change.actor.is_some() => {
            format!("{} by {}", one.change.name, actor_short(one))
        }
        [one] => one.change.name.clone(),
        many => format!("{} EC2 changes", many.len()),
    };
    compliance_rules::sns::subject(&format!("[{}] {change}: {what}", result.scan.stack))
}

/// `a, b, c and N more`.
fn list(ids: &[String], max: usize) -> String {
    let mut out = ids
        .iter()
        .take(max)
        .map(|i| field(i, 100))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > max {
        let _ = write!(out, " and {} more", ids.len() - max);
    }
    out
}

fn instance_block(n: usize, i: &InstanceResult, causes: &[&JudgedChange]) -> String {
    let mut b = String::new();
    let name = i
        .name
        .as_deref()
        .map(|n| format!(" \"{}\"", field(n, 100)))
        .unwrap_or_default();
    let _ = writeln!(
        b,
        "{n}. {}{name} ({}, {})",
        i.instance_id, i.region, i.state
    );
    if !i.missing_tags.is_empty() {
        let _ = writeln!(
            b,
            "   missing tags: {}",
            field(&i.missing_tags.join(", "), 500)
        );
    }
    for m in &i.near_misses {
        let _ = writeln!(
            b,
            "   near miss: tag \"{}\" looks like {}",
            field(&m.found, 128),
            field(&m.required, 128)
        );
    }
    for v in &i.violations {
        let _ = writeln!(b, "   open: {}", field(&describe_violation(v), 500));
    }
    if !i.exempted_findings.is_empty() {
        let checks: Vec<&str> = i.exempted_findings.iter().map(|c| c.as_str()).collect();
        let _ = writeln!(b, "   waived by an exemption: {}", checks.join(", "));
    }
    for c in causes.iter().take(5) {
        let _ = writeln!(
            b,
            "   changed by: {} by {} at {} (event {})",
            field(&c.change.name, 100),
            actor_short(c),
            field(&c.change.time, 40),
            field(&c.change.id, 100)
        );
    }
    b
}

/// The alert's body: what changed and who changed it, where the full result is, then each
/// non-compliant instance (with the change that led to it) and each violating group a change
/// named.
pub fn body(result: &EventResult, bucket: &str, key: &str) -> String {
    let s = &result.scan.summary;
    let (bad_instances, bad_groups) = findings(result);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "EC2 compliance: {} change(s) to stack {} (account {}, {}) were judged at {}.",
        result.events.len(),
        result.scan.stack,
        result.scan.account_id.as_deref().unwrap_or("unknown"),
        result.scan.regions.join(", "),
        result.scan.finished_at
    );
    let _ = writeln!(
        out,
        "{} instance(s) judged: {} non-compliant, {} compliant, {} exempt; {} security group(s) \
         the changes named are open to the world.",
        s.scanned,
        s.non_compliant,
        s.compliant,
        s.exempt,
        bad_groups.len()
    );

    // Changes with findings first, then the rest, each in time order.
    let mut changes: Vec<&JudgedChange> = result.events.iter().collect();
    changes.sort_by_key(|c| {
        let found = !offenders_of(c, &bad_instances).is_empty()
            || c.change
                .groups
                .iter()
                .any(|g| bad_groups.contains(g.as_str()));
        (!found, c.change.time.clone(), c.change.id.clone())
    });
    let _ = writeln!(out, "\nChanges:");
    for c in changes.iter().take(MAX_CHANGES) {
        let _ = writeln!(
            out,
            "- {} {} by {} (event {})",
            field(&c.change.time, 40),
            field(&c.change.name, 100),
            match &c.change.actor {
                Some(arn) => field(arn, 300),
                None => "an actor the event does not name".to_string(),
            },
            field(&c.change.id, 100)
        );
        let _ = writeln!(out, "  {}", field(&c.change.change, 400));
        let offenders = offenders_of(c, &bad_instances);
        let groups: Vec<String> = c
            .change
            .groups
            .iter()
            .filter(|g| bad_groups.contains(g.as_str()))
            .cloned()
            .collect();
        if !groups.is_empty() {
            let _ = writeln!(
                out,
                "  -> open to the world: {}",
                list(&groups, IDS_PER_CHANGE)
            );
        }
        if offenders.is_empty() {
            let _ = writeln!(
                out,
                "  -> {} instance(s) judged, none non-compliant",
                c.judged.len()
            );
        } else {
            let _ = writeln!(
                out,
                "  -> non-compliant: {}",
                list(&offenders, IDS_PER_CHANGE)
            );
        }
    }
    if changes.len() > MAX_CHANGES {
        let _ = writeln!(
            out,
            "- ... and {} more change(s), listed in the full result.",
            changes.len() - MAX_CHANGES
        );
    }
    let _ = writeln!(out, "\nFull result: s3://{bucket}/{key}\n");

    let mut causes: BTreeMap<&str, Vec<&JudgedChange>> = BTreeMap::new();
    for c in &result.events {
        for i in &c.judged {
            causes.entry(i.as_str()).or_default().push(c);
        }
    }
    let offenders: Vec<&InstanceResult> = result
        .scan
        .instances
        .iter()
        .filter(|i| bad_instances.contains(i.instance_id.as_str()))
        .collect();
    let mut shown = 0;
    if !offenders.is_empty() {
        let _ = writeln!(out, "Non-compliant instances:");
    }
    for (n, i) in offenders.iter().enumerate() {
        let cause = causes
            .get(i.instance_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let block = instance_block(n + 1, i, cause);
        if out.len() + block.len() > BODY_BUDGET {
            break;
        }
        out.push_str(&block);
        shown += 1;
    }
    let groups: Vec<&GroupResult> = named_groups(result)
        .into_iter()
        .filter(|g| bad_groups.contains(g.group_id.as_str()))
        .collect();
    let mut groups_shown = 0;
    if shown == offenders.len() && !groups.is_empty() {
        let _ = writeln!(out, "\nSecurity groups the changes opened to the world:");
        for g in &groups {
            let mut block = format!(
                "- {} \"{}\" ({}, {}) attached to {} judged instance(s)\n",
                g.group_id,
                field(&g.group_name, 255),
                g.vpc_id.as_deref().unwrap_or("no VPC"),
                g.region,
                g.attached_instances
            );
            for v in &g.violations {
                let _ = writeln!(block, "   open: {}", field(&describe_violation(v), 500));
            }
            if out.len() + block.len() > BODY_BUDGET {
                break;
            }
            out.push_str(&block);
            groups_shown += 1;
        }
    }
    let left = offenders.len() - shown;
    let left_groups = groups.len() - groups_shown;
    if left > 0 || left_groups > 0 {
        let _ = writeln!(
            out,
            "\n... {left} more non-compliant instance(s) and {left_groups} group(s) are listed \
             only in the full result: s3://{bucket}/{key}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::parse::Change;
    use compliance_rules::result::{
        Reason, ScanResult, ScanSettings, Summary, Violation, SCAN_SCHEMA_VERSION,
    };

    fn change(id: &str, actor: Option<&str>, judged: &[&str]) -> JudgedChange {
        JudgedChange {
            change: Change {
                id: id.into(),
                name: "CreateTags".into(),
                source: "aws.ec2".into(),
                actor: actor.map(str::to_string),
                time: "2024-05-02T10:11:12Z".into(),
                account: "123456789012".into(),
                region: "us-east-1".into(),
                change: format!("CreateTags Owner on {}", judged.join(", ")),
                instances: judged.iter().map(|s| s.to_string()).collect(),
                groups: vec![],
                network_interfaces: vec![],
            },
            judged: judged.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn bad(id: &str) -> InstanceResult {
        InstanceResult {
            instance_id: id.into(),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            state: "running".into(),
            name: Some(format!("web {id}")),
            missing_tags: vec!["Owner".into()],
            violations: vec![Violation {
                group_id: "sg-1".into(),
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                cidr: "0.0.0.0/0".into(),
                reason: Reason::RestrictedPorts,
                ports: vec![22],
            }],
            ..InstanceResult::default()
        }
    }

    fn result(events: Vec<JudgedChange>, instances: Vec<InstanceResult>) -> EventResult {
        let n = instances.len() as u64;
        EventResult {
            scan: ScanResult {
                schema_version: SCAN_SCHEMA_VERSION,
                started_at: "2024-05-02T10:12:00Z".into(),
                finished_at: "2024-05-02T10:12:01Z".into(),
                duration_ms: 1000,
                stack: "prod".into(),
                account_id: Some("123456789012".into()),
                regions: vec!["us-east-1".into()],
                settings: ScanSettings::default(),
                summary: Summary {
                    scanned: n,
                    non_compliant: n,
                    compliance_percentage: 0.0,
                    ..Summary::default()
                },
                instances,
                security_groups: vec![],
                errors: vec![],
            },
            trigger: "event".into(),
            batch_id: "b".into(),
            events,
            skipped: vec![],
            dropped: vec![],
            findings: n,
        }
    }

    #[test]
    fn the_change_and_its_actor_lead() {
        let r = result(
            vec![change(
                "e-1",
                Some("arn:aws:iam::123456789012:user/alice"),
                &["i-1"],
            )],
            vec![bad("i-1")],
        );
        assert_eq!(
            subject(&r),
            "[prod] CreateTags by user/alice: 1 instance(s) non-compliant"
        );
        let b = body(&r, "bkt", "events/k.json");
        assert!(b.contains(
            "- 2024-05-02T10:11:12Z CreateTags by arn:aws:iam::123456789012:user/alice (event e-1)\n"
        ), "{b}");
        assert!(b.contains("  -> non-compliant: i-1\n"), "{b}");
        assert!(
            b.contains(
                "   changed by: CreateTags by user/alice at 2024-05-02T10:11:12Z (event e-1)\n"
            ),
            "{b}"
        );
        assert!(b.contains("s3://bkt/events/k.json"), "{b}");
        let nobody = result(vec![change("e-2", None, &["i-1"])], vec![bad("i-1")]);
        assert_eq!(
            subject(&nobody),
            "[prod] CreateTags: 1 instance(s) non-compliant"
        );
        assert!(body(&nobody, "b", "k").contains("by an actor the event does not name"));
    }

    /// An actor's ARN (a role session name), an event id or a tag cannot forge lines in the mail.
    #[test]
    fn values_from_events_cannot_forge_lines() {
        let mut c = change(
            "e-1\nSubject: all clear",
            Some("arn:aws:sts::1:assumed-role/r/x\r\nFrom: ceo@example.com"),
            &["i-1"],
        );
        c.change.change = "CreateTags\nX-Forged: yes".into();
        let mut i = bad("i-1");
        i.name = Some("web\n\nNothing to see".into());
        let r = result(vec![c], vec![i]);
        let s = subject(&r);
        assert!(s.len() < compliance_rules::sns::MAX_SUBJECT_CHARS, "{s}");
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
        let b = body(&r, "bkt", "k");
        for forged in [
            "Subject: all clear",
            "From: ceo@example.com",
            "X-Forged: yes",
            "Nothing to see",
        ] {
            assert!(
                !b.lines().any(|l| l.trim_start().starts_with(forged)),
                "{forged:?} starts a line:\n{b}"
            );
        }
    }

    #[test]
    fn a_huge_batch_stays_under_the_cap() {
        let ids: Vec<String> = (0..20_000).map(|n| format!("i-{n:017x}")).collect();
        let events: Vec<JudgedChange> = ids
            .iter()
            .map(|i| {
                change(
                    &format!("e-{i}"),
                    Some("arn:aws:iam::1:user/a"),
                    &[i.as_str()],
                )
            })
            .collect();
        let r = result(events, ids.iter().map(|i| bad(i)).collect());
        let b = body(&r, "bkt", "events/k.json");
        assert!(b.len() < MAX_MESSAGE_BYTES, "{}", b.len());
        assert!(
            b.contains("... and 19950 more change(s)"),
            "the change list is capped"
        );
        assert!(b.contains("more non-compliant instance(s)"));
        assert!(b.trim_end().ends_with("s3://bkt/events/k.json"));
        assert_eq!(
            subject(&r),
            "[prod] 20000 EC2 changes: 20000 instance(s) non-compliant"
        );
    }
}
