//! What an AWS error means, by its exact code.
//!
//! A read forgives only the one code that means "not there" or "not set" for that call; anything
//! else (AccessDenied, throttling that outlasted the SDK's retries, a 500) is an error that names
//! the piece. Reading such an error as "absent" would turn a denied or throttled read into drift
//! and a blind rewrite. Throttling itself is retried by the SDK's retry layer (standard mode) before
//! any of this sees it.

use std::fmt;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The exact error codes the stack acts on, per service and call, as the APIs document them.
pub mod codes {
    /// IAM: the role or policy does not exist (GetRole, ListRolePolicies, DeleteRole, ...).
    pub const IAM_NO_SUCH_ENTITY: &str = "NoSuchEntity";
    /// IAM: CreateRole of a name that exists.
    pub const IAM_ENTITY_EXISTS: &str = "EntityAlreadyExists";
    /// IAM: DeleteRole while something still uses the role.
    pub const IAM_DELETE_CONFLICT: &str = "DeleteConflict";
    /// Lambda: no such function, or no resource policy on it (GetPolicy).
    pub const LAMBDA_NOT_FOUND: &str = "ResourceNotFoundException";
    /// Lambda: CreateFunction of a name that exists, an update while another is in progress, or
    /// AddPermission with a statement id that exists.
    pub const LAMBDA_CONFLICT: &str = "ResourceConflictException";
    /// Lambda: an invalid parameter; with a role, the role is not (yet) assumable by Lambda.
    pub const LAMBDA_INVALID_PARAMETER: &str = "InvalidParameterValueException";
    /// CloudWatch Logs: no such log group.
    pub const LOGS_NOT_FOUND: &str = "ResourceNotFoundException";
    /// CloudWatch Logs: CreateLogGroup of a name that exists.
    pub const LOGS_EXISTS: &str = "ResourceAlreadyExistsException";
    /// EventBridge: no such rule.
    pub const EVENTS_NOT_FOUND: &str = "ResourceNotFoundException";
    /// SNS: no such topic or subscription.
    pub const SNS_NOT_FOUND: &str = "NotFound";
    /// CloudWatch: no such dashboard (GetDashboard, DeleteDashboards).
    pub const DASHBOARD_NOT_FOUND: &str = "ResourceNotFound";
    /// CloudWatch: DeleteAlarms naming an alarm that does not exist (it then deletes none).
    pub const ALARM_NOT_FOUND: &str = "ResourceNotFound";
    /// CloudWatch: ListTagsForResource of an alarm that does not exist.
    pub const CLOUDWATCH_TAGS_NOT_FOUND: &str = "ResourceNotFoundException";
    /// S3: no such bucket.
    pub const S3_NO_SUCH_BUCKET: &str = "NoSuchBucket";
    /// S3: HeadBucket of a bucket that does not exist (a 404 with no body).
    pub const S3_HEAD_NOT_FOUND: &str = "NotFound";
    /// S3: CreateBucket of a name another account owns (names are global).
    pub const S3_BUCKET_EXISTS: &str = "BucketAlreadyExists";
    /// S3: CreateBucket of a name this account owns already.
    pub const S3_BUCKET_OWNED: &str = "BucketAlreadyOwnedByYou";
    /// S3: the bucket has no lifecycle configuration.
    pub const S3_NO_LIFECYCLE: &str = "NoSuchLifecycleConfiguration";
    /// S3: the bucket has no public-access block.
    pub const S3_NO_PUBLIC_ACCESS_BLOCK: &str = "NoSuchPublicAccessBlockConfiguration";
    /// S3: the bucket has no default-encryption configuration.
    pub const S3_NO_ENCRYPTION: &str = "ServerSideEncryptionConfigurationNotFoundError";
    /// S3: the bucket has no policy.
    pub const S3_NO_POLICY: &str = "NoSuchBucketPolicy";
    /// S3: the bucket has no tags.
    pub const S3_NO_TAGS: &str = "NoSuchTagSet";
}

/// The AWS error code of a service's answer, if the call got one.
pub fn code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// True when the service answered with exactly `expected`.
pub fn is_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, expected: &str) -> bool {
    code(err) == Some(expected)
}

/// `Ok(None)` when the call failed with exactly `absent` (the setting or thing is not there),
/// the error otherwise: for reads of optional settings.
pub fn absent_if<T, E: ProvideErrorMetadata, R>(
    result: Result<T, SdkError<E, R>>,
    absent: &str,
) -> Result<Option<T>, SdkError<E, R>> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(e) if is_code(&e, absent) => Ok(None),
        Err(e) => Err(e),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service<E>(err: E, status: u16) -> SdkError<E, HttpResponse> {
        SdkError::service_error(
            err,
            HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    fn meta(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder()
            .code(code)
            .message("from the test")
            .build()
    }

    /// Each service's exact not-set code is "absent"; any other code of the same call is an error.
    #[test]
    fn only_the_exact_not_set_code_is_absent() {
        use aws_sdk_s3::operation::get_bucket_lifecycle_configuration::GetBucketLifecycleConfigurationError as Lifecycle;
        use aws_sdk_s3::operation::get_bucket_policy::GetBucketPolicyError as Policy;
        use aws_sdk_s3::operation::get_bucket_tagging::GetBucketTaggingError as Tagging;
        type S3Result<E> = Result<(), SdkError<E, HttpResponse>>;

        let absent: S3Result<Lifecycle> = Err(service(
            Lifecycle::generic(meta(codes::S3_NO_LIFECYCLE)),
            404,
        ));
        assert!(matches!(
            absent_if(absent, codes::S3_NO_LIFECYCLE),
            Ok(None)
        ));
        for other in ["AccessDenied", "SlowDown", "InternalError", "NoSuchBucket"] {
            let r: S3Result<Lifecycle> = Err(service(Lifecycle::generic(meta(other)), 403));
            let e = absent_if(r, codes::S3_NO_LIFECYCLE).expect_err(other);
            assert_eq!(code(&e), Some(other));
        }
        let r: S3Result<Policy> = Err(service(Policy::generic(meta(codes::S3_NO_TAGS)), 404));
        assert!(
            absent_if(r, codes::S3_NO_POLICY).is_err(),
            "another call's not-set code is not this one's"
        );
        let r: S3Result<Tagging> = Err(service(Tagging::generic(meta(codes::S3_NO_TAGS)), 404));
        assert!(matches!(absent_if(r, codes::S3_NO_TAGS), Ok(None)));
        let ok: S3Result<Tagging> = Ok(());
        assert!(matches!(absent_if(ok, codes::S3_NO_TAGS), Ok(Some(()))));
    }

    /// A not-found of one service is matched by its own constant only (IAM says NoSuchEntity,
    /// SNS NotFound, Lambda ResourceNotFoundException).
    #[test]
    fn not_found_codes_per_service() {
        use aws_sdk_iam::operation::get_role::GetRoleError;
        use aws_sdk_lambda::operation::get_function::GetFunctionError;
        use aws_sdk_sns::operation::get_topic_attributes::GetTopicAttributesError;

        let iam = service(GetRoleError::generic(meta("NoSuchEntity")), 404);
        assert!(is_code(&iam, codes::IAM_NO_SUCH_ENTITY));
        assert!(!is_code(&iam, codes::LAMBDA_NOT_FOUND));
        let sns = service(GetTopicAttributesError::generic(meta("NotFound")), 404);
        assert!(is_code(&sns, codes::SNS_NOT_FOUND));
        let denied = service(
            GetTopicAttributesError::generic(meta("AuthorizationError")),
            403,
        );
        assert!(!is_code(&denied, codes::SNS_NOT_FOUND));
        let lambda = service(
            GetFunctionError::generic(meta("ResourceNotFoundException")),
            404,
        );
        assert!(is_code(&lambda, codes::LAMBDA_NOT_FOUND));
        // A transport failure has no code: never "absent".
        let io: SdkError<GetFunctionError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(code(&io), None);
        assert!(!is_code(&io, codes::LAMBDA_NOT_FOUND));
    }

    /// The throttling answers of every protocol are codes the SDK's standard retry classifies
    /// as throttling, so they are retried (with backoff) before the stack sees them; AccessDenied
    /// and a Lambda conflict are not.
    #[test]
    fn throttling_codes_are_retried_by_the_sdk_and_access_denied_is_not() {
        use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
        // Lambda (REST-JSON 429), Logs/EventBridge (JSON), IAM/SNS/STS (Query), EC2, S3.
        for code in [
            "TooManyRequestsException",
            "ThrottlingException",
            "Throttling",
            "RequestLimitExceeded",
            "SlowDown",
        ] {
            assert!(THROTTLING_ERRORS.contains(&code), "{code} is retried");
        }
        for code in [
            "AccessDenied",
            "AccessDeniedException",
            codes::LAMBDA_CONFLICT,
        ] {
            assert!(
                !THROTTLING_ERRORS.contains(&code) && !TRANSIENT_ERRORS.contains(&code),
                "{code} is not retried by the SDK"
            );
        }
    }
}
