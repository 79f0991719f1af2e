//! The SNS alert: a subject a person can read in a mail client and a body that lists the worst
//! offenders first, within SNS's limits however large the fleet.

use std::fmt::Write as _;

use compliance_rules::exemptions::Check;
use compliance_rules::report::describe_violation;
use compliance_rules::result::{Applied, Coverage, InstanceResult, Reason, ScanResult, Violation};

use compliance_rules::sns::field;
pub use compliance_rules::sns::{MAX_MESSAGE_BYTES, MAX_SUBJECT_CHARS};

/// The body's own budget: below the cap, with room for the closing line that says what was cut.
const BODY_BUDGET: usize = MAX_MESSAGE_BYTES - 4_096;

/// The alert's subject: stack, counts and percentage, printable ASCII, under 100 characters.
pub fn subject(result: &ScanResult) -> String {
    let s = &result.summary;
    let judged = s.scanned - s.exempt;
    compliance_rules::sns::subject(&format!(
        "[{}] EC2 compliance: {} of {} instances non-compliant ({:.1}% compliant)",
        result.stack, s.non_compliant, judged, s.compliance_percentage
    ))
}

/// How many expired exemptions the alert names, and how many resources of each.
const MAX_EXPIRED: usize = 50;
const MAX_EXPIRED_RESOURCES: usize = 10;

/// The active exemption that waives `v` on instance `i`, if any: one naming the instance for
/// ingress, else one naming the violation's group.
fn waiver<'a>(i: &'a InstanceResult, v: &Violation) -> Option<&'a Applied> {
    let ingress = || i.exemptions.iter().filter(|a| a.check == Check::Ingress);
    ingress()
        .find(|a| a.group_id.is_none())
        .or_else(|| ingress().find(|a| a.group_id.as_deref() == Some(v.group_id.as_str())))
}

/// How bad an instance is, for ordering: world-open rules first (all traffic, then all ports, then
/// restricted ports), then the number of missing tags; waived findings do not count.
fn severity(i: &InstanceResult) -> (usize, usize, usize, usize) {
    let count = |r: Reason| {
        i.violations
            .iter()
            .filter(|v| v.reason == r && waiver(i, v).is_none())
            .count()
    };
    let tags_waived = i.exempted_findings.contains(&Check::Tags);
    (
        count(Reason::AllTraffic),
        count(Reason::AllPorts),
        count(Reason::RestrictedPorts),
        if tags_waived { 0 } else { i.missing_tags.len() },
    )
}

/// `id (owner ..., last day ...)` of an exemption, each value on this line.
fn exemption_label(a: &Applied) -> String {
    let mut label = field(&a.id, 130);
    if let Some(owner) = &a.owner {
        let _ = write!(label, ", owner {}", field(owner, 130));
    }
    match &a.expires {
        Some(day) => {
            let _ = write!(label, ", last day {}", field(day, 10));
        }
        None => label.push_str(", no expiry"),
    }
    label
}

/// The checks of an instance's entries for one exemption, `tags`, `ingress` or `tags, ingress`,
/// with the group when it covers the instance through one.
fn checks_of(list: &[Applied], a: &Applied) -> String {
    list.iter()
        .filter(|b| b.id == a.id && b.expires == a.expires)
        .map(|b| match &b.group_id {
            Some(g) => format!("{} via {g}", b.check),
            None => b.check.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per exemption of `list` (its entries for several checks merged).
fn exemption_lines(b: &mut String, list: &[Applied], lead: &str) {
    let mut seen: Vec<(&str, Option<&str>)> = Vec::new();
    for a in list {
        let key = (a.id.as_str(), a.expires.as_deref());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let _ = writeln!(
            b,
            "   {lead} {} for {}",
            exemption_label(a),
            field(&checks_of(list, a), 300)
        );
    }
}

fn instance_block(n: usize, i: &InstanceResult) -> String {
    let mut b = String::new();
    // Names, tag keys and group details come from the fleet: each stays on its own line.
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
    if i.exempted_findings.contains(&Check::Tags) {
        let _ = writeln!(b, "   (missing tags waived by an exemption)");
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
        let waived = waiver(i, v)
            .map(|a| format!(" (waived by {})", field(&a.id, 130)))
            .unwrap_or_default();
        let _ = writeln!(b, "   open: {}{waived}", field(&describe_violation(v), 500));
    }
    exemption_lines(&mut b, &i.exemptions, "exemption");
    exemption_lines(
        &mut b,
        &i.expired_exemptions,
        "EXPIRED exemption (waives nothing)",
    );
    if let Some(why) = &i.exempt_tag_error {
        let _ = writeln!(b, "   exempt tag not read: {}", field(why, 400));
    }
    b
}

/// The expired exemptions that still match resources, one line each: who to ask, since when,
/// and what they would cover. Empty when there are none.
fn expired_section(expired: &[Coverage]) -> String {
    let mut out = String::new();
    if expired.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nExpired exemptions still matching resources (they waive nothing any more):"
    );
    for c in expired.iter().take(MAX_EXPIRED) {
        let resources: Vec<&String> = c.instances.iter().chain(&c.groups).collect();
        let mut named = resources
            .iter()
            .take(MAX_EXPIRED_RESOURCES)
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if resources.len() > MAX_EXPIRED_RESOURCES {
            let _ = write!(
                named,
                " and {} more",
                resources.len() - MAX_EXPIRED_RESOURCES
            );
        }
        let checks: Vec<&str> = c.checks.iter().map(|c| c.as_str()).collect();
        let _ = writeln!(
            out,
            "- {} (owner {}): expired, last day {}; {} on {}",
            field(&c.id, 130),
            field(c.owner.as_deref().unwrap_or("none"), 130),
            field(c.expires.as_deref().unwrap_or("none"), 10),
            checks.join(", "),
            field(&named, 400)
        );
    }
    if expired.len() > MAX_EXPIRED {
        let _ = writeln!(
            out,
            "- ... and {} more, named in the full result.",
            expired.len() - MAX_EXPIRED
        );
    }
    out
}

/// The alert's body: totals, where the full result is, the non-compliant instances worst first,
/// then the violating groups. Stops adding entries before SNS's cap and says how many were left out.
pub fn body(result: &ScanResult, bucket: &str, key: &str) -> String {
    let s = &result.summary;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "EC2 compliance scan of stack {} (account {}, regions {}) at {}.",
        result.stack,
        result.account_id.as_deref().unwrap_or("unknown"),
        result.regions.join(", "),
        result.finished_at
    );
    let _ = writeln!(
        out,
        "{} instances scanned: {} non-compliant, {} compliant, {} exempt; {:.1}% compliant.",
        s.scanned, s.non_compliant, s.compliant, s.exempt, s.compliance_percentage
    );
    let _ = writeln!(
        out,
        "{} instances miss required tags; {} security-group rules are open to the world.",
        s.instances_missing_tags, s.open_rules
    );
    if s.exempted_findings > 0 {
        let _ = writeln!(
            out,
            "{} findings are waived by active exemptions.",
            s.exempted_findings
        );
    }
    // Before the offenders, so a large fleet's list never pushes it out of the message.
    out.push_str(&expired_section(&result.exemption_coverage(true)));
    let _ = writeln!(out, "\nFull result: s3://{bucket}/{key}\n");

    let mut offenders: Vec<&InstanceResult> = result
        .instances
        .iter()
        .filter(|i| !i.compliant && !i.exempt)
        .collect();
    offenders.sort_by(|a, b| {
        severity(b)
            .cmp(&severity(a))
            .then_with(|| (&a.region, &a.instance_id).cmp(&(&b.region, &b.instance_id)))
    });
    let _ = writeln!(out, "Non-compliant instances, worst first:");
    let mut shown = 0;
    for (n, i) in offenders.iter().enumerate() {
        let block = instance_block(n + 1, i);
        if out.len() + block.len() > BODY_BUDGET {
            break;
        }
        out.push_str(&block);
        shown += 1;
    }
    let mut groups_shown = 0;
    if shown == offenders.len() && !result.security_groups.is_empty() {
        let _ = writeln!(out, "\nSecurity groups with rules open to the world:");
        for g in &result.security_groups {
            let mut block = format!(
                "- {} \"{}\" ({}, {}) attached to {} scanned instance(s)\n",
                g.group_id,
                field(&g.group_name, 255),
                g.vpc_id.as_deref().unwrap_or("no VPC"),
                g.region,
                g.attached_instances
            );
            for v in &g.violations {
                let _ = writeln!(block, "   open: {}", field(&describe_violation(v), 500));
            }
            exemption_lines(&mut block, &g.exemptions, "waived by exemption");
            exemption_lines(
                &mut block,
                &g.expired_exemptions,
                "EXPIRED exemption (waives nothing)",
            );
            if out.len() + block.len() > BODY_BUDGET {
                break;
            }
            out.push_str(&block);
            groups_shown += 1;
        }
    }
    let left_instances = offenders.len() - shown;
    let left_groups = if shown == offenders.len() {
        result.security_groups.len() - groups_shown
    } else {
        result.security_groups.len()
    };
    if left_instances > 0 || left_groups > 0 {
        let _ = writeln!(
            out,
            "\n... {left_instances} more non-compliant instance(s) and {left_groups} violating group(s) \
             are listed only in the full result: s3://{bucket}/{key}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use compliance_rules::result::{ScanSettings, Summary, Violation, SCAN_SCHEMA_VERSION};

    fn violation(group: &str, reason: Reason) -> Violation {
        Violation {
            group_id: group.into(),
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            cidr: "0.0.0.0/0".into(),
            reason,
            ports: vec![22],
        }
    }

    fn instance(id: &str, missing: usize, violations: Vec<Violation>) -> InstanceResult {
        InstanceResult {
            instance_id: id.into(),
            region: "us-east-1".into(),
            state: "running".into(),
            name: Some(format!("name-{id}")),
            compliant: missing == 0 && violations.is_empty(),
            exempt: false,
            missing_tags: ["Environment", "Owner", "CostCenter"][..missing]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            near_misses: vec![],
            security_groups: vec![],
            violations,
            ..InstanceResult::default()
        }
    }

    fn result(stack: &str, instances: Vec<InstanceResult>) -> ScanResult {
        let nc = instances.iter().filter(|i| !i.compliant).count() as u64;
        ScanResult {
            schema_version: SCAN_SCHEMA_VERSION,
            started_at: "2024-01-01T00:00:00Z".into(),
            finished_at: "2024-01-01T00:00:01Z".into(),
            duration_ms: 1000,
            stack: stack.into(),
            account_id: Some("123456789012".into()),
            regions: vec!["us-east-1".into()],
            settings: ScanSettings::default(),
            summary: Summary {
                scanned: instances.len() as u64,
                exempt: 0,
                compliant: instances.len() as u64 - nc,
                non_compliant: nc,
                compliance_percentage: 50.0,
                instances_missing_tags: 0,
                open_rules: 0,
                exempted_findings: 0,
                accounts: Vec::new(),
            },
            instances,
            security_groups: vec![],
            errors: Vec::new(),
        }
    }

    /// A tag or name from the fleet cannot forge lines in the security team's mail: each
    /// value stays on its own line and is clipped.
    #[test]
    fn values_from_the_fleet_cannot_forge_lines() {
        let mut i = instance("i-1", 1, vec![violation("sg-1", Reason::AllPorts)]);
        i.name = Some("web\nSubject: all clear\n\nNothing to see".into());
        i.missing_tags = vec!["Owner\r\nX-Forged: yes".into()];
        let mut r = result("prod", vec![i]);
        r.security_groups
            .push(compliance_rules::result::GroupResult {
                group_id: "sg-1".into(),
                group_name: format!("open\nFrom: ceo@example.com{}", "x".repeat(1000)),
                vpc_id: None,
                region: "us-east-1".into(),
                attached_instances: 1,
                violations: vec![violation("sg-1", Reason::AllPorts)],
                ..Default::default()
            });
        let body = body(&r, "bucket", "key");
        for forged in [
            "Subject: all clear",
            "X-Forged: yes",
            "From: ceo@example.com",
        ] {
            assert!(
                !body.lines().any(|l| l.trim_start().starts_with(forged)),
                "{forged:?} starts a line:\n{body}"
            );
        }
        assert!(
            body.contains("web?Subject: all clear??Nothing to see"),
            "{body}"
        );
        assert!(body.lines().all(|l| l.chars().count() <= 600), "{body}");
    }

    fn applied(id: &str, check: Check, group: Option<&str>, expires: &str) -> Applied {
        Applied {
            check,
            id: id.into(),
            group_id: group.map(str::to_string),
            expires: Some(expires.into()),
            reason: Some(format!("reason of {id}")),
            owner: Some(format!("{id}@example.com")),
        }
    }

    #[test]
    fn expired_exemptions_are_named_with_owner_and_last_day() {
        let mut i = instance("i-1", 2, vec![violation("sg-1", Reason::RestrictedPorts)]);
        i.expired_exemptions = vec![
            applied("old-ssh", Check::Ingress, Some("sg-1"), "2024-04-30"),
            applied("old-tags", Check::Tags, None, "2024-04-01"),
        ];
        let mut waived = instance("i-2", 1, vec![violation("sg-2", Reason::AllPorts)]);
        waived.exemptions = vec![applied("web", Check::Ingress, Some("sg-2"), "2024-06-01")];
        waived.exempted_findings = vec![Check::Ingress];
        waived.exempt_tag_error = Some("\"maybe\" is not an exemption".into());
        let mut r = result("prod", vec![i, waived]);
        r.summary.exempted_findings = 1;
        r.security_groups
            .push(compliance_rules::result::GroupResult {
                group_id: "sg-1".into(),
                group_name: "ssh".into(),
                region: "us-east-1".into(),
                attached_instances: 1,
                violations: vec![violation("sg-1", Reason::RestrictedPorts)],
                expired_exemptions: vec![applied("old-ssh", Check::Ingress, None, "2024-04-30")],
                ..Default::default()
            });
        let b = body(&r, "bkt", "k.json");
        assert!(
            b.contains("1 findings are waived by active exemptions."),
            "{b}"
        );
        assert!(
            b.contains(
                "- old-ssh (owner old-ssh@example.com): expired, last day 2024-04-30; ingress on i-1, sg-1\n"
            ),
            "{b}"
        );
        assert!(
            b.contains(
                "- old-tags (owner old-tags@example.com): expired, last day 2024-04-01; tags on i-1\n"
            ),
            "{b}"
        );
        // The section comes before the list, so a long list never cuts it.
        assert!(b.find("Expired exemptions").unwrap() < b.find("Full result").unwrap());
        assert!(b.contains(
            "   EXPIRED exemption (waives nothing) old-ssh, owner old-ssh@example.com, last day 2024-04-30 for ingress via sg-1\n"
        ), "{b}");
        assert!(
            b.contains("sg-2 tcp port 22 open to 0.0.0.0/0 (all ports) (waived by web)"),
            "{b}"
        );
        assert!(b.contains(
            "   exemption web, owner web@example.com, last day 2024-06-01 for ingress via sg-2\n"
        ), "{b}");
        assert!(
            b.contains("   exempt tag not read: \"maybe\" is not an exemption\n"),
            "{b}"
        );
        // i-2's only unwaived finding is its missing tag: it comes after i-1's open rule.
        assert!(b.find(". i-1 ").unwrap() < b.find(". i-2 ").unwrap(), "{b}");
    }

    #[test]
    fn no_exemption_no_exemption_lines() {
        let r = result("dev", vec![instance("i-1", 1, vec![])]);
        let b = body(&r, "bkt", "k.json");
        assert!(!b.contains("xemption"), "{b}");
        assert!(!b.contains("waive"), "{b}");
    }

    /// An exemption's id, owner and reason come from configuration or a tag: none can start a
    /// line of its own.
    #[test]
    fn exemption_values_cannot_forge_lines() {
        let mut i = instance("i-1", 1, vec![]);
        let mut a = applied("x\nSubject: forged", Check::Tags, None, "2024-01-01");
        a.owner = Some("o\r\nFrom: ceo@example.com".into());
        i.expired_exemptions = vec![a];
        i.exempt_tag_error = Some("\"v\nX-Forged: yes\"".into());
        let b = body(&result("prod", vec![i]), "bkt", "k.json");
        for forged in ["Subject: forged", "From: ceo@example.com", "X-Forged: yes"] {
            assert!(
                !b.lines().any(|l| l.trim_start().starts_with(forged)),
                "{forged:?} starts a line:\n{b}"
            );
        }
    }

    #[test]
    fn subject_is_short_and_printable() {
        let r = result("dev", vec![instance("i-1", 1, vec![])]);
        let s = subject(&r);
        assert_eq!(
            s,
            "[dev] EC2 compliance: 1 of 1 instances non-compliant (50.0% compliant)"
        );
        let long = result(&"é-long-stack-name".repeat(10), vec![]);
        let s = subject(&long);
        assert!(s.len() < MAX_SUBJECT_CHARS, "{}", s.len());
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '));
    }

    #[test]
    fn worst_offenders_come_first() {
        let r = result(
            "dev",
            vec![
                instance("i-a", 1, vec![]),
                instance("i-b", 0, vec![violation("sg-1", Reason::RestrictedPorts)]),
                instance("i-c", 0, vec![violation("sg-2", Reason::AllTraffic)]),
                instance("i-d", 3, vec![]),
                instance("i-e", 0, vec![]),
            ],
        );
        let b = body(&r, "bkt", "scans/k.json");
        let pos = |id: &str| b.find(&format!(". {id} ")).unwrap_or(usize::MAX);
        assert!(pos("i-c") < pos("i-b") && pos("i-b") < pos("i-d") && pos("i-d") < pos("i-a"));
        assert_eq!(pos("i-e"), usize::MAX, "compliant instances are not listed");
        assert!(b.contains("s3://bkt/scans/k.json"));
        assert!(b.contains("sg-2 tcp port 22 open to 0.0.0.0/0 (all traffic)"));
        assert!(!b.contains("more non-compliant"));
    }

    #[test]
    fn huge_fleet_stays_under_the_cap_and_says_what_was_cut() {
        let many: Vec<_> = (0..20_000)
            .map(|n| {
                instance(
                    &format!("i-{n:08}"),
                    3,
                    vec![violation("sg-1", Reason::RestrictedPorts)],
                )
            })
            .collect();
        let b = body(&result("dev", many), "bkt", "scans/k.json");
        assert!(b.len() < MAX_MESSAGE_BYTES, "{}", b.len());
        assert!(
            b.len() > MAX_MESSAGE_BYTES / 2,
            "the budget is used, not wasted"
        );
        assert!(b.contains("more non-compliant instance(s)"));
        assert!(b.trim_end().ends_with("s3://bkt/scans/k.json"));
    }
}
