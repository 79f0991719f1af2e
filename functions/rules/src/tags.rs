//! Required-tag checks: blank values, near misses and the exemption tag.

use crate::exemptions::{parse_exempt_tag, TagExemption};
use crate::result::{NearMiss, ScanSettings};

/// What the tag checks found on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagVerdict {
    /// What the exempt tag says ([`TagExemption::NotExempt`] when it is absent).
    pub exemption: TagExemption,
    /// Required keys absent or blank, in the configured order.
    pub missing: Vec<String>,
    /// For missing keys, tags whose key differs only in case or surrounding spaces.
    pub near_misses: Vec<NearMiss>,
    /// The `Name` tag's value, when set.
    pub name: Option<String>,
}

/// A value counts as set when it holds something other than white space.
fn is_set(value: &str) -> bool {
    !value.trim().is_empty()
}

/// Whether `found` differs from `required` only in case or surrounding white space.
fn is_near_miss(found: &str, required: &str) -> bool {
    found != required && found.trim().to_lowercase() == required.to_lowercase()
}

/// Applies the tag rules to an instance's tags (given in any order).
///
/// Keys compare exactly (AWS tag keys are case-sensitive). Near misses are reported only for a key
/// that is missing: when the exact key is set, a look-alike is noise, not a fix to make. The exempt
/// key compares exactly and its value is read by [`parse_exempt_tag`]: `true` in any case with no
/// surrounding spaces, or `until YYYY-MM-DD: reason`, since an exemption switches the checks off
/// and should not be granted by accident.
pub fn check_tags(tags: &[(String, String)], settings: &ScanSettings) -> TagVerdict {
    // EC2 keys are unique per resource, so there is at most one value to read.
    let exemption = tags
        .iter()
        .find(|(k, _)| *k == settings.exempt_tag_key)
        .map_or(TagExemption::NotExempt, |(_, v)| parse_exempt_tag(v));
    let name = tags
        .iter()
        .find(|(k, v)| k == "Name" && is_set(v))
        .map(|(_, v)| v.clone());
    let mut missing = Vec::new();
    let mut near_misses = Vec::new();
    for required in &settings.required_tags {
        if tags.iter().any(|(k, v)| k == required && is_set(v)) {
            continue;
        }
        missing.push(required.clone());
        let mut found: Vec<&String> = tags
            .iter()
            .filter(|(k, _)| is_near_miss(k, required))
            .map(|(k, _)| k)
            .collect();
        // Sorted so the result does not depend on the order the API listed the tags in.
        found.sort();
        near_misses.extend(found.into_iter().map(|f| NearMiss {
            required: required.clone(),
            found: f.clone(),
        }));
    }
    TagVerdict {
        exemption,
        missing,
        near_misses,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(pairs: &[(&str, &str)]) -> TagVerdict {
        check_tags(&tags(pairs), &ScanSettings::default())
    }

    impl TagVerdict {
        /// Exempt with no expiry, as `true` says.
        fn exempt(&self) -> bool {
            self.exemption == TagExemption::Always
        }
    }

    const ALL: [(&str, &str); 3] = [
        ("Environment", "prod"),
        ("Owner", "ana"),
        ("CostCenter", "42"),
    ];

    #[test]
    fn all_required_tags_set_is_clean() {
        let v = check(&ALL);
        assert!(v.missing.is_empty() && v.near_misses.is_empty() && !v.exempt());
        assert_eq!(v.exemption, TagExemption::NotExempt);
    }

    #[test]
    fn no_tags_misses_every_key_in_configured_order() {
        assert_eq!(check(&[]).missing, ["Environment", "Owner", "CostCenter"]);
    }

    #[test]
    fn empty_or_white_space_value_counts_as_missing() {
        let v = check(&[("Environment", ""), ("Owner", "  \t"), ("CostCenter", "42")]);
        assert_eq!(v.missing, ["Environment", "Owner"]);
        assert!(v.near_misses.is_empty());
    }

    #[test]
    fn key_differing_in_case_is_missing_and_a_near_miss() {
        let v = check(&[
            ("Environment", "prod"),
            ("owner", "ana"),
            ("CostCenter", "42"),
        ]);
        assert_eq!(v.missing, ["Owner"]);
        assert_eq!(
            v.near_misses,
            [NearMiss {
                required: "Owner".into(),
                found: "owner".into()
            }]
        );
    }

    #[test]
    fn key_with_surrounding_spaces_is_missing_and_a_near_miss() {
        let v = check(&[
            ("Environment", "prod"),
            ("Owner ", "ana"),
            (" COSTCENTER", "1"),
        ]);
        assert_eq!(v.missing, ["Owner", "CostCenter"]);
        let found: Vec<_> = v.near_misses.iter().map(|n| n.found.as_str()).collect();
        assert_eq!(found, ["Owner ", " COSTCENTER"]);
    }

    #[test]
    fn look_alike_beside_a_set_key_is_not_reported() {
        let mut pairs = ALL.to_vec();
        pairs.push(("owner", "someone"));
        let v = check(&pairs);
        assert!(v.missing.is_empty() && v.near_misses.is_empty());
    }

    #[test]
    fn blank_exact_key_with_a_look_alike_names_the_look_alike() {
        let v = check(&[
            ("Environment", "prod"),
            ("Owner", ""),
            ("OWNER", "ana"),
            ("CostCenter", "42"),
        ]);
        assert_eq!(v.missing, ["Owner"]);
        assert_eq!(v.near_misses[0].found, "OWNER");
    }

    #[test]
    fn different_key_is_not_a_near_miss() {
        let v = check(&[
            ("Environment", "prod"),
            ("Owners", "ana"),
            ("CostCenter", "42"),
        ]);
        assert_eq!(v.missing, ["Owner"]);
        assert!(v.near_misses.is_empty());
    }

    #[test]
    fn exemption_value_is_case_insensitive() {
        assert!(check(&[("ComplianceExempt", "true")]).exempt());
        assert!(check(&[("ComplianceExempt", "TRUE")]).exempt());
        assert!(check(&[("ComplianceExempt", "True")]).exempt());
    }

    #[test]
    fn exemption_needs_exactly_true_and_the_exact_key() {
        assert!(!check(&[("ComplianceExempt", "false")]).exempt());
        assert!(!check(&[("ComplianceExempt", "yes")]).exempt());
        assert!(!check(&[("ComplianceExempt", "")]).exempt());
        assert!(!check(&[("ComplianceExempt", " true")]).exempt());
        assert!(!check(&[("complianceexempt", "true")]).exempt());
        // A value that is neither is reported; a look-alike key is not the exempt key at all.
        assert!(matches!(
            check(&[("ComplianceExempt", "yes")]).exemption,
            TagExemption::Invalid(_)
        ));
        assert_eq!(
            check(&[("complianceexempt", "yes")]).exemption,
            TagExemption::NotExempt
        );
    }

    #[test]
    fn the_exempt_tag_may_carry_a_last_day() {
        assert_eq!(
            check(&[("ComplianceExempt", "until 2027-03-31: vendor box")]).exemption,
            TagExemption::Until {
                expires: "2027-03-31".into(),
                reason: "vendor box".into()
            }
        );
    }

    #[test]
    fn exempt_key_is_configurable() {
        let settings = ScanSettings {
            exempt_tag_key: "SkipScan".into(),
            ..ScanSettings::default()
        };
        assert!(check_tags(&tags(&[("SkipScan", "true")]), &settings).exempt());
        assert!(!check_tags(&tags(&[("ComplianceExempt", "true")]), &settings).exempt());
    }

    #[test]
    fn required_keys_are_configurable() {
        let settings = ScanSettings {
            required_tags: vec!["Team".into()],
            ..ScanSettings::default()
        };
        assert!(check_tags(&tags(&[("Team", "x")]), &settings)
            .missing
            .is_empty());
        assert_eq!(check_tags(&[], &settings).missing, ["Team"]);
    }

    #[test]
    fn name_tag_is_read_and_blank_name_is_none() {
        assert_eq!(check(&[("Name", "web-1")]).name.as_deref(), Some("web-1"));
        assert_eq!(check(&[("Name", " ")]).name, None);
    }
}
