//! AWS: one module per piece of the stack, each with the same small shape — read it, create it or
//! bring it to the desired settings (`ensure`), delete it — and the clients they share.
//!
//! Nothing here knows Terraform: the `monitor` module maps configuration to a [`Desired`] stack
//! and calls these.

pub mod alarms;
pub mod bucket;
pub mod dashboard;
pub mod functions;
pub mod log_groups;
pub mod roles;
pub mod schedules;
pub mod topic;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::monitor::names::StackNames;
use crate::monitor::settings::ProviderSettings;

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
        let attempts = settings.max_retries.map_or(10, |n| n.max(1));
        loader = loader
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts));
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
            region,
        })
    }

    /// The account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, PieceError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| PieceError::aws("account", "identifying", e))?;
        out.account
            .ok_or_else(|| PieceError::new("account", "identifying", "STS returned no account id"))
    }
}

fn aws_credential_types_provider(
    p: aws_config::sts::AssumeRoleProvider,
) -> aws_credential_types::provider::SharedCredentialsProvider {
    aws_credential_types::provider::SharedCredentialsProvider::new(p)
}

/// Everything the stack should be, derived from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Names of every piece.
    pub names: StackNames,
    /// Account id (for ARNs).
    pub account_id: String,
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
}

impl Desired {
    /// The topic's ARN.
    pub fn topic_arn(&self) -> String {
        format!(
            "arn:aws:sns:{}:{}:{}",
            self.region, self.account_id, self.names.topic
        )
    }

    /// A function's ARN.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        )
    }

    /// A role's ARN.
    pub fn role_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/{name}", self.account_id)
    }

    /// A log group's ARN (streams included).
    pub fn log_group_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:logs:{}:{}:log-group:{name}:*",
            self.region, self.account_id
        )
    }
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

/// A one-line description of an SDK error: the AWS error code and message when there is one.
pub fn describe<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug,
>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
            }
        }
        other => aws_smithy_types::error::display::DisplayErrorContext(other).to_string(),
    }
}

/// True when the error says the thing does not exist.
pub fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    const CODES: [&str; 9] = [
        "NoSuchEntity",
        "ResourceNotFoundException",
        "ResourceNotFound",
        "NoSuchBucket",
        "NotFound",
        "NotFoundException",
        "NoSuchKey",
        "ResourceNotFoundFault",
        "NotFoundError",
    ];
    match err {
        SdkError::ServiceError(s) => s.err().code().is_some_and(|c| CODES.contains(&c)),
        _ => false,
    }
}

/// Retries `op` with exponential backoff while `retryable` says so, at most `attempts` times:
/// for AWS's eventual consistency (a new IAM role that Lambda cannot assume yet).
pub async fn with_backoff<T, E, F, Fut>(
    attempts: u32,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(500);
    let mut tries = 0;
    loop {
        tries += 1;
        match op().await {
            Err(e) if tries < attempts && retryable(&e) => {
                tracing::info!(
                    tries,
                    ?delay,
                    "retrying after an eventually consistent error"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
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

/// Adds a difference when `want` and `have` differ.
pub fn compare<T: PartialEq + fmt::Debug>(
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
            format!("{what} is {have:?}, want {want:?}"),
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
        let extra: BTreeMap<&String, &String> = have
            .iter()
            .filter(|(k, _)| !want.contains_key(*k))
            .collect();
        drift.push(Difference::new(
            piece,
            EXTRA_TAGS,
            format!("tags {extra:?} are there beyond the wanted {want:?}"),
        ));
    } else {
        drift.push(Difference::new(
            piece,
            TAGS,
            format!("tags is {have:?}, want {want:?}"),
        ));
    }
}
