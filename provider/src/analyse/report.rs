//! The report: the JSON file (a summary, then each area's findings) and the terminal table.

use std::fmt::Write as _;

use serde::Serialize;

use super::findings::{Area, Finding, Severity};
use crate::aws::Desired;

/// The whole report, as written to the JSON file. Fields serialize in this order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Totals and what was analysed.
    pub summary: Summary,
    /// Scanner and reporter functions.
    pub functions: AreaReport,
    /// Their log groups.
    pub log_groups: AreaReport,
    /// The four alarms.
    pub alarms: AreaReport,
    /// The alert topic and its subscription.
    pub topic: AreaReport,
    /// The results bucket.
    pub bucket: AreaReport,
    /// Both schedules.
    pub schedules: AreaReport,
    /// Both IAM roles.
    pub roles: AreaReport,
    /// The dashboard.
    pub dashboard: AreaReport,
    /// The event-driven pieces.
    pub events: AreaReport,
    /// The scanner's newest result.
    pub scanner_results: AreaReport,
}

/// Totals and what was analysed.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `clean` or `issues found`.
    pub status: &'static str,
    /// Findings that count as issues (every severity but `warning`).
    pub total_issues: usize,
    /// Findings of severity `warning`.
    pub warnings: usize,
    /// Issues per severity.
    pub issues_by_severity: BySeverity,
    /// Keys of the areas with at least one issue.
    pub areas_with_issues: Vec<&'static str>,
    /// The environment suffix.
    pub environment_suffix: String,
    /// Region.
    pub region: String,
    /// Account.
    pub account_id: String,
    /// Where the wanted settings came from: `resource defaults` or `state file <path>`.
    pub settings_from: String,
    /// When the analysis ran (RFC 3339, UTC).
    pub analysed_at: String,
}

/// Issue counts per severity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BySeverity {
    /// Critical.
    pub critical: usize,
    /// High.
    pub high: usize,
    /// Medium.
    pub medium: usize,
    /// Low.
    pub low: usize,
}

/// One area: the pieces it covers and what was found.
#[derive(Debug, Clone, Serialize)]
pub struct AreaReport {
    /// `ok`, `warnings` or `issues`.
    pub status: &'static str,
    /// The pieces checked.
    pub resources: Vec<String>,
    /// Findings, worst first.
    pub findings: Vec<Finding>,
}

fn resources(area: Area, d: &Desired) -> Vec<String> {
    let n = &d.names;
    match area {
        Area::Functions | Area::Schedules | Area::Roles => {
            vec![n.scanner.clone(), n.reporter.clone()]
        }
        Area::LogGroups => vec![n.scanner_log_group.clone(), n.reporter_log_group.clone()],
        Area::Alarms => n
            .alarms
            .iter()
            .flat_map(|(_, alarms)| alarms.iter().map(|(_, name)| name.clone()))
            .collect(),
        Area::Topic => vec![d.topic_arn()],
        Area::Bucket => vec![n.bucket.clone()],
        Area::Dashboard => vec![n.dashboard.clone()],
        Area::Events => vec![
            n.change_rule.clone(),
            n.events_queue.clone(),
            n.dead_letter_queue.clone(),
        ],
        Area::ScannerResults => vec![format!("s3://{}/scans/", n.bucket)],
    }
}

impl Report {
    /// Builds the report from the findings.
    pub fn new(
        d: &Desired,
        findings: Vec<Finding>,
        settings_from: String,
        analysed_at: String,
    ) -> Report {
        let area = |a: Area| {
            let findings: Vec<Finding> = findings.iter().filter(|f| f.area == a).cloned().collect();
            let status = if findings.iter().any(|f| f.severity.is_issue()) {
                "issues"
            } else if findings.is_empty() {
                "ok"
            } else {
                "warnings"
            };
            AreaReport {
                status,
                resources: resources(a, d),
                findings,
            }
        };
        let mut by = BySeverity::default();
        for f in &findings {
            match f.severity {
                Severity::Critical => by.critical += 1,
                Severity::High => by.high += 1,
                Severity::Medium => by.medium += 1,
                Severity::Low => by.low += 1,
                Severity::Warning => {}
            }
        }
        let total_issues = by.critical + by.high + by.medium + by.low;
        let areas_with_issues: Vec<&'static str> = Area::ALL
            .iter()
            .filter(|a| {
                findings
                    .iter()
                    .any(|f| f.area == **a && f.severity.is_issue())
            })
            .map(|a| a.key())
            .collect();
        Report {
            summary: Summary {
                status: if total_issues == 0 {
                    "clean"
                } else {
                    "issues found"
                },
                total_issues,
                warnings: findings.len() - total_issues,
                issues_by_severity: by,
                areas_with_issues,
                environment_suffix: d.names.suffix.clone(),
                region: d.region.clone(),
                account_id: d.account_id.clone(),
                settings_from,
                analysed_at,
            },
            functions: area(Area::Functions),
            log_groups: area(Area::LogGroups),
            alarms: area(Area::Alarms),
            topic: area(Area::Topic),
            bucket: area(Area::Bucket),
            schedules: area(Area::Schedules),
            roles: area(Area::Roles),
            dashboard: area(Area::Dashboard),
            events: area(Area::Events),
            scanner_results: area(Area::ScannerResults),
        }
    }

    /// The area reports in order.
    pub fn areas(&self) -> [(Area, &AreaReport); 10] {
        [
            (Area::Functions, &self.functions),
            (Area::LogGroups, &self.log_groups),
            (Area::Alarms, &self.alarms),
            (Area::Topic, &self.topic),
            (Area::Bucket, &self.bucket),
            (Area::Schedules, &self.schedules),
            (Area::Roles, &self.roles),
            (Area::Dashboard, &self.dashboard),
            (Area::Events, &self.events),
            (Area::ScannerResults, &self.scanner_results),
        ]
    }

    /// The JSON file's text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The terminal table: one row per area that is fine, one per finding otherwise, each
    /// finding followed by its fix.
    pub fn table(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "Compliance monitor stack {:?} in {} (account {}), settings from {}\n\n",
            s.environment_suffix, s.region, s.account_id, s.settings_from
        );
        let width = Area::ALL.iter().map(|a| a.title().len()).max().unwrap_or(0);
        let _ = writeln!(out, "{:width$}  {:8}  FINDING", "AREA", "SEVERITY");
        for (area, r) in self.areas() {
            if r.findings.is_empty() {
                let _ = writeln!(
                    out,
                    "{:width$}  {:8}  {} checked",
                    area.title(),
                    "ok",
                    r.resources.join(", ")
                );
            }
            for f in &r.findings {
                let _ = writeln!(
                    out,
                    "{:width$}  {:8}  {}",
                    area.title(),
                    f.severity.name(),
                    f.message
                );
                let _ = writeln!(out, "{:width$}  {:8}  fix: {}", "", "", f.fix);
            }
        }
        let b = &s.issues_by_severity;
        let _ = write!(
            out,
            "\n{}: {} issue(s) (critical {}, high {}, medium {}, low {}), {} warning(s)\n",
            if s.total_issues == 0 {
                "CLEAN"
            } else {
                "ISSUES FOUND"
            },
            s.total_issues,
            b.critical,
            b.high,
            b.medium,
            b.low,
            s.warnings
        );
        out
    }
}
