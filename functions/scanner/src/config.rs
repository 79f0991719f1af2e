//! The scanner's settings: the same names as flags (`--bucket-name`) or environment variables
//! (`BUCKET_NAME`), so a local run and the Lambda function read one definition. The names, their
//! encoding and the defaults are the rules crate's [`contract`].

use clap::Args;
use compliance_rules::contract::{self, ContractError, ScannerSettings};

pub use compliance_rules::contract::{DEFAULT_METRIC_NAMESPACE, DEFAULT_STACK_NAME};

/// Validated settings of one scan.
pub type Config = ScannerSettings;

/// The scan's settings as given on the command line or in the environment. Lists are
/// comma-separated or a JSON array (what the provider writes when a key holds a comma); an unset
/// or blank value means the default, `[]` an empty list.
#[derive(Debug, Clone, Default, Args)]
pub struct ScanArgs {
    /// Bucket that receives the scan result.
    #[arg(long, env = contract::BUCKET_NAME)]
    pub bucket_name: Option<String>,
    /// Account id (12 digits) that must own the bucket; every S3 request is refused (403) when
    /// another account owns it. Without one, no check.
    #[arg(long, env = contract::BUCKET_OWNER)]
    pub bucket_owner: Option<String>,
    /// SNS topic that receives the alert; without one, no alert is sent.
    #[arg(long, env = contract::TOPIC_ARN)]
    pub topic_arn: Option<String>,
    /// Required tag keys [default: Environment,Owner,CostCenter].
    #[arg(long, env = contract::REQUIRED_TAGS)]
    pub required_tags: Option<String>,
    /// Ports that must not be open to the world [default: the rules page's list].
    #[arg(long, env = contract::RESTRICTED_PORTS)]
    pub restricted_ports: Option<String>,
    /// Tag key that exempts an instance when set to `true` or `until YYYY-MM-DD: reason`
    /// [default: ComplianceExempt].
    #[arg(long, env = contract::EXEMPT_TAG_KEY)]
    pub exempt_tag_key: Option<String>,
    /// Exemptions: a JSON array of {id, instances, groups, tags, checks, reason, owner, expires}
    /// [default: none].
    #[arg(long, env = contract::EXEMPTIONS)]
    pub exemptions: Option<String>,
    /// Regions to scan [default: the configured region, e.g. AWS_REGION].
    #[arg(long, env = contract::SCAN_REGIONS)]
    pub scan_regions: Option<String>,
    /// CloudWatch namespace of the metrics [default: ComplianceMonitoring].
    #[arg(long, env = contract::METRIC_NAMESPACE)]
    pub metric_namespace: Option<String>,
    /// The stack's name: the metrics' `Stack` dimension and the result's `stack` [default: local].
    #[arg(long, env = contract::STACK_NAME)]
    pub stack_name: Option<String>,
    /// Member account ids (12 digits) scanned besides the caller's own account, each through
    /// the member role [default: none].
    #[arg(long, env = contract::MEMBER_ACCOUNTS)]
    pub member_accounts: Option<String>,
    /// `true`: scan every ACTIVE account of the organization, listed with Organizations
    /// ListAccounts at scan time [default: false].
    #[arg(long, env = contract::ORGANIZATION_ACCOUNTS)]
    pub organization_accounts: Option<String>,
    /// The role assumed in each member account [default: ComplianceScannerMember].
    #[arg(long, env = contract::MEMBER_ROLE_NAME)]
    pub member_role_name: Option<String>,
    /// External id sent with each AssumeRole, when the member roles require one.
    #[arg(long, env = contract::MEMBER_EXTERNAL_ID)]
    pub member_external_id: Option<String>,
    /// Most (account, region) pairs read at once, 1 to 64 [default: 8].
    #[arg(long, env = contract::SCAN_CONCURRENCY)]
    pub scan_concurrency: Option<String>,
    /// Stop reading after this many seconds and store what was read, each region not read by
    /// then recorded as timed out (a flag only: the Lambda function stops before its own
    /// deadline).
    #[arg(long)]
    pub time_limit_seconds: Option<u64>,
}

/// The flag that sets a variable (`BUCKET_NAME` is `--bucket-name`): clap names each flag after
/// its field, and each field after its variable.
fn flag(variable: &str) -> String {
    format!("--{}", variable.to_ascii_lowercase().replace('_', "-"))
}

impl ScanArgs {
    /// The value given for a variable, by flag or environment.
    fn var(&self, name: &str) -> Option<String> {
        let value = match name {
            contract::BUCKET_NAME => &self.bucket_name,
            contract::BUCKET_OWNER => &self.bucket_owner,
            contract::TOPIC_ARN => &self.topic_arn,
            contract::REQUIRED_TAGS => &self.required_tags,
            contract::RESTRICTED_PORTS => &self.restricted_ports,
            contract::EXEMPT_TAG_KEY => &self.exempt_tag_key,
            contract::EXEMPTIONS => &self.exemptions,
            contract::SCAN_REGIONS => &self.scan_regions,
            contract::METRIC_NAMESPACE => &self.metric_namespace,
            contract::STACK_NAME => &self.stack_name,
            contract::MEMBER_ACCOUNTS => &self.member_accounts,
            contract::ORGANIZATION_ACCOUNTS => &self.organization_accounts,
            contract::MEMBER_ROLE_NAME => &self.member_role_name,
            contract::MEMBER_EXTERNAL_ID => &self.member_external_id,
            contract::SCAN_CONCURRENCY => &self.scan_concurrency,
            _ => return None,
        };
        value.clone()
    }

    /// Validates the arguments; `default_region` is the SDK's configured region.
    pub fn into_config(self, default_region: Option<&str>) -> anyhow::Result<Config> {
        ScannerSettings::from_vars(|name| self.var(name), default_region)
            .map_err(|e: ContractError| anyhow::anyhow!("{e} (or {})", flag(e.variable)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use compliance_rules::result::ScanSettings;

    #[test]
    fn defaults_apply_to_blank_values() {
        let args = ScanArgs {
            bucket_name: Some("b".into()),
            required_tags: Some(" ".into()),
            ..ScanArgs::default()
        };
        let c = args.into_config(Some("eu-west-1")).unwrap();
        assert_eq!(c.rules, ScanSettings::default());
        assert_eq!(c.regions, ["eu-west-1"]);
        assert_eq!(c.metric_namespace, DEFAULT_METRIC_NAMESPACE);
        assert_eq!(c.stack, "local");
        assert_eq!(c.topic_arn, None);
        assert_eq!(c.bucket_owner, None);
    }

    #[test]
    fn the_bucket_owner_is_read_and_checked() {
        let args = ScanArgs {
            bucket_name: Some("b".into()),
            bucket_owner: Some("123456789012".into()),
            ..ScanArgs::default()
        };
        let c = args.into_config(Some("us-east-1")).unwrap();
        assert_eq!(c.bucket_owner.as_deref(), Some("123456789012"));
        let bad = ScanArgs {
            bucket_name: Some("b".into()),
            bucket_owner: Some("1234".into()),
            ..ScanArgs::default()
        };
        let e = bad.into_config(Some("us-east-1")).unwrap_err().to_string();
        assert!(
            e.contains("BUCKET_OWNER") && e.contains("--bucket-owner"),
            "{e}"
        );
    }

    #[test]
    fn lists_are_comma_separated() {
        let args = ScanArgs {
            bucket_name: Some("b".into()),
            required_tags: Some("Team, Owner,,".into()),
            restricted_ports: Some("22, 8080".into()),
            scan_regions: Some("us-west-2,us-east-1".into()),
            ..ScanArgs::default()
        };
        let c = args.into_config(None).unwrap();
        assert_eq!(c.rules.required_tags, ["Team", "Owner"]);
        assert_eq!(c.rules.restricted_ports, [22, 8080]);
        assert_eq!(c.regions, ["us-east-1", "us-west-2"]);
    }

    #[test]
    fn lists_may_be_json_and_empty() {
        let args = ScanArgs {
            bucket_name: Some("b".into()),
            required_tags: Some(r#"["Cost, Center"," Owner"]"#.into()),
            restricted_ports: Some("[]".into()),
            ..ScanArgs::default()
        };
        let c = args.into_config(Some("us-east-1")).unwrap();
        assert_eq!(c.rules.required_tags, ["Cost, Center", " Owner"]);
        assert!(c.rules.restricted_ports.is_empty());
    }

    #[test]
    fn exemptions_are_read_and_checked() {
        let args = ScanArgs {
            bucket_name: Some("b".into()),
            exemptions: Some(
                r#"[{"id":"db","groups":["sg-1"],"checks":["ingress"],"reason":"r","owner":"o","expires":"2027-03-31"}]"#
                    .into(),
            ),
            ..ScanArgs::default()
        };
        let c = args.into_config(Some("us-east-1")).unwrap();
        assert_eq!(c.rules.exemptions.len(), 1);
        assert_eq!(c.rules.exemptions[0].groups, ["sg-1"]);
        let bad = ScanArgs {
            bucket_name: Some("b".into()),
            exemptions: Some("db until friday".into()),
            ..ScanArgs::default()
        };
        let e = bad.into_config(Some("us-east-1")).unwrap_err().to_string();
        assert!(
            e.contains("EXEMPTIONS") && e.contains("--exemptions"),
            "{e}"
        );
    }

    #[test]
    fn scope_is_read_and_checked() {
        let args = ScanArgs {
            bucket_name: Some("b".into()),
            scan_regions: Some("*".into()),
            member_accounts: Some("222222222222, 111111111111".into()),
            member_role_name: Some("Auditor".into()),
            member_external_id: Some("ext-42".into()),
            scan_concurrency: Some("3".into()),
            ..ScanArgs::default()
        };
        let c = args.into_config(Some("us-east-1")).unwrap();
        assert_eq!(c.regions, ["*"]);
        assert_eq!(c.members.accounts, ["222222222222", "111111111111"]);
        assert_eq!(c.members.role_name, "Auditor");
        assert_eq!(c.members.external_id.as_deref(), Some("ext-42"));
        assert_eq!(c.concurrency, 3);
        for (args, flag) in [
            (
                ScanArgs {
                    organization_accounts: Some("maybe".into()),
                    ..ScanArgs::default()
                },
                "--organization-accounts",
            ),
            (
                ScanArgs {
                    scan_concurrency: Some("100".into()),
                    ..ScanArgs::default()
                },
                "--scan-concurrency",
            ),
            (
                ScanArgs {
                    member_accounts: Some("1".into()),
                    ..ScanArgs::default()
                },
                "--member-accounts",
            ),
        ] {
            let args = ScanArgs {
                bucket_name: Some("b".into()),
                ..args
            };
            let e = args.into_config(Some("us-east-1")).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        let no_bucket = ScanArgs::default().into_config(Some("us-east-1"));
        let e = no_bucket.unwrap_err().to_string();
        assert!(
            e.contains("BUCKET_NAME") && e.contains("--bucket-name"),
            "{e}"
        );
        let bad_port = ScanArgs {
            bucket_name: Some("b".into()),
            restricted_ports: Some("22,ssh".into()),
            ..ScanArgs::default()
        };
        assert!(bad_port.into_config(Some("us-east-1")).is_err());
        let no_region = ScanArgs {
            bucket_name: Some("b".into()),
            ..ScanArgs::default()
        };
        assert!(no_region.into_config(None).is_err());
    }
}
