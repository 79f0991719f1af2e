//! Exemptions through `evaluate`: per check, through groups, by the exempt tag, at the day
//! boundaries; and property tests that an expired exemption never changes a verdict.

use std::collections::BTreeMap;

use compliance_rules::exemptions::{Check, Day, Exemption};
use compliance_rules::input::{Instance, IpPermission, SecurityGroup};
use compliance_rules::result::{Applied, InstanceResult, ScanResult, ScanSettings};
use compliance_rules::verdict::{evaluate, Evaluation};
use proptest::prelude::*;

fn s(v: &str) -> String {
    v.to_string()
}

fn day(text: &str) -> Day {
    Day::parse(text).unwrap()
}

const TODAY: &str = "2024-05-02";

const OK_TAGS: [(&str, &str); 3] = [
    ("Environment", "prod"),
    ("Owner", "ana"),
    ("CostCenter", "42"),
];

fn instance(id: &str, tags: &[(&str, &str)], groups: &[&str]) -> Instance {
    Instance {
        id: s(id),
        region: s("us-east-1"),
        state: s("running"),
        tags: tags.iter().map(|(k, v)| (s(k), s(v))).collect(),
        group_ids: groups.iter().map(|g| s(g)).collect(),
    }
}

fn open_group(id: &str, port: i32) -> SecurityGroup {
    SecurityGroup {
        id: s(id),
        name: format!("name-{id}"),
        vpc_id: Some(s("vpc-1")),
        region: s("us-east-1"),
        ingress: vec![IpPermission {
            protocol: s("tcp"),
            from_port: Some(port),
            to_port: Some(port),
            ipv4_cidrs: vec![s("0.0.0.0/0")],
            ..IpPermission::default()
        }],
    }
}

fn exemption(id: &str, checks: &[Check], expires: &str) -> Exemption {
    Exemption {
        id: s(id),
        instances: vec![],
        groups: vec![],
        tags: BTreeMap::new(),
        checks: checks.to_vec(),
        reason: format!("reason of {id}"),
        owner: format!("owner of {id}"),
        expires: s(expires),
    }
}

fn settings(exemptions: Vec<Exemption>) -> ScanSettings {
    ScanSettings {
        exemptions,
        ..ScanSettings::default()
    }
}

fn run(fleet: Vec<Instance>, groups: &[SecurityGroup], exemptions: Vec<Exemption>) -> Evaluation {
    evaluate(fleet, groups, &settings(exemptions), day(TODAY))
}

fn get<'a>(e: &'a Evaluation, id: &str) -> &'a InstanceResult {
    e.instances.iter().find(|i| i.instance_id == id).unwrap()
}

fn ids(list: &[Applied]) -> Vec<(Check, &str, Option<&str>)> {
    list.iter()
        .map(|a| (a.check, a.id.as_str(), a.group_id.as_deref()))
        .collect()
}

#[test]
fn an_instance_exempt_from_tags_is_still_judged_on_ingress() {
    let groups = vec![open_group("sg-ssh", 22)];
    let fleet = vec![
        instance("i-both", &[("Team", "legacy")], &["sg-ssh"]),
        instance("i-tags", &[("Team", "legacy")], &[]),
        instance("i-other", &[("Team", "core")], &[]),
    ];
    let mut tags_only = exemption("legacy-tags", &[Check::Tags], "2024-06-30");
    tags_only.tags = BTreeMap::from([(s("Team"), s("legacy"))]);
    let e = run(fleet, &groups, vec![tags_only]);

    let both = get(&e, "i-both");
    assert!(!both.compliant && !both.exempt, "ingress still fails");
    assert_eq!(both.exempted_findings, [Check::Tags]);
    assert_eq!(ids(&both.exemptions), [(Check::Tags, "legacy-tags", None)]);
    let a = &both.exemptions[0];
    assert_eq!(
        (
            a.expires.as_deref(),
            a.reason.as_deref(),
            a.owner.as_deref()
        ),
        (
            Some("2024-06-30"),
            Some("reason of legacy-tags"),
            Some("owner of legacy-tags")
        )
    );
    // The findings stay visible.
    assert_eq!(both.missing_tags.len(), 3);
    assert_eq!(both.violations.len(), 1);

    let tags = get(&e, "i-tags");
    assert!(tags.compliant && !tags.exempt, "its only finding is waived");
    assert_eq!(tags.exempted_findings, [Check::Tags]);

    let other = get(&e, "i-other");
    assert!(!other.compliant && other.exemptions.is_empty());
    assert!(other.exempted_findings.is_empty());

    assert_eq!(
        (
            e.summary.exempt,
            e.summary.compliant,
            e.summary.non_compliant
        ),
        (0, 1, 2)
    );
    // i-other only: the waived ones do not count as missing tags.
    assert_eq!(e.summary.instances_missing_tags, 1);
    assert_eq!(e.summary.exempted_findings, 2);
}

#[test]
fn a_group_exemption_waives_that_groups_violations_wherever_attached() {
    let groups = vec![
        open_group("sg-ssh", 22),
        open_group("sg-rdp", 3389),
        open_group("sg-db", 5432),
    ];
    let fleet = vec![
        instance("i-ssh", &OK_TAGS, &["sg-ssh"]),
        instance("i-mixed", &OK_TAGS, &["sg-ssh", "sg-rdp"]),
        instance("i-untagged", &[], &["sg-ssh"]),
    ];
    let mut bastion = exemption("bastion", &Check::ALL, "2024-05-02");
    bastion.groups = vec![s("sg-ssh")];
    // Names the group for tags only: a group has no tags, so this waives nothing.
    let mut tags_only = exemption("db-tags", &[Check::Tags], "2024-12-31");
    tags_only.groups = vec![s("sg-db")];
    let e = run(fleet, &groups, vec![bastion, tags_only]);

    let ssh = get(&e, "i-ssh");
    assert!(ssh.compliant && !ssh.exempt);
    assert_eq!(ssh.exempted_findings, [Check::Ingress]);
    assert_eq!(
        ids(&ssh.exemptions),
        [(Check::Ingress, "bastion", Some("sg-ssh"))]
    );

    let mixed = get(&e, "i-mixed");
    assert!(!mixed.compliant, "the RDP rule is not waived");
    assert!(mixed.exempted_findings.is_empty());
    assert_eq!(
        ids(&mixed.exemptions),
        [(Check::Ingress, "bastion", Some("sg-ssh"))]
    );

    let untagged = get(&e, "i-untagged");
    assert!(!untagged.compliant && !untagged.exempt);
    assert_eq!(untagged.exempted_findings, [Check::Ingress]);

    let group = |id: &str| e.security_groups.iter().find(|g| g.group_id == id).unwrap();
    assert_eq!(
        ids(&group("sg-ssh").exemptions),
        [(Check::Ingress, "bastion", None)]
    );
    assert!(group("sg-rdp").exemptions.is_empty());
    assert!(group("sg-db").exemptions.is_empty());
    // Two instance findings and the one rule of sg-ssh.
    assert_eq!(e.summary.exempted_findings, 3);
    assert_eq!(e.summary.open_rules, 3, "waived rules are still open");
}

#[test]
fn an_instance_named_for_both_checks_is_exempt() {
    let groups = vec![open_group("sg-ssh", 22)];
    let fleet = vec![
        instance("i-1", &[], &["sg-ssh"]),
        instance("i-2", &OK_TAGS, &[]),
    ];
    let mut both = exemption("decommission", &[Check::Ingress, Check::Tags], "2024-05-31");
    both.instances = vec![s("i-1"), s("i-2")];
    let e = run(fleet, &groups, vec![both]);
    for id in ["i-1", "i-2"] {
        let i = get(&e, id);
        assert!(i.exempt && !i.compliant, "{id}");
        assert_eq!(
            ids(&i.exemptions),
            [
                (Check::Tags, "decommission", None),
                (Check::Ingress, "decommission", None)
            ]
        );
    }
    assert_eq!(get(&e, "i-1").exempted_findings, Check::ALL);
    assert!(
        get(&e, "i-2").exempted_findings.is_empty(),
        "nothing to waive"
    );
    assert_eq!(e.summary.exempt, 2);
    assert_eq!(e.summary.compliance_percentage, 100.0);
    assert_eq!(e.summary.exempted_findings, 2);
}

#[test]
fn an_exemption_holds_through_its_last_utc_day_and_not_the_next() {
    let groups = vec![open_group("sg-ssh", 22)];
    let fleet = || vec![instance("i-1", &OK_TAGS, &["sg-ssh"])];
    let mut e = exemption("ssh", &[Check::Ingress], "2024-05-02");
    e.instances = vec![s("i-1")];
    let on = |today: &str| {
        evaluate(
            fleet(),
            &groups,
            &settings(vec![e.clone()]),
            Day::from_rfc3339(today).unwrap(),
        )
    };

    for last_day in ["2024-05-02T00:00:00Z", "2024-05-02T23:59:59.999Z"] {
        let r = on(last_day);
        assert!(r.instances[0].compliant, "{last_day}");
        assert!(r.instances[0].expired_exemptions.is_empty());
    }
    for after in [
        "2024-05-03T00:00:00Z",
        "2024-05-02T23:30:00-01:00",
        "2025-01-01T00:00:00Z",
    ] {
        let r = on(after);
        let i = &r.instances[0];
        assert!(
            !i.compliant,
            "{after}: an expired exemption is no exemption"
        );
        assert!(i.exemptions.is_empty() && i.exempted_findings.is_empty());
        assert_eq!(ids(&i.expired_exemptions), [(Check::Ingress, "ssh", None)]);
        assert_eq!(
            i.expired_exemptions[0].expires.as_deref(),
            Some("2024-05-02")
        );
        assert_eq!(r.summary.exempted_findings, 0);
    }
}

#[test]
fn the_exempt_tag_true_or_until_a_day_or_an_error() {
    let groups = vec![open_group("sg-ssh", 22)];
    let fleet = vec![
        instance("i-true", &[("ComplianceExempt", "True")], &["sg-ssh"]),
        instance(
            "i-until",
            &[("ComplianceExempt", "until 2024-05-02: vendor appliance")],
            &["sg-ssh"],
        ),
        instance(
            "i-expired",
            &[("ComplianceExempt", "until 2024-05-01: vendor appliance")],
            &["sg-ssh"],
        ),
        instance(
            "i-bad",
            &[
                ("ComplianceExempt", "until next week"),
                ("Environment", "prod"),
                ("Owner", "ana"),
                ("CostCenter", "42"),
            ],
            &[],
        ),
    ];
    let e = run(fleet, &groups, vec![]);

    let t = get(&e, "i-true");
    assert!(t.exempt && !t.compliant);
    assert_eq!(
        ids(&t.exemptions),
        [
            (Check::Tags, "tag:ComplianceExempt", None),
            (Check::Ingress, "tag:ComplianceExempt", None)
        ]
    );
    assert!(t
        .exemptions
        .iter()
        .all(|a| a.expires.is_none() && a.reason.is_none() && a.owner.is_none()));
    assert_eq!(t.exempted_findings, Check::ALL);

    let u = get(&e, "i-until");
    assert!(u.exempt && !u.compliant, "active through its last day");
    assert_eq!(u.exemptions[0].expires.as_deref(), Some("2024-05-02"));
    assert_eq!(u.exemptions[0].reason.as_deref(), Some("vendor appliance"));
    assert_eq!(u.exemptions[0].owner, None);

    let x = get(&e, "i-expired");
    assert!(!x.exempt && !x.compliant, "judged like any other");
    assert!(x.exemptions.is_empty());
    assert_eq!(
        ids(&x.expired_exemptions),
        [
            (Check::Tags, "tag:ComplianceExempt", None),
            (Check::Ingress, "tag:ComplianceExempt", None)
        ]
    );

    let b = get(&e, "i-bad");
    assert!(!b.exempt && b.compliant, "judged, and it passes");
    let why = b.exempt_tag_error.as_deref().unwrap();
    assert!(
        why.contains("\"until next week\"") && why.contains("until YYYY-MM-DD: reason"),
        "{why}"
    );
    assert_eq!(e.summary.exempt, 2);
    // Both findings of each exempt instance.
    assert_eq!(e.summary.exempted_findings, 4);
}

#[test]
fn the_exempt_key_and_the_configured_exemptions_combine() {
    let groups = vec![open_group("sg-ssh", 22)];
    let fleet = vec![instance(
        "i-1",
        &[("ComplianceExempt", "until 2024-01-01: old")],
        &["sg-ssh"],
    )];
    let mut tags = exemption("tags", &[Check::Tags], "2024-05-10");
    tags.instances = vec![s("i-1")];
    let mut ingress = exemption("ingress", &[Check::Ingress], "2024-05-01");
    ingress.groups = vec![s("sg-ssh")];
    let e = run(fleet, &groups, vec![tags, ingress]);
    let i = &e.instances[0];
    assert_eq!(ids(&i.exemptions), [(Check::Tags, "tags", None)]);
    assert_eq!(
        ids(&i.expired_exemptions),
        [
            (Check::Tags, "tag:ComplianceExempt", None),
            (Check::Ingress, "ingress", Some("sg-ssh")),
            (Check::Ingress, "tag:ComplianceExempt", None),
        ]
    );
    assert!(!i.compliant && !i.exempt);
    assert_eq!(i.exempted_findings, [Check::Tags]);
    assert_eq!(
        ids(&e.security_groups[0].expired_exemptions),
        [(Check::Ingress, "ingress", None)]
    );
}

#[test]
fn results_without_exemptions_keep_their_shape_and_old_results_parse() {
    let e = run(vec![instance("i-1", &OK_TAGS, &[])], &[], vec![]);
    let json = serde_json::to_value(&e.instances[0]).unwrap();
    for absent in [
        "exemptions",
        "expired_exemptions",
        "exempt_tag_error",
        "exempted_findings",
    ] {
        assert!(json.get(absent).is_none(), "{absent} in {json}");
    }
    let summary = serde_json::to_value(&e.summary).unwrap();
    assert_eq!(summary["exempted_findings"], 0);

    // A result as written before exemptions existed.
    let old = r#"{"schema_version":1,"started_at":"2024-05-02T00:00:00Z",
        "finished_at":"2024-05-02T00:00:01Z","duration_ms":1000,"stack":"prod",
        "account_id":"123456789012","regions":["us-east-1"],
        "settings":{"required_tags":["Owner"],"restricted_ports":[22],"exempt_tag_key":"ComplianceExempt"},
        "summary":{"scanned":1,"exempt":0,"compliant":1,"non_compliant":0,
            "compliance_percentage":100.0,"instances_missing_tags":0,"open_rules":0},
        "instances":[{"instance_id":"i-1","region":"us-east-1","state":"running","name":null,
            "compliant":true,"exempt":false,"missing_tags":[],"near_misses":[],
            "security_groups":[],"violations":[]}],
        "security_groups":[{"group_id":"sg-1","group_name":"g","vpc_id":null,
            "region":"us-east-1","attached_instances":0,"violations":[]}]}"#;
    let scan: ScanResult = serde_json::from_str(old).unwrap();
    assert!(scan.settings.exemptions.is_empty());
    assert_eq!(scan.summary.exempted_findings, 0);
    assert!(scan.instances[0].exemptions.is_empty());
    assert!(scan.security_groups[0].exemptions.is_empty());
}

#[test]
fn applied_exemptions_serialise_with_every_field() {
    let groups = vec![open_group("sg-ssh", 22)];
    let mut e = exemption("bastion", &[Check::Ingress], "2024-05-31");
    e.groups = vec![s("sg-ssh")];
    let r = run(
        vec![instance("i-1", &OK_TAGS, &["sg-ssh"])],
        &groups,
        vec![e],
    );
    let json = serde_json::to_value(&r.instances[0]).unwrap();
    assert_eq!(
        json["exemptions"],
        serde_json::json!([{
            "check": "ingress", "id": "bastion", "group_id": "sg-ssh", "expires": "2024-05-31",
            "reason": "reason of bastion", "owner": "owner of bastion"
        }])
    );
    assert_eq!(json["exempted_findings"], serde_json::json!(["ingress"]));
    let g = serde_json::to_value(&r.security_groups[0]).unwrap();
    assert_eq!(g["exemptions"][0]["group_id"], serde_json::Value::Null);
}

// ---- property tests ----

fn arb_fleet() -> impl Strategy<Value = (Vec<Instance>, Vec<SecurityGroup>)> {
    let tag = prop_oneof![
        Just((s("Environment"), s("prod"))),
        Just((s("Owner"), s("ana"))),
        Just((s("CostCenter"), s("42"))),
        Just((s("Team"), s("legacy"))),
        Just((s("Team"), s("core"))),
        Just((s("ComplianceExempt"), s("true"))),
        Just((s("ComplianceExempt"), s("until 2024-05-01: old"))),
        Just((s("ComplianceExempt"), s("until 2024-05-09: new"))),
        Just((s("ComplianceExempt"), s("maybe"))),
    ];
    let instances = proptest::collection::vec(
        (
            proptest::collection::btree_map(tag, Just(()), 0..5),
            proptest::collection::vec(0usize..4, 0..3),
        ),
        0..7,
    );
    let groups = proptest::collection::vec(prop_oneof![Just(22), Just(80), Just(3389)], 4);
    (instances, groups).prop_map(|(insts, ports)| {
        let groups: Vec<SecurityGroup> = ports
            .iter()
            .enumerate()
            .map(|(n, p)| open_group(&format!("sg-{n}"), *p))
            .collect();
        let instances = insts
            .into_iter()
            .enumerate()
            .map(|(n, (tags, gids))| {
                // One value per key, as EC2 keeps them.
                let mut seen = std::collections::HashSet::new();
                Instance {
                    id: format!("i-{n}"),
                    region: s("us-east-1"),
                    state: s("running"),
                    tags: tags
                        .into_keys()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                    group_ids: gids.into_iter().map(|g| format!("sg-{g}")).collect(),
                }
            })
            .collect();
        (instances, groups)
    })
}

/// Exemptions named `<prefix>-<n>` whose last day is `today + offset` for an offset in `days`.
fn arb_exemptions(
    prefix: &'static str,
    days: std::ops::Range<i64>,
) -> impl Strategy<Value = Vec<Exemption>> {
    let one = (
        proptest::collection::vec(0usize..7, 0..3),
        proptest::collection::vec(0usize..4, 0..2),
        proptest::option::of(prop_oneof![Just("legacy"), Just("core")]),
        prop_oneof![
            Just(vec![Check::Tags]),
            Just(vec![Check::Ingress]),
            Just(vec![Check::Tags, Check::Ingress]),
            Just(vec![Check::Ingress, Check::Tags, Check::Ingress]),
        ],
        days,
    );
    proptest::collection::vec(one, 0..4).prop_map(move |list| {
        list.into_iter()
            .enumerate()
            .map(|(n, (insts, groups, team, checks, offset))| Exemption {
                id: format!("{prefix}-{n}"),
                instances: insts.into_iter().map(|i| format!("i-{i}")).collect(),
                groups: groups.into_iter().map(|g| format!("sg-{g}")).collect(),
                tags: team
                    .map(|t| BTreeMap::from([(s("Team"), s(t))]))
                    .unwrap_or_default(),
                checks,
                reason: s("because"),
                owner: s("ana"),
                expires: day(TODAY).plus(offset).to_string(),
            })
            .collect()
    })
}

/// An instance's verdict without the list of expired exemptions.
fn verdict_of(i: &InstanceResult) -> InstanceResult {
    InstanceResult {
        expired_exemptions: vec![],
        ..i.clone()
    }
}

/// Non-compliant: judged and failing.
fn non_compliant(i: &InstanceResult) -> bool {
    !i.exempt && !i.compliant
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Adding exemptions that have expired changes nothing but the lists of expired exemptions.
    #[test]
    fn an_expired_exemption_never_changes_a_verdict(
        (fleet, groups) in arb_fleet(),
        active in arb_exemptions("now", 0..30),
        expired in arb_exemptions("old", -400..0),
        seed in any::<usize>(),
    ) {
        let before = run(fleet.clone(), &groups, active.clone());
        let mut all = active.clone();
        // Anywhere in the list.
        for (n, e) in expired.iter().enumerate() {
            let at = (seed + n) % (all.len() + 1);
            all.insert(at, e.clone());
        }
        let after = run(fleet, &groups, all);
        prop_assert_eq!(&before.summary, &after.summary);
        prop_assert_eq!(before.instances.len(), after.instances.len());
        for (b, a) in before.instances.iter().zip(&after.instances) {
            prop_assert_eq!(verdict_of(b), verdict_of(a));
            // The configured ones it lists are exactly the expired ones that name it.
            let only_expired_or_tags = a
                .expired_exemptions
                .iter()
                .all(|x| x.id.starts_with("old-") || x.id.starts_with("tag:"));
            prop_assert!(only_expired_or_tags);
        }
        for (b, a) in before.security_groups.iter().zip(&after.security_groups) {
            prop_assert_eq!(&b.exemptions, &a.exemptions);
            prop_assert_eq!(&b.violations, &a.violations);
        }
    }

    /// An instance is compliant iff it is not exempt and every check passes or has its finding
    /// waived; a waived check has a finding and an active exemption for it.
    #[test]
    fn compliant_iff_the_unwaived_checks_pass(
        (fleet, groups) in arb_fleet(),
        exemptions in arb_exemptions("ex", -3..3),
    ) {
        let e = run(fleet, &groups, exemptions);
        for i in &e.instances {
            let waived = |c| i.exempted_findings.contains(&c);
            prop_assert_eq!(
                i.compliant,
                !i.exempt
                    && (i.missing_tags.is_empty() || waived(Check::Tags))
                    && (i.violations.is_empty() || waived(Check::Ingress))
            );
            for c in &i.exempted_findings {
                let found = match c {
                    Check::Tags => !i.missing_tags.is_empty(),
                    Check::Ingress => !i.violations.is_empty(),
                };
                prop_assert!(found);
                prop_assert!(i.exemptions.iter().any(|a| a.check == *c));
            }
            for a in i.exemptions.iter().chain(&i.expired_exemptions) {
                if let Some(expires) = &a.expires {
                    let active = day(expires) >= day(TODAY);
                    prop_assert_eq!(active, i.exemptions.contains(a));
                }
            }
        }
        let sm = &e.summary;
        prop_assert_eq!(sm.exempt + sm.compliant + sm.non_compliant, sm.scanned);
        let waived_rules: u64 = e
            .security_groups
            .iter()
            .filter(|g| !g.exemptions.is_empty())
            .map(|g| g.violations.len() as u64)
            .sum();
        let waived_findings: u64 = e.instances.iter().map(|i| i.exempted_findings.len() as u64).sum();
        prop_assert_eq!(sm.exempted_findings, waived_findings + waived_rules);
    }

    /// An active exemption never makes an instance non-compliant that was not.
    #[test]
    fn an_active_exemption_never_makes_things_worse(
        (fleet, groups) in arb_fleet(),
        base in arb_exemptions("base", -3..3),
        extra in arb_exemptions("extra", 0..30),
    ) {
        let before = run(fleet.clone(), &groups, base.clone());
        let mut all = base;
        all.extend(extra);
        let after = run(fleet, &groups, all);
        for (b, a) in before.instances.iter().zip(&after.instances) {
            prop_assert!(!non_compliant(a) || non_compliant(b), "{:?} -> {:?}", b, a);
        }
        prop_assert!(after.summary.non_compliant <= before.summary.non_compliant);
    }

    /// The order exemptions are configured in does not matter.
    #[test]
    fn exemption_order_does_not_matter(
        (fleet, groups) in arb_fleet(),
        exemptions in arb_exemptions("ex", -3..3),
    ) {
        let forward = run(fleet.clone(), &groups, exemptions.clone());
        let mut reversed = exemptions;
        reversed.reverse();
        prop_assert_eq!(forward, run(fleet, &groups, reversed));
    }
}

#[test]
fn coverage_names_what_each_exemption_covered() {
    let groups = vec![open_group("sg-ssh", 22), open_group("sg-rdp", 3389)];
    let fleet = vec![
        instance("i-1", &[("Team", "legacy")], &["sg-ssh"]),
        instance("i-2", &[("Team", "legacy")], &["sg-rdp"]),
        instance("i-3", &[("ComplianceExempt", "until 2024-04-01: old")], &[]),
        instance(
            "i-4",
            &[("ComplianceExempt", "until 2024-04-02: older")],
            &[],
        ),
    ];
    let mut bastion = exemption("bastion", &[Check::Ingress], "2024-06-01");
    bastion.groups = vec![s("sg-ssh")];
    let mut legacy = exemption("legacy", &[Check::Tags], "2024-05-01");
    legacy.tags = BTreeMap::from([(s("Team"), s("legacy"))]);
    let e = run(fleet, &groups, vec![bastion, legacy]);
    let scan = ScanResult {
        schema_version: 1,
        started_at: s("2024-05-02T00:00:00Z"),
        finished_at: s("2024-05-02T00:00:01Z"),
        duration_ms: 1000,
        stack: s("test"),
        account_id: None,
        regions: vec![s("us-east-1")],
        settings: ScanSettings::default(),
        summary: e.summary,
        instances: e.instances,
        security_groups: e.security_groups,
        errors: Vec::new(),
    };

    let active = scan.exemption_coverage(false);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, "bastion");
    assert_eq!(active[0].instances, ["i-1"]);
    assert_eq!(active[0].groups, ["sg-ssh"]);
    assert_eq!(active[0].checks, [Check::Ingress]);
    assert_eq!(active[0].owner.as_deref(), Some("owner of bastion"));

    let expired = scan.exemption_coverage(true);
    let summary: Vec<(&str, Option<&str>, Vec<&str>)> = expired
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.expires.as_deref(),
                c.instances.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("legacy", Some("2024-05-01"), vec!["i-1", "i-2"]),
            ("tag:ComplianceExempt", Some("2024-04-01"), vec!["i-3"]),
            ("tag:ComplianceExempt", Some("2024-04-02"), vec!["i-4"]),
        ]
    );
    assert_eq!(expired[1].checks, Check::ALL);
    assert_eq!(expired[1].reason.as_deref(), Some("old"));
}
