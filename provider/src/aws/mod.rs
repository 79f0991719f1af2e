//! AWS: one module per piece of the stack, each implementing [`Piece`] — its label, read, drift,
//! create or bring to the desired settings (`ensure`), delete — and the clients they share.
//!
//! Nothing here knows Terraform: the `monitor` module maps configuration to a [`Desired`] stack
//! and calls these.

pub mod alarms;
pub mod bucket;
pub mod changes;
pub mod dashboard;
pub mod errors;
pub mod event_source;
pub mod eventbridge;
pub mod functions;
pub mod hcl;
pub mod log_groups;
pub mod queues;
pub mod roles;
pub mod schedules;
pub mod topic;
pub mod wait;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tokio_util::sync::CancellationToken;

pub use crate::desired::ScannerReporter;
pub use errors::{codes, describe, is_code};
pub use hcl::Hcl;

pub use crate::desired::{partition_of, Account, Desired, ProviderSettings};
use functions::Code;

/// Clients for every service the stack uses, built once per provider process.
#[derive(Clone, Debug)]
pub struct Clients {
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// IAM.
    pub iam: aws_sdk_iam::Client,
    /// Lambda.
    pub lambda: aws_sdk_lambda::Client,
    /// EventBridge.
    pub events: aws_sdk_eventbridge::Client,
    /// CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
    /// CloudWatch.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// STS.
    pub sts: aws_sdk_sts::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// CloudTrail (read by `analyse` only: does a trail feed the change rule).
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    /// The region every piece lives in.
    pub region: String,
}

impl Clients {
    /// Builds clients from the provider block, falling back to the standard AWS environment and
    /// shared config for anything unset.
    pub async fn new(settings: &ProviderSettings) -> Result<Clients, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(aws_types::region::Region::new(region.clone()));
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader = loader.retry_config(retry_config(
            settings.max_retries,
            std::env::var("AWS_MAX_ATTEMPTS").ok().as_deref(),
            std::env::var("AWS_RETRY_MODE").ok().as_deref(),
        ));
        let mut config = loader.load().await;
        if let Some(role) = &settings.assume_role {
            let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
                .session_name(
                    role.session_name
                        .clone()
                        .unwrap_or_else(|| "terraform-provider-compliance".into()),
                );
            if let Some(id) = &role.external_id {
                provider = provider.external_id(id);
            }
            let provider = provider.configure(&config).build().await;
            config = config
                .into_builder()
                .credentials_provider(aws_credential_types_provider(provider))
                .build();
        }
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or("No AWS region: set `region` in the provider block or AWS_REGION.")?;
        // Path-style S3 addressing works with every endpoint, emulators included.
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(
                settings.endpoint_url.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some(),
            )
            .build();
        Ok(Clients {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sns: aws_sdk_sns::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            events: aws_sdk_eventbridge::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            cloudtrail: aws_sdk_cloudtrail::Client::new(&config),
            region,
        })
    }

    /// The account the credentials belong to and its partition (`aws`, `aws-cn`, `aws-us-gov`),
    /// from GetCallerIdentity: ARNs are built with it rather than with a written `aws`.
    pub async fn account(&self) -> Result<Account, PieceError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| PieceError::aws("account", "identifying", e))?;
        let id = out.account.ok_or_else(|| {
            PieceError::new("account", "identifying", "STS returned no account id")
        })?;
        let partition = out
            .arn
            .as_deref()
            .and_then(partition_of)
            .ok_or_else(|| {
                PieceError::new(
                    "account",
                    "identifying",
                    format!("STS returned no usable caller ARN ({})", out.arn.hcl()),
                )
            })?
            .to_string();
        Ok(Account { id, partition })
    }
}

/// The SDK's retry settings: standard mode (or adaptive, when `AWS_RETRY_MODE` says so) with
/// `max_retries` from the provider block, else `AWS_MAX_ATTEMPTS`, else 10 attempts.
pub fn retry_config(
    max_retries: Option<u32>,
    env_attempts: Option<&str>,
    env_mode: Option<&str>,
) -> aws_config::retry::RetryConfig {
    let attempts = max_retries
        .or_else(|| env_attempts.and_then(|v| v.trim().parse().ok()))
        .map_or(10, |n: u32| n.max(1));
    let mode = if env_mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("adaptive")) {
        aws_config::retry::RetryConfig::adaptive()
    } else {
        aws_config::retry::RetryConfig::standard()
    };
    mode.with_max_attempts(attempts)
}

fn aws_credential_types_provider(
    p: aws_config::sts::AssumeRoleProvider,
) -> aws_credential_types::provider::SharedCredentialsProvider {
    aws_credential_types::provider::SharedCredentialsProvider::new(p)
}

/// A failed step on one piece, with the AWS error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceError {
    /// The piece, e.g. `alarm scanner-failure-alarm-dev`.
    pub piece: String,
    /// What was being done, e.g. `creating`.
    pub action: &'static str,
    /// The error as AWS reported it.
    pub message: String,
}

impl PieceError {
    /// A new error.
    pub fn new(
        piece: impl Into<String>,
        action: &'static str,
        message: impl Into<String>,
    ) -> PieceError {
        PieceError {
            piece: piece.into(),
            action,
            message: message.into(),
        }
    }

    /// An error from an SDK call, with its code and message.
    pub fn aws<
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug,
    >(
        piece: impl Into<String>,
        action: &'static str,
        err: SdkError<E, R>,
    ) -> PieceError {
        PieceError::new(piece, action, describe(&err))
    }
}

impl fmt::Display for PieceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.action, self.piece, self.message)
    }
}

impl std::error::Error for PieceError {}

/// The tag that says which stack a piece belongs to: every piece the stack creates and can tag
/// carries `ComplianceStack = <suffix>`.
pub const STACK_TAG: &str = "ComplianceStack";

/// True when `tags` mark a piece as part of the stack `suffix`.
pub fn owned(tags: &BTreeMap<String, String>, suffix: &str) -> bool {
    stack_of(tags) == Some(suffix)
}

/// The stack that `tags` say a piece belongs to.
pub fn stack_of(tags: &BTreeMap<String, String>) -> Option<&str> {
    tags.get(STACK_TAG).map(String::as_str)
}

/// The error of a write that finds the name held by a piece that is not the stack's: on create
/// (the name was taken before), and on update (the stack's piece was deleted outside Terraform
/// and someone else made one of the same name). Adopting it would put someone else's resource
/// under the stack, and a later destroy would delete it. `unmarked` says how the piece shows it
/// is not the stack's, `reclaim` what to do if it is the stack's own after all.
pub fn name_taken(piece: &str, unmarked: &Unmarked) -> PieceError {
    PieceError::new(
        piece,
        "claiming",
        format!(
            "the name is taken: it exists but {}, so it is not this stack's. Choose another \
             environment_suffix or delete it; if it is this stack's own piece, {}",
            unmarked.why, unmarked.reclaim
        ),
    )
}

/// How a piece shows it is not the stack's, and how to reclaim it if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmarked {
    /// E.g. `is not tagged ComplianceStack = "dev"`.
    pub why: String,
    /// E.g. `tag it ComplianceStack = "dev"`.
    pub reclaim: String,
}

impl Unmarked {
    /// A piece that carries tags.
    pub fn tags(suffix: &str) -> Unmarked {
        Unmarked {
            why: format!("is not tagged {STACK_TAG} = {}", suffix.hcl()),
            reclaim: format!("tag it {STACK_TAG} = {}", suffix.hcl()),
        }
    }
}

/// One piece of the stack, as terraform-provider-aws keeps one file per resource: the piece
/// names itself, reads itself, says how it differs from the desired stack, creates or repairs
/// itself (waiting for what AWS finishes after answering) and deletes itself. The stack
/// ([`crate::monitor::stack`]) is a table of pieces in dependency order.
pub trait Piece: Sync {
    /// What a read finds when the piece exists.
    type Observed: Send + Sync;
    /// What an ensure gives back: an ARN the resource records, or nothing.
    type Made: Send;

    /// The piece as users read it, e.g. `log group /aws/lambda/compliance-scanner-dev`.
    fn label(&self, d: &Desired) -> String;

    /// The stack the piece says it belongs to: its [`STACK_TAG`] tag, or, for a piece that
    /// cannot carry tags (the dashboard), the marker it carries instead. `None`: unmarked.
    fn owner(o: &Self::Observed) -> Option<&str>;

    /// True when the configuration wants the piece (the event-driven pieces only with
    /// `event_driven`): an unwanted piece that exists is drift, and apply deletes it.
    fn is_wanted(&self, _d: &Desired) -> bool {
        true
    }

    /// How the piece shows it is not the stack's, for the error of a name taken.
    fn unmarked(suffix: &str) -> Unmarked {
        Unmarked::tags(suffix)
    }

    /// True when the piece exists and is not the stack `suffix`'s: a write to it is a name
    /// taken, and destroy leaves it in place.
    fn foreign(found: &Found<Self::Observed>, suffix: &str) -> bool {
        found
            .present()
            .is_some_and(|o| Self::owner(o) != Some(suffix))
    }

    /// Reads the piece. Only the exact code that means "not there" reads as [`Found::Missing`].
    fn read(
        &self,
        c: &Clients,
        d: &Desired,
    ) -> impl Future<Output = Result<Found<Self::Observed>, PieceError>> + Send;

    /// Every way the piece differs from the desired stack.
    fn drift(&self, d: &Desired, found: &Found<Self::Observed>) -> Vec<Difference>;

    /// Creates the piece, or brings it to the desired settings writing only what differs. A
    /// create whose answer was lost and that meets the piece it made takes it as made.
    fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Self::Observed>,
        how: &Ensure<'_>,
    ) -> impl Future<Output = Result<Self::Made, PieceError>> + Send;

    /// Deletes the piece. A piece already gone counts as deleted.
    fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Self::Observed>,
        cancel: &CancellationToken,
    ) -> impl Future<Output = Result<(), PieceError>> + Send;
}

/// What an ensure may need besides the piece and what was found.
#[derive(Debug, Clone, Copy)]
pub struct Ensure<'a> {
    /// The functions' packages.
    pub codes: ScannerReporter<Code<'a>>,
    /// The alert address the prior state subscribed (on update).
    pub prior_alert_email: Option<&'a str>,
    /// Terraform's StopProvider: waits and retries end when it fires.
    pub cancel: &'a CancellationToken,
}

/// How a piece was found by a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// It does not exist.
    Missing,
    /// It exists, as observed.
    Present(T),
}

impl<T> Found<T> {
    /// The observation, if present.
    pub fn present(&self) -> Option<&T> {
        match self {
            Found::Present(t) => Some(t),
            Found::Missing => None,
        }
    }
}

/// Tag keys a piece carries that the desired tags no longer have: tagging calls only add and
/// overwrite, so these need an explicit untag.
pub fn removed_tag_keys(
    observed: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Vec<String> {
    observed
        .keys()
        .filter(|k| !desired.contains_key(*k))
        .cloned()
        .collect()
}

/// Brings a piece's tags from `observed` to `desired` when they differ: `tag` sets every desired
/// tag (the tagging APIs add and overwrite), then `untag` removes the keys no longer wanted.
/// Every service spells the two calls differently; the order and the errors are the same.
pub async fn retag<TagF, UntagF, O1, O2, E1, E2, R1, R2>(
    piece: &str,
    observed: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    tag: impl FnOnce() -> TagF,
    untag: impl FnOnce(Vec<String>) -> UntagF,
) -> Result<(), PieceError>
where
    TagF: std::future::Future<Output = Result<O1, SdkError<E1, R1>>>,
    UntagF: std::future::Future<Output = Result<O2, SdkError<E2, R2>>>,
    E1: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    E2: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R1: fmt::Debug,
    R2: fmt::Debug,
{
    if observed == desired {
        return Ok(());
    }
    tag()
        .await
        .map_err(|e| PieceError::aws(piece, "tagging", e))?;
    let removed = removed_tag_keys(observed, desired);
    if !removed.is_empty() {
        untag(removed)
            .await
            .map_err(|e| PieceError::aws(piece, "untagging", e))?;
    }
    Ok(())
}

/// Tags as a sorted map from any iterator of pairs.
pub fn tag_map<I: IntoIterator<Item = (String, String)>>(tags: I) -> BTreeMap<String, String> {
    tags.into_iter().collect()
}

/// One way a piece differs from the desired stack: what Terraform reports as drift and what
/// `analyse` turns into a finding, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The piece, e.g. `Lambda function compliance-scanner-dev`.
    pub piece: String,
    /// The setting that differs, e.g. `timeout`, or [`MISSING`] when the piece is gone.
    pub setting: &'static str,
    /// What was found against what is wanted.
    pub detail: String,
}

/// The [`Difference::setting`] of a piece that does not exist.
pub const MISSING: &str = "missing";
/// The [`Difference::setting`] of a piece that exists though the configuration no longer wants
/// it (an event-driven piece with `event_driven = false`).
pub const UNWANTED: &str = "unwanted";
/// The [`Difference::setting`] of tags that lack or change a wanted tag.
pub const TAGS: &str = "tags";
/// The [`Difference::setting`] of tags that hold every wanted tag plus others (e.g. added by the
/// provider's `default_tags`, which a reader without the provider block cannot know).
pub const EXTRA_TAGS: &str = "extra tags";

impl Difference {
    /// A difference in `setting`.
    pub fn new(piece: impl Into<String>, setting: &'static str, detail: impl Into<String>) -> Self {
        Difference {
            piece: piece.into(),
            setting,
            detail: detail.into(),
        }
    }

    /// The piece does not exist.
    pub fn missing(piece: impl Into<String>) -> Self {
        Difference::new(piece, MISSING, MISSING)
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.piece, self.detail)
    }
}

/// Adds a difference when `want` and `have` differ, both written as in HCL.
pub fn compare<T: PartialEq + Hcl + ?Sized>(
    drift: &mut Vec<Difference>,
    piece: &str,
    what: &'static str,
    have: &T,
    want: &T,
) {
    if have != want {
        drift.push(Difference::new(
            piece,
            what,
            format!("{what} is {}, want {}", have.hcl(), want.hcl()),
        ));
    }
}

/// Adds a difference when the tags differ: [`TAGS`] when a wanted tag is absent or has another
/// value, [`EXTRA_TAGS`] when only tags beyond the wanted ones are there.
pub fn compare_tags(
    drift: &mut Vec<Difference>,
    piece: &str,
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) {
    if have == want {
        return;
    }
    let all_wanted = want.iter().all(|(k, v)| have.get(k) == Some(v));
    if all_wanted {
        let extra = hcl::object(
            have.iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .map(|(k, v)| (k.as_str(), v)),
        );
        drift.push(Difference::new(
            piece,
            EXTRA_TAGS,
            format!("tags {extra} are there beyond the wanted {}", want.hcl()),
        ));
    } else {
        drift.push(Difference::new(
            piece,
            TAGS,
            format!("tags is {}, want {}", have.hcl(), want.hcl()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_comes_from_the_caller_arn() {
        assert_eq!(
            partition_of("arn:aws:sts::123456789012:assumed-role/r/s"),
            Some("aws")
        );
        assert_eq!(
            partition_of("arn:aws-cn:iam::123456789012:user/u"),
            Some("aws-cn")
        );
        assert_eq!(
            partition_of("arn:aws-us-gov:iam::123456789012:root"),
            Some("aws-us-gov")
        );
        assert_eq!(partition_of("not an arn"), None);
        assert_eq!(partition_of("arn::iam::1:root"), None);
    }

    #[test]
    fn max_attempts_from_the_block_then_the_environment_then_ten() {
        let attempts = |block, env| retry_config(block, env, None).max_attempts();
        assert_eq!(attempts(Some(4), Some("7")), 4);
        assert_eq!(attempts(None, Some("7")), 7);
        assert_eq!(attempts(None, Some(" 2 ")), 2);
        assert_eq!(attempts(None, None), 10);
        assert_eq!(attempts(None, Some("many")), 10);
        // 0 in the block means no retries: one attempt.
        assert_eq!(attempts(Some(0), None), 1);
        assert_eq!(
            retry_config(None, None, Some("adaptive")).mode(),
            aws_config::retry::RetryMode::Adaptive
        );
        assert_eq!(
            retry_config(None, None, None).mode(),
            aws_config::retry::RetryMode::Standard
        );
    }
}
