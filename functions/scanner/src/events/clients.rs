//! The event mode's settings and AWS clients, made once per process (on the first SQS batch) and
//! shared by every invocation; how a member account is reached (its member role, assumed through
//! [`MemberRole`] and cached across invocations); and how a failed call decides a record's fate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_ec2::config::retry::RetryPartition;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::region::Region;
use compliance_rules::contract::ScannerSettings;
use compliance_rules::result::ScanError;
use tokio::sync::OnceCell;

use crate::accounts::{self, Identity, MemberRole};
use crate::calls::CallCounter;

/// Everything an invocation needs: the scanner's settings (the same environment the scheduled
/// scan reads) and clients that count their calls and the time spent in them.
#[derive(Debug)]
pub struct Context {
    /// The scanner's settings.
    pub settings: ScannerSettings,
    sdk: SdkConfig,
    counter: CallCounter,
    clock: AwsClock,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
    pub(crate) sns: aws_sdk_sns::Client,
    sts: aws_sdk_sts::Client,
    /// EC2 clients by (account, region).
    ec2: Mutex<BTreeMap<(String, String), aws_sdk_ec2::Client>>,
    identity: OnceCell<Identity>,
    /// Member accounts reached so far, by account: kept for the process's life so that the role's
    /// credentials, cached by [`MemberRole`] until shortly before they expire, serve every batch.
    members: Mutex<BTreeMap<String, Member>>,
}

/// A member account's role and the SDK configuration whose credentials are that role's.
#[derive(Debug, Clone)]
struct Member {
    role: Arc<MemberRole>,
    sdk: SdkConfig,
}

/// Why an account's changes cannot be read in this batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Unreachable {
    /// AssumeRole throttled, 5xx, timed out: the changes go back to the queue.
    Retryable(String),
    /// AssumeRole refused (no role, a trust that does not name the scanner, a wrong external id):
    /// the changes are recorded with this error in the result's `errors`, never retried.
    Refused(ScanError),
}

impl Context {
    /// Settings from the environment and the SDK configuration from the standard chain, with the
    /// retries every function uses ([`crate::retry`]).
    pub async fn from_env() -> anyhow::Result<Context> {
        let sdk = crate::retry::load_sdk_config().await?;
        let settings = ScannerSettings::from_vars(
            |name| std::env::var(name).ok(),
            sdk.region().map(|r| r.as_ref()),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Context::new(sdk, settings))
    }

    /// Clients built from `sdk`, applying `settings`.
    pub fn new(sdk: SdkConfig, settings: ScannerSettings) -> Context {
        let counter = CallCounter::default();
        let clock = AwsClock::default();
        // An emulator or private endpoint serves buckets by path, not by virtual host.
        let path_style =
            sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(path_style)
                .interceptor(counter.clone())
                .interceptor(clock.clone())
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .interceptor(clock.clone())
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .interceptor(clock.clone())
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .interceptor(counter.clone())
                .interceptor(clock.clone())
                .build(),
        );
        Context {
            settings,
            sdk,
            counter,
            clock,
            s3,
            cloudwatch,
            sns,
            sts,
            ec2: Mutex::new(BTreeMap::new()),
            identity: OnceCell::new(),
            members: Mutex::new(BTreeMap::new()),
        }
    }

    /// The EC2 client of `account` in `region` with `sdk`'s credentials (the account's, from
    /// [`Context::reach`]), made on first use. Each (account, region) has its own retry partition,
    /// as in the scheduled scan: EC2 throttles per account and region, so one throttled member
    /// cannot spend the others' retries.
    pub fn ec2(&self, account: &str, region: &str, sdk: &SdkConfig) -> aws_sdk_ec2::Client {
        let mut clients = self.ec2.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry((account.to_string(), region.to_string()))
            .or_insert_with(|| {
                aws_sdk_ec2::Client::from_conf(
                    aws_sdk_ec2::config::Builder::from(sdk)
                        .region(Region::new(region.to_string()))
                        .retry_partition(RetryPartition::new(format!("ec2-{account}-{region}")))
                        .interceptor(self.counter.clone())
                        .interceptor(self.clock.clone())
                        .build(),
                )
            })
            .clone()
    }

    /// The function's own account and partition (STS GetCallerIdentity, asked once per process).
    pub async fn identity(&self) -> Result<Identity, CallError> {
        self.identity
            .get_or_try_init(|| async {
                let id = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| classify("STS GetCallerIdentity", &e))?;
                let account_id = id.account.ok_or_else(|| {
                    CallError::Refused("STS GetCallerIdentity named no account".into())
                })?;
                // The partition names the member roles' ARNs (`aws-cn`, `aws-us-gov`).
                let partition = id
                    .arn
                    .as_deref()
                    .and_then(|arn| arn.split(':').nth(1))
                    .filter(|p| !p.is_empty())
                    .unwrap_or("aws")
                    .to_string();
                Ok(Identity {
                    account_id,
                    partition,
                })
            })
            .await
            .cloned()
    }

    /// The function's own account.
    pub async fn account(&self) -> Result<String, CallError> {
        self.identity().await.map(|i| i.account_id)
    }

    /// The SDK configuration that reads `account`: the function's own for its own account, else
    /// the member role's. A member's role is assumed on its first batch and its credentials
    /// reused until shortly before they expire (one AssumeRole per account per hour or so, not
    /// per batch); they are checked here, before any read, so a missing role is one error for
    /// the account rather than one per region and call.
    pub async fn reach(&self, me: &Identity, account: &str) -> Result<SdkConfig, Unreachable> {
        if account == me.account_id {
            return Ok(self.sdk.clone());
        }
        let member = {
            let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
            members
                .entry(account.to_string())
                .or_insert_with(|| {
                    let role = Arc::new(MemberRole::new(
                        self.sts.clone(),
                        &me.partition,
                        account,
                        &self.settings.members,
                        accounts::session_name(&self.settings.stack),
                    ));
                    let provider =
                        SharedCredentialsProvider::new(role.clone() as Arc<dyn ProvideCredentials>);
                    let sdk = self.sdk.to_builder().credentials_provider(provider).build();
                    Member { role, sdk }
                })
                .clone()
        };
        match member.role.credentials().await {
            Ok(_) => Ok(member.sdk),
            Err(e) => {
                let context = format!("AssumeRole {} in account {account}", member.role.arn());
                match classify(&context, &e) {
                    CallError::Retryable(m) => Err(Unreachable::Retryable(m)),
                    CallError::Refused(_) => Err(Unreachable::Refused(accounts::scan_error(
                        account,
                        None,
                        "AssumeRole",
                        &context,
                        &e,
                    ))),
                }
            }
        }
    }

    /// HTTP attempts so far, per `Service:Operation`.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        self.counter.snapshot()
    }

    /// Calls made since `before` (an earlier [`Context::api_calls`]).
    pub fn api_calls_since(&self, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.counter.since(before)
    }

    /// Wall time so far during which at least one AWS call was in flight.
    pub fn aws_time(&self) -> Duration {
        self.clock.total()
    }
}

/// Adds up the wall time during which at least one call attempt is in flight (overlapping calls
/// count once), so a run's own time is its wall time less this.
#[derive(Debug, Clone, Default)]
pub struct AwsClock {
    state: Arc<Mutex<ClockState>>,
}

#[derive(Debug, Default)]
struct ClockState {
    in_flight: usize,
    since: Option<Instant>,
    total: Duration,
}

impl AwsClock {
    /// The time counted so far, the current span included.
    pub fn total(&self) -> Duration {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.total + s.since.map(|t| t.elapsed()).unwrap_or_default()
    }
}

impl Intercept for AwsClock {
    fn name(&self) -> &'static str {
        "AwsClock"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight += 1;
        if s.in_flight == 1 {
            s.since = Some(Instant::now());
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            if let Some(t) = s.since.take() {
                s.total += t.elapsed();
            }
        }
        Ok(())
    }
}

/// How an AWS call failed, once the SDK's own retries were spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Throttling, a server error, a timeout or a lost connection: a later delivery of the same
    /// records may succeed, so they are reported as batch item failures.
    Retryable(String),
    /// Refused or invalid (access denied, a missing bucket or topic): retrying the records alone
    /// will not help; the invocation fails so the errors alarm fires and SQS keeps the messages
    /// (then its dead-letter queue) until the stack is fixed.
    Refused(String),
}

impl CallError {
    /// What went wrong, for the log.
    pub fn message(&self) -> &str {
        match self {
            CallError::Retryable(m) | CallError::Refused(m) => m,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Error codes that mean "too fast" or "not now" in every protocol the functions speak.
const RETRYABLE_CODES: [&str; 16] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// The AWS error code of a failed call, when the service sent one.
pub fn code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<String> {
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string)
}

/// Whether `e` (from the call `what`) may succeed later, with a message naming the call.
pub fn classify<E>(what: &str, e: &SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = format!("{what}: {}", DisplayErrorContext(e));
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            CallError::Retryable(message)
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let throttled = s.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c));
            if throttled || status >= 500 || status == 429 {
                CallError::Retryable(message)
            } else {
                CallError::Refused(message)
            }
        }
        _ => CallError::Refused(message),
    }
}
