//! Import: rebuilds the resource's settings from what the stack's pieces hold, so that the next
//! plan is empty when the configuration matches the stack.

use super::resource::own_tags;
use super::settings::ProviderSettings;
use super::stack::Observed;
use crate::aws::Desired;
use crate::desired::StackNames;
use crate::protocol::value::Value;
use compliance_rules::contract::{
    decode_key, decode_ports, decode_strings, EXEMPT_TAG_KEY, REQUIRED_TAGS, RESTRICTED_PORTS,
};

/// The state of an imported stack: `defaults` overridden by every setting found on the pieces.
pub fn state_from(
    defaults: &Value,
    d: &Desired,
    o: &Observed,
    settings: &ProviderSettings,
) -> Value {
    let mut state = defaults.clone();
    let Value::Object(attrs) = &mut state else {
        return state;
    };
    let mut set = |k: &str, v: Value| {
        attrs.insert(k.to_string(), v);
    };
    if let Some(t) = o.topic.present() {
        if let Some((email, _)) = t.emails.first() {
            set("alert_email", Value::string(email));
        }
        set("topic_arn", Value::string(d.topic_arn()));
    }
    if let Some(f) = o.functions.scanner.present() {
        // Read as the scanner reads them. A value unset, blank or unreadable keeps the default:
        // the scanner applied the default then too (or refused to run), and the next plan shows
        // the environment's difference from the configuration.
        let env = |k: &str| f.environment.get(k).map(String::as_str).unwrap_or("");
        if let Ok(Some(tags)) = decode_strings(REQUIRED_TAGS, env(REQUIRED_TAGS)) {
            set(
                "required_tags",
                Value::List(tags.into_iter().map(Value::string).collect()),
            );
        }
        if let Ok(Some(ports)) = decode_ports(RESTRICTED_PORTS, env(RESTRICTED_PORTS)) {
            let ports = ports.into_iter().map(|p| Value::int(p.into())).collect();
            set("restricted_ports", Value::List(ports));
        }
        if let Some(key) = decode_key(env(EXEMPT_TAG_KEY)) {
            set("exempt_tag_key", Value::string(key));
        }
        set("lambda_memory_mb", Value::int(f.memory.into()));
        set("lambda_timeout_seconds", Value::int(f.timeout.into()));
        set("scanner_function_arn", Value::string(&f.arn));
        set("scanner_code_sha256", Value::string(&f.code_sha256));
        // The user's tags: the function's, less the provider's default tags and the stack's own.
        let own: Vec<String> = own_tags(&d.names.suffix)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let user: std::collections::BTreeMap<String, Value> = f
            .tags
            .iter()
            .filter(|(k, v)| !own.contains(k) && settings.default_tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), Value::string(v)))
            .collect();
        set(
            "tags",
            if user.is_empty() {
                Value::Null
            } else {
                Value::Map(user)
            },
        );
    }
    if let Some(f) = o.functions.reporter.present() {
        set("reporter_function_arn", Value::string(&f.arn));
        set("reporter_code_sha256", Value::string(&f.code_sha256));
    }
    if let Some(s) = o.schedules.scanner.present() {
        set("scan_schedule", Value::string(&s.expression));
    }
    if let Some(s) = o.schedules.reporter.present() {
        set("report_schedule", Value::string(&s.expression));
    }
    if let Some(days) = o
        .log_groups
        .scanner
        .present()
        .and_then(|l| l.retention_days)
    {
        set("log_retention_days", Value::int(days.into()));
    }
    if let Some(days) = o.bucket.present().and_then(|b| b.glacier_days) {
        set("glacier_transition_days", Value::int(days.into()));
    }
    let names = StackNames::new(&d.names.suffix);
    set("bucket_name", Value::string(names.bucket));
    set("scanner_function_name", Value::string(names.scanner));
    set("reporter_function_name", Value::string(names.reporter));
    set("dashboard_name", Value::string(names.dashboard));
    set(
        "scanner_log_group_name",
        Value::string(names.scanner_log_group),
    );
    set(
        "reporter_log_group_name",
        Value::string(names.reporter_log_group),
    );
    set("drift", Value::List(Vec::new()));
    state
}
