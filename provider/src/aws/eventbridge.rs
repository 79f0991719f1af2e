//! What the stack's two kinds of EventBridge rule (the schedules and the change rule) do alike:
//! read their targets and tags, point them at their one target, retag them and delete them.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{Tag, Target};

use super::{codes, is_code, Clients, PieceError};

/// The rule's target ARNs and its tags.
pub async fn targets_and_tags(
    c: &Clients,
    piece: &str,
    name: &str,
    arn: &str,
) -> Result<(Vec<String>, BTreeMap<String, String>), PieceError> {
    let (targets, tags) = futures::join!(
        c.events.list_targets_by_rule().rule(name).send(),
        c.events.list_tags_for_resource().resource_arn(arn).send(),
    );
    let targets = targets
        .map_err(|e| PieceError::aws(piece, "listing targets of", e))?
        .targets()
        .iter()
        .map(|t| t.arn().to_string())
        .collect();
    let tags = tags
        .map_err(|e| PieceError::aws(piece, "reading the tags of", e))?
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Ok((targets, tags))
}

/// The tags as EventBridge takes them.
pub fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// Brings an existing rule's tags from `have` to `want`.
pub async fn retag(
    c: &Clients,
    piece: &str,
    arn: &str,
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> Result<(), PieceError> {
    super::retag(
        piece,
        have,
        want,
        || {
            c.events
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags(want)))
                .send()
        },
        |keys| {
            c.events
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(keys))
                .send()
        },
    )
    .await
}

/// Points the rule at its one target.
pub async fn set_target(
    c: &Clients,
    piece: &str,
    name: &str,
    id: &str,
    arn: &str,
) -> Result<(), PieceError> {
    let target = Target::builder()
        .id(id)
        .arn(arn)
        .build()
        .map_err(|e| PieceError::new(piece, "targeting", e.to_string()))?;
    c.events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| PieceError::aws(piece, "setting the target of", e))
}

/// Removes the rule's target, then the rule (EventBridge refuses to delete a rule with
/// targets). A rule already gone is deleted.
pub async fn delete(
    c: &Clients,
    piece: &str,
    name: &str,
    target_id: &str,
) -> Result<(), PieceError> {
    match c
        .events
        .remove_targets()
        .rule(name)
        .ids(target_id)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if is_code(&e, codes::EVENTS_NOT_FOUND) => return Ok(()),
        Err(e) => return Err(PieceError::aws(piece, "removing the target of", e)),
    }
    match c.events.delete_rule().name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, codes::EVENTS_NOT_FOUND) => Ok(()),
        Err(e) => Err(PieceError::aws(piece, "deleting", e)),
    }
}
