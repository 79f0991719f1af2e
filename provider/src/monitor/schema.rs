//! The `compliance_monitor` resource's schema and the provider block's schema.

use crate::protocol::schema::{Attribute, Block, Mode, NestedBlock, Nesting, Schema};
use crate::protocol::value::{Type, Value};

// The defaults are the functions' own (the rules crate's contract), so an unset value and the
// schema's default cannot differ.
use compliance_rules::contract::DEFAULT_RESTRICTED_PORTS as PORTS;
pub use compliance_rules::contract::{DEFAULT_EXEMPT_TAG_KEY, DEFAULT_REQUIRED_TAGS};

/// Ports that must not be open to the world, by default: the contract's, as Terraform numbers.
pub const DEFAULT_RESTRICTED_PORTS: [i64; PORTS.len()] = {
    let mut out = [0; PORTS.len()];
    let mut i = 0;
    while i < PORTS.len() {
        out[i] = PORTS[i] as i64;
        i += 1;
    }
    out
};

/// Computed attributes that hold the seed's outputs, with their descriptions.
pub const OUTPUTS: [(&str, &str); 8] = [
    ("topic_arn", "ARN of the SNS topic that receives alerts."),
    (
        "scanner_function_name",
        "Name of the scanner Lambda function.",
    ),
    (
        "scanner_function_arn",
        "ARN of the scanner Lambda function.",
    ),
    (
        "reporter_function_name",
        "Name of the reporter Lambda function.",
    ),
    (
        "reporter_function_arn",
        "ARN of the reporter Lambda function.",
    ),
    ("dashboard_name", "Name of the CloudWatch dashboard."),
    (
        "scanner_log_group_name",
        "Name of the scanner's CloudWatch log group.",
    ),
    (
        "reporter_log_group_name",
        "Name of the reporter's CloudWatch log group.",
    ),
];

/// The `compliance_monitor` resource schema.
pub fn resource_schema() -> Schema {
    use Mode::*;
    let mut attributes = vec![Attribute::new(
        "id",
        Type::String,
        Computed,
        "The stack's id: its environment suffix.",
    )];
    // The configurable attributes, as the model declares them.
    let defs = super::model::attributes();
    attributes.extend(defs.iter().filter(|a| !a.block).map(|a| a.attribute()));
    attributes.extend(
        OUTPUTS
            .iter()
            .map(|(name, description)| Attribute::new(name, Type::String, Computed, *description)),
    );
    attributes.extend([
        Attribute::new(
            "scanner_code_sha256",
            Type::String,
            Computed,
            "SHA-256 (base64, as Lambda reports it) of the scanner's deployment package. A provider with new \
             function code plans an in-place update of this and nothing else.",
        ),
        Attribute::new(
            "reporter_code_sha256",
            Type::String,
            Computed,
            "SHA-256 (base64) of the reporter's deployment package.",
        ),
        Attribute::new(
            "drift",
            Type::list(Type::String),
            Computed,
            "Pieces of the stack that differ from the configuration, as found by the last read (deleted or \
             changed outside Terraform). A non-empty list plans an update that puts them back.",
        ),
    ]);
    Schema {
        version: 0,
        block: Block {
            description: "An EC2 compliance monitor: scanner and reporter Lambda functions on schedules, results in S3, \
                          metrics, alarms and a dashboard in CloudWatch, and alerts by SNS e-mail."
                .into(),
            attributes,
            // The one nested block the model declares.
            blocks: defs
                .iter()
                .filter(|a| a.block)
                .map(|_| super::exemption::nested_block())
                .collect(),
        },
    }
}

/// The provider block's schema.
pub fn provider_schema() -> Schema {
    use Mode::*;
    Schema {
        version: 0,
        block: Block {
            description: "Deploys EC2 compliance monitors. Every setting falls back to the standard AWS environment \
                          variables and shared configuration files."
                .into(),
            attributes: vec![
                Attribute::new("region", Type::String, Optional, "AWS region. Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's region."),
                Attribute::new("profile", Type::String, Optional, "Named profile of the shared config files. Default: `AWS_PROFILE`."),
                Attribute::new(
                    "endpoint_url",
                    Type::String,
                    Optional,
                    "One endpoint for every AWS service, e.g. a local emulator (moto, LocalStack). Default: `AWS_ENDPOINT_URL`.",
                ),
                Attribute::new("default_tags", Type::map(Type::String), Optional, "Tags added to every piece of every stack."),
                Attribute::new(
                    "max_retries",
                    Type::Number,
                    Optional,
                    "Most attempts for a throttled or failed AWS call (0-25). Default: `AWS_MAX_ATTEMPTS`, then 10.",
                ),
            ],
            blocks: vec![NestedBlock {
                name: "assume_role",
                nesting: Nesting::Single,
                block: Block {
                    description: "Role to assume for every AWS call.".into(),
                    attributes: vec![
                        Attribute::new("role_arn", Type::String, Required, "ARN of the role to assume."),
                        Attribute::new("session_name", Type::String, Optional, "Session name (2-64 characters)."),
                        Attribute::new("external_id", Type::String, Optional, "External id the role's trust policy requires.")
                            .sensitive(),
                    ],
                    blocks: Vec::new(),
                },
            }],
        },
    }
}

/// A resource value with every default set, for `suffix` (computed attributes null): what an
/// import starts from.
pub fn defaults_for(suffix: &str) -> Value {
    let mut v = super::model::MonitorModel::defaults(suffix).to_value();
    if let Value::Object(attrs) = &mut v {
        for a in resource_schema().block.attributes {
            attrs.entry(a.name.to_string()).or_insert(Value::Null);
        }
        attrs.insert("id".into(), Value::string(suffix));
    }
    v
}
