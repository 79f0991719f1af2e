//! The alert topic and its e-mail subscription.

use std::collections::BTreeMap;

use aws_sdk_sns::types::Tag;
use tokio_util::sync::CancellationToken;

use super::{
    codes, compare_tags, is_code, Clients, Desired, Difference, Ensure, Found, Piece, PieceError,
};

/// The alert topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic;

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// E-mail subscriptions: address and subscription ARN (`PendingConfirmation` until confirmed).
    pub emails: Vec<(String, String)>,
    /// The topic's tags.
    pub tags: BTreeMap<String, String>,
}

/// Reads the topic, its subscriptions and tags.
async fn read(c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
    let arn = d.topic_arn();
    let p = Topic.label(d);
    match c.sns.get_topic_attributes().topic_arn(&arn).send().await {
        Ok(_) => {}
        Err(e) if is_code(&e, codes::SNS_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    }
    let mut emails = Vec::new();
    let mut next = None;
    loop {
        let page = c
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&arn)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "listing subscriptions of", e))?;
        for s in page.subscriptions() {
            if s.protocol() == Some("email") {
                emails.push((
                    s.endpoint().unwrap_or_default().to_string(),
                    s.subscription_arn().unwrap_or_default().to_string(),
                ));
            }
        }
        next = page.next_token;
        if next.is_none() {
            break;
        }
    }
    let tags = c
        .sns
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .map_err(|e| PieceError::aws(&p, "reading tags of", e))?
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Ok(Found::Present(Observed { emails, tags }))
}

/// Differences from the desired settings.
fn drift(d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
    let p = Topic.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    // Only the wanted address is checked: an old address whose subscription is still pending
    // cannot be removed (it lapses by itself), so it must not count as drift forever.
    if !o.emails.iter().any(|(e, _)| e == &d.alert_email) {
        out.push(Difference::new(
            &p,
            "subscription",
            format!("{} is not subscribed", d.alert_email),
        ));
    }
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

/// Creates the topic (an idempotent call) and subscribes the desired address; on a change of
/// `alert_email`, removes the previous address's subscription and no other: subscribers someone
/// added to the topic are theirs.
async fn ensure(
    c: &Clients,
    d: &Desired,
    found: &Found<Observed>,
    prior_email: Option<&str>,
) -> Result<String, PieceError> {
    let p = Topic.label(d);
    let blank = Observed::default();
    let o = found.present().unwrap_or(&blank);
    let tags: Vec<Tag> = d
        .tags
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect();
    let arn = if found.present().is_none() {
        c.sns
            .create_topic()
            .name(&d.names.topic)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "creating", e))?
            .topic_arn
            .unwrap_or_else(|| d.topic_arn())
    } else {
        d.topic_arn()
    };
    if found.present().is_some() {
        super::retag(
            &p,
            &o.tags,
            &d.tags,
            || {
                c.sns
                    .tag_resource()
                    .resource_arn(&arn)
                    .set_tags(Some(tags))
                    .send()
            },
            |keys| {
                c.sns
                    .untag_resource()
                    .resource_arn(&arn)
                    .set_tag_keys(Some(keys))
                    .send()
            },
        )
        .await?;
    }
    if !o.emails.iter().any(|(e, _)| e == &d.alert_email) {
        c.sns
            .subscribe()
            .topic_arn(&arn)
            .protocol("email")
            .endpoint(&d.alert_email)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "subscribing the alert e-mail to", e))?;
    }
    let replaced = prior_email.filter(|e| *e != d.alert_email);
    for (email, sub_arn) in &o.emails {
        // A pending subscription has no ARN to remove; it lapses unconfirmed after three days.
        if replaced == Some(email.as_str()) && sub_arn.starts_with("arn:") {
            match c.sns.unsubscribe().subscription_arn(sub_arn).send().await {
                Ok(_) => {}
                // Already gone (a retried call whose first answer was lost).
                Err(e) if is_code(&e, codes::SNS_NOT_FOUND) => {}
                Err(e) => {
                    return Err(PieceError::aws(
                        &p,
                        "removing the old e-mail subscription of",
                        e,
                    ))
                }
            }
        }
    }
    Ok(arn)
}

/// Deletes the topic (its subscriptions go with it). A missing topic is fine.
async fn delete(c: &Clients, d: &Desired) -> Result<(), PieceError> {
    match c.sns.delete_topic().topic_arn(d.topic_arn()).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, codes::SNS_NOT_FOUND) => Ok(()),
        Err(e) => Err(PieceError::aws(Topic.label(d), "deleting", e)),
    }
}

impl Piece for Topic {
    type Observed = Observed;
    /// The topic's ARN.
    type Made = String;

    fn label(&self, d: &Desired) -> String {
        format!("topic {}", d.names.topic)
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
        how: &Ensure<'_>,
    ) -> Result<String, PieceError> {
        ensure(c, d, found, how.prior_alert_email).await
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
