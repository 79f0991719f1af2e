//! The event queues (`event_driven`): the SQS queue between the change rule and the scanner, and
//! its dead-letter queue. EventBridge delivers one event per Lambda invocation; a queue lets the
//! scanner take a burst (500 launches, 1,000 tag changes) in a few batches instead.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{
    compare, compare_tags, Clients, Desired, Difference, Ensure, Found, Piece, PieceError,
};

/// One of the two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Receives the changes; the scanner reads it in batches.
    Events,
    /// Holds what the scanner failed on five times, for someone to look at.
    DeadLetter,
}

/// Receives before a message goes to the dead-letter queue.
const MAX_RECEIVES: u32 = 5;
/// A change older than a day is covered by the scheduled scans since.
const EVENTS_RETENTION_SECONDS: u32 = 86_400;
/// Dead letters are kept as long as SQS allows: 14 days.
const DEAD_LETTER_RETENTION_SECONDS: u32 = 1_209_600;
/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY_SECONDS: i64 = 43_200;

/// The attributes the stack sets, as SQS names them.
const MANAGED: [&str; 5] = [
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "SqsManagedSseEnabled",
    "RedrivePolicy",
    "Policy",
];

impl Queue {
    /// The queue's name.
    pub fn name(self, d: &Desired) -> &str {
        match self {
            Queue::Events => &d.names.events_queue,
            Queue::DeadLetter => &d.names.dead_letter_queue,
        }
    }

    /// The attributes it should have; JSON ones (policies) as parsed JSON.
    pub fn attributes(self, d: &Desired) -> BTreeMap<String, Value> {
        let text = |v: String| Value::String(v);
        let mut out = BTreeMap::from([
            ("SqsManagedSseEnabled".to_string(), text("true".into())),
            (
                "MessageRetentionPeriod".to_string(),
                text(
                    match self {
                        Queue::Events => EVENTS_RETENTION_SECONDS,
                        Queue::DeadLetter => DEAD_LETTER_RETENTION_SECONDS,
                    }
                    .to_string(),
                ),
            ),
        ]);
        if self == Queue::Events {
            // AWS: at least six times the function's timeout, so a batch still being handled
            // is not delivered again.
            let visibility = (i64::from(d.timeout_seconds) * 6).min(MAX_VISIBILITY_SECONDS);
            out.insert("VisibilityTimeout".into(), text(visibility.to_string()));
            out.insert(
                "RedrivePolicy".into(),
                json!({
                    "deadLetterTargetArn": d.queue_arn(Queue::DeadLetter.name(d)),
                    "maxReceiveCount": MAX_RECEIVES,
                }),
            );
            out.insert(
                "Policy".into(),
                json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "ChangesFromTheRule",
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": d.queue_arn(self.name(d)),
                        "Condition": {"ArnEquals": {"aws:SourceArn": d.change_rule_arn()}}
                    }]
                }),
            );
        }
        out
    }
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// The queue's URL.
    pub url: String,
    /// The managed attributes it has; JSON ones parsed.
    pub attributes: BTreeMap<String, Value>,
    /// Messages waiting (for the dead-letter queue: failures no one has looked at).
    pub messages: u64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

fn missing<R>(e: &SdkError<aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError, R>) -> bool {
    e.as_service_error().is_some_and(
        aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError::is_queue_does_not_exist,
    )
}

/// The managed attributes as the stack compares them: JSON values parsed, the rest as text.
fn managed(raw: &HashMap<QueueAttributeName, String>) -> BTreeMap<String, Value> {
    raw.iter()
        .filter(|(k, _)| MANAGED.contains(&k.as_str()))
        .map(|(k, v)| {
            let value = match k.as_str() {
                "RedrivePolicy" | "Policy" => {
                    serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone()))
                }
                _ => Value::String(v.clone()),
            };
            (k.as_str().to_string(), value)
        })
        .collect()
}

/// SQS writes a redrive policy's count as a number or a string, depending on who set it.
fn normalise(mut attrs: BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    if let Some(Value::Object(r)) = attrs.get_mut("RedrivePolicy") {
        if let Some(n) = r.get("maxReceiveCount").and_then(|v| match v {
            Value::String(s) => s.parse::<u64>().ok(),
            other => other.as_u64(),
        }) {
            r.insert("maxReceiveCount".into(), json!(n));
        }
    }
    attrs
}

async fn read(c: &Clients, d: &Desired, q: Queue) -> Result<Found<Observed>, PieceError> {
    let p = q.label(d);
    let url = match c.sqs.get_queue_url().queue_name(q.name(d)).send().await {
        Ok(out) => out.queue_url.unwrap_or_default(),
        Err(e) if missing(&e) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    };
    let (attrs, tags) = futures::join!(
        c.sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send(),
        c.sqs.list_queue_tags().queue_url(&url).send(),
    );
    let raw = attrs
        .map_err(|e| PieceError::aws(&p, "reading the attributes of", e))?
        .attributes
        .unwrap_or_default();
    let messages = raw
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let tags = tags
        .map_err(|e| PieceError::aws(&p, "reading the tags of", e))?
        .tags
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(Found::Present(Observed {
        url,
        attributes: normalise(managed(&raw)),
        messages,
        tags,
    }))
}

fn drift(d: &Desired, q: Queue, found: &Found<Observed>) -> Vec<Difference> {
    let p = q.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    let want = q.attributes(d);
    for (name, value) in &want {
        let have = o.attributes.get(name).unwrap_or(&Value::Null);
        if have != value {
            let setting: &'static str = MANAGED
                .iter()
                .find(|m| *m == name)
                .copied()
                .unwrap_or("attributes");
            compare(&mut out, &p, setting, &have.to_string(), &value.to_string());
        }
    }
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

/// The attributes as SQS takes them: every value a string, JSON ones serialised.
fn as_sqs(attrs: &BTreeMap<String, Value>) -> HashMap<QueueAttributeName, String> {
    attrs
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (QueueAttributeName::from(k.as_str()), text)
        })
        .collect()
}

async fn ensure(
    c: &Clients,
    d: &Desired,
    q: Queue,
    found: &Found<Observed>,
) -> Result<(), PieceError> {
    let p = q.label(d);
    let want = q.attributes(d);
    let Found::Present(o) = found else {
        // CreateQueue of a queue that exists with the same attributes answers with its URL, so
        // a create retried after a lost answer is idempotent; tags are set by the create.
        c.sqs
            .create_queue()
            .queue_name(q.name(d))
            .set_attributes(Some(as_sqs(&want)))
            .set_tags(Some(d.tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "creating", e))?;
        return Ok(());
    };
    // Every managed attribute is written when one differs: moto (and any implementation that
    // replaces rather than merges) drops the policy of a write that leaves it out.
    if want.iter().any(|(k, v)| o.attributes.get(k) != Some(v)) {
        c.sqs
            .set_queue_attributes()
            .queue_url(&o.url)
            .set_attributes(Some(as_sqs(&want)))
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "setting the attributes of", e))?;
    }
    super::retag(
        &p,
        &o.tags,
        &d.tags,
        || {
            c.sqs
                .tag_queue()
                .queue_url(&o.url)
                .set_tags(Some(d.tags.clone().into_iter().collect()))
                .send()
        },
        |keys| {
            c.sqs
                .untag_queue()
                .queue_url(&o.url)
                .set_tag_keys(Some(keys))
                .send()
        },
    )
    .await
}

async fn delete(
    c: &Clients,
    d: &Desired,
    q: Queue,
    found: &Found<Observed>,
) -> Result<(), PieceError> {
    let Found::Present(o) = found else {
        return Ok(());
    };
    match c.sqs.delete_queue().queue_url(&o.url).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error().is_some_and(
                aws_sdk_sqs::operation::delete_queue::DeleteQueueError::is_queue_does_not_exist,
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(PieceError::aws(q.label(d), "deleting", e)),
    }
}

impl Piece for Queue {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!("SQS queue {}", self.name(d))
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    fn is_wanted(&self, d: &Desired) -> bool {
        d.event_driven
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
    ) -> Result<(), PieceError> {
        ensure(c, d, *self, found).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d, *self, found).await
    }
}
