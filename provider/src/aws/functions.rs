//! The scanner and reporter Lambda functions (`provided.al2023`, x86_64, a Rust `bootstrap`).

use std::collections::BTreeMap;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode as LambdaCode, LastUpdateStatus, Runtime,
};

use aws_smithy_runtime_api::client::result::SdkError;
use compliance_rules::contract::{Members, ReporterSettings, ScannerSettings};
use compliance_rules::result::ScanSettings;
use tokio_util::sync::CancellationToken;

use super::errors::{codes, is_code};
use super::wait::{self, Poll};
use super::{
    compare, compare_tags, owned, Clients, Desired, Difference, Ensure, Found, Hcl, Piece,
    PieceError,
};

pub use crate::desired::Function;

/// A function's deployment package.
#[derive(Debug, Clone, Copy)]
pub struct Code<'a> {
    /// The zip holding `bootstrap`.
    pub zip: &'a [u8],
    /// SHA-256 of the zip, base64, as Lambda reports `CodeSha256`.
    pub sha256: &'a str,
}

impl Function {
    /// The function's name.
    pub fn name(self, d: &Desired) -> &str {
        match self {
            Function::Scanner => &d.names.scanner,
            Function::Reporter => &d.names.reporter,
        }
    }

    /// `scanner` or `reporter`, as names and descriptions spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Scanner => "scanner",
            Function::Reporter => "reporter",
        }
    }

    /// The environment the function runs with, written by the rules crate's contract (which the
    /// functions read it back with).
    pub fn environment(self, d: &Desired) -> BTreeMap<String, String> {
        let topic_arn = Some(d.topic_arn());
        // The stack's bucket is in the stack's account: a same-named bucket elsewhere is refused.
        let bucket_owner = Some(d.account_id.clone());
        match self {
            Function::Scanner => ScannerSettings {
                bucket: d.names.bucket.clone(),
                bucket_owner,
                topic_arn,
                rules: ScanSettings {
                    required_tags: d.required_tags.clone(),
                    restricted_ports: d.restricted_ports.clone(),
                    exempt_tag_key: d.exempt_tag_key.clone(),
                    exemptions: d.exemptions.clone(),
                },
                regions: d.scope.regions.clone(),
                metric_namespace: d.names.metric_namespace.clone(),
                stack: d.names.suffix.clone(),
                members: Members {
                    accounts: d.scope.member_accounts.clone(),
                    organization: d.scope.organization_accounts,
                    role_name: d.scope.member_role_name.clone(),
                    external_id: d.scope.member_external_id.clone(),
                },
                concurrency: d.scope.concurrency,
            }
            .render(),
            Function::Reporter => ReporterSettings {
                bucket: d.names.bucket.clone(),
                bucket_owner,
                topic_arn,
                stack: Some(d.names.suffix.clone()),
            }
            .render(),
        }
    }
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Its ARN.
    pub arn: String,
    /// Runtime.
    pub runtime: String,
    /// Handler.
    pub handler: String,
    /// Role ARN.
    pub role: String,
    /// Timeout in seconds.
    pub timeout: i32,
    /// Memory in MB.
    pub memory: i32,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Code hash (base64 SHA-256).
    pub code_sha256: String,
    /// Architectures.
    pub architectures: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// `State` (`Pending`, `Active`, `Inactive`, `Failed`); not a setting, so no drift.
    pub state: String,
    /// `LastUpdateStatus` (`InProgress`, `Successful`, `Failed`).
    pub last_update: String,
    /// The asynchronous invoke configuration (retries, event age); `None` when not set, which
    /// means Lambda's defaults: 2 retries, events kept 6 hours.
    pub async_invoke: Option<AsyncInvoke>,
}

/// How Lambda treats an asynchronous invocation (EventBridge schedules invoke this way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncInvoke {
    /// Retries after a failed invocation (0-2).
    pub retries: i32,
    /// Seconds an event may wait to be run (60-21600).
    pub max_event_age: i32,
}

/// No retry: a failed scheduled run is not run again, so one schedule tick yields at most one
/// stored scan, one alert and one report (a retry after metrics or SNS failed would store the
/// scan again). The failure still counts in the `Errors` metric the failure alarm watches.
pub const ASYNC_INVOKE: AsyncInvoke = AsyncInvoke {
    retries: 0,
    max_event_age: 3600,
};

impl crate::aws::Hcl for AsyncInvoke {
    fn hcl(&self) -> String {
        format!(
            "{{ retries = {}, max_event_age = {} }}",
            self.retries, self.max_event_age
        )
    }
}

impl Observed {
    /// True when Lambda accepts an update now (not `Pending`, no update `InProgress`).
    pub fn settled(&self) -> bool {
        self.state != "Pending" && self.last_update != "InProgress"
    }
}

/// Reads the function's configuration, code hash and tags.
async fn read(c: &Clients, d: &Desired, f: Function) -> Result<Found<Observed>, PieceError> {
    let got = match c
        .lambda
        .get_function()
        .function_name(f.name(d))
        .send()
        .await
    {
        Ok(g) => g,
        Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(f.label(d), "reading", e)),
    };
    // The response's Code.Location points at an AWS host: it is never fetched.
    let cfg = got.configuration();
    let async_invoke = match c
        .lambda
        .get_function_event_invoke_config()
        .function_name(f.name(d))
        .send()
        .await
    {
        Ok(a) => Some(AsyncInvoke {
            retries: a.maximum_retry_attempts().unwrap_or(2),
            max_event_age: a.maximum_event_age_in_seconds().unwrap_or(21_600),
        }),
        // The function exists, so "not found" here means no configuration is set.
        Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => None,
        Err(e) => {
            return Err(PieceError::aws(
                f.label(d),
                "reading the asynchronous invoke configuration of",
                e,
            ))
        }
    };
    Ok(Found::Present(Observed {
        arn: cfg
            .and_then(|c| c.function_arn())
            .unwrap_or_default()
            .to_string(),
        runtime: cfg
            .and_then(|c| c.runtime())
            .map(|r| r.as_str().to_string())
            .unwrap_or_default(),
        handler: cfg
            .and_then(|c| c.handler())
            .unwrap_or_default()
            .to_string(),
        role: cfg.and_then(|c| c.role()).unwrap_or_default().to_string(),
        timeout: cfg.and_then(|c| c.timeout()).unwrap_or_default(),
        memory: cfg.and_then(|c| c.memory_size()).unwrap_or_default(),
        environment: cfg
            .and_then(|c| c.environment())
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        code_sha256: cfg
            .and_then(|c| c.code_sha256())
            .unwrap_or_default()
            .to_string(),
        architectures: cfg
            .map(|c| {
                c.architectures()
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        tags: got
            .tags()
            .map(|t| t.clone().into_iter().collect())
            .unwrap_or_default(),
        state: cfg
            .and_then(|c| c.state())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        last_update: cfg
            .and_then(|c| c.last_update_status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        async_invoke,
    }))
}

/// True when an answer's `State` and `LastUpdateStatus` say Lambda is still at work.
fn busy(state: Option<&aws_sdk_lambda::types::State>, update: Option<&LastUpdateStatus>) -> bool {
    state.is_some_and(|s| s.as_str() == "Pending")
        || update.is_some_and(|u| u.as_str() == "InProgress")
}

/// Waits until Lambda has finished creating or updating the function (`State` `Active`,
/// `LastUpdateStatus` `Successful`), as the SDK's `function_active_v2` and
/// `function_updated_v2` waiters do, but with the stack's backoff and StopProvider. A `Failed`
/// state is an error with Lambda's reason.
pub async fn wait_settled(
    c: &Clients,
    d: &Desired,
    f: Function,
    cancel: &CancellationToken,
) -> Result<(), PieceError> {
    let p = f.label(d);
    wait::until(&p, "waiting for", wait::LAMBDA_SETTLE, cancel, || async {
        let cfg = c
            .lambda
            .get_function_configuration()
            .function_name(f.name(d))
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "waiting for", e))?;
        let state = cfg.state().map(|s| s.as_str()).unwrap_or("Active");
        let update = cfg
            .last_update_status()
            .map(|s| s.as_str())
            .unwrap_or("Successful");
        let failed = |what: &str, reason: Option<&str>, code: Option<&str>| {
            PieceError::new(
                &p,
                "waiting for",
                format!(
                    "Lambda reports {what} Failed: {} ({})",
                    reason.unwrap_or("no reason given"),
                    code.unwrap_or("no reason code")
                ),
            )
        };
        if state == "Failed" {
            return Err(failed(
                "State",
                cfg.state_reason(),
                cfg.state_reason_code().map(|c| c.as_str()),
            ));
        }
        if update == "Failed" {
            return Err(failed(
                "LastUpdateStatus",
                cfg.last_update_status_reason(),
                cfg.last_update_status_reason_code().map(|c| c.as_str()),
            ));
        }
        Ok(if state == "Pending" || update == "InProgress" {
            Poll::Waiting(format!("State {state}, LastUpdateStatus {update}"))
        } else {
            Poll::Ready(())
        })
    })
    .await
}

/// Sets the asynchronous invoke configuration to [`ASYNC_INVOKE`] unless `have` is that already.
async fn ensure_async_invoke(
    c: &Clients,
    d: &Desired,
    f: Function,
    have: Option<AsyncInvoke>,
    cancel: &CancellationToken,
) -> Result<(), PieceError> {
    if have == Some(ASYNC_INVOKE) {
        return Ok(());
    }
    lambda_call(
        c,
        d,
        f,
        "setting the asynchronous invoke configuration of",
        Conflict::Busy,
        cancel,
        || {
            c.lambda
                .put_function_event_invoke_config()
                .function_name(f.name(d))
                .maximum_retry_attempts(ASYNC_INVOKE.retries)
                .maximum_event_age_in_seconds(ASYNC_INVOKE.max_event_age)
                .send()
        },
    )
    .await
    .map(|_| ())
}

/// True for Lambda's refusal of a role it cannot assume yet (IAM is eventually consistent).
fn role_not_ready<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    e: &SdkError<E, R>,
) -> bool {
    is_code(e, codes::LAMBDA_INVALID_PARAMETER)
        && e.as_service_error()
            .and_then(|s| s.message())
            .is_some_and(|m| m.contains("role") && m.contains("assumed"))
}

/// How a Lambda call treats `ResourceConflictException`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conflict {
    /// An update is in progress: wait for it, then call again.
    Busy,
    /// The function exists (CreateFunction): the caller decides.
    Exists,
}

/// What a Lambda call ended with: its answer, a conflict the caller decides on, or an error.
enum Called<T> {
    Done(T),
    Exists,
}

/// Runs a Lambda call, retrying while the role is not assumable yet (up to
/// [`wait::IAM_PROPAGATION`]) and, for updates, while another update is in progress (waiting for
/// it to settle).
async fn lambda_call<T, E, F, Fut>(
    c: &Clients,
    d: &Desired,
    f: Function,
    action: &'static str,
    conflict: Conflict,
    cancel: &CancellationToken,
    mut op: F,
) -> Result<Called<T>, PieceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<T, SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>>,
    >,
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    let p = f.label(d);
    loop {
        let result =
            wait::retry_while(wait::IAM_PROPAGATION, cancel, role_not_ready, &mut op).await;
        match result {
            Ok(t) => return Ok(Called::Done(t)),
            Err(None) => return Err(wait::stopped(&p, action)),
            Err(Some(e)) if conflict == Conflict::Exists && is_code(&e, codes::LAMBDA_CONFLICT) => {
                return Ok(Called::Exists)
            }
            // Someone else's update (or one of ours an interrupted apply left) is in progress.
            Err(Some(e)) if is_code(&e, codes::LAMBDA_CONFLICT) => {
                tracing::info!(piece = %p, "an update is in progress; waiting for it");
                wait_settled(c, d, f, cancel).await?;
            }
            Err(Some(e)) if role_not_ready(&e) => {
                return Err(PieceError::new(
                    &p,
                    action,
                    format!(
                        "{} (still, after {} s of waiting for IAM to propagate the role {})",
                        super::describe(&e),
                        wait::IAM_PROPAGATION.as_secs(),
                        d.role_arn(f.name(d))
                    ),
                ))
            }
            Err(Some(e)) => return Err(PieceError::aws(&p, action, e)),
        }
    }
}

/// Differences from the desired configuration (the code hash is an attribute of its own).
fn drift(d: &Desired, f: Function, found: &Found<Observed>) -> Vec<Difference> {
    let p = f.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    compare(
        &mut out,
        &p,
        "runtime",
        &o.runtime.as_str(),
        &"provided.al2023",
    );
    compare(&mut out, &p, "handler", &o.handler.as_str(), &"bootstrap");
    compare(&mut out, &p, "role", &o.role, &d.role_arn(f.name(d)));
    compare(&mut out, &p, "timeout", &o.timeout, &d.timeout_seconds);
    compare(&mut out, &p, "memory", &o.memory, &d.memory_mb);
    compare(
        &mut out,
        &p,
        "environment",
        &o.environment,
        &f.environment(d),
    );
    compare(
        &mut out,
        &p,
        "asynchronous invoke",
        &o.async_invoke,
        &Some(ASYNC_INVOKE),
    );
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

fn config_differs(d: &Desired, f: Function, o: &Observed) -> bool {
    o.runtime != "provided.al2023"
        || o.handler != "bootstrap"
        || o.role != d.role_arn(f.name(d))
        || o.timeout != d.timeout_seconds
        || o.memory != d.memory_mb
        || o.environment != f.environment(d)
}

/// Creates the function, or updates its configuration, code and tags where they differ, waiting
/// for Lambda to finish each step before the next (an update while one is in progress is
/// refused). Returns its ARN.
async fn ensure(
    c: &Clients,
    d: &Desired,
    f: Function,
    code: Code<'_>,
    found: &Found<Observed>,
    cancel: &CancellationToken,
) -> Result<String, PieceError> {
    let name = f.name(d);
    let p = f.label(d);
    let env = Environment::builder()
        .set_variables(Some(f.environment(d).into_iter().collect()))
        .build();
    let adopted;
    let o = match found {
        Found::Missing => {
            let created = lambda_call(c, d, f, "creating", Conflict::Exists, cancel, || {
                c.lambda
                    .create_function()
                    .function_name(name)
                    .runtime(Runtime::Providedal2023)
                    .handler("bootstrap")
                    .architectures(Architecture::X8664)
                    .role(d.role_arn(name))
                    .timeout(d.timeout_seconds)
                    .memory_size(d.memory_mb)
                    .environment(env.clone())
                    .description(format!(
                        "EC2 compliance monitor ({}), stack {}",
                        f.as_str(),
                        d.names.suffix
                    ))
                    .code(LambdaCode::builder().zip_file(Blob::new(code.zip)).build())
                    .set_tags(Some(d.tags.clone().into_iter().collect()))
                    .send()
            })
            .await?;
            match created {
                Called::Done(created) => {
                    if created.code_sha256() != Some(code.sha256) {
                        return Err(PieceError::new(
                            &p,
                            "checking the uploaded code of",
                            format!(
                                "Lambda reports CodeSha256 {}, the package has {}",
                                created.code_sha256().hcl(),
                                code.sha256.hcl()
                            ),
                        ));
                    }
                    if busy(created.state(), created.last_update_status()) {
                        wait_settled(c, d, f, cancel).await?;
                    }
                    ensure_async_invoke(c, d, f, None, cancel).await?;
                    return Ok(created.function_arn().unwrap_or_default().to_string());
                }
                // The create was served but its answer lost, and the SDK's retry met the
                // function it had made: it carries the stack's tags (they are set by the create
                // itself), so it is taken as created and brought to the settings below.
                Called::Exists => match read(c, d, f).await? {
                    Found::Present(o) if owned(&o.tags, &d.names.suffix) => {
                        adopted = o;
                        &adopted
                    }
                    _ => {
                        return Err(super::name_taken(
                            &p,
                            &super::Unmarked::tags(&d.names.suffix),
                        ))
                    }
                },
            }
        }
        Found::Present(o) => o,
    };
    if !o.settled() {
        wait_settled(c, d, f, cancel).await?;
    }
    if config_differs(d, f, o) {
        let answer = lambda_call(
            c,
            d,
            f,
            "updating the configuration of",
            Conflict::Busy,
            cancel,
            || {
                c.lambda
                    .update_function_configuration()
                    .function_name(name)
                    .runtime(Runtime::Providedal2023)
                    .handler("bootstrap")
                    .role(d.role_arn(name))
                    .timeout(d.timeout_seconds)
                    .memory_size(d.memory_mb)
                    .environment(env.clone())
                    .send()
            },
        )
        .await?;
        if matches!(&answer, Called::Done(a) if busy(a.state(), a.last_update_status())) {
            wait_settled(c, d, f, cancel).await?;
        }
    }
    if o.code_sha256 != code.sha256 {
        let Called::Done(updated) = lambda_call(
            c,
            d,
            f,
            "updating the code of",
            Conflict::Busy,
            cancel,
            || {
                c.lambda
                    .update_function_code()
                    .function_name(name)
                    .zip_file(Blob::new(code.zip))
                    .send()
            },
        )
        .await?
        else {
            // Conflict::Busy waits a conflict out; it never ends in Exists.
            return Err(PieceError::new(
                &p,
                "updating the code of",
                "unexpected conflict",
            ));
        };
        if updated.code_sha256() != Some(code.sha256) {
            return Err(PieceError::new(
                &p,
                "checking the uploaded code of",
                "CodeSha256 differs from the package",
            ));
        }
        if busy(updated.state(), updated.last_update_status()) {
            wait_settled(c, d, f, cancel).await?;
        }
    }
    ensure_async_invoke(c, d, f, o.async_invoke, cancel).await?;
    super::retag(
        &p,
        &o.tags,
        &d.tags,
        || {
            c.lambda
                .tag_resource()
                .resource(&o.arn)
                .set_tags(Some(d.tags.clone().into_iter().collect()))
                .send()
        },
        |keys| {
            c.lambda
                .untag_resource()
                .resource(&o.arn)
                .set_tag_keys(Some(keys))
                .send()
        },
    )
    .await?;
    Ok(o.arn.clone())
}

/// Deletes the function. A missing one is fine.
async fn delete(c: &Clients, d: &Desired, f: Function) -> Result<(), PieceError> {
    match c
        .lambda
        .delete_function()
        .function_name(f.name(d))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => Ok(()),
        Err(e) => Err(PieceError::aws(f.label(d), "deleting", e)),
    }
}

impl Piece for Function {
    type Observed = Observed;
    /// The function's ARN.
    type Made = String;

    fn label(&self, d: &Desired) -> String {
        format!("Lambda function {}", self.name(d))
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    async fn read(&self, c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
        read(c, d, *self).await
    }

    fn drift(&self, d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
        drift(d, *self, found)
    }

    async fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        how: &Ensure<'_>,
    ) -> Result<String, PieceError> {
        ensure(c, d, *self, *how.codes.get(*self), found, how.cancel).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        _found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d, *self).await
    }
}
