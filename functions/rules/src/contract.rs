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
//! - **Scope** (`SCAN_REGIONS`, `MEMBER_ACCOUNTS`, `ORGANIZATION_ACCOUNTS`, `MEMBER_ROLE_NAME`,
//!   `MEMBER_EXTERNAL_ID`, `SCAN_CONCURRENCY`): `SCAN_REGIONS` may be the single entry `*` (every
//!   region enabled in each account, listed at scan time). `MEMBER_ACCOUNTS` is a list of 12-digit
//!   ids, `ORGANIZATION_ACCOUNTS` is `true` or unset, never both. The member variables and
//!   `SCAN_CONCURRENCY` are written only when they differ from the defaults, so a single-account
//!   stack's environment is what it was before organisation scanning existed.

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
/// Member accounts scanned besides the stack's own (scanner): a list of 12-digit ids.
pub const MEMBER_ACCOUNTS: &str = "MEMBER_ACCOUNTS";
/// `true`: scan every ACTIVE account of the organization, listed at scan time (scanner).
pub const ORGANIZATION_ACCOUNTS: &str = "ORGANIZATION_ACCOUNTS";
/// The role the scanner assumes in each member account (scanner).
pub const MEMBER_ROLE_NAME: &str = "MEMBER_ROLE_NAME";
/// The external id the member roles' trust policies require (scanner); unset, none is sent.
pub const MEMBER_EXTERNAL_ID: &str = "MEMBER_EXTERNAL_ID";
/// Most (account, region) pairs read at once (scanner): 1 to [`MAX_SCAN_CONCURRENCY`].
pub const SCAN_CONCURRENCY: &str = "SCAN_CONCURRENCY";

/// Every variable the scanner reads.
pub const SCANNER_VARIABLES: [&str; 15] = [
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
    MEMBER_ACCOUNTS,
    ORGANIZATION_ACCOUNTS,
    MEMBER_ROLE_NAME,
    MEMBER_EXTERNAL_ID,
    SCAN_CONCURRENCY,
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

/// `SCAN_REGIONS` entry that stands for every region enabled in each scanned account.
pub const ALL_REGIONS: &str = "*";

/// The member role's name when `MEMBER_ROLE_NAME` is unset.
pub const DEFAULT_MEMBER_ROLE_NAME: &str = "ComplianceScannerMember";

/// (account, region) pairs read at once when `SCAN_CONCURRENCY` is unset.
pub const DEFAULT_SCAN_CONCURRENCY: u32 = 8;

/// The most `SCAN_CONCURRENCY` allows.
pub const MAX_SCAN_CONCURRENCY: u32 = 64;

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

/// Reads `MEMBER_ACCOUNTS`: none when blank or `[]`, else a list of account ids in the order
/// written, each 12 digits once trimmed; a repeated id is read once.
pub fn decode_accounts(raw: &str) -> Result<Vec<String>, ContractError> {
    let mut accounts: Vec<String> = Vec::new();
    for item in decode_strings(MEMBER_ACCOUNTS, raw)?.unwrap_or_default() {
        let id = decode_account(MEMBER_ACCOUNTS, Some(item.clone()))?.ok_or_else(|| {
            ContractError::new(
                MEMBER_ACCOUNTS,
                format!("{MEMBER_ACCOUNTS}: `{item}` is not an AWS account id (12 digits)"),
            )
        })?;
        if !accounts.contains(&id) {
            accounts.push(id);
        }
    }
    Ok(accounts)
}

/// Reads a flag that is `true` or unset: blank or `false` is false, `true` true (any case).
fn decode_flag(variable: &'static str, value: Option<String>) -> Result<bool, ContractError> {
    let Some(text) = name(value) else {
        return Ok(false);
    };
    match text.to_ascii_lowercase().as_str() {
        "false" => Ok(false),
        "true" => Ok(true),
        _ => Err(ContractError::new(
            variable,
            format!("{variable}: `{text}` is neither `true` nor `false`"),
        )),
    }
}

/// Reads `MEMBER_ROLE_NAME`: the default when blank, else an IAM role name (1 to 64 letters,
/// digits and `+=,.@_-`; no path).
fn decode_role_name(value: Option<String>) -> Result<String, ContractError> {
    let Some(role) = name(value) else {
        return Ok(DEFAULT_MEMBER_ROLE_NAME.to_string());
    };
    let ok = (1..=64).contains(&role.len())
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(role)
    } else {
        Err(ContractError::new(
            MEMBER_ROLE_NAME,
            format!(
                "{MEMBER_ROLE_NAME}: `{role}` is not an IAM role name (1 to 64 letters, digits \
                 and + = , . @ _ -)"
            ),
        ))
    }
}

/// Reads `MEMBER_EXTERNAL_ID`: none when blank, else STS's form (2 to 1224 letters, digits and
/// `+=,.@:/_-`), so a typo fails here rather than as AccessDenied in every member account.
fn decode_external_id(value: Option<String>) -> Result<Option<String>, ContractError> {
    let Some(id) = name(value) else {
        return Ok(None);
    };
    let ok = (2..=1224).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@:/_-".contains(c));
    if ok {
        Ok(Some(id))
    } else {
        Err(ContractError::new(
            MEMBER_EXTERNAL_ID,
            format!(
                "{MEMBER_EXTERNAL_ID}: not an external id (2 to 1224 letters, digits and \
                 + = , . @ : / _ -)"
            ),
        ))
    }
}

/// Reads `SCAN_CONCURRENCY`: the default when blank, else a whole number from 1 to
/// [`MAX_SCAN_CONCURRENCY`].
fn decode_concurrency(value: Option<String>) -> Result<u32, ContractError> {
    let Some(text) = name(value) else {
        return Ok(DEFAULT_SCAN_CONCURRENCY);
    };
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_SCAN_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(ContractError::new(
            SCAN_CONCURRENCY,
            format!("{SCAN_CONCURRENCY}: `{text}` is not a whole number from 1 to {MAX_SCAN_CONCURRENCY}"),
        )),
    }
}

/// Reads the member accounts' settings.
fn decode_members(var: &impl Fn(&str) -> Option<String>) -> Result<Members, ContractError> {
    let accounts = match var(MEMBER_ACCOUNTS) {
        Some(raw) => decode_accounts(&raw)?,
        None => Vec::new(),
    };
    let organization = decode_flag(ORGANIZATION_ACCOUNTS, var(ORGANIZATION_ACCOUNTS))?;
    if organization && !accounts.is_empty() {
        return Err(ContractError::new(
            ORGANIZATION_ACCOUNTS,
            format!(
                "{ORGANIZATION_ACCOUNTS}: `true` scans every account of the organization and \
                 {MEMBER_ACCOUNTS} lists accounts: set one of them"
            ),
        ));
    }
    Ok(Members {
        accounts,
        organization,
        role_name: decode_role_name(var(MEMBER_ROLE_NAME))?,
        external_id: decode_external_id(var(MEMBER_EXTERNAL_ID))?,
    })
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

/// The accounts scanned besides the stack's own, and how the scanner reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// Member account ids (12 digits), in the order configured; empty with `organization`.
    pub accounts: Vec<String>,
    /// Every ACTIVE account of the organization, listed at scan time (Organizations ListAccounts).
    pub organization: bool,
    /// The role assumed in each member account ([`DEFAULT_MEMBER_ROLE_NAME`] by default).
    pub role_name: String,
    /// The external id sent with each AssumeRole, when the member roles require one.
    pub external_id: Option<String>,
}

impl Default for Members {
    /// No member account: the stack's own account only.
    fn default() -> Members {
        Members {
            accounts: Vec::new(),
            organization: false,
            role_name: DEFAULT_MEMBER_ROLE_NAME.to_string(),
            external_id: None,
        }
    }
}

impl Members {
    /// True when the scanner assumes roles in other accounts.
    pub fn any(&self) -> bool {
        self.organization || !self.accounts.is_empty()
    }

    /// Writes the variables that differ from the defaults.
    fn render(&self, env: &mut BTreeMap<String, String>) {
        if !self.accounts.is_empty() {
            env.insert(MEMBER_ACCOUNTS.to_string(), encode_strings(&self.accounts));
        }
        if self.organization {
            env.insert(ORGANIZATION_ACCOUNTS.to_string(), "true".to_string());
        }
        if self.role_name != DEFAULT_MEMBER_ROLE_NAME {
            env.insert(MEMBER_ROLE_NAME.to_string(), self.role_name.clone());
        }
        if let Some(id) = &self.external_id {
            env.insert(MEMBER_EXTERNAL_ID.to_string(), id.clone());
        }
    }
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
    /// Regions to scan in every account; never empty once read. The single entry [`ALL_REGIONS`]
    /// means every region enabled in each account.
    pub regions: Vec<String>,
    /// CloudWatch namespace.
    pub metric_namespace: String,
    /// Stack name: the metrics' `Stack` dimension and the result's `stack`.
    pub stack: String,
    /// The member accounts scanned besides the stack's own.
    pub members: Members,
    /// Most (account, region) pairs read at once, 1 to [`MAX_SCAN_CONCURRENCY`].
    pub concurrency: u32,
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
        if regions.len() > 1 && regions.iter().any(|r| r == ALL_REGIONS) {
            return Err(ContractError::new(
                SCAN_REGIONS,
                format!(
                    "{SCAN_REGIONS}: `{ALL_REGIONS}` means every enabled region and stands alone"
                ),
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
            members: decode_members(&var)?,
            concurrency: decode_concurrency(var(SCAN_CONCURRENCY))?,
        })
    }

    /// The scanner's environment: every variable set (the owner, the topic and the exemptions only
    /// when there is one; the member settings and the concurrency only when not the defaults),
    /// lists in the order given.
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
        self.members.render(&mut env);
        if self.concurrency != DEFAULT_SCAN_CONCURRENCY {
            env.insert(SCAN_CONCURRENCY.to_string(), self.concurrency.to_string());
        }
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
            members: Members::default(),
            concurrency: DEFAULT_SCAN_CONCURRENCY,
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
        // Every variable but those written only when not the default: a single-account stack's
        // environment is what it was before organisation scanning.
        let optional = [
            EXEMPTIONS,
            MEMBER_ACCOUNTS,
            ORGANIZATION_ACCOUNTS,
            MEMBER_ROLE_NAME,
            MEMBER_EXTERNAL_ID,
            SCAN_CONCURRENCY,
        ];
        assert_eq!(env.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut all = SCANNER_VARIABLES.to_vec();
            all.retain(|v| !optional.contains(v));
            all.sort_unstable();
            all
        });
        s.rules.exemptions = vec![exemption("legacy")];
        s.members = Members {
            accounts: strings(&["111111111111"]),
            organization: false,
            role_name: "Scanner".into(),
            external_id: Some("ext-1".into()),
        };
        s.concurrency = 16;
        let env = s.render();
        assert_eq!(
            env.len(),
            SCANNER_VARIABLES.len() - 1,
            "all but ORGANIZATION_ACCOUNTS"
        );
    }

    fn scope_vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |k: &str| match k {
            BUCKET_NAME => Some("b".to_string()),
            _ => pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string()),
        }
    }

    #[test]
    fn members_render_only_when_not_the_defaults_and_read_back() {
        let mut s = scanner();
        s.members = Members {
            accounts: strings(&["222222222222", "111111111111"]),
            organization: false,
            role_name: "Audit.Reader@x".into(),
            external_id: Some("a:b/c=d".into()),
        };
        s.concurrency = 64;
        let env = s.render();
        assert_eq!(env[MEMBER_ACCOUNTS], "222222222222,111111111111");
        assert_eq!(env[MEMBER_ROLE_NAME], "Audit.Reader@x");
        assert_eq!(env[MEMBER_EXTERNAL_ID], "a:b/c=d");
        assert_eq!(env[SCAN_CONCURRENCY], "64");
        assert!(!env.contains_key(ORGANIZATION_ACCOUNTS));
        assert_eq!(
            ScannerSettings::from_vars(lookup(&env), None),
            Ok(s.clone())
        );

        s.members = Members {
            organization: true,
            ..Members::default()
        };
        s.concurrency = DEFAULT_SCAN_CONCURRENCY;
        s.regions = strings(&[ALL_REGIONS]);
        let env = s.render();
        assert_eq!(env[ORGANIZATION_ACCOUNTS], "true");
        assert_eq!(env[SCAN_REGIONS], "*");
        for absent in [
            MEMBER_ACCOUNTS,
            MEMBER_ROLE_NAME,
            MEMBER_EXTERNAL_ID,
            SCAN_CONCURRENCY,
        ] {
            assert!(!env.contains_key(absent), "{absent}");
        }
        assert_eq!(ScannerSettings::from_vars(lookup(&env), None), Ok(s));
    }

    #[test]
    fn unset_scope_is_the_stacks_own_account_at_the_default_concurrency() {
        let s = ScannerSettings::from_vars(scope_vars(&[]), Some("us-east-1")).unwrap();
        assert_eq!(s.members, Members::default());
        assert!(!s.members.any());
        assert_eq!(s.members.role_name, "ComplianceScannerMember");
        assert_eq!(s.concurrency, 8);
        let blank = ScannerSettings::from_vars(
            scope_vars(&[
                (MEMBER_ACCOUNTS, " "),
                (ORGANIZATION_ACCOUNTS, ""),
                (MEMBER_ROLE_NAME, " "),
                (MEMBER_EXTERNAL_ID, ""),
                (SCAN_CONCURRENCY, "  "),
            ]),
            Some("us-east-1"),
        )
        .unwrap();
        assert_eq!(blank, s);
        let typed = ScannerSettings::from_vars(
            scope_vars(&[
                (
                    MEMBER_ACCOUNTS,
                    r#"["111111111111", " 222222222222 ", "111111111111"]"#,
                ),
                (ORGANIZATION_ACCOUNTS, "False"),
                (SCAN_CONCURRENCY, " 1 "),
                (SCAN_REGIONS, "[\"*\"]"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(typed.members.accounts, ["111111111111", "222222222222"]);
        assert!(!typed.members.organization);
        assert_eq!(typed.concurrency, 1);
        assert_eq!(typed.regions, [ALL_REGIONS]);
        let org = ScannerSettings::from_vars(
            scope_vars(&[(ORGANIZATION_ACCOUNTS, " TRUE ")]),
            Some("us-east-1"),
        )
        .unwrap();
        assert!(org.members.organization && org.members.any());
    }

    #[test]
    fn bad_scope_values_are_refused_naming_the_variable() {
        // (variables set besides the bucket, the variable refused, what the message says)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (
                &[(MEMBER_ACCOUNTS, "12345678901")],
                MEMBER_ACCOUNTS,
                "`12345678901`",
            ),
            (
                &[(MEMBER_ACCOUNTS, "111111111111,arn:aws:iam::1:root")],
                MEMBER_ACCOUNTS,
                "not an AWS account id",
            ),
            (
                &[(MEMBER_ACCOUNTS, r#"[""]"#)],
                MEMBER_ACCOUNTS,
                "not an AWS account id",
            ),
            (
                &[(MEMBER_ACCOUNTS, "[1]")],
                MEMBER_ACCOUNTS,
                "not a JSON array",
            ),
            (
                &[(ORGANIZATION_ACCOUNTS, "yes")],
                ORGANIZATION_ACCOUNTS,
                "`yes`",
            ),
            (
                &[
                    (ORGANIZATION_ACCOUNTS, "true"),
                    (MEMBER_ACCOUNTS, "111111111111"),
                ],
                ORGANIZATION_ACCOUNTS,
                "set one of them",
            ),
            (
                &[(MEMBER_ROLE_NAME, "path/Role")],
                MEMBER_ROLE_NAME,
                "`path/Role`",
            ),
            (
                &[(MEMBER_ROLE_NAME, "r o")],
                MEMBER_ROLE_NAME,
                "not an IAM role name",
            ),
            (
                &[(MEMBER_EXTERNAL_ID, "x")],
                MEMBER_EXTERNAL_ID,
                "not an external id",
            ),
            (
                &[(MEMBER_EXTERNAL_ID, "a b")],
                MEMBER_EXTERNAL_ID,
                "not an external id",
            ),
            (&[(SCAN_CONCURRENCY, "0")], SCAN_CONCURRENCY, "from 1 to 64"),
            (&[(SCAN_CONCURRENCY, "65")], SCAN_CONCURRENCY, "`65`"),
            (&[(SCAN_CONCURRENCY, "-1")], SCAN_CONCURRENCY, "`-1`"),
            (&[(SCAN_CONCURRENCY, "eight")], SCAN_CONCURRENCY, "`eight`"),
            (
                &[(SCAN_REGIONS, "*,us-east-1")],
                SCAN_REGIONS,
                "stands alone",
            ),
        ];
        for (pairs, variable, says) in cases {
            let var = |k: &str| match k {
                BUCKET_NAME => Some("b".to_string()),
                _ => pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string()),
            };
            let e = ScannerSettings::from_vars(var, Some("us-east-1")).unwrap_err();
            assert_eq!(e.variable, *variable, "{pairs:?}");
            assert!(e.to_string().starts_with(&format!("{variable}: ")), "{e}");
            assert!(e.to_string().contains(says), "{pairs:?}: {e}");
        }
        let long = "r".repeat(65);
        let e = decode_role_name(Some(long)).unwrap_err();
        assert_eq!(e.variable, MEMBER_ROLE_NAME);
        assert!(decode_role_name(Some("r".repeat(64))).is_ok());
        assert!(decode_external_id(Some("x".repeat(1225))).is_err());
        assert!(decode_external_id(Some("x".repeat(1224))).is_ok());
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
