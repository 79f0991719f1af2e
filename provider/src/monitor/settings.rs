//! Provider block settings: validation and the resolved values resources use.

use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::value::Value;

pub use crate::desired::{AssumeRole, ProviderSettings};

fn opt_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

impl ProviderSettings {
    /// Reads a validated, known provider configuration.
    pub fn from_config(config: &Value) -> ProviderSettings {
        let role = config.attr("assume_role");
        ProviderSettings {
            region: opt_string(config.attr("region")),
            profile: opt_string(config.attr("profile")),
            endpoint_url: opt_string(config.attr("endpoint_url")),
            default_tags: config
                .attr("default_tags")
                .entries()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
            max_retries: config.attr("max_retries").as_i64().map(|n| n as u32),
            assume_role: opt_string(role.attr("role_arn")).map(|role_arn| AssumeRole {
                role_arn,
                session_name: opt_string(role.attr("session_name")),
                external_id: opt_string(role.attr("external_id")),
            }),
        }
    }
}

fn is_region(r: &str) -> bool {
    // e.g. us-east-1, eu-central-2, us-gov-west-1, ap-southeast-4
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// Validates the provider block; unknown values pass.
pub fn validate_provider(config: &Value) -> Diagnostics {
    let mut d = Diagnostics::default();
    let mut err = |path: AttrPath, summary: &str, detail: String| {
        d.push(Diagnostic::error(summary, detail).at(path));
    };
    if let Some(r) = config.attr("region").as_str() {
        if !is_region(r) {
            err(
                AttrPath::attr("region"),
                "Invalid region",
                format!("{r:?} is not an AWS region name. Use a name such as \"us-east-1\"."),
            );
        }
    }
    if let Some(u) = config.attr("endpoint_url").as_str() {
        let rest = u
            .strip_prefix("http://")
            .or_else(|| u.strip_prefix("https://"));
        if rest.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
            err(
                AttrPath::attr("endpoint_url"),
                "Invalid endpoint_url",
                format!("{u:?} is not an http(s) URL. Use e.g. \"http://127.0.0.1:5000\" for a local emulator."),
            );
        }
    }
    let retries = config.attr("max_retries");
    if let Value::Number(n) = retries {
        if !n.as_i64().is_some_and(|n| (0..=25).contains(&n)) {
            err(
                AttrPath::attr("max_retries"),
                "Invalid max_retries",
                format!("{n} is not a whole number from 0 to 25."),
            );
        }
    }
    if let Some(tags) = config.attr("default_tags").entries() {
        for key in tags.keys() {
            if let Err(detail) = super::validate::tag_key(key) {
                err(
                    AttrPath::attr("default_tags").key(key),
                    "Invalid default_tags",
                    detail,
                );
            }
        }
    }
    let role = config.attr("assume_role");
    let at = |n: &str| AttrPath::attr("assume_role").then_attr(n);
    if let Some(arn) = role.attr("role_arn").as_str() {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "iam"
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && parts[5]
                .strip_prefix("role/")
                .is_some_and(|n| !n.is_empty());
        if !ok {
            err(
                at("role_arn"),
                "Invalid assume_role.role_arn",
                format!("{arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)."),
            );
        }
    }
    if let Some(name) = role.attr("session_name").as_str() {
        let ok = (2..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c));
        if !ok {
            err(
                at("session_name"),
                "Invalid assume_role.session_name",
                format!("{name:?}: use 2 to 64 letters, digits or +=,.@-_ characters."),
            );
        }
    }
    if let Some(id) = role.attr("external_id").as_str() {
        if !(2..=1224).contains(&id.len()) {
            err(
                at("external_id"),
                "Invalid assume_role.external_id",
                "The external id must be 2 to 1224 characters long.".to_string(),
            );
        }
    }
    d
}
