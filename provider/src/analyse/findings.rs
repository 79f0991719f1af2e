//! Findings: the stack's drift (the same differences Terraform sees) rated by severity with a fix,
//! plus the checks drift does not make: a subscription awaiting confirmation, role policies wider
//! than the stack needs, and whether the scanner has stored a result lately.

use std::time::Duration;

use serde::Serialize;

use crate::aws::bucket::Bucket;
use crate::aws::roles::{self, Role};
use crate::aws::topic::Topic;
use crate::aws::{Desired, Difference, Hcl, Piece, EXTRA_TAGS, MISSING, TAGS};
use crate::monitor::stack::Observed;

/// How bad a finding is. Everything but [`Severity::Warning`] counts as an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The stack does not work or is exposed.
    Critical,
    /// A safeguard is off or a part will misbehave.
    High,
    /// A setting differs from the wanted one.
    Medium,
    /// Bookkeeping (tags, the dashboard).
    Low,
    /// Worth knowing, not wrong: not counted as an issue.
    Warning,
}

impl Severity {
    /// True when the finding counts towards `total_issues`.
    pub fn is_issue(self) -> bool {
        self != Severity::Warning
    }

    /// The lower-case name, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Warning => "warning",
        }
    }
}

/// The parts of the stack the report is split into, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    /// Scanner and reporter functions.
    Functions,
    /// Their log groups.
    LogGroups,
    /// The four alarms.
    Alarms,
    /// The alert topic and its subscription.
    Topic,
    /// The results bucket.
    Bucket,
    /// The two EventBridge schedules with targets and invoke permissions.
    Schedules,
    /// The functions' IAM roles.
    Roles,
    /// The dashboard.
    Dashboard,
    /// The event-driven pieces: change rule, queues, event source mapping.
    Events,
    /// Whether the scanner stored a result lately.
    ScannerResults,
}

impl Area {
    /// Every area, in report order.
    pub const ALL: [Area; 10] = [
        Area::Functions,
        Area::LogGroups,
        Area::Alarms,
        Area::Topic,
        Area::Bucket,
        Area::Schedules,
        Area::Roles,
        Area::Dashboard,
        Area::Events,
        Area::ScannerResults,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            Area::Functions => "functions",
            Area::LogGroups => "log_groups",
            Area::Alarms => "alarms",
            Area::Topic => "topic",
            Area::Bucket => "bucket",
            Area::Schedules => "schedules",
            Area::Roles => "roles",
            Area::Dashboard => "dashboard",
            Area::Events => "events",
            Area::ScannerResults => "scanner_results",
        }
    }

    /// The heading in the terminal table.
    pub fn title(self) -> &'static str {
        match self {
            Area::Functions => "Lambda functions",
            Area::LogGroups => "Log groups",
            Area::Alarms => "Alarms",
            Area::Topic => "Alert topic",
            Area::Bucket => "Results bucket",
            Area::Schedules => "Schedules",
            Area::Roles => "IAM roles",
            Area::Dashboard => "Dashboard",
            Area::Events => "Change events",
            Area::ScannerResults => "Scanner results",
        }
    }

    /// The area of a piece, from the name the drift gives it (`Lambda function ...`).
    pub fn of_piece(piece: &str) -> Option<Area> {
        const PREFIXES: [(&str, Area); 11] = [
            ("Lambda function ", Area::Functions),
            ("log group ", Area::LogGroups),
            ("alarm ", Area::Alarms),
            ("topic ", Area::Topic),
            ("bucket ", Area::Bucket),
            ("schedule ", Area::Schedules),
            ("IAM role ", Area::Roles),
            ("dashboard ", Area::Dashboard),
            ("SQS queue ", Area::Events),
            ("change rule ", Area::Events),
            ("event source mapping ", Area::Events),
        ];
        PREFIXES
            .iter()
            .find(|(p, _)| piece.starts_with(p))
            .map(|(_, a)| *a)
    }
}

/// One thing found wrong (or worth a warning) with one piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The area it belongs to.
    #[serde(skip)]
    pub area: Area,
    /// The piece, e.g. `Lambda function compliance-scanner-dev`.
    pub resource: String,
    /// What was checked, e.g. `timeout`.
    pub check: String,
    /// How bad it is.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// How to put it right.
    pub fix: String,
}

const APPLY: &str = "Run `terraform apply`: the provider puts every drifted piece back.";

/// Severity and specific advice for one difference.
fn rate(area: Area, setting: &str) -> (Severity, &'static str) {
    use Severity::*;
    match (area, setting) {
        (_, MISSING) => (Critical, "It was deleted outside Terraform; `terraform apply` recreates it."),
        (_, TAGS) => (Low, "`terraform apply` restores the stack's tags (ComplianceStack and ManagedBy mark what the stack owns)."),
        (_, EXTRA_TAGS) => (
            Warning,
            "Tags beyond the settings, e.g. from the provider's default_tags, which this command cannot see: nothing to do if you expect them.",
        ),
        (Area::Bucket, "public access blocked") => (Critical, "Results name instances and open ports: `terraform apply` blocks public access again."),
        (Area::Bucket, "versioning enabled") => (High, "Without versioning an overwritten or deleted result is lost: `terraform apply` enables it."),
        (Area::Bucket, "default encryption") => (High, "`terraform apply` restores default encryption (new objects only; re-copy older ones if needed)."),
        (Area::Bucket, "TLS-only policy") => (High, "`terraform apply` restores the policy that denies plain-HTTP access."),
        (Area::Bucket, _) => (Medium, "`terraform apply` restores the Glacier transition (results are never expired)."),
        (Area::Topic, _) => (High, "No one receives alerts: `terraform apply` subscribes the alert e-mail again; the recipient must confirm."),
        (Area::Functions, "timeout" | "memory") => (Medium, APPLY),
        (Area::Functions, "asynchronous invoke") => (
            Medium,
            "Lambda would retry a failed scheduled run, storing the scan and sending the alert again: `terraform apply` sets no retries.",
        ),
        (Area::Functions, _) => (High, "The function will fail or write to the wrong place: `terraform apply` restores its configuration."),
        (Area::LogGroups, _) => (Medium, "`terraform apply` restores the retention."),
        (Area::Alarms, "actions" | "actions enabled") => (High, "Failures would go unnoticed: `terraform apply` points the alarm at the topic again."),
        (Area::Alarms, _) => (Medium, APPLY),
        (Area::Schedules, "expression") => (Medium, APPLY),
        (Area::Schedules, _) => (High, "The function no longer runs on schedule: `terraform apply` enables the rule, its target and the invoke permission."),
        (Area::Roles, "trust policy" | "attached policies") => (
            Critical,
            "Someone widened who can use the role or what it may do: `terraform apply` restores the trust policy and detaches foreign policies; find out who changed it.",
        ),
        (Area::Roles, _) => (High, "`terraform apply` rewrites the role's policy to the stack's own and removes foreign ones."),
        (Area::Dashboard, _) => (Low, APPLY),
        (Area::Events, crate::aws::UNWANTED) => (Low, "`event_driven` is false: `terraform apply` removes it."),
        (Area::Events, _) => (
            High,
            "Changes are judged only at the next scheduled scan, not within a minute: `terraform apply` restores the change rule, the queues and the event source mapping.",
        ),
        (Area::ScannerResults, _) => (Medium, APPLY),
    }
}

/// What the newest scan could not read: a member account whose role could not be assumed (not
/// installed, or not trusting the scanner's role), or a region that failed. Warnings: the rest of
/// the scan stands.
pub fn unscanned(d: &Desired, errors: &[compliance_rules::result::ScanError]) -> Vec<Finding> {
    let scanner_role = d.role_arn(&d.names.scanner);
    errors
        .iter()
        .map(|e| {
            let whole = e.region.is_none();
            let role = e.operation == "AssumeRole";
            Finding {
                area: Area::ScannerResults,
                resource: match &e.region {
                    Some(r) => format!("account {} in {r}", e.account_id),
                    None => format!("account {}", e.account_id),
                },
                check: if role { "member role".into() } else { "scanned".into() },
                severity: Severity::Warning,
                message: format!(
                    "the newest scan could not read {} ({}): {}",
                    if whole { "this account" } else { "this region" },
                    e.code.as_deref().unwrap_or(&e.operation),
                    e.cause
                ),
                fix: if role {
                    format!(
                        "Install the role {} in account {} trusting {scanner_role} (examples/terraform/member-role, or the StackSet in examples/cloudformation; see docs/organizations.md).",
                        d.scope.member_role_name, e.account_id
                    )
                } else {
                    "See the cause: a region not enabled in the account is left out of scan_regions or enabled; throttling and timeouts pass by themselves.".into()
                },
            }
        })
        .collect()
}

/// Change batches the scanner failed on five times wait in the dead-letter queue: those changes
/// were not judged within a minute (the next scheduled scan judges the resources anyway).
pub fn dead_letters(d: &Desired, o: &Observed) -> Option<Finding> {
    let q = o.dead_letter_queue.present()?;
    (q.messages > 0).then(|| Finding {
        area: Area::Events,
        resource: crate::aws::Piece::label(&crate::aws::queues::Queue::DeadLetter, d),
        check: "dead letters".into(),
        severity: Severity::Warning,
        message: format!(
            "{} change batches failed five times and wait in {}: those changes were not judged within a minute",
            q.messages, d.names.dead_letter_queue
        ),
        fix: format!(
            "Read them (`aws sqs receive-message --queue-url {}`) and the scanner's log to see why; the next scheduled scan judges the resources anyway. Purge the queue once understood.",
            q.url
        ),
    })
}

/// The finding for one drift difference.
pub fn from_difference(d: &Difference) -> Finding {
    // Every piece the drift names has an area; a new kind of piece lands with the functions
    // rather than vanish from the report.
    let area = Area::of_piece(&d.piece).unwrap_or(Area::Functions);
    let (severity, fix) = rate(area, d.setting);
    Finding {
        area,
        resource: d.piece.clone(),
        check: d.setting.to_string(),
        severity,
        message: d.to_string(),
        fix: fix.to_string(),
    }
}

/// A subscription of the alert address that awaits confirmation: alerts are not delivered yet.
pub fn pending_subscription(d: &Desired, o: &Observed) -> Option<Finding> {
    let topic = o.topic.present()?;
    let pending = topic
        .emails
        .iter()
        .any(|(email, arn)| email == &d.alert_email && !arn.starts_with("arn:"));
    pending.then(|| Finding {
        area: Area::Topic,
        resource: Topic.label(d),
        check: "subscription confirmed".into(),
        severity: Severity::Warning,
        message: format!(
            "the subscription of {} is pending confirmation: alerts are not delivered until it is confirmed",
            d.alert_email
        ),
        fix: format!(
            "Open the \"AWS Notification - Subscription Confirmation\" e-mail sent to {} and confirm. It lapses after 3 days; `terraform apply` then subscribes again.",
            d.alert_email
        ),
    })
}

/// Roles whose inline policies allow more than the stack's own policy does.
pub fn wide_roles(d: &Desired, o: &Observed) -> Vec<Finding> {
    o.roles
        .iter()
        .filter_map(|(f, found)| {
            let role = Role::of(f);
            let extra = roles::beyond_needs(d, role, found.present()?);
            if extra.is_empty() {
                return None;
            }
            let wildcard = extra
                .iter()
                .any(|g| g.starts_with("* ") || g.split(' ').next().is_some_and(|a| a.ends_with(":*")));
            Some(Finding {
                area: Area::Roles,
                resource: role.label(d),
                check: "least privilege".into(),
                severity: if wildcard { Severity::Critical } else { Severity::High },
                message: format!(
                    "IAM role {} allows more than the stack needs: {}",
                    role.name(d),
                    extra.join("; ")
                ),
                fix: "`terraform apply` rewrites the policy to the stack's own; then find out who widened it (CloudTrail PutRolePolicy)."
                    .into(),
            })
        })
        .collect()
}

/// What the scanner-results check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Results {
    /// The newest result was stored this long ago (`None`: no result in the window looked at).
    Newest(Option<Duration>),
    /// The bucket could not be listed.
    Unreadable(String),
    /// The bucket is missing (its own finding says so).
    NoBucket,
}

/// Whether the scanner stored a result within two of its intervals. `age` is how long the stack
/// has existed: a stack younger than two intervals may not have run yet, so no result is only a
/// warning then.
pub fn scanner_results(
    d: &Desired,
    schedule: &str,
    results: &Results,
    age: Option<Duration>,
) -> Option<Finding> {
    let piece = format!("{} (scans/)", Bucket.label(d));
    let finding = |severity, message: String, fix: &str| Finding {
        area: Area::ScannerResults,
        resource: piece.clone(),
        check: "recent scan result".into(),
        severity,
        message,
        fix: fix.to_string(),
    };
    let Some(interval) = super::interval::longest_gap(schedule) else {
        return Some(finding(
            Severity::Warning,
            format!("cannot tell how often {} runs, so the age of the newest result was not checked", schedule.hcl()),
            "Use rate(...) or a cron(...) without L, W or #, or check the bucket's scans/ prefix by hand.",
        ));
    };
    let window = interval * 2;
    let fix = "Look at the scanner's log group and its failure alarm; run the function by hand (aws lambda invoke) to see why it stores nothing.";
    match results {
        Results::NoBucket => None,
        Results::Unreadable(e) => Some(finding(
            Severity::Warning,
            format!("could not list the scan results: {e}"),
            "Grant this command s3:ListBucket on the bucket, or check it by hand.",
        )),
        Results::Newest(Some(ago)) if *ago <= window => None,
        Results::Newest(Some(ago)) => Some(finding(
            Severity::High,
            format!(
                "the newest scan result is {} old, more than two scanner intervals ({})",
                human(*ago),
                human(window)
            ),
            fix,
        )),
        Results::Newest(None) if age.is_some_and(|a| a < window) => Some(finding(
            Severity::Warning,
            format!(
                "no scan result yet; the stack is {} old, less than two scanner intervals ({})",
                human(age.unwrap_or_default()),
                human(window)
            ),
            "Nothing to do yet; run the scanner by hand (aws lambda invoke) for a result now.",
        )),
        Results::Newest(None) => Some(finding(
            Severity::High,
            format!(
                "no scan result stored in the last two scanner intervals ({})",
                human(window)
            ),
            fix,
        )),
    }
}

/// A duration in the largest unit that keeps it readable: `90 s`, `12 min`, `6 h`, `2 d 3 h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ if s % 86_400 / 3600 == 0 => format!("{} d", s / 86_400),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Every finding for an observed stack.
pub fn all(d: &Desired, o: &Observed, results: &Results, age: Option<Duration>) -> Vec<Finding> {
    let mut out: Vec<Finding> = o.differences(d).iter().map(from_difference).collect();
    out.extend(pending_subscription(d, o));
    out.extend(wide_roles(d, o));
    out.extend(dead_letters(d, o));
    let schedule = o
        .schedules
        .scanner
        .present()
        .map_or(d.scan_schedule.as_str(), |s| s.expression.as_str());
    out.extend(scanner_results(d, schedule, results, age));
    // Worst first within each area, areas in report order.
    out.sort_by_key(|f| (f.area, f.severity));
    out
}
