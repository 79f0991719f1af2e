//! Checks on configuration values, run before any AWS call. Each returns the detail of the error:
//! what is wrong and how to fix it.

use crate::desired::names::MAX_SUFFIX_LEN;

/// Retention periods CloudWatch Logs accepts, in days.
pub const LOG_RETENTION_DAYS: [i64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Lambda memory limits in MB.
pub const LAMBDA_MEMORY_MB: (i64, i64) = (128, 10240);
/// Days before results move to Glacier: at least 2, so the reporter can still read the
/// previous day's scans and report (S3 moves an object at the first midnight UTC after N days).
pub const GLACIER_DAYS: (i64, i64) = (2, 36500);
/// Lambda timeout limits in seconds.
pub const LAMBDA_TIMEOUT_SECONDS: (i64, i64) = (1, 900);

/// The suffix must give a valid S3 bucket name and Lambda/IAM names within 64 characters.
pub fn environment_suffix(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("The suffix is empty. Set a short name such as \"dev\" or \"prod-eu\".".into());
    }
    if s.len() > MAX_SUFFIX_LEN {
        return Err(format!(
            "The suffix is {} characters; at most {MAX_SUFFIX_LEN} fit, since \"compliance-reporter-<suffix>\" \
             names a Lambda function and an IAM role, which allow 64. Use a shorter suffix.",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "The suffix contains {c:?}. It becomes part of the S3 bucket name \"compliance-results-{s}\", \
             which allows only lowercase letters, digits and hyphens. Use those only."
        ));
    }
    if s.ends_with('-') {
        return Err(format!(
            "The suffix ends with a hyphen, so the bucket name \"compliance-results-{s}\" would too; \
             S3 bucket names must end with a letter or digit."
        ));
    }
    for reserved in ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"] {
        if s.ends_with(reserved) {
            return Err(format!(
                "The suffix ends with {reserved:?}, which S3 reserves at the end of bucket names. Choose another."
            ));
        }
    }
    Ok(())
}

/// A plausible e-mail address: one `@`, a local part, a dotted domain, no spaces.
pub fn email(s: &str) -> Result<(), String> {
    let fix = "Set alert_email to an address such as \"team@example.com\".";
    let Some((local, domain)) = s.split_once('@') else {
        return Err(format!("{s:?} has no \"@\". {fix}"));
    };
    let ok = !local.is_empty()
        && local.len() <= 64
        && s.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not an e-mail address. {fix}"))
    }
}

/// An EventBridge schedule: `rate(N unit)` or a 6-field `cron(...)`.
pub fn schedule(s: &str) -> Result<(), String> {
    let fix = "Use rate(N minutes|hours|days), e.g. \"rate(6 hours)\", or a 6-field cron(...), e.g. \"cron(0 0 * * ? *)\".";
    if let Some(inner) = s.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut parts = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{s:?} is not \"rate(N unit)\". {fix}"));
        };
        let n: u64 = match n.parse() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(format!(
                    "{s:?}: the rate must be a whole number above 0. {fix}"
                ))
            }
        };
        let (singular, plural, most) = match unit.trim_end_matches('s') {
            "minute" => ("minute", "minutes", 365 * 24 * 60),
            "hour" => ("hour", "hours", 365 * 24),
            "day" => ("day", "days", 365),
            _ => {
                return Err(format!(
                    "{s:?}: unit {unit:?} is not minute(s), hour(s) or day(s). {fix}"
                ))
            }
        };
        // A schedule rarer than yearly watches nothing; the bound also keeps every figure
        // derived from the interval (analyse's "two intervals") within range.
        if n > most {
            return Err(format!(
                "{s:?}: at most {most} {plural} (a year) between runs. {fix}"
            ));
        }
        // EventBridge insists on "1 hour" and "6 hours".
        let want = if n == 1 { singular } else { plural };
        if unit != want {
            return Err(format!(
                "{s:?}: write \"rate({n} {want})\"; EventBridge rejects \"{n} {unit}\"."
            ));
        }
        return Ok(());
    }
    if let Some(inner) = s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!(
                "{s:?} has {} fields; EventBridge cron takes 6 (minutes hours day-of-month month day-of-week year). {fix}",
                fields.len()
            ));
        }
        let allowed = |f: &str| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || ",-*/?LW#".contains(c))
        };
        if let Some(bad) = fields.iter().find(|f| !allowed(f)) {
            return Err(format!(
                "{s:?}: field {bad:?} has characters cron does not allow. {fix}"
            ));
        }
        if (fields[2] == "?") == (fields[4] == "?") {
            return Err(format!(
                "{s:?}: exactly one of day-of-month (3rd field) and day-of-week (5th field) must be \"?\". {fix}"
            ));
        }
        return Ok(());
    }
    Err(format!("{s:?} is neither rate(...) nor cron(...). {fix}"))
}

/// A retention CloudWatch Logs accepts.
pub fn log_retention(days: i64) -> Result<(), String> {
    if LOG_RETENTION_DAYS.contains(&days) {
        Ok(())
    } else {
        let list: Vec<String> = LOG_RETENTION_DAYS.iter().map(i64::to_string).collect();
        Err(format!(
            "CloudWatch Logs does not accept {days} days. Use one of: {}.",
            list.join(", ")
        ))
    }
}

/// A whole number within `lo..=hi`.
pub fn in_range(n: i64, (lo, hi): (i64, i64), what: &str) -> Result<(), String> {
    if (lo..=hi).contains(&n) {
        Ok(())
    } else {
        Err(format!(
            "{n} is outside {what}'s limits; use a value from {lo} to {hi}."
        ))
    }
}

/// A bucket name S3 accepts (its general-purpose bucket naming rules).
pub fn bucket_name(name: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{name:?} is not a valid S3 bucket name: {why}."));
    if !(3..=63).contains(&name.len()) {
        return fail("it must be 3 to 63 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return fail("use only lowercase letters, digits, dots and hyphens");
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return fail("it must begin and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("it must not hold two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("it must not be an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return fail(&format!("S3 reserves the prefix {prefix:?}"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return fail(&format!("S3 reserves the suffix {suffix:?}"));
        }
    }
    Ok(())
}

/// The stack's own tag keys, which it sets on every piece.
pub const OWN_TAG_KEYS: [&str; 2] = ["ManagedBy", crate::aws::STACK_TAG];

/// Most tags a piece may carry: 50 for every service the stack tags (S3, SNS, IAM, Lambda,
/// CloudWatch Logs, EventBridge, CloudWatch).
pub const MAX_TAGS: usize = 50;

/// The user's tags and the provider's `default_tags` (those not among the user's), with the
/// stack's own two, must fit on a piece.
pub fn tag_count(user: usize, defaults_beside: usize) -> Result<(), String> {
    let total = user + defaults_beside + OWN_TAG_KEYS.len();
    if total > MAX_TAGS {
        return Err(format!(
            "Every piece would carry {total} tags ({user} from tags, {defaults_beside} from the \
             provider's default_tags and the stack's own {}); AWS allows {MAX_TAGS} per resource. \
             Remove {} tags.",
            OWN_TAG_KEYS.len(),
            total - MAX_TAGS
        ));
    }
    Ok(())
}

/// Tag text every tagged service accepts: letters, digits, spaces and `_ . : / = + - @`.
pub fn tag_text(text: &str, what: &str) -> Result<(), String> {
    match text
        .chars()
        .find(|c| !(c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(*c)))
    {
        Some(c) => Err(format!(
            "The {what} holds {c:?}, which AWS does not accept in tags (letters, digits, spaces \
             and _ . : / = + - @ are accepted). Remove or replace it."
        )),
        None => Ok(()),
    }
}

/// A tag key AWS accepts.
pub fn tag_key(k: &str) -> Result<(), String> {
    if k.trim().is_empty() {
        return Err("A tag key is empty or blank. Remove it or give it a name.".into());
    }
    if k.chars().count() > 128 {
        return Err(format!(
            "Tag key {k:?} is longer than AWS's 128 characters. Shorten it."
        ));
    }
    if k.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!(
            "Tag key {k:?} starts with \"aws:\", which AWS reserves. Rename it."
        ));
    }
    Ok(())
}

/// Validates a resource configuration: every attribute's check, as the model declares them.
/// Unknown values pass (they are checked when known, at apply's plan).
pub fn config(config: &crate::protocol::value::Value) -> crate::protocol::diag::Diagnostics {
    let mut d = crate::protocol::diag::Diagnostics::default();
    for def in super::model::attributes() {
        d.0.extend(def.validate(config).0);
    }
    d.0.extend(exemptions(config, today()));
    let listed = config
        .attr("member_accounts")
        .as_list()
        .is_some_and(|l| !l.is_empty());
    if listed && config.attr("organization_accounts").as_bool() == Some(true) {
        d.push(
            crate::protocol::diag::Diagnostic::error(
                "Conflicting member_accounts",
                "member_accounts lists accounts and organization_accounts = true scans every \
                 account of the organization: set one of them.",
            )
            .at(crate::protocol::diag::AttrPath::attr("member_accounts")),
        );
    }
    if d.0.is_empty() {
        d.0.extend(environment_fits(config));
    }
    d
}

/// Today in UTC: exemptions may not have expired and may not run longer than allowed.
fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// The `exemption` blocks, checked against `today` and `max_exemption_days`.
fn exemptions(
    config: &crate::protocol::value::Value,
    today: time::Date,
) -> Vec<crate::protocol::diag::Diagnostic> {
    let blocks = config.attr(super::exemption::BLOCK);
    let max_days = config.attr("max_exemption_days").as_i64().unwrap_or(365);
    super::exemption::check(blocks, today, max_days)
        .into_iter()
        .map(|(path, detail)| {
            crate::protocol::diag::Diagnostic::error("Invalid exemption", detail).at(path)
        })
        .collect()
}

/// The longest region name the check assumes (AWS's are at most 14 characters today), so the
/// check holds in any region, whichever the provider block or the environment picks.
const LONGEST_REGION: &str = "xx-xxxxxxxxxxxxxxx-9";

/// Lambda refuses an environment over 4 KB, which would fail an apply half way: the scanner's
/// environment, rendered as the stack will render it (with the longest partition and region), must
/// fit. Unknown values pass (checked at plan, when they are known).
fn environment_fits(
    config: &crate::protocol::value::Value,
) -> Option<crate::protocol::diag::Diagnostic> {
    use crate::aws::functions::Function;
    use crate::desired::{Account, ProviderSettings};
    use compliance_rules::contract::{environment_size, ENVIRONMENT_LIMIT_BYTES};
    let model = super::model::MonitorModel::from_value(config).ok()?;
    let d = super::resource::desired_from(
        &model,
        &ProviderSettings::default(),
        LONGEST_REGION,
        &Account::new("123456789012", "aws-us-gov"),
    );
    let size = environment_size(&Function::Scanner.environment(&d));
    (size > ENVIRONMENT_LIMIT_BYTES).then(|| {
        crate::protocol::diag::Diagnostic::error(
            "Invalid required_tags",
            format!(
                "The scanner's environment would be {size} bytes (required_tags, restricted_ports, \
                 exempt_tag_key and the exemption blocks are passed in it); Lambda allows \
                 {ENVIRONMENT_LIMIT_BYTES}. Shorten or remove tag keys, list fewer ports, or \
                 shorten exemptions (select by tag rather than by listing ids)."
            ),
        )
        .at(crate::protocol::diag::AttrPath::attr("required_tags"))
    })
}

/// The checks the model's declarations name: each adapts a rule above to a value and its path,
/// and reports every problem at the path of the offending element.
pub mod checks {
    use std::collections::BTreeSet;

    use crate::monitor::model::Problems;
    use crate::protocol::diag::AttrPath;
    use crate::protocol::value::Value;

    fn one(path: &AttrPath, result: Result<(), String>) -> Problems {
        result
            .err()
            .map(|e| (path.clone(), e))
            .into_iter()
            .collect()
    }

    fn text(v: &Value) -> &str {
        v.as_str().unwrap_or_default()
    }

    fn whole(
        v: &Value,
        path: &AttrPath,
        check: impl FnOnce(i64) -> Result<(), String>,
    ) -> Problems {
        match v.as_i64() {
            Some(n) => one(path, check(n)),
            None => {
                let name = match path.0.first() {
                    Some(crate::protocol::diag::Step::Attr(name)) => name.as_str(),
                    _ => "the value",
                };
                vec![(path.clone(), format!("{name} must be a whole number."))]
            }
        }
    }

    pub fn suffix(v: &Value, at: &AttrPath) -> Problems {
        one(at, super::environment_suffix(text(v)))
    }

    pub fn bucket_name(v: &Value, at: &AttrPath) -> Problems {
        one(at, super::bucket_name(text(v)))
    }

    /// Region names, or `*` alone; no duplicates.
    pub fn scan_regions(v: &Value, at: &AttrPath) -> Problems {
        let items: Vec<&str> = v
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if items.is_empty() && v.as_list().is_some_and(<[Value]>::is_empty) {
            return vec![(
                at.clone(),
                "Lists no region: name regions, use [\"*\"] for every enabled region, or leave \
                 scan_regions unset for the provider's region."
                    .into(),
            )];
        }
        let mut out = Problems::new();
        if items.contains(&"*") && items.len() > 1 {
            out.push((
                at.clone(),
                "\"*\" means every enabled region and stands alone; remove the other names.".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, r) in items.iter().enumerate() {
            let shaped = r.split('-').count() >= 3
                && r.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && r.ends_with(|c: char| c.is_ascii_digit());
            if *r != "*" && !shaped {
                out.push((
                    at.clone().index(i),
                    format!("{r:?} is not a region name (e.g. \"eu-west-1\") or \"*\"."),
                ));
            } else if !seen.insert(*r) {
                out.push((at.clone().index(i), format!("{r:?} is listed twice.")));
            }
        }
        out
    }

    /// 12-digit account ids, no duplicates.
    pub fn member_accounts(v: &Value, at: &AttrPath) -> Problems {
        let mut out = Problems::new();
        let mut seen = BTreeSet::new();
        for (i, id) in v
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .enumerate()
        {
            if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                out.push((
                    at.clone().index(i),
                    format!("{id:?} is not an AWS account id (12 digits)."),
                ));
            } else if !seen.insert(id) {
                out.push((at.clone().index(i), format!("{id:?} is listed twice.")));
            }
        }
        out
    }

    /// An IAM role name: 1-64 of letters, digits and `+=,.@_-`.
    pub fn role_name(v: &Value, at: &AttrPath) -> Problems {
        let name = text(v);
        let ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        one(
            at,
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{name:?} is not an IAM role name: 1 to 64 letters, digits and + = , . @ _ -."
                ))
            },
        )
    }

    /// An STS external id: 2-1224 of letters, digits and `+=,.@:/_-`.
    pub fn external_id(v: &Value, at: &AttrPath) -> Problems {
        let id = text(v);
        let ok = (2..=1224).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c));
        one(
            at,
            if ok {
                Ok(())
            } else {
                Err("An external id is 2 to 1224 letters, digits and + = , . @ : / _ -.".into())
            },
        )
    }

    pub fn concurrency(v: &Value, at: &AttrPath) -> Problems {
        whole(v, at, |n| super::in_range(n, (1, 64), "scan_concurrency"))
    }

    pub fn exemption_days(v: &Value, at: &AttrPath) -> Problems {
        whole(v, at, |n| {
            super::in_range(n, (1, 3650), "max_exemption_days")
        })
    }

    pub fn email(v: &Value, at: &AttrPath) -> Problems {
        one(at, super::email(text(v)))
    }

    pub fn schedule(v: &Value, at: &AttrPath) -> Problems {
        one(at, super::schedule(text(v)))
    }

    pub fn tag_key(v: &Value, at: &AttrPath) -> Problems {
        one(at, super::tag_key(text(v)))
    }

    pub fn retention(v: &Value, at: &AttrPath) -> Problems {
        whole(v, at, super::log_retention)
    }

    pub fn glacier_days(v: &Value, at: &AttrPath) -> Problems {
        whole(v, at, |n| {
            super::in_range(n, super::GLACIER_DAYS, "the Glacier transition (days)").map_err(|e| {
                if n < super::GLACIER_DAYS.0 && n >= 0 {
                    format!(
                        "{e} The daily reporter reads the previous day's scans and report; S3 \
                         moves objects N days after they are written, at the next midnight UTC, so \
                         fewer than {} days would archive what it still has to read.",
                        super::GLACIER_DAYS.0
                    )
                } else {
                    e
                }
            })
        })
    }

    pub fn memory(v: &Value, at: &AttrPath) -> Problems {
        whole(v, at, |n| {
            super::in_range(n, super::LAMBDA_MEMORY_MB, "Lambda memory (MB)")
        })
    }

    pub fn timeout(v: &Value, at: &AttrPath) -> Problems {
        whole(v, at, |n| {
            super::in_range(n, super::LAMBDA_TIMEOUT_SECONDS, "Lambda timeout (seconds)")
        })
    }

    /// Not empty (every instance would pass), each a valid key, no duplicates; each error
    /// points at its element.
    pub fn required_tags(v: &Value, at: &AttrPath) -> Problems {
        let items = v.elements();
        let mut out = Problems::new();
        if matches!(v, Value::List(_)) && items.is_empty() {
            out.push((
                at.clone(),
                "required_tags is empty, so every instance would pass. List at least one key, e.g. \
                 [\"Owner\"], or leave the attribute out for the defaults."
                    .into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let Some(key) = item.as_str() else { continue };
            let at = at.clone().index(i);
            if let Err(detail) = super::tag_key(key) {
                out.push((at, detail));
            } else if !seen.insert(key) {
                out.push((
                    at,
                    format!("{key:?} is listed twice. Remove the duplicate."),
                ));
            }
        }
        out
    }

    /// Each a port, no duplicates; each error points at its element.
    pub fn ports(v: &Value, at: &AttrPath) -> Problems {
        let mut out = Problems::new();
        let mut seen = BTreeSet::new();
        for (i, item) in v.elements().iter().enumerate() {
            if item.is_unknown() {
                continue;
            }
            let at = at.clone().index(i);
            match item.as_i64() {
                Some(p) if (0..=65535).contains(&p) => {
                    if !seen.insert(p) {
                        out.push((
                            at,
                            format!("Port {p} is listed twice. Remove the duplicate."),
                        ));
                    }
                }
                _ => out.push((
                    at,
                    format!(
                        "{} is not a port. Ports are whole numbers from 0 to 65535.",
                        match item {
                            Value::Number(n) => n.to_string(),
                            _ => "null".into(),
                        }
                    ),
                )),
            }
        }
        out
    }

    /// Each key valid, each value within AWS's 256 characters and the characters every tagged
    /// service accepts, not one of the stack's own keys, and few enough that the stack's own
    /// fit beside them; each error points at its key.
    pub fn tags(v: &Value, at: &AttrPath) -> Problems {
        let mut out = Problems::new();
        let entries = v.entries().into_iter().flatten();
        let mut count = 0;
        for (key, value) in entries {
            count += 1;
            let at = at.clone().key(key);
            let value = value.as_str().unwrap_or_default();
            if let Err(detail) = super::tag_key(key) {
                out.push((at, detail));
            } else if let Err(detail) = super::tag_text(key, "key") {
                out.push((at, detail));
            } else if super::OWN_TAG_KEYS.contains(&key.as_str()) {
                out.push((
                    at,
                    format!(
                        "Tag {key:?} is the stack's own (it marks what the stack made). Remove it."
                    ),
                ));
            } else if value.chars().count() > 256 {
                out.push((
                    at,
                    format!(
                        "The value of tag {key:?} is longer than AWS's 256 characters. Shorten it."
                    ),
                ));
            } else if let Err(detail) = super::tag_text(value, &format!("value of tag {key:?}")) {
                out.push((at, detail));
            }
        }
        if let Err(detail) = super::tag_count(count, 0) {
            out.push((at.clone(), detail));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_tags_keep_within_every_services_limits() {
        use crate::protocol::diag::AttrPath;
        use crate::protocol::value::Value;
        let tags = |pairs: Vec<(String, &str)>| {
            Value::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Value::string(v)))
                    .collect(),
            )
        };
        let problems = |v| checks::tags(&v, &AttrPath::attr("tags"));
        assert!(problems(tags(vec![("Team".into(), "sec-ops@example.com")])).is_empty());
        let many = |n: usize| tags((0..n).map(|i| (format!("k{i}"), "v")).collect());
        assert!(problems(many(48)).is_empty());
        let over = problems(many(49));
        assert_eq!(over.len(), 1, "{over:?}");
        assert!(
            over[0].1.contains("51 tags") && over[0].1.contains("Remove 1"),
            "{over:?}"
        );
        for (key, value, why) in [
            ("Team", "a;b", "';'"),
            ("Team#1", "x", "'#'"),
            ("ComplianceStack", "x", "the stack's own"),
            ("ManagedBy", "x", "the stack's own"),
        ] {
            let p = problems(tags(vec![(key.into(), value)]));
            assert!(p.len() == 1 && p[0].1.contains(why), "{key}={value}: {p:?}");
        }
        assert!(tag_count(30, 18).is_ok());
        assert!(tag_count(30, 19)
            .unwrap_err()
            .contains("from the provider's default_tags"));
    }

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["compliance-results-dev", "abc", "a.b-c.1", &"a".repeat(63)] {
            assert!(bucket_name(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("ab", "3 to 63"),
            (&"a".repeat(64), "3 to 63"),
            ("Compliance", "lowercase"),
            ("under_score", "lowercase"),
            ("-abc", "begin and end"),
            ("abc.", "begin and end"),
            ("a..b", "two dots"),
            ("192.168.1.1", "IP address"),
            ("xn--abc", "prefix"),
            ("results-s3alias", "suffix"),
        ] {
            let e = bucket_name(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn suffixes() {
        assert!(environment_suffix("dev").is_ok());
        assert!(environment_suffix("prod-eu-1").is_ok());
        assert!(environment_suffix(&"a".repeat(44)).is_ok());
        for bad in [
            "",
            "Dev",
            "dev_1",
            "dev.1",
            "dev-",
            &"a".repeat(45),
            "x-s3alias",
            "a b",
        ] {
            assert!(environment_suffix(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails() {
        assert!(email("compliance-team@example.com").is_ok());
        assert!(email("a.b+c@sub.example.org").is_ok());
        for bad in [
            "",
            "team",
            "team@",
            "@example.com",
            "team@example",
            "a b@example.com",
            "a@@b.com",
            "a@b..com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn schedules() {
        for ok in [
            "rate(6 hours)",
            "rate(1 hour)",
            "rate(5 minutes)",
            "rate(1 day)",
            "cron(0 0 * * ? *)",
            "cron(0/15 * ? * MON-FRI *)",
        ] {
            assert!(schedule(ok).is_ok(), "{ok:?} refused: {:?}", schedule(ok));
        }
        for bad in [
            "",
            "every 6 hours",
            "rate(6 hour)",
            "rate(1 hours)",
            "rate(0 hours)",
            "rate(6 weeks)",
            "cron(0 0 * * *)",
            "cron(0 0 * * * *)",
            "cron(0 0 ? * ? *)",
            "rate(six hours)",
        ] {
            assert!(schedule(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// A rate is at most a year, whatever the unit; beyond that the error says the bound (and
    /// no figure derived from the interval can overflow).
    #[test]
    fn rates_are_at_most_a_year() {
        for ok in ["rate(365 days)", "rate(8760 hours)", "rate(525600 minutes)"] {
            assert!(schedule(ok).is_ok(), "{ok:?} refused: {:?}", schedule(ok));
        }
        for bad in [
            "rate(366 days)",
            "rate(8761 hours)",
            "rate(525601 minutes)",
            "rate(18446744073709551615 days)",
        ] {
            let e = schedule(bad).expect_err(bad);
            assert!(
                e.contains("a year") || e.contains("whole number"),
                "{bad}: {e}"
            );
        }
    }

    /// Fewer than 2 days would archive what the reporter reads next; the error says why.
    #[test]
    fn glacier_days_leave_the_reporter_what_it_reads() {
        use crate::protocol::diag::AttrPath;
        use crate::protocol::value::Value;
        let at = AttrPath::attr("glacier_transition_days");
        assert!(checks::glacier_days(&Value::int(2), &at).is_empty());
        assert!(checks::glacier_days(&Value::int(90), &at).is_empty());
        for days in [0, 1] {
            let problems = checks::glacier_days(&Value::int(days), &at);
            assert_eq!(problems.len(), 1);
            assert!(problems[0].1.contains("reporter"), "{}", problems[0].1);
        }
        assert!(!checks::glacier_days(&Value::int(-1), &at).is_empty());
        assert!(!checks::glacier_days(&Value::int(36501), &at).is_empty());
    }

    /// An environment over Lambda's 4 KB is refused at validate, naming the attribute; the
    /// defaults fit with room to spare.
    #[test]
    fn the_scanner_environment_must_fit_in_4_kb() {
        use crate::monitor::model::MonitorModel;
        use crate::protocol::value::Value;
        let mut m = MonitorModel::defaults("prod");
        assert!(config(&m.to_value()).0.is_empty());
        m.required_tags = (0..40)
            .map(|i| format!("{}-{i}", "k".repeat(100)))
            .collect();
        let d = config(&m.to_value());
        assert_eq!(d.0.len(), 1, "{:?}", d.0);
        assert!(d.0[0].detail.contains("4096"), "{}", d.0[0].detail);
        assert_eq!(d.0[0].summary, "Invalid required_tags");
        // Unknown values are checked later, not refused.
        let Value::Object(mut attrs) = m.to_value() else {
            panic!("an object")
        };
        attrs.insert("required_tags".into(), Value::Unknown);
        assert!(config(&Value::Object(attrs)).0.is_empty());
    }

    #[test]
    fn retention_list() {
        assert!(log_retention(30).is_ok());
        assert!(log_retention(3653).is_ok());
        assert!(log_retention(31).is_err());
        assert!(log_retention(0).is_err());
    }

    #[test]
    fn tag_keys() {
        assert!(tag_key("Owner").is_ok());
        assert!(tag_key(" ").is_err());
        assert!(tag_key("aws:foo").is_err());
        assert!(tag_key(&"k".repeat(129)).is_err());
    }
}
