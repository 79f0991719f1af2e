//! `terraform-provider-compliance analyse`: audits a deployed stack after the fact.
//!
//! It reads the stack with the provider's own read ([`crate::monitor::stack::read`]) and rates the
//! drift the provider itself would report ([`crate::monitor::stack::Observed::differences`]), so
//! the audit and `terraform plan` never disagree; then adds what drift does not judge (a pending
//! subscription, role policies wider than needed, the scanner's newest result). The wanted
//! settings are the resource's defaults, or the `compliance_monitor` resource in a state file.

pub mod findings;
pub mod interval;
pub mod report;
pub mod trail;

use std::path::PathBuf;
use std::time::Duration;

use crate::aws::{codes, is_code, Clients, Desired, PieceError};
use crate::monitor::model::MonitorModel;
use crate::monitor::resource::desired_from;
use crate::monitor::schema::{defaults_for, resource_schema};
use crate::monitor::settings::{validate_provider, ProviderSettings};
use crate::monitor::stack::{self, Observed};
use crate::monitor::validate;
use crate::protocol::value::{self, Value};
use findings::Results;
use report::Report;

/// Where the report goes unless `--output` says otherwise (the seed's file name).
pub const DEFAULT_OUTPUT: &str = "compliance-monitoring-analysis.json";

/// Exit code: the stack is clean (warnings allowed).
pub const EXIT_CLEAN: i32 = 0;
/// Exit code: at least one issue.
pub const EXIT_ISSUES: i32 = 1;
/// Exit code: bad command line or state file; nothing was asked of AWS.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the stack could not be read (credentials, network, permissions).
pub const EXIT_FAILED: i32 = 3;

/// The command's help text.
pub const USAGE: &str = "\
usage: terraform-provider-compliance analyse --suffix SUFFIX [options]

Audits a deployed compliance monitor stack and writes a JSON report.

options:
  --suffix SUFFIX        environment_suffix of the stack (may be left out with --state when the
                         state holds exactly one compliance_monitor)
  --state FILE           read the wanted settings from this Terraform state file (terraform.tfstate)
                         instead of the resource's defaults
  --region REGION        AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)
  --endpoint-url URL     one endpoint for every AWS service, e.g. a local emulator
                         (default: AWS_ENDPOINT_URL)
  --profile NAME         shared-config profile (default: AWS_PROFILE)
  --default-tags K=V,... the provider block's default_tags (not in the state), so that pieces
                         carrying them are not reported as having extra tags
  --output FILE          where to write the JSON report (default: compliance-monitoring-analysis.json)
  --now TIME             the time the checks count from, RFC 3339 (default: the current time), to
                         replay an audit as of a moment: the scanner-result check then asks for a
                         result within two intervals before TIME
  -h, --help             this text

exit codes: 0 clean (warnings allowed), 1 issues found, 2 bad arguments, 3 the stack could not be read";

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--suffix`.
    pub suffix: Option<String>,
    /// `--state`.
    pub state: Option<PathBuf>,
    /// `--region`.
    pub region: Option<String>,
    /// `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--output`.
    pub output: PathBuf,
    /// `--default-tags`: the provider block's `default_tags`, which the state does not hold.
    pub default_tags: std::collections::BTreeMap<String, String>,
    /// `--now`, in seconds since the epoch: the clock the checks read (the current time when
    /// unset), so an audit can be replayed and tested without waiting.
    pub now: Option<i64>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Analyse a stack.
    Run(Options),
    /// Print the help.
    Help,
}

/// Parses the arguments after `analyse`. The error names the flag and the fix.
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut o = Options {
        suffix: None,
        state: None,
        region: None,
        endpoint_url: None,
        profile: None,
        output: PathBuf::from(DEFAULT_OUTPUT),
        default_tags: std::collections::BTreeMap::new(),
        now: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let known = [
            "--suffix",
            "--state",
            "--region",
            "--endpoint-url",
            "--profile",
            "--output",
            "--default-tags",
            "--now",
        ];
        if !known.contains(&flag) {
            return Err(format!(
                "unknown argument {arg:?}: analyse takes {}. See `terraform-provider-compliance analyse --help`.",
                known.join(", ")
            ));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .filter(|v| !v.starts_with("--"))
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value, e.g. `{flag} {}`", example(flag)))?,
        };
        if value.is_empty() {
            return Err(format!(
                "{flag} is empty: give a value, e.g. `{flag} {}`",
                example(flag)
            ));
        }
        let slot = match flag {
            "--suffix" => &mut o.suffix,
            "--region" => &mut o.region,
            "--endpoint-url" => &mut o.endpoint_url,
            "--profile" => &mut o.profile,
            "--state" => {
                o.state = Some(PathBuf::from(value));
                continue;
            }
            "--default-tags" => {
                o.default_tags = parse_tags(&value)?;
                continue;
            }
            "--now" => {
                let at = time::OffsetDateTime::parse(
                    &value,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| {
                    format!(
                        "--now {value:?} is not an RFC 3339 time ({e}), e.g. `--now {}`",
                        example(flag)
                    )
                })?;
                o.now = Some(at.unix_timestamp());
                continue;
            }
            _ => {
                o.output = PathBuf::from(value);
                continue;
            }
        };
        *slot = Some(value);
    }
    if o.suffix.is_none() && o.state.is_none() {
        return Err(
            "--suffix is missing: name the stack, e.g. `analyse --suffix dev` (its environment_suffix)"
                .into(),
        );
    }
    if let Some(s) = &o.suffix {
        validate::environment_suffix(s).map_err(|e| format!("--suffix {s:?}: {e}"))?;
    }
    let mut provider = std::collections::BTreeMap::new();
    for (key, v) in [("region", &o.region), ("endpoint_url", &o.endpoint_url)] {
        if let Some(v) = v {
            provider.insert(key.to_string(), Value::string(v.clone()));
        }
    }
    if let Some(d) = validate_provider(&Value::Object(provider)).0.first() {
        let flag = if d.summary.contains("region") {
            "--region"
        } else {
            "--endpoint-url"
        };
        return Err(format!("{flag}: {}", d.detail));
    }
    Ok(Command::Run(o))
}

/// `K=V,K2=V2` into a map; the error shows the expected form.
fn parse_tags(value: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    value
        .split(',')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!(
                "--default-tags {value:?}: {pair:?} is not KEY=VALUE; write e.g. `--default-tags {}`",
                example("--default-tags")
            )),
        })
        .collect()
}

fn example(flag: &str) -> &'static str {
    match flag {
        "--default-tags" => "Project=billing,Owner=platform",
        "--suffix" => "dev",
        "--state" => "terraform.tfstate",
        "--region" => "us-east-1",
        "--endpoint-url" => "http://127.0.0.1:5000",
        "--profile" => "default",
        "--now" => "2026-11-28T06:00:00Z",
        _ => DEFAULT_OUTPUT,
    }
}

/// Picks the `compliance_monitor` instance's attributes out of a Terraform state (format 4):
/// the one whose `environment_suffix` is `suffix`, or the only one when `suffix` is `None`.
pub fn state_attributes(
    state: &serde_json::Value,
    suffix: Option<&str>,
) -> Result<serde_json::Value, String> {
    let instances: Vec<&serde_json::Value> = state["resources"]
        .as_array()
        .ok_or("it has no \"resources\" list; is it a Terraform state file (terraform.tfstate)?")?
        .iter()
        .filter(|r| r["type"] == "compliance_monitor" && r["mode"] != "data")
        .flat_map(|r| r["instances"].as_array().into_iter().flatten())
        .map(|i| &i["attributes"])
        .filter(|a| a.is_object())
        .collect();
    let suffixes: Vec<&str> = instances
        .iter()
        .filter_map(|a| a["environment_suffix"].as_str())
        .collect();
    match suffix {
        Some(s) => instances
            .iter()
            .find(|a| a["environment_suffix"] == s)
            .map(|a| (*a).clone())
            .ok_or_else(|| {
                format!(
                    "it holds no compliance_monitor with environment_suffix {s:?} (found: {suffixes:?}); \
                     pass the --suffix of one of them"
                )
            }),
        None => match instances.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err("it holds no compliance_monitor resource; pass --suffix instead of --state for the resource's defaults".into()),
            _ => Err(format!(
                "it holds {} compliance_monitor resources ({suffixes:?}); pick one with --suffix",
                instances.len()
            )),
        },
    }
}

/// The wanted resource settings and where they came from, before any AWS call.
pub fn wanted_settings(o: &Options) -> Result<(MonitorModel, String), String> {
    let Some(path) = &o.state else {
        let suffix = o.suffix.as_deref().unwrap_or_default();
        return Ok((MonitorModel::defaults(suffix), "resource defaults".into()));
    };
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("--state {shown}: cannot read it ({e}); give the path of terraform.tfstate")
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        format!("--state {shown}: not JSON ({e}); give the path of terraform.tfstate")
    })?;
    let attrs = state_attributes(&json, o.suffix.as_deref())
        .map_err(|e| format!("--state {shown}: {e}"))?;
    let mut v = value::from_json(&attrs, &resource_schema().value_type()).map_err(|e| {
        format!("--state {shown}: the compliance_monitor attributes do not decode ({e})")
    })?;
    let suffix = v
        .attr("environment_suffix")
        .as_str()
        .unwrap_or_default()
        .to_string();
    validate::environment_suffix(&suffix)
        .map_err(|e| format!("--state {shown}: environment_suffix {suffix:?}: {e}"))?;
    // Attributes an older provider did not record take the resource's defaults.
    if let (Value::Object(have), Value::Object(defaults)) = (&mut v, defaults_for(&suffix)) {
        for (k, d) in defaults {
            if have.get(&k).is_none_or(Value::is_null) {
                have.insert(k, d);
            }
        }
    }
    let diags = validate::config(&v);
    if let Some(d) = diags.0.first() {
        return Err(format!("--state {shown}: {}: {}", d.summary, d.detail));
    }
    let model = MonitorModel::from_value(&v).map_err(|e| format!("--state {shown}: {e}"))?;
    Ok((model, format!("state file {shown}")))
}

/// How long ago the newest object under `scans/` was stored, looking only at the date folders
/// that can hold one from the last `window`.
async fn newest_result(
    c: &Clients,
    d: &Desired,
    now: i64,
    window: Duration,
) -> (Results, Option<String>) {
    // Keys are scans/YYYY/MM/DD/...: start a day early so a UTC date boundary loses nothing.
    let from = time::OffsetDateTime::from_unix_timestamp(now - window.as_secs() as i64 - 86_400)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let start_after = format!(
        "scans/{:04}/{:02}/{:02}/",
        from.year(),
        u8::from(from.month()),
        from.day()
    );
    let mut newest: Option<i64> = None;
    let mut newest_key: Option<String> = None;
    let mut token = None;
    loop {
        let page =
            c.s3.list_objects_v2()
                .bucket(&d.names.bucket)
                .expected_bucket_owner(&d.account_id)
                .prefix("scans/")
                .start_after(&start_after)
                .set_continuation_token(token)
                .send()
                .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if is_code(&e, codes::S3_NO_SUCH_BUCKET) => return (Results::NoBucket, None),
            Err(e) => return (Results::Unreadable(crate::aws::describe(&e)), None),
        };
        for obj in page.contents() {
            if let Some(t) = obj.last_modified() {
                newest = newest.max(Some(t.secs()));
            }
            // Keys sort by time (scans/YYYY/MM/DD/<timestamp>.json): the greatest is the newest.
            if let Some(k) = obj.key() {
                if newest_key.as_deref().is_none_or(|n| k > n) {
                    newest_key = Some(k.to_string());
                }
            }
        }
        token = page
            .next_continuation_token
            .filter(|_| page.is_truncated == Some(true));
        if token.is_none() {
            break;
        }
    }
    (
        Results::Newest(newest.map(|t| Duration::from_secs(now.saturating_sub(t).max(0) as u64))),
        newest_key,
    )
}

/// The accounts and regions the newest scan could not read (its `errors[]`), when the stack
/// scans member accounts; nothing when the result cannot be read (its own finding says so).
async fn scan_errors(
    c: &Clients,
    d: &Desired,
    key: &str,
) -> Vec<compliance_rules::result::ScanError> {
    let Ok(out) =
        c.s3.get_object()
            .bucket(&d.names.bucket)
            .expected_bucket_owner(&d.account_id)
            .key(key)
            .send()
            .await
    else {
        return Vec::new();
    };
    let Ok(body) = out.body.collect().await else {
        return Vec::new();
    };
    serde_json::from_slice::<compliance_rules::result::ScanResult>(&body.into_bytes())
        .map(|r| r.errors)
        .unwrap_or_default()
}

/// Reads the stack and everything the checks need, and builds the report.
pub async fn analyse(
    o: &Options,
    resource: &MonitorModel,
    settings_from: String,
) -> Result<Report, PieceError> {
    let settings = ProviderSettings {
        region: o.region.clone(),
        profile: o.profile.clone(),
        endpoint_url: o.endpoint_url.clone(),
        // Few retries: an unreachable endpoint should fail in seconds, not minutes.
        max_retries: Some(3),
        default_tags: o.default_tags.clone(),
        ..ProviderSettings::default()
    };
    let clients = Clients::new(&settings)
        .await
        .map_err(|e| PieceError::new("AWS access", "configuring", e))?;
    let account = clients.account().await?;
    let d = desired_from(resource, &settings, &clients.region, &account);
    let observed: Observed = stack::read(&clients, &d).await?;
    let now = o
        .now
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
    let schedule = observed
        .schedules
        .scanner
        .present()
        .map_or(d.scan_schedule.clone(), |s| s.expression.clone());
    let window = interval::longest_gap(&schedule).map_or(Duration::ZERO, |g| g * 2);
    let (results, newest_key) = if observed.bucket.present().is_none() {
        (Results::NoBucket, None)
    } else {
        newest_result(&clients, &d, now, window).await
    };
    let errors = match &newest_key {
        Some(key) if d.scope.reaches_members() || d.scope.regions.len() > 1 => {
            scan_errors(&clients, &d, key).await
        }
        _ => Vec::new(),
    };
    let age = observed
        .roles
        .scanner
        .present()
        .and_then(|r| r.created)
        .map(|c| Duration::from_secs(now.saturating_sub(c).max(0) as u64));
    let mut found = findings::all(&d, &observed, &results, age);
    found.extend(findings::unscanned(&d, &errors));
    if d.event_driven {
        found.extend(trail::finding(&d, &trail::read(&clients).await));
        found.sort_by_key(|f| (f.area, f.severity));
    }
    let at = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(Report::new(&d, found, settings_from, at))
}

/// The whole command: parse, read the settings, analyse, write the file, print the table.
/// Returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let o = match parse_args(args) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return EXIT_CLEAN;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let (resource, from) = match wanted_settings(&o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let report = match runtime.block_on(analyse(&o, &resource, from)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: could not read the stack: {e}\nCheck the credentials, --region and --endpoint-url, and that they may read the stack's pieces."
            );
            return EXIT_FAILED;
        }
    };
    if let Err(e) = std::fs::write(&o.output, report.to_json() + "\n") {
        eprintln!(
            "error: --output {}: cannot write the report: {e}",
            o.output.display()
        );
        return EXIT_FAILED;
    }
    print!("{}", report.table());
    println!("Report written to {}", o.output.display());
    if report.summary.total_issues == 0 {
        EXIT_CLEAN
    } else {
        EXIT_ISSUES
    }
}

#[cfg(test)]
mod tests;
