//! From an SQS batch to the changes it reports: which instances, security groups and network
//! interfaces each EventBridge event names.
//!
//! Pure: no AWS call. Every record is either a [`Change`] or a [`Dropped`] with the reason, so a
//! malformed or irrelevant event is logged and never retried (retrying would not make it parse).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `detail-type` of EC2's instance state events.
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";
/// `detail-type` of the tagging service's events (source `aws.tag`).
pub const TAG_CHANGE: &str = "Tag Change on Resource";
/// `detail-type` of the management events CloudTrail forwards.
pub const API_CALL: &str = "AWS API Call via CloudTrail";

/// The CloudTrail calls that can make an instance or a group non-compliant.
pub const API_CALLS: [&str; 7] = [
    "AuthorizeSecurityGroupIngress",
    "ModifySecurityGroupRules",
    "ModifyInstanceAttribute",
    "ModifyNetworkInterfaceAttribute",
    "CreateTags",
    "DeleteTags",
    "RunInstances",
];

/// How many ids a change's one-line description names before "and N more".
const NAMED_IN_DESCRIPTION: usize = 3;

/// One change an event reports, and the resources to judge again because of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The EventBridge event id (one per event, the same on every delivery of it).
    pub id: String,
    /// What happened: the `detail-type`, or the CloudTrail `eventName` for API calls.
    pub name: String,
    /// The event's `source` (`aws.ec2`, `aws.tag`).
    pub source: String,
    /// Who made the change: CloudTrail's `userIdentity.arn` (or the service that called on its
    /// behalf); null for state and tag events, which do not name one.
    pub actor: Option<String>,
    /// When it happened (the event's `time`, RFC 3339 UTC).
    pub time: String,
    /// The account the change happened in.
    pub account: String,
    /// The region it happened in.
    pub region: String,
    /// One line for a person: what changed on which resources.
    pub change: String,
    /// Instances the change concerns directly.
    pub instances: Vec<String>,
    /// Security groups whose rules changed: every instance using one is judged again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Network interfaces whose groups changed: the instance each is attached to is judged again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<String>,
}

impl Change {
    /// The event time as a timestamp (checked when parsed).
    pub fn at(&self) -> OffsetDateTime {
        OffsetDateTime::parse(&self.time, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// A change and the SQS messages that delivered it (more than one when the event came twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The change.
    pub change: Change,
    /// `messageId` of every record that carried it.
    pub message_ids: Vec<String>,
}

/// A record that reports nothing to judge, and why. Never retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The record's SQS `messageId` (empty when the record had none).
    pub message_id: String,
    /// The event's id, when the body had one.
    pub event_id: Option<String>,
    /// Why it was dropped.
    pub reason: String,
}

/// What a batch reports: its changes, each once, in the order first received, and the records
/// dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Distinct changes (by event id).
    pub changes: Vec<Received>,
    /// Records with nothing to judge.
    pub dropped: Vec<Dropped>,
}

/// True when `payload` is what an SQS event source mapping sends: `Records` holding at least one
/// record whose `eventSource` is `aws:sqs`. A schedule's event, a manual `{}` or anything else is
/// not.
pub fn is_sqs_batch(payload: &Value) -> bool {
    payload
        .get("Records")
        .and_then(Value::as_array)
        .is_some_and(|records| {
            records
                .iter()
                .any(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"))
        })
}

/// Reads every record of an SQS batch; the same event delivered twice (same event id) is one
/// change with both message ids.
pub fn parse_batch(payload: &Value) -> Batch {
    let mut batch = Batch::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for record in records {
        let message_id = str_at(record, &["messageId"])
            .unwrap_or_default()
            .to_string();
        let body = match record.get("body").and_then(Value::as_str) {
            Some(body) => body,
            None => {
                batch.dropped.push(Dropped {
                    message_id,
                    event_id: None,
                    reason: "malformed record: no body".into(),
                });
                continue;
            }
        };
        let event: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                batch.dropped.push(Dropped {
                    message_id,
                    event_id: None,
                    reason: format!("malformed record: the body is not JSON ({e})"),
                });
                continue;
            }
        };
        match parse_event(&event) {
            Ok(change) => match seen.get(&change.id) {
                Some(&at) => batch.changes[at].message_ids.push(message_id),
                None => {
                    seen.insert(change.id.clone(), batch.changes.len());
                    batch.changes.push(Received {
                        change,
                        message_ids: vec![message_id],
                    });
                }
            },
            Err(reason) => batch.dropped.push(Dropped {
                message_id,
                event_id: str_at(&event, &["id"]).map(str::to_string),
                reason,
            }),
        }
    }
    batch
}

/// The change one EventBridge event reports, or why it reports none.
pub fn parse_event(event: &Value) -> Result<Change, String> {
    let field = |name: &str| {
        str_at(event, &[name])
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("malformed event: no `{name}`"))
    };
    let id = field("id")?;
    let detail_type = field("detail-type")?;
    let source = field("source")?;
    let time = field("time")?;
    let region = field("region")?;
    let account = field("account")?;
    let at = OffsetDateTime::parse(time, &Rfc3339)
        .map_err(|_| format!("malformed event: `time` {time:?} is not RFC 3339"))?;
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or("malformed event: no `detail` object")?;

    let mut change = Change {
        id: id.to_string(),
        name: detail_type.to_string(),
        source: source.to_string(),
        actor: None,
        time: at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .map_err(|e| format!("malformed event: `time` {time:?}: {e}"))?,
        account: account.to_string(),
        region: region.to_string(),
        change: String::new(),
        instances: Vec::new(),
        groups: Vec::new(),
        network_interfaces: Vec::new(),
    };
    match (source, detail_type) {
        ("aws.ec2", STATE_CHANGE) => {
            let instance = str_at(detail, &["instance-id"])
                .filter(|i| is_id(i, "i"))
                .ok_or("malformed event: no valid `detail.instance-id`")?;
            let state = str_at(detail, &["state"]).unwrap_or("an unknown state");
            change.change = format!("{instance} entered {}", one_line(state));
            change.instances.push(instance.to_string());
        }
        ("aws.tag", TAG_CHANGE) => {
            let service = str_at(detail, &["service"]).unwrap_or_default();
            let kind = str_at(detail, &["resource-type"]).unwrap_or_default();
            if service != "ec2" || kind != "instance" {
                return Err(format!(
                    "not judged: a tag change on {} {} (only EC2 instances carry required tags)",
                    one_line(service),
                    one_line(kind)
                ));
            }
            let resources = event
                .get("resources")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            change.instances = resources
                .iter()
                .filter_map(Value::as_str)
                .filter_map(instance_from_arn)
                .collect();
            if change.instances.is_empty() {
                return Err("malformed event: no EC2 instance ARN in `resources`".into());
            }
            let keys: Vec<&str> = detail
                .get("changed-tag-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            change.change = format!(
                "tags {} changed on {}",
                if keys.is_empty() {
                    "(keys not named)".to_string()
                } else {
                    one_line(&keys.join(", "))
                },
                named(&change.instances)
            );
        }
        (_, API_CALL) => api_call(detail, &mut change)?,
        _ => {
            return Err(format!(
                "not judged: `{}` from `{}` is not a change the event mode handles",
                one_line(detail_type),
                one_line(source)
            ))
        }
    }
    for list in [
        &mut change.instances,
        &mut change.groups,
        &mut change.network_interfaces,
    ] {
        let unique: BTreeSet<String> = std::mem::take(list).into_iter().collect();
        *list = unique.into_iter().collect();
    }
    Ok(change)
}

/// A CloudTrail API call: the ids as each API records them in `requestParameters` (what was
/// asked) or `responseElements` (what was made).
fn api_call(detail: &Value, change: &mut Change) -> Result<(), String> {
    let name = str_at(detail, &["eventName"]).ok_or("malformed event: no `detail.eventName`")?;
    let event_source = str_at(detail, &["eventSource"]).unwrap_or_default();
    if event_source != "ec2.amazonaws.com" || !API_CALLS.contains(&name) {
        return Err(format!(
            "not judged: {} on {} is not a change the event mode handles",
            one_line(name),
            one_line(event_source)
        ));
    }
    change.name = name.to_string();
    // CloudTrail records refused and failed calls too: they changed nothing.
    if let Some(code) = str_at(detail, &["errorCode"]).filter(|c| !c.is_empty()) {
        return Err(format!(
            "not judged: the {name} call failed ({}), nothing changed",
            one_line(code)
        ));
    }
    change.actor = str_at(detail, &["userIdentity", "arn"])
        .or_else(|| str_at(detail, &["userIdentity", "invokedBy"]))
        .map(str::to_string);
    let request = detail.get("requestParameters").unwrap_or(&Value::Null);
    let response = detail.get("responseElements").unwrap_or(&Value::Null);
    match name {
        "AuthorizeSecurityGroupIngress" | "ModifySecurityGroupRules" => {
            // Authorize records `groupId` (absent when the caller named the group by name: the
            // response's new rules name it); ModifySecurityGroupRules wraps its request as
            // `ModifySecurityGroupRulesRequest.GroupId`.
            let wrapped = request.get("ModifySecurityGroupRulesRequest");
            let given = [
                str_at(request, &["groupId"]),
                str_at(request, &["GroupId"]),
                wrapped.and_then(|w| str_at(w, &["GroupId"])),
                wrapped.and_then(|w| str_at(w, &["groupId"])),
            ];
            change.groups = given
                .into_iter()
                .flatten()
                .map(str::to_string)
                .chain(items(response, "securityGroupRuleSet", "groupId"))
                .filter(|g| is_id(g, "sg"))
                .collect();
            if change.groups.is_empty() {
                return Err(format!(
                    "malformed event: {name} names no security group id"
                ));
            }
            change.change = format!("{name} on {}", named(&change.groups));
        }
        "ModifyInstanceAttribute" => {
            // The instance's own verdict: its groups are read with it.
            let instance = str_at(request, &["instanceId"])
                .filter(|i| is_id(i, "i"))
                .ok_or("malformed event: ModifyInstanceAttribute names no instance id")?;
            let groups: Vec<String> = items(request, "groupSet", "groupId").collect();
            change.change = if groups.is_empty() {
                format!("ModifyInstanceAttribute on {instance}")
            } else {
                format!(
                    "ModifyInstanceAttribute set the groups of {instance} to {}",
                    named(&groups)
                )
            };
            change.instances.push(instance.to_string());
        }
        "ModifyNetworkInterfaceAttribute" => {
            let eni = str_at(request, &["networkInterfaceId"])
                .filter(|e| is_id(e, "eni"))
                .ok_or(
                    "malformed event: ModifyNetworkInterfaceAttribute names no network interface id",
                )?;
            change.change = format!("ModifyNetworkInterfaceAttribute on {eni}");
            change.network_interfaces.push(eni.to_string());
        }
        "CreateTags" | "DeleteTags" => {
            let all: Vec<String> = items(request, "resourcesSet", "resourceId").collect();
            if all.is_empty() {
                return Err(format!("malformed event: {name} names no resource"));
            }
            // Only instances carry required tags; a group's tags decide nothing.
            change.instances = all.into_iter().filter(|r| is_id(r, "i")).collect();
            if change.instances.is_empty() {
                return Err(format!("not judged: {name} tagged no EC2 instance"));
            }
            let keys: Vec<String> = items(request, "tagSet", "key").collect();
            change.change = format!(
                "{name} {} on {}",
                one_line(&keys.join(", ")),
                named(&change.instances)
            );
        }
        "RunInstances" => {
            change.instances = items(response, "instancesSet", "instanceId")
                .filter(|i| is_id(i, "i"))
                .collect();
            if change.instances.is_empty() {
                return Err("malformed event: RunInstances names no launched instance".into());
            }
            change.change = format!("RunInstances launched {}", named(&change.instances));
        }
        _ => unreachable!("checked against API_CALLS"),
    }
    Ok(())
}

/// `value[path[0]][path[1]]...` as a string.
fn str_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

/// The `field` of every item of CloudTrail's `{"<list>": {"items": [...]}}` form.
fn items<'v>(value: &'v Value, list: &str, field: &'v str) -> impl Iterator<Item = String> + 'v {
    value
        .get(list)
        .and_then(|l| l.get("items"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(move |item| item.get(field).and_then(Value::as_str))
        .map(str::to_string)
}

/// `i-...` from `arn:<partition>:ec2:<region>:<account>:instance/i-...`.
fn instance_from_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "ec2", _, _, resource] => resource
            .strip_prefix("instance/")
            .filter(|id| is_id(id, "i"))
            .map(str::to_string),
        _ => None,
    }
}

/// An EC2 id: `<prefix>-` and 8 or 17 lowercase hex digits (older and current forms). Anything
/// else is refused before it reaches a call, where one bad id fails the whole request.
pub fn is_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (8..=17).contains(&hex.len())
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A value from the event on one line (it reaches logs and mail).
fn one_line(text: &str) -> String {
    compliance_rules::sns::field(text, 200)
}

/// A few ids (sorted, each once), then how many more: `i-1, i-2, i-3 and 497 more`.
fn named(ids: &[String]) -> String {
    let unique: BTreeSet<&String> = ids.iter().collect();
    let mut out = unique
        .iter()
        .take(NAMED_IN_DESCRIPTION)
        .map(|i| one_line(i))
        .collect::<Vec<_>>()
        .join(", ");
    if unique.len() > NAMED_IN_DESCRIPTION {
        out.push_str(&format!(
            " and {} more",
            unique.len() - NAMED_IN_DESCRIPTION
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "123456789012";
    const I1: &str = "i-1234567890abcdef0";
    const I2: &str = "i-0598c7d356eba48d7";
    const SG: &str = "sg-0a1b2c3d4e5f60718";

    /// The envelope every EventBridge event has, around `detail`.
    fn envelope(id: &str, source: &str, detail_type: &str, detail: Value) -> Value {
        json!({
            "version": "0",
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": "2024-05-02T10:11:12Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        })
    }

    fn cloudtrail(id: &str, name: &str, request: Value, response: Value) -> Value {
        envelope(
            id,
            "aws.ec2",
            API_CALL,
            json!({
                "eventVersion": "1.08",
                "userIdentity": {
                    "type": "IAMUser",
                    "principalId": "AIDAEXAMPLE",
                    "arn": format!("arn:aws:iam::{ACCOUNT}:user/alice"),
                    "accountId": ACCOUNT,
                    "userName": "alice"
                },
                "eventTime": "2024-05-02T10:11:12Z",
                "eventSource": "ec2.amazonaws.com",
                "eventName": name,
                "awsRegion": "us-east-1",
                "sourceIPAddress": "192.0.2.1",
                "userAgent": "aws-cli/2",
                "requestParameters": request,
                "responseElements": response,
                "requestID": "req-1",
                "eventID": "ct-1",
                "eventType": "AwsApiCall",
                "recipientAccountId": ACCOUNT
            }),
        )
    }

    fn sqs(records: &[(&str, String)]) -> Value {
        json!({
            "Records": records.iter().map(|(id, body)| json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1714644672000",
                    "SenderId": "AIDAEVENTS",
                    "ApproximateFirstReceiveTimestamp": "1714644672001"
                },
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:changes"),
                "awsRegion": "us-east-1"
            })).collect::<Vec<_>>()
        })
    }

    #[test]
    fn a_state_change_names_its_instance() {
        let e = envelope(
            "7bf73129-1428-4cd3-a780-95db273d1602",
            "aws.ec2",
            STATE_CHANGE,
            json!({"instance-id": I1, "state": "running"}),
        );
        let c = parse_event(&e).unwrap();
        assert_eq!(c.id, "7bf73129-1428-4cd3-a780-95db273d1602");
        assert_eq!(c.name, STATE_CHANGE);
        assert_eq!(c.instances, [I1]);
        assert!(c.groups.is_empty() && c.network_interfaces.is_empty());
        assert_eq!(c.actor, None);
        assert_eq!(c.time, "2024-05-02T10:11:12Z");
        assert_eq!(c.change, format!("{I1} entered running"));
        assert_eq!(
            (c.account.as_str(), c.region.as_str()),
            (ACCOUNT, "us-east-1")
        );
    }

    #[test]
    fn a_tag_change_names_the_instances_of_its_resources() {
        let mut e = envelope(
            "bddcf1d6-0251-35a1-aab0-adc1fb47c11c",
            "aws.tag",
            TAG_CHANGE,
            json!({
                "changed-tag-keys": ["Owner", "CostCenter"],
                "service": "ec2",
                "resource-type": "instance",
                "version": 3,
                "tags": {"Owner": "team-a", "Environment": "prod"}
            }),
        );
        e["resources"] = json!([format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{I1}")]);
        let c = parse_event(&e).unwrap();
        assert_eq!(c.instances, [I1]);
        assert_eq!(c.name, TAG_CHANGE);
        assert_eq!(c.change, format!("tags Owner, CostCenter changed on {I1}"));
        // Another partition's ARN reads the same.
        e["resources"] = json!([format!("arn:aws-cn:ec2:cn-north-1:{ACCOUNT}:instance/{I2}")]);
        assert_eq!(parse_event(&e).unwrap().instances, [I2]);
    }

    #[test]
    fn a_tag_change_on_anything_but_an_instance_is_not_judged() {
        let mut e = envelope(
            "t-2",
            "aws.tag",
            TAG_CHANGE,
            json!({"changed-tag-keys": ["a"], "service": "ec2", "resource-type": "security-group", "version": 1, "tags": {}}),
        );
        e["resources"] = json!([format!(
            "arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/{SG}"
        )]);
        let why = parse_event(&e).unwrap_err();
        assert!(why.starts_with("not judged"), "{why}");
        // An instance tag change whose resources hold no instance ARN is malformed.
        let mut e = envelope(
            "t-3",
            "aws.tag",
            TAG_CHANGE,
            json!({"changed-tag-keys": ["a"], "service": "ec2", "resource-type": "instance", "version": 1, "tags": {}}),
        );
        e["resources"] = json!(["arn:aws:ec2:us-east-1:1:instance/not-an-id", 7]);
        let why = parse_event(&e).unwrap_err();
        assert!(why.starts_with("malformed"), "{why}");
    }

    #[test]
    fn authorize_ingress_names_its_group() {
        let e = cloudtrail(
            "ct-auth",
            "AuthorizeSecurityGroupIngress",
            json!({
                "groupId": SG,
                "ipPermissions": {"items": [{
                    "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                    "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}
                }]}
            }),
            json!({
                "requestId": "r",
                "_return": true,
                "securityGroupRuleSet": {"items": [{
                    "groupOwnerId": ACCOUNT, "groupId": SG,
                    "securityGroupRuleId": "sgr-0123456789abcdef0", "isEgress": false,
                    "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"
                }]}
            }),
        );
        let c = parse_event(&e).unwrap();
        assert_eq!(c.name, "AuthorizeSecurityGroupIngress");
        assert_eq!(c.groups, [SG]);
        assert!(c.instances.is_empty());
        assert_eq!(
            c.actor.as_deref(),
            Some("arn:aws:iam::123456789012:user/alice")
        );
        assert_eq!(c.change, format!("AuthorizeSecurityGroupIngress on {SG}"));
        // By group name (default VPC): the response's new rules name the group.
        let e = cloudtrail(
            "ct-auth-2",
            "AuthorizeSecurityGroupIngress",
            json!({"groupName": "web", "ipPermissions": {"items": []}}),
            json!({"securityGroupRuleSet": {"items": [{"groupId": SG}]}}),
        );
        assert_eq!(parse_event(&e).unwrap().groups, [SG]);
    }

    #[test]
    fn modify_security_group_rules_names_its_wrapped_group() {
        let e = cloudtrail(
            "ct-mod",
            "ModifySecurityGroupRules",
            json!({"ModifySecurityGroupRulesRequest": {
                "GroupId": SG,
                "SecurityGroupRule": {
                    "SecurityGroupRuleId": "sgr-0123456789abcdef0",
                    "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "0.0.0.0/0"}
                }
            }}),
            json!({"ModifySecurityGroupRulesResponse": {"return": true}}),
        );
        let c = parse_event(&e).unwrap();
        assert_eq!(c.groups, [SG]);
        assert_eq!(c.name, "ModifySecurityGroupRules");
    }

    #[test]
    fn modify_instance_attribute_names_its_instance_only() {
        let e = cloudtrail(
            "ct-mia",
            "ModifyInstanceAttribute",
            json!({"instanceId": I1, "groupSet": {"items": [{"groupId": SG}]}}),
            json!({"_return": true}),
        );
        let c = parse_event(&e).unwrap();
        assert_eq!(c.instances, [I1]);
        // The group's other instances did not change: only this one is judged again.
        assert!(c.groups.is_empty());
        assert_eq!(
            c.change,
            format!("ModifyInstanceAttribute set the groups of {I1} to {SG}")
        );
    }

    #[test]
    fn modify_network_interface_attribute_names_its_interface() {
        let e = cloudtrail(
            "ct-mnia",
            "ModifyNetworkInterfaceAttribute",
            json!({"networkInterfaceId": "eni-0a1b2c3d4e5f60718", "groupSet": {"items": [{"groupId": SG}]}}),
            json!({"_return": true}),
        );
        let c = parse_event(&e).unwrap();
        assert_eq!(c.network_interfaces, ["eni-0a1b2c3d4e5f60718"]);
        assert!(c.instances.is_empty() && c.groups.is_empty());
    }

    #[test]
    fn create_and_delete_tags_name_their_instances_only() {
        for name in ["CreateTags", "DeleteTags"] {
            let e = cloudtrail(
                "ct-tags",
                name,
                json!({
                    "resourcesSet": {"items": [{"resourceId": I2}, {"resourceId": SG}, {"resourceId": I1}, {"resourceId": I1}]},
                    "tagSet": {"items": [{"key": "Owner", "value": "a"}]}
                }),
                json!({"_return": true}),
            );
            let c = parse_event(&e).unwrap();
            assert_eq!(c.instances, [I2, I1], "{name}: sorted, deduplicated");
            assert!(c.groups.is_empty());
            assert_eq!(c.change, format!("{name} Owner on {I2}, {I1}"));
        }
        let only_group = cloudtrail(
            "ct-tags-2",
            "CreateTags",
            json!({"resourcesSet": {"items": [{"resourceId": SG}]}, "tagSet": {"items": []}}),
            json!({"_return": true}),
        );
        assert!(parse_event(&only_group)
            .unwrap_err()
            .starts_with("not judged"));
    }

    #[test]
    fn run_instances_names_what_it_launched() {
        let launched: Vec<Value> = (0..500)
            .map(|n| json!({"instanceId": format!("i-{n:017x}"), "imageId": "ami-1"}))
            .collect();
        let e = cloudtrail(
            "ct-run",
            "RunInstances",
            json!({"instancesSet": {"items": [{"imageId": "ami-1", "minCount": 500, "maxCount": 500}]}}),
            json!({"reservationId": "r-1", "instancesSet": {"items": launched}}),
        );
        let c = parse_event(&e).unwrap();
        assert_eq!(c.instances.len(), 500);
        assert_eq!(
            c.change,
            "RunInstances launched i-00000000000000000, i-00000000000000001, i-00000000000000002 and 497 more"
        );
    }

    #[test]
    fn failed_and_foreign_calls_are_not_judged() {
        let mut failed = cloudtrail(
            "ct-fail",
            "AuthorizeSecurityGroupIngress",
            json!({"groupId": SG}),
            Value::Null,
        );
        failed["detail"]["errorCode"] = json!("Client.UnauthorizedOperation");
        let why = parse_event(&failed).unwrap_err();
        assert!(
            why.contains("failed (Client.UnauthorizedOperation)"),
            "{why}"
        );
        let other = cloudtrail("ct-x", "DescribeInstances", json!({}), Value::Null);
        assert!(parse_event(&other).unwrap_err().starts_with("not judged"));
        let schedule = envelope("s-1", "aws.events", "Scheduled Event", json!({}));
        assert!(parse_event(&schedule)
            .unwrap_err()
            .starts_with("not judged"));
    }

    #[test]
    fn malformed_events_say_what_is_wrong() {
        let good = envelope(
            "m-1",
            "aws.ec2",
            STATE_CHANGE,
            json!({"instance-id": I1, "state": "running"}),
        );
        let cases: Vec<(Value, &str)> = vec![
            (json!({}), "no `id`"),
            (json!([1, 2]), "no `id`"),
            (
                {
                    let mut e = good.clone();
                    e["time"] = json!("yesterday");
                    e
                },
                "not RFC 3339",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"] = json!("x");
                    e
                },
                "no `detail` object",
            ),
            (
                {
                    let mut e = good.clone();
                    e["detail"]["instance-id"] = json!("i-XYZ; rm -rf");
                    e
                },
                "instance-id",
            ),
            (
                {
                    let mut e = good.clone();
                    e["id"] = json!(" ");
                    e
                },
                "no `id`",
            ),
            (
                cloudtrail("m-2", "RunInstances", json!({}), Value::Null),
                "no launched instance",
            ),
            (
                cloudtrail(
                    "m-3",
                    "AuthorizeSecurityGroupIngress",
                    json!({"groupId": "default"}),
                    Value::Null,
                ),
                "no security group id",
            ),
        ];
        for (event, expected) in cases {
            let why = parse_event(&event).unwrap_err();
            assert!(
                why.starts_with("malformed") && why.contains(expected),
                "{why}"
            );
        }
    }

    #[test]
    fn a_batch_keeps_each_event_once_and_drops_what_it_cannot_read() {
        let state = envelope(
            "e-1",
            "aws.ec2",
            STATE_CHANGE,
            json!({"instance-id": I1, "state": "running"}),
        )
        .to_string();
        let auth = cloudtrail(
            "e-2",
            "AuthorizeSecurityGroupIngress",
            json!({"groupId": SG}),
            json!({}),
        )
        .to_string();
        let payload = sqs(&[
            ("m-1", state.clone()),
            ("m-2", "not json".into()),
            ("m-3", auth),
            ("m-4", state),
            ("m-5", json!({"source": "aws.events"}).to_string()),
        ]);
        assert!(is_sqs_batch(&payload));
        let batch = parse_batch(&payload);
        let ids: Vec<(&str, Vec<String>)> = batch
            .changes
            .iter()
            .map(|r| (r.change.id.as_str(), r.message_ids.clone()))
            .collect();
        assert_eq!(
            ids,
            [
                ("e-1", vec!["m-1".to_string(), "m-4".to_string()]),
                ("e-2", vec!["m-3".to_string()])
            ]
        );
        let dropped: Vec<&str> = batch
            .dropped
            .iter()
            .map(|d| d.message_id.as_str())
            .collect();
        assert_eq!(dropped, ["m-2", "m-5"]);
        assert!(batch.dropped[0].reason.contains("not JSON"));
        // A record without a body is dropped, not a panic.
        let mut odd = sqs(&[("m-6", String::new())]);
        odd["Records"][0].as_object_mut().unwrap().remove("body");
        assert_eq!(
            parse_batch(&odd).dropped[0].reason,
            "malformed record: no body"
        );
    }

    #[test]
    fn only_sqs_payloads_are_batches() {
        assert!(!is_sqs_batch(
            &json!({"source": "aws.events", "detail-type": "Scheduled Event"})
        ));
        assert!(!is_sqs_batch(&json!({})));
        assert!(!is_sqs_batch(&json!({"Records": []})));
        assert!(!is_sqs_batch(
            &json!({"Records": [{"eventSource": "aws:s3"}]})
        ));
        assert!(!is_sqs_batch(&json!(null)));
        assert!(is_sqs_batch(&sqs(&[("m", "{}".into())])));
    }

    #[test]
    fn ids_are_checked_before_any_call() {
        assert!(is_id("i-1234567890abcdef0", "i"));
        assert!(is_id("i-12345678", "i"));
        assert!(is_id("sg-0a1b2c3d", "sg"));
        assert!(!is_id("i-1234567", "i"));
        assert!(!is_id("i-1234567890ABCDEF0", "i"));
        assert!(!is_id("sg-0a1b2c3d", "i"));
        assert!(!is_id("i-", "i"));
        assert!(!is_id("i-1234567890abcdef01", "i"));
    }
}
