//! Security-group rule evaluation: which inbound rules open a group to the world in a forbidden way.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::input::{IpPermission, SecurityGroup};
use crate::result::{Reason, ScanSettings, Violation};

/// The protocols the rules distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `-1`: every protocol and port.
    All,
    /// `tcp` or `6`.
    Tcp,
    /// `udp` or `17`.
    Udp,
    /// Anything else (ICMP, ICMPv6, ESP, ...): it has no ports to restrict.
    Other,
}

impl Protocol {
    /// Reads an `IpProtocol` value; names compare case-insensitively.
    pub fn parse(raw: &str) -> Protocol {
        match raw.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            _ => Protocol::Other,
        }
    }

    /// The normalised name written into a [`Violation`].
    pub fn name(self) -> &'static str {
        match self {
            Protocol::All => "all",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Other => "other",
        }
    }
}

/// Whether a CIDR admits every address: any well-formed prefix of length 0 (`0.0.0.0/0`, `::/0`,
/// and spellings such as `0::/0` that the API could echo back).
pub fn is_world_cidr(cidr: &str) -> bool {
    let Some((addr, len)) = cidr.trim().split_once('/') else {
        return false;
    };
    let Ok(0u8) = len.trim().parse::<u8>() else {
        return false;
    };
    addr.parse::<Ipv4Addr>().is_ok() || addr.parse::<Ipv6Addr>().is_ok()
}

/// The inclusive port range of a TCP or UDP rule, clamped to 0-65535. A missing or negative bound
/// is read as the open end, so a malformed rule errs towards being judged, not ignored.
fn port_range(perm: &IpPermission) -> (u16, u16) {
    let lo = perm.from_port.filter(|p| *p >= 0).unwrap_or(0).min(65535) as u16;
    let hi = perm.to_port.filter(|p| *p >= 0).unwrap_or(65535).min(65535) as u16;
    (lo, hi)
}

/// Why a rule from the world is a violation, if it is one, with the restricted ports it hits.
fn judge(perm: &IpPermission, settings: &ScanSettings) -> Option<(Protocol, Reason, Vec<u16>)> {
    let protocol = Protocol::parse(&perm.protocol);
    match protocol {
        Protocol::All => Some((protocol, Reason::AllTraffic, Vec::new())),
        Protocol::Other => None,
        Protocol::Tcp | Protocol::Udp => {
            let (lo, hi) = port_range(perm);
            if lo == 0 && hi == 65535 {
                return Some((protocol, Reason::AllPorts, Vec::new()));
            }
            let mut hits: Vec<u16> = settings
                .restricted_ports
                .iter()
                .copied()
                .filter(|p| (lo..=hi).contains(p))
                .collect();
            hits.sort_unstable();
            hits.dedup();
            (!hits.is_empty()).then_some((protocol, Reason::RestrictedPorts, hits))
        }
    }
}

/// Every violation in a group's inbound rules, one per rule and world CIDR, sorted.
///
/// Sources other than world CIDRs (private CIDRs, other groups, prefix lists) are never
/// violations; outbound rules are not judged.
pub fn group_violations(group: &SecurityGroup, settings: &ScanSettings) -> Vec<Violation> {
    let mut out = Vec::new();
    for perm in &group.ingress {
        let world: Vec<&String> = perm
            .ipv4_cidrs
            .iter()
            .chain(&perm.ipv6_cidrs)
            .filter(|c| is_world_cidr(c))
            .collect();
        if world.is_empty() {
            continue;
        }
        let Some((protocol, reason, ports)) = judge(perm, settings) else {
            continue;
        };
        let (from_port, to_port) = match protocol {
            Protocol::All => (None, None),
            _ => {
                let (lo, hi) = port_range(perm);
                (Some(i32::from(lo)), Some(i32::from(hi)))
            }
        };
        for cidr in world {
            out.push(Violation {
                group_id: group.id.clone(),
                protocol: protocol.name().to_string(),
                from_port,
                to_port,
                cidr: cidr.trim().to_string(),
                reason,
                ports: ports.clone(),
            });
        }
    }
    // Sorted and deduplicated so the verdict does not depend on the order the API listed rules in.
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        protocol: &str,
        from: Option<i32>,
        to: Option<i32>,
        v4: &[&str],
        v6: &[&str],
    ) -> IpPermission {
        IpPermission {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            ipv4_cidrs: v4.iter().map(|s| s.to_string()).collect(),
            ipv6_cidrs: v6.iter().map(|s| s.to_string()).collect(),
            ..IpPermission::default()
        }
    }

    fn eval(rules: Vec<IpPermission>) -> Vec<Violation> {
        let group = SecurityGroup {
            id: "sg-1".into(),
            name: "g".into(),
            vpc_id: None,
            region: "us-east-1".into(),
            ingress: rules,
        };
        group_violations(&group, &ScanSettings::default())
    }

    fn one(protocol: &str, from: i32, to: i32, cidr: &str) -> Vec<Violation> {
        if cidr.contains(':') {
            eval(vec![rule(protocol, Some(from), Some(to), &[], &[cidr])])
        } else {
            eval(vec![rule(protocol, Some(from), Some(to), &[cidr], &[])])
        }
    }

    #[test]
    fn world_cidrs() {
        assert!(is_world_cidr("0.0.0.0/0"));
        assert!(is_world_cidr("::/0"));
        assert!(is_world_cidr("0::/0"));
        assert!(!is_world_cidr("0.0.0.0/1"));
        assert!(!is_world_cidr("10.0.0.0/8"));
        assert!(!is_world_cidr("::/1"));
        assert!(!is_world_cidr("2001:db8::/32"));
        assert!(!is_world_cidr("garbage/0"));
        assert!(!is_world_cidr("0.0.0.0"));
    }

    #[test]
    fn all_traffic_from_the_world_is_a_violation() {
        let v = eval(vec![rule("-1", None, None, &["0.0.0.0/0"], &[])]);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].reason, Reason::AllTraffic);
        assert_eq!(v[0].protocol, "all");
        assert_eq!((v[0].from_port, v[0].to_port), (None, None));
        assert_eq!(v[0].cidr, "0.0.0.0/0");
        // The API may also give -1 as ports for all traffic.
        let v = eval(vec![rule("-1", Some(-1), Some(-1), &[], &["::/0"])]);
        assert_eq!(v[0].reason, Reason::AllTraffic);
        assert_eq!(v[0].cidr, "::/0");
    }

    #[test]
    fn all_ports_tcp_and_udp_by_name_and_number() {
        for proto in ["tcp", "udp", "6", "17", "TCP"] {
            let v = one(proto, 0, 65535, "0.0.0.0/0");
            assert_eq!(v.len(), 1, "{proto}");
            assert_eq!(v[0].reason, Reason::AllPorts);
            assert!(v[0].ports.is_empty());
        }
        assert_eq!(one("6", 0, 65535, "::/0")[0].protocol, "tcp");
        assert_eq!(one("17", 0, 65535, "::/0")[0].protocol, "udp");
    }

    #[test]
    fn restricted_single_port() {
        let v = one("tcp", 22, 22, "0.0.0.0/0");
        assert_eq!(v[0].reason, Reason::RestrictedPorts);
        assert_eq!(v[0].ports, [22]);
        assert_eq!((v[0].from_port, v[0].to_port), (Some(22), Some(22)));
    }

    #[test]
    fn every_default_restricted_port_is_caught_over_ipv4_and_ipv6() {
        for port in ScanSettings::default().restricted_ports {
            let p = i32::from(port);
            assert_eq!(one("tcp", p, p, "0.0.0.0/0")[0].ports, [port]);
            assert_eq!(one("udp", p, p, "::/0")[0].ports, [port]);
        }
    }

    #[test]
    fn range_intersecting_restricted_ports_names_every_hit() {
        let v = one("tcp", 20, 25, "0.0.0.0/0");
        assert_eq!(v[0].ports, [20, 21, 22, 23, 25]);
        let v = one("tcp", 3000, 3400, "0.0.0.0/0");
        assert_eq!(v[0].ports, [3306, 3389]);
        // Nearly all ports is a restricted-ports violation, not all-ports.
        let v = one("tcp", 1, 65535, "0.0.0.0/0");
        assert_eq!(v[0].reason, Reason::RestrictedPorts);
        assert_eq!(v[0].ports.len(), 16);
    }

    #[test]
    fn range_edges_are_inclusive() {
        assert_eq!(one("tcp", 5432, 5440, "0.0.0.0/0")[0].ports, [5432]);
        assert_eq!(one("tcp", 5420, 5432, "0.0.0.0/0")[0].ports, [5432]);
        assert!(one("tcp", 5433, 5440, "0.0.0.0/0").is_empty());
    }

    #[test]
    fn web_ports_and_unrestricted_ranges_are_fine() {
        assert!(one("tcp", 80, 80, "0.0.0.0/0").is_empty());
        assert!(one("tcp", 443, 443, "::/0").is_empty());
        assert!(one("tcp", 8000, 8080, "0.0.0.0/0").is_empty());
        assert!(one("udp", 53, 53, "0.0.0.0/0").is_empty());
    }

    #[test]
    fn icmp_and_other_protocols_are_fine() {
        assert!(one("icmp", -1, -1, "0.0.0.0/0").is_empty());
        assert!(one("icmp", 8, 0, "0.0.0.0/0").is_empty());
        assert!(one("58", -1, -1, "::/0").is_empty());
        assert!(one("1", -1, -1, "0.0.0.0/0").is_empty());
    }

    #[test]
    fn private_cidrs_groups_and_prefix_lists_are_fine() {
        assert!(one("tcp", 22, 22, "10.0.0.0/8").is_empty());
        assert!(one("-1", -1, -1, "192.168.0.0/16").is_empty());
        assert!(one("tcp", 0, 65535, "fd00::/8").is_empty());
        let mut from_group = rule("-1", None, None, &[], &[]);
        from_group.from_groups = true;
        let mut from_list = rule("tcp", Some(22), Some(22), &[], &[]);
        from_list.from_prefix_lists = true;
        assert!(eval(vec![from_group, from_list]).is_empty());
    }

    #[test]
    fn one_violation_per_world_cidr_of_a_rule() {
        let v = eval(vec![rule(
            "tcp",
            Some(3389),
            Some(3389),
            &["10.0.0.0/8", "0.0.0.0/0"],
            &["::/0"],
        )]);
        let cidrs: Vec<_> = v.iter().map(|v| v.cidr.as_str()).collect();
        assert_eq!(cidrs, ["0.0.0.0/0", "::/0"]);
    }

    #[test]
    fn restricted_ports_are_configurable() {
        let settings = ScanSettings {
            restricted_ports: vec![8080],
            ..ScanSettings::default()
        };
        let group = SecurityGroup {
            id: "sg-2".into(),
            ingress: vec![
                rule("tcp", Some(22), Some(22), &["0.0.0.0/0"], &[]),
                rule("tcp", Some(8000), Some(9000), &["0.0.0.0/0"], &[]),
            ],
            ..SecurityGroup::default()
        };
        let v = group_violations(&group, &settings);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].ports, [8080]);
    }

    #[test]
    fn missing_ports_on_tcp_are_read_as_all_ports() {
        let v = eval(vec![rule("tcp", None, None, &["0.0.0.0/0"], &[])]);
        assert_eq!(v[0].reason, Reason::AllPorts);
    }
}
