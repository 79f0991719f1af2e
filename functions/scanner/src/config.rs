//! The scanner's settings: the same names as flags (`--bucket-name`) or environment variables
//! (`BUCKET_NAME`), so a local run and the Lambda function read one definition.

use anyhow::{bail, Context};
use clap::Args;
use compliance_rules::result::ScanSettings;

/// Metric namespace when `METRIC_NAMESPACE` is not set.
pub const DEFAULT_METRIC_NAMESPACE: &str = "ComplianceMonitoring";

/// Stack name when `STACK_NAME` is not set (a local run outside any stack).
pub const DEFAULT_STACK_NAME: &str = "local";

/// The scan's settings as given on the command line or in the environment. Lists are
/// comma-separated; an empty value means the default.
#[derive(Debug, Clone, Default, Args)]
pub struct ScanArgs {
    /// Bucket that receives the scan result.
    #[arg(long, env = "BUCKET_NAME")]
    pub bucket_name: Option<String>,
    /// SNS topic that receives the alert; without one, no alert is sent.
    #[arg(long, env = "TOPIC_ARN")]
    pub topic_arn: Option<String>,
    /// Required tag keys [default: Environment,Owner,CostCenter].
    #[arg(long, env = "REQUIRED_TAGS")]
    pub required_tags: Option<String>,
    /// Ports that must not be open to the world [default: the rules page's list].
    #[arg(long, env = "RESTRICTED_PORTS")]
    pub restricted_ports: Option<String>,
    /// Tag key that exempts an instance when set to `true` [default: ComplianceExempt].
    #[arg(long, env = "EXEMPT_TAG_KEY")]
    pub exempt_tag_key: Option<String>,
    /// Regions to scan [default: the configured region, e.g. AWS_REGION].
    #[arg(long, env = "SCAN_REGIONS")]
    pub scan_regions: Option<String>,
    /// CloudWatch namespace of the metrics [default: ComplianceMonitoring].
    #[arg(long, env = "METRIC_NAMESPACE")]
    pub metric_namespace: Option<String>,
    /// The stack's name: the metrics' `Stack` dimension and the result's `stack` [default: local].
    #[arg(long, env = "STACK_NAME")]
    pub stack_name: Option<String>,
}

/// Validated settings of one scan.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Bucket that receives the scan result.
    pub bucket: String,
    /// Topic for the alert, if any.
    pub topic_arn: Option<String>,
    /// The rule settings.
    pub rules: ScanSettings,
    /// Regions to scan; never empty.
    pub regions: Vec<String>,
    /// CloudWatch namespace.
    pub metric_namespace: String,
    /// Stack name.
    pub stack: String,
}

/// Splits a comma-separated list, trimming items and dropping empty ones.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A set value that is not blank.
fn non_blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ScanArgs {
    /// Validates the arguments; `default_region` is the SDK's configured region.
    pub fn into_config(self, default_region: Option<&str>) -> anyhow::Result<Config> {
        let bucket = non_blank(&self.bucket_name)
            .context("no bucket: set BUCKET_NAME or --bucket-name")?
            .to_string();
        let mut rules = ScanSettings::default();
        if let Some(tags) = non_blank(&self.required_tags) {
            rules.required_tags = split_list(tags);
        }
        if let Some(ports) = non_blank(&self.restricted_ports) {
            rules.restricted_ports = split_list(ports)
                .iter()
                .map(|p| {
                    p.parse::<u16>()
                        .with_context(|| format!("RESTRICTED_PORTS: `{p}` is not a port (0-65535)"))
                })
                .collect::<anyhow::Result<_>>()?;
        }
        if let Some(key) = non_blank(&self.exempt_tag_key) {
            rules.exempt_tag_key = key.to_string();
        }
        let mut regions = match non_blank(&self.scan_regions) {
            Some(list) => split_list(list),
            None => default_region
                .map(|r| vec![r.to_string()])
                .unwrap_or_default(),
        };
        regions.sort();
        regions.dedup();
        if regions.is_empty() {
            bail!("no region to scan: set SCAN_REGIONS, --scan-regions or AWS_REGION");
        }
        Ok(Config {
            bucket,
            topic_arn: non_blank(&self.topic_arn).map(str::to_string),
            rules: rules.normalized(),
            regions,
            metric_namespace: non_blank(&self.metric_namespace)
                .unwrap_or(DEFAULT_METRIC_NAMESPACE)
                .to_string(),
            stack: non_blank(&self.stack_name)
                .unwrap_or(DEFAULT_STACK_NAME)
                .to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bad_values_are_errors() {
        let no_bucket = ScanArgs::default().into_config(Some("us-east-1"));
        assert!(no_bucket.unwrap_err().to_string().contains("BUCKET_NAME"));
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
