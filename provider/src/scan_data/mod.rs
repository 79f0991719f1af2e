//! The `compliance_scan` data source: the newest scan result a stack stored, as values a
//! configuration can gate on (a `precondition`, a `check`) or hand to another system.
//!
//! It reads what the scanner wrote (`compliance_rules::result::ScanResult`) with the provider's
//! configured clients; every S3 request names the account that must own the bucket.

pub mod newest;

use std::sync::{Arc, OnceLock};

use compliance_rules::result::{GroupResult, InstanceResult, ScanResult, Summary};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::desired::StackNames;
use crate::monitor::resource::Configured;
use crate::monitor::validate;
use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Block, Mode, Schema};
use crate::protocol::service::{DataSource, ReadOutcome};
use crate::protocol::value::{Number, Type, Value};
use newest::{Failure, Filters, Found, LOOKBACK_DAYS, MAX_EXAMINED};

/// The data source's type name.
pub const TYPE_NAME: &str = "compliance_scan";

/// The computed counts: the result's `summary` fields of the same names (docs/scan-result.md),
/// or with `region` that region's share.
const COUNTS: [(&str, &str); 6] = [
    ("scanned", "Instances scanned, exempt ones included."),
    ("compliant", "Instances judged compliant."),
    ("non_compliant", "Instances judged non-compliant."),
    (
        "exempt",
        "Instances exempt from the checks (counted neither compliant nor non-compliant).",
    ),
    (
        "instances_missing_tags",
        "Instances missing at least one required tag, as the result's summary counts them.",
    ),
    (
        "open_rules",
        "Security-group rules open to the world that are violations (one per rule and world CIDR).",
    ),
];

/// The `compliance_scan` schema.
pub fn schema() -> Schema {
    use Mode::*;
    let mut attributes = vec![
        Attribute::new(
            "environment_suffix",
            Type::String,
            Required,
            "The `environment_suffix` of the `compliance_monitor` whose results to read.",
        ),
        Attribute::new(
            "bucket_name",
            Type::String,
            OptionalComputed,
            "The stack's results bucket: set it when the `compliance_monitor` sets `bucket_name`. \
             Defaults to `compliance-results-<environment_suffix>`.",
        ),
        Attribute::new(
            "account_id",
            Type::String,
            OptionalComputed,
            "Read only results of this account (12 digits). When unset, the account of the \
             result read (null for a result that does not name one).",
        ),
        Attribute::new(
            "region",
            Type::String,
            Optional,
            "Read only results whose scan covered this region; the numbers and ids are then \
             those of this region alone.",
        ),
        Attribute::new(
            "result_key",
            Type::String,
            Computed,
            "S3 key of the result read (`scans/YYYY/MM/DD/<timestamp>.json`).",
        ),
        Attribute::new(
            "scanned_at",
            Type::String,
            Computed,
            "When the scan finished (the result's `finished_at`, RFC 3339, UTC).",
        ),
        Attribute::new(
            "age_seconds",
            Type::Number,
            Computed,
            "Whole seconds from `scanned_at` to the read (0 when `scanned_at` is in the future).",
        ),
        Attribute::new(
            "regions",
            Type::list(Type::String),
            Computed,
            "The regions the scan covered, sorted.",
        ),
    ];
    attributes.extend(
        COUNTS
            .iter()
            .map(|(name, doc)| Attribute::new(name, Type::Number, Computed, *doc)),
    );
    attributes.extend([
        Attribute::new(
            "compliance_percentage",
            Type::Number,
            Computed,
            "`compliant / (scanned - exempt) * 100`, unrounded; 100 when no instance was judged.",
        ),
        Attribute::new(
            "non_compliant_instance_ids",
            Type::list(Type::String),
            Computed,
            "Ids of the non-compliant instances, sorted by region, then id.",
        ),
        Attribute::new(
            "open_security_group_ids",
            Type::list(Type::String),
            Computed,
            "Ids of the security groups open to the world in a way the rules forbid, attached or \
             not, sorted by region, then id.",
        ),
    ]);
    Schema {
        version: 0,
        block: Block {
            description: "The newest scan result a `compliance_monitor` stack stored: its \
                          summary, the non-compliant instances and the world-open groups. A \
                          stack with no stored result yet is an error."
                .into(),
            attributes,
            blocks: Vec::new(),
        },
    }
}

/// A plausible region name (`us-east-1`, `us-gov-west-1`).
fn region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let (last, words) = parts.split_last().unwrap_or((&"", &[]));
    parts.len() >= 3
        && words
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the configuration; unknown values pass (they are checked once known, before the read).
pub fn validate_config(config: &Value) -> Diagnostics {
    let mut d = Diagnostics::default();
    let mut check = |name: &str, summary: &str, result: Result<(), String>| {
        if let Err(detail) = result {
            d.push(Diagnostic::error(summary, detail).at(AttrPath::attr(name)));
        }
    };
    if let Some(s) = config.attr("environment_suffix").as_str() {
        check(
            "environment_suffix",
            "Invalid environment_suffix",
            validate::environment_suffix(s),
        );
    }
    if let Some(b) = config.attr("bucket_name").as_str() {
        check(
            "bucket_name",
            "Invalid bucket_name",
            validate::bucket_name(b),
        );
    }
    if let Some(a) = config.attr("account_id").as_str() {
        let ok = a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
        check(
            "account_id",
            "Invalid account_id",
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{a:?} is not an AWS account id: write its 12 digits, e.g. \"111122223333\"."
                ))
            },
        );
    }
    if let Some(r) = config.attr("region").as_str() {
        check(
            "region",
            "Invalid region",
            if region_name(r) {
                Ok(())
            } else {
                Err(format!(
                    "{r:?} is not an AWS region name. Use a name such as \"us-east-1\"."
                ))
            },
        );
    }
    d
}

/// What the data source exposes of one result: the whole scan, or one region's share of it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// The totals.
    pub summary: Summary,
    /// Ids of the non-compliant instances.
    pub non_compliant: Vec<String>,
    /// Ids of the violating groups.
    pub open_groups: Vec<String>,
}

impl View {
    /// The whole result, or with `region` its instances and groups in that region, totalled as
    /// the scanner totals a scan.
    pub fn of(scan: &ScanResult, region: Option<&str>) -> View {
        let in_region = |r: &str| region.is_none_or(|want| want == r);
        let instances: Vec<&InstanceResult> = scan
            .instances
            .iter()
            .filter(|i| in_region(&i.region))
            .collect();
        let groups: Vec<&GroupResult> = scan
            .security_groups
            .iter()
            .filter(|g| in_region(&g.region))
            .collect();
        let summary = if region.is_some() {
            let instances: Vec<InstanceResult> = instances.iter().map(|&i| i.clone()).collect();
            let groups: Vec<GroupResult> = groups.iter().map(|&g| g.clone()).collect();
            compliance_rules::verdict::summarize(&instances, &groups)
        } else {
            scan.summary.clone()
        };
        View {
            summary,
            non_compliant: instances
                .iter()
                .filter(|i| !i.compliant && !i.exempt)
                .map(|i| i.instance_id.clone())
                .collect(),
            open_groups: groups.iter().map(|g| g.group_id.clone()).collect(),
        }
    }
}

fn strings(items: &[String]) -> Value {
    Value::List(items.iter().cloned().map(Value::String).collect())
}

fn count(n: u64) -> Value {
    Value::int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The data source's state for a found result, read at `now`. Errors name the key.
pub fn state(
    config: &Value,
    bucket: &str,
    found: &Found,
    now: OffsetDateTime,
) -> Result<Value, String> {
    let scan = &found.scan;
    let finished = OffsetDateTime::parse(&scan.finished_at, &Rfc3339).map_err(|e| {
        format!(
            "s3://{bucket}/{}: finished_at {:?} is not an RFC 3339 time ({e}).",
            found.key, scan.finished_at
        )
    })?;
    let view = View::of(scan, config.attr("region").as_str());
    let s = &view.summary;
    let mut attrs = config.entries().cloned().unwrap_or_default();
    let mut set = |k: &str, v: Value| {
        attrs.insert(k.to_string(), v);
    };
    set("bucket_name", Value::string(bucket));
    if config.attr("account_id").is_null() {
        set(
            "account_id",
            scan.account_id.clone().map_or(Value::Null, Value::String),
        );
    }
    set("result_key", Value::string(&found.key));
    set("scanned_at", Value::string(&scan.finished_at));
    set(
        "age_seconds",
        Value::int((now - finished).whole_seconds().max(0)),
    );
    set("regions", strings(&scan.regions));
    for (name, n) in [
        ("scanned", s.scanned),
        ("compliant", s.compliant),
        ("non_compliant", s.non_compliant),
        ("exempt", s.exempt),
        ("instances_missing_tags", s.instances_missing_tags),
        ("open_rules", s.open_rules),
    ] {
        set(name, count(n));
    }
    set(
        "compliance_percentage",
        Value::Number(Number::Float(s.compliance_percentage)),
    );
    set("non_compliant_instance_ids", strings(&view.non_compliant));
    set("open_security_group_ids", strings(&view.open_groups));
    Ok(Value::Object(attrs))
}

/// The error Terraform shows when no result can be read.
pub fn failure_diagnostic(
    f: &Failure,
    names: &StackNames,
    owner: &str,
    filters: &Filters,
) -> Diagnostic {
    let bucket = &names.bucket;
    let scanner = &names.scanner;
    let run_a_scan = format!(
        "The stack's scanner stores a result on every run of its scan_schedule; to have one now, \
         invoke it (`aws lambda invoke --function-name {scanner} out.json`) and run Terraform again."
    );
    let (summary, detail) = match f {
        Failure::NoResult => (
            "No scan result yet".to_string(),
            format!(
                "No scan has stored a result in bucket {bucket} yet (nothing under scans/ from the \
                 last {LOOKBACK_DAYS} days), so there is no compliance to read for the stack \
                 {:?}. {run_a_scan}",
                names.suffix
            ),
        ),
        Failure::NoBucket => (
            "Results bucket not found".to_string(),
            format!(
                "Bucket {bucket} does not exist, so the stack {:?} has stored no scan result. \
                 Apply its compliance_monitor first; when that resource sets bucket_name, set the \
                 same bucket_name here.",
                names.suffix
            ),
        ),
        Failure::NoMatch {
            newest: (key, account, regions),
            examined,
        } => (
            "No scan result matches the filters".to_string(),
            format!(
                "None of the {examined} newest results in bucket {bucket}{} is a result {}. The \
                 newest, {key}, is of account {} and covers {}.",
                if *examined == MAX_EXAMINED {
                    " (the most this data source reads)"
                } else {
                    ""
                },
                filters.phrase(),
                account.as_deref().unwrap_or("(none recorded)"),
                if regions.is_empty() {
                    "no region".to_string()
                } else {
                    regions.join(", ")
                }
            ),
        ),
        Failure::Listing(error) => (
            "Cannot list scan results".to_string(),
            format!(
                "Listing scans/ in bucket {bucket} (expected owner {owner}) failed: {error}. The \
                 credentials need s3:ListBucket on the bucket, and the bucket must belong to the \
                 account {owner}."
            ),
        ),
        Failure::Reading { key, error } => (
            "Cannot read scan result".to_string(),
            format!("GetObject s3://{bucket}/{key} (expected owner {owner}) failed: {error}."),
        ),
        Failure::Archived(key) => (
            "Newest scan result is archived".to_string(),
            format!(
                "s3://{bucket}/{key} has moved to Glacier (InvalidObjectState) and cannot be read \
                 without a restore: no scan has stored a result since the stack's \
                 glacier_transition_days. {run_a_scan}"
            ),
        ),
        Failure::Unparsable { key, error } => (
            "Scan result does not parse".to_string(),
            format!(
                "s3://{bucket}/{key} is not a scan result the stack's scanner writes: {error}. \
                 Remove it, or run a scan so that a valid result is the newest."
            ),
        ),
        Failure::UnknownVersion { key, version } => (
            "Scan result of an unknown version".to_string(),
            format!(
                "s3://{bucket}/{key} has schema_version {version}; this provider reads version {}. \
                 Upgrade the provider to a release that reads it.",
                compliance_rules::result::SCAN_SCHEMA_VERSION
            ),
        ),
        Failure::Cancelled => (
            "Read cancelled".to_string(),
            "Terraform stopped the provider while it read scan results.".to_string(),
        ),
    };
    Diagnostic::error(summary, detail)
}

/// The `compliance_scan` data source type.
pub struct ComplianceScan {
    schema: Schema,
    configured: Arc<OnceLock<Configured>>,
}

impl ComplianceScan {
    /// A data source that uses the provider's configuration once it is set.
    pub fn new(configured: Arc<OnceLock<Configured>>) -> ComplianceScan {
        ComplianceScan {
            schema: schema(),
            configured,
        }
    }

    async fn lookup(
        &self,
        config: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Diagnostics> {
        let cfg = self.configured.get().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "Terraform read the data source before configuring the provider. This is a bug; please report it.",
            )
        })?;
        let suffix = config
            .attr("environment_suffix")
            .as_str()
            .unwrap_or_default();
        let names = StackNames::new(suffix).with_bucket(config.attr("bucket_name").as_str());
        let filters = Filters {
            account_id: config.attr("account_id").as_str().map(str::to_string),
            region: config.attr("region").as_str().map(str::to_string),
        };
        let clients = cfg.clients().await?;
        let account = cfg
            .account
            .get_or_try_init(|| clients.account())
            .await
            .map_err(|e| Diagnostic::error("Cannot identify the AWS account", e.to_string()))?;
        let today = OffsetDateTime::now_utc().date();
        tracing::info!(stack = suffix, bucket = %names.bucket, "reading the newest scan result");
        let found = newest::find(
            &clients.s3,
            &names.bucket,
            &account.id,
            &filters,
            today,
            cancel,
        )
        .await
        .map_err(|f| failure_diagnostic(&f, &names, &account.id, &filters))?;
        state(config, &names.bucket, &found, OffsetDateTime::now_utc())
            .map_err(|detail| Diagnostic::error("Scan result does not parse", detail).into())
    }
}

#[tonic::async_trait]
impl DataSource for ComplianceScan {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        validate_config(config)
    }

    async fn read(&self, config: Value, cancel: CancellationToken) -> ReadOutcome {
        match self.lookup(&config, &cancel).await {
            Ok(state) => ReadOutcome {
                state,
                diagnostics: Diagnostics::default(),
            },
            Err(diagnostics) => ReadOutcome {
                state: Value::Null,
                diagnostics,
            },
        }
    }
}

#[cfg(test)]
mod tests;
