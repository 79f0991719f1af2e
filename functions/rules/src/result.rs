//! The scan result: the JSON object the scanner stores under `scans/YYYY/MM/DD/<timestamp>.json`
//! and the reporter reads back. `docs/scan-result.md` documents it field by field.

use serde::{Deserialize, Serialize};

/// Version of the scan result format. Readers skip objects with a version they do not know.
pub const SCAN_SCHEMA_VERSION: u32 = 1;

/// One scan of every configured region.
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
    /// The AWS account scanned, when it could be determined.
    pub account_id: Option<String>,
    /// The regions scanned.
    pub regions: Vec<String>,
    /// The rule settings the scan applied.
    pub settings: ScanSettings,
    /// Totals over every scanned instance.
    pub summary: Summary,
    /// One entry per scanned instance.
    pub instances: Vec<InstanceResult>,
    /// Every security group with at least one violation, attached or not.
    pub security_groups: Vec<GroupResult>,
}

/// The rule settings a scan applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSettings {
    /// Tag keys every instance must carry with a non-blank value.
    pub required_tags: Vec<String>,
    /// Ports that must not be open to the world.
    pub restricted_ports: Vec<u16>,
    /// Tag key that exempts an instance when its value is `true` (any case).
    pub exempt_tag_key: String,
}

/// Totals of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Instances scanned (exempt ones included).
    pub scanned: u64,
    /// Instances exempt by tag: counted neither compliant nor non-compliant.
    pub exempt: u64,
    /// Instances judged compliant.
    pub compliant: u64,
    /// Instances judged non-compliant.
    pub non_compliant: u64,
    /// compliant / (scanned - exempt) x 100; 100 when nothing was judged.
    pub compliance_percentage: f64,
    /// Non-exempt instances missing at least one required tag.
    pub instances_missing_tags: u64,
    /// Security-group rules open to the world that are violations (counted once per rule and CIDR).
    pub open_rules: u64,
}

/// The verdict on one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceResult {
    /// The EC2 instance id.
    pub instance_id: String,
    /// The region the instance lives in.
    pub region: String,
    /// Its state name (`pending`, `running`, `stopping`, `stopped`).
    pub state: String,
    /// The value of its `Name` tag, if any.
    pub name: Option<String>,
    /// Not exempt, no missing required tag, no attached group with a violation.
    pub compliant: bool,
    /// Exempt by tag.
    pub exempt: bool,
    /// Required tag keys that are absent or blank.
    pub missing_tags: Vec<String>,
    /// Tags whose key differs from a required key only in case or surrounding spaces.
    pub near_misses: Vec<NearMiss>,
    /// Ids of the security groups attached to the instance.
    pub security_groups: Vec<String>,
    /// Violations inherited from the attached groups.
    pub violations: Vec<Violation>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupResult {
    /// The group id.
    pub group_id: String,
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
}
