//! The change rule (`event_driven`): an EventBridge rule on the default bus that sends the events
//! that can make an instance or a security group non-compliant to the events queue.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::RuleState;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::queues::Queue;
use super::{
    codes, compare, compare_tags, is_code, Clients, Desired, Difference, Ensure, Found, Piece,
    PieceError,
};

/// The rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRule;

/// Id of the rule's one target, the events queue.
pub const TARGET_ID: &str = "compliance-events-queue";

/// The CloudTrail calls that can open a group to the world, attach a group to an instance, or
/// add, change or remove an instance's tags (they need a trail with management events).
pub const CLOUDTRAIL_CALLS: [&str; 7] = [
    "AuthorizeSecurityGroupIngress",
    "ModifySecurityGroupRules",
    "ModifyInstanceAttribute",
    "ModifyNetworkInterfaceAttribute",
    "CreateTags",
    "DeleteTags",
    "RunInstances",
];

/// The event pattern: an instance entering `running` and an instance's tag change (both sent by
/// EC2 and the tagging service without a trail), and the CloudTrail calls above.
pub fn pattern() -> Value {
    json!({
        "source": ["aws.ec2", "aws.tag"],
        "detail-type": [
            "EC2 Instance State-change Notification",
            "Tag Change on Resource",
            "AWS API Call via CloudTrail"
        ],
        "$or": [
            {"detail": {"state": ["running"]}},
            {"detail": {"service": ["ec2"], "resource-type": ["instance"]}},
            {"detail": {"eventSource": ["ec2.amazonaws.com"], "eventName": CLOUDTRAIL_CALLS}}
        ]
    })
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The event pattern (`null` when it is not JSON).
    pub pattern: Value,
    /// Enabled.
    pub enabled: bool,
    /// ARNs of the rule's targets.
    pub targets: Vec<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

async fn read(c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
    let name = &d.names.change_rule;
    let p = ChangeRule.label(d);
    let rule = match c.events.describe_rule().name(name).send().await {
        Ok(r) => r,
        Err(e) if is_code(&e, codes::EVENTS_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    };
    let (targets, tags) =
        super::eventbridge::targets_and_tags(c, &p, name, &d.change_rule_arn()).await?;
    Ok(Found::Present(Observed {
        pattern: rule
            .event_pattern()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null),
        enabled: rule.state() == Some(&RuleState::Enabled),
        targets,
        tags,
    }))
}

fn drift(d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
    let p = ChangeRule.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    if o.pattern != pattern() {
        out.push(Difference::new(
            &p,
            "event pattern",
            "the event pattern differs from the stack's",
        ));
    }
    compare(&mut out, &p, "enabled", &o.enabled, &true);
    compare(
        &mut out,
        &p,
        "targets",
        &o.targets,
        &vec![d.queue_arn(Queue::Events.name(d))],
    );
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

async fn ensure(c: &Clients, d: &Desired, found: &Found<Observed>) -> Result<(), PieceError> {
    let name = &d.names.change_rule;
    let p = ChangeRule.label(d);
    let blank = Observed::default();
    let o = found.present().unwrap_or(&blank);
    if found.present().is_none() || o.pattern != pattern() || !o.enabled {
        c.events
            .put_rule()
            .name(name)
            .event_pattern(pattern().to_string())
            .state(RuleState::Enabled)
            .description(format!(
                "Changes that can break compliance, for {}.",
                d.names.scanner
            ))
            .set_tags(
                found
                    .present()
                    .is_none()
                    .then(|| super::eventbridge::tags(&d.tags)),
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "writing", e))?;
    }
    if found.present().is_some() {
        super::eventbridge::retag(c, &p, &d.change_rule_arn(), &o.tags, &d.tags).await?;
    }
    let queue = d.queue_arn(Queue::Events.name(d));
    if o.targets != vec![queue.clone()] {
        super::eventbridge::set_target(c, &p, name, TARGET_ID, &queue).await?;
    }
    Ok(())
}

async fn delete(c: &Clients, d: &Desired) -> Result<(), PieceError> {
    let p = ChangeRule.label(d);
    super::eventbridge::delete(c, &p, &d.names.change_rule, TARGET_ID).await
}

impl Piece for ChangeRule {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!("change rule {}", d.names.change_rule)
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    fn is_wanted(&self, d: &Desired) -> bool {
        d.event_driven
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
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d).await
    }
}
