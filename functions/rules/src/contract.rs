//! The contract between the provider and the two functions: the names of the environment
//! variables, how each value is written, and the defaults when one is unset.
//!
//! The provider renders a function's environment with [`ScannerSettings::render`] or
//! [`ReporterSettings::render`]; the functions read it back with the `from_vars` of the same type,
//! and the provider's import reads it back with [`decode_rules`]. Nothing else spells a variable's
//! name or its encoding.
//!
//! Encoding rules:
//!
//! - **Unset or blank** means the default ([`DEFAULT_REQUIRED_TAGS`], ...).
//! - **Lists** (`REQUIRED_TAGS`, `RESTRICTED_PORTS`, `SCAN_REGIONS`) are a JSON array
//!   (`["Owner","Cost, Center"]`, `[]`) or a comma-separated list (`Owner,CostCenter`), told apart
//!   by the leading `[`. The comma form is what a person types: items are trimmed and empty ones
//!   dropped. The JSON form is exact. [`encode_strings`] writes the comma form when it reads back
//!   the same (so the common settings stay readable in the console and a stack deployed before the
//!   JSON form plans no change) and JSON otherwise: an empty list, a key with a comma, with
//!   surrounding white space, or a first key starting with `[`.
//! - **An explicit empty list means empty**: `RESTRICTED_PORTS=[]` leaves only the all-ports and
//!   all-protocols world-open rules as violations.
//! - **Single values** are taken as written; `EXEMPT_TAG_KEY` keeps surrounding spaces, since EC2
//!   allows them in a key. Names and ARNs (bucket, topic, stack, namespace) are trimmed.
//! - **Account ids** (`BUCKET_OWNER`) are trimmed and then exactly 12 ASCII digits; anything else
//!   is refused rather than sent to S3, where a wrong owner would refuse every request.
//! - **Exemptions** (`EXEMPTIONS`) are a compact JSON array of [`Exemption`] objects in its field
//!   names; unset, blank or `[]` is none, and the provider writes the variable only when there is
//!   one. A value that does not parse, or an exemption that [`crate::exemptions::validate`]
//!   refuses (no id, no check, covering nothing, a date that is not `YYYY-MM-DD`, an id used
//!   twice), is refused naming the variable: a scan never runs with half its exemptions.

use std::collections::BTreeMap;
use std::fmt;

use crate::exemptions::{self, Exemption};
use crate::result::ScanSettings;

/// The results bucket (both functions).
pub const BUCKET_NAME: &str = "BUCKET_NAME";
/// The account that must own the results bucket (both functions): 12 digits. Every S3 request
/// sends it as `ExpectedBucketOwner`, so a bucket of that name in another account (names are
/// global) answers 403 instead of being read or written. Unset, no check: a local run against a
/// bucket whose owner is not known.
pub const BUCKET_OWNER: &str = "BUCKET_OWNER";
/// The SNS topic for alerts and the daily summary (both functions); none, no message.
pub const TOPIC_ARN: &str = "TOPIC_ARN";
/// The stack's name (both functions).
pub const STACK_NAME: &str = "STACK_NAME";
/// Required tag keys (scanner): a list.
pub const REQUIRED_TAGS: &str = "REQUIRED_TAGS";
/// Ports that must not be open to the world (scanner): a list.
pub const RESTRICTED_PORTS: &str = "RESTRICTED_PORTS";
/// The exempting tag key (scanner).
pub const EXEMPT_TAG_KEY: &str = "EXEMPT_TAG_KEY";
/// Regions to scan (scanner): a list.
pub const SCAN_REGIONS: &str = "SCAN_REGIONS";
/// CloudWatch namespace of the scanner's metrics.
pub const METRIC_NAMESPACE: &str = "METRIC_NAMESPACE";
/// The configured exemptions (scanner): a JSON array of [`Exemption`].
pub const EXEMPTIONS: &str = "EXEMPTIONS";

/// Every variable the scanner reads.
pub const SCANNER_VARIABLES: [&str; 10] = [
    BUCKET_NAME,
    BUCKET_OWNER,
    TOPIC_ARN,
    STACK_NAME,
    REQUIRED_TAGS,
    RESTRICTED_PORTS,
    EXEMPT_TAG_KEY,
    SCAN_REGIONS,
    METRIC_NAMESPACE,
    EXEMPTIONS,
];

/// Every variable the reporter reads.
pub const REPORTER_VARIABLES: [&str; 4] = [BUCKET_NAME, BUCKET_OWNER, TOPIC_ARN, STACK_NAME];

/// Required tag keys when none are configured.
pub const DEFAULT_REQUIRED_TAGS: [&str; 3] = ["Environment", "Owner", "CostCenter"];

/// Ports that must not be open to the world when none are configured (the rules page's list).
pub const DEFAULT_RESTRICTED_PORTS: [u16; 16] = [
    20, 21, 22, 23, 25, 445, 1433, 1521, 3306, 3389, 5432, 5900, 6379, 9200, 11211, 27017,
];

/// Tag key that exempts an instance when none is configured.
pub const DEFAULT_EXEMPT_TAG_KEY: &str = "ComplianceExempt";

/// Metric namespace when `METRIC_NAMESPACE` is unset.
pub const DEFAULT_METRIC_NAMESPACE: &str = "ComplianceMonitoring";

/// Stack name when `STACK_NAME` is unset (a local run outside any stack).
pub const DEFAULT_STACK_NAME: &str = "local";

/// Lambda's limit on a function's environment, in bytes as [`environment_size`] counts them.
pub const ENVIRONMENT_LIMIT_BYTES: usize = 4096;

/// A variable whose value cannot be read, or a required one that is unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractError {
    /// The variable.
    pub variable: &'static str,
    /// What is wrong, naming the variable.
    pub message: String,
}

impl ContractError {
    fn new(variable: &'static str, message: String) -> ContractError {
        ContractError { variable, message }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ContractError {}

/// The value when it holds more than white space.
fn set(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// A name or ARN: trimmed, `None` when unset or blank.
fn name(value: Option<String>) -> Option<String> {
    set(value).map(|v| v.trim().to_string())
}

/// Reads an AWS account id: `None` when unset or blank, else the trimmed value, which must be
/// exactly 12 ASCII digits.
pub fn decode_account(
    variable: &'static str,
    value: Option<String>,
) -> Result<Option<String>, ContractError> {
    let Some(id) = name(value) else {
        return Ok(None);
    };
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Some(id))
    } else {
        Err(ContractError::new(
            variable,
            format!("{variable}: `{id}` is not an AWS account id (12 digits)"),
        ))
    }
}

/// Whether `items` joined by commas reads back as the same list.
fn comma_safe(items: &[String]) -> bool {
    items.first().is_some_and(|first| !first.starts_with('['))
        && items
            .iter()
            .all(|k| !k.is_empty() && !k.contains(',') && k.trim() == k)
}

/// Writes a list of strings (tag keys, regions) so that [`decode_strings`] reads back exactly the
/// same list: comma-separated when that is lossless, else a JSON array.
pub fn encode_strings(items: &[String]) -> String {
    if comma_safe(items) {
        items.join(",")
    } else {
        serde_json::to_string(items).expect("a list of strings serialises")
    }
}

/// Reads a list of strings: `None` when blank (the default applies), a JSON array exactly, a
/// comma-separated list trimmed and without empty items.
pub fn decode_strings(
    variable: &'static str,
    raw: &str,
) -> Result<Option<Vec<String>>, ContractError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.starts_with('[') {
        // EC2 allows `[` in a tag key: a first key starting with it is written as JSON, never
        // guessed at.
        return serde_json::from_str(text).map(Some).map_err(|e| {
            ContractError::new(
                variable,
                format!("{variable}: `{raw}` is not a JSON array of strings ({e})"),
            )
        });
    }
    Ok(Some(
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

/// Writes a list of ports: comma-separated, or `[]` for the empty list (which a blank value could
/// not say: blank means the default).
pub fn encode_ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        "[]".to_string()
    } else {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Reads a list of ports (0-65535): `None` when blank, else a JSON array or a comma-separated list.
pub fn decode_ports(variable: &'static str, raw: &str) -> Result<Option<Vec<u16>>, ContractError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.starts_with('[') {
        return serde_json::from_str(text).map(Some).map_err(|_| {
            ContractError::new(
                variable,
                format!("{variable}: `{raw}` is not a JSON array of ports (0-65535)"),
            )
        });
    }
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| {
            p.parse::<u16>().map_err(|_| {
                ContractError::new(
                    variable,
                    format!("{variable}: `{p}` is not a port (0-65535)"),
                )
            })
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Writes exemptions as `EXEMPTIONS` holds them: compact JSON in [`Exemption`]'s field names.
pub fn encode_exemptions(exemptions: &[Exemption]) -> String {
    serde_json::to_string(exemptions).expect("exemptions serialise")
}

/// Reads `EXEMPTIONS`: none when blank or `[]`, else a JSON array of valid exemptions with
/// distinct ids, in the order written.
pub fn decode_exemptions(raw: &str) -> Result<Vec<Exemption>, ContractError> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<Exemption> = serde_json::from_str(text).map_err(|e| {
        ContractError::new(
            EXEMPTIONS,
            format!("{EXEMPTIONS}: not a JSON array of exemptions ({e})"),
        )
    })?;
    exemptions::validate(&list)
        .map_err(|why| ContractError::new(EXEMPTIONS, format!("{EXEMPTIONS}: {why}")))?;
    Ok(list)
}

/// The rule settings from `var` (a variable's value by name), each unset one at its default, in
/// the order written: nothing sorted or removed. The provider's import uses this to rebuild the
/// configuration; the scanner takes [`ScanSettings::canonical`] of it.
pub fn decode_rules(var: impl Fn(&str) -> Option<String>) -> Result<ScanSettings, ContractError> {
    let mut rules = ScanSettings::default();
    if let Some(raw) = var(REQUIRED_TAGS) {
        if let Some(tags) = decode_strings(REQUIRED_TAGS, &raw)? {
            rules.required_tags = tags;
        }
    }
    if let Some(raw) = var(RESTRICTED_PORTS) {
        if let Some(ports) = decode_ports(RESTRICTED_PORTS, &raw)? {
            rules.restricted_ports = ports;
        }
    }
    if let Some(key) = var(EXEMPT_TAG_KEY).and_then(|raw| decode_key(&raw)) {
        rules.exempt_tag_key = key;
    }
    if let Some(raw) = var(EXEMPTIONS) {
        rules.exemptions = decode_exemptions(&raw)?;
    }
    Ok(rules)
}

/// Reads a tag key: `None` when blank (the default applies), else exactly as written.
pub fn decode_key(raw: &str) -> Option<String> {
    (!raw.trim().is_empty()).then(|| raw.to_string())
}

/// Writes the rule settings' variables: `EXEMPTIONS` only when there is one.
fn render_rules(rules: &ScanSettings, env: &mut BTreeMap<String, String>) {
    env.insert(
        REQUIRED_TAGS.to_string(),
        encode_strings(&rules.required_tags),
    );
    env.insert(
        RESTRICTED_PORTS.to_string(),
        encode_ports(&rules.restricted_ports),
    );
    env.insert(EXEMPT_TAG_KEY.to_string(), rules.exempt_tag_key.clone());
    if !rules.exemptions.is_empty() {
        env.insert(EXEMPTIONS.to_string(), encode_exemptions(&rules.exemptions));
    }
}

/// The size of an environment as Lambda measures it against [`ENVIRONMENT_LIMIT_BYTES`]: the
/// variables as one JSON object (`{"KEY":"value",...}`), in bytes. Lambda's refusal quotes this
/// form ("String measured: {...}"); it is also the larger of the usual counts, so an environment
/// within it is within the limit however the quotes and separators are counted.
pub fn environment_size(env: &BTreeMap<String, String>) -> usize {
    serde_json::to_string(env)
        .expect("a map of strings serialises")
        .len()
}

/// The scanner's settings: what the provider configures and what one scan applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannerSettings {
    /// Bucket that receives the scan result.
    pub bucket: String,
    /// The account that must own the bucket (sent as `ExpectedBucketOwner`); `None`, no check.
    pub bucket_owner: Option<String>,
    /// Topic for the alert, if any.
    pub topic_arn: Option<String>,
    /// The rule settings.
    pub rules: ScanSettings,
    /// Regions to scan; never empty once read.
    pub regions: Vec<String>,
    /// CloudWatch namespace.
    pub metric_namespace: String,
    /// Stack name: the metrics' `Stack` dimension and the result's `stack`.
    pub stack: String,
}

impl ScannerSettings {
    /// Reads the settings from `var` (a variable's value by name); `default_region` is scanned
    /// when `SCAN_REGIONS` is unset. The rules are made canonical (see [`ScanSettings::canonical`])
    /// and the regions sorted and deduplicated.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        default_region: Option<&str>,
    ) -> Result<ScannerSettings, ContractError> {
        let bucket = name(var(BUCKET_NAME)).ok_or_else(|| {
            ContractError::new(BUCKET_NAME, format!("no bucket: set {BUCKET_NAME}"))
        })?;
        let bucket_owner = decode_account(BUCKET_OWNER, var(BUCKET_OWNER))?;
        let rules = decode_rules(&var)?.canonical();
        let listed = match var(SCAN_REGIONS) {
            Some(raw) => decode_strings(SCAN_REGIONS, &raw)?,
            None => None,
        };
        let mut regions = match listed {
            Some(list) => list,
            None => default_region
                .map(|r| vec![r.to_string()])
                .unwrap_or_default(),
        };
        regions.sort();
        regions.dedup();
        if regions.is_empty() {
            return Err(ContractError::new(
                SCAN_REGIONS,
                format!("no region to scan: set {SCAN_REGIONS} or AWS_REGION"),
            ));
        }
        Ok(ScannerSettings {
            bucket,
            bucket_owner,
            topic_arn: name(var(TOPIC_ARN)),
            rules,
            regions,
            metric_namespace: name(var(METRIC_NAMESPACE))
                .unwrap_or_else(|| DEFAULT_METRIC_NAMESPACE.to_string()),
            stack: name(var(STACK_NAME)).unwrap_or_else(|| DEFAULT_STACK_NAME.to_string()),
        })
    }

    /// The scanner's environment: every variable set (the owner, the topic and the exemptions only
    /// when there is one), lists in the order given.
    pub fn render(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            (BUCKET_NAME.to_string(), self.bucket.clone()),
            (STACK_NAME.to_string(), self.stack.clone()),
            (SCAN_REGIONS.to_string(), encode_strings(&self.regions)),
            (METRIC_NAMESPACE.to_string(), self.metric_namespace.clone()),
        ]);
        if let Some(owner) = &self.bucket_owner {
            env.insert(BUCKET_OWNER.to_string(), owner.clone());
        }
        if let Some(topic) = &self.topic_arn {
            env.insert(TOPIC_ARN.to_string(), topic.clone());
        }
        render_rules(&self.rules, &mut env);
        env
    }
}

/// The reporter's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterSettings {
    /// The results bucket.
    pub bucket: String,
    /// The account that must own the bucket (sent as `ExpectedBucketOwner`); `None`, no check.
    pub bucket_owner: Option<String>,
    /// The topic for the daily summary; no message when absent.
    pub topic_arn: Option<String>,
    /// The stack's name: names the report's stack on a day without scans, whose report would
    /// otherwise say `unknown`.
    pub stack: Option<String>,
}

impl ReporterSettings {
    /// Reads the settings from `var` (a variable's value by name).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<ReporterSettings, ContractError> {
        Ok(ReporterSettings {
            bucket: name(var(BUCKET_NAME)).ok_or_else(|| {
                ContractError::new(BUCKET_NAME, format!("{BUCKET_NAME} is not set"))
            })?,
            bucket_owner: decode_account(BUCKET_OWNER, var(BUCKET_OWNER))?,
            topic_arn: name(var(TOPIC_ARN)),
            stack: name(var(STACK_NAME)),
        })
    }

    /// The reporter's environment (owner, topic and stack only when set).
    pub fn render(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([(BUCKET_NAME.to_string(), self.bucket.clone())]);
        if let Some(owner) = &self.bucket_owner {
            env.insert(BUCKET_OWNER.to_string(), owner.clone());
        }
        if let Some(topic) = &self.topic_arn {
            env.insert(TOPIC_ARN.to_string(), topic.clone());
        }
        if let Some(stack) = &self.stack {
            env.insert(STACK_NAME.to_string(), stack.clone());
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn lookup(env: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
        move |k: &str| env.get(k).cloned()
    }

    fn scanner() -> ScannerSettings {
        ScannerSettings {
            bucket: "compliance-results-prod".into(),
            bucket_owner: Some("123456789012".into()),
            topic_arn: Some("arn:aws:sns:us-east-1:123456789012:compliance-alerts-prod".into()),
            rules: ScanSettings::default(),
            regions: strings(&["us-east-1"]),
            metric_namespace: DEFAULT_METRIC_NAMESPACE.into(),
            stack: "prod".into(),
        }
    }

    fn exemption(id: &str) -> Exemption {
        Exemption {
            id: id.into(),
            instances: vec!["i-0123456789abcdef0".into()],
            groups: vec![],
            tags: BTreeMap::from([("App".into(), "legacy, \"v1\"".into())]),
            checks: vec![crate::exemptions::Check::Tags],
            reason: "vendor image".into(),
            owner: "ana@example.com".into(),
            expires: "2027-03-31".into(),
        }
    }

    #[test]
    fn common_settings_render_as_plain_comma_lists() {
        let mut s = scanner();
        s.rules.restricted_ports = vec![22, 3389];
        let env = s.render();
        assert_eq!(env[REQUIRED_TAGS], "Environment,Owner,CostCenter");
        assert_eq!(env[RESTRICTED_PORTS], "22,3389");
        assert_eq!(env[EXEMPT_TAG_KEY], "ComplianceExempt");
        assert_eq!(env[SCAN_REGIONS], "us-east-1");
        // Every variable but EXEMPTIONS, which is written only when there is one.
        assert_eq!(env.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut all = SCANNER_VARIABLES.to_vec();
            all.retain(|v| *v != EXEMPTIONS);
            all.sort_unstable();
            all
        });
        s.rules.exemptions = vec![exemption("legacy")];
        let env = s.render();
        assert_eq!(env.len(), SCANNER_VARIABLES.len());
    }

    #[test]
    fn exemptions_render_as_compact_json_in_the_field_names() {
        let mut s = scanner();
        s.rules.exemptions = vec![exemption("legacy")];
        assert_eq!(
            s.render()[EXEMPTIONS],
            r#"[{"id":"legacy","instances":["i-0123456789abcdef0"],"tags":{"App":"legacy, \"v1\""},"checks":["tags"],"reason":"vendor image","owner":"ana@example.com","expires":"2027-03-31"}]"#
        );
    }

    #[test]
    fn no_exemptions_is_unset_blank_or_empty() {
        for raw in [None, Some(""), Some("  "), Some("[]"), Some(" [ ] ")] {
            let rules =
                decode_rules(|k| (k == EXEMPTIONS).then_some(raw).flatten().map(String::from));
            assert_eq!(rules.unwrap().exemptions, [], "{raw:?}");
        }
    }

    #[test]
    fn bad_exemptions_are_refused_naming_the_variable() {
        for (raw, why) in [
            ("legacy", "not a JSON array of exemptions"),
            ("{}", "not a JSON array of exemptions"),
            (r#"[{"id":"x"}]"#, "not a JSON array of exemptions"),
            (
                r#"[{"id":"x","instances":["i-1"],"checks":["all"],"reason":"r","owner":"o","expires":"2027-01-01"}]"#,
                "not a JSON array of exemptions",
            ),
            (
                r#"[{"id":"x","instances":["i-1"],"checks":[],"reason":"r","owner":"o","expires":"2027-01-01"}]"#,
                "waives no check",
            ),
            (
                r#"[{"id":"x","checks":["tags"],"reason":"r","owner":"o","expires":"2027-01-01"}]"#,
                "covers nothing",
            ),
            (
                r#"[{"id":"x","groups":["sg-1"],"checks":["ingress"],"reason":"r","owner":"o","expires":"2027-13-01"}]"#,
                "is not a date",
            ),
        ] {
            let e = decode_rules(|k| (k == EXEMPTIONS).then(|| raw.to_string())).unwrap_err();
            assert_eq!(e.variable, EXEMPTIONS, "{raw}");
            assert!(e.to_string().starts_with("EXEMPTIONS: "), "{e}");
            assert!(e.to_string().contains(why), "{raw}: {e}");
        }
        let twice = encode_exemptions(&[exemption("a"), exemption("a")]);
        let e = decode_exemptions(&twice).unwrap_err();
        assert!(e.to_string().contains("`a` is used twice"), "{e}");
    }

    #[test]
    fn keys_a_comma_list_would_change_are_written_as_json() {
        for keys in [
            strings(&["Cost, Center", "Owner"]),
            strings(&[" Owner", "Team"]),
            strings(&["Owner "]),
            strings(&["[draft]", "Owner"]),
            strings(&[""]),
            vec![],
        ] {
            let text = encode_strings(&keys);
            assert!(text.starts_with('['), "{keys:?} -> {text}");
            assert_eq!(decode_strings(REQUIRED_TAGS, &text), Ok(Some(keys)));
        }
        // A `[` later in the list is fine in the comma form.
        assert_eq!(
            encode_strings(&strings(&["Owner", "[draft]"])),
            "Owner,[draft]"
        );
    }

    #[test]
    fn unset_means_default_and_empty_means_empty() {
        let unset = decode_rules(|_| None).unwrap();
        assert_eq!(unset, ScanSettings::default());
        let blank = decode_rules(|_| Some("  ".into())).unwrap();
        assert_eq!(blank, ScanSettings::default());

        let empty = decode_rules(|k| (k == RESTRICTED_PORTS).then(|| "[]".to_string())).unwrap();
        assert!(empty.restricted_ports.is_empty());
        assert_eq!(empty.required_tags, DEFAULT_REQUIRED_TAGS);
        let no_tags = decode_rules(|k| (k == REQUIRED_TAGS).then(|| " [ ] ".to_string())).unwrap();
        assert!(no_tags.required_tags.is_empty());
        assert_eq!(encode_ports(&[]), "[]");
    }

    #[test]
    fn a_person_may_type_either_form() {
        assert_eq!(
            decode_strings(REQUIRED_TAGS, "Team, Owner,,"),
            Ok(Some(strings(&["Team", "Owner"])))
        );
        assert_eq!(
            decode_strings(REQUIRED_TAGS, r#"["Team", " Owner"]"#),
            Ok(Some(strings(&["Team", " Owner"])))
        );
        assert_eq!(
            decode_ports(RESTRICTED_PORTS, " 22, 8080 "),
            Ok(Some(vec![22, 8080]))
        );
        assert_eq!(
            decode_ports(RESTRICTED_PORTS, "[22,8080]"),
            Ok(Some(vec![22, 8080]))
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable() {
        for bad in ["22,ssh", "70000", "[22,70000]", "[\"22\"]", "[22"] {
            let e = decode_ports(RESTRICTED_PORTS, bad).unwrap_err();
            assert_eq!(e.variable, RESTRICTED_PORTS);
            assert!(e.to_string().starts_with("RESTRICTED_PORTS: "), "{e}");
        }
        let e = decode_strings(REQUIRED_TAGS, "[Owner]").unwrap_err();
        assert!(e.to_string().starts_with("REQUIRED_TAGS: "), "{e}");
        let e = ScannerSettings::from_vars(|_| None, Some("us-east-1")).unwrap_err();
        assert_eq!(e.variable, BUCKET_NAME);
        let bucket_only = |k: &str| (k == BUCKET_NAME).then(|| "b".to_string());
        let e = ScannerSettings::from_vars(bucket_only, None).unwrap_err();
        assert_eq!(e.variable, SCAN_REGIONS);
    }

    #[test]
    fn the_scanner_reads_back_what_was_rendered() {
        let mut s = scanner();
        s.rules.required_tags = strings(&["Cost, Center", " Owner "]);
        s.rules.restricted_ports = vec![];
        s.rules.exempt_tag_key = " Skip".into();
        s.rules.exemptions = vec![exemption("b"), exemption("a")];
        let env = s.render();
        assert_eq!(ScannerSettings::from_vars(lookup(&env), None), Ok(s));
    }

    #[test]
    fn unset_scanner_settings_take_the_defaults() {
        let bucket_only = |k: &str| (k == BUCKET_NAME).then(|| " b ".to_string());
        let s = ScannerSettings::from_vars(bucket_only, Some("eu-west-1")).unwrap();
        assert_eq!(s.bucket, "b");
        assert_eq!(s.bucket_owner, None);
        assert_eq!(s.topic_arn, None);
        assert_eq!(s.rules, ScanSettings::default().canonical());
        assert_eq!(s.regions, ["eu-west-1"]);
        assert_eq!(s.metric_namespace, DEFAULT_METRIC_NAMESPACE);
        assert_eq!(s.stack, DEFAULT_STACK_NAME);
    }

    #[test]
    fn the_reporter_reads_back_what_was_rendered() {
        let r = ReporterSettings {
            bucket: "compliance-results-prod".into(),
            bucket_owner: Some("123456789012".into()),
            topic_arn: Some("arn:aws:sns:us-east-1:123456789012:compliance-alerts-prod".into()),
            stack: Some("prod".into()),
        };
        let env = r.render();
        assert_eq!(
            env.keys().map(String::as_str).collect::<Vec<_>>(),
            [BUCKET_NAME, BUCKET_OWNER, STACK_NAME, TOPIC_ARN]
        );
        assert_eq!(ReporterSettings::from_vars(lookup(&env)), Ok(r));
        let e = ReporterSettings::from_vars(|_| Some(" ".into())).unwrap_err();
        assert_eq!(e.to_string(), "BUCKET_NAME is not set");
    }

    #[test]
    fn the_bucket_owner_is_an_account_id_or_nothing() {
        let with_owner = |owner: &'static str| {
            move |k: &str| match k {
                BUCKET_NAME => Some("b".to_string()),
                BUCKET_OWNER => Some(owner.to_string()),
                _ => None,
            }
        };
        for (given, read) in [
            ("123456789012", Some("123456789012")),
            (" 000000000000\n", Some("000000000000")),
            ("", None),
            ("  ", None),
        ] {
            let s = ScannerSettings::from_vars(with_owner(given), Some("us-east-1")).unwrap();
            assert_eq!(s.bucket_owner.as_deref(), read, "{given:?}");
            let r = ReporterSettings::from_vars(with_owner(given)).unwrap();
            assert_eq!(r.bucket_owner.as_deref(), read, "{given:?}");
        }
        for bad in [
            "12345678901",
            "1234567890123",
            "12345678901a",
            "1234 5678901",
            "+12345678901",
            "１２３４５６７８９０１２",
            "arn:aws:iam::123456789012:root",
        ] {
            let e = ScannerSettings::from_vars(with_owner(bad), Some("us-east-1")).unwrap_err();
            assert_eq!(e.variable, BUCKET_OWNER, "{bad:?}");
            assert!(e.to_string().starts_with("BUCKET_OWNER: "), "{e}");
            let e = ReporterSettings::from_vars(with_owner(bad)).unwrap_err();
            assert_eq!(e.variable, BUCKET_OWNER, "{bad:?}");
        }
    }

    #[test]
    fn no_owner_renders_no_variable_and_reads_back_as_none() {
        let mut s = scanner();
        s.bucket_owner = None;
        let env = s.render();
        assert!(!env.contains_key(BUCKET_OWNER));
        assert_eq!(ScannerSettings::from_vars(lookup(&env), None), Ok(s));
        let r = ReporterSettings {
            bucket: "b".into(),
            bucket_owner: None,
            topic_arn: None,
            stack: None,
        };
        let env = r.render();
        assert_eq!(env.keys().collect::<Vec<_>>(), [BUCKET_NAME]);
        assert_eq!(ReporterSettings::from_vars(lookup(&env)), Ok(r));
    }

    #[test]
    fn size_is_the_json_object_lambda_measures() {
        let env = BTreeMap::from([("A".to_string(), "b\"c".to_string())]);
        // {"A":"b\"c"}
        assert_eq!(environment_size(&env), 12);
        assert!(environment_size(&scanner().render()) < ENVIRONMENT_LIMIT_BYTES);
    }
}
