//! The event source mapping (`event_driven`): Lambda reads the events queue and hands the scanner
//! batches of changes. It joins two of the stack's own pieces (the scanner and the events queue),
//! so it has no name anyone else could take: one that maps them is the stack's.

use aws_sdk_lambda::types::FunctionResponseType;
use tokio_util::sync::CancellationToken;

use super::functions::Function;
use super::queues::Queue;
use super::wait::{self, Poll};
use super::{
    codes, compare, is_code, Clients, Desired, Difference, Ensure, Found, Piece, PieceError,
};

/// The scanner's mapping from the events queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSource;

/// Most changes in one batch: a burst of launches or tag changes is judged in a few invocations.
pub const BATCH_SIZE: i32 = 500;
/// Longest Lambda gathers a batch before it invokes: changes are judged within a minute.
pub const BATCHING_WINDOW_SECONDS: i32 = 20;

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The mapping's id.
    pub uuid: String,
    /// Most records per batch.
    pub batch_size: Option<i32>,
    /// Seconds Lambda gathers a batch.
    pub batching_window: Option<i32>,
    /// `Enabled`, `Creating`, `Disabled`, ...
    pub state: String,
    /// The scanner reports the records it failed on, so the rest of a batch is not redelivered.
    pub reports_failures: bool,
    /// The stack the mapping belongs to: its two ends are the stack's.
    pub stack: String,
}

async fn read(c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
    let p = EventSource.label(d);
    let out = match c
        .lambda
        .list_event_source_mappings()
        .function_name(Function::Scanner.name(d))
        .event_source_arn(d.queue_arn(Queue::Events.name(d)))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    };
    Ok(match out.event_source_mappings().first() {
        None => Found::Missing,
        Some(m) => Found::Present(Observed {
            uuid: m.uuid().unwrap_or_default().to_string(),
            batch_size: m.batch_size(),
            batching_window: m.maximum_batching_window_in_seconds(),
            state: m.state().unwrap_or("Enabled").to_string(),
            reports_failures: m
                .function_response_types()
                .contains(&FunctionResponseType::ReportBatchItemFailures),
            stack: d.names.suffix.clone(),
        }),
    })
}

fn drift(d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
    let p = EventSource.label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    compare(&mut out, &p, "batch size", &o.batch_size, &Some(BATCH_SIZE));
    compare(
        &mut out,
        &p,
        "batching window",
        &o.batching_window,
        &Some(BATCHING_WINDOW_SECONDS),
    );
    // Creating and Updating settle by themselves; only a mapping turned off is drift.
    if o.state == "Disabled" || o.state == "Disabling" {
        out.push(Difference::new(
            &p,
            "enabled",
            format!("state is {}, want Enabled", o.state),
        ));
    }
    compare(
        &mut out,
        &p,
        "reports batch failures",
        &o.reports_failures,
        &true,
    );
    out
}

/// Waits until Lambda has finished creating or updating the mapping.
async fn wait_enabled(
    c: &Clients,
    d: &Desired,
    uuid: &str,
    cancel: &CancellationToken,
) -> Result<(), PieceError> {
    let p = EventSource.label(d);
    wait::until(&p, "waiting for", wait::LAMBDA_SETTLE, cancel, || async {
        let m = c
            .lambda
            .get_event_source_mapping()
            .uuid(uuid)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "waiting for", e))?;
        let state = m.state().unwrap_or("Enabled").to_string();
        Ok(match state.as_str() {
            "Enabled" => Poll::Ready(()),
            "Creating" | "Updating" | "Enabling" => Poll::Waiting(format!("state {state}")),
            other => {
                return Err(PieceError::new(
                    &p,
                    "waiting for",
                    format!(
                        "Lambda reports state {other}: {}",
                        m.state_transition_reason().unwrap_or("no reason given")
                    ),
                ))
            }
        })
    })
    .await
}

async fn ensure(
    c: &Clients,
    d: &Desired,
    found: &Found<Observed>,
    cancel: &CancellationToken,
) -> Result<(), PieceError> {
    let p = EventSource.label(d);
    let (uuid, state) = match found {
        Found::Missing => {
            // Lambda checks that the scanner's role may read the queue; a grant made moments ago
            // in IAM may not be visible to it yet (eventual consistency).
            let not_yet_permitted = |e: &aws_sdk_lambda::error::SdkError<_, _>| {
                is_code(e, codes::LAMBDA_INVALID_PARAMETER)
                    && super::describe(e).contains("permissions")
            };
            let create = || {
                c.lambda
                    .create_event_source_mapping()
                    .function_name(Function::Scanner.name(d))
                    .event_source_arn(d.queue_arn(Queue::Events.name(d)))
                    .batch_size(BATCH_SIZE)
                    .maximum_batching_window_in_seconds(BATCHING_WINDOW_SECONDS)
                    .function_response_types(FunctionResponseType::ReportBatchItemFailures)
                    .enabled(true)
                    .send()
            };
            let made =
                match wait::retry_while(wait::IAM_PROPAGATION, cancel, not_yet_permitted, create)
                    .await
                {
                    Ok(made) => made,
                    Err(None) => return Err(wait::stopped(&p, "creating")),
                    Err(Some(e)) => return Err(PieceError::aws(&p, "creating", e)),
                };
            (
                made.uuid().unwrap_or_default().to_string(),
                made.state().unwrap_or("Enabled").to_string(),
            )
        }
        Found::Present(o) if drift(d, found).is_empty() => (o.uuid.clone(), o.state.clone()),
        Found::Present(o) => {
            let updated = c
                .lambda
                .update_event_source_mapping()
                .uuid(&o.uuid)
                .batch_size(BATCH_SIZE)
                .maximum_batching_window_in_seconds(BATCHING_WINDOW_SECONDS)
                .function_response_types(FunctionResponseType::ReportBatchItemFailures)
                .enabled(true)
                .send()
                .await
                .map_err(|e| PieceError::aws(&p, "updating", e))?;
            (
                o.uuid.clone(),
                updated.state().unwrap_or("Enabled").to_string(),
            )
        }
    };
    // The answer says Creating or Updating until Lambda has wired the queue to the function.
    if state != "Enabled" {
        wait_enabled(c, d, &uuid, cancel).await?;
    }
    Ok(())
}

async fn delete(c: &Clients, d: &Desired, found: &Found<Observed>) -> Result<(), PieceError> {
    let Found::Present(o) = found else {
        return Ok(());
    };
    match c
        .lambda
        .delete_event_source_mapping()
        .uuid(&o.uuid)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => Ok(()),
        Err(e) => Err(PieceError::aws(EventSource.label(d), "deleting", e)),
    }
}

impl Piece for EventSource {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!(
            "event source mapping {} -> {}",
            Queue::Events.name(d),
            Function::Scanner.name(d)
        )
    }

    fn owner(o: &Observed) -> Option<&str> {
        Some(&o.stack)
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
        how: &Ensure<'_>,
    ) -> Result<(), PieceError> {
        ensure(c, d, found, how.cancel).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d, found).await
    }
}
