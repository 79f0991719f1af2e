//! The scan result: the JSON object the scanner stores under `scans/YYYY/MM/DD/<timestamp>.json`
//! and the reporter reads back. `docs/scan-result.md` documents it field by field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exemptions::{Check, Exemption};

/// Version of the scan result format. Readers skip objects with a version they do not know.
pub const SCAN_SCHEMA_VERSION: u32 = 1;

/// One scan of every configured account and region.
///
/// The scanner streams it to S3 as it is built, so its fields are not written in this order:
/// `schema_version` comes first, then the run's settings, `instances` and `security_groups`,
/// and the fields only known at the end (`errors`, `summary`, `finished_at`, `duration_ms`) last.
/// JSON readers take the fields in any order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanResult {
    /// Format version, [`SCAN_SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// When the scan started (RFC 3339, UTC).
    pub started_at: String,
    /// When the scan finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Wall time of the scan in milliseconds.
    pub duration_ms: u64,
    /// The stack (environment suffix) that ran the scan.
    pub stack: String,
    /// The account the scanner ran in (the stack's own), when it could be determined. Each
    /// instance and group names its own account ([`InstanceResult::account_id`]).
    pub account_id: Option<String>,
    /// The regions scanned in at least one account, sorted.
    pub regions: Vec<String>,
    /// The rule settings the scan applied.
    pub settings: ScanSettings,
    /// Totals over every scanned instance.
    pub summary: Summary,
    /// One entry per scanned instance.
    pub instances: Vec<InstanceResult>,
    /// Every security group with at least one violation, attached or not.
    pub security_groups: Vec<GroupResult>,
    /// What could not be scanned: one entry per account or (account, region) that failed, the
    /// rest of the scan complete without it. Empty in results written before organisation
    /// scanning.
    #[serde(default)]
    pub errors: Vec<ScanError>,
}

/// An account, or one region of it, that a scan could not read ([`ScanResult::errors`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ScanError {
    /// The account (12 digits).
    pub account_id: String,
    /// The region that failed; null when the whole account did (its role could not be assumed,
    /// its regions or the organization's accounts could not be listed).
    pub region: Option<String>,
    /// The call that failed (`AssumeRole`, `DescribeRegions`, `DescribeInstances`,
    /// `DescribeSecurityGroups`, `ListAccounts`), or `Timeout` when the scan's time ran out
    /// before the region was read.
    pub operation: String,
    /// The AWS error code (`AccessDenied`, `AuthFailure`, `OptInRequired`,
    /// `RequestLimitExceeded`, ...); null when there is none (timeouts, lost connections).
    pub code: Option<String>,
    /// What went wrong, for a person: the call, where, and AWS's message.
    pub cause: String,
}

impl ScanResult {
    /// The exemptions this scan found covering something, with what each covered: the active
    /// ones (`expired == false`) or the expired ones. One entry per configured id; the exempt
    /// tag's entries (`tag:<key>`) one per last day and reason. Sorted by id, then last day.
    pub fn exemption_coverage(&self, expired: bool) -> Vec<Coverage> {
        type Key = (String, Option<String>, Option<String>);
        let mut found: BTreeMap<Key, Coverage> = BTreeMap::new();
        let mut note = |a: &Applied, instance: Option<&str>, group: Option<&str>| {
            let key = (a.id.clone(), a.expires.clone(), a.reason.clone());
            let c = found.entry(key).or_insert_with(|| Coverage {
                id: a.id.clone(),
                expires: a.expires.clone(),
                reason: a.reason.clone(),
                owner: a.owner.clone(),
                checks: Vec::new(),
                instances: Vec::new(),
                groups: Vec::new(),
            });
            c.checks.push(a.check);
            c.instances.extend(instance.map(str::to_string));
            c.groups
                .extend(group.or(a.group_id.as_deref()).map(str::to_string));
        };
        for i in &self.instances {
            let list = if expired {
                &i.expired_exemptions
            } else {
                &i.exemptions
            };
            for a in list {
                note(a, Some(&i.instance_id), None);
            }
        }
        for g in &self.security_groups {
            let list = if expired {
                &g.expired_exemptions
            } else {
                &g.exemptions
            };
            for a in list {
                note(a, None, Some(&g.group_id));
            }
        }
        found
            .into_values()
            .map(|mut c| {
                for list in [&mut c.instances, &mut c.groups] {
                    list.sort();
                    list.dedup();
                }
                c.checks.sort();
                c.checks.dedup();
                c
            })
            .collect()
    }
}

/// What one exemption covered in a scan ([`ScanResult::exemption_coverage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The exemption's id, or `tag:<key>`.
    pub id: String,
    /// Its last day; `None` for the exempt tag's `true`.
    pub expires: Option<String>,
    /// Its reason, when it has one.
    pub reason: Option<String>,
    /// Its owner, when it has one.
    pub owner: Option<String>,
    /// The checks it covered something for.
    pub checks: Vec<Check>,
    /// The instances it covered (for ingress through a group too), sorted.
    pub instances: Vec<String>,
    /// The violating groups it covered (on their own or through an instance), sorted.
    pub groups: Vec<String>,
}

/// The rule settings a scan applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSettings {
    /// Tag keys every instance must carry with a non-blank value.
    pub required_tags: Vec<String>,
    /// Ports that must not be open to the world.
    pub restricted_ports: Vec<u16>,
    /// Tag key that exempts an instance when its value is `true` (any case) or
    /// `until YYYY-MM-DD: reason`.
    pub exempt_tag_key: String,
    /// The configured exemptions, as configured (expired ones included). Omitted when there are
    /// none, so a stack without exemptions writes the settings it always wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemptions: Vec<Exemption>,
}

/// Totals of one scan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Instances scanned (exempt ones included).
    pub scanned: u64,
    /// Instances exempt from every check (see [`InstanceResult::exempt`]): counted neither
    /// compliant nor non-compliant.
    pub exempt: u64,
    /// Instances judged compliant.
    pub compliant: u64,
    /// Instances judged non-compliant.
    pub non_compliant: u64,
    /// compliant / (scanned - exempt) x 100; 100 when nothing was judged.
    pub compliance_percentage: f64,
    /// Instances missing at least one required tag, that finding not waived by an exemption.
    pub instances_missing_tags: u64,
    /// Security-group rules open to the world that are violations (counted once per rule and CIDR),
    /// waived or not.
    pub open_rules: u64,
    /// Findings an active exemption waived: every instance's entries in
    /// [`InstanceResult::exempted_findings`], plus the violations of every listed group that an
    /// active exemption covers. 0 in results written before exemptions existed.
    #[serde(default)]
    pub exempted_findings: u64,
    /// The same totals per scanned account, sorted by account id, each with its regions. Absent
    /// in results written before organisation scanning (one account: the result's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountSummary>,
}

/// The totals of a scan's share: one account, or one region of one account.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    /// Instances scanned (exempt ones included).
    pub scanned: u64,
    /// Instances exempt from every check.
    pub exempt: u64,
    /// Instances judged compliant.
    pub compliant: u64,
    /// Instances judged non-compliant.
    pub non_compliant: u64,
    /// compliant / (scanned - exempt) x 100; 100 when nothing was judged.
    pub compliance_percentage: f64,
    /// Instances missing a required tag, that finding not waived.
    pub instances_missing_tags: u64,
    /// World-open rules of violating groups (once per rule and CIDR).
    pub open_rules: u64,
    /// Findings an active exemption waived.
    pub exempted_findings: u64,
}

impl Counts {
    /// Adds `other`'s counts and recomputes the percentage from the sums.
    pub fn add(&mut self, other: &Counts) {
        self.scanned += other.scanned;
        self.exempt += other.exempt;
        self.compliant += other.compliant;
        self.non_compliant += other.non_compliant;
        self.instances_missing_tags += other.instances_missing_tags;
        self.open_rules += other.open_rules;
        self.exempted_findings += other.exempted_findings;
        self.compliance_percentage =
            crate::verdict::compliance_percentage(self.compliant, self.scanned - self.exempt);
    }

    /// The counts of a whole-scan summary.
    pub fn of(summary: &Summary) -> Counts {
        Counts {
            scanned: summary.scanned,
            exempt: summary.exempt,
            compliant: summary.compliant,
            non_compliant: summary.non_compliant,
            compliance_percentage: summary.compliance_percentage,
            instances_missing_tags: summary.instances_missing_tags,
            open_rules: summary.open_rules,
            exempted_findings: summary.exempted_findings,
        }
    }

    /// A summary with these counts (and no per-account breakdown).
    pub fn summary(&self) -> Summary {
        Summary {
            scanned: self.scanned,
            exempt: self.exempt,
            compliant: self.compliant,
            non_compliant: self.non_compliant,
            compliance_percentage: self.compliance_percentage,
            instances_missing_tags: self.instances_missing_tags,
            open_rules: self.open_rules,
            exempted_findings: self.exempted_findings,
            accounts: Vec::new(),
        }
    }
}

/// One account's share of a scan ([`Summary::accounts`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccountSummary {
    /// The account (12 digits).
    pub account_id: String,
    /// Its totals over the regions read.
    #[serde(flatten)]
    pub counts: Counts,
    /// Entries of [`ScanResult::errors`] naming the account: above 0, its counts miss what failed.
    pub errors: u64,
    /// Each region read in the account, sorted by name.
    pub regions: Vec<RegionSummary>,
}

/// One region's share of an account's totals.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RegionSummary {
    /// The region.
    pub region: String,
    /// Its totals.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The verdict on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InstanceResult {
    /// The EC2 instance id.
    pub instance_id: String,
    /// The account the instance lives in; empty in results written before organisation
    /// scanning, whose instances are all of the result's `account_id`.
    #[serde(default)]
    pub account_id: String,
    /// The region the instance lives in.
    pub region: String,
    /// Its state name (`pending`, `running`, `stopping`, `stopped`).
    pub state: String,
    /// The value of its `Name` tag, if any.
    pub name: Option<String>,
    /// Not exempt, and every check passes or has its finding waived by an active exemption.
    pub compliant: bool,
    /// Exempt from every check by exemptions that name the instance itself: the exempt tag, or
    /// configured exemptions covering it (by id or tag selector) for both checks.
    pub exempt: bool,
    /// Required tag keys that are absent or blank.
    pub missing_tags: Vec<String>,
    /// Tags whose key differs from a required key only in case or surrounding spaces.
    pub near_misses: Vec<NearMiss>,
    /// Ids of the security groups attached to the instance.
    pub security_groups: Vec<String>,
    /// Violations inherited from the attached groups (waived ones included).
    pub violations: Vec<Violation>,
    /// Active exemptions that cover it, one entry per exemption and check, sorted by check, id
    /// and group. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemptions: Vec<Applied>,
    /// Exemptions that would cover it but have expired (so they waived nothing), as
    /// [`exemptions`](Self::exemptions). Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_exemptions: Vec<Applied>,
    /// Why the exempt tag's value is not an exemption, when it is set to something other than
    /// blank, `false`, `true` or `until YYYY-MM-DD: reason`. Omitted when there is nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exempt_tag_error: Option<String>,
    /// The checks whose finding (missing tags; violations) an active exemption waived, in check
    /// order. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempted_findings: Vec<Check>,
}

/// An exemption covering a resource for one check: in `exemptions` when active, in
/// `expired_exemptions` when its last day has passed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Applied {
    /// The check it covers.
    pub check: Check,
    /// The configured exemption's id, or `tag:<key>` for the exempt tag.
    pub id: String,
    /// On an instance, the attached group it covers (the exemption names the group, so it
    /// waives that group's violations only); null when it names the instance itself. Always null
    /// on a group.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Its last active day, `YYYY-MM-DD` (UTC); null for the exempt tag's `true`, which never
    /// expires.
    #[serde(default)]
    pub expires: Option<String>,
    /// Its reason; null for the exempt tag's `true`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Its owner; null for the exempt tag, which names none.
    #[serde(default)]
    pub owner: Option<String>,
}

/// A tag key that nearly matches a required key (`owner` for `Owner`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearMiss {
    /// The required key.
    pub required: String,
    /// The key found on the instance.
    pub found: String,
}

/// Why an open rule is a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Protocol `-1`: all traffic.
    AllTraffic,
    /// TCP or UDP over the whole port range 0-65535.
    AllPorts,
    /// TCP or UDP over a range that includes restricted ports (listed in [`Violation::ports`]).
    RestrictedPorts,
}

/// One security-group rule that opens the group to the world in a forbidden way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    /// The group holding the rule.
    pub group_id: String,
    /// The protocol as normalised: `all`, `tcp` or `udp`.
    pub protocol: String,
    /// First port of the range (absent for all traffic).
    pub from_port: Option<i32>,
    /// Last port of the range (absent for all traffic).
    pub to_port: Option<i32>,
    /// The world CIDR that the rule admits (`0.0.0.0/0` or `::/0`).
    pub cidr: String,
    /// Why it is a violation.
    pub reason: Reason,
    /// The restricted ports the range hits (empty unless `reason` is `restricted-ports`).
    pub ports: Vec<u16>,
}

/// A security group with violations, and how many scanned instances use it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupResult {
    /// The group id.
    pub group_id: String,
    /// The account of the group; empty in results written before organisation scanning.
    #[serde(default)]
    pub account_id: String,
    /// The group name.
    pub group_name: String,
    /// The VPC of the group, when it has one.
    pub vpc_id: Option<String>,
    /// The region of the group.
    pub region: String,
    /// How many scanned instances have the group attached (0: one attachment away from exposure).
    pub attached_instances: u64,
    /// The group's violations.
    pub violations: Vec<Violation>,
    /// Active exemptions that name the group for `ingress`: when any, its violations are waived
    /// wherever it is attached. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exemptions: Vec<Applied>,
    /// Exemptions that name the group for `ingress` but have expired. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_exemptions: Vec<Applied>,
}
