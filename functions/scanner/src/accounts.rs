//! Which accounts a scan reads and how it reaches each: the stack's own account with the
//! function's own credentials, every member account through its member role (AssumeRole once per
//! account, the credentials cached and renewed before they expire), and the regions of each.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use aws_credential_types::provider::{self, future, ProvideCredentials};
use aws_credential_types::Credentials;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use compliance_rules::contract::{Members, ALL_REGIONS};
use compliance_rules::result::ScanError;
use tokio::sync::Mutex;

/// Who the scanner runs as: its account and partition (from GetCallerIdentity's ARN, so role
/// ARNs are right in `aws-cn` and `aws-us-gov` too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The stack's own account.
    pub account_id: String,
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub partition: String,
}

/// Reads the caller's identity.
pub async fn identity(sts: &aws_sdk_sts::Client) -> anyhow::Result<Identity> {
    let id = sts
        .get_caller_identity()
        .send()
        .await
        .context("STS GetCallerIdentity")?;
    let account_id = id
        .account
        .context("STS GetCallerIdentity named no account")?;
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
}

/// A failed call as the result records it: the operation, AWS's code and a cause that names
/// where (`context`) and what AWS said.
pub fn scan_error<E>(
    account_id: &str,
    region: Option<&str>,
    operation: &str,
    context: &str,
    err: &aws_sdk_ec2::error::SdkError<E>,
) -> ScanError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().map(str::to_string);
    let cause = match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{context}: {code}: {message}"),
        (Some(code), None) => format!("{context}: {code}"),
        _ => format!(
            "{context}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(err)
        ),
    };
    ScanError {
        account_id: account_id.to_string(),
        region: region.map(str::to_string),
        operation: operation.to_string(),
        code,
        cause,
    }
}

/// The member accounts to scan besides `own`: the configured ones in their order, or every
/// ACTIVE account of the organization (sorted), never `own` itself. A failure to list the
/// organization is an error for the own account, and no member is scanned.
pub async fn members(
    members: &Members,
    organizations: &aws_sdk_organizations::Client,
    own: &str,
) -> (Vec<String>, Option<ScanError>) {
    if !members.organization {
        let list = members
            .accounts
            .iter()
            .filter(|a| *a != own)
            .cloned()
            .collect();
        return (list, None);
    }
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = match organizations
            .list_accounts()
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) => {
                let code = e.code().map(str::to_string);
                let cause = format!(
                    "Organizations ListAccounts: {}",
                    match (e.code(), e.message()) {
                        (Some(c), Some(m)) => format!("{c}: {m}"),
                        _ => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                    }
                );
                let error = ScanError {
                    account_id: own.to_string(),
                    region: None,
                    operation: "ListAccounts".to_string(),
                    code,
                    cause,
                };
                return (Vec::new(), Some(error));
            }
        };
        token = page.next_token.filter(|t| !t.is_empty());
        for account in page.accounts.unwrap_or_default() {
            // `State` replaces `Status` (retired in 2026); either says ACTIVE.
            let active = match (&account.state, &account.status) {
                (Some(state), _) => state.as_str() == "ACTIVE",
                (None, Some(status)) => status.as_str() == "ACTIVE",
                (None, None) => false,
            };
            if let (true, Some(id)) = (active, account.id) {
                if id != own {
                    found.push(id);
                }
            }
        }
        if token.is_none() {
            break;
        }
    }
    found.sort();
    found.dedup();
    (found, None)
}

/// The session name of the scanner's sessions in member accounts: `compliance-scanner-<stack>`,
/// in the characters and length STS allows, so CloudTrail in a member account names the stack.
pub fn session_name(stack: &str) -> String {
    let mut name: String = format!("compliance-scanner-{stack}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

/// Credentials renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The member role of one account as a credentials provider: AssumeRole through the scanner's
/// own (counted) STS client, the answer cached until shortly before it expires, so one scan makes
/// one AssumeRole per account however many regions and pages it reads there.
#[derive(Debug)]
pub struct MemberRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session: String,
    external_id: Option<String>,
    cached: Mutex<Option<Credentials>>,
}

impl MemberRole {
    /// The role `role_name` in `account` (in `partition`).
    pub fn new(
        sts: aws_sdk_sts::Client,
        partition: &str,
        account: &str,
        members: &Members,
        session: String,
    ) -> MemberRole {
        MemberRole {
            sts,
            role_arn: format!("arn:{partition}:iam::{account}:role/{}", members.role_name),
            session,
            external_id: members.external_id.clone(),
            cached: Mutex::new(None),
        }
    }

    /// The role's ARN.
    pub fn arn(&self) -> &str {
        &self.role_arn
    }

    /// Credentials of the role: the cached ones while they last, else a new AssumeRole.
    pub async fn credentials(
        &self,
    ) -> Result<
        Credentials,
        aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>,
    > {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + RENEW_BEFORE);
            if fresh {
                return Ok(c.clone());
            }
        }
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session)
            .set_external_id(self.external_id.clone())
            .send()
            .await?;
        let Some(c) = out.credentials else {
            return Err(aws_sdk_sts::error::SdkError::construction_failure(
                "AssumeRole answered without credentials",
            ));
        };
        let expiry = SystemTime::try_from(c.expiration).ok();
        let creds = Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            expiry,
            "ComplianceScannerMemberRole",
        );
        *cached = Some(creds.clone());
        Ok(creds)
    }
}

impl ProvideCredentials for MemberRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials().await.map_err(|e| {
                provider::error::CredentialsError::provider_error(format!(
                    "AssumeRole {}: {}",
                    self.role_arn,
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                ))
            })
        })
    }
}

/// How the scanner reaches one account: its SDK configuration (the function's own for the stack's
/// account, the member role's otherwise).
#[derive(Debug, Clone)]
pub struct Access {
    /// The account.
    pub account_id: String,
    /// Configuration whose credentials are the account's.
    pub sdk: aws_config::SdkConfig,
}

impl Access {
    /// The member `role`'s access, its first credentials fetched now so that a missing role or a
    /// refused trust is one error for the account, not one per region.
    pub async fn member(
        own: &aws_config::SdkConfig,
        account: &str,
        role: MemberRole,
    ) -> Result<Access, ScanError> {
        if let Err(e) = role.credentials().await {
            let context = format!("AssumeRole {} in account {account}", role.arn());
            return Err(scan_error(account, None, "AssumeRole", &context, &e));
        }
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(
            Arc::new(role) as Arc<dyn ProvideCredentials>,
        );
        let sdk = own.to_builder().credentials_provider(provider).build();
        Ok(Access {
            account_id: account.to_string(),
            sdk,
        })
    }
}

/// The regions to scan in an account: the configured list, or with `*` the regions enabled in the
/// account, read with DescribeRegions (in `home`, the function's own region).
pub async fn regions(
    configured: &[String],
    ec2_home: &aws_sdk_ec2::Client,
    account: &str,
    home: &str,
) -> Result<Vec<String>, ScanError> {
    if configured != [ALL_REGIONS] {
        return Ok(configured.to_vec());
    }
    let out = ec2_home.describe_regions().send().await.map_err(|e| {
        let context = format!("DescribeRegions in account {account} ({home})");
        scan_error(account, None, "DescribeRegions", &context, &e)
    })?;
    let mut list: Vec<String> = out
        .regions
        .unwrap_or_default()
        .into_iter()
        // Without AllRegions EC2 lists only enabled regions; an emulator may list others too.
        .filter(|r| r.opt_in_status.as_deref() != Some("not-opted-in"))
        .filter_map(|r| r.region_name)
        .collect();
    list.sort();
    list.dedup();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_what_sts_allows() {
        assert_eq!(session_name("prod"), "compliance-scanner-prod");
        assert_eq!(session_name("a b/c"), "compliance-scanner-a-b-c");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
    }
}
