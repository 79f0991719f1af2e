//! Import: rebuilds the resource's settings from what the stack's pieces hold, so that the next
//! plan is empty when the configuration matches the stack.

use std::collections::BTreeMap;

use super::exemption::ExemptionBlock;
use super::model::MonitorModel;
use super::resource::own_tags;
use super::settings::ProviderSettings;
use super::stack::Observed;
use crate::aws::Desired;
use crate::protocol::value::Value;
use compliance_rules::contract::{
    decode_exemptions, decode_key, decode_ports, decode_strings, ScannerSettings, EXEMPTIONS,
    EXEMPT_TAG_KEY, REQUIRED_TAGS, RESTRICTED_PORTS,
};

/// The state of an imported stack: the model with every setting found on the pieces (the
/// defaults where a piece is gone or holds nothing readable), plus the computed attributes.
pub fn state_from(d: &Desired, o: &Observed, settings: &ProviderSettings) -> Value {
    model_from(d, o, settings).state(d, o)
}

/// The resource's settings as the pieces hold them.
pub fn model_from(d: &Desired, o: &Observed, settings: &ProviderSettings) -> MonitorModel {
    let mut m = MonitorModel::defaults(&d.names.suffix);
    if let Some((email, _)) = o.topic.present().and_then(|t| t.emails.first()) {
        m.alert_email = email.clone();
    }
    if let Some(f) = o.functions.scanner.present() {
        // Read as the scanner reads them. A value unset, blank or unreadable keeps the default:
        // the scanner applied the default then too (or refused to run), and the next plan shows
        // the environment's difference from the configuration.
        let env = |k: &str| f.environment.get(k).map(String::as_str).unwrap_or("");
        if let Ok(Some(tags)) = decode_strings(REQUIRED_TAGS, env(REQUIRED_TAGS)) {
            m.required_tags = tags;
        }
        if let Ok(Some(ports)) = decode_ports(RESTRICTED_PORTS, env(RESTRICTED_PORTS)) {
            m.restricted_ports = ports;
        }
        if let Some(key) = decode_key(env(EXEMPT_TAG_KEY)) {
            m.exempt_tag_key = key;
        }
        if let Ok(exemptions) = decode_exemptions(env(EXEMPTIONS)) {
            m.exemption = exemptions
                .iter()
                .map(ExemptionBlock::from_exemption)
                .collect();
        }
        // The scan's scope, as the scanner reads it: the provider's region alone is the default.
        let var = |k: &str| f.environment.get(k).cloned();
        if let Ok(scanner) = ScannerSettings::from_vars(var, Some(&d.region)) {
            m.scan_regions = (scanner.regions != [d.region.clone()]).then_some(scanner.regions);
            m.member_accounts =
                (!scanner.members.accounts.is_empty()).then_some(scanner.members.accounts);
            m.organization_accounts = scanner.members.organization;
            m.member_role_name = scanner.members.role_name;
            m.member_external_id = scanner.members.external_id;
            m.scan_concurrency = i32::try_from(scanner.concurrency).unwrap_or(m.scan_concurrency);
        }
        m.lambda_memory_mb = f.memory;
        m.lambda_timeout_seconds = f.timeout;
        // The user's tags: the function's, less the provider's default tags and the stack's own.
        let own: Vec<String> = own_tags(&d.names.suffix)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let user: BTreeMap<String, String> = f
            .tags
            .iter()
            .filter(|(k, v)| !own.contains(k) && settings.default_tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        m.tags = (!user.is_empty()).then_some(user);
    }
    // The event-driven pieces exist together or not at all; the change rule stands for them.
    m.event_driven = o.change_rule.present().is_some();
    if let Some(s) = o.schedules.scanner.present() {
        m.scan_schedule = s.expression.clone();
    }
    if let Some(s) = o.schedules.reporter.present() {
        m.report_schedule = s.expression.clone();
    }
    if let Some(days) = o
        .log_groups
        .scanner
        .present()
        .and_then(|l| l.retention_days)
    {
        m.log_retention_days = days;
    }
    if let Some(days) = o.bucket.present().and_then(|b| b.glacier_days) {
        m.glacier_transition_days = days;
    }
    m
}

impl MonitorModel {
    /// The full state of this configuration over the stack `o`: the settings, then every
    /// computed attribute (names from the suffix, what the pieces report, no drift).
    fn state(&self, d: &Desired, o: &Observed) -> Value {
        let mut state = self.to_value();
        let Value::Object(attrs) = &mut state else {
            return state;
        };
        let n = &d.names;
        let known = |v: Option<String>| v.map_or(Value::Null, Value::String);
        let scanner = o.functions.scanner.present();
        let reporter = o.functions.reporter.present();
        for (name, value) in [
            ("id", Value::string(&n.suffix)),
            ("topic_arn", known(o.topic.present().map(|_| d.topic_arn()))),
            (
                "scanner_function_arn",
                known(scanner.map(|f| f.arn.clone())),
            ),
            (
                "scanner_code_sha256",
                known(scanner.map(|f| f.code_sha256.clone())),
            ),
            (
                "reporter_function_arn",
                known(reporter.map(|f| f.arn.clone())),
            ),
            (
                "reporter_code_sha256",
                known(reporter.map(|f| f.code_sha256.clone())),
            ),
            ("bucket_name", Value::string(&n.bucket)),
            ("scanner_function_name", Value::string(&n.scanner)),
            ("reporter_function_name", Value::string(&n.reporter)),
            ("dashboard_name", Value::string(&n.dashboard)),
            (
                "scanner_log_group_name",
                Value::string(&n.scanner_log_group),
            ),
            (
                "reporter_log_group_name",
                Value::string(&n.reporter_log_group),
            ),
            ("drift", Value::List(Vec::new())),
        ] {
            attrs.insert(name.to_string(), value);
        }
        state
    }
}
