//! What the stack should be, as plain values: the names of its pieces, the desired settings of
//! every piece, the account it lives in and the provider's settings. Both the `aws` pieces and the
//! `monitor` resource build on this; it knows neither AWS clients nor Terraform values.

pub mod names;
pub mod pair;
pub mod settings;

use std::collections::BTreeMap;

pub use names::StackNames;
pub use pair::{FailureDuration, Function, Kind, ScannerReporter};
pub use settings::{AssumeRole, ProviderSettings};

/// The account and partition the stack lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The 12-digit account id.
    pub id: String,
    /// The ARN partition: `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
}

impl Account {
    /// An account in a partition.
    pub fn new(id: &str, partition: &str) -> Account {
        Account {
            id: id.to_string(),
            partition: partition.to_string(),
        }
    }
}

/// The partition of an ARN (`arn:PARTITION:service:...`).
pub fn partition_of(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next() == Some("arn"))
        .then(|| parts.next())
        .flatten()
        .filter(|p| p.starts_with("aws"))
}

/// Everything the stack should be, derived from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Names of every piece.
    pub names: StackNames,
    /// Account id (for ARNs).
    pub account_id: String,
    /// ARN partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
    /// Region (for ARNs).
    pub region: String,
    /// E-mail subscribed to the topic.
    pub alert_email: String,
    /// Required tag keys.
    pub required_tags: Vec<String>,
    /// Restricted ports.
    pub restricted_ports: Vec<u16>,
    /// Exempting tag key.
    pub exempt_tag_key: String,
    /// Scanner schedule expression.
    pub scan_schedule: String,
    /// Reporter schedule expression.
    pub report_schedule: String,
    /// Log retention in days.
    pub log_retention_days: i32,
    /// Days before results move to Glacier.
    pub glacier_transition_days: i32,
    /// Function memory in MB.
    pub memory_mb: i32,
    /// Function timeout in seconds.
    pub timeout_seconds: i32,
    /// Tags on every piece.
    pub tags: BTreeMap<String, String>,
    /// A destroy may delete the bucket's objects (the compliance history).
    pub force_destroy: bool,
    /// The exemptions the scanner applies.
    pub exemptions: Vec<compliance_rules::exemptions::Exemption>,
    /// Who and where the scanner scans.
    pub scope: Scope,
    /// Changes reach the scanner within a minute through a rule, a queue and its mapping.
    pub event_driven: bool,
}

/// The accounts and regions a scan covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Regions to scan in each account; `["*"]` for every enabled region.
    pub regions: Vec<String>,
    /// Member accounts scanned besides the stack's own.
    pub member_accounts: Vec<String>,
    /// Every active account of the organization, listed at scan time.
    pub organization_accounts: bool,
    /// The role assumed in each member account.
    pub member_role_name: String,
    /// The external id the member roles require.
    pub member_external_id: Option<String>,
    /// Most (account, region) pairs read at once.
    pub concurrency: u32,
}

impl Scope {
    /// The stack's own account and region only: today's default.
    pub fn here(region: &str) -> Scope {
        Scope {
            regions: vec![region.to_string()],
            member_accounts: Vec::new(),
            organization_accounts: false,
            member_role_name: "ComplianceScannerMember".to_string(),
            member_external_id: None,
            concurrency: 8,
        }
    }

    /// True when the scanner assumes roles in other accounts.
    pub fn reaches_members(&self) -> bool {
        self.organization_accounts || !self.member_accounts.is_empty()
    }
}

impl Desired {
    /// A queue's ARN.
    pub fn queue_arn(&self, name: &str) -> String {
        self.arn(&format!("sqs:{}:{}:{name}", self.region, self.account_id))
    }

    /// The change rule's ARN.
    pub fn change_rule_arn(&self) -> String {
        self.arn(&format!(
            "events:{}:{}:rule/{}",
            self.region, self.account_id, self.names.change_rule
        ))
    }

    /// An ARN in the stack's partition: `arn:<partition>:<rest>`.
    pub fn arn(&self, rest: &str) -> String {
        format!("arn:{}:{rest}", self.partition)
    }

    /// The topic's ARN.
    pub fn topic_arn(&self) -> String {
        self.arn(&format!(
            "sns:{}:{}:{}",
            self.region, self.account_id, self.names.topic
        ))
    }

    /// A function's ARN.
    pub fn function_arn(&self, name: &str) -> String {
        self.arn(&format!(
            "lambda:{}:{}:function:{name}",
            self.region, self.account_id
        ))
    }

    /// A role's ARN.
    pub fn role_arn(&self, name: &str) -> String {
        self.arn(&format!("iam::{}:role/{name}", self.account_id))
    }

    /// A log group's ARN (streams included).
    pub fn log_group_arn(&self, name: &str) -> String {
        self.arn(&format!(
            "logs:{}:{}:log-group:{name}:*",
            self.region, self.account_id
        ))
    }

    /// The ARN of the bucket (`path` empty) or of objects in it (`path` e.g. `/scans/*`).
    pub fn bucket_arn(&self, path: &str) -> String {
        self.arn(&format!("s3:::{}{path}", self.names.bucket))
    }
}
