//! The results bucket: versioned, Glacier transition (never expiry), public access blocked,
//! default encryption, TLS-only policy; emptied of every version on delete.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleRule, LifecycleRuleFilter,
    ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, Transition, TransitionStorageClass, VersioningConfiguration,
};

use tokio_util::sync::CancellationToken;

use super::errors::{absent_if, codes, is_code};
use super::{
    compare, compare_tags, Clients, Desired, Difference, Ensure, Found, Hcl, Piece, PieceError,
};

/// The results bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket;

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Versioning is enabled.
    pub versioning: bool,
    /// Days of the Glacier transition rule, if the rule is there and enabled (and expires nothing).
    pub glacier_days: Option<i32>,
    /// Days after which the lifecycle rule aborts an incomplete multipart upload (a scanner
    /// stopped mid-upload leaves its parts, which are billed and invisible otherwise).
    pub abort_incomplete_days: Option<i32>,
    /// All four public-access blocks are on.
    pub public_access_blocked: bool,
    /// Default encryption is configured.
    pub encrypted: bool,
    /// The bucket policy denies non-TLS access.
    pub tls_only: bool,
    /// The bucket's tags.
    pub tags: BTreeMap<String, String>,
}

const LIFECYCLE_RULE_ID: &str = "transition-to-glacier";

/// An incomplete multipart upload older than this is aborted by the lifecycle rule.
pub const ABORT_INCOMPLETE_DAYS: i32 = 1;

/// The TLS-only bucket policy.
pub fn policy(d: &Desired) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [d.bucket_arn(""), d.bucket_arn("/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
}

/// The error of a bucket name that another account holds (S3 names are global).
fn taken(p: &str, detail: &str) -> PieceError {
    PieceError::new(
        p,
        "creating",
        format!(
            "{detail}: the name belongs to another AWS account (bucket names are global across \
             accounts). Set bucket_name to a name of your own (or choose another \
             environment_suffix)"
        ),
    )
}

/// Reads the bucket and its settings. Each optional setting forgives only its own "not set"
/// code; a denied or throttled read is an error, never "not set".
async fn read(c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
    let name = &d.names.bucket;
    let p = Bucket.label(d);
    match c
        .s3
        .head_bucket()
        .bucket(name)
        .expected_bucket_owner(&d.account_id)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if is_code(&e, codes::S3_HEAD_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            return Err(taken(&p, "HeadBucket answers 403 Forbidden"))
        }
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    }
    let (versioning, lifecycle, pab, enc, pol, tags) = futures::join!(
        c.s3.get_bucket_versioning()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
        c.s3.get_bucket_lifecycle_configuration()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
        c.s3.get_public_access_block()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
        c.s3.get_bucket_encryption()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
        c.s3.get_bucket_policy()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
        c.s3.get_bucket_tagging()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
    );
    let versioning = match versioning {
        Ok(v) => v.status == Some(BucketVersioningStatus::Enabled),
        // Some S3 emulators (moto) answer 200 with a differently named XML root that the SDK
        // refuses to parse; the raw answer still says whether versioning is on. Only a success
        // answer is read this way: an error answer (403, 503) is an error.
        Err(e) if e.raw_response().is_some_and(|r| r.status().is_success()) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
        Err(e) => return Err(PieceError::aws(&p, "reading the versioning of", e)),
    };
    let lifecycle = absent_if(lifecycle, codes::S3_NO_LIFECYCLE)
        .map_err(|e| PieceError::aws(&p, "reading the lifecycle of", e))?;
    let abort_incomplete_days = lifecycle.as_ref().and_then(|l| {
        l.rules()
            .iter()
            .filter(|r| r.status() == &ExpirationStatus::Enabled)
            .find_map(|r| {
                r.abort_incomplete_multipart_upload()?
                    .days_after_initiation()
            })
    });
    let glacier_days = lifecycle.and_then(|l| {
        l.rules().iter().find_map(|r| {
            let enabled = r.status() == &ExpirationStatus::Enabled && r.expiration().is_none();
            let t = r
                .transitions()
                .iter()
                .find(|t| t.storage_class() == Some(&TransitionStorageClass::Glacier))?;
            enabled.then(|| t.days()).flatten()
        })
    });
    let public_access_blocked = absent_if(pab, codes::S3_NO_PUBLIC_ACCESS_BLOCK)
        .map_err(|e| PieceError::aws(&p, "reading the public-access block of", e))?
        .and_then(|o| o.public_access_block_configuration)
        .is_some_and(|b| {
            b.block_public_acls() == Some(true)
                && b.ignore_public_acls() == Some(true)
                && b.block_public_policy() == Some(true)
                && b.restrict_public_buckets() == Some(true)
        });
    let encrypted = absent_if(enc, codes::S3_NO_ENCRYPTION)
        .map_err(|e| PieceError::aws(&p, "reading the encryption of", e))?
        .and_then(|o| o.server_side_encryption_configuration)
        .is_some_and(|c| !c.rules().is_empty());
    let tls_only = absent_if(pol, codes::S3_NO_POLICY)
        .map_err(|e| PieceError::aws(&p, "reading the policy of", e))?
        .and_then(|o| o.policy)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| v == policy(d));
    let tags = absent_if(tags, codes::S3_NO_TAGS)
        .map_err(|e| PieceError::aws(&p, "reading the tags of", e))?
        .map(|t| {
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Found::Present(Observed {
        versioning,
        glacier_days,
        abort_incomplete_days,
        public_access_blocked,
        encrypted,
        tls_only,
        tags,
    }))
}

/// Differences from the desired settings.
fn drift(d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
    let p = Bucket.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    compare(&mut out, &p, "versioning enabled", &o.versioning, &true);
    compare(
        &mut out,
        &p,
        "Glacier transition days",
        &o.glacier_days,
        &Some(d.glacier_transition_days),
    );
    compare(
        &mut out,
        &p,
        "abort incomplete uploads days",
        &o.abort_incomplete_days,
        &Some(ABORT_INCOMPLETE_DAYS),
    );
    compare(
        &mut out,
        &p,
        "public access blocked",
        &o.public_access_blocked,
        &true,
    );
    compare(&mut out, &p, "default encryption", &o.encrypted, &true);
    compare(&mut out, &p, "TLS-only policy", &o.tls_only, &true);
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

/// Creates the bucket or brings it to the desired settings, writing only what differs.
async fn ensure(c: &Clients, d: &Desired, found: &Found<Observed>) -> Result<(), PieceError> {
    let name = &d.names.bucket;
    let p = Bucket.label(d);
    let blank = Observed::default();
    let o = match found {
        Found::Present(o) => o,
        Found::Missing => {
            let mut create = c.s3.create_bucket().bucket(name);
            if c.region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(c.region.as_str().into())
                        .build(),
                );
            }
            match create.send().await {
                Ok(_) => {}
                Err(e) if is_code(&e, codes::S3_BUCKET_EXISTS) => {
                    return Err(taken(&p, "CreateBucket answers BucketAlreadyExists"))
                }
                // The read just before found no bucket, so one of ours that appeared since is
                // this create's own, retried after its answer was lost on the way back; it is
                // checked to be new (empty, untagged) before it is taken.
                Err(e) if is_code(&e, codes::S3_BUCKET_OWNED) => {
                    if !just_created(c, d).await? {
                        return Err(PieceError::new(
                            &p,
                            "creating",
                            "the name is taken: a bucket of this account with objects or tags \
                             exists. Set bucket_name to another name (or choose another \
                             environment_suffix), delete it, or import the stack if it is one",
                        ));
                    }
                }
                Err(e) => return Err(PieceError::aws(&p, "creating", e)),
            }
            &blank
        }
    };
    // Tagged first: the tag is the stack's claim on the bucket, so a failure in a later step
    // leaves a bucket the next apply knows as its own.
    if o.tags != d.tags {
        let tags = d
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PieceError::new(&p, "tagging", e.to_string()))?;
        c.s3.put_bucket_tagging()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .tagging(
                Tagging::builder()
                    .set_tag_set(Some(tags))
                    .build()
                    .map_err(|e| PieceError::new(&p, "tagging", e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "tagging", e))?;
    }
    if !o.public_access_blocked {
        c.s3.put_public_access_block()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "blocking public access to", e))?;
    }
    if !o.versioning {
        c.s3.put_bucket_versioning()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "enabling versioning on", e))?;
    }
    if o.glacier_days != Some(d.glacier_transition_days)
        || o.abort_incomplete_days != Some(ABORT_INCOMPLETE_DAYS)
    {
        let rule = LifecycleRule::builder()
            .id(LIFECYCLE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(ABORT_INCOMPLETE_DAYS)
                    .build(),
            )
            .transitions(
                Transition::builder()
                    .days(d.glacier_transition_days)
                    .storage_class(TransitionStorageClass::Glacier)
                    .build(),
            )
            .build()
            .map_err(|e| PieceError::new(&p, "configuring lifecycle of", e.to_string()))?;
        let config = BucketLifecycleConfiguration::builder()
            .rules(rule)
            .build()
            .map_err(|e| PieceError::new(&p, "configuring lifecycle of", e.to_string()))?;
        c.s3.put_bucket_lifecycle_configuration()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "configuring lifecycle of", e))?;
    }
    if !o.encrypted {
        let rule = ServerSideEncryptionRule::builder()
            .apply_server_side_encryption_by_default(
                ServerSideEncryptionByDefault::builder()
                    .sse_algorithm(ServerSideEncryption::Aes256)
                    .build()
                    .map_err(|e| PieceError::new(&p, "encrypting", e.to_string()))?,
            )
            .build();
        c.s3.put_bucket_encryption()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .map_err(|e| PieceError::new(&p, "encrypting", e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "encrypting", e))?;
    }
    if !o.tls_only {
        c.s3.put_bucket_policy()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .policy(policy(d).to_string())
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "setting the TLS-only policy of", e))?;
    }
    Ok(())
}

/// True when the bucket holds no object version and no tags: a bucket no one has used.
async fn just_created(c: &Clients, d: &Desired) -> Result<bool, PieceError> {
    let name = &d.names.bucket;
    let p = Bucket.label(d);
    let (versions, tags) = futures::join!(
        c.s3.list_object_versions()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .max_keys(1)
            .send(),
        c.s3.get_bucket_tagging()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .send(),
    );
    let versions = versions.map_err(|e| PieceError::aws(&p, "reading", e))?;
    let tags = absent_if(tags, codes::S3_NO_TAGS)
        .map_err(|e| PieceError::aws(&p, "reading the tags of", e))?;
    Ok(versions.versions().is_empty()
        && versions.delete_markers().is_empty()
        && tags.is_none_or(|t| t.tag_set().is_empty()))
}

/// Most object versions the destroy guard counts before it says "more than".
const COUNT_LIMIT: usize = 10_000;

/// With `force_destroy = false`, a destroy or replacement must not delete the compliance
/// history: when the bucket holds any object version or delete marker, this fails before
/// anything is deleted, naming the bucket, how many it holds and the attribute to set.
pub async fn refuse_if_holding(c: &Clients, d: &Desired) -> Result<(), PieceError> {
    let name = &d.names.bucket;
    let p = Bucket.label(d);
    let (mut count, mut key_marker, mut version_marker) = (0usize, None, None);
    loop {
        let page = match c
            .s3
            .list_object_versions()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_code(&e, codes::S3_NO_SUCH_BUCKET) => return Ok(()),
            Err(e) => return Err(PieceError::aws(&p, "counting the objects of", e)),
        };
        count += page.versions().len() + page.delete_markers().len();
        if !page.is_truncated().unwrap_or(false) || count >= COUNT_LIMIT {
            let more = page.is_truncated().unwrap_or(false);
            if count == 0 {
                return Ok(());
            }
            return Err(PieceError::new(
                &p,
                "deleting",
                format!(
                    "it holds {}{count} object versions (scan results and reports: the \
                     compliance history) and force_destroy is false, so nothing was deleted. To \
                     delete them with the stack, set force_destroy = true, run `terraform apply`, \
                     then destroy again; to keep them, copy them elsewhere first",
                    if more { "more than " } else { "" }
                ),
            ));
        }
        key_marker = page.next_key_marker;
        version_marker = page.next_version_id_marker;
    }
}

/// Most listing rounds an emptying makes without deleting anything before it gives up: a key
/// that S3 keeps listing after a delete that reported no error for it.
const STALLED_ROUNDS: u32 = 3;

/// Deletes every object version and delete marker, then the bucket. A missing bucket is fine.
pub async fn delete(
    c: &Clients,
    d: &Desired,
    cancel: &CancellationToken,
) -> Result<(), PieceError> {
    empty(c, d, cancel).await?;
    match c
        .s3
        .delete_bucket()
        .bucket(&d.names.bucket)
        .expected_bucket_owner(&d.account_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, codes::S3_NO_SUCH_BUCKET) => Ok(()),
        Err(e) => Err(PieceError::aws(Bucket.label(d), "deleting", e)),
    }
}

/// Deletes every object version and delete marker. A missing bucket is fine.
///
/// DeleteObjects answers 200 even when it could not delete some keys (Object Lock, a denying
/// policy, MFA delete) and lists them as errors: the first such error stops the emptying, naming
/// the key and the code, so a destroy fails in bounded time and the resource stays in state.
/// Terraform's StopProvider stops it between pages.
pub async fn empty(c: &Clients, d: &Desired, cancel: &CancellationToken) -> Result<(), PieceError> {
    let name = &d.names.bucket;
    let p = Bucket.label(d);
    let mut deleted = 0usize;
    let mut stalled = 0;
    let mut last_page: Vec<(String, Option<String>)> = Vec::new();
    loop {
        if cancel.is_cancelled() {
            return Err(PieceError::new(
                &p,
                "emptying",
                format!(
                    "stopped by Terraform (interrupt) after deleting {deleted} object versions"
                ),
            ));
        }
        let page = match c
            .s3
            .list_object_versions()
            .bucket(name)
            .expected_bucket_owner(&d.account_id)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_code(&e, codes::S3_NO_SUCH_BUCKET) => return Ok(()),
            Err(e) => return Err(PieceError::aws(&p, "emptying", e)),
        };
        let keys: Vec<(String, Option<String>)> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(k, v)| Some((k?.to_string(), v.map(str::to_string))))
            .collect();
        if keys.is_empty() {
            break;
        }
        if keys == last_page {
            stalled += 1;
            if stalled >= STALLED_ROUNDS {
                return Err(PieceError::new(
                    &p,
                    "emptying",
                    format!(
                        "{} object versions (e.g. {}) are still listed after {STALLED_ROUNDS} \
                         deletions that reported no error",
                        keys.len(),
                        keys[0].0.hcl()
                    ),
                ));
            }
        } else {
            stalled = 0;
        }
        tracing::info!(bucket = %name, objects = keys.len(), deleted, "deleting object versions");
        let ids = keys
            .iter()
            .map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k)
                    .set_version_id(v.clone())
                    .build()
                    .map_err(|e| PieceError::new(&p, "emptying", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| PieceError::new(&p, "emptying", e.to_string()))?;
        let out =
            c.s3.delete_objects()
                .bucket(name)
                .expected_bucket_owner(&d.account_id)
                .delete(delete)
                .send()
                .await
                .map_err(|e| PieceError::aws(&p, "emptying", e))?;
        if let Some(err) = out.errors().first() {
            return Err(PieceError::new(
                &p,
                "emptying",
                format!(
                    "S3 did not delete {} (version {}): {}: {} ({} of {} keys in that request \
                     failed; {deleted} object versions deleted before)",
                    err.key().unwrap_or_default().hcl(),
                    err.version_id().unwrap_or("null"),
                    err.code().unwrap_or("no code"),
                    err.message().unwrap_or("no message"),
                    out.errors().len(),
                    keys.len(),
                ),
            ));
        }
        deleted += keys.len();
        last_page = keys;
    }
    Ok(())
}

impl Piece for Bucket {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!("bucket {}", d.names.bucket)
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    async fn read(&self, c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
        read(c, d).await
    }

    fn drift(&self, d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
        drift(d, found)
    }

    async fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _how: &Ensure<'_>,
    ) -> Result<(), PieceError> {
        ensure(c, d, found).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        _found: &Found<Observed>,
        cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d, cancel).await
    }
}
