//! The SNS alert: a subject a person can read in a mail client and a body that names the worst
//! accounts and then the worst offenders first, within SNS's limits however large the fleet.
//!
//! The scanner never holds the whole result, so the alert is written from a [`Digest`]: the
//! totals, the errors, and at most [`MAX_OFFENDERS`] instances (the worst) and [`MAX_GROUPS`]
//! groups, kept as the scan goes: more than the message can name.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Write as _;

use compliance_rules::exemptions::Check;
use compliance_rules::report::describe_violation;
use compliance_rules::result::{
    AccountSummary, Applied, Coverage, GroupResult, InstanceResult, Reason, ScanError, ScanResult,
    Summary, Violation,
};

use compliance_rules::sns::field;
pub use compliance_rules::sns::{MAX_MESSAGE_BYTES, MAX_SUBJECT_CHARS};

/// The body's own budget: below the cap, with room for the closing line that says what was cut.
const BODY_BUDGET: usize = MAX_MESSAGE_BYTES - 4_096;

/// Offenders a digest keeps: more than the body's budget names in practice (a block is 70 bytes
/// at the very least, usually over 100: 3,000 fill most of the 252 KB budget).
pub const MAX_OFFENDERS: usize = 3_000;
/// Violating groups a digest keeps.
pub const MAX_GROUPS: usize = 2_000;
/// Resources kept per expired exemption (the message names 10; the rest are counted).
const MAX_EXPIRED_KEPT: usize = 100;
/// Accounts and errors the body names.
const MAX_ACCOUNTS: usize = 50;
const MAX_ERRORS: usize = 30;

/// How bad an offender is ([`severity`]), then (account, region, id) reversed: the greater key
/// is the worse offender, ties named in id order.
type Rank = (
    (usize, usize, usize, usize),
    Reverse<(String, String, String)>,
);

/// An offender ranked for the digest.
#[derive(Debug)]
struct Ranked {
    key: Rank,
    instance: InstanceResult,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.key == other.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// What an expired exemption would cover, as far as the digest keeps it.
#[derive(Debug, Clone)]
struct Expired {
    owner: Option<String>,
    checks: BTreeSet<Check>,
    /// The first resources by id, at most [`MAX_EXPIRED_KEPT`].
    resources: BTreeSet<String>,
    /// Resources seen beyond those kept.
    more: u64,
}

/// What the alert needs of a scan, bounded however large the fleet: fed a page of verdicts and a
/// region's groups at a time.
#[derive(Debug, Default)]
pub struct Digest {
    /// The stack.
    pub stack: String,
    /// The scanner's own account.
    pub account_id: Option<String>,
    /// The regions scanned.
    pub regions: Vec<String>,
    /// When the scan finished.
    pub finished_at: String,
    /// The totals, with the per-account breakdown.
    pub summary: Summary,
    /// What could not be scanned.
    pub errors: Vec<ScanError>,
    /// The worst offenders, at most [`MAX_OFFENDERS`] (a min-heap: the least bad on top).
    offenders: BinaryHeap<Reverse<Ranked>>,
    offenders_total: u64,
    /// The first violating groups by (account, region, id), at most [`MAX_GROUPS`].
    groups: BTreeMap<(String, String, String), GroupResult>,
    groups_total: u64,
    expired: BTreeMap<(String, Option<String>, Option<String>), Expired>,
}

impl Digest {
    /// An empty digest.
    pub fn new() -> Digest {
        Digest::default()
    }

    /// The digest of a whole result (a result already in memory, as in tests).
    pub fn of(result: &ScanResult) -> Digest {
        let mut d = Digest {
            stack: result.stack.clone(),
            account_id: result.account_id.clone(),
            regions: result.regions.clone(),
            finished_at: result.finished_at.clone(),
            summary: result.summary.clone(),
            errors: result.errors.clone(),
            ..Digest::default()
        };
        d.add_instances(&result.instances);
        d.add_groups(&result.security_groups);
        d
    }

    /// Takes in a page of verdicts: keeps the worst offenders and notes expired exemptions.
    pub fn add_instances(&mut self, page: &[InstanceResult]) {
        for i in page {
            for a in &i.expired_exemptions {
                let group = a.group_id.clone();
                self.note_expired(a, Some(i.instance_id.clone()));
                if group.is_some() {
                    self.note_expired(a, group);
                }
            }
            if i.compliant || i.exempt {
                continue;
            }
            self.offenders_total += 1;
            let key = (
                severity(i),
                Reverse((
                    i.account_id.clone(),
                    i.region.clone(),
                    i.instance_id.clone(),
                )),
            );
            if self.offenders.len() >= MAX_OFFENDERS {
                let least = self.offenders.peek().map(|r| &r.0.key);
                if least.is_some_and(|least| &key <= least) {
                    continue;
                }
                self.offenders.pop();
            }
            self.offenders.push(Reverse(Ranked {
                key,
                instance: i.clone(),
            }));
        }
    }

    /// Takes in a region's violating groups.
    pub fn add_groups(&mut self, groups: &[GroupResult]) {
        for g in groups {
            for a in &g.expired_exemptions {
                self.note_expired(a, Some(g.group_id.clone()));
            }
            self.groups_total += 1;
            let key = (g.account_id.clone(), g.region.clone(), g.group_id.clone());
            if self.groups.len() >= MAX_GROUPS {
                match self.groups.last_key_value() {
                    Some((last, _)) if *last > key => {
                        self.groups.pop_last();
                    }
                    _ => continue,
                }
            }
            self.groups.insert(key, g.clone());
        }
    }

    fn note_expired(&mut self, a: &Applied, resource: Option<String>) {
        let e = self
            .expired
            .entry((a.id.clone(), a.expires.clone(), a.reason.clone()))
            .or_insert_with(|| Expired {
                owner: a.owner.clone(),
                checks: BTreeSet::new(),
                resources: BTreeSet::new(),
                more: 0,
            });
        e.checks.insert(a.check);
        let Some(r) = resource else { return };
        if e.resources.contains(&r) {
            return;
        }
        e.resources.insert(r);
        if e.resources.len() > MAX_EXPIRED_KEPT {
            e.resources.pop_last();
            e.more += 1;
        }
    }

    /// Offenders kept, worst first.
    fn worst(&self) -> Vec<&InstanceResult> {
        let mut list: Vec<&Ranked> = self.offenders.iter().map(|r| &r.0).collect();
        list.sort_by(|a, b| b.cmp(a));
        list.into_iter().map(|r| &r.instance).collect()
    }

    /// The expired exemptions as [`Coverage`] (resources as kept, in the instances list) with the
    /// count of resources beyond them, by id and last day.
    fn expired(&self) -> Vec<(Coverage, u64)> {
        self.expired
            .iter()
            .map(|((id, expires, reason), e)| {
                (
                    Coverage {
                        id: id.clone(),
                        expires: expires.clone(),
                        reason: reason.clone(),
                        owner: e.owner.clone(),
                        checks: e.checks.iter().copied().collect(),
                        instances: e.resources.iter().cloned().collect(),
                        groups: Vec::new(),
                    },
                    e.more,
                )
            })
            .collect()
    }
}

/// The alert's subject: stack, counts and percentage, printable ASCII, under 100 characters.
pub fn subject(digest: &Digest) -> String {
    let s = &digest.summary;
    let result = digest;
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
    let account = if i.account_id.is_empty() {
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
fn expired_section(expired: &[(Coverage, u64)]) -> String {
    let mut out = String::new();
    if expired.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nExpired exemptions still matching resources (they waive nothing any more):"
    );
    for (c, beyond) in expired.iter().take(MAX_EXPIRED) {
        let resources: Vec<&String> = c.instances.iter().chain(&c.groups).collect();
        let mut named = resources
            .iter()
            .take(MAX_EXPIRED_RESOURCES)
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let more = resources.len().saturating_sub(MAX_EXPIRED_RESOURCES) as u64 + beyond;
        if more > 0 {
            let _ = write!(named, " and {more} more");
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

/// What could not be scanned, one line per account or region: empty when everything was read.
fn errors_section(errors: &[ScanError]) -> String {
    let mut out = String::new();
    if errors.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nNot scanned ({} account(s) or region(s); the totals leave them out):",
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

/// The accounts, worst first (most non-compliant instances, then the lowest percentage), when the
/// scan covered more than one.
fn accounts_section(accounts: &[AccountSummary]) -> String {
    let mut out = String::new();
    if accounts.len() < 2 {
        return out;
    }
    let mut list: Vec<&AccountSummary> = accounts.iter().collect();
    list.sort_by(|a, b| {
        b.counts
            .non_compliant
            .cmp(&a.counts.non_compliant)
            .then(
                a.counts
                    .compliance_percentage
                    .total_cmp(&b.counts.compliance_percentage),
            )
            .then_with(|| a.account_id.cmp(&b.account_id))
    });
    let _ = writeln!(out, "\nAccounts, worst first:");
    for a in list.iter().take(MAX_ACCOUNTS) {
        let c = &a.counts;
        let failed = if a.errors > 0 {
            format!("; {} region(s) not scanned", a.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "- {}: {} of {} non-compliant ({:.1}% compliant), {} open rules{failed}",
            a.account_id,
            c.non_compliant,
            c.scanned - c.exempt,
            c.compliance_percentage,
            c.open_rules
        );
    }
    if list.len() > MAX_ACCOUNTS {
        let _ = writeln!(
            out,
            "- ... and {} more accounts.",
            list.len() - MAX_ACCOUNTS
        );
    }
    out
}

/// The alert's body: totals, where the full result is, the non-compliant instances worst first,
/// then the violating groups. Stops adding entries before SNS's cap and says how many were left out.
pub fn body(result: &Digest, bucket: &str, key: &str) -> String {
    let s = &result.summary;
    let mut out = String::new();
    let accounts = if s.accounts.len() > 1 {
        format!(
            "{} accounts from account {}",
            s.accounts.len(),
            result.account_id.as_deref().unwrap_or("unknown")
        )
    } else {
        format!(
            "account {}",
            result.account_id.as_deref().unwrap_or("unknown")
        )
    };
    let _ = writeln!(
        out,
        "EC2 compliance scan of stack {} ({accounts}, regions {}) at {}.",
        result.stack,
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
    // Before the offenders, so a large fleet's list never pushes them out of the message.
    out.push_str(&errors_section(&result.errors));
    out.push_str(&accounts_section(&s.accounts));
    out.push_str(&expired_section(&result.expired()));
    let _ = writeln!(out, "\nFull result: s3://{bucket}/{key}\n");

    let offenders = result.worst();
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
    let all_offenders_shown = shown as u64 == result.offenders_total;
    if all_offenders_shown && !result.groups.is_empty() {
        let _ = writeln!(out, "\nSecurity groups with rules open to the world:");
        for g in result.groups.values() {
            let account = if g.account_id.is_empty() {
                String::new()
            } else {
                format!("account {}, ", g.account_id)
            };
            let mut block = format!(
                "- {} \"{}\" ({account}{}, {}) attached to {} scanned instance(s)\n",
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
    let left_instances = result.offenders_total - shown as u64;
    let left_groups = if all_offenders_shown {
        result.groups_total - groups_shown
    } else {
        result.groups_total
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

    fn body(r: &ScanResult, bucket: &str, key: &str) -> String {
        super::body(&Digest::of(r), bucket, key)
    }

    fn subject(r: &ScanResult) -> String {
        super::subject(&Digest::of(r))
    }

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

    #[test]
    fn the_digest_keeps_the_worst_offenders_whatever_the_fleet() {
        let mut d = Digest::new();
        // 10,000 offenders missing one tag, then 5 with an all-traffic rule, in pages.
        for page in 0..10 {
            let list: Vec<InstanceResult> = (0..1000)
                .map(|n| instance(&format!("i-{page:02}{n:04}"), 1, vec![]))
                .collect();
            d.add_instances(&list);
        }
        let worst: Vec<InstanceResult> = (0..5)
            .map(|n| {
                instance(
                    &format!("i-worst{n}"),
                    0,
                    vec![violation("sg-1", Reason::AllTraffic)],
                )
            })
            .collect();
        d.add_instances(&worst);
        assert_eq!(d.offenders.len(), MAX_OFFENDERS);
        assert_eq!(d.offenders_total, 10_005);
        let kept = d.worst();
        let first: Vec<&str> = kept[..5].iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(
            first,
            ["i-worst0", "i-worst1", "i-worst2", "i-worst3", "i-worst4"]
        );
        // Among equals, the first ids are kept.
        assert_eq!(kept[5].instance_id, "i-000000");
        d.summary.non_compliant = 10_005;
        let b = super::body(&d, "bkt", "k.json");
        assert!(b.len() < MAX_MESSAGE_BYTES);
        assert!(
            b.contains("more non-compliant instance(s)"),
            "the rest is counted"
        );
    }

    #[test]
    fn accounts_worst_first_and_what_was_not_scanned() {
        let account = |id: &str, nc: u64, pct: f64, errors: u64| AccountSummary {
            account_id: id.into(),
            counts: compliance_rules::result::Counts {
                scanned: 10,
                non_compliant: nc,
                compliant: 10 - nc,
                compliance_percentage: pct,
                ..Default::default()
            },
            errors,
            regions: vec![],
        };
        let mut r = result("org", vec![instance("i-1", 1, vec![])]);
        r.summary.accounts = vec![
            account("111111111111", 2, 80.0, 0),
            account("222222222222", 5, 50.0, 1),
            account("333333333333", 2, 70.0, 0),
        ];
        r.errors = vec![ScanError {
            account_id: "222222222222".into(),
            region: Some("eu-west-1".into()),
            operation: "DescribeInstances".into(),
            code: Some("AuthFailure".into()),
            cause: "DescribeInstances in eu-west-1: AuthFailure: no\nSubject: forged".into(),
        }];
        let b = body(&r, "bkt", "k.json");
        let pos = |s: &str| b.find(s).unwrap_or(usize::MAX);
        assert!(
            pos("- 222222222222: 5 of 10") < pos("- 333333333333: 2 of 10"),
            "{b}"
        );
        assert!(
            pos("- 333333333333: 2 of 10") < pos("- 111111111111: 2 of 10"),
            "{b}"
        );
        assert!(b.contains("; 1 region(s) not scanned"), "{b}");
        assert!(
            b.contains("- account 222222222222 eu-west-1: DescribeInstances"),
            "{b}"
        );
        assert!(!b.lines().any(|l| l.starts_with("Subject: forged")), "{b}");
        assert!(b.contains("3 accounts from account 123456789012"), "{b}");
    }
}
