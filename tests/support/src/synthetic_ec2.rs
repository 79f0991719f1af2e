//! A synthetic EC2 and STS endpoint for benchmarks at organisation scale: an HTTP/1.1 server on
//! 127.0.0.1 that makes up a deterministic fleet of any size, across any number of accounts and
//! regions, and answers the EC2 Query API calls the scanner makes (`DescribeInstances`,
//! `DescribeSecurityGroups`, `DescribeRegions`) and the STS calls it needs to reach member
//! accounts (`AssumeRole`, `GetCallerIdentity`), in the XML AWS and moto send, and Organizations
//! `ListAccounts` (JSON) for a scan of the whole organisation.
//!
//! moto cannot stand for scale: each `DescribeInstances` page re-walks every instance it holds.
//! Here nothing is stored. Instance `n` of an (account, region) is computed from the seed and `n`
//! alone, ids encode (account, region, index), and a page token holds the next index, so a page
//! costs the same at a hundred instances or a billion, and memory holds one page at most.
//!
//! The account of a request comes from its access key: the credentials [`AssumeRole`] hands out
//! carry the account id inside the key id (`ASIA` + 12 digits + 4); any other key is the
//! [`SyntheticFleet::home_account`]. The region comes from the SigV4 credential scope in the
//! `Authorization` header. Signatures are not checked. See `docs/organizations.md`.
//!
//! [`AssumeRole`]: SyntheticFleet::member_role_name

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `MaxResults` bounds of `DescribeInstances` and `DescribeSecurityGroups` (EC2 API reference).
pub const MIN_PAGE: u64 = 5;
/// See [`MIN_PAGE`].
pub const MAX_PAGE: u64 = 1000;
/// Page size when a request names no `MaxResults`. EC2 then answers everything at once; a page
/// keeps memory bounded here, and the token says there is more.
pub const DEFAULT_PAGE: u64 = 1000;
/// Instances launched together (one reservation).
pub const RESERVATION_SIZE: u64 = 4;
/// Security groups per VPC; the first group of each VPC is its `default` group.
pub const GROUPS_PER_VPC: u64 = 25;
/// Instance states repeat over this many consecutive indices: one terminated, two stopped, the
/// rest running. A filtered page therefore walks at most this many indices per instance it returns.
pub const STATE_CYCLE: u64 = 16;
/// Ports an open group of the fleet exposes (all on the rules' default restricted list).
pub const OPEN_PORTS: [u16; 8] = [22, 3389, 3306, 5432, 6379, 27017, 1433, 9200];
/// Regions AWS enables only on request; the fleet reports them `opted-in`.
pub const OPT_IN_REGIONS: [&str; 16] = [
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
];

const EC2_XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
const STS_XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// Caps the ids' fields: `i-` + 3 hex digits of account, 2 of region, 12 of index (17, as EC2's).
const MAX_ACCOUNTS: usize = 0x1000;
const MAX_REGIONS: usize = 0x100;
const MAX_INDEX: u64 = 1 << 48;

// Domains of the hash, so instance 3 and group 3 draw different numbers.
const H_INSTANCE: u64 = 1;
const H_GROUP: u64 = 2;
const H_STATE: u64 = 3;
const H_TOKEN: u64 = 4;
const H_SECRET: u64 = 5;

/// The fleet and the endpoint's behaviour. Every field is public; [`SyntheticFleet::new`] gives
/// the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticFleet {
    /// Account ids (12 digits) that hold a fleet, each the same shape.
    pub accounts: Vec<String>,
    /// The account of credentials this endpoint did not hand out (e.g. `testing`): the scanner's
    /// own account, and the organisation's management account (the only one `ListAccounts`
    /// answers, first in its list). It holds a fleet only when it is also in `accounts`.
    pub home_account: String,
    /// Enabled regions: each holds a fleet in every account. A region named in a request but in
    /// neither list is an enabled region with nothing in it.
    pub regions: Vec<String>,
    /// Regions not enabled for the accounts: listed by `DescribeRegions` only with
    /// `AllRegions=true` (as `not-opted-in`); an EC2 call there answers 401 `AuthFailure`.
    pub disabled_regions: Vec<String>,
    /// Instances per (account, region), terminated ones included.
    pub instances_per_region: u64,
    /// Security groups per (account, region), `default` groups included.
    pub groups_per_region: u64,
    /// Seed of every generated choice (tags, groups, rules, state offsets).
    pub seed: u64,
    /// Tag keys every instance carries unless chosen to miss one.
    pub required_tags: Vec<String>,
    /// Tag key that marks an exempt instance (value `true` or `TRUE`).
    pub exempt_tag_key: String,
    /// Share (0-100) of instances that miss one required tag: absent, blank, or a near-miss key.
    pub missing_tag_percent: u8,
    /// Share (0-100) of instances tagged exempt.
    pub exempt_percent: u8,
    /// Share (0-100) of non-default groups open to the world on a restricted port, on all ports,
    /// or to all traffic.
    pub open_group_percent: u8,
    /// When set, `AssumeRole` into a fleet account succeeds only for a role of this name.
    pub member_role_name: Option<String>,
    /// When set, `AssumeRole` into a fleet account needs this `ExternalId`.
    pub external_id: Option<String>,
    /// Fleet accounts whose member role is missing: `AssumeRole` there answers `AccessDenied`.
    pub accounts_without_role: BTreeSet<String>,
    /// Fleet accounts Organizations `ListAccounts` reports `SUSPENDED`; `AssumeRole` there answers
    /// `AccessDenied`.
    pub suspended_accounts: BTreeSet<String>,
    /// Fraction (0.0-1.0) of EC2 requests answered 503 `RequestLimitExceeded`, drawn from a
    /// sequence seeded by `seed`.
    pub throttle: f64,
    /// Time added to every EC2 answer (real pages of 1000 instances take a second or more).
    pub latency: Duration,
}

impl SyntheticFleet {
    /// A fleet over `accounts` and `regions` with 100 instances and 10 groups per (account,
    /// region), seed 0, the rules' default tags, 20 % of instances missing a tag, 5 % exempt, 20 %
    /// of groups open, any role name and no external id, no throttling, no latency. The home
    /// account is the first of `accounts` (`123456789012` when there is none).
    pub fn new(accounts: Vec<String>, regions: Vec<String>) -> SyntheticFleet {
        let home_account = accounts
            .first()
            .cloned()
            .unwrap_or_else(|| "123456789012".to_string());
        SyntheticFleet {
            accounts,
            home_account,
            regions,
            disabled_regions: Vec::new(),
            instances_per_region: 100,
            groups_per_region: 10,
            seed: 0,
            required_tags: ["Environment", "Owner", "CostCenter"]
                .map(String::from)
                .to_vec(),
            exempt_tag_key: "ComplianceExempt".to_string(),
            missing_tag_percent: 20,
            exempt_percent: 5,
            open_group_percent: 20,
            member_role_name: None,
            external_id: None,
            accounts_without_role: BTreeSet::new(),
            suspended_accounts: BTreeSet::new(),
            throttle: 0.0,
            latency: Duration::ZERO,
        }
    }

    /// `n` distinct account ids, `200000000000`, `200000000001`, ...
    pub fn account_ids(n: usize) -> Vec<String> {
        (0..n as u64)
            .map(|i| format!("{:012}", 200_000_000_000 + i))
            .collect()
    }

    /// Panics, naming the field, when the fleet cannot be encoded in EC2-shaped ids.
    pub fn check(&self) {
        assert!(
            self.accounts.len() <= MAX_ACCOUNTS,
            "synthetic fleet: at most {MAX_ACCOUNTS} accounts"
        );
        assert!(
            self.regions.len() <= MAX_REGIONS,
            "synthetic fleet: at most {MAX_REGIONS} regions"
        );
        assert!(
            self.instances_per_region < MAX_INDEX && self.groups_per_region < MAX_INDEX,
            "synthetic fleet: at most 2^48 instances and groups per (account, region)"
        );
        let mut seen = BTreeSet::new();
        for a in self.accounts.iter().chain([&self.home_account]) {
            assert!(
                a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()),
                "synthetic fleet: account id {a:?} is not 12 digits"
            );
        }
        for a in &self.accounts {
            assert!(seen.insert(a), "synthetic fleet: account {a} twice");
        }
        assert!(
            !self.required_tags.is_empty() || self.missing_tag_percent == 0,
            "synthetic fleet: missing_tag_percent needs required_tags"
        );
    }

    /// VPCs per (account, region): one per [`GROUPS_PER_VPC`] groups, at least one.
    pub fn vpcs_per_region(&self) -> u64 {
        self.groups_per_region.div_ceil(GROUPS_PER_VPC).max(1)
    }

    /// Instances of a (account, region) in a state the scanner scans (not terminated).
    pub fn scanned_per_region(&self, account: usize, region: usize) -> u64 {
        (0..self.instances_per_region)
            .filter(|&i| self.state(account as u64, region as u64, i) != State::Terminated)
            .count() as u64
    }

    fn state(&self, a: u64, r: u64, index: u64) -> State {
        let offset = hash(self.seed, &[H_STATE, a, r]) % STATE_CYCLE;
        match (index + offset) % STATE_CYCLE {
            0 => State::Terminated,
            5 | 11 => State::Stopped,
            _ => State::Running,
        }
    }

    /// Instance `index` of account `account` (index into `accounts`) in region `region` (index
    /// into `regions`). Pure: the same arguments give the same instance.
    pub fn instance(&self, account: usize, region: usize, index: u64) -> SyntheticInstance {
        let (a, r) = (account as u64, region as u64);
        let region_name = self.regions.get(region).map(String::as_str).unwrap_or("");
        let h = hash(self.seed, &[H_INSTANCE, a, r, index]);
        let state = self.state(a, r, index);
        let vpcs = self.vpcs_per_region();
        let v = h % vpcs;
        let subnet = (h >> 4) & 1;
        let mut groups = Vec::new();
        if self.groups_per_region > 0 {
            // Groups of VPC v are v, v + vpcs, v + 2 vpcs, ...; v itself is its default group.
            let in_vpc = (self.groups_per_region - v).div_ceil(vpcs);
            let j = (h >> 8) % in_vpc;
            groups.push(v + j * vpcs);
            if in_vpc > 1 && (h >> 16) & 3 == 0 {
                let k = (j + 1 + (h >> 20) % (in_vpc - 1)) % in_vpc;
                groups.push(v + k * vpcs);
            }
        }
        let groups = groups
            .into_iter()
            .map(|g| (id("sg", a, r, g), self.group_name(a, r, g)))
            .collect();

        let mut tags = vec![("Name".to_string(), format!("synthetic-{a}-{r}-{index}"))];
        let missing = if (h >> 24) % 100 < u64::from(self.missing_tag_percent) {
            let which = ((h >> 32) % self.required_tags.len() as u64) as usize;
            Some((which, (h >> 40) % 3))
        } else {
            None
        };
        for (n, key) in self.required_tags.iter().enumerate() {
            let value = tag_value(key, h >> 8);
            match missing {
                Some((which, 0)) if which == n => {}
                Some((which, 1)) if which == n => tags.push((key.clone(), "  ".to_string())),
                Some((which, _)) if which == n => tags.push((near_miss(key), value)),
                _ => tags.push((key.clone(), value)),
            }
        }
        let exempt = (h >> 48) % 100 < u64::from(self.exempt_percent);
        if exempt {
            let value = if (h >> 56) & 1 == 0 { "true" } else { "TRUE" };
            tags.push((self.exempt_tag_key.clone(), value.to_string()));
        }

        let types = ["t3.micro", "t3.small", "m5.large", "c5.xlarge", "r5.large"];
        SyntheticInstance {
            id: id("i", a, r, index),
            reservation_id: id("r", a, r, index / RESERVATION_SIZE),
            launch_index: index % RESERVATION_SIZE,
            state,
            image_id: format!("ami-{:017x}", hash(self.seed, &[r]) >> 4),
            instance_type: types[((h >> 12) % types.len() as u64) as usize].to_string(),
            vpc_id: id("vpc", a, r, v),
            subnet_id: id("subnet", a, r, v * 2 + subnet),
            availability_zone: format!("{region_name}{}", if subnet == 0 { 'a' } else { 'b' }),
            private_ip: format!(
                "10.{}.{}.{}",
                v % 256,
                subnet * 128 + (index / 250) % 128,
                index % 250 + 4
            ),
            network_interface_id: id("eni", a, r, index),
            volume_id: id("vol", a, r, index),
            launch_time: format!(
                "2024-{:02}-{:02}T{:02}:{:02}:00.000Z",
                1 + (h >> 36) % 12,
                1 + (h >> 44) % 28,
                (h >> 50) % 24,
                (h >> 56) % 60
            ),
            groups,
            tags,
            missing_tag: missing.map(|(which, _)| self.required_tags[which].clone()),
            exempt,
        }
    }

    fn group_name(&self, a: u64, r: u64, g: u64) -> String {
        if g < self.vpcs_per_region() {
            return "default".to_string();
        }
        let h = hash(self.seed, &[H_GROUP, a, r, g]);
        let kinds = ["web", "app", "db", "batch", "admin"];
        format!("{}-{g}", kinds[(h % kinds.len() as u64) as usize])
    }

    /// Security group `index` of an (account, region), as [`SyntheticFleet::instance`].
    pub fn group(&self, account: usize, region: usize, index: u64) -> SyntheticGroup {
        let (a, r) = (account as u64, region as u64);
        let account_id = self.accounts.get(account).cloned().unwrap_or_default();
        let vpcs = self.vpcs_per_region();
        let h = hash(self.seed, &[H_GROUP, a, r, index]);
        let gid = id("sg", a, r, index);
        let name = self.group_name(a, r, index);
        let mut ingress = Vec::new();
        let mut open = None;
        if index < vpcs {
            // A VPC's default group: everything from members of the same group.
            ingress.push(SyntheticRule {
                from_groups: vec![(gid.clone(), account_id.clone())],
                ..SyntheticRule::new("-1", None, None)
            });
        } else {
            ingress.push(SyntheticRule {
                ipv4: vec!["0.0.0.0/0".into()],
                ipv6: vec!["::/0".into()],
                ..SyntheticRule::new("tcp", Some(443), Some(443))
            });
            ingress.push(SyntheticRule {
                ipv4: vec!["10.0.0.0/8".into()],
                ..SyntheticRule::new("tcp", Some(22), Some(22))
            });
            if (h >> 8) % 100 < u64::from(self.open_group_percent) {
                let port = i32::from(OPEN_PORTS[((h >> 16) % OPEN_PORTS.len() as u64) as usize]);
                let (rule, kind) = match (h >> 24) % 4 {
                    0 => (
                        SyntheticRule {
                            ipv4: vec!["0.0.0.0/0".into()],
                            ..SyntheticRule::new("tcp", Some(port), Some(port))
                        },
                        "restricted port (IPv4)",
                    ),
                    1 => (
                        SyntheticRule {
                            ipv6: vec!["::/0".into()],
                            ..SyntheticRule::new("tcp", Some(port), Some(port))
                        },
                        "restricted port (IPv6)",
                    ),
                    2 => (
                        SyntheticRule {
                            ipv4: vec!["0.0.0.0/0".into()],
                            ..SyntheticRule::new("-1", None, None)
                        },
                        "all traffic",
                    ),
                    _ => (
                        SyntheticRule {
                            ipv4: vec!["0.0.0.0/0".into()],
                            ..SyntheticRule::new("tcp", Some(0), Some(65535))
                        },
                        "all ports",
                    ),
                };
                ingress.push(rule);
                open = Some(kind);
            }
            // From another group of the same VPC, and from a prefix list: never violations.
            let in_vpc = (self.groups_per_region - index % vpcs).div_ceil(vpcs);
            if (h >> 32) & 3 == 0 && in_vpc > 1 {
                let other = index % vpcs + ((index / vpcs + 1) % in_vpc) * vpcs;
                ingress.push(SyntheticRule {
                    from_groups: vec![(id("sg", a, r, other), account_id.clone())],
                    ..SyntheticRule::new("tcp", Some(5432), Some(5432))
                });
            }
            if (h >> 40) & 7 == 0 {
                ingress.push(SyntheticRule {
                    prefix_lists: vec![id("pl", a, r, 0)],
                    ..SyntheticRule::new("tcp", Some(443), Some(443))
                });
            }
        }
        SyntheticGroup {
            ingress: merge_rules(ingress),
            description: if index < vpcs {
                "default VPC security group".to_string()
            } else {
                format!("synthetic group {index}")
            },
            tags: if index < vpcs {
                Vec::new()
            } else {
                vec![("Name".to_string(), name.clone())]
            },
            vpc_id: id("vpc", a, r, index % vpcs),
            id: gid,
            name,
            owner_id: account_id,
            egress: vec![SyntheticRule {
                ipv4: vec!["0.0.0.0/0".into()],
                ..SyntheticRule::new("-1", None, None)
            }],
            open_violation: open,
        }
    }

    /// Counts over the whole fleet, for a test's expectations. This walks every instance and
    /// group: it is for checking a run, never called while serving.
    pub fn totals(&self) -> FleetTotals {
        let mut t = FleetTotals::default();
        for a in 0..self.accounts.len() {
            for r in 0..self.regions.len() {
                for i in 0..self.instances_per_region {
                    let inst = self.instance(a, r, i);
                    t.instances += 1;
                    if inst.state == State::Terminated {
                        t.terminated += 1;
                        continue;
                    }
                    t.scanned += 1;
                    if inst.state == State::Stopped {
                        t.stopped += 1;
                    }
                    t.exempt += u64::from(inst.exempt);
                    t.missing_tag += u64::from(inst.missing_tag.is_some());
                }
                for g in 0..self.groups_per_region {
                    t.groups += 1;
                    t.open_groups += u64::from(self.group(a, r, g).open_violation.is_some());
                }
            }
        }
        t
    }

    fn account_index(&self, account: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a == account)
    }

    fn region_index(&self, region: &str) -> Option<usize> {
        self.regions.iter().position(|r| r == region)
    }
}

/// EC2 answers one permission per (protocol, port range), every source of those ports in it.
fn merge_rules(rules: Vec<SyntheticRule>) -> Vec<SyntheticRule> {
    let mut out: Vec<SyntheticRule> = Vec::new();
    for rule in rules {
        let same = out.iter_mut().find(|r| {
            (&r.protocol, r.from_port, r.to_port) == (&rule.protocol, rule.from_port, rule.to_port)
        });
        match same {
            Some(r) => {
                r.ipv4.extend(rule.ipv4);
                r.ipv6.extend(rule.ipv6);
                r.from_groups.extend(rule.from_groups);
                r.prefix_lists.extend(rule.prefix_lists);
            }
            None => out.push(rule),
        }
    }
    out
}

/// Whole-fleet counts ([`SyntheticFleet::totals`]); "scanned" means not terminated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetTotals {
    /// Every instance, terminated ones included.
    pub instances: u64,
    /// Instances in a scanned state.
    pub scanned: u64,
    /// Terminated instances.
    pub terminated: u64,
    /// Stopped instances (scanned).
    pub stopped: u64,
    /// Scanned instances tagged exempt.
    pub exempt: u64,
    /// Scanned instances missing a required tag (exempt ones included).
    pub missing_tag: u64,
    /// Every security group.
    pub groups: u64,
    /// Groups with a world-open rule the rules call a violation.
    pub open_groups: u64,
}

/// An instance state the fleet holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// `running` (code 16).
    Running,
    /// `stopped` (code 80).
    Stopped,
    /// `terminated` (code 48): no network interface, subnet, VPC or groups any more.
    Terminated,
}

impl State {
    /// The API's state name.
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Stopped => "stopped",
            State::Terminated => "terminated",
        }
    }

    /// The API's state code.
    pub fn code(self) -> u16 {
        match self {
            State::Running => 16,
            State::Stopped => 80,
            State::Terminated => 48,
        }
    }
}

/// One generated instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticInstance {
    /// `i-` + 17 hex digits encoding (account, region, index).
    pub id: String,
    /// The reservation: [`RESERVATION_SIZE`] consecutive instances share one.
    pub reservation_id: String,
    /// Position in its reservation (`amiLaunchIndex`).
    pub launch_index: u64,
    /// Its state.
    pub state: State,
    /// The image (one per region).
    pub image_id: String,
    /// The instance type.
    pub instance_type: String,
    /// Its VPC (reported unless terminated).
    pub vpc_id: String,
    /// Its subnet (reported unless terminated).
    pub subnet_id: String,
    /// The zone, `<region>a` or `<region>b`.
    pub availability_zone: String,
    /// The primary private address (reported unless terminated).
    pub private_ip: String,
    /// The primary network interface (reported unless terminated).
    pub network_interface_id: String,
    /// The root volume.
    pub volume_id: String,
    /// Launch time, ISO 8601.
    pub launch_time: String,
    /// Attached groups as (id, name), all of its VPC (reported unless terminated).
    pub groups: Vec<(String, String)>,
    /// Tags in the order sent.
    pub tags: Vec<(String, String)>,
    /// The required key this instance misses (absent, blank, or with its key's case or spacing
    /// changed), if any.
    pub missing_tag: Option<String>,
    /// Whether it carries the exempt tag.
    pub exempt: bool,
}

/// One generated security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticGroup {
    /// `sg-` + 17 hex digits.
    pub id: String,
    /// `default` for a VPC's first group, else `<kind>-<index>`.
    pub name: String,
    /// The description.
    pub description: String,
    /// Its VPC.
    pub vpc_id: String,
    /// The account that owns it.
    pub owner_id: String,
    /// Tags (`Name` on non-default groups).
    pub tags: Vec<(String, String)>,
    /// Inbound rules.
    pub ingress: Vec<SyntheticRule>,
    /// Outbound rules (all traffic to anywhere, as EC2 creates them).
    pub egress: Vec<SyntheticRule>,
    /// What makes it a violation, when it is one.
    pub open_violation: Option<&'static str>,
}

/// One permission of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticRule {
    /// `tcp`, `udp`, `icmp` or `-1`.
    pub protocol: String,
    /// First port (absent for `-1`).
    pub from_port: Option<i32>,
    /// Last port (absent for `-1`).
    pub to_port: Option<i32>,
    /// IPv4 CIDRs.
    pub ipv4: Vec<String>,
    /// IPv6 CIDRs.
    pub ipv6: Vec<String>,
    /// Source groups as (group id, owner account).
    pub from_groups: Vec<(String, String)>,
    /// Source prefix lists.
    pub prefix_lists: Vec<String>,
}

impl SyntheticRule {
    fn new(protocol: &str, from_port: Option<i32>, to_port: Option<i32>) -> SyntheticRule {
        SyntheticRule {
            protocol: protocol.to_string(),
            from_port,
            to_port,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            from_groups: Vec::new(),
            prefix_lists: Vec::new(),
        }
    }
}

/// What the endpoint answered, as a snapshot ([`SyntheticEc2::counters`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyntheticCounters {
    /// Requests by `service:Action` (e.g. `ec2:DescribeInstances`), refused ones included.
    pub requests: BTreeMap<String, u64>,
    /// EC2 requests by `<account>/<region>`.
    pub by_account_region: BTreeMap<String, u64>,
    /// Error answers by code (`RequestLimitExceeded`, `AccessDenied`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Instances sent in `DescribeInstances` answers.
    pub instances_sent: u64,
    /// Groups sent in `DescribeSecurityGroups` answers.
    pub groups_sent: u64,
}

/// The running endpoint. Dropping it stops accepting connections.
pub struct SyntheticEc2 {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    fleet: RwLock<Arc<SyntheticFleet>>,
    stop: AtomicBool,
    requests: AtomicU64,
    sessions: AtomicU64,
    counters: Mutex<SyntheticCounters>,
}

impl Shared {
    fn fleet(&self) -> Arc<SyntheticFleet> {
        self.fleet.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn counters(&self) -> MutexGuard<'_, SyntheticCounters> {
        // A panicking connection thread must not take the counters with it.
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SyntheticEc2 {
    /// Starts the endpoint on a free 127.0.0.1 port; panics with the reason when it cannot (or
    /// when the fleet fails [`SyntheticFleet::check`]).
    pub fn start(fleet: SyntheticFleet) -> SyntheticEc2 {
        fleet.check();
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("synthetic EC2: cannot bind 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("synthetic EC2: no local address: {e}"))
            .port();
        let shared = Arc::new(Shared {
            fleet: RwLock::new(Arc::new(fleet)),
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            counters: Mutex::new(SyntheticCounters::default()),
        });
        let accepting = shared.clone();
        std::thread::Builder::new()
            .name(format!("synthetic-ec2-{port}"))
            .spawn(move || accept(listener, accepting))
            .unwrap_or_else(|e| panic!("synthetic EC2: cannot start its thread: {e}"));
        SyntheticEc2 { port, shared }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL for EC2 and STS clients.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The fleet it serves.
    pub fn fleet(&self) -> SyntheticFleet {
        (*self.shared.fleet()).clone()
    }

    /// Serves another fleet from the next request on (checked as in [`SyntheticEc2::start`]).
    pub fn set(&self, fleet: SyntheticFleet) {
        fleet.check();
        *self.shared.fleet.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fleet);
    }

    /// Environment that points every AWS client at this endpoint alone, with dummy credentials
    /// (the home account) and the fleet's first region.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        let region = self
            .shared
            .fleet()
            .regions
            .first()
            .cloned()
            .unwrap_or_else(|| crate::REGION.to_string());
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_SESSION_TOKEN", "testing".into()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The service-specific endpoint variables (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL_STS`)
    /// that send only EC2 and STS here: add them to [`crate::Moto::aws_env`] and S3, SNS and
    /// CloudWatch stay on moto.
    pub fn service_env(&self) -> Vec<(String, String)> {
        ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS"]
            .into_iter()
            .map(|k| (k.to_string(), self.endpoint()))
            .collect()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> SyntheticCounters {
        self.shared.counters().clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        *self.shared.counters() = SyntheticCounters::default();
    }
}

impl Drop for SyntheticEc2 {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so it sees the flag and returns (closing the listener).
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok(conn) => {
                let shared = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("synthetic-ec2-conn".into())
                    .spawn(move || {
                        let _ = serve(conn, &shared);
                    });
            }
            // Out of descriptors and the like: wait instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1: one request at a time per connection, kept alive.

struct Request {
    method: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Answer {
    status: u16,
    body: String,
    request_id: String,
    /// Organizations speaks JSON; EC2 and STS XML.
    json: bool,
}

fn serve(conn: TcpStream, shared: &Shared) -> io::Result<()> {
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let Some(request) = read_request(&mut reader, &mut conn)? else {
            return Ok(());
        };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let answer = handle(shared, &request);
        let reason = match answer.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            412 => "Precondition Failed",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             x-amzn-RequestId: {}\r\nServer: synthetic-ec2\r\n",
            answer.status,
            if answer.json {
                "application/x-amz-json-1.1"
            } else {
                "text/xml;charset=UTF-8"
            },
            answer.body.len(),
            answer.request_id
        );
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        conn.write_all(out.as_bytes())?;
        conn.write_all(answer.body.as_bytes())?;
        conn.flush()?;
        if close {
            return Ok(());
        }
    }
}

/// Reads one request; `None` when the connection closed between requests.
fn read_request(r: &mut impl BufRead, conn: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => return Ok(None),
            Ok(_) if line.trim().is_empty() => continue,
            Ok(_) => break,
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if headers.len() > 200 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "too many headers",
            ));
        }
    }
    let mut request = Request {
        method,
        query: target
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailer fields up to the blank line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = request.body.len();
            request.body.resize(start + size, 0);
            r.read_exact(&mut request.body[start..])?;
            let mut crlf = String::new();
            r.read_line(&mut crlf)?;
        }
    } else if let Some(len) = request.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        if len > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body over 1 MB"));
        }
        request.body = vec![0; len];
        r.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

/// A request's parameters: the query string and, for a form POST, the body.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(request: &Request) -> Params {
        let mut out = form(&request.query);
        if request.method == "POST" {
            out.extend(form(&String::from_utf8_lossy(&request.body)));
        }
        Params(out)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Name.1`, `Name.2`, ... in numeric order.
    fn list(&self, name: &str) -> Vec<String> {
        let prefix = format!("{name}.");
        let mut items: Vec<(u64, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(&prefix)?.parse().ok()?;
                Some((n, v.clone()))
            })
            .collect();
        items.sort();
        items.into_iter().map(|(_, v)| v).collect()
    }

    /// `Filter.N.Name` with its `Filter.N.Value.M`, in N order.
    fn filters(&self) -> Vec<(String, Vec<String>)> {
        let mut by_n: BTreeMap<u64, (String, BTreeMap<u64, String>)> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix("Filter.") else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            let entry = by_n.entry(n).or_default();
            if field == "Name" {
                entry.0 = v.clone();
            } else if let Some(m) = field.strip_prefix("Value.") {
                if let Ok(m) = m.parse::<u64>() {
                    entry.1.insert(m, v.clone());
                }
            }
        }
        by_n.into_values()
            .map(|(name, values)| (name, values.into_values().collect()))
            .collect()
    }

    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// Who signed a request and where it goes.
struct Caller {
    account: String,
    arn: String,
    user_id: String,
}

/// The parts of the SigV4 credential scope: access key id, region, service.
fn credential_scope(request: &Request) -> Option<(String, String, String)> {
    let auth = request.header("authorization")?;
    let scope = auth.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let mut parts = scope.split('/');
    let key = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let service = parts.next()?.to_string();
    Some((key, region, service))
}

fn caller(fleet: &SyntheticFleet, key: &str, token: Option<&str>) -> Caller {
    if let Some(account) = key_account(key) {
        if let Some((role_arn, session)) = token.and_then(|t| decode_session(t, &account)) {
            let role_name = role_arn.rsplit('/').next().unwrap_or_default().to_string();
            return Caller {
                arn: format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
                user_id: format!("{}:{session}", role_id(&role_arn)),
                account,
            };
        }
        return Caller {
            arn: format!("arn:aws:sts::{account}:assumed-role/unknown/unknown"),
            user_id: "AROASYNTHETICUNKNOWN:unknown".to_string(),
            account,
        };
    }
    Caller {
        account: fleet.home_account.clone(),
        arn: format!("arn:aws:iam::{}:user/synthetic", fleet.home_account),
        user_id: "AIDASYNTHETICHOME0001".to_string(),
    }
}

/// The account id inside a key this endpoint handed out (`ASIA` + 12 digits + 4).
fn key_account(key: &str) -> Option<String> {
    let digits = key.strip_prefix("ASIA")?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits[..12].to_string())
}

/// An EC2 or STS error: HTTP status, code, message.
struct Failure(u16, &'static str, String);

fn handle(shared: &Shared, request: &Request) -> Answer {
    let fleet = shared.fleet();
    let n = shared.requests.fetch_add(1, Ordering::Relaxed);
    let request_id = format!(
        "{:08x}-5e7a-4c1d-9b2e-{:012x}",
        (fleet.seed as u32) ^ 0x5e7a_1c2d,
        n
    );
    let params = Params::of(request);
    // Query protocols name the action in a parameter, JSON ones in X-Amz-Target.
    let action = match request.header("x-amz-target") {
        Some(target) => target.rsplit('.').next().unwrap_or_default().to_string(),
        None => params.get("Action").unwrap_or_default().to_string(),
    };
    let scope = credential_scope(request);
    let service = match &scope {
        Some((_, _, service)) => service.clone(),
        None if matches!(action.as_str(), "AssumeRole" | "GetCallerIdentity") => "sts".into(),
        None => "ec2".into(),
    };
    shared
        .counters()
        .requests
        .entry(format!("{service}:{action}"))
        .and_modify(|c| *c += 1)
        .or_insert(1);
    let (key, region) = match &scope {
        Some((key, region, _)) => (key.clone(), region.clone()),
        None => {
            let failure = Failure(
                401,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token".to_string(),
            );
            return failed(shared, &service, failure, request_id);
        }
    };
    let who = caller(&fleet, &key, request.header("x-amz-security-token"));
    let result = match service.as_str() {
        "sts" => sts(shared, &fleet, &params, &action, &who),
        "ec2" => {
            *shared
                .counters()
                .by_account_region
                .entry(format!("{}/{region}", who.account))
                .or_default() += 1;
            if fleet.throttle > 0.0 && draw(fleet.seed, n) < fleet.throttle {
                Err(Failure(
                    503,
                    "RequestLimitExceeded",
                    "Request limit exceeded.".to_string(),
                ))
            } else {
                if !fleet.latency.is_zero() {
                    std::thread::sleep(fleet.latency);
                }
                ec2(shared, &fleet, &params, &action, &who, &region, &request_id)
            }
        }
        "organizations" => organizations(&fleet, request, &action, &who),
        other => Err(Failure(
            400,
            "UnknownService",
            format!("the synthetic endpoint serves ec2, sts and organizations, not {other}"),
        )),
    };
    match result {
        Ok(body) => Answer {
            status: 200,
            body,
            request_id,
            json: service == "organizations",
        },
        Err(failure) => failed(shared, &service, failure, request_id),
    }
}

fn failed(
    shared: &Shared,
    service: &str,
    Failure(status, code, message): Failure,
    id: String,
) -> Answer {
    *shared
        .counters()
        .errors
        .entry(code.to_string())
        .or_default() += 1;
    let body = if service == "organizations" {
        serde_json::json!({"__type": code, "Message": message}).to_string()
    } else if service == "sts" {
        let message = xml_escape(&message);
        format!(
            "<ErrorResponse xmlns=\"{STS_XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code>\
             <Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
        )
    } else {
        let message = xml_escape(&message);
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}\
             </Code><Message>{message}</Message></Error></Errors><RequestID>{id}</RequestID>\
             </Response>"
        )
    };
    Answer {
        status,
        body,
        request_id: id,
        json: service == "organizations",
    }
}

/// Uniform in [0, 1) for request `n`: the same seed throttles the same requests.
fn draw(seed: u64, n: u64) -> f64 {
    (hash(seed, &[0x7417, n]) >> 11) as f64 / (1u64 << 53) as f64
}

// ---------------------------------------------------------------------------------------------
// STS.

fn sts(
    shared: &Shared,
    fleet: &SyntheticFleet,
    params: &Params,
    action: &str,
    who: &Caller,
) -> Result<String, Failure> {
    match action {
        "GetCallerIdentity" => Ok(format!(
            "<GetCallerIdentityResponse xmlns=\"{STS_XMLNS}\"><GetCallerIdentityResult>\
             <Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>synthetic</RequestId></ResponseMetadata>\
             </GetCallerIdentityResponse>",
            xml_escape(&who.arn),
            xml_escape(&who.user_id),
            who.account
        )),
        "AssumeRole" => assume_role(shared, fleet, params, who),
        other => Err(Failure(
            400,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}

fn assume_role(
    shared: &Shared,
    fleet: &SyntheticFleet,
    params: &Params,
    who: &Caller,
) -> Result<String, Failure> {
    let role_arn = params.get("RoleArn").unwrap_or_default();
    let session = params.get("RoleSessionName").unwrap_or_default();
    let invalid = |what: &str| {
        Failure(
            400,
            "ValidationError",
            format!("1 validation error detected: {what}"),
        )
    };
    let Some((account, role_name)) = parse_role_arn(role_arn) else {
        return Err(invalid(&format!(
            "Value '{role_arn}' at 'roleArn' is not a role ARN"
        )));
    };
    let session_ok = (2..=64).contains(&session.len())
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !session_ok {
        return Err(invalid(&format!(
            "Value '{session}' at 'roleSessionName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [\\w+=,.@-]* (2 to 64 characters)"
        )));
    }
    let duration: u64 = match params.get("DurationSeconds") {
        None => 3600,
        Some(d) => match d.parse() {
            Ok(d) if (900..=43200).contains(&d) => d,
            _ => {
                return Err(invalid(&format!(
                    "Value '{d}' at 'durationSeconds' failed to satisfy constraint: \
                     Member must have value between 900 and 43200"
                )))
            }
        },
    };
    let denied = fleet.account_index(&account).is_none()
        || fleet.accounts_without_role.contains(&account)
        || fleet.suspended_accounts.contains(&account)
        || fleet
            .member_role_name
            .as_ref()
            .is_some_and(|name| *name != role_name)
        || fleet
            .external_id
            .as_ref()
            .is_some_and(|id| params.get("ExternalId") != Some(id.as_str()));
    if denied {
        return Err(Failure(
            403,
            "AccessDenied",
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                who.arn
            ),
        ));
    }
    let n = shared.sessions.fetch_add(1, Ordering::Relaxed) % 10_000;
    let key = format!("ASIA{account}{n:04}");
    let secret: String = (0..40)
        .map(|i| {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
            alphabet[(hash(fleet.seed, &[H_SECRET, n, i]) % 62) as usize] as char
        })
        .collect();
    let token = encode_session(&account, role_arn, session);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(format!(
        "<AssumeRoleResponse xmlns=\"{STS_XMLNS}\"><AssumeRoleResult><AssumedRoleUser>\
         <AssumedRoleId>{}:{session}</AssumedRoleId>\
         <Arn>arn:aws:sts::{account}:assumed-role/{}/{session}</Arn></AssumedRoleUser>\
         <Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
         <SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials>\
         <PackedPolicySize>0</PackedPolicySize></AssumeRoleResult>\
         <ResponseMetadata><RequestId>synthetic</RequestId></ResponseMetadata>\
         </AssumeRoleResponse>",
        role_id(role_arn),
        xml_escape(&role_name),
        iso8601(now + duration)
    ))
}

/// `arn:<partition>:iam::<12 digits>:role/[path/]name` -> (account, name).
fn parse_role_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !partition.starts_with("aws") {
        return None;
    }
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path = resource.strip_prefix("role/")?;
    let name = path.rsplit('/').next()?;
    let ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty();
    ok.then(|| (account.to_string(), name.to_string()))
}

fn role_id(role_arn: &str) -> String {
    format!("AROA{:016X}", hash(0, &[fnv(role_arn)]))
}

/// The session token carries the role and session, so `GetCallerIdentity` needs no state.
fn encode_session(account: &str, role_arn: &str, session: &str) -> String {
    let plain = format!("{account}\n{role_arn}\n{session}");
    let mut out = String::from("SYNTHETIC");
    for b in plain.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn decode_session(token: &str, account: &str) -> Option<(String, String)> {
    let hex = token.strip_prefix("SYNTHETIC")?;
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let plain = String::from_utf8(bytes?).ok()?;
    let mut parts = plain.split('\n');
    let (acct, role, session) = (parts.next()?, parts.next()?, parts.next()?);
    (acct == account).then(|| (role.to_string(), session.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Organizations.

/// The organisation's accounts: the home account (its management account) first, then the fleet's.
fn organization_accounts(fleet: &SyntheticFleet) -> Vec<&String> {
    let mut out = vec![&fleet.home_account];
    out.extend(fleet.accounts.iter().filter(|a| **a != fleet.home_account));
    out
}

fn organizations(
    fleet: &SyntheticFleet,
    request: &Request,
    action: &str,
    who: &Caller,
) -> Result<String, Failure> {
    if action != "ListAccounts" {
        return Err(Failure(
            400,
            "InvalidInputException",
            format!("the synthetic endpoint answers ListAccounts, not {action}"),
        ));
    }
    // Only the management account (or a delegated administrator) may list the organisation.
    if who.account != fleet.home_account {
        return Err(Failure(
            400,
            "AccessDeniedException",
            "You don't have permissions to access this resource.".to_string(),
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let size = match body.get("MaxResults").and_then(|v| v.as_u64()) {
        None => 20,
        Some(n) if (1..=20).contains(&n) => n,
        Some(n) => {
            return Err(Failure(
                400,
                "InvalidInputException",
                format!("MaxResults {n} is outside 1-20"),
            ))
        }
    };
    let accounts = organization_accounts(fleet);
    let given = body.get("NextToken").and_then(|v| v.as_str());
    let start = read_token(fleet, Some((0, 0)), 3, 0, given).map_err(|_| {
        Failure(
            400,
            "InvalidInputException",
            "The NextToken is not valid.".to_string(),
        )
    })?;
    let org = format!(
        "o-{:010x}",
        hash(fleet.seed, &[fnv(&fleet.home_account)]) >> 24
    );
    let end = (accounts.len() as u64).min(start + size);
    let listed: Vec<serde_json::Value> = (start..end)
        .map(|i| {
            let id = accounts[i as usize];
            let status = if fleet.suspended_accounts.contains(id) {
                "SUSPENDED"
            } else {
                "ACTIVE"
            };
            serde_json::json!({
                "Id": id,
                "Arn": format!("arn:aws:organizations::{}:account/{org}/{id}", fleet.home_account),
                "Email": format!("aws+{id}@example.com"),
                "Name": format!("synthetic-{id}"),
                // Status is the older field, State the newer; AWS sends both.
                "Status": status,
                "State": status,
                "JoinedMethod": if i == 0 { "INVITED" } else { "CREATED" },
                "JoinedTimestamp": 1_704_067_200 + i * 86_400,
            })
        })
        .collect();
    let mut answer = serde_json::json!({ "Accounts": listed });
    if end < accounts.len() as u64 {
        answer["NextToken"] = token(fleet, (0, 0), 3, 0, end).into();
    }
    Ok(answer.to_string())
}

// ---------------------------------------------------------------------------------------------
// EC2.

fn ec2(
    shared: &Shared,
    fleet: &SyntheticFleet,
    params: &Params,
    action: &str,
    who: &Caller,
    region: &str,
    request_id: &str,
) -> Result<String, Failure> {
    if fleet.disabled_regions.iter().any(|r| r == region) {
        return Err(Failure(
            401,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials".to_string(),
        ));
    }
    if !matches!(
        action,
        "DescribeInstances" | "DescribeSecurityGroups" | "DescribeRegions"
    ) {
        return Err(Failure(
            400,
            "InvalidAction",
            format!(
                "The action {action} is not valid for this web service (the synthetic endpoint \
                 answers DescribeInstances, DescribeSecurityGroups and DescribeRegions)."
            ),
        ));
    }
    if params.flag("DryRun") {
        return Err(Failure(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.".to_string(),
        ));
    }
    // The fleet of this (account, region); None for an account or region that holds nothing.
    let at = fleet
        .account_index(&who.account)
        .zip(fleet.region_index(region));
    match action {
        "DescribeInstances" => {
            describe_instances(shared, fleet, params, at, &who.account, request_id)
        }
        "DescribeSecurityGroups" => describe_groups(shared, fleet, params, at, request_id),
        _ => describe_regions(fleet, params, request_id),
    }
}

fn page_size(params: &Params) -> Result<u64, Failure> {
    match params.get("MaxResults") {
        None => Ok(DEFAULT_PAGE),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (MIN_PAGE..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(Failure(
                400,
                "InvalidParameterValue",
                format!(
                    "Value ( {v} ) for parameter maxResults is invalid. Expect a number between \
                     {MIN_PAGE} and {MAX_PAGE}."
                ),
            )),
        },
    }
}

/// A page token: the next index, and a check binding it to the fleet, the (account, region),
/// the call and its filter, so a token is never read against another listing.
fn token(fleet: &SyntheticFleet, at: (usize, usize), call: u64, filter: u64, next: u64) -> String {
    let check = hash(
        fleet.seed,
        &[H_TOKEN, at.0 as u64, at.1 as u64, call, filter, next],
    );
    format!("{next:016x}{check:016x}")
}

fn read_token(
    fleet: &SyntheticFleet,
    at: Option<(usize, usize)>,
    call: u64,
    filter: u64,
    given: Option<&str>,
) -> Result<u64, Failure> {
    let Some(given) = given.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let next = at.and_then(|at| {
        let next = u64::from_str_radix(given.get(..16)?, 16).ok()?;
        (given.len() == 32 && token(fleet, at, call, filter, next) == given).then_some(next)
    });
    next.ok_or_else(|| {
        Failure(
            400,
            "InvalidParameterValue",
            format!("The token '{given}' is invalid for this request."),
        )
    })
}

fn describe_instances(
    shared: &Shared,
    fleet: &SyntheticFleet,
    params: &Params,
    at: Option<(usize, usize)>,
    account: &str,
    request_id: &str,
) -> Result<String, Failure> {
    let ids = params.list("InstanceId");
    if !ids.is_empty() && params.get("MaxResults").is_some() {
        return Err(Failure(
            400,
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults".to_string(),
        ));
    }
    let mut states: Option<BTreeSet<String>> = None;
    for (name, values) in params.filters() {
        match name.as_str() {
            "instance-state-name" => states = Some(values.into_iter().collect()),
            other => return Err(invalid_filter(other)),
        }
    }
    let wanted = |s: State| states.as_ref().is_none_or(|set| set.contains(s.name()));
    let filter_key = states
        .as_ref()
        .map(|set| fnv(&set.iter().cloned().collect::<Vec<_>>().join(",")))
        .unwrap_or(0);

    let mut page: Vec<SyntheticInstance> = Vec::new();
    let mut next_token = None;
    if !ids.is_empty() {
        for given in &ids {
            let found = decode_id("i", given)
                .filter(|&(a, r, i)| {
                    at == Some((a as usize, r as usize)) && i < fleet.instances_per_region
                })
                .map(|(a, r, i)| fleet.instance(a as usize, r as usize, i));
            match found {
                Some(inst) if wanted(inst.state) => page.push(inst),
                Some(_) => {}
                None => {
                    return Err(Failure(
                        400,
                        "InvalidInstanceID.NotFound",
                        format!("The instance ID '{given}' does not exist"),
                    ))
                }
            }
        }
    } else {
        let size = page_size(params)?;
        let start = read_token(fleet, at, 1, filter_key, params.get("NextToken"))?;
        if let Some((a, r)) = at {
            let end = fleet.instances_per_region;
            // Bounded walk: a filter that matches nothing still costs one page, not the fleet.
            let walk_end = end.min(start.saturating_add(size * STATE_CYCLE));
            let mut i = start;
            while i < walk_end && (page.len() as u64) < size {
                if wanted(fleet.state(a as u64, r as u64, i)) {
                    page.push(fleet.instance(a, r, i));
                }
                i += 1;
            }
            if i < end {
                next_token = Some(token(fleet, (a, r), 1, filter_key, i));
            }
        }
    }
    shared.counters().instances_sent += page.len() as u64;

    let mut out = String::with_capacity(256 + page.len() * 3000);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeInstancesResponse xmlns=\"{EC2_XMLNS}\">\
         <requestId>{request_id}</requestId><reservationSet>"
    );
    let mut open_reservation: Option<&str> = None;
    for inst in &page {
        if open_reservation != Some(inst.reservation_id.as_str()) {
            if open_reservation.is_some() {
                out.push_str("</instancesSet></item>");
            }
            let _ = write!(
                out,
                "<item><reservationId>{}</reservationId><ownerId>{account}</ownerId><groupSet/>\
                 <instancesSet>",
                inst.reservation_id
            );
            open_reservation = Some(&inst.reservation_id);
        }
        write_instance(&mut out, inst, account);
    }
    if open_reservation.is_some() {
        out.push_str("</instancesSet></item>");
    }
    out.push_str("</reservationSet>");
    if let Some(t) = next_token {
        let _ = write!(out, "<nextToken>{t}</nextToken>");
    }
    out.push_str("</DescribeInstancesResponse>");
    Ok(out)
}

fn write_groups(out: &mut String, groups: &[(String, String)]) {
    if groups.is_empty() {
        out.push_str("<groupSet/>");
        return;
    }
    out.push_str("<groupSet>");
    for (id, name) in groups {
        let _ = write!(
            out,
            "<item><groupId>{id}</groupId><groupName>{}</groupName></item>",
            xml_escape(name)
        );
    }
    out.push_str("</groupSet>");
}

fn write_tags(out: &mut String, tags: &[(String, String)]) {
    if tags.is_empty() {
        out.push_str("<tagSet/>");
        return;
    }
    out.push_str("<tagSet>");
    for (k, v) in tags {
        let _ = write!(
            out,
            "<item><key>{}</key><value>{}</value></item>",
            xml_escape(k),
            xml_escape(v)
        );
    }
    out.push_str("</tagSet>");
}

fn write_instance(out: &mut String, i: &SyntheticInstance, account: &str) {
    let live = i.state != State::Terminated;
    let _ = write!(
        out,
        "<item><instanceId>{}</instanceId><imageId>{}</imageId><instanceState><code>{}</code>\
         <name>{}</name></instanceState>",
        i.id,
        i.image_id,
        i.state.code(),
        i.state.name()
    );
    let dns = if live {
        format!("ip-{}.ec2.internal", i.private_ip.replace('.', "-"))
    } else {
        String::new()
    };
    let reason = match i.state {
        State::Running => String::new(),
        State::Stopped => "User initiated (2024-06-01 12:00:00 GMT)".to_string(),
        State::Terminated => "User initiated (2024-06-02 12:00:00 GMT)".to_string(),
    };
    let _ = write!(
        out,
        "<privateDnsName>{dns}</privateDnsName><dnsName/><reason>{reason}</reason>\
         <amiLaunchIndex>{}</amiLaunchIndex><productCodes/><instanceType>{}</instanceType>\
         <launchTime>{}</launchTime><placement><availabilityZone>{}</availabilityZone>\
         <groupName/><tenancy>default</tenancy></placement><monitoring><state>disabled</state>\
         </monitoring>",
        i.launch_index, i.instance_type, i.launch_time, i.availability_zone
    );
    if live {
        let _ = write!(
            out,
            "<subnetId>{}</subnetId><vpcId>{}</vpcId><privateIpAddress>{}</privateIpAddress>\
             <sourceDestCheck>true</sourceDestCheck>",
            i.subnet_id, i.vpc_id, i.private_ip
        );
        write_groups(out, &i.groups);
    } else {
        out.push_str("<groupSet/>");
    }
    if i.state != State::Running {
        out.push_str(
            "<stateReason><code>Client.UserInitiatedShutdown</code><message>\
             Client.UserInitiatedShutdown: User initiated shutdown</message></stateReason>",
        );
    }
    let _ = write!(
        out,
        "<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType>\
         <rootDeviceName>/dev/xvda</rootDeviceName>"
    );
    if live {
        let _ = write!(
            out,
            "<blockDeviceMapping><item><deviceName>/dev/xvda</deviceName><ebs><volumeId>{}\
             </volumeId><status>attached</status><attachTime>{}</attachTime>\
             <deleteOnTermination>true</deleteOnTermination></ebs></item></blockDeviceMapping>",
            i.volume_id, i.launch_time
        );
    } else {
        out.push_str("<blockDeviceMapping/>");
    }
    let _ = write!(
        out,
        "<virtualizationType>hvm</virtualizationType><clientToken>{}</clientToken>",
        i.reservation_id
    );
    write_tags(out, &i.tags);
    out.push_str("<hypervisor>xen</hypervisor>");
    if live {
        let mac = &i.network_interface_id[i.network_interface_id.len() - 10..];
        let _ = write!(
            out,
            "<networkInterfaceSet><item><networkInterfaceId>{eni}</networkInterfaceId>\
             <subnetId>{subnet}</subnetId><vpcId>{vpc}</vpcId><description>Primary network \
             interface</description><ownerId>{account}</ownerId><status>in-use</status>\
             <macAddress>02:{}:{}:{}:{}:{}</macAddress><privateIpAddress>{ip}</privateIpAddress>\
             <privateDnsName>{dns}</privateDnsName><sourceDestCheck>true</sourceDestCheck>",
            &mac[0..2],
            &mac[2..4],
            &mac[4..6],
            &mac[6..8],
            &mac[8..10],
            eni = i.network_interface_id,
            subnet = i.subnet_id,
            vpc = i.vpc_id,
            ip = i.private_ip,
        );
        write_groups(out, &i.groups);
        let _ = write!(
            out,
            "<attachment><attachmentId>eni-attach-{}</attachmentId><deviceIndex>0</deviceIndex>\
             <status>attached</status><attachTime>{}</attachTime>\
             <deleteOnTermination>true</deleteOnTermination><networkCardIndex>0</networkCardIndex>\
             </attachment><privateIpAddressesSet><item><privateIpAddress>{ip}</privateIpAddress>\
             <privateDnsName>{dns}</privateDnsName><primary>true</primary></item>\
             </privateIpAddressesSet><ipv6AddressesSet/><interfaceType>interface</interfaceType>\
             </item></networkInterfaceSet>",
            &i.network_interface_id[4..],
            i.launch_time,
            ip = i.private_ip,
        );
    } else {
        out.push_str("<networkInterfaceSet/>");
    }
    out.push_str(
        "<ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>\
         <metadataOptions><state>applied</state><httpTokens>required</httpTokens>\
         <httpPutResponseHopLimit>2</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint>\
         <httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled\
         </instanceMetadataTags></metadataOptions></item>",
    );
}

fn describe_groups(
    shared: &Shared,
    fleet: &SyntheticFleet,
    params: &Params,
    at: Option<(usize, usize)>,
    request_id: &str,
) -> Result<String, Failure> {
    if let Some((name, _)) = params.filters().into_iter().next() {
        return Err(invalid_filter(&name));
    }
    if !params.list("GroupName").is_empty() {
        return Err(Failure(
            400,
            "InvalidParameterValue",
            "GroupName is not supported by the synthetic endpoint; use GroupId".to_string(),
        ));
    }
    let ids = params.list("GroupId");
    if !ids.is_empty() && params.get("MaxResults").is_some() {
        return Err(Failure(
            400,
            "InvalidParameterCombination",
            "The parameter groupIds cannot be used with the parameter maxResults".to_string(),
        ));
    }
    let mut page = Vec::new();
    let mut next_token = None;
    if !ids.is_empty() {
        for given in &ids {
            let found = decode_id("sg", given).filter(|&(a, r, g)| {
                at == Some((a as usize, r as usize)) && g < fleet.groups_per_region
            });
            match found {
                Some((a, r, g)) => page.push(fleet.group(a as usize, r as usize, g)),
                None => {
                    return Err(Failure(
                        400,
                        "InvalidGroup.NotFound",
                        format!("The security group '{given}' does not exist"),
                    ))
                }
            }
        }
    } else {
        let size = page_size(params)?;
        let start = read_token(fleet, at, 2, 0, params.get("NextToken"))?;
        if let Some((a, r)) = at {
            let end = fleet.groups_per_region.min(start.saturating_add(size));
            page.extend((start..end).map(|g| fleet.group(a, r, g)));
            if end < fleet.groups_per_region {
                next_token = Some(token(fleet, (a, r), 2, 0, end));
            }
        }
    }
    shared.counters().groups_sent += page.len() as u64;

    let mut out = String::with_capacity(256 + page.len() * 1500);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeSecurityGroupsResponse \
         xmlns=\"{EC2_XMLNS}\"><requestId>{request_id}</requestId><securityGroupInfo>"
    );
    let region = at
        .and_then(|(_, r)| fleet.regions.get(r))
        .map(String::as_str)
        .unwrap_or_default();
    for g in &page {
        let _ = write!(
            out,
            "<item><ownerId>{owner}</ownerId><groupId>{id}</groupId><groupName>{}</groupName>\
             <groupDescription>{}</groupDescription><vpcId>{}</vpcId><securityGroupArn>\
             arn:aws:ec2:{region}:{owner}:security-group/{id}</securityGroupArn>",
            xml_escape(&g.name),
            xml_escape(&g.description),
            g.vpc_id,
            owner = g.owner_id,
            id = g.id,
        );
        write_permissions(&mut out, "ipPermissions", &g.ingress);
        write_permissions(&mut out, "ipPermissionsEgress", &g.egress);
        write_tags(&mut out, &g.tags);
        out.push_str("</item>");
    }
    out.push_str("</securityGroupInfo>");
    if let Some(t) = next_token {
        let _ = write!(out, "<nextToken>{t}</nextToken>");
    }
    out.push_str("</DescribeSecurityGroupsResponse>");
    Ok(out)
}

fn write_permissions(out: &mut String, element: &str, rules: &[SyntheticRule]) {
    if rules.is_empty() {
        let _ = write!(out, "<{element}/>");
        return;
    }
    let _ = write!(out, "<{element}>");
    for rule in rules {
        let _ = write!(out, "<item><ipProtocol>{}</ipProtocol>", rule.protocol);
        if let Some(p) = rule.from_port {
            let _ = write!(out, "<fromPort>{p}</fromPort>");
        }
        if let Some(p) = rule.to_port {
            let _ = write!(out, "<toPort>{p}</toPort>");
        }
        if rule.from_groups.is_empty() {
            out.push_str("<groups/>");
        } else {
            out.push_str("<groups>");
            for (id, owner) in &rule.from_groups {
                let _ = write!(
                    out,
                    "<item><userId>{owner}</userId><groupId>{id}</groupId></item>"
                );
            }
            out.push_str("</groups>");
        }
        list(out, "ipRanges", "cidrIp", &rule.ipv4);
        list(out, "ipv6Ranges", "cidrIpv6", &rule.ipv6);
        list(out, "prefixListIds", "prefixListId", &rule.prefix_lists);
        out.push_str("</item>");
    }
    let _ = write!(out, "</{element}>");
}

fn list(out: &mut String, element: &str, field: &str, values: &[String]) {
    if values.is_empty() {
        let _ = write!(out, "<{element}/>");
        return;
    }
    let _ = write!(out, "<{element}>");
    for v in values {
        let _ = write!(out, "<item><{field}>{v}</{field}></item>");
    }
    let _ = write!(out, "</{element}>");
}

fn describe_regions(
    fleet: &SyntheticFleet,
    params: &Params,
    request_id: &str,
) -> Result<String, Failure> {
    let all = params.flag("AllRegions");
    let named = params.list("RegionName");
    let mut statuses: Option<BTreeSet<String>> = None;
    let mut names: Option<BTreeSet<String>> = None;
    for (name, values) in params.filters() {
        match name.as_str() {
            "opt-in-status" => statuses = Some(values.into_iter().collect()),
            "region-name" => names = Some(values.into_iter().collect()),
            other => return Err(invalid_filter(other)),
        }
    }
    let enabled = fleet.regions.iter().map(|r| {
        let status = if OPT_IN_REGIONS.contains(&r.as_str()) {
            "opted-in"
        } else {
            "opt-in-not-required"
        };
        (r, status)
    });
    let disabled = fleet.disabled_regions.iter().map(|r| (r, "not-opted-in"));
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeRegionsResponse xmlns=\"{EC2_XMLNS}\">\
         <requestId>{request_id}</requestId><regionInfo>"
    );
    for (region, status) in enabled.chain(disabled) {
        // Named regions are listed whether enabled or not, as EC2 does.
        let listed = if named.is_empty() {
            all || status != "not-opted-in"
        } else {
            named.contains(region)
        };
        let kept = statuses.as_ref().is_none_or(|s| s.contains(status))
            && names.as_ref().is_none_or(|n| n.contains(region));
        if listed && kept {
            let _ = write!(
                out,
                "<item><regionName>{region}</regionName><regionEndpoint>ec2.{region}.amazonaws.com\
                 </regionEndpoint><optInStatus>{status}</optInStatus></item>"
            );
        }
    }
    out.push_str("</regionInfo></DescribeRegionsResponse>");
    Ok(out)
}

fn invalid_filter(name: &str) -> Failure {
    Failure(
        400,
        "InvalidParameterValue",
        format!("The filter '{name}' is invalid (not served by the synthetic endpoint)"),
    )
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// `<prefix>-` + 3 hex digits of account, 2 of region, 12 of index.
fn id(prefix: &str, a: u64, r: u64, index: u64) -> String {
    format!("{prefix}-{a:03x}{r:02x}{index:012x}")
}

/// The (account, region, index) inside an id made by [`id`].
fn decode_id(prefix: &str, given: &str) -> Option<(u64, u64, u64)> {
    let hex = given.strip_prefix(prefix)?.strip_prefix('-')?;
    if hex.len() != 17 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u64::from_str_radix(&hex[..3], 16).ok()?,
        u64::from_str_radix(&hex[3..5], 16).ok()?,
        u64::from_str_radix(&hex[5..], 16).ok()?,
    ))
}

/// A plausible value for a required tag key.
fn tag_value(key: &str, h: u64) -> String {
    match key {
        "Environment" => ["prod", "staging", "dev"][(h % 3) as usize].to_string(),
        "Owner" => format!("team-{}", h % 40),
        "CostCenter" => format!("cc-{}", 1000 + h % 50),
        _ => format!("{}-{}", key.to_ascii_lowercase(), h % 97),
    }
}

/// The key as a careless hand types it: another case, or a trailing space.
fn near_miss(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    if lower != key {
        lower
    } else {
        format!("{key} ")
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(splitmix(seed), |acc, p| splitmix(acc ^ p))
}

/// FNV-1a of a string, to fold text into [`hash`].
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> SyntheticFleet {
        SyntheticFleet {
            instances_per_region: 1000,
            groups_per_region: 60,
            seed: 7,
            ..SyntheticFleet::new(
                SyntheticFleet::account_ids(3),
                vec!["us-east-1".into(), "eu-west-1".into()],
            )
        }
    }

    #[test]
    fn ids_round_trip() {
        let given = id("i", 0xabc, 0x12, 0x1234_5678_9abc);
        assert_eq!(given, "i-abc12123456789abc");
        assert_eq!(given.len(), 2 + 17);
        assert_eq!(
            decode_id("i", &given),
            Some((0xabc, 0x12, 0x1234_5678_9abc))
        );
        assert_eq!(decode_id("sg", &given), None);
        assert_eq!(decode_id("i", "i-123"), None);
    }

    #[test]
    fn instances_are_pure_functions_of_the_seed_and_index() {
        let f = fleet();
        assert_eq!(f.instance(1, 1, 77), f.instance(1, 1, 77));
        let other = SyntheticFleet { seed: 8, ..fleet() };
        let differ = (0..100).any(|i| f.instance(0, 0, i).tags != other.instance(0, 0, i).tags);
        assert!(differ, "another seed gives another fleet");
    }

    #[test]
    fn states_cycle_so_a_filtered_walk_is_bounded() {
        let f = fleet();
        for start in 0..64 {
            let window: Vec<State> = (start..start + STATE_CYCLE)
                .map(|i| f.state(2, 1, i))
                .collect();
            assert_eq!(
                window.iter().filter(|s| **s == State::Terminated).count(),
                1
            );
            assert_eq!(window.iter().filter(|s| **s == State::Stopped).count(), 2);
        }
    }

    #[test]
    fn instance_groups_belong_to_its_vpc() {
        let f = fleet();
        assert_eq!(f.vpcs_per_region(), 3);
        for i in 0..500 {
            let inst = f.instance(0, 0, i);
            assert!(!inst.groups.is_empty());
            for (gid, name) in &inst.groups {
                let (_, _, g) = decode_id("sg", gid).unwrap();
                let group = f.group(0, 0, g);
                assert_eq!(group.vpc_id, inst.vpc_id, "{} in {gid}", inst.id);
                assert_eq!(&group.name, name);
            }
        }
    }

    #[test]
    fn the_knobs_show_in_the_fleet() {
        let t = fleet().totals();
        assert_eq!(t.instances, 6000);
        // One in 16 per region, the cycle's offset deciding the odd one: 62 or 63 of 1000.
        assert!((6 * 62..=6 * 63).contains(&t.terminated), "{t:?}");
        assert_eq!(t.scanned + t.terminated, t.instances);
        let share = |n: u64| n as f64 / t.scanned as f64;
        assert!((0.15..0.25).contains(&share(t.missing_tag)), "{t:?}");
        assert!((0.02..0.08).contains(&share(t.exempt)), "{t:?}");
        assert!(t.open_groups > 0 && t.open_groups < t.groups / 3, "{t:?}");
        let none = SyntheticFleet {
            missing_tag_percent: 0,
            exempt_percent: 0,
            open_group_percent: 0,
            ..fleet()
        }
        .totals();
        assert_eq!((none.missing_tag, none.exempt, none.open_groups), (0, 0, 0));
    }

    #[test]
    fn session_tokens_carry_the_role() {
        let t = encode_session("200000000001", "arn:aws:iam::200000000001:role/R", "scan");
        assert_eq!(
            decode_session(&t, "200000000001"),
            Some(("arn:aws:iam::200000000001:role/R".into(), "scan".into()))
        );
        assert_eq!(decode_session(&t, "200000000002"), None);
        assert_eq!(
            key_account("ASIA2000000000010042"),
            Some("200000000001".into())
        );
        assert_eq!(key_account("AKIAIOSFODNN7EXAMPLE"), None);
    }

    #[test]
    fn role_arns_parse() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::111111111111:role/path/ComplianceScannerMember"),
            Some(("111111111111".into(), "ComplianceScannerMember".into()))
        );
        assert_eq!(parse_role_arn("arn:aws:iam::1111:role/x"), None);
        assert_eq!(parse_role_arn("arn:aws:iam::111111111111:user/x"), None);
    }

    #[test]
    fn dates_format() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn forms_decode() {
        assert_eq!(
            form("Action=DescribeInstances&Filter.1.Value.1=a%2Bb+c&X="),
            vec![
                ("Action".into(), "DescribeInstances".into()),
                ("Filter.1.Value.1".into(), "a+b c".into()),
                ("X".into(), String::new())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
