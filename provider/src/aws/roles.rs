//! The functions' IAM roles, each assumable by Lambda only, with an inline least-privilege policy.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::Tag;
use serde_json::{json, Value};

use tokio_util::sync::CancellationToken;

use super::errors::absent_if;
use super::functions::Function;
use super::wait;
use super::{
    codes, compare_tags, is_code, owned, Clients, Desired, Difference, Ensure, Found, Hcl, Piece,
    PieceError,
};

/// Which function a role serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The scanner.
    Scanner,
    /// The reporter.
    Reporter,
}

/// How long a deletion waits out IAM's DeleteConflict (the role still in use just after the
/// function that used it was deleted).
const DELETE_CONFLICT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Name of the inline policy on each role.
pub const POLICY_NAME: &str = "compliance-monitor";

impl Role {
    /// The role's name (the function's name).
    pub fn name(self, d: &Desired) -> &str {
        match self {
            Role::Scanner => &d.names.scanner,
            Role::Reporter => &d.names.reporter,
        }
    }

    /// The role of a function.
    pub fn of(f: Function) -> Role {
        match f {
            Function::Scanner => Role::Scanner,
            Function::Reporter => Role::Reporter,
        }
    }

    /// The function the role serves.
    pub fn function(self) -> Function {
        match self {
            Role::Scanner => Function::Scanner,
            Role::Reporter => Function::Reporter,
        }
    }

    /// The inline policy: what the function needs and nothing more.
    pub fn policy(self, d: &Desired) -> Value {
        let logs = json!({
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": d.log_group_arn(&format!("/aws/lambda/{}", self.name(d))),
        });
        // The bucket must be the stack account's: a same-named bucket elsewhere is never used.
        let own_account = json!({"StringEquals": {"s3:ResourceAccount": d.account_id}});
        let statements = match self {
            Role::Scanner => vec![
                json!({"Sid": "DescribeFleet", "Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeRegions"], "Resource": "*"}),
                // A large result is a multipart upload, aborted when it fails.
                json!({"Sid": "StoreScans", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"], "Resource": d.bucket_arn("/scans/*"), "Condition": own_account}),
                json!({
                    "Sid": "PublishMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": d.names.metric_namespace}}
                }),
                json!({"Sid": "Alert", "Effect": "Allow", "Action": "sns:Publish", "Resource": d.topic_arn()}),
                logs,
            ]
            .into_iter()
            .chain(member_statements(d))
            .chain(d.event_driven.then(|| {
                // The event source mapping reads the queue as the scanner.
                json!({
                    "Sid": "ReadChanges", "Effect": "Allow",
                    "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                    "Resource": d.queue_arn(&d.names.events_queue)
                })
            }))
            .chain(d.event_driven.then(|| {
                // A network-interface change names an interface: the event mode finds its
                // instance and the groups on every interface of an instance.
                json!({"Sid": "DescribeInterfaces", "Effect": "Allow", "Action": "ec2:DescribeNetworkInterfaces", "Resource": "*"})
            }))
            .collect(),
            Role::Reporter => vec![
                json!({"Sid": "ReadScans", "Effect": "Allow", "Action": "s3:GetObject", "Resource": [d.bucket_arn("/scans/*"), d.bucket_arn("/reports/*")], "Condition": own_account}),
                json!({
                    "Sid": "ListScans", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": d.bucket_arn(""),
                    "Condition": {
                        "StringLike": {"s3:prefix": ["scans/*", "reports/*"]},
                        "StringEquals": {"s3:ResourceAccount": d.account_id}
                    }
                }),
                json!({"Sid": "WriteReports", "Effect": "Allow", "Action": "s3:PutObject", "Resource": d.bucket_arn("/reports/*"), "Condition": own_account}),
                json!({"Sid": "Summary", "Effect": "Allow", "Action": "sns:Publish", "Resource": d.topic_arn()}),
                logs,
            ],
        };
        json!({"Version": "2012-10-17", "Statement": statements})
    }
}

/// What the scanner needs to reach member accounts, and nothing more: the member role in exactly
/// the listed accounts, or, for the whole organization, the role name in any account of the
/// scanner's own organization (and the account list).
fn member_statements(d: &Desired) -> Vec<Value> {
    let scope = &d.scope;
    let role = |account: &str| d.arn(&format!("iam::{account}:role/{}", scope.member_role_name));
    if scope.organization_accounts {
        vec![
            json!({
                "Sid": "AssumeMemberRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
                "Resource": role("*"),
                "Condition": {"StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}
            }),
            json!({"Sid": "ListMemberAccounts", "Effect": "Allow", "Action": "organizations:ListAccounts", "Resource": "*"}),
        ]
    } else if !scope.member_accounts.is_empty() {
        let roles: Vec<String> = scope.member_accounts.iter().map(|a| role(a)).collect();
        vec![
            json!({"Sid": "AssumeMemberRoles", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}),
        ]
    } else {
        Vec::new()
    }
}

/// The trust policy: Lambda, and only Lambda, may assume the role.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The trust policy.
    pub trust: Value,
    /// Every inline policy by name.
    pub policies: BTreeMap<String, Value>,
    /// ARNs of attached managed policies (the stack attaches none).
    pub attached: Vec<String>,
    /// When the role was made, in seconds since the epoch: the stack's age, as the role is made
    /// with it and never replaced in place.
    pub created: Option<i64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

fn decode_doc(text: &str) -> Value {
    // IAM returns policy documents URL-encoded.
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded).unwrap_or(Value::Null)
}

/// Reads a role, its inline policies and tags.
async fn read(c: &Clients, d: &Desired, role: Role) -> Result<Found<Observed>, PieceError> {
    let name = role.name(d);
    let p = role.label(d);
    let got = match c.iam.get_role().role_name(name).send().await {
        Ok(r) => r,
        Err(e) if is_code(&e, codes::IAM_NO_SUCH_ENTITY) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    };
    let r = got.role();
    let trust = r
        .and_then(|r| r.assume_role_policy_document())
        .map(decode_doc)
        .unwrap_or(Value::Null);
    let tags = r
        .map(|r| {
            r.tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let created = r.map(|r| r.create_date().secs());
    let (names, attached) = futures::join!(
        c.iam.list_role_policies().role_name(name).send(),
        attached_policies(c, name),
    );
    let names = names.map_err(|e| PieceError::aws(&p, "listing policies of", e))?;
    let attached = attached.map_err(|e| PieceError::aws(&p, "listing attached policies of", e))?;
    let mut policies = BTreeMap::new();
    for policy in names.policy_names() {
        let doc = c
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "reading a policy of", e))?;
        policies.insert(policy.clone(), decode_doc(doc.policy_document()));
    }
    Ok(Found::Present(Observed {
        trust,
        policies,
        attached,
        created,
        tags,
    }))
}

/// ARNs of the managed policies attached to a role, every page.
async fn attached_policies(
    c: &Clients,
    name: &str,
) -> Result<
    Vec<String>,
    aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = c
            .iam
            .list_attached_role_policies()
            .role_name(name)
            .set_marker(marker)
            .send()
            .await?;
        out.extend(
            page.attached_policies()
                .iter()
                .filter_map(|a| a.policy_arn().map(str::to_string)),
        );
        marker = page.marker.filter(|_| page.is_truncated);
        if marker.is_none() {
            return Ok(out);
        }
    }
}

/// One permission a policy allows: action (lower case, as IAM compares them), resource and the
/// statement's condition (JSON text, `null` when unconditional).
pub type Grant = (String, String, String);

/// Every permission `doc` allows. A `NotAction` or `NotResource` statement allows everything but
/// what it names, so it counts as `*`.
pub fn grants(doc: &Value) -> BTreeSet<Grant> {
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match &doc["Statement"] {
        Value::Array(items) => items.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    };
    let mut out = BTreeSet::new();
    for st in statements.iter().filter(|s| s["Effect"] == "Allow") {
        let actions = if st.get("NotAction").is_some() {
            vec!["*".to_string()]
        } else {
            list(&st["Action"])
        };
        let resources = if st.get("NotResource").is_some() {
            vec!["*".to_string()]
        } else {
            list(&st["Resource"])
        };
        let condition = st.get("Condition").cloned().unwrap_or(Value::Null);
        for a in &actions {
            for r in &resources {
                out.insert((a.to_lowercase(), r.clone(), condition.to_string()));
            }
        }
    }
    out
}

/// Permissions the role's inline policies allow beyond what the stack's policy allows, as
/// readable lines; empty when the role is no wider than the stack needs. (Attached managed
/// policies are listed by [`drift`] on their own.)
pub fn beyond_needs(d: &Desired, role: Role, o: &Observed) -> Vec<String> {
    let want = grants(&role.policy(d));
    let mut have = BTreeSet::new();
    for doc in o.policies.values() {
        have.extend(grants(doc));
    }
    have.difference(&want)
        .map(|(a, r, c)| {
            if c == "null" {
                format!("{a} on {r}")
            } else {
                format!("{a} on {r} when {c}")
            }
        })
        .collect()
}

/// Differences from the desired role.
fn drift(d: &Desired, role: Role, found: &Found<Observed>) -> Vec<Difference> {
    let p = role.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    if o.trust != trust_policy() {
        out.push(Difference::new(
            &p,
            "trust policy",
            "trust policy differs (want Lambda only)",
        ));
    }
    let want: BTreeMap<String, Value> = [(POLICY_NAME.to_string(), role.policy(d))]
        .into_iter()
        .collect();
    if o.policies != want {
        out.push(Difference::new(
            &p,
            "inline policies",
            format!(
                "inline policies differ (have {}, want only {} with the stack's permissions)",
                o.policies.keys().collect::<Vec<_>>().hcl(),
                POLICY_NAME.hcl()
            ),
        ));
    }
    if !o.attached.is_empty() {
        out.push(Difference::new(
            &p,
            "attached policies",
            format!("managed policies attached: {}, want none", o.attached.hcl()),
        ));
    }
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

/// Creates the role or brings trust, policies and tags to the desired ones. Returns its ARN.
async fn ensure(
    c: &Clients,
    d: &Desired,
    role: Role,
    found: &Found<Observed>,
) -> Result<String, PieceError> {
    let name = role.name(d);
    let p = role.label(d);
    let tags: Vec<Tag> = d
        .tags
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    let blank = Observed::default();
    let adopted;
    let o = match found {
        Found::Missing => {
            let created = c
                .iam
                .create_role()
                .role_name(name)
                .assume_role_policy_document(trust_policy().to_string())
                .description(format!("Runs the compliance monitor's {name} function."))
                .set_tags(Some(tags.clone()))
                .send()
                .await;
            match created {
                Ok(_) => &blank,
                // A create whose answer was lost, retried by the SDK: the role it made carries
                // the stack's tags (set by the create itself), so it is this create's.
                Err(e) if is_code(&e, codes::IAM_ENTITY_EXISTS) => match read(c, d, role).await? {
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
                Err(e) => return Err(PieceError::aws(&p, "creating", e)),
            }
        }
        Found::Present(o) => {
            if o.trust != trust_policy() {
                c.iam
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(trust_policy().to_string())
                    .send()
                    .await
                    .map_err(|e| PieceError::aws(&p, "restoring the trust policy of", e))?;
            }
            super::retag(
                &p,
                &o.tags,
                &d.tags,
                || c.iam.tag_role().role_name(name).set_tags(Some(tags)).send(),
                |keys| {
                    c.iam
                        .untag_role()
                        .role_name(name)
                        .set_tag_keys(Some(keys))
                        .send()
                },
            )
            .await?;
            o
        }
    };
    let want = role.policy(d);
    if o.policies.get(POLICY_NAME) != Some(&want) {
        c.iam
            .put_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .policy_document(want.to_string())
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "writing the policy of", e))?;
    }
    for arn in &o.attached {
        absent_if(
            c.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await,
            codes::IAM_NO_SUCH_ENTITY,
        )
        .map_err(|e| PieceError::aws(&p, "detaching a foreign policy from", e))?;
    }
    for extra in o.policies.keys().filter(|k| *k != POLICY_NAME) {
        absent_if(
            c.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(extra)
                .send()
                .await,
            codes::IAM_NO_SUCH_ENTITY,
        )
        .map_err(|e| PieceError::aws(&p, "removing a foreign policy from", e))?;
    }
    Ok(d.role_arn(name))
}

/// Deletes the role's inline policies, then the role. A missing role is fine.
async fn delete(
    c: &Clients,
    d: &Desired,
    role: Role,
    cancel: &CancellationToken,
) -> Result<(), PieceError> {
    let name = role.name(d);
    let p = role.label(d);
    let names = match c.iam.list_role_policies().role_name(name).send().await {
        Ok(n) => n,
        Err(e) if is_code(&e, codes::IAM_NO_SUCH_ENTITY) => return Ok(()),
        Err(e) => return Err(PieceError::aws(p, "listing policies of", e)),
    };
    for policy in names.policy_names() {
        absent_if(
            c.iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(policy)
                .send()
                .await,
            codes::IAM_NO_SUCH_ENTITY,
        )
        .map_err(|e| PieceError::aws(&p, "deleting a policy of", e))?;
    }
    // A managed policy attached outside the stack would make IAM refuse the deletion.
    let attached = attached_policies(c, name)
        .await
        .map_err(|e| PieceError::aws(&p, "listing attached policies of", e))?;
    for arn in attached {
        absent_if(
            c.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(&arn)
                .send()
                .await,
            codes::IAM_NO_SUCH_ENTITY,
        )
        .map_err(|e| PieceError::aws(&p, "detaching a policy from", e))?;
    }
    // IAM may briefly refuse while Lambda still holds the role after a function deletion.
    let result = wait::retry_while(
        DELETE_CONFLICT_WAIT,
        cancel,
        |e| is_code(e, codes::IAM_DELETE_CONFLICT),
        || c.iam.delete_role().role_name(name).send(),
    )
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(None) => Err(wait::stopped(&p, "deleting")),
        Err(Some(e)) if is_code(&e, codes::IAM_NO_SUCH_ENTITY) => Ok(()),
        Err(Some(e)) => Err(PieceError::aws(&p, "deleting", e)),
    }
}

impl Piece for Role {
    type Observed = Observed;
    /// The role's ARN.
    type Made = String;

    fn label(&self, d: &Desired) -> String {
        format!("IAM role {}", self.name(d))
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
        _how: &Ensure<'_>,
    ) -> Result<String, PieceError> {
        ensure(c, d, *self, found).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        _found: &Found<Observed>,
        cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d, *self, cancel).await
    }
}
