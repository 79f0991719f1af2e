//! The results bucket: versioned, Glacier transition (never expiry), public access blocked,
//! default encryption, TLS-only policy; emptied of every version on delete.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, Transition,
    TransitionStorageClass, VersioningConfiguration,
};

use super::{compare, compare_tags, is_not_found, Clients, Desired, Difference, Found, PieceError};

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Versioning is enabled.
    pub versioning: bool,
    /// Days of the Glacier transition rule, if the rule is there and enabled (and expires nothing).
    pub glacier_days: Option<i32>,
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

fn piece(d: &Desired) -> String {
    format!("bucket {}", d.names.bucket)
}

/// The TLS-only bucket policy.
pub fn policy(bucket: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
}

/// Reads the bucket and its settings.
pub async fn read(c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
    let name = &d.names.bucket;
    let p = piece(d);
    match c.s3.head_bucket().bucket(name).send().await {
        Ok(_) => {}
        Err(e)
            if is_not_found(&e) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
        {
            return Ok(Found::Missing)
        }
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    }
    let (versioning, lifecycle, pab, enc, pol, tags) = futures::join!(
        c.s3.get_bucket_versioning().bucket(name).send(),
        c.s3.get_bucket_lifecycle_configuration()
            .bucket(name)
            .send(),
        c.s3.get_public_access_block().bucket(name).send(),
        c.s3.get_bucket_encryption().bucket(name).send(),
        c.s3.get_bucket_policy().bucket(name).send(),
        c.s3.get_bucket_tagging().bucket(name).send(),
    );
    // Some S3 emulators (moto) answer with a differently named XML root that the SDK refuses to
    // parse; the raw answer still says whether versioning is on.
    let versioning = match versioning {
        Ok(v) => v.status == Some(BucketVersioningStatus::Enabled),
        Err(e) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
    };
    // A missing sub-configuration is an error code of its own; every such case means "not set".
    let glacier_days = lifecycle.ok().and_then(|l| {
        l.rules().iter().find_map(|r| {
            let enabled = r.status() == &ExpirationStatus::Enabled && r.expiration().is_none();
            let t = r
                .transitions()
                .iter()
                .find(|t| t.storage_class() == Some(&TransitionStorageClass::Glacier))?;
            enabled.then(|| t.days()).flatten()
        })
    });
    let public_access_blocked = pab
        .ok()
        .and_then(|o| o.public_access_block_configuration)
        .is_some_and(|b| {
            b.block_public_acls() == Some(true)
                && b.ignore_public_acls() == Some(true)
                && b.block_public_policy() == Some(true)
                && b.restrict_public_buckets() == Some(true)
        });
    let encrypted = enc
        .ok()
        .and_then(|o| o.server_side_encryption_configuration)
        .is_some_and(|c| !c.rules().is_empty());
    let tls_only = pol
        .ok()
        .and_then(|o| o.policy)
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|v| v == policy(name));
    let tags = tags
        .ok()
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
        public_access_blocked,
        encrypted,
        tls_only,
        tags,
    }))
}

/// Differences from the desired settings.
pub fn drift(d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
    let p = piece(d);
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
pub async fn ensure(c: &Clients, d: &Desired, found: &Found<Observed>) -> Result<(), PieceError> {
    let name = &d.names.bucket;
    let p = piece(d);
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
            create
                .send()
                .await
                .map_err(|e| PieceError::aws(&p, "creating", e))?;
            &blank
        }
    };
    if !o.public_access_blocked {
        c.s3.put_public_access_block()
            .bucket(name)
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
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "enabling versioning on", e))?;
    }
    if o.glacier_days != Some(d.glacier_transition_days) {
        let rule = LifecycleRule::builder()
            .id(LIFECYCLE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
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
            .policy(policy(name).to_string())
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "setting the TLS-only policy of", e))?;
    }
    if o.tags != d.tags {
        let tags = d
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PieceError::new(&p, "tagging", e.to_string()))?;
        c.s3.put_bucket_tagging()
            .bucket(name)
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
    Ok(())
}

/// Deletes every object version and delete marker, then the bucket. A missing bucket is fine.
pub async fn delete(c: &Clients, d: &Desired) -> Result<(), PieceError> {
    let name = &d.names.bucket;
    let p = piece(d);
    loop {
        let page = match c
            .s3
            .list_object_versions()
            .bucket(name)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(PieceError::aws(&p, "emptying", e)),
        };
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter_map(|(k, v)| {
                ObjectIdentifier::builder()
                    .key(k?)
                    .set_version_id(v.map(str::to_string))
                    .build()
                    .ok()
            })
            .collect();
        if ids.is_empty() {
            break;
        }
        tracing::info!(bucket = %name, objects = ids.len(), "deleting object versions");
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| PieceError::new(&p, "emptying", e.to_string()))?;
        c.s3.delete_objects()
            .bucket(name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "emptying", e))?;
    }
    match c.s3.delete_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(PieceError::aws(&p, "deleting", e)),
    }
}
