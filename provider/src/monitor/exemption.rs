//! The `exemption` blocks: what a team has agreed not to count against compliance, for how long,
//! why and on whose word. Each block becomes one of the scanner's exemptions (the contract's
//! `EXEMPTIONS`), so the scanner, not the provider, decides at each scan whether it has expired.

use std::collections::BTreeMap;

use compliance_rules::exemptions::{Check, Exemption};

use super::model::{Field, Problems};
use crate::protocol::diag::AttrPath;
use crate::protocol::schema::{Attribute, Block, Mode, NestedBlock, Nesting};
use crate::protocol::value::{Type, Value};

/// The block's name in configuration.
pub const BLOCK: &str = "exemption";

/// Longest an `id` may be: it appears in results, alerts and reports.
const MAX_ID_LEN: usize = 64;

/// One `exemption` block as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptionBlock {
    /// A short name, unique among the blocks.
    pub id: String,
    /// Instance ids (`i-...`) and security group ids (`sg-...`) it covers.
    pub resources: Vec<String>,
    /// A tag selector: instances carrying every one of these tags.
    pub tag: BTreeMap<String, String>,
    /// The checks it waives: `tags`, `ingress`; unset means both.
    pub checks: Option<Vec<String>>,
    /// Why.
    pub reason: String,
    /// Who answers for it: an e-mail or a team name.
    pub owner: String,
    /// Last day it applies (UTC), `YYYY-MM-DD`.
    pub expires: String,
}

/// The block's attributes: name, type, mode, description.
fn attributes() -> [(&'static str, Type, Mode, &'static str); 7] {
    use Mode::*;
    [
        ("id", Type::String, Required, "Short name of the exemption, unique in the resource: letters, digits, `-` and `_`, at most 64 characters. Results, alerts and reports name it."),
        ("resources", Type::list(Type::String), Optional, "Instance ids (`i-...`) and security group ids (`sg-...`) it covers. A group id waives the group's world-open rules for every instance it is attached to."),
        ("tag", Type::map(Type::String), Optional, "Tag selector: the instances that carry every one of these tags (`tag = { Team = \"legacy\" }`)."),
        ("checks", Type::list(Type::String), Optional, "The checks it waives: `tags` (required tags), `ingress` (world-open security-group rules), or both. Default both."),
        ("reason", Type::String, Required, "Why the resources are exempt."),
        ("owner", Type::String, Required, "Who answers for the exemption: an e-mail address or a team name."),
        ("expires", Type::String, Required, "Last day the exemption applies, `YYYY-MM-DD` (UTC), no later than `max_exemption_days` after today. From the next day the scanner treats it as no exemption and says it expired."),
    ]
}

/// The nested block in the resource schema.
pub fn nested_block() -> NestedBlock {
    NestedBlock {
        name: BLOCK,
        nesting: Nesting::List,
        block: Block {
            description: "An exemption with a reason, an owner and an expiry.".into(),
            attributes: attributes()
                .into_iter()
                .map(|(name, ty, mode, doc)| Attribute::new(name, ty, mode, doc))
                .collect(),
            blocks: Vec::new(),
        },
    }
}

/// The blocks' value type: a list of objects of the block's attributes.
fn object_type() -> Type {
    Type::Object(
        attributes()
            .into_iter()
            .map(|(name, ty, _, _)| (name.to_string(), ty))
            .collect(),
    )
}

impl Field for ExemptionBlock {
    fn tf_type() -> Type {
        object_type()
    }

    fn from_value(v: &Value) -> Option<Self> {
        let text = |name: &str| v.attr(name).as_str().map(str::to_string);
        let list = |name: &str| -> Option<Option<Vec<String>>> {
            <Option<Vec<String>>>::from_value(v.attr(name))
        };
        Some(ExemptionBlock {
            id: text("id")?,
            resources: list("resources")?.unwrap_or_default(),
            tag: <Option<BTreeMap<String, String>>>::from_value(v.attr("tag"))?.unwrap_or_default(),
            checks: list("checks")?,
            reason: text("reason")?,
            owner: text("owner")?,
            expires: text("expires")?,
        })
    }

    fn to_value(&self) -> Value {
        let strings = |items: &[String]| {
            if items.is_empty() {
                Value::Null
            } else {
                items.to_vec().to_value()
            }
        };
        Value::Object(BTreeMap::from([
            ("id".to_string(), Value::string(&self.id)),
            ("resources".to_string(), strings(&self.resources)),
            (
                "tag".to_string(),
                if self.tag.is_empty() {
                    Value::Null
                } else {
                    self.tag.to_value()
                },
            ),
            ("checks".to_string(), self.checks.to_value()),
            ("reason".to_string(), Value::string(&self.reason)),
            ("owner".to_string(), Value::string(&self.owner)),
            ("expires".to_string(), Value::string(&self.expires)),
        ]))
    }
}

impl ExemptionBlock {
    /// The scanner's exemption: resources split by kind, checks spelled out (both when unset).
    pub fn to_exemption(&self) -> Exemption {
        let checks = match &self.checks {
            None => vec![Check::Tags, Check::Ingress],
            Some(names) => names
                .iter()
                .filter_map(|n| match n.as_str() {
                    "tags" => Some(Check::Tags),
                    "ingress" => Some(Check::Ingress),
                    _ => None,
                })
                .collect(),
        };
        Exemption {
            id: self.id.clone(),
            instances: self
                .resources
                .iter()
                .filter(|r| r.starts_with("i-"))
                .cloned()
                .collect(),
            groups: self
                .resources
                .iter()
                .filter(|r| r.starts_with("sg-"))
                .cloned()
                .collect(),
            tags: self.tag.clone(),
            checks,
            reason: self.reason.clone(),
            owner: self.owner.clone(),
            expires: self.expires.clone(),
        }
    }

    /// The block of a deployed exemption (import reads them back from the scanner's settings).
    pub fn from_exemption(e: &Exemption) -> ExemptionBlock {
        let both = e.checks.contains(&Check::Tags) && e.checks.contains(&Check::Ingress);
        ExemptionBlock {
            id: e.id.clone(),
            resources: e.instances.iter().chain(&e.groups).cloned().collect(),
            tag: e.tags.clone(),
            checks: (!both).then(|| {
                e.checks
                    .iter()
                    .map(|c| match c {
                        Check::Tags => "tags".to_string(),
                        Check::Ingress => "ingress".to_string(),
                    })
                    .collect()
            }),
            reason: e.reason.clone(),
            owner: e.owner.clone(),
            expires: e.expires.clone(),
        }
    }
}

/// A calendar date, `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    (s.len() == 10)
        .then(|| time::Date::parse(s, &format).ok())
        .flatten()
}

fn is_resource_id(r: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.len() <= 17 && s.chars().all(|c| c.is_ascii_hexdigit());
    r.strip_prefix("i-").is_some_and(hex) || r.strip_prefix("sg-").is_some_and(hex)
}

/// Every problem of the blocks, each at its block's attribute: `today` is the UTC date the
/// configuration is validated on, `max_days` the resource's `max_exemption_days`.
pub fn check(blocks: &Value, today: time::Date, max_days: i64) -> Problems {
    let mut out = Problems::new();
    let Value::List(items) = blocks else {
        return out;
    };
    let mut ids = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let at = |name: &str| AttrPath::attr(BLOCK).index(i).then_attr(name);
        let mut problem = |name: &str, detail: String| out.push((at(name), detail));
        let known = |name: &str| {
            let v = item.attr(name);
            (!v.is_unknown() && !v.contains_unknown()).then_some(v)
        };
        let id = known("id").and_then(Value::as_str);
        if let Some(id) = id {
            let ok = !id.is_empty()
                && id.len() <= MAX_ID_LEN
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                problem(
                    "id",
                    format!(
                        "Exemption id {id:?} must be 1 to {MAX_ID_LEN} letters, digits, `-` or `_`."
                    ),
                );
            } else if !ids.insert(id.to_string()) {
                problem(
                    "id",
                    format!("Exemption id {id:?} is used twice; give each block its own id."),
                );
            }
        }
        let name = id.unwrap_or("(unnamed)");
        let resources = known("resources").and_then(Value::as_list);
        for r in resources.into_iter().flatten() {
            if let Some(r) = r.as_str().filter(|r| !is_resource_id(r)) {
                problem(
                    "resources",
                    format!(
                        "Exemption {name:?}: {r:?} is neither an instance id (i-...) nor a security group id (sg-...)."
                    ),
                );
            }
        }
        let tag = known("tag").and_then(Value::entries);
        for key in tag.into_iter().flat_map(|t| t.keys()) {
            if let Err(detail) = super::validate::tag_key(key) {
                problem("tag", format!("Exemption {name:?}: {detail}"));
            }
        }
        let covers = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
        let listed = known("resources")
            .and_then(Value::as_list)
            .is_some_and(|l| !l.is_empty());
        let selected = known("tag")
            .and_then(Value::entries)
            .is_some_and(|t| !t.is_empty());
        let unknown_cover = !covers(known("resources")) && item.attr("resources").is_unknown()
            || !covers(known("tag")) && item.attr("tag").is_unknown();
        if !listed && !selected && !unknown_cover {
            problem(
                "resources",
                format!(
                    "Exemption {name:?} covers nothing: list instance or security group ids in resources, or select instances with tag = {{ Key = \"Value\" }}."
                ),
            );
        }
        if let Some(checks) = known("checks").and_then(Value::as_list) {
            let mut seen = Vec::new();
            for c in checks.iter().filter_map(Value::as_str) {
                if c != "tags" && c != "ingress" {
                    problem(
                        "checks",
                        format!(
                            "Exemption {name:?}: unknown check {c:?}; the checks are \"tags\" and \"ingress\"."
                        ),
                    );
                } else if seen.contains(&c) {
                    problem(
                        "checks",
                        format!("Exemption {name:?}: {c:?} is listed twice."),
                    );
                }
                seen.push(c);
            }
            if checks.is_empty() {
                problem(
                    "checks",
                    format!(
                        "Exemption {name:?} waives no check; list \"tags\", \"ingress\" or both, or leave checks unset for both."
                    ),
                );
            }
        }
        for field in ["reason", "owner"] {
            if known(field)
                .and_then(Value::as_str)
                .is_some_and(|s| s.trim().is_empty())
            {
                let what = match field {
                    "reason" => "a reason: say why the resources are exempt",
                    _ => "an owner: say who answers for it (an e-mail or a team)",
                };
                problem(field, format!("Exemption {name:?} needs {what}."));
            }
        }
        if let Some(expires) = known("expires").and_then(Value::as_str) {
            match parse_date(expires) {
                None => problem(
                    "expires",
                    format!("Exemption {name:?}: expires {expires:?} is not a date written YYYY-MM-DD."),
                ),
                Some(date) if date < today => problem(
                    "expires",
                    format!(
                        "Exemption {name:?} expired on {expires} (today is {today}, UTC). Renew it with a later date and a fresh reason, or remove the block."
                    ),
                ),
                Some(date) if (date - today).whole_days() > max_days => problem(
                    "expires",
                    format!(
                        "Exemption {name:?} expires on {expires}, {} days from today ({today}); at most {max_days} are allowed (max_exemption_days). Choose an earlier date, and renew it when it comes.",
                        (date - today).whole_days()
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn good() -> Vec<(&'static str, Value)> {
        vec![
            ("id", Value::string("legacy-db")),
            (
                "resources",
                Value::List(vec![Value::string("i-0abc123"), Value::string("sg-12ab")]),
            ),
            ("tag", Value::Null),
            ("checks", Value::Null),
            ("reason", Value::string("vendor appliance, replaced in Q2")),
            ("owner", Value::string("dba@example.com")),
            ("expires", Value::string("2027-03-31")),
        ]
    }

    fn with(mut pairs: Vec<(&'static str, Value)>, k: &'static str, v: Value) -> Value {
        pairs.retain(|(name, _)| *name != k);
        pairs.push((k, v));
        block(&pairs)
    }

    fn today() -> time::Date {
        time::macros::date!(2026 - 11 - 28)
    }

    fn problems(blocks: Vec<Value>) -> Problems {
        check(&Value::List(blocks), today(), 365)
    }

    #[test]
    fn a_complete_block_passes_and_becomes_the_scanners_exemption() {
        assert_eq!(problems(vec![block(&good())]), Problems::new());
        let b = ExemptionBlock::from_value(&block(&good())).expect("block");
        let e = b.to_exemption();
        assert_eq!(e.instances, ["i-0abc123"]);
        assert_eq!(e.groups, ["sg-12ab"]);
        assert_eq!(e.checks, [Check::Tags, Check::Ingress]);
        assert_eq!(ExemptionBlock::from_exemption(&e), b);
        assert_eq!(ExemptionBlock::from_value(&b.to_value()), Some(b));
    }

    #[test]
    fn each_problem_names_the_exemption_and_the_fix_at_its_attribute() {
        let cases = [
            (
                with(good(), "reason", Value::string(" ")),
                "reason",
                "needs a reason",
            ),
            (
                with(good(), "owner", Value::string("")),
                "owner",
                "needs an owner",
            ),
            (
                with(good(), "expires", Value::string("2026-11-27")),
                "expires",
                "expired on 2026-11-27",
            ),
            (
                with(good(), "expires", Value::string("31/03/2027")),
                "expires",
                "YYYY-MM-DD",
            ),
            (
                with(good(), "expires", Value::string("2027-11-29")),
                "expires",
                "366 days",
            ),
            (
                with(good(), "checks", Value::List(vec![Value::string("ports")])),
                "checks",
                "unknown check \"ports\"",
            ),
            (
                with(
                    good(),
                    "resources",
                    Value::List(vec![Value::string("vol-1")]),
                ),
                "resources",
                "neither an instance id",
            ),
            (
                with(good(), "resources", Value::Null),
                "resources",
                "covers nothing",
            ),
            (
                with(good(), "id", Value::string("has space")),
                "id",
                "letters, digits",
            ),
        ];
        for (b, attr, want) in cases {
            let p = problems(vec![b]);
            assert_eq!(p.len(), 1, "{want}: {p:?}");
            assert_eq!(
                p[0].0,
                AttrPath::attr(BLOCK).index(0).then_attr(attr),
                "{want}"
            );
            assert!(
                p[0].1.contains(want) && p[0].1.contains("legacy-db") || attr == "id",
                "{want}: {}",
                p[0].1
            );
        }
        // The expiry boundaries: today and exactly max_exemption_days ahead are fine.
        assert!(problems(vec![with(good(), "expires", Value::string("2026-11-28"))]).is_empty());
        assert!(problems(vec![with(good(), "expires", Value::string("2027-11-28"))]).is_empty());
        // A tag selector alone covers instances.
        let mut by_tag = good();
        by_tag.retain(|(k, _)| *k != "resources" && *k != "tag");
        by_tag.push((
            "tag",
            Value::Map(BTreeMap::from([(
                "Team".to_string(),
                Value::string("legacy"),
            )])),
        ));
        assert!(problems(vec![block(&by_tag)]).is_empty());
        // Ids are unique.
        let twice = problems(vec![block(&good()), block(&good())]);
        assert!(
            twice.len() == 1 && twice[0].1.contains("used twice"),
            "{twice:?}"
        );
    }
}
