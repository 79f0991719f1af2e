//! What the rules look at: plain copies of the few EC2 fields that matter, filled by the scanner.

/// One EC2 instance as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instance {
    /// The instance id.
    pub id: String,
    /// The region it lives in.
    pub region: String,
    /// Its state name.
    pub state: String,
    /// Its tags as (key, value) pairs, in any order.
    pub tags: Vec<(String, String)>,
    /// Ids of the security groups attached to it (all network interfaces), in any order.
    pub group_ids: Vec<String>,
}

/// One security group as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityGroup {
    /// The group id.
    pub id: String,
    /// The group name.
    pub name: String,
    /// Its VPC, when it has one.
    pub vpc_id: Option<String>,
    /// The region it lives in.
    pub region: String,
    /// Its inbound rules. Outbound rules are not judged.
    pub ingress: Vec<IpPermission>,
}

/// One inbound rule (an EC2 `IpPermission`): a protocol and port range for a set of sources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpPermission {
    /// `IpProtocol` as the API returns it: `-1`, `tcp`, `udp`, `icmp`, or a protocol number.
    pub protocol: String,
    /// `FromPort`, when present.
    pub from_port: Option<i32>,
    /// `ToPort`, when present.
    pub to_port: Option<i32>,
    /// IPv4 source CIDRs.
    pub ipv4_cidrs: Vec<String>,
    /// IPv6 source CIDRs.
    pub ipv6_cidrs: Vec<String>,
    /// Whether the rule also admits other security groups (never a violation in itself).
    pub from_groups: bool,
    /// Whether the rule also admits prefix lists (never a violation in itself).
    pub from_prefix_lists: bool,
}
