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
pub const OUTPUTS: [(&str, &str); 9] = [
    (
        "bucket_name",
        "Name of the S3 bucket that holds scan results and reports.",
    ),
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

fn strings(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| Value::string(*s)).collect())
}

/// The `compliance_monitor` resource schema.
pub fn resource_schema() -> Schema {
    use Mode::*;
    let mut attributes = vec![
        Attribute::new("id", Type::String, Computed, "The stack's id: its environment suffix."),
        Attribute::new(
            "environment_suffix",
            Type::String,
            Required,
            "Suffix of every resource name (`compliance-results-<suffix>`, ...), so stacks live side by side. \
             Lowercase letters, digits and hyphens, at most 44 characters. Changing it replaces the stack.",
        )
        .requires_replace(),
        Attribute::new("alert_email", Type::String, Optional, "E-mail address subscribed to the alert topic.")
            .default(Value::string("compliance-team@example.com")),
        Attribute::new(
            "required_tags",
            Type::list(Type::String),
            Optional,
            "Tag keys every EC2 instance must carry with a non-blank value (case-sensitive).",
        )
        .default(strings(&DEFAULT_REQUIRED_TAGS)),
        Attribute::new(
            "restricted_ports",
            Type::list(Type::Number),
            Optional,
            "Ports that must not be open to `0.0.0.0/0` or `::/0` over TCP or UDP.",
        )
        .default(Value::List(DEFAULT_RESTRICTED_PORTS.iter().map(|p| Value::int(*p)).collect())),
        Attribute::new(
            "exempt_tag_key",
            Type::String,
            Optional,
            "Tag key that exempts an instance when its value is `true` (any case).",
        )
        .default(Value::string("ComplianceExempt")),
        Attribute::new("scan_schedule", Type::String, Optional, "EventBridge schedule of the scanner.")
            .default(Value::string("rate(6 hours)")),
        Attribute::new("report_schedule", Type::String, Optional, "EventBridge schedule of the daily reporter.")
            .default(Value::string("cron(0 0 * * ? *)")),
        Attribute::new(
            "log_retention_days",
            Type::Number,
            Optional,
            "Retention of both functions' log groups, one of CloudWatch Logs' accepted values.",
        )
        .default(Value::int(30)),
        Attribute::new(
            "glacier_transition_days",
            Type::Number,
            Optional,
            "Days after which results move to S3 Glacier (they are never expired).",
        )
        .default(Value::int(90)),
        Attribute::new("lambda_memory_mb", Type::Number, Optional, "Memory of both functions, in MB (128-10240).")
            .default(Value::int(256)),
        Attribute::new(
            "lambda_timeout_seconds",
            Type::Number,
            Optional,
            "Timeout of both functions, in seconds (1-900); the duration alarms fire at this limit.",
        )
        .default(Value::int(300)),
        Attribute::new(
            "tags",
            Type::map(Type::String),
            Optional,
            "Tags for every piece of the stack, on top of the provider's `default_tags` and the stack's own \
             (`ManagedBy`, `ComplianceStack`).",
        ),
    ];
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
            blocks: Vec::new(),
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

/// A resource value with every default set, for `suffix`: what an import starts from.
pub fn defaults_for(suffix: &str) -> Value {
    let schema = resource_schema();
    let mut attrs: std::collections::BTreeMap<String, Value> = schema
        .block
        .attributes
        .iter()
        .map(|a| (a.name.to_string(), a.default.clone().unwrap_or(Value::Null)))
        .collect();
    attrs.insert("environment_suffix".into(), Value::string(suffix));
    attrs.insert("id".into(), Value::string(suffix));
    Value::Object(attrs)
}
