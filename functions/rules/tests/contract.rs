//! Property tests of the provider-functions contract: whatever valid configuration the provider
//! renders, the functions read back the configured settings, and the import the configured values.

use std::collections::BTreeMap;

use compliance_rules::contract::{
    decode_exemptions, decode_ports, decode_rules, decode_strings, encode_exemptions, encode_ports,
    encode_strings, environment_size, Members, ReporterSettings, ScannerSettings, BUCKET_NAME,
    BUCKET_OWNER, EXEMPTIONS, REPORTER_VARIABLES, REQUIRED_TAGS, RESTRICTED_PORTS,
    SCANNER_VARIABLES,
};
use compliance_rules::exemptions::{Check, Day, Exemption};
use compliance_rules::result::ScanSettings;
use proptest::prelude::*;

/// A tag key the provider accepts: 1 to 128 characters, not blank, not `aws:`. EC2 allows any
/// character, so the awkward ones (commas, brackets, quotes, outer spaces, non-ASCII) come often.
fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9]{0,12}",
        "[ ,\\[\\]\"\\\\:/=+@_.a-zA-Z0-9-]{1,16}",
        "\\PC{1,12}",
        "[ \t]{0,2}[a-zA-Zé,]{1,6}[ \t]{0,2}",
    ]
    .prop_filter("a key is not blank or reserved", |k| {
        !k.trim().is_empty()
            && k.chars().count() <= 128
            && !k.to_ascii_lowercase().starts_with("aws:")
    })
}

/// Distinct keys in the configured order (the provider refuses duplicates).
fn arb_keys(min: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(arb_key(), min..10).prop_map(|keys| {
        let mut seen = std::collections::HashSet::new();
        keys.into_iter()
            .filter(|k| seen.insert(k.clone()))
            .collect()
    })
}

/// Distinct ports in the configured order; the empty list included.
fn arb_ports() -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(any::<u16>(), 0..20).prop_map(|ports| {
        let mut seen = std::collections::HashSet::new();
        ports.into_iter().filter(|p| seen.insert(*p)).collect()
    })
}

/// One exemption the provider accepts: any text in the reason, the owner and the selector (quotes,
/// backslashes, non-ASCII), a real date, at least one check and something covered.
fn arb_exemption() -> impl Strategy<Value = Exemption> {
    (
        proptest::collection::vec("i-[0-9a-f]{8,17}", 0..3),
        proptest::collection::vec("sg-[0-9a-f]{8,17}", 0..3),
        proptest::collection::btree_map(arb_key(), "\\PC{0,12}", 0..3),
        prop_oneof![
            Just(vec![Check::Tags]),
            Just(vec![Check::Ingress]),
            Just(vec![Check::Tags, Check::Ingress]),
            Just(vec![Check::Ingress, Check::Tags]),
        ],
        "\\PC{1,40}",
        "\\PC{1,20}",
        -20_000i64..50_000,
    )
        .prop_filter("it covers something", |(i, g, t, ..)| {
            !(i.is_empty() && g.is_empty() && t.is_empty())
        })
        .prop_map(
            |(instances, groups, tags, checks, reason, owner, day)| Exemption {
                id: String::new(),
                instances,
                groups,
                tags,
                checks,
                reason,
                owner,
                expires: Day::from_days(day).to_string(),
            },
        )
}

/// Exemptions with distinct ids, in the configured order.
fn arb_exemptions() -> impl Strategy<Value = Vec<Exemption>> {
    proptest::collection::vec(("[a-z0-9_-]{1,16}", arb_exemption()), 0..4).prop_map(|list| {
        let mut seen = std::collections::HashSet::new();
        list.into_iter()
            .filter(|(id, _)| seen.insert(id.clone()))
            .map(|(id, e)| Exemption { id, ..e })
            .collect()
    })
}

/// Member settings the provider accepts: distinct account ids or the organization (never both),
/// any valid role name and external id.
fn arb_members() -> impl Strategy<Value = Members> {
    (
        proptest::collection::vec("[0-9]{12}", 0..5),
        any::<bool>(),
        prop_oneof![
            Just("ComplianceScannerMember".to_string()),
            "[A-Za-z0-9+=,.@_-]{1,64}"
        ],
        proptest::option::of("[A-Za-z0-9+=,.@:/_-]{2,60}"),
    )
        .prop_map(|(accounts, organization, role_name, external_id)| {
            let mut seen = std::collections::HashSet::new();
            let accounts: Vec<String> = accounts
                .into_iter()
                .filter(|a| seen.insert(a.clone()))
                .collect();
            Members {
                organization: organization && accounts.is_empty(),
                accounts,
                role_name,
                external_id,
            }
        })
}

/// A configuration the provider's validation accepts (required tags not empty).
fn arb_scanner() -> impl Strategy<Value = ScannerSettings> {
    (
        arb_keys(1),
        arb_ports(),
        arb_key(),
        "[a-z0-9][a-z0-9-]{0,20}[a-z0-9]",
        prop_oneof![
            "us-east-1",
            "eu-west-1",
            "ap-southeast-2",
            "cn-north-1",
            "\\*"
        ],
        proptest::option::of("arn:aws:sns:us-east-1:[0-9]{12}:[a-zA-Z0-9_-]{1,40}"),
        proptest::option::of("[0-9]{12}"),
        arb_exemptions(),
        arb_members(),
        1u32..=64,
    )
        .prop_map(
            |(
                tags,
                ports,
                exempt,
                suffix,
                region,
                topic,
                owner,
                exemptions,
                members,
                concurrency,
            )| ScannerSettings {
                bucket: format!("compliance-results-{suffix}"),
                bucket_owner: owner,
                topic_arn: topic,
                rules: ScanSettings {
                    required_tags: tags,
                    restricted_ports: ports,
                    exempt_tag_key: exempt,
                    exemptions,
                },
                regions: vec![region],
                metric_namespace: "ComplianceMonitoring".into(),
                stack: suffix,
                members,
                concurrency,
            },
        )
}

fn lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| env.get(k).cloned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The scanner applies exactly the configured settings: the same keys in the same order,
    /// the same exempt key, the same ports (sorted, as the scan result records them).
    #[test]
    fn the_scanner_parses_the_configured_settings(configured in arb_scanner()) {
        let env = configured.render();
        let parsed = ScannerSettings::from_vars(lookup(&env), None).unwrap();
        let mut expected = configured.clone();
        expected.rules.restricted_ports.sort_unstable();
        prop_assert_eq!(parsed, expected);
        for name in env.keys() {
            prop_assert!(SCANNER_VARIABLES.contains(&name.as_str()), "{}", name);
        }
    }

    /// Import reads back the configured values in the configured order, so the next plan is empty.
    #[test]
    fn import_reads_back_the_configured_rules(configured in arb_scanner()) {
        let env = configured.render();
        prop_assert_eq!(decode_rules(lookup(&env)).unwrap(), configured.rules);
    }

    /// Exemptions survive the trip exactly, and are written only when there are some.
    #[test]
    fn exemptions_are_lossless(configured in arb_scanner()) {
        let env = configured.render();
        prop_assert_eq!(env.contains_key(EXEMPTIONS), !configured.rules.exemptions.is_empty());
        let text = encode_exemptions(&configured.rules.exemptions);
        prop_assert_eq!(decode_exemptions(&text).unwrap(), configured.rules.exemptions);
    }

    /// A value that is not an array of exemptions is refused naming the variable, never read as
    /// no exemption.
    #[test]
    fn unreadable_exemptions_are_refused(raw in "\\PC{1,40}") {
        let text = raw.trim();
        let empty = text.is_empty()
            || serde_json::from_str::<Vec<serde_json::Value>>(text).is_ok_and(|v| v.is_empty());
        match decode_exemptions(&raw) {
            Ok(list) => prop_assert!(empty && list.is_empty(), "{:?} read as {:?}", raw, list),
            Err(e) => prop_assert_eq!(e.variable, EXEMPTIONS),
        }
    }

    /// Any list of strings survives the trip, blank and empty items included.
    #[test]
    fn string_lists_are_lossless(items in proptest::collection::vec(any::<String>(), 0..6)) {
        let text = encode_strings(&items);
        prop_assert_eq!(decode_strings(REQUIRED_TAGS, &text).unwrap(), Some(items));
    }

    /// Any list of ports survives the trip, the empty one included.
    #[test]
    fn port_lists_are_lossless(ports in proptest::collection::vec(any::<u16>(), 0..20)) {
        let text = encode_ports(&ports);
        prop_assert_eq!(decode_ports(RESTRICTED_PORTS, &text).unwrap(), Some(ports));
    }

    /// The reporter reads back its settings.
    #[test]
    fn the_reporter_parses_the_configured_settings(configured in arb_scanner()) {
        let reporter = ReporterSettings {
            bucket: configured.bucket.clone(),
            bucket_owner: configured.bucket_owner.clone(),
            topic_arn: configured.topic_arn.clone(),
            stack: Some(configured.stack.clone()),
        };
        let env = reporter.render();
        prop_assert_eq!(ReporterSettings::from_vars(lookup(&env)).unwrap(), reporter);
        for name in env.keys() {
            prop_assert!(REPORTER_VARIABLES.contains(&name.as_str()), "{}", name);
        }
    }

    /// Both functions take an owner that is 12 ASCII digits once trimmed, take a blank one as no
    /// owner, and refuse anything else naming the variable: a wrong owner never reaches S3.
    #[test]
    fn the_bucket_owner_is_twelve_digits_or_refused(
        owner in prop_oneof!["[0-9]{12}", "[ \t]{0,2}[0-9]{10,14}[ \t]{0,2}", "\\PC{0,14}"],
    ) {
        let var = |k: &str| match k {
            BUCKET_NAME => Some("b".to_string()),
            BUCKET_OWNER => Some(owner.clone()),
            _ => None,
        };
        let id = owner.trim();
        let valid = id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit());
        let expected = (!id.is_empty()).then(|| id.to_string());
        let scanner = ScannerSettings::from_vars(var, Some("us-east-1"));
        let reporter = ReporterSettings::from_vars(var);
        if valid || id.is_empty() {
            prop_assert_eq!(scanner.unwrap().bucket_owner, expected.clone());
            prop_assert_eq!(reporter.unwrap().bucket_owner, expected);
        } else {
            prop_assert_eq!(scanner.unwrap_err().variable, BUCKET_OWNER);
            prop_assert_eq!(reporter.unwrap_err().variable, BUCKET_OWNER);
        }
    }

    /// The size the provider checks grows with every byte of a key, so a configuration over
    /// Lambda's limit is seen as such.
    #[test]
    fn size_counts_every_key(configured in arb_scanner(), extra in arb_key()) {
        let before = environment_size(&configured.render());
        let mut more = configured.clone();
        if !more.rules.required_tags.contains(&extra) {
            more.rules.required_tags.push(extra.clone());
            prop_assert!(environment_size(&more.render()) > before + extra.len());
        }
    }
}
