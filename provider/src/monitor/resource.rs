//! The `compliance_monitor` resource: validation and planning of the whole stack.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use super::model::MonitorModel;
use super::schema::{resource_schema, OUTPUTS};
use super::settings::ProviderSettings;
use super::stack;
use super::validate;
use crate::aws::functions::Code;
use crate::aws::{Account, Clients, Desired, PieceError, ScannerReporter};
use crate::desired::StackNames;
use crate::protocol::diag::{Diagnostic, Diagnostics};
use crate::protocol::schema::Schema;
use crate::protocol::service::{ApplyRequest, Outcome, PlanRequest, Resource};
use crate::protocol::value::Value;

/// What ConfigureProvider sets up for the resource.
#[derive(Debug)]
pub struct Configured {
    /// The provider block.
    pub settings: ProviderSettings,
    /// AWS clients, built on first use: validate and plan never load the AWS configuration,
    /// which keeps those provider processes small and quick to start.
    pub clients: tokio::sync::OnceCell<Clients>,
    /// The account and its partition, looked up once on first use.
    pub account: tokio::sync::OnceCell<Account>,
}

impl Configured {
    /// Configuration from the provider block; nothing is loaded until first use.
    pub fn new(settings: ProviderSettings) -> Configured {
        Configured {
            settings,
            clients: tokio::sync::OnceCell::new(),
            account: tokio::sync::OnceCell::new(),
        }
    }

    /// The AWS clients, built once.
    pub async fn clients(&self) -> Result<&Clients, Diagnostics> {
        self.clients
            .get_or_try_init(|| Clients::new(&self.settings))
            .await
            .map_err(|e| Diagnostic::error("Cannot configure AWS access", e).into())
    }
}

/// The `compliance_monitor` resource type.
pub struct ComplianceMonitor {
    schema: Schema,
    configured: Arc<OnceLock<Configured>>,
}

impl ComplianceMonitor {
    /// A resource that uses the provider's configuration once it is set.
    pub fn new(configured: Arc<OnceLock<Configured>>) -> ComplianceMonitor {
        ComplianceMonitor {
            schema: resource_schema(),
            configured,
        }
    }

    fn configured(&self) -> Result<&Configured, Diagnostics> {
        self.configured.get().ok_or_else(|| {
            Diagnostic::error(
                "Provider not configured",
                "Terraform called the resource before configuring the provider. This is a bug; please report it.",
            )
            .into()
        })
    }

    /// The desired stack for a state or plan value, with the account looked up once.
    async fn desired(&self, v: &Value) -> Result<(&Clients, Desired), Diagnostics> {
        let model = MonitorModel::from_value(v).map_err(|e| {
            Diagnostics::from(Diagnostic::error(
                "Invalid resource value",
                format!("{e}. This is a bug; please report it."),
            ))
        })?;
        let cfg = self.configured()?;
        let clients = cfg.clients().await?;
        let account = cfg
            .account
            .get_or_try_init(|| clients.account())
            .await
            .map_err(piece_error)?;
        Ok((
            clients,
            desired_from(&model, &cfg.settings, &clients.region, account),
        ))
    }

    /// Creates the stack: every piece, claimed first (one that exists and is not the stack's is
    /// a name taken).
    async fn create(&self, planned: Value, cancel: &CancellationToken) -> Outcome {
        self.ensure(Value::Null, planned, cancel).await
    }

    /// Brings the stack to the plan, writing only what differs; every piece is claimed again
    /// (one deleted outside Terraform and made again by someone else is a name taken).
    async fn update(&self, prior: Value, planned: Value, cancel: &CancellationToken) -> Outcome {
        self.ensure(prior, planned, cancel).await
    }

    /// Reads the stack and brings every piece to `planned`. On failure the state keeps what
    /// was made, so Terraform knows every piece.
    async fn ensure(&self, prior: Value, planned: Value, cancel: &CancellationToken) -> Outcome {
        let creating = prior.is_null();
        let (clients, d) = match self.desired(&planned).await {
            Ok(x) => x,
            Err(diags) => return with_error(prior, diags),
        };
        tracing::info!(stack = %d.names.suffix, creating, "applying the stack");
        let observed = match stack::read(clients, &d).await {
            Ok(o) => o,
            Err(e) => return with_error(prior, piece_error(e)),
        };
        let mut applied = stack::Applied {
            topic_arn: observed.topic.present().map(|_| d.topic_arn()),
            function_arns: observed
                .functions
                .as_ref()
                .map(|_, f| f.present().map(|f| f.arn.clone())),
        };
        let opts = stack::EnsureOptions {
            codes: codes(),
            prior_alert_email: prior.attr("alert_email").as_str(),
        };
        match stack::ensure(clients, &d, &observed, opts, cancel, &mut applied).await {
            Ok(()) => Outcome {
                state: applied_state(&planned, &applied, true),
                ..Outcome::default()
            },
            Err(e) => with_error(applied_state(&planned, &applied, false), piece_error(e)),
        }
    }

    /// Deletes every piece the stack made; pieces that are not its own are left, with a warning.
    async fn delete(&self, prior: Value, cancel: &CancellationToken) -> Outcome {
        let (clients, d) = match self.desired(&prior).await {
            Ok(x) => x,
            Err(diags) => return with_error(prior, diags),
        };
        tracing::info!(stack = %d.names.suffix, "deleting the stack");
        match stack::delete(clients, &d, cancel).await {
            Ok(kept) => Outcome {
                diagnostics: Diagnostics(
                    kept.into_iter()
                        .map(|piece| {
                            Diagnostic::warning(
                                format!("Left {piece} in place"),
                                format!(
                                    "It is not tagged ComplianceStack = {:?}, so it was not created by this stack \
                                     and was not deleted.",
                                    d.names.suffix
                                ),
                            )
                        })
                        .collect(),
                ),
                ..Outcome::default()
            },
            Err(e) => with_error(prior, piece_error(e)),
        }
    }
}

/// The stack's own tags, on top of the provider's and the user's.
pub fn own_tags(suffix: &str) -> [(String, String); 2] {
    [
        (
            "ManagedBy".to_string(),
            "terraform-provider-compliance".to_string(),
        ),
        ("ComplianceStack".to_string(), suffix.to_string()),
    ]
}

/// Maps the model to the desired stack in an account and region.
pub fn desired_from(
    m: &MonitorModel,
    settings: &ProviderSettings,
    region: &str,
    account: &Account,
) -> Desired {
    let suffix = &m.environment_suffix;
    let mut tags: BTreeMap<String, String> = settings.default_tags.clone();
    tags.extend(m.tags.clone().unwrap_or_default());
    tags.extend(own_tags(suffix));
    Desired {
        names: StackNames::new(suffix).with_bucket(m.bucket_name.as_deref()),
        account_id: account.id.clone(),
        partition: account.partition.clone(),
        region: region.to_string(),
        alert_email: m.alert_email.clone(),
        required_tags: m.required_tags.clone(),
        restricted_ports: m.restricted_ports.clone(),
        exempt_tag_key: m.exempt_tag_key.clone(),
        scan_schedule: m.scan_schedule.clone(),
        report_schedule: m.report_schedule.clone(),
        log_retention_days: m.log_retention_days,
        glacier_transition_days: m.glacier_transition_days,
        memory_mb: m.lambda_memory_mb,
        timeout_seconds: m.lambda_timeout_seconds,
        tags,
        force_destroy: m.force_destroy,
        exemptions: m.exemption.iter().map(|e| e.to_exemption()).collect(),
        scope: crate::desired::Scope {
            regions: m
                .scan_regions
                .clone()
                .unwrap_or_else(|| vec![region.to_string()]),
            member_accounts: m.member_accounts.clone().unwrap_or_default(),
            organization_accounts: m.organization_accounts,
            member_role_name: m.member_role_name.clone(),
            member_external_id: m.member_external_id.clone(),
            concurrency: u32::try_from(m.scan_concurrency).unwrap_or(8),
        },
        event_driven: m.event_driven,
    }
}

/// The provider's `default_tags` land on every piece beside the resource's own tags: together
/// with the stack's two they must fit AWS's 50 per resource.
fn default_tags_fit(config: &Value, settings: &ProviderSettings) -> Option<Diagnostic> {
    let user = config.attr("tags");
    let user = user.entries();
    let beside = settings
        .default_tags
        .keys()
        .filter(|k| !user.is_some_and(|u| u.contains_key(*k)))
        .count();
    let count = user.map_or(0, BTreeMap::len);
    validate::tag_count(count, beside).err().map(|detail| {
        Diagnostic::error("Invalid tags", detail).at(crate::protocol::diag::AttrPath::attr("tags"))
    })
}

/// What a replacement does to the compliance history in the old bucket, said at plan.
fn history_warning(prior: &Value) -> Diagnostic {
    let bucket = prior
        .attr("bucket_name")
        .as_str()
        .unwrap_or("(the results bucket)");
    if prior.attr("force_destroy").as_bool() == Some(true) {
        Diagnostic::warning(
            "Replacing the stack deletes its compliance history",
            format!(
                "The replacement deletes bucket {bucket} with every scan result and report it \
                 holds (force_destroy = true). Copy them elsewhere first to keep them."
            ),
        )
    } else {
        Diagnostic::warning(
            "Replacing the stack would delete its compliance history",
            format!(
                "The replacement deletes bucket {bucket}. Its force_destroy is false, so if the \
                 bucket holds scan results or reports the apply fails before deleting anything. \
                 To let them go, set force_destroy = true and apply before this change; to keep \
                 them, copy them elsewhere first."
            ),
        )
    }
}

fn piece_error(e: PieceError) -> Diagnostics {
    Diagnostic::error(
        format!("Failed {} {}", e.action, e.piece),
        format!(
            "{e}\n\nWhat was done before the failure is kept in the state; run `terraform apply` again to finish, or \
             `terraform destroy` to remove every piece."
        ),
    )
    .into()
}

fn codes() -> ScannerReporter<Code<'static>> {
    let s = crate::code::scanner();
    let r = crate::code::reporter();
    ScannerReporter {
        scanner: Code {
            zip: s.zip,
            sha256: &s.sha256_base64,
        },
        reporter: Code {
            zip: r.zip,
            sha256: &r.sha256_base64,
        },
    }
}

/// Fills the computed attributes of a planned state: names from the suffix and the embedded code
/// hashes are known at plan; ARNs are known only after apply, so they keep their prior value on
/// update and are unknown on create or replacement. A planned `drift` of `[]` turns drift found by
/// the last read into a planned change.
pub fn plan_state(req: &PlanRequest) -> Value {
    let mut planned = req.proposed.clone();
    let suffix = req.proposed.attr("environment_suffix").clone();
    let names = suffix
        .as_str()
        .map(|s| StackNames::new(s).with_bucket(req.proposed.attr("bucket_name").as_str()));
    let keep_prior = !req.prior.is_null() && !req.replace;
    let Value::Object(attrs) = &mut planned else {
        return planned;
    };
    let derived = |pick: fn(&StackNames) -> String| match &names {
        Some(n) => Value::string(pick(n)),
        None => Value::Unknown,
    };
    attrs.insert("id".into(), suffix.clone());
    // Set in the configuration, or the default name (known from the suffix).
    let bucket = req.proposed.attr("bucket_name");
    if bucket.is_null() {
        attrs.insert("bucket_name".into(), derived(|n| n.bucket.clone()));
    }
    for (name, _) in OUTPUTS {
        let value = match name {
            "scanner_function_name" => derived(|n| n.scanner.clone()),
            "reporter_function_name" => derived(|n| n.reporter.clone()),
            "dashboard_name" => derived(|n| n.dashboard.clone()),
            "scanner_log_group_name" => derived(|n| n.scanner_log_group.clone()),
            "reporter_log_group_name" => derived(|n| n.reporter_log_group.clone()),
            _ if keep_prior => req.prior.attr(name).clone(),
            _ => Value::Unknown,
        };
        attrs.insert(name.to_string(), value);
    }
    let ScannerReporter { scanner, reporter } = codes();
    attrs.insert("scanner_code_sha256".into(), Value::string(scanner.sha256));
    attrs.insert(
        "reporter_code_sha256".into(),
        Value::string(reporter.sha256),
    );
    attrs.insert("drift".into(), Value::List(Vec::new()));
    planned
}

/// The state after a successful or partial apply: the planned value with what apply learnt.
fn applied_state(planned: &Value, applied: &stack::Applied, complete: bool) -> Value {
    let mut state = planned.clone();
    if let Value::Object(attrs) = &mut state {
        let known = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        attrs.insert("topic_arn".into(), known(&applied.topic_arn));
        attrs.insert(
            "scanner_function_arn".into(),
            known(&applied.function_arns.scanner),
        );
        attrs.insert(
            "reporter_function_arn".into(),
            known(&applied.function_arns.reporter),
        );
        if !complete {
            // Unknowns may not remain in a returned state; the next read fills in the truth.
            for v in attrs.values_mut() {
                if v.is_unknown() {
                    *v = Value::Null;
                }
            }
        }
    }
    state
}

fn with_error(state: Value, d: Diagnostics) -> Outcome {
    Outcome {
        state,
        private: Vec::new(),
        diagnostics: d,
    }
}

#[tonic::async_trait]
impl Resource for ComplianceMonitor {
    fn type_name(&self) -> &'static str {
        "compliance_monitor"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        validate::config(config)
    }

    async fn plan(&self, req: PlanRequest, _cancel: CancellationToken) -> Outcome {
        let mut diagnostics = validate::config(&req.config);
        if let Ok(cfg) = self.configured() {
            diagnostics
                .0
                .extend(default_tags_fit(&req.config, &cfg.settings));
        }
        if req.replace && !req.prior.is_null() && !req.proposed.is_null() {
            diagnostics.push(history_warning(&req.prior));
        }
        Outcome {
            state: plan_state(&req),
            diagnostics,
            ..Outcome::default()
        }
    }

    async fn apply(&self, req: ApplyRequest, cancel: CancellationToken) -> Outcome {
        match (req.prior.is_null(), req.planned.is_null()) {
            (_, true) => self.delete(req.prior, &cancel).await,
            (true, false) => self.create(req.planned, &cancel).await,
            (false, false) => self.update(req.prior, req.planned, &cancel).await,
        }
    }

    async fn read(&self, state: Value, private: Vec<u8>, _cancel: CancellationToken) -> Outcome {
        let (clients, d) = match self.desired(&state).await {
            Ok(x) => x,
            Err(diags) => return with_error(state, diags),
        };
        let observed = match stack::read(clients, &d).await {
            Ok(o) => o,
            Err(e) => return with_error(state, piece_error(e)),
        };
        if observed.nothing_exists() {
            tracing::info!(stack = %d.names.suffix, "every piece is gone: the resource is gone");
            return Outcome::default();
        }
        let mut new = state.clone();
        if let Value::Object(attrs) = &mut new {
            let drift = observed.drift(&d);
            attrs.insert(
                "drift".into(),
                Value::List(drift.into_iter().map(Value::String).collect()),
            );
            for (f, found) in observed.functions.iter() {
                let key = f.as_str();
                if let Some(sha) = observed.code_sha256(f) {
                    attrs.insert(format!("{key}_code_sha256"), Value::String(sha));
                }
                if let Some(o) = found.present() {
                    attrs.insert(format!("{key}_function_arn"), Value::String(o.arn.clone()));
                }
            }
            if observed.topic.present().is_some() {
                attrs.insert("topic_arn".into(), Value::String(d.topic_arn()));
            }
        }
        Outcome {
            state: new,
            private,
            diagnostics: Diagnostics::default(),
        }
    }

    async fn import(&self, id: &str, _cancel: CancellationToken) -> Outcome {
        // `<suffix>`, or `<suffix>/<bucket_name>` for a stack whose bucket name is set.
        let (suffix, bucket) = match id.split_once('/') {
            Some((suffix, bucket)) => (suffix, Some(bucket)),
            None => (id, None),
        };
        let checked = validate::environment_suffix(suffix)
            .and_then(|()| bucket.map_or(Ok(()), validate::bucket_name));
        if let Err(detail) = checked {
            return with_error(
                Value::Null,
                Diagnostic::error(
                    "Invalid import id",
                    format!(
                        "The import id is the stack's environment suffix, or \
                         `<environment_suffix>/<bucket_name>` when bucket_name is set. {detail}"
                    ),
                )
                .into(),
            );
        }
        let cfg = match self.configured() {
            Ok(c) => c,
            Err(d) => return with_error(Value::Null, d),
        };
        // Read with the defaults first: names depend only on the suffix (and the bucket's name).
        let mut defaults = super::schema::defaults_for(suffix);
        if let (Value::Object(attrs), Some(b)) = (&mut defaults, bucket) {
            attrs.insert("bucket_name".into(), Value::string(b));
        }
        let (clients, d) = match self.desired(&defaults).await {
            Ok(x) => x,
            Err(diags) => return with_error(Value::Null, diags),
        };
        let observed = match stack::read(clients, &d).await {
            Ok(o) => o,
            Err(e) => return with_error(Value::Null, piece_error(e)),
        };
        if observed.nothing_exists() {
            return with_error(
                Value::Null,
                Diagnostic::error(
                    "Cannot import a stack that does not exist",
                    format!("No piece of the stack {id:?} exists in this account and region (e.g. bucket {}).", d.names.bucket),
                )
                .into(),
            );
        }
        Outcome {
            state: super::import::state_from(&d, &observed, &cfg.settings),
            ..Outcome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::schema::defaults_for;

    fn with(mut v: Value, k: &str, x: Value) -> Value {
        if let Value::Object(m) = &mut v {
            m.insert(k.to_string(), x);
        }
        v
    }

    #[test]
    fn desired_tags_layer_provider_user_and_own() {
        let v = with(
            defaults_for("dev"),
            "tags",
            Value::Map(
                [
                    ("Team".to_string(), Value::string("a")),
                    ("Project".to_string(), Value::string("mine")),
                ]
                .into(),
            ),
        );
        let settings = ProviderSettings {
            default_tags: [
                ("Project".to_string(), "p".to_string()),
                ("Cost".to_string(), "1".to_string()),
            ]
            .into(),
            ..ProviderSettings::default()
        };
        let d = desired_from(
            &MonitorModel::from_value(&v).unwrap(),
            &settings,
            "eu-west-1",
            &Account::new("111122223333", "aws"),
        );
        assert_eq!(
            d.tags.get("Project").map(String::as_str),
            Some("mine"),
            "user tags win over default_tags"
        );
        assert_eq!(d.tags.get("Cost").map(String::as_str), Some("1"));
        assert_eq!(
            d.tags.get("ComplianceStack").map(String::as_str),
            Some("dev")
        );
        assert_eq!(d.restricted_ports.len(), 16);
        assert_eq!(d.timeout_seconds, 300);
        assert_eq!(
            d.topic_arn(),
            "arn:aws:sns:eu-west-1:111122223333:compliance-alerts-dev"
        );
    }

    /// Every ARN the stack writes (its own, and those in role and bucket policies) is in the
    /// partition of the credentials, so a stack in aws-cn or aws-us-gov matches what it reads.
    #[test]
    fn arns_follow_the_partition_of_the_account() {
        use crate::aws::roles::Role;
        let d = desired_from(
            &MonitorModel::defaults("dev"),
            &ProviderSettings::default(),
            "cn-north-1",
            &Account::new("111122223333", "aws-cn"),
        );
        let arns = [
            d.topic_arn(),
            d.function_arn("f"),
            d.role_arn("r"),
            d.log_group_arn("g"),
            d.bucket_arn("/scans/*"),
        ];
        for arn in &arns {
            assert!(arn.starts_with("arn:aws-cn:"), "{arn}");
        }
        let policies = [
            Role::Scanner.policy(&d).to_string(),
            Role::Reporter.policy(&d).to_string(),
            crate::aws::bucket::policy(&d).to_string(),
        ];
        for doc in &policies {
            assert!(!doc.contains("arn:aws:"), "{doc}");
            assert!(doc.contains("arn:aws-cn:"), "{doc}");
        }
    }

    #[test]
    fn plan_keeps_arns_on_update_and_unknowns_them_on_create_or_replace() {
        let prior = with(defaults_for("dev"), "topic_arn", Value::string("arn:old"));
        let proposed = with(prior.clone(), "lambda_memory_mb", Value::int(512));
        let req = |prior: &Value, replace| PlanRequest {
            prior: prior.clone(),
            proposed: proposed.clone(),
            config: proposed.clone(),
            replace,
        };
        assert_eq!(
            plan_state(&req(&prior, false)).attr("topic_arn"),
            &Value::string("arn:old")
        );
        assert_eq!(
            plan_state(&req(&prior, true)).attr("topic_arn"),
            &Value::Unknown
        );
        let created = plan_state(&req(&Value::Null, false));
        assert_eq!(created.attr("topic_arn"), &Value::Unknown);
        assert_eq!(
            created.attr("bucket_name"),
            &Value::string("compliance-results-dev")
        );
        assert_eq!(created.attr("drift"), &Value::List(vec![]));
    }

    #[test]
    fn a_partial_apply_returns_no_unknowns() {
        let planned = with(defaults_for("dev"), "scanner_function_arn", Value::Unknown);
        let applied = stack::Applied {
            topic_arn: Some("arn:topic".into()),
            function_arns: ScannerReporter::default(),
        };
        let state = applied_state(&planned, &applied, false);
        assert!(!state.contains_unknown());
        assert_eq!(state.attr("topic_arn"), &Value::string("arn:topic"));
        assert_eq!(state.attr("scanner_function_arn"), &Value::Null);
    }
}
