//! The `compliance_monitor` resource: validation and planning of the whole stack.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::names::StackNames;
use super::schema::{resource_schema, OUTPUTS};
use super::settings::ProviderSettings;
use super::validate;
use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::schema::Schema;
use crate::protocol::service::{ApplyRequest, Outcome, PlanRequest, Resource};
use crate::protocol::value::Value;

/// The `compliance_monitor` resource type.
pub struct ComplianceMonitor {
    schema: Schema,
    /// Filled by ConfigureProvider.
    #[allow(dead_code)]
    settings: Arc<std::sync::OnceLock<ProviderSettings>>,
}

impl ComplianceMonitor {
    /// A resource that uses the provider's settings once they are configured.
    pub fn new(settings: Arc<std::sync::OnceLock<ProviderSettings>>) -> ComplianceMonitor {
        ComplianceMonitor {
            schema: resource_schema(),
            settings,
        }
    }
}

/// Runs `check` on a known, non-null attribute and turns its message into a diagnostic there.
fn check_attr(
    diags: &mut Diagnostics,
    config: &Value,
    name: &str,
    summary: &str,
    check: impl FnOnce(&Value) -> Result<(), String>,
) {
    let v = config.attr(name);
    if v.is_null() || v.is_unknown() {
        return;
    }
    if let Err(detail) = check(v) {
        diags.push(Diagnostic::error(summary, detail).at(AttrPath::attr(name)));
    }
}

/// A whole number, or an explanation naming the attribute.
fn whole(v: &Value, name: &str) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{name} must be a whole number."))
}

/// Validates the resource configuration; unknown values pass.
pub fn validate_config(config: &Value) -> Diagnostics {
    let mut d = Diagnostics::default();
    check_attr(
        &mut d,
        config,
        "environment_suffix",
        "Invalid environment_suffix",
        |v| validate::environment_suffix(v.as_str().unwrap_or_default()),
    );
    check_attr(&mut d, config, "alert_email", "Invalid alert_email", |v| {
        validate::email(v.as_str().unwrap_or_default())
    });
    for name in ["scan_schedule", "report_schedule"] {
        check_attr(&mut d, config, name, &format!("Invalid {name}"), |v| {
            validate::schedule(v.as_str().unwrap_or_default())
        });
    }
    check_attr(
        &mut d,
        config,
        "log_retention_days",
        "Invalid log_retention_days",
        |v| validate::log_retention(whole(v, "log_retention_days")?),
    );
    check_attr(
        &mut d,
        config,
        "lambda_memory_mb",
        "Invalid lambda_memory_mb",
        |v| {
            validate::in_range(
                whole(v, "lambda_memory_mb")?,
                validate::LAMBDA_MEMORY_MB,
                "Lambda memory (MB)",
            )
        },
    );
    check_attr(
        &mut d,
        config,
        "lambda_timeout_seconds",
        "Invalid lambda_timeout_seconds",
        |v| {
            validate::in_range(
                whole(v, "lambda_timeout_seconds")?,
                validate::LAMBDA_TIMEOUT_SECONDS,
                "Lambda timeout (seconds)",
            )
        },
    );
    check_attr(
        &mut d,
        config,
        "glacier_transition_days",
        "Invalid glacier_transition_days",
        |v| {
            validate::in_range(
                whole(v, "glacier_transition_days")?,
                (0, 36500),
                "the Glacier transition (days)",
            )
        },
    );
    check_attr(
        &mut d,
        config,
        "exempt_tag_key",
        "Invalid exempt_tag_key",
        |v| validate::tag_key(v.as_str().unwrap_or_default()),
    );

    // Lists: each element is checked where it stands, so the error points at it.
    let tags = config.attr("required_tags");
    if let Value::List(items) = tags {
        if items.is_empty() {
            d.push(
                Diagnostic::error(
                    "Invalid required_tags",
                    "required_tags is empty, so every instance would pass. List at least one key, e.g. [\"Owner\"], \
                     or leave the attribute out for the defaults.",
                )
                .at(AttrPath::attr("required_tags")),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let Some(key) = item.as_str() else { continue };
            let at = AttrPath::attr("required_tags").index(i);
            if let Err(detail) = validate::tag_key(key) {
                d.push(Diagnostic::error("Invalid required_tags", detail).at(at));
            } else if !seen.insert(key) {
                d.push(
                    Diagnostic::error(
                        "Invalid required_tags",
                        format!("{key:?} is listed twice. Remove the duplicate."),
                    )
                    .at(at),
                );
            }
        }
    }
    if let Value::List(items) = config.attr("restricted_ports") {
        let mut seen = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            if item.is_unknown() {
                continue;
            }
            let at = AttrPath::attr("restricted_ports").index(i);
            match item.as_i64() {
                Some(p) if (0..=65535).contains(&p) => {
                    if !seen.insert(p) {
                        d.push(
                            Diagnostic::error(
                                "Invalid restricted_ports",
                                format!("Port {p} is listed twice. Remove the duplicate."),
                            )
                            .at(at),
                        );
                    }
                }
                _ => d.push(
                    Diagnostic::error(
                        "Invalid restricted_ports",
                        format!(
                            "{} is not a port. Ports are whole numbers from 0 to 65535.",
                            match item {
                                Value::Number(n) => n.to_string(),
                                _ => "null".into(),
                            }
                        ),
                    )
                    .at(at),
                ),
            }
        }
    }
    if let Some(entries) = config.attr("tags").entries() {
        for (key, value) in entries {
            let at = AttrPath::attr("tags").key(key);
            if let Err(detail) = validate::tag_key(key) {
                d.push(Diagnostic::error("Invalid tags", detail).at(at));
            } else if value.as_str().is_some_and(|v| v.chars().count() > 256) {
                d.push(
                    Diagnostic::error(
                        "Invalid tags",
                        format!("The value of tag {key:?} is longer than AWS's 256 characters. Shorten it."),
                    )
                    .at(at),
                );
            }
        }
    }
    d
}

/// Fills the computed attributes of a planned state: names from the suffix are known at plan;
/// ARNs are known only after apply, so they keep their prior value on update and are unknown on
/// create or replacement.
pub fn plan_state(req: &PlanRequest) -> Value {
    let mut planned = req.proposed.clone();
    let suffix = req.proposed.attr("environment_suffix").clone();
    let names = suffix.as_str().map(StackNames::new);
    let keep_prior = !req.prior.is_null() && !req.replace;
    let Value::Object(attrs) = &mut planned else {
        return planned;
    };
    let derived = |pick: fn(&StackNames) -> String| match &names {
        Some(n) => Value::string(pick(n)),
        None => Value::Unknown,
    };
    attrs.insert("id".into(), suffix.clone());
    for (name, _) in OUTPUTS {
        let value = match name {
            "bucket_name" => derived(|n| n.bucket.clone()),
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
    planned
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
        validate_config(config)
    }

    async fn plan(&self, req: PlanRequest, _cancel: CancellationToken) -> Outcome {
        Outcome {
            state: plan_state(&req),
            diagnostics: validate_config(&req.config),
            ..Outcome::default()
        }
    }

    async fn apply(&self, req: ApplyRequest, _cancel: CancellationToken) -> Outcome {
        if req.planned.is_null() {
            // Nothing was ever created by this build, so there is nothing to delete.
            return Outcome::default();
        }
        Outcome {
            state: req.prior,
            diagnostics: Diagnostic::error(
                "compliance_monitor cannot create AWS resources yet",
                "This build of the provider validates and plans the stack; creating its AWS pieces is not \
                 implemented yet. Nothing was created.",
            )
            .into(),
            ..Outcome::default()
        }
    }

    async fn read(&self, state: Value, private: Vec<u8>, _cancel: CancellationToken) -> Outcome {
        Outcome {
            state,
            private,
            diagnostics: Diagnostics::default(),
        }
    }

    async fn import(&self, id: &str, _cancel: CancellationToken) -> Outcome {
        Outcome {
            diagnostics: Diagnostic::error(
                "Import is not implemented yet",
                format!("This build cannot adopt the stack {id:?} yet."),
            )
            .into(),
            ..Outcome::default()
        }
    }
}
