//! The daily report: a streaming fold of one UTC day's scans into the figures people read and
//! machines parse. `docs/report.md` documents the JSON field by field.
//!
//! Scans are folded one at a time with [`DayAccumulator::add_scan`], so a day of many large scans
//! never sits in memory at once: only a few counters per instance are kept.

pub mod csv;
mod decode;
pub mod events;
pub mod html;
pub(crate) mod timestamp;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::exemptions::{Check, Exemption};
use crate::result::{Applied, Coverage, InstanceResult, Reason, ScanResult, Violation};

pub use decode::{read_scan, ReadScanError};
pub use timestamp::{parse_rfc3339, Instant};

/// Version of the report format. Readers (the next day's run, for the trend) ignore other versions.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// An active exemption whose last day is at most this many days after the reported day is
/// flagged as expiring.
pub const EXPIRING_WITHIN_DAYS: i64 = 14;

/// An instance's verdict in one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Judged compliant.
    Compliant,
    /// Judged non-compliant.
    NonCompliant,
    /// Exempt by tag: neither compliant nor non-compliant.
    Exempt,
}

impl Verdict {
    /// The verdict a scan gave one instance.
    pub fn of(instance: &InstanceResult) -> Verdict {
        if instance.exempt {
            Verdict::Exempt
        } else if instance.compliant {
            Verdict::Compliant
        } else {
            Verdict::NonCompliant
        }
    }

    /// The spelling used in the JSON, CSV and HTML.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Compliant => "compliant",
            Verdict::NonCompliant => "non-compliant",
            Verdict::Exempt => "exempt",
        }
    }
}

/// The report of one UTC day, stored as `reports/YYYY/MM/DD/report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    /// Format version, [`REPORT_SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// The UTC day reported on, `YYYY-MM-DD`.
    pub date: String,
    /// When the report was made (RFC 3339, UTC).
    pub generated_at: String,
    /// The stack that ran the day's latest scan, when any scan was read.
    pub stack: Option<String>,
    /// One sentence a person can read: the day's figures, or why there are none.
    pub message: String,
    /// Scan objects read and folded into the figures.
    pub scans_analysed: u64,
    /// Average, minimum and latest compliance; absent when no scan was analysed.
    pub compliance: Option<ComplianceFigures>,
    /// The analysed scans in the order they started (the chart's points).
    pub scans: Vec<ScanPoint>,
    /// Distinct instances seen in any analysed scan.
    pub instances_seen: u64,
    /// Instances non-compliant in every analysed scan of the day, by id.
    pub persistent_offenders: Vec<String>,
    /// Instances compliant at the end of the day that were non-compliant at its start, by id.
    pub became_compliant: Vec<String>,
    /// Instances non-compliant at the end of the day that were not at its start, by id.
    pub new_offenders: Vec<String>,
    /// The comparison with the previous day's report, when that report exists.
    pub trend: Option<Trend>,
    /// Objects under the day's scan prefix that could not be used, with the reason.
    pub skipped: Vec<SkippedObject>,
    /// One row per instance seen, worst first.
    pub instances: Vec<InstanceDay>,
    /// Exemptions in force on the day, as the day's latest scan configured and applied them,
    /// soonest to expire first. Empty in reports written before exemptions existed.
    #[serde(default)]
    pub active_exemptions: Vec<ExemptionDay>,
    /// Exemptions still configured in the day's latest scan (or exempt tags still set on an
    /// instance) whose last day is before the reported day: they waive nothing. Oldest first.
    #[serde(default)]
    pub expired_exemptions: Vec<ExemptionDay>,
    /// Compliance by account, worst first (most non-compliant instances in its latest scan, then
    /// the lowest percentage, then by id), each with its regions. Empty in reports written before
    /// organisation scanning.
    #[serde(default)]
    pub accounts: Vec<AccountDay>,
    /// The day's event-driven checks (`events/`), beside the scheduled scans. Empty in reports
    /// written before event-driven checks existed.
    #[serde(default)]
    pub events: events::EventsDay,
}

/// One account over the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDay {
    /// The account; for scans written before organisation scanning, the scan's own account.
    pub account_id: String,
    /// Analysed scans that read something of the account.
    pub scans: u64,
    /// Mean of its compliance percentage over those scans; null when none read it.
    pub average: Option<f64>,
    /// Its figures in the latest scan that covered it (read or failed).
    pub latest: RegionDay,
    /// Its instances non-compliant in every analysed scan of the day.
    pub persistent_offenders: u64,
    /// What the latest scan could not read in it: `region: cause`, or `every region: cause`.
    pub not_scanned: Vec<String>,
    /// Its regions in that scan, sorted by name (`latest.region` is empty: it is the account).
    pub regions: Vec<RegionDay>,
}

/// Compliance of one region (or of a whole account) in one scan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegionDay {
    /// The region; empty for an account's total.
    pub region: String,
    /// Instances scanned, exempt ones included.
    pub scanned: u64,
    /// Judged compliant.
    pub compliant: u64,
    /// Judged non-compliant.
    pub non_compliant: u64,
    /// Exempt.
    pub exempt: u64,
    /// compliant / (scanned - exempt) x 100; 100 when nothing was judged.
    pub compliance_percentage: f64,
}

impl RegionDay {
    fn count(&mut self, verdict: Verdict) {
        self.scanned += 1;
        match verdict {
            Verdict::Compliant => self.compliant += 1,
            Verdict::NonCompliant => self.non_compliant += 1,
            Verdict::Exempt => self.exempt += 1,
        }
        self.compliance_percentage =
            crate::verdict::compliance_percentage(self.compliant, self.scanned - self.exempt);
    }
}

impl DailyReport {
    /// The active exemptions that expire within [`EXPIRING_WITHIN_DAYS`] of the reported day.
    pub fn expiring_exemptions(&self) -> impl Iterator<Item = &ExemptionDay> {
        self.active_exemptions.iter().filter(|e| e.expiring_soon)
    }
}

/// Where an exemption comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExemptionSource {
    /// An `exemption` block of the stack (the scanner's `EXEMPTIONS`).
    Configuration,
    /// The exempt tag's `until YYYY-MM-DD: reason` on an instance.
    Tag,
}

/// One exemption on the reported day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExemptionDay {
    /// The exemption's id; `tag:<key>` for the exempt tag.
    pub id: String,
    /// Configured, or the exempt tag.
    pub source: ExemptionSource,
    /// The checks it waives.
    pub checks: Vec<Check>,
    /// The instance ids it names (for the exempt tag: the instances carrying that value).
    pub instances: Vec<String>,
    /// The security group ids it names.
    pub groups: Vec<String>,
    /// Its tag selector.
    pub tags: BTreeMap<String, String>,
    /// Who answers for it; null for the exempt tag.
    pub owner: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Its last active day, `YYYY-MM-DD` (UTC).
    pub expires: String,
    /// Days from the reported day to its last day: 0 when the reported day was its last, negative
    /// once expired; null when `expires` does not read as a date (never active).
    pub days_left: Option<i64>,
    /// Active, with at most [`EXPIRING_WITHIN_DAYS`] days left.
    pub expiring_soon: bool,
    /// Instances it covered (active) or would have covered (expired) in the day's latest scan.
    pub matched_instances: Vec<String>,
    /// Violating groups it covered or would have covered in the day's latest scan.
    pub matched_groups: Vec<String>,
}

/// The day's compliance percentages, taken from each scan's summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ComplianceFigures {
    /// Mean of the scans' compliance percentages.
    pub average: f64,
    /// Lowest compliance percentage of the day.
    pub minimum: f64,
    /// Compliance percentage of the scan that started last.
    pub latest: f64,
}

/// One analysed scan, as a point of the day's chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanPoint {
    /// The object key it was read from.
    pub key: String,
    /// When the scan started (RFC 3339).
    pub started_at: String,
    /// Its compliance percentage.
    pub compliance_percentage: f64,
    /// Instances it scanned (exempt ones included).
    pub scanned: u64,
    /// Instances it judged compliant.
    pub compliant: u64,
    /// Instances it judged non-compliant.
    pub non_compliant: u64,
    /// Instances it found exempt.
    pub exempt: u64,
}

/// How the day compares with the day before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The previous day, `YYYY-MM-DD`.
    pub previous_date: String,
    /// The previous day's average compliance, when it had scans.
    pub previous_average: Option<f64>,
    /// This day's average minus the previous day's, in percentage points.
    pub average_change: Option<f64>,
    /// The previous day's latest compliance, when it had scans.
    pub previous_latest: Option<f64>,
    /// This day's latest minus the previous day's, in percentage points.
    pub latest_change: Option<f64>,
    /// The previous day's count of persistent offenders.
    pub previous_persistent_offenders: u64,
    /// This day's count minus the previous day's.
    pub persistent_offenders_change: i64,
    /// Direction of the average compliance.
    pub direction: Direction,
}

/// Which way average compliance moved since the previous day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Higher than the day before.
    Improving,
    /// Lower than the day before.
    Worsening,
    /// Equal to the day before (to 0.01 percentage points).
    Steady,
    /// One of the two days has no scans to compare.
    Unknown,
}

impl Direction {
    /// The spelling used in the JSON and HTML.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Improving => "improving",
            Direction::Worsening => "worsening",
            Direction::Steady => "steady",
            Direction::Unknown => "unknown",
        }
    }
}

/// An object that was not folded into the report, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedObject {
    /// The object key.
    pub key: String,
    /// Why it was skipped (missing, empty, truncated, not JSON, unknown schema_version, ...).
    pub reason: String,
}

/// One instance over the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDay {
    /// The EC2 instance id.
    pub instance_id: String,
    /// Its account (for scans written before organisation scanning, the scan's own account).
    #[serde(default)]
    pub account_id: String,
    /// Its `Name` tag in the latest scan that saw it.
    pub name: Option<String>,
    /// Its region.
    pub region: String,
    /// Analysed scans that saw it.
    pub scans: u64,
    /// Of those, the scans that judged it non-compliant.
    pub non_compliant_scans: u64,
    /// Of those, the scans that found it exempt.
    pub exempt_scans: u64,
    /// Its verdict in the latest scan that saw it.
    pub latest_verdict: Verdict,
    /// Non-compliant in every analysed scan of the day.
    pub persistent_offender: bool,
    /// Required tags missing in any scan of the day, sorted.
    pub missing_tags: Vec<String>,
    /// Violations inherited in any scan of the day, described, sorted.
    pub violations: Vec<String>,
    /// The active exemptions that covered it in the latest scan that saw it, one per exemption
    /// and check: `id (check)`, or `id (ingress via sg-...)` through a group.
    #[serde(default)]
    pub exemptions: Vec<String>,
}

/// What is kept per instance while the day is folded.
struct Track {
    name: Option<String>,
    account_id: String,
    region: String,
    scans: u64,
    non_compliant: u64,
    exempt: u64,
    first: (Instant, Verdict),
    last: (Instant, Verdict),
    last_scan_seq: u64,
    // Sorted, without repeats. A Vec, not a BTreeSet: an instance has a handful at most, and a
    // BTreeSet allocates a node of eleven slots for the first one (memory is per instance).
    missing_tags: Vec<String>,
    violations: Vec<String>,
    exemptions: Vec<String>,
}

/// `id (check)` or `id (ingress via sg-...)`.
fn describe_applied(a: &Applied) -> String {
    match &a.group_id {
        Some(g) => format!("{} ({} via {g})", a.id, a.check),
        None => format!("{} ({})", a.id, a.check),
    }
}

/// The exemptions of the day's latest scan: as configured, and what each covered.
struct LatestExemptions {
    at: Instant,
    configured: Vec<Exemption>,
    active: Vec<Coverage>,
    expired: Vec<Coverage>,
}

/// Adds `item` to the sorted, repeat-free `set`, allocating only when it is new.
fn insert_sorted(set: &mut Vec<String>, item: &str) {
    if let Err(at) = set.binary_search_by(|probe| probe.as_str().cmp(item)) {
        set.insert(at, item.to_string());
    }
}

/// What is kept per account while the day is folded.
#[derive(Default)]
struct AccountTrack {
    scans: u64,
    percentage_sum: f64,
    /// The latest scan covering it: when, its total, its regions, what failed.
    latest: Option<(Instant, RegionDay, Vec<RegionDay>, Vec<String>)>,
}

/// The account an instance of `scan` belongs to: its own, else the scan's (results written before
/// organisation scanning), else `unknown`.
fn account_of<'a>(instance: &'a InstanceResult, scan: &'a ScanResult) -> &'a str {
    if !instance.account_id.is_empty() {
        &instance.account_id
    } else {
        scan.account_id.as_deref().unwrap_or("unknown")
    }
}

/// Folds one day's scans, one at a time, into a [`DailyReport`].
pub struct DayAccumulator {
    date: String,
    // The reported day as days since 1970-01-01, when `date` reads as one.
    day: Option<i64>,
    generated_at: String,
    scans: Vec<(Instant, ScanPoint)>,
    latest_stack: Option<(Instant, String)>,
    latest_exemptions: Option<LatestExemptions>,
    instances: HashMap<String, Track>,
    accounts: BTreeMap<String, AccountTrack>,
    skipped: Vec<SkippedObject>,
    events: events::Tally,
}

impl DayAccumulator {
    /// Starts the report of `date` (`YYYY-MM-DD`), made at `generated_at` (RFC 3339).
    pub fn new(date: &str, generated_at: &str) -> DayAccumulator {
        DayAccumulator {
            date: date.to_string(),
            day: parse_rfc3339(&format!("{date}T00:00:00Z")).map(Instant::utc_day),
            generated_at: generated_at.to_string(),
            scans: Vec::new(),
            latest_stack: None,
            latest_exemptions: None,
            instances: HashMap::new(),
            accounts: BTreeMap::new(),
            skipped: Vec::new(),
            events: events::Tally::default(),
        }
    }

    /// Folds one stored event result (`events/...json`) into the day's event-driven figures.
    pub fn add_event(&mut self, record: &events::EventRecord) {
        self.events.add(record);
    }

    /// Folds the scan's figures per account and region.
    fn add_accounts(&mut self, at: Instant, scan: &ScanResult) {
        let mut tallies: BTreeMap<&str, BTreeMap<&str, RegionDay>> = BTreeMap::new();
        for a in &scan.summary.accounts {
            tallies.entry(a.account_id.as_str()).or_default();
        }
        for e in &scan.errors {
            tallies.entry(e.account_id.as_str()).or_default();
        }
        for i in &scan.instances {
            tallies
                .entry(account_of(i, scan))
                .or_default()
                .entry(i.region.as_str())
                .or_insert_with(|| RegionDay {
                    region: i.region.clone(),
                    ..RegionDay::default()
                })
                .count(Verdict::of(i));
        }
        // Regions read but empty still count: the summary lists them.
        for a in &scan.summary.accounts {
            let regions = tallies.entry(a.account_id.as_str()).or_default();
            for r in &a.regions {
                regions
                    .entry(r.region.as_str())
                    .or_insert_with(|| RegionDay {
                        region: r.region.clone(),
                        compliance_percentage: 100.0,
                        ..RegionDay::default()
                    });
            }
        }
        for (account, regions) in tallies {
            let mut total = RegionDay {
                compliance_percentage: 100.0,
                ..RegionDay::default()
            };
            for r in regions.values() {
                total.scanned += r.scanned;
                total.compliant += r.compliant;
                total.non_compliant += r.non_compliant;
                total.exempt += r.exempt;
            }
            total.compliance_percentage = crate::verdict::compliance_percentage(
                total.compliant,
                total.scanned - total.exempt,
            );
            let failed: Vec<String> = scan
                .errors
                .iter()
                .filter(|e| e.account_id == account)
                .map(|e| {
                    format!(
                        "{}: {}",
                        e.region.as_deref().unwrap_or("every region"),
                        e.cause
                    )
                })
                .collect();
            let track = self.accounts.entry(account.to_string()).or_default();
            if !regions.is_empty() {
                track.scans += 1;
                track.percentage_sum += total.compliance_percentage;
            }
            if track.latest.as_ref().is_none_or(|(t, ..)| at >= *t) {
                track.latest = Some((at, total, regions.into_values().collect(), failed));
            }
        }
    }

    /// Folds one scan, read from object `key`, into the day. Scans may come in any order.
    ///
    /// A scan whose `started_at` is not an RFC 3339 time cannot be placed in the day, and one that
    /// started on another UTC day (an object copied or misfiled under this day's prefix) belongs to
    /// another report: both are skipped and named in the report instead.
    pub fn add_scan(&mut self, key: &str, scan: &ScanResult) {
        let Some(at) = parse_rfc3339(&scan.started_at) else {
            self.skip(
                key,
                &format!("started_at {:?} is not an RFC 3339 time", scan.started_at),
            );
            return;
        };
        if self.day.is_some_and(|day| at.utc_day() != day) {
            self.skip(
                key,
                &format!(
                    "started_at {} is not on {} (UTC): a scan of another day",
                    scan.started_at, self.date
                ),
            );
            return;
        }
        let seq = self.scans.len() as u64 + 1;
        self.scans.push((
            at,
            ScanPoint {
                key: key.to_string(),
                started_at: scan.started_at.clone(),
                compliance_percentage: scan.summary.compliance_percentage,
                scanned: scan.summary.scanned,
                compliant: scan.summary.compliant,
                non_compliant: scan.summary.non_compliant,
                exempt: scan.summary.exempt,
            },
        ));
        if self.latest_stack.as_ref().is_none_or(|(t, _)| at >= *t) {
            self.latest_stack = Some((at, scan.stack.clone()));
        }
        self.add_accounts(at, scan);
        if self.latest_exemptions.as_ref().is_none_or(|l| at >= l.at) {
            self.latest_exemptions = Some(LatestExemptions {
                at,
                configured: scan.settings.exemptions.clone(),
                active: scan.exemption_coverage(false),
                expired: scan.exemption_coverage(true),
            });
        }
        for instance in &scan.instances {
            let verdict = Verdict::of(instance);
            let track = self
                .instances
                .entry(instance.instance_id.clone())
                .or_insert_with(|| Track {
                    name: instance.name.clone(),
                    account_id: account_of(instance, scan).to_string(),
                    region: instance.region.clone(),
                    scans: 0,
                    non_compliant: 0,
                    exempt: 0,
                    first: (at, verdict),
                    last: (at, verdict),
                    last_scan_seq: 0,
                    missing_tags: Vec::new(),
                    violations: Vec::new(),
                    exemptions: Vec::new(),
                });
            // An id listed twice in one scan is counted once.
            if track.last_scan_seq == seq {
                continue;
            }
            track.last_scan_seq = seq;
            track.scans += 1;
            match verdict {
                Verdict::NonCompliant => track.non_compliant += 1,
                Verdict::Exempt => track.exempt += 1,
                Verdict::Compliant => {}
            }
            if at < track.first.0 {
                track.first = (at, verdict);
            }
            if at >= track.last.0 {
                track.last = (at, verdict);
                track.name = instance.name.clone();
                track.account_id = account_of(instance, scan).to_string();
                track.region = instance.region.clone();
                track.exemptions = instance.exemptions.iter().map(describe_applied).collect();
            }
            for tag in &instance.missing_tags {
                insert_sorted(&mut track.missing_tags, tag);
            }
            for violation in &instance.violations {
                insert_sorted(&mut track.violations, &describe_violation(violation));
            }
        }
    }

    /// Names an object that could not be used, and why.
    pub fn skip(&mut self, key: &str, why: &str) {
        self.skipped.push(SkippedObject {
            key: key.to_string(),
            reason: why.to_string(),
        });
    }

    /// The report of the day, compared with the previous day's report when there is one.
    ///
    /// An instance's state at the start of the day is its latest verdict in the previous day's
    /// report when that report analysed scans (an instance absent from it had no verdict), else
    /// its verdict in the day's first scan.
    pub fn finish(self, previous_day_report: Option<&DailyReport>) -> DailyReport {
        let mut scans = self.scans;
        scans.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
        let scans_analysed = scans.len() as u64;
        let compliance = (!scans.is_empty()).then(|| {
            let sum: f64 = scans.iter().map(|s| s.1.compliance_percentage).sum();
            ComplianceFigures {
                average: sum / scans.len() as f64,
                minimum: scans
                    .iter()
                    .map(|s| s.1.compliance_percentage)
                    .fold(f64::INFINITY, f64::min),
                latest: scans[scans.len() - 1].1.compliance_percentage,
            }
        });
        let day_start = scans.first().map(|s| s.0);
        let baseline: Option<HashMap<&str, Verdict>> = previous_day_report
            .filter(|p| p.scans_analysed > 0)
            .map(|p| {
                p.instances
                    .iter()
                    .map(|i| (i.instance_id.as_str(), i.latest_verdict))
                    .collect()
            });

        let mut persistent_offenders = Vec::new();
        let mut became_compliant = Vec::new();
        let mut new_offenders = Vec::new();
        let mut instances: Vec<InstanceDay> = Vec::with_capacity(self.instances.len());
        let mut persistent_by_account: HashMap<String, u64> = HashMap::new();
        for (id, track) in self.instances {
            let start = match &baseline {
                Some(b) => b.get(id.as_str()).copied(),
                None if Some(track.first.0) == day_start => Some(track.first.1),
                None => None,
            };
            let end = track.last.1;
            let persistent = track.non_compliant == scans_analysed;
            if persistent {
                persistent_offenders.push(id.clone());
                *persistent_by_account
                    .entry(track.account_id.clone())
                    .or_default() += 1;
            }
            if end == Verdict::NonCompliant && start != Some(Verdict::NonCompliant) {
                new_offenders.push(id.clone());
            }
            if end == Verdict::Compliant && start == Some(Verdict::NonCompliant) {
                became_compliant.push(id.clone());
            }
            instances.push(InstanceDay {
                instance_id: id,
                account_id: track.account_id,
                name: track.name,
                region: track.region,
                scans: track.scans,
                non_compliant_scans: track.non_compliant,
                exempt_scans: track.exempt,
                latest_verdict: end,
                persistent_offender: persistent,
                missing_tags: track.missing_tags,
                violations: track.violations,
                exemptions: track.exemptions,
            });
        }
        persistent_offenders.sort();
        became_compliant.sort();
        new_offenders.sort();
        instances.sort_by(|a, b| {
            b.non_compliant_scans
                .cmp(&a.non_compliant_scans)
                .then_with(|| a.instance_id.cmp(&b.instance_id))
        });

        let trend = previous_day_report.map(|p| trend(p, compliance, persistent_offenders.len()));
        let (active_exemptions, expired_exemptions) = match self.latest_exemptions {
            // The reported day, or the latest scan's (the same day, as other days are skipped).
            Some(latest) => exemption_days(latest, self.day.unwrap_or(latest_day(&scans))),
            None => (Vec::new(), Vec::new()),
        };
        let mut accounts: Vec<AccountDay> = self
            .accounts
            .into_iter()
            .filter_map(|(account_id, t)| {
                let (_, latest, regions, not_scanned) = t.latest?;
                Some(AccountDay {
                    scans: t.scans,
                    average: (t.scans > 0).then(|| t.percentage_sum / t.scans as f64),
                    latest,
                    persistent_offenders: persistent_by_account
                        .get(&account_id)
                        .copied()
                        .unwrap_or(0),
                    not_scanned,
                    regions,
                    account_id,
                })
            })
            .collect();
        accounts.sort_by(|a, b| {
            b.latest
                .non_compliant
                .cmp(&a.latest.non_compliant)
                .then(
                    a.latest
                        .compliance_percentage
                        .total_cmp(&b.latest.compliance_percentage),
                )
                .then_with(|| a.account_id.cmp(&b.account_id))
        });
        let mut report = DailyReport {
            schema_version: REPORT_SCHEMA_VERSION,
            date: self.date,
            generated_at: self.generated_at,
            stack: self.latest_stack.map(|(_, s)| s),
            message: String::new(),
            scans_analysed,
            compliance,
            scans: scans.into_iter().map(|(_, p)| p).collect(),
            instances_seen: instances.len() as u64,
            persistent_offenders,
            became_compliant,
            new_offenders,
            trend,
            skipped: self.skipped,
            instances,
            active_exemptions,
            expired_exemptions,
            accounts,
            events: self.events.finish(),
        };
        report.message = message(&report);
        report
    }
}

/// The UTC day of the latest of `scans` (sorted), or day 0 without any.
fn latest_day(scans: &[(Instant, ScanPoint)]) -> i64 {
    scans.last().map_or(0, |(at, _)| at.utc_day())
}

/// The latest scan's exemptions on `day` (days since 1970-01-01): (active, expired), each
/// configured one with what it covered, and the exempt tag's dated ones.
fn exemption_days(latest: LatestExemptions, day: i64) -> (Vec<ExemptionDay>, Vec<ExemptionDay>) {
    let mut active = Vec::new();
    let mut expired = Vec::new();
    let matched = |list: &[Coverage], id: &str| {
        list.iter()
            .find(|c| c.id == id)
            .map(|c| (c.instances.clone(), c.groups.clone()))
            .unwrap_or_default()
    };
    for e in latest.configured {
        let days_left = e.expiry().map(|last| last.days() - day);
        let is_active = days_left.is_some_and(|d| d >= 0);
        let (matched_instances, matched_groups) = matched(
            if is_active {
                &latest.active
            } else {
                &latest.expired
            },
            &e.id,
        );
        let mut checks = e.checks;
        checks.sort();
        checks.dedup();
        let entry = ExemptionDay {
            id: e.id,
            source: ExemptionSource::Configuration,
            checks,
            instances: e.instances,
            groups: e.groups,
            tags: e.tags,
            owner: Some(e.owner),
            reason: Some(e.reason),
            expires: e.expires,
            days_left,
            expiring_soon: is_active && days_left.is_some_and(|d| d <= EXPIRING_WITHIN_DAYS),
            matched_instances,
            matched_groups,
        };
        if is_active {
            active.push(entry);
        } else {
            expired.push(entry);
        }
    }
    // The exempt tag's dated values; `true` never expires and is counted as exempt instead.
    let tagged = |c: Coverage| {
        let expires = c.expires.filter(|_| c.id.starts_with("tag:"))?;
        let days_left = crate::exemptions::Day::parse(&expires).map(|last| last.days() - day);
        Some(ExemptionDay {
            id: c.id,
            source: ExemptionSource::Tag,
            checks: c.checks,
            instances: c.instances.clone(),
            groups: Vec::new(),
            tags: BTreeMap::new(),
            owner: None,
            reason: c.reason,
            expires,
            days_left,
            expiring_soon: days_left.is_some_and(|d| (0..=EXPIRING_WITHIN_DAYS).contains(&d)),
            matched_instances: c.instances,
            matched_groups: c.groups,
        })
    };
    active.extend(latest.active.into_iter().filter_map(tagged));
    expired.extend(latest.expired.into_iter().filter_map(tagged));
    for list in [&mut active, &mut expired] {
        list.sort_by(|a, b| (&a.expires, &a.id).cmp(&(&b.expires, &b.id)));
    }
    (active, expired)
}

fn trend(
    previous: &DailyReport,
    today: Option<ComplianceFigures>,
    persistent_offenders: usize,
) -> Trend {
    let before = previous.compliance;
    let change = |f: fn(&ComplianceFigures) -> f64| match (today, before) {
        (Some(t), Some(b)) => Some(f(&t) - f(&b)),
        _ => None,
    };
    let average_change = change(|c| c.average);
    let direction = match average_change {
        None => Direction::Unknown,
        // Hundredths of a point: below what the report prints, so not a change.
        Some(d) if d.abs() < 0.005 => Direction::Steady,
        Some(d) if d > 0.0 => Direction::Improving,
        Some(_) => Direction::Worsening,
    };
    let previous_count = previous.persistent_offenders.len() as u64;
    Trend {
        previous_date: previous.date.clone(),
        previous_average: before.map(|c| c.average),
        average_change,
        previous_latest: before.map(|c| c.latest),
        latest_change: change(|c| c.latest),
        previous_persistent_offenders: previous_count,
        persistent_offenders_change: persistent_offenders as i64 - previous_count as i64,
        direction,
    }
}

fn message(r: &DailyReport) -> String {
    // What follows the figures: the exemptions (only with scans), then the skipped objects.
    let mut tail = String::new();
    if !r.active_exemptions.is_empty() || !r.expired_exemptions.is_empty() {
        let active = r.active_exemptions.len();
        tail = format!(
            "; {active} exemption{} active, {} expiring within {EXPIRING_WITHIN_DAYS} days, {} expired still configured",
            plural(active),
            r.expiring_exemptions().count(),
            r.expired_exemptions.len()
        );
    }
    if r.accounts.len() > 1 {
        let worst = &r.accounts[0];
        tail.push_str(&format!(
            "; {} accounts, the worst {} at {:.2}% ({} non-compliant)",
            r.accounts.len(),
            worst.account_id,
            worst.latest.compliance_percentage,
            worst.latest.non_compliant
        ));
    }
    let not_scanned = r
        .accounts
        .iter()
        .filter(|a| !a.not_scanned.is_empty())
        .count();
    if not_scanned > 0 {
        tail.push_str(&format!(
            "; {not_scanned} account{} not wholly scanned",
            plural(not_scanned)
        ));
    }
    match r.skipped.len() {
        0 => {}
        1 => tail.push_str("; 1 object skipped"),
        n => tail.push_str(&format!("; {n} objects skipped")),
    }
    match r.compliance {
        None if r.skipped.is_empty() => {
            format!("No scans were stored for {}: nothing to report.", r.date)
        }
        None => format!("No readable scans for {}{tail}: nothing to report.", r.date),
        Some(c) => format!(
            "{} scan{} analysed for {}: average compliance {:.2}%, minimum {:.2}%, latest {:.2}%; \
             {} persistent offender{}, {} became compliant, {} new offender{}{tail}.",
            r.scans_analysed,
            plural(r.scans_analysed as usize),
            r.date,
            c.average,
            c.minimum,
            c.latest,
            r.persistent_offenders.len(),
            plural(r.persistent_offenders.len()),
            r.became_compliant.len(),
            r.new_offenders.len(),
            plural(r.new_offenders.len()),
        ),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A violation in one line: group, protocol, ports, CIDR and reason.
pub fn describe_violation(v: &Violation) -> String {
    let ports = match (v.from_port, v.to_port) {
        (Some(a), Some(b)) if a == b => format!(" port {a}"),
        (Some(a), Some(b)) => format!(" ports {a}-{b}"),
        _ => String::new(),
    };
    let why = match v.reason {
        Reason::AllTraffic => "all traffic".to_string(),
        Reason::AllPorts => "all ports".to_string(),
        Reason::RestrictedPorts => {
            let list: Vec<String> = v.ports.iter().map(u16::to_string).collect();
            format!("restricted port(s) {}", list.join(","))
        }
    };
    format!(
        "{} {}{} open to {} ({why})",
        v.group_id, v.protocol, ports, v.cidr
    )
}

/// The subject of the daily SNS summary: the stack, the day and its figures, readable in a mail
/// client and within SNS's subject rules ([`crate::sns::subject`]).
pub fn summary_subject(r: &DailyReport) -> String {
    let stack = r
        .stack
        .as_deref()
        .map(|s| format!("[{s}] "))
        .unwrap_or_default();
    let text = match r.compliance {
        Some(c) => format!(
            "{stack}Compliance report {}: avg {:.1}%, {} persistent offender{}",
            r.date,
            c.average,
            r.persistent_offenders.len(),
            plural(r.persistent_offenders.len())
        ),
        None => format!("{stack}Compliance report {}: no scans", r.date),
    };
    crate::sns::subject(&text)
}

/// How many offenders the SNS summary lists by name before pointing at the full report.
pub const SUMMARY_OFFENDERS: usize = 20;

/// How many skipped objects the SNS summary names; `report.json` names them all.
pub const SUMMARY_SKIPPED: usize = 20;

/// How many expiring and how many expired exemptions the SNS summary names.
pub const SUMMARY_EXEMPTIONS: usize = 20;

/// How many accounts the SNS summary names, worst first; `report.json` has them all.
pub const SUMMARY_ACCOUNTS: usize = 20;

/// The summary's accounts paragraph, worst first, with what could not be scanned in each. Empty
/// for a day of one account that was read whole.
fn accounts_paragraph(r: &DailyReport) -> String {
    use crate::sns::field;
    let mut out = String::new();
    let broken = r.accounts.iter().any(|a| !a.not_scanned.is_empty());
    if r.accounts.len() < 2 && !broken {
        return out;
    }
    out.push_str("Compliance by account, worst first (latest scan):\n");
    for a in r.accounts.iter().take(SUMMARY_ACCOUNTS) {
        let l = &a.latest;
        let average = a
            .average
            .map(|v| format!(", average {v:.2}%"))
            .unwrap_or_default();
        out.push_str(&format!(
            "- {}: {:.2}% ({} of {} non-compliant){average}, {} persistent offender{}\n",
            a.account_id,
            l.compliance_percentage,
            l.non_compliant,
            l.scanned - l.exempt,
            a.persistent_offenders,
            plural(a.persistent_offenders as usize)
        ));
        for failed in a.not_scanned.iter().take(5) {
            out.push_str(&format!("  not scanned: {}\n", field(failed, 300)));
        }
    }
    if r.accounts.len() > SUMMARY_ACCOUNTS {
        out.push_str(&format!(
            "... and {} more accounts, in report.json.\n",
            r.accounts.len() - SUMMARY_ACCOUNTS
        ));
    }
    out.push('\n');
    out
}

/// One line of the summary about an exemption: id, owner, last day, days left, what it matched.
fn exemption_line(e: &ExemptionDay) -> String {
    use crate::sns::field;
    let days = match e.days_left {
        Some(d) if d >= 0 => format!(", {d} day{} left", plural(d as usize)),
        _ => String::new(),
    };
    format!(
        "- {} (owner {}): last day {}{days}; matched {} instance{} and {} group{} in the latest scan\n",
        field(&e.id, 130),
        field(e.owner.as_deref().unwrap_or("none"), 130),
        field(&e.expires, 10),
        e.matched_instances.len(),
        plural(e.matched_instances.len()),
        e.matched_groups.len(),
        plural(e.matched_groups.len()),
    )
}

/// The summary's exemption paragraph: the counts, then the expiring and the expired ones by name
/// (at most [`SUMMARY_EXEMPTIONS`] of each). Empty without exemptions.
fn exemptions_paragraph(r: &DailyReport) -> String {
    let mut out = String::new();
    if r.active_exemptions.is_empty() && r.expired_exemptions.is_empty() {
        return out;
    }
    let expiring: Vec<&ExemptionDay> = r.expiring_exemptions().collect();
    out.push_str(&format!(
        "Exemptions: {} active, {} expiring within {EXPIRING_WITHIN_DAYS} days, {} expired but still configured.\n",
        r.active_exemptions.len(),
        expiring.len(),
        r.expired_exemptions.len()
    ));
    let lists = [
        (
            expiring,
            format!(
                "Expiring within {EXPIRING_WITHIN_DAYS} days (renew them or fix what they waive):"
            ),
        ),
        (
            r.expired_exemptions.iter().collect(),
            "Expired but still configured (they waive nothing; remove or renew them):".to_string(),
        ),
    ];
    for (list, heading) in lists {
        if list.is_empty() {
            continue;
        }
        out.push_str(&heading);
        out.push('\n');
        for e in list.iter().take(SUMMARY_EXEMPTIONS) {
            out.push_str(&exemption_line(e));
        }
        if list.len() > SUMMARY_EXEMPTIONS {
            out.push_str(&format!(
                "... and {} more, listed in the report.\n",
                list.len() - SUMMARY_EXEMPTIONS
            ));
        }
    }
    out.push('\n');
    out
}

/// The body of the daily SNS summary: the figures, the exemptions expiring and expired, the worst
/// offenders, the skipped objects and where the report is.
///
/// Every part is bounded (at most [`SUMMARY_OFFENDERS`] offenders and [`SUMMARY_SKIPPED`] skipped
/// objects, each line clipped), so the body stays far below SNS's 256 KiB however bad the day, and
/// the line saying where the full report is always survives.
pub fn summary_body(r: &DailyReport, location: &str) -> String {
    use crate::sns::field;
    let mut body = format!("{}\n\n", r.message);
    if let Some(t) = &r.trend {
        match t.average_change {
            Some(d) => body.push_str(&format!(
                "Trend against {}: {} ({:+.2} points on average compliance).\n\n",
                t.previous_date,
                t.direction.as_str(),
                d
            )),
            None => body.push_str(&format!(
                "Trend against {}: unknown (one of the days has no scans).\n\n",
                t.previous_date
            )),
        }
    }
    body.push_str(&accounts_paragraph(r));
    body.push_str(&events::paragraph(&r.events));
    body.push_str(&exemptions_paragraph(r));
    let several = r.accounts.len() > 1;
    let offenders: Vec<&InstanceDay> = r
        .instances
        .iter()
        .filter(|i| i.non_compliant_scans > 0)
        .collect();
    if !offenders.is_empty() {
        body.push_str("Worst offenders (non-compliant scans of the day):\n");
        for i in offenders.iter().take(SUMMARY_OFFENDERS) {
            body.push_str(&format!(
                "- {}{} in {}{}: {}/{} scans non-compliant\n",
                i.instance_id,
                i.name
                    .as_deref()
                    .map(|n| format!(" ({})", field(n, 100)))
                    .unwrap_or_default(),
                if several {
                    format!("{}/", i.account_id)
                } else {
                    String::new()
                },
                i.region,
                i.non_compliant_scans,
                i.scans
            ));
        }
        if offenders.len() > SUMMARY_OFFENDERS {
            body.push_str(&format!(
                "... and {} more.\n",
                offenders.len() - SUMMARY_OFFENDERS
            ));
        }
        body.push('\n');
    }
    for s in r.skipped.iter().take(SUMMARY_SKIPPED) {
        body.push_str(&format!(
            "Skipped {}: {}\n",
            field(&s.key, 200),
            field(&s.reason, 300)
        ));
    }
    if r.skipped.len() > SUMMARY_SKIPPED {
        body.push_str(&format!(
            "... and {} more skipped objects, named in report.json.\n",
            r.skipped.len() - SUMMARY_SKIPPED
        ));
    }
    body.push_str(&format!("Full report: {location}\n"));
    body
}

#[cfg(test)]
mod tests;
