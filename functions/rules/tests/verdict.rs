//! The verdict cases of the rules page, end to end through `evaluate`, and property tests that the
//! verdict never depends on the order of tags, rules or groups.

use compliance_rules::exemptions::Day;
use compliance_rules::input::{Instance, IpPermission, SecurityGroup};
use compliance_rules::result::Counts;
use compliance_rules::result::{Reason, ScanSettings};
use compliance_rules::verdict::{compliance_percentage, evaluate, RegionJudge};
use proptest::prelude::*;

fn s(v: &str) -> String {
    v.to_string()
}

/// The day every scan here runs on, unless a test says otherwise.
fn today() -> Day {
    Day::parse("2024-05-02").unwrap()
}

fn tagged(id: &str, tags: &[(&str, &str)], groups: &[&str]) -> Instance {
    Instance {
        id: s(id),
        region: s("us-east-1"),
        state: s("running"),
        tags: tags.iter().map(|(k, v)| (s(k), s(v))).collect(),
        group_ids: groups.iter().map(|g| s(g)).collect(),
    }
}

const OK_TAGS: [(&str, &str); 3] = [
    ("Environment", "prod"),
    ("Owner", "ana"),
    ("CostCenter", "42"),
];

fn group(id: &str, rules: Vec<IpPermission>) -> SecurityGroup {
    SecurityGroup {
        id: s(id),
        name: format!("name-{id}"),
        vpc_id: Some(s("vpc-1")),
        region: s("us-east-1"),
        ingress: rules,
    }
}

fn tcp(from: i32, to: i32, cidr: &str) -> IpPermission {
    IpPermission {
        protocol: s("tcp"),
        from_port: Some(from),
        to_port: Some(to),
        ipv4_cidrs: vec![s(cidr)],
        ..IpPermission::default()
    }
}

#[test]
fn compliant_needs_tags_and_clean_groups() {
    let groups = vec![
        group("sg-web", vec![tcp(443, 443, "0.0.0.0/0")]),
        group("sg-ssh", vec![tcp(22, 22, "0.0.0.0/0")]),
    ];
    let fleet = vec![
        tagged("i-1", &OK_TAGS, &["sg-web"]),
        tagged("i-2", &OK_TAGS, &["sg-web", "sg-ssh"]),
        tagged("i-3", &OK_TAGS[..2], &["sg-web"]),
    ];
    let e = evaluate(fleet, &groups, &ScanSettings::default(), today());
    let by_id = |id: &str| e.instances.iter().find(|i| i.instance_id == id).unwrap();
    assert!(by_id("i-1").compliant);
    assert!(!by_id("i-2").compliant);
    assert_eq!(by_id("i-2").violations.len(), 1);
    assert_eq!(by_id("i-2").violations[0].group_id, "sg-ssh");
    assert_eq!(by_id("i-2").security_groups, ["sg-ssh", "sg-web"]);
    assert!(!by_id("i-3").compliant);
    assert_eq!(by_id("i-3").missing_tags, ["CostCenter"]);
    assert_eq!(e.summary.scanned, 3);
    assert_eq!(e.summary.compliant, 1);
    assert_eq!(e.summary.non_compliant, 2);
    assert_eq!(e.summary.instances_missing_tags, 1);
    assert_eq!(e.summary.open_rules, 1);
    assert!((e.summary.compliance_percentage - 100.0 / 3.0).abs() < 1e-9);
}

#[test]
fn exempt_instances_are_listed_but_not_counted() {
    let groups = vec![group("sg-ssh", vec![tcp(22, 22, "0.0.0.0/0")])];
    let fleet = vec![
        tagged("i-1", &[("ComplianceExempt", "TRUE")], &["sg-ssh"]),
        tagged("i-2", &OK_TAGS, &[]),
    ];
    let e = evaluate(fleet, &groups, &ScanSettings::default(), today());
    let exempt = &e.instances[0];
    assert!(exempt.exempt && !exempt.compliant);
    // The findings stay visible so the owner of an exemption sees what it hides.
    assert_eq!(exempt.missing_tags.len(), 3);
    assert_eq!(exempt.violations.len(), 1);
    assert_eq!(e.summary.exempt, 1);
    assert_eq!(e.summary.compliant, 1);
    assert_eq!(e.summary.non_compliant, 0);
    assert_eq!(e.summary.instances_missing_tags, 0);
    assert_eq!(e.summary.compliance_percentage, 100.0);
    // The exempt instance still counts as an attachment of the group.
    assert_eq!(e.security_groups[0].attached_instances, 1);
}

#[test]
fn nothing_to_judge_is_100_percent() {
    let e = evaluate(vec![], &[], &ScanSettings::default(), today());
    assert_eq!(e.summary.scanned, 0);
    assert_eq!(e.summary.compliance_percentage, 100.0);
    let only_exempt = vec![tagged("i-1", &[("ComplianceExempt", "true")], &[])];
    let e = evaluate(only_exempt, &[], &ScanSettings::default(), today());
    assert_eq!(e.summary.compliance_percentage, 100.0);
    assert_eq!(compliance_percentage(0, 4), 0.0);
    assert_eq!(compliance_percentage(3, 4), 75.0);
}

#[test]
fn unattached_violating_groups_are_listed_with_zero_attachments() {
    let groups = vec![
        group("sg-open", vec![tcp(0, 65535, "0.0.0.0/0")]),
        group("sg-fine", vec![tcp(80, 80, "0.0.0.0/0")]),
        group("sg-used", vec![tcp(3389, 3389, "0.0.0.0/0")]),
    ];
    let fleet = vec![
        tagged("i-1", &OK_TAGS, &["sg-used"]),
        tagged("i-2", &OK_TAGS, &["sg-used", "sg-fine"]),
    ];
    let e = evaluate(fleet, &groups, &ScanSettings::default(), today());
    let listed: Vec<_> = e
        .security_groups
        .iter()
        .map(|g| (g.group_id.as_str(), g.attached_instances))
        .collect();
    assert_eq!(listed, [("sg-open", 0), ("sg-used", 2)]);
    assert_eq!(e.security_groups[0].violations[0].reason, Reason::AllPorts);
    assert_eq!(e.summary.open_rules, 2);
}

#[test]
fn groups_are_matched_within_their_region() {
    let mut west = group("sg-1", vec![tcp(22, 22, "0.0.0.0/0")]);
    west.region = s("us-west-2");
    let east = group("sg-1", vec![]);
    let fleet = vec![tagged("i-1", &OK_TAGS, &["sg-1"])];
    let e = evaluate(fleet, &[west, east], &ScanSettings::default(), today());
    assert!(e.instances[0].compliant);
    assert_eq!(e.security_groups.len(), 1);
    assert_eq!(e.security_groups[0].region, "us-west-2");
    assert_eq!(e.security_groups[0].attached_instances, 0);
}

#[test]
fn an_instance_inherits_every_attached_groups_violations() {
    let groups = vec![
        group(
            "sg-a",
            vec![tcp(22, 22, "0.0.0.0/0"), tcp(5432, 5432, "0.0.0.0/0")],
        ),
        group(
            "sg-b",
            vec![IpPermission {
                protocol: s("-1"),
                ipv6_cidrs: vec![s("::/0")],
                ..IpPermission::default()
            }],
        ),
    ];
    let e = evaluate(
        vec![tagged("i-1", &OK_TAGS, &["sg-b", "sg-a", "sg-a"])],
        &groups,
        &ScanSettings::default(),
        today(),
    );
    let i = &e.instances[0];
    assert_eq!(i.security_groups, ["sg-a", "sg-b"]);
    let reasons: Vec<_> = i
        .violations
        .iter()
        .map(|v| (v.group_id.as_str(), v.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("sg-a", Reason::RestrictedPorts),
            ("sg-a", Reason::RestrictedPorts),
            ("sg-b", Reason::AllTraffic)
        ]
    );
}

#[test]
fn result_serializes_reasons_in_kebab_case() {
    let groups = vec![group("sg-a", vec![tcp(22, 22, "0.0.0.0/0")])];
    let e = evaluate(vec![], &groups, &ScanSettings::default(), today());
    let json = serde_json::to_value(&e.security_groups[0].violations[0]).unwrap();
    assert_eq!(json["reason"], "restricted-ports");
    assert_eq!(json["ports"], serde_json::json!([22]));
}

// ---- property tests: the verdict never depends on the order of tags, rules or groups ----

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(s("Environment")),
        Just(s("Owner")),
        Just(s("owner")),
        Just(s("Owner ")),
        Just(s("CostCenter")),
        Just(s("COSTCENTER")),
        Just(s("ComplianceExempt")),
        Just(s("Name")),
        "[A-Za-z]{1,6}",
    ]
}

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(s("")),
        Just(s("  ")),
        Just(s("true")),
        Just(s("True")),
        "[a-z]{1,4}"
    ]
}

fn arb_tags() -> impl Strategy<Value = Vec<(String, String)>> {
    // Keys are unique per resource in EC2, so they are unique here too.
    proptest::collection::btree_map(arb_key(), arb_value(), 0..8)
        .prop_map(|m| m.into_iter().collect())
}

fn arb_rule() -> impl Strategy<Value = IpPermission> {
    let proto = prop_oneof![
        Just("-1"),
        Just("tcp"),
        Just("udp"),
        Just("6"),
        Just("17"),
        Just("icmp")
    ];
    let cidr4 = prop_oneof![
        Just("0.0.0.0/0"),
        Just("10.0.0.0/8"),
        Just("203.0.113.0/24")
    ];
    let cidr6 = prop_oneof![Just("::/0"), Just("fd00::/8")];
    (
        proto,
        0i32..=65535,
        0i32..=2000,
        proptest::collection::vec(cidr4, 0..3),
        proptest::collection::vec(cidr6, 0..2),
    )
        .prop_map(|(p, from, width, v4, v6)| IpPermission {
            protocol: s(p),
            from_port: Some(from),
            to_port: Some((from + width).min(65535)),
            ipv4_cidrs: v4.into_iter().map(s).collect(),
            ipv6_cidrs: v6.into_iter().map(s).collect(),
            ..IpPermission::default()
        })
}

fn arb_fleet() -> impl Strategy<Value = (Vec<Instance>, Vec<SecurityGroup>)> {
    let groups = proptest::collection::vec(proptest::collection::vec(arb_rule(), 0..4), 1..5)
        .prop_map(|gs| {
            gs.into_iter()
                .enumerate()
                .map(|(n, rules)| group(&format!("sg-{n}"), rules))
                .collect::<Vec<_>>()
        });
    let instances = proptest::collection::vec(
        (arb_tags(), proptest::collection::vec(0usize..5, 0..4)),
        0..6,
    );
    (instances, groups).prop_map(|(insts, groups)| {
        let instances = insts
            .into_iter()
            .enumerate()
            .map(|(n, (tags, gids))| Instance {
                id: format!("i-{n}"),
                region: s("us-east-1"),
                state: s("running"),
                tags,
                group_ids: gids
                    .into_iter()
                    .filter(|g| *g < groups.len())
                    .map(|g| format!("sg-{g}"))
                    .collect(),
            })
            .collect();
        (instances, groups)
    })
}

/// A deterministic shuffle driven by a seed, so a failure is reproducible from proptest's output.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.swap(i, (seed >> 33) as usize % (i + 1));
    }
}

proptest! {
    #[test]
    fn verdict_does_not_depend_on_order((instances, groups) in arb_fleet(), seed in any::<u64>()) {
        let settings = ScanSettings::default();
        let before = evaluate(instances.clone(), &groups, &settings, today());
        let mut instances = instances;
        let mut groups = groups;
        shuffle(&mut instances, seed);
        shuffle(&mut groups, seed ^ 1);
        for (n, i) in instances.iter_mut().enumerate() {
            shuffle(&mut i.tags, seed.wrapping_add(n as u64));
            shuffle(&mut i.group_ids, seed.wrapping_add(n as u64 + 7));
        }
        for (n, g) in groups.iter_mut().enumerate() {
            shuffle(&mut g.ingress, seed.wrapping_add(n as u64 + 13));
            for r in &mut g.ingress {
                shuffle(&mut r.ipv4_cidrs, seed);
                shuffle(&mut r.ipv6_cidrs, seed);
            }
        }
        let after = evaluate(instances, &groups, &settings, today());
        prop_assert_eq!(before, after);
    }

    #[test]
    fn summary_adds_up((instances, groups) in arb_fleet()) {
        let e = evaluate(instances, &groups, &ScanSettings::default(), today());
        let sm = &e.summary;
        prop_assert_eq!(sm.exempt + sm.compliant + sm.non_compliant, sm.scanned);
        prop_assert!((0.0..=100.0).contains(&sm.compliance_percentage));
        for i in &e.instances {
            prop_assert_eq!(i.compliant, !i.exempt && i.missing_tags.is_empty() && i.violations.is_empty());
        }
    }

    /// A region judged a page at a time gives [`evaluate`]'s verdicts and totals, each stamped
    /// with the account, wherever the pages split the fleet and whatever an exemption names.
    #[test]
    fn judging_by_page_equals_judging_the_whole_region(
        (instances, groups) in arb_fleet(),
        cuts in proptest::collection::vec(0usize..8, 0..4),
        exempt_group in 0usize..6,
    ) {
        let settings = ScanSettings {
            exemptions: vec![compliance_rules::exemptions::Exemption {
            id: s("waiver"),
            instances: vec![],
            groups: vec![format!("sg-{exempt_group}")],
            tags: Default::default(),
            checks: vec![compliance_rules::exemptions::Check::Ingress],
            reason: s("r"),
            owner: s("o"),
            expires: s("2024-12-31"),
        }],
            ..ScanSettings::default()
        };
        let whole = evaluate(instances.clone(), &groups, &settings, today());
        let mut judge = RegionJudge::new("111122223333", "us-east-1", groups, &settings, today());
        let mut paged = Vec::new();
        let mut rest = instances;
        for cut in cuts {
            let tail = rest.split_off(cut.min(rest.len()));
            paged.extend(judge.judge(rest));
            rest = tail;
        }
        paged.extend(judge.judge(rest));
        let (groups, counts) = judge.finish();
        paged.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        let mut expected = whole.instances;
        for i in &mut expected {
            prop_assert_eq!(&i.account_id, "");
            i.account_id = s("111122223333");
        }
        prop_assert_eq!(paged, expected);
        let mut expected_groups = whole.security_groups;
        for g in &mut expected_groups {
            g.account_id = s("111122223333");
        }
        prop_assert_eq!(groups, expected_groups);
        prop_assert_eq!(counts, Counts::of(&whole.summary));
    }
}
