//! The scanner and reporter Lambda functions (`provided.al2023`, x86_64, a Rust `bootstrap`).

use std::collections::BTreeMap;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode as LambdaCode, Runtime};

use super::{
    compare, compare_tags, is_not_found, with_backoff, Clients, Desired, Difference, Found,
    PieceError,
};

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The scanner.
    Scanner,
    /// The reporter.
    Reporter,
}

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

    fn piece(self, d: &Desired) -> String {
        format!("Lambda function {}", self.name(d))
    }

    /// The environment the function runs with.
    pub fn environment(self, d: &Desired) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("BUCKET_NAME".to_string(), d.names.bucket.clone()),
            ("TOPIC_ARN".to_string(), d.topic_arn()),
            ("STACK_NAME".to_string(), d.names.suffix.clone()),
        ]);
        if self == Function::Scanner {
            let ports: Vec<String> = d.restricted_ports.iter().map(u16::to_string).collect();
            env.extend([
                ("REQUIRED_TAGS".to_string(), d.required_tags.join(",")),
                ("RESTRICTED_PORTS".to_string(), ports.join(",")),
                ("EXEMPT_TAG_KEY".to_string(), d.exempt_tag_key.clone()),
                ("SCAN_REGIONS".to_string(), d.region.clone()),
                (
                    "METRIC_NAMESPACE".to_string(),
                    d.names.metric_namespace.clone(),
                ),
            ]);
        }
        env
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
}

/// Reads the function's configuration, code hash and tags.
pub async fn read(c: &Clients, d: &Desired, f: Function) -> Result<Found<Observed>, PieceError> {
    let got = match c
        .lambda
        .get_function()
        .function_name(f.name(d))
        .send()
        .await
    {
        Ok(g) => g,
        Err(e) if is_not_found(&e) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(f.piece(d), "reading", e)),
    };
    // The response's Code.Location points at an AWS host: it is never fetched.
    let cfg = got.configuration();
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
    }))
}

/// Differences from the desired configuration (the code hash is an attribute of its own).
pub fn drift(d: &Desired, f: Function, found: &Found<Observed>) -> Vec<Difference> {
    let p = f.piece(d);
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

/// Creates the function, or updates its configuration, code and tags where they differ.
/// Returns its ARN.
pub async fn ensure(
    c: &Clients,
    d: &Desired,
    f: Function,
    code: Code<'_>,
    found: &Found<Observed>,
) -> Result<String, PieceError> {
    let name = f.name(d);
    let p = f.piece(d);
    let env = Environment::builder()
        .set_variables(Some(f.environment(d).into_iter().collect()))
        .build();
    let o = match found {
        Found::Missing => {
            // A role created moments ago may not be assumable by Lambda yet (IAM is eventually
            // consistent): retry that one error with backoff, bounded.
            let created = with_backoff(
                8,
                |e: &aws_smithy_runtime_api::client::result::SdkError<
                    aws_sdk_lambda::operation::create_function::CreateFunctionError,
                    _,
                >| {
                    matches!(e.as_service_error(), Some(s) if s.is_invalid_parameter_value_exception()
                        && s.to_string().contains("role"))
                },
                || {
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
                        .description(format!("EC2 compliance monitor ({}), stack {}", match f {
                            Function::Scanner => "scanner",
                            Function::Reporter => "reporter",
                        }, d.names.suffix))
                        .code(LambdaCode::builder().zip_file(Blob::new(code.zip)).build())
                        .set_tags(Some(d.tags.clone().into_iter().collect()))
                        .send()
                },
            )
            .await
            .map_err(|e| PieceError::aws(&p, "creating", e))?;
            if created.code_sha256() != Some(code.sha256) {
                return Err(PieceError::new(
                    &p,
                    "checking the uploaded code of",
                    format!(
                        "Lambda reports CodeSha256 {:?}, the package has {}",
                        created.code_sha256(),
                        code.sha256
                    ),
                ));
            }
            return Ok(created.function_arn().unwrap_or_default().to_string());
        }
        Found::Present(o) => o,
    };
    if config_differs(d, f, o) {
        c.lambda
            .update_function_configuration()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(d.role_arn(name))
            .timeout(d.timeout_seconds)
            .memory_size(d.memory_mb)
            .environment(env)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "updating the configuration of", e))?;
    }
    if o.code_sha256 != code.sha256 {
        let updated = c
            .lambda
            .update_function_code()
            .function_name(name)
            .zip_file(Blob::new(code.zip))
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "updating the code of", e))?;
        if updated.code_sha256() != Some(code.sha256) {
            return Err(PieceError::new(
                &p,
                "checking the uploaded code of",
                "CodeSha256 differs from the package",
            ));
        }
    }
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
pub async fn delete(c: &Clients, d: &Desired, f: Function) -> Result<(), PieceError> {
    match c
        .lambda
        .delete_function()
        .function_name(f.name(d))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(PieceError::aws(f.piece(d), "deleting", e)),
    }
}
