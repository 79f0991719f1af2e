//! The provider block's settings as plain values: what the AWS clients are built from.

use std::collections::BTreeMap;

/// The role to assume for every AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    /// Role ARN.
    pub role_arn: String,
    /// Session name, if set.
    pub session_name: Option<String>,
    /// External id, if set.
    pub external_id: Option<String>,
}

/// The provider block as configured; unset values fall back to the AWS environment when clients
/// are built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Region.
    pub region: Option<String>,
    /// Shared-config profile.
    pub profile: Option<String>,
    /// One endpoint for every service.
    pub endpoint_url: Option<String>,
    /// Tags for every piece.
    pub default_tags: BTreeMap<String, String>,
    /// Most attempts per AWS call.
    pub max_retries: Option<u32>,
    /// Role to assume.
    pub assume_role: Option<AssumeRole>,
}
