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

/// Accounts or regions not read, listed before "and N more".
const MAX_ERRORS: usize = 50;

/// The stack's own account, as the result names it.
fn own(result: &EventResult) -> &str {
    result.scan.account_id.as_deref().unwrap_or("")
}

/// ` in account <id>` for a member account's change or resource; nothing for the own account's,
/// so an alert of the own account alone reads as it always did.
fn in_member(result: &EventResult, account: &str) -> String {
    if account.is_empty() || account == own(result) {
        String::new()
    } else {
        format!(" in account {}", field(account, 40))
    }
}

/// The accounts of the changes judged, sorted.
fn accounts(result: &EventResult) -> BTreeSet<&str> {
    result
        .events
        .iter()
        .map(|c| c.change.account.as_str())
        .collect()
}

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
    // The account after the actor: a subject cut at 100 characters keeps change and actor.
    let change = match result.events.as_slice() {
        [one] if one.change.actor.is_some() => format!(
            "{} by {}{}",
            one.change.name,
            actor_short(one),
            in_member(result, &one.change.account)
        ),
        [one] => format!(
            "{}{}",
            one.change.name,
            in_member(result, &one.change.account)
        ),
        many => match accounts(result).len() {
            1 => format!(
                "{} EC2 changes{}",
                many.len(),
                in_member(result, &many[0].change.account)
            ),
            n => format!("{} EC2 changes in {n} accounts", many.len()),
        },
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

fn instance_block(n: usize, i: &InstanceResult, own: &str, causes: &[&JudgedChange]) -> String {
    let mut b = String::new();
    let name = i
        .name
        .as_deref()
        .map(|n| format!(" \"{}\"", field(n, 100)))
        .unwrap_or_default();
    // A member's instance names its account, as the scheduled scan's alert does.
    let account = if i.account_id.is_empty() || i.account_id == own {
        String::new()
    } else {
        format!("account {}, ", i.account_id)
    };
    let _ = writeln!(
        b,
        "{n}. {}{name} ({account}{}, {})",
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
    let members: Vec<&str> = accounts(result)
        .into_iter()
        .filter(|a| *a != own(result))
        .collect();
    let _ = writeln!(
        out,
        "EC2 compliance: {} change(s) to stack {} (account {}, {}) were judged at {}.",
        result.events.len(),
        result.scan.stack,
        result.scan.account_id.as_deref().unwrap_or("unknown"),
        result.scan.regions.join(", "),
        result.scan.finished_at
    );
    if !members.is_empty() {
        let listed: Vec<String> = members.iter().map(|a| field(a, 40)).collect();
        let _ = writeln!(
            out,
            "Changes in member account(s): {}.",
            list(&listed, IDS_PER_CHANGE)
        );
    }
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
            "- {} {}{} by {} (event {})",
            field(&c.change.time, 40),
            field(&c.change.name, 100),
            in_member(result, &c.change.account),
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
        let unread = result.scan.errors.iter().any(|e| {
            e.account_id == c.change.account
                && e.region.as_ref().is_none_or(|r| *r == c.change.region)
        });
        if unread && c.judged.is_empty() {
            let _ = writeln!(
                out,
                "  -> not judged: account {} could not be read there (below)",
                field(&c.change.account, 40)
            );
        } else if offenders.is_empty() {
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

    // What was not read closes the body; its room is kept from the start.
    let tail = not_read(result);
    let budget = BODY_BUDGET.saturating_sub(tail.len());
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
        let block = instance_block(n + 1, i, own(result), cause);
        if out.len() + block.len() > budget {
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
                "- {} \"{}\" ({}, {}){} attached to {} judged instance(s)\n",
                g.group_id,
                field(&g.group_name, 255),
                g.vpc_id.as_deref().unwrap_or("no VPC"),
                g.region,
                in_member(result, &g.account_id),
                g.attached_instances
            );
            for v in &g.violations {
                let _ = writeln!(block, "   open: {}", field(&describe_violation(v), 500));
            }
            if out.len() + block.len() > budget {
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
    out.push_str(&tail);
    out
}

/// The member accounts (or regions of them) whose changes could not be judged, as the scheduled
/// scan's alert lists what it did not scan; empty when every account was read.
fn not_read(result: &EventResult) -> String {
    let errors = &result.scan.errors;
    let mut out = String::new();
    if errors.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nNot read ({} account(s) or region(s); their changes were not judged):",
        errors.len()
    );
    for e in errors.iter().take(MAX_ERRORS) {
        let _ = writeln!(
            out,
            "- account {} {}: {}",
            e.account_id,
            e.region.as_deref().unwrap_or("(every region)"),
            field(&e.cause, 400)
        );
    }
    if errors.len() > MAX_ERRORS {
        let _ = writeln!(
            out,
            "- ... and {} more, listed in the full result's errors.",
            errors.len() - MAX_ERRORS
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

    /// A member account's change names the account in the subject (after the change and actor),
    /// on its change line and on its instance; an account not read is listed at the end.
    #[test]
    fn a_member_account_is_named() {
        let member = "222222222222";
        let mut c = change("e-m", Some("arn:aws:iam::222222222222:user/bo"), &["i-m"]);
        c.change.account = member.into();
        let mut i = bad("i-m");
        i.account_id = member.into();
        let mut r = result(vec![c], vec![i]);
        assert_eq!(
            subject(&r),
            "[prod] CreateTags by user/bo in account 222222222222: 1 instance(s) non-compliant"
        );
        let b = body(&r, "bkt", "k");
        assert!(
            b.contains("Changes in member account(s): 222222222222.\n"),
            "{b}"
        );
        assert!(b.contains("CreateTags in account 222222222222 by arn:aws:iam::222222222222:user/bo (event e-m)"), "{b}");
        assert!(
            b.contains("1. i-m \"web i-m\" (account 222222222222, us-east-1, running)\n"),
            "{b}"
        );
        assert!(!b.contains("Not read"), "{b}");

        let mut unread = change("e-n", None, &[]);
        unread.change.account = "333333333333".into();
        unread.judged.clear();
        r.events.push(unread);
        r.scan.errors.push(compliance_rules::result::ScanError {
            account_id: "333333333333".into(),
            region: None,
            operation: "AssumeRole".into(),
            code: Some("AccessDenied".into()),
            cause: "AssumeRole arn:aws:iam::333333333333:role/R in account 333333333333: AccessDenied: no\nSubject: forged".into(),
        });
        assert_eq!(
            subject(&r),
            "[prod] 2 EC2 changes in 2 accounts: 1 instance(s) non-compliant"
        );
        let b = body(&r, "bkt", "k");
        assert!(
            b.contains("-> not judged: account 333333333333 could not be read there (below)"),
            "{b}"
        );
        assert!(b.contains("\nNot read (1 account(s) or region(s); their changes were not judged):\n- account 333333333333 (every region): AssumeRole arn:aws:iam::333333333333:role/R"), "{b}");
        assert!(!b.lines().any(|l| l.starts_with("Subject: forged")), "{b}");
        // The own account's alone reads as before: no account named.
        let own = result(vec![change("e-1", None, &["i-1"])], vec![bad("i-1")]);
        let b = body(&own, "b", "k");
        assert!(b.contains("1. i-1 \"web i-1\" (us-east-1, running)"), "{b}");
        assert!(!b.contains("member account"), "{b}");
    }
}
