//! Exemptions: a configured waiver of one or both checks for named resources, with a reason, an
//! owner and a last day; and the exempt tag, which may carry its own last day.
//!
//! An exemption is active through the whole of its `expires` day in UTC and expired from the next
//! UTC day on. An expired exemption is no exemption: the scan judges what it covered and says that
//! it expired. `docs/scan-result.md` says how a scan records both.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::report::timestamp::{days_from_civil, days_in_month, digits};

/// A check an exemption can waive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// The required tags.
    Tags,
    /// The world-open inbound rules of the attached security groups.
    Ingress,
}

impl Check {
    /// Both checks, in their order.
    pub const ALL: [Check; 2] = [Check::Tags, Check::Ingress];

    /// The spelling of the JSON (`tags`, `ingress`).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Tags => "tags",
            Check::Ingress => "ingress",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured exemption (the resource's `exemption` block; the scanner's `EXEMPTIONS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    /// A short name, unique among the stack's exemptions.
    pub id: String,
    /// Instance ids it covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<String>,
    /// Security group ids it covers (for `ingress`: the groups' violations, wherever attached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// A tag selector: it covers every instance carrying each of these pairs exactly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The checks it waives; never empty.
    pub checks: Vec<Check>,
    /// Why.
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// Its last active day, `YYYY-MM-DD` (UTC).
    pub expires: String,
}

impl Exemption {
    /// Its last active day; `None` when `expires` is not a `YYYY-MM-DD` date.
    pub fn expiry(&self) -> Option<Day> {
        Day::parse(&self.expires)
    }

    /// Whether it is in force on `day` (UTC). One whose `expires` does not read as a date is
    /// never in force: a waiver is not granted by a typo.
    pub fn is_active_on(&self, day: Day) -> bool {
        self.expiry().is_some_and(|last| day <= last)
    }

    /// Whether it waives `check`.
    pub fn covers(&self, check: Check) -> bool {
        self.checks.contains(&check)
    }

    /// Whether it names the instance, by id or by its tag selector (every pair present with the
    /// exact key and value). An empty selector selects nothing.
    pub fn matches_instance(&self, instance_id: &str, tags: &[(String, String)]) -> bool {
        self.instances.iter().any(|i| i == instance_id)
            || (!self.tags.is_empty()
                && self
                    .tags
                    .iter()
                    .all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v)))
    }

    /// Whether it names the security group.
    pub fn matches_group(&self, group_id: &str) -> bool {
        self.groups.iter().any(|g| g == group_id)
    }

    /// What is wrong with it on its own, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.id.trim().is_empty() {
            return Some("an exemption has no id".to_string());
        }
        let id = &self.id;
        if self.checks.is_empty() {
            return Some(format!("exemption `{id}` waives no check (tags, ingress)"));
        }
        if self.instances.is_empty() && self.groups.is_empty() && self.tags.is_empty() {
            return Some(format!(
                "exemption `{id}` covers nothing: name instances, groups or a tag selector"
            ));
        }
        if self.expiry().is_none() {
            return Some(format!(
                "exemption `{id}`: expires `{}` is not a date (YYYY-MM-DD)",
                self.expires
            ));
        }
        None
    }
}

/// Checks a list of exemptions: each well formed ([`Exemption::problem`]) and ids unique.
pub fn validate(exemptions: &[Exemption]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for e in exemptions {
        if let Some(problem) = e.problem() {
            return Err(problem);
        }
        if !seen.insert(e.id.as_str()) {
            return Err(format!("exemption id `{}` is used twice", e.id));
        }
    }
    Ok(())
}

/// The id a scan records for the exempt tag: `tag:<key>`.
pub fn tag_id(key: &str) -> String {
    format!("tag:{key}")
}

/// A UTC calendar day, counted from 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The day `days` after 1970-01-01 (before it when negative).
    pub fn from_days(days: i64) -> Day {
        Day(days)
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i64 {
        self.0
    }

    /// The UTC day of a Unix time in seconds.
    pub fn from_unix_seconds(secs: i64) -> Day {
        Day(secs.div_euclid(86_400))
    }

    /// The UTC day of an RFC 3339 time (`started_at`); `None` when it does not read.
    pub fn from_rfc3339(text: &str) -> Option<Day> {
        crate::report::parse_rfc3339(text).map(|t| Day(t.utc_day()))
    }

    /// Reads exactly `YYYY-MM-DD`, a real date; `None` for anything else.
    pub fn parse(text: &str) -> Option<Day> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Day(days_from_civil(i64::from(year), month, day)))
    }

    /// The day `n` days later (earlier when negative).
    pub fn plus(self, n: i64) -> Day {
        Day(self.0 + n)
    }
}

impl fmt::Display for Day {
    /// `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

/// What the exempt tag's value says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagExemption {
    /// Blank, or `false` in any case: no exemption, and nothing to report.
    NotExempt,
    /// `true` in any case: exempt from every check, with no expiry (the original form).
    Always,
    /// `until YYYY-MM-DD: reason`: exempt from every check through that UTC day.
    Until {
        /// The last active day, `YYYY-MM-DD`.
        expires: String,
        /// The text after the colon, trimmed; never empty.
        reason: String,
    },
    /// Anything else: not an exemption. The message quotes the value and says what is expected.
    Invalid(String),
}

/// Reads the exempt tag's value.
///
/// `true` must be exactly that (any case, no surrounding spaces), as before dates existed: an
/// exemption switches checks off and is never granted by accident. The dated form is
/// `until YYYY-MM-DD: reason` (`until` in any case; spaces around the date and the colon are
/// free); a reason is required, since an exemption without one cannot be reviewed.
pub fn parse_exempt_tag(value: &str) -> TagExemption {
    if value.trim().is_empty() || value.eq_ignore_ascii_case("false") {
        return TagExemption::NotExempt;
    }
    if value.eq_ignore_ascii_case("true") {
        return TagExemption::Always;
    }
    let invalid = |why: &str| {
        TagExemption::Invalid(format!(
            "{value:?} is not an exemption ({why}): write \"true\" or \"until YYYY-MM-DD: reason\""
        ))
    };
    let Some(rest) = value
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("until "))
        .map(|_| value[6..].trim_start())
    else {
        return invalid("neither true nor until a date");
    };
    let Some(date) = rest.get(..10).filter(|d| Day::parse(d).is_some()) else {
        return invalid("no valid date YYYY-MM-DD after until");
    };
    let Some(reason) = rest[10..].trim_start().strip_prefix(':') else {
        return invalid("no colon after the date");
    };
    let reason = reason.trim();
    if reason.is_empty() {
        return invalid("no reason after the colon");
    }
    TagExemption::Until {
        expires: date.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exemption() -> Exemption {
        Exemption {
            id: "legacy-db".into(),
            instances: vec!["i-1".into()],
            groups: vec!["sg-1".into()],
            tags: BTreeMap::from([("Team".into(), "data".into()), ("Tier".into(), "db".into())]),
            checks: vec![Check::Ingress],
            reason: "migration".into(),
            owner: "ana@example.com".into(),
            expires: "2024-03-31".into(),
        }
    }

    #[test]
    fn an_exemption_is_active_through_its_whole_last_day_in_utc() {
        let e = exemption();
        assert!(e.is_active_on(day("2024-01-01")));
        assert!(e.is_active_on(day("2024-03-31")));
        assert!(!e.is_active_on(day("2024-04-01")));
        // The last second of the day is still in it; the first of the next is not.
        let last = Day::from_rfc3339("2024-03-31T23:59:59.999Z").unwrap();
        let next = Day::from_rfc3339("2024-04-01T00:00:00Z").unwrap();
        assert!(e.is_active_on(last) && !e.is_active_on(next));
        // The day is the UTC day: 01:00 at +02:00 is the day before in UTC.
        assert!(e.is_active_on(Day::from_rfc3339("2024-04-01T01:00:00+02:00").unwrap()));
        assert!(!e.is_active_on(Day::from_rfc3339("2024-03-31T22:00:00-02:00").unwrap()));
        assert_eq!(
            Day::from_unix_seconds(1_711_929_599),
            day("2024-03-31"),
            "23:59:59"
        );
        assert_eq!(Day::from_unix_seconds(1_711_929_600), day("2024-04-01"));
    }

    #[test]
    fn an_unreadable_expiry_is_never_active() {
        for bad in [
            "2024-02-30",
            "2024-3-31",
            "31/03/2024",
            "",
            "2024-03-31T00:00:00Z",
        ] {
            let e = Exemption {
                expires: bad.into(),
                ..exemption()
            };
            assert_eq!(e.expiry(), None, "{bad}");
            assert!(!e.is_active_on(Day::from_days(0)), "{bad}");
            assert!(e.problem().unwrap().contains("is not a date"), "{bad}");
        }
    }

    #[test]
    fn days_read_and_print_as_dates() {
        assert_eq!(day("1970-01-01").days(), 0);
        assert_eq!(day("2024-02-29").days(), 19_782);
        assert_eq!(Day::parse("2023-02-29"), None);
        assert_eq!(Day::parse("2024-13-01"), None);
        assert_eq!(Day::parse("2024-00-10"), None);
        assert_eq!(Day::parse("+024-01-01"), None);
        for text in [
            "1970-01-01",
            "2000-02-29",
            "2024-12-31",
            "1969-12-31",
            "2100-03-01",
        ] {
            assert_eq!(day(text).to_string(), text);
        }
        assert_eq!(day("2024-02-28").plus(1).to_string(), "2024-02-29");
        assert_eq!(day("2024-12-31").plus(1).to_string(), "2025-01-01");
    }

    #[test]
    fn instances_match_by_id_or_by_every_pair_of_the_selector() {
        let e = exemption();
        assert!(e.matches_instance("i-1", &[]));
        assert!(!e.matches_instance("i-2", &[]));
        assert!(!e.matches_instance("i-10", &[]), "ids compare exactly");
        let both = tags(&[("Team", "data"), ("Tier", "db"), ("Name", "x")]);
        assert!(e.matches_instance("i-2", &both));
        assert!(!e.matches_instance("i-2", &tags(&[("Team", "data")])));
        assert!(!e.matches_instance("i-2", &tags(&[("Team", "Data"), ("Tier", "db")])));
        assert!(!e.matches_instance("i-2", &tags(&[("team", "data"), ("Tier", "db")])));
        assert!(!e.matches_instance("i-2", &tags(&[("Team", "data "), ("Tier", "db")])));
        // A selector of no pairs selects nothing, not everything.
        let no_selector = Exemption {
            tags: BTreeMap::new(),
            ..exemption()
        };
        assert!(!no_selector.matches_instance("i-2", &both));
    }

    #[test]
    fn groups_match_by_id_and_checks_are_per_check() {
        let e = exemption();
        assert!(e.matches_group("sg-1") && !e.matches_group("sg-2"));
        assert!(e.covers(Check::Ingress) && !e.covers(Check::Tags));
        let both = Exemption {
            checks: Check::ALL.to_vec(),
            ..exemption()
        };
        assert!(both.covers(Check::Tags) && both.covers(Check::Ingress));
    }

    #[test]
    fn validation_names_the_exemption_and_the_problem() {
        assert_eq!(validate(&[exemption()]), Ok(()));
        let no_checks = Exemption {
            checks: vec![],
            ..exemption()
        };
        assert!(validate(&[no_checks])
            .unwrap_err()
            .contains("`legacy-db` waives no check"));
        let nothing = Exemption {
            instances: vec![],
            groups: vec![],
            tags: BTreeMap::new(),
            ..exemption()
        };
        assert!(validate(&[nothing]).unwrap_err().contains("covers nothing"));
        let blank = Exemption {
            id: " ".into(),
            ..exemption()
        };
        assert!(validate(&[blank]).unwrap_err().contains("no id"));
        assert!(validate(&[exemption(), exemption()])
            .unwrap_err()
            .contains("used twice"));
    }

    #[test]
    fn the_exempt_tag_reads_true_until_or_nothing() {
        for v in ["true", "TRUE", "True"] {
            assert_eq!(parse_exempt_tag(v), TagExemption::Always, "{v}");
        }
        for v in ["", "  ", "false", "FALSE"] {
            assert_eq!(parse_exempt_tag(v), TagExemption::NotExempt, "{v:?}");
        }
        assert_eq!(
            parse_exempt_tag("until 2027-03-31: vendor appliance, see JIRA-12"),
            TagExemption::Until {
                expires: "2027-03-31".into(),
                reason: "vendor appliance, see JIRA-12".into()
            }
        );
        assert_eq!(
            parse_exempt_tag("Until  2027-03-31 :  spaced out "),
            TagExemption::Until {
                expires: "2027-03-31".into(),
                reason: "spaced out".into()
            }
        );
    }

    #[test]
    fn a_malformed_exempt_tag_is_no_exemption_and_says_why() {
        for (value, why) in [
            ("yes", "neither true nor until"),
            (" true", "neither true nor until"),
            ("true ", "neither true nor until"),
            ("until", "neither true nor until"),
            ("until tomorrow: why", "no valid date"),
            ("until 2027-02-30: why", "no valid date"),
            ("until 2027-3-31: why", "no valid date"),
            ("until 2027-03-31 why", "no colon"),
            ("until 2027-03-31", "no colon"),
            ("until 2027-03-31:", "no reason"),
            ("until 2027-03-31:   ", "no reason"),
            ("untilé 2027-03-31: x", "neither true nor until"),
            ("é", "neither true nor until"),
        ] {
            match parse_exempt_tag(value) {
                TagExemption::Invalid(message) => {
                    assert!(message.contains(why), "{value:?}: {message}");
                    assert!(message.contains(&format!("{value:?}")), "{message}");
                    assert!(message.contains("until YYYY-MM-DD: reason"), "{message}");
                }
                other => panic!("{value:?} read as {other:?}"),
            }
        }
    }

    #[test]
    fn exemptions_serialise_in_the_contract_field_names() {
        let json = serde_json::to_value(exemption()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "legacy-db",
                "instances": ["i-1"],
                "groups": ["sg-1"],
                "tags": {"Team": "data", "Tier": "db"},
                "checks": ["ingress"],
                "reason": "migration",
                "owner": "ana@example.com",
                "expires": "2024-03-31"
            })
        );
        let only_tags = Exemption {
            instances: vec![],
            groups: vec![],
            ..exemption()
        };
        let text = serde_json::to_string(&only_tags).unwrap();
        assert!(
            !text.contains("instances") && !text.contains("groups"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Exemption>(&text).unwrap(), only_tags);
    }
}
