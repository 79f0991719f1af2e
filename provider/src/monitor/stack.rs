//! The whole stack: a table of its pieces in dependency order. A read reads every piece
//! concurrently; an apply brings the pieces of each stage to the desired settings concurrently,
//! stage after stage; a destroy runs the stages backwards.

use std::sync::{Mutex, PoisonError};

use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::aws::alarms::{self, Alarm, FailureDuration, Kind};
use crate::aws::bucket::{self, Bucket};
use crate::aws::changes::{self, ChangeRule};
use crate::aws::dashboard::{self, Dashboard};
use crate::aws::event_source::{self, EventSource};
use crate::aws::functions::{self, Code, Function};
use crate::aws::log_groups::{self, LogGroup};
use crate::aws::queues::{self, Queue};
use crate::aws::roles::{self, Role};
use crate::aws::schedules::{self, Schedule};
use crate::aws::topic::{self, Topic};
use crate::aws::{
    name_taken, Clients, Desired, Difference, Ensure, Found, Piece, PieceError, ScannerReporter,
    UNWANTED,
};
use Function::{Reporter, Scanner};

/// Every piece as read.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The bucket.
    pub bucket: Found<bucket::Observed>,
    /// The topic.
    pub topic: Found<topic::Observed>,
    /// The functions' roles.
    pub roles: ScannerReporter<Found<roles::Observed>>,
    /// The functions' log groups.
    pub log_groups: ScannerReporter<Found<log_groups::Observed>>,
    /// The functions.
    pub functions: ScannerReporter<Found<functions::Observed>>,
    /// The functions' schedules.
    pub schedules: ScannerReporter<Found<schedules::Observed>>,
    /// The alarms on each function.
    pub alarms: ScannerReporter<FailureDuration<Found<alarms::Observed>>>,
    /// The dashboard.
    pub dashboard: Found<dashboard::Observed>,
    /// The events queue (`event_driven`).
    pub events_queue: Found<queues::Observed>,
    /// Its dead-letter queue.
    pub dead_letter_queue: Found<queues::Observed>,
    /// The change rule.
    pub change_rule: Found<changes::Observed>,
    /// The scanner's mapping from the events queue.
    pub event_source: Found<event_source::Observed>,
}

/// Every piece, in dependency order: the pieces of a stage do not need each other, and each
/// stage needs the one before (a function runs as its role and logs to its group; a schedule
/// invokes a function, an alarm watches one and notifies the topic; the change rule sends to the
/// events queue and the event source mapping joins it to the scanner). Destroy runs the stages
/// backwards.
const STAGES: [&[&dyn Part]; 3] = [
    &[
        &Bucket,
        &Topic,
        &Role::Scanner,
        &Role::Reporter,
        &LogGroup(Scanner),
        &LogGroup(Reporter),
        &Queue::DeadLetter,
    ],
    // The events queue names its dead-letter queue, which must exist.
    &[&Scanner, &Reporter, &Queue::Events],
    &[
        &Schedule(Scanner),
        &Schedule(Reporter),
        &Alarm::new(Scanner, Kind::Failure),
        &Alarm::new(Scanner, Kind::Duration),
        &Alarm::new(Reporter, Kind::Failure),
        &Alarm::new(Reporter, Kind::Duration),
        &Dashboard,
        &ChangeRule,
        &EventSource,
    ],
];

/// Every piece, stage by stage.
fn parts() -> impl Iterator<Item = &'static dyn Part> {
    STAGES.into_iter().flatten().copied()
}

impl Observed {
    /// True when no piece exists at all.
    pub fn nothing_exists(&self) -> bool {
        parts().all(|p| !p.exists(self))
    }

    /// Every difference from the desired stack, naming the piece, as Terraform shows it.
    pub fn drift(&self, d: &Desired) -> Vec<String> {
        self.differences(d)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Every difference from the desired stack, by piece and setting.
    pub fn differences(&self, d: &Desired) -> Vec<Difference> {
        parts().flat_map(|p| p.drift(d, self)).collect()
    }

    /// The deployed code hash of a function, if it exists.
    pub fn code_sha256(&self, f: Function) -> Option<String> {
        self.functions
            .get(f)
            .present()
            .map(|o| o.code_sha256.clone())
    }
}

/// Where a piece's read is kept in [`Observed`], and what its ensure leaves in [`Applied`].
trait Slot: Piece {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<Self::Observed>;

    fn record(&self, _made: Self::Made, _applied: &mut Applied) {}
}

impl Slot for Bucket {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<bucket::Observed> {
        &o.bucket
    }
}

impl Slot for Topic {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<topic::Observed> {
        &o.topic
    }

    fn record(&self, arn: String, applied: &mut Applied) {
        applied.topic_arn = Some(arn);
    }
}

impl Slot for Role {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<roles::Observed> {
        o.roles.get(self.function())
    }
}

impl Slot for LogGroup {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<log_groups::Observed> {
        o.log_groups.get(self.0)
    }
}

impl Slot for Function {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<functions::Observed> {
        o.functions.get(*self)
    }

    fn record(&self, arn: String, applied: &mut Applied) {
        *applied.function_arns.get_mut(*self) = Some(arn);
    }
}

impl Slot for Schedule {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<schedules::Observed> {
        o.schedules.get(self.0)
    }
}

impl Slot for Alarm {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<alarms::Observed> {
        o.alarms.get(self.function).get(self.kind)
    }
}

impl Slot for Queue {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<queues::Observed> {
        match self {
            Queue::Events => &o.events_queue,
            Queue::DeadLetter => &o.dead_letter_queue,
        }
    }
}

impl Slot for ChangeRule {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<changes::Observed> {
        &o.change_rule
    }
}

impl Slot for EventSource {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<event_source::Observed> {
        &o.event_source
    }
}

impl Slot for Dashboard {
    fn found<'o>(&self, o: &'o Observed) -> &'o Found<dashboard::Observed> {
        &o.dashboard
    }
}

/// One apply: what each piece's ensure needs.
struct Run<'a> {
    c: &'a Clients,
    d: &'a Desired,
    o: &'a Observed,
    how: Ensure<'a>,
    applied: Mutex<&'a mut Applied>,
}

/// A piece of whatever kind, as the stack handles it; object-safe, so the stack is a table.
trait Part: Sync {
    fn label(&self, d: &Desired) -> String;
    fn exists(&self, o: &Observed) -> bool;
    fn foreign(&self, d: &Desired, o: &Observed) -> bool;
    fn drift(&self, d: &Desired, o: &Observed) -> Vec<Difference>;
    fn ensure<'a>(&'a self, run: &'a Run<'_>) -> BoxFuture<'a, Result<(), PieceError>>;
    fn delete<'a>(
        &'a self,
        c: &'a Clients,
        d: &'a Desired,
        o: &'a Observed,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), PieceError>>;
}

impl<P: Slot> Part for P {
    fn label(&self, d: &Desired) -> String {
        Piece::label(self, d)
    }

    fn exists(&self, o: &Observed) -> bool {
        self.found(o).present().is_some()
    }

    fn foreign(&self, d: &Desired, o: &Observed) -> bool {
        <P as Piece>::foreign(self.found(o), &d.names.suffix)
    }

    fn drift(&self, d: &Desired, o: &Observed) -> Vec<Difference> {
        if self.is_wanted(d) {
            Piece::drift(self, d, self.found(o))
        } else if self.exists(o) && !Part::foreign(self, d, o) {
            vec![Difference::new(
                Part::label(self, d),
                UNWANTED,
                "exists, but the configuration no longer wants it",
            )]
        } else {
            Vec::new()
        }
    }

    fn ensure<'a>(&'a self, run: &'a Run<'_>) -> BoxFuture<'a, Result<(), PieceError>> {
        Box::pin(async move {
            // A piece the configuration no longer wants goes, if it is the stack's.
            if !self.is_wanted(run.d) {
                if self.exists(run.o) && !Part::foreign(self, run.d, run.o) {
                    Piece::delete(self, run.c, run.d, self.found(run.o), run.how.cancel).await?;
                }
                return Ok(());
            }
            // Claim before every write, on create and on update: a piece of the stack's name
            // that is not the stack's (made by someone else before the create, or after the
            // stack's own was deleted outside Terraform) is a name taken, never adopted.
            if Part::foreign(self, run.d, run.o) {
                let suffix = &run.d.names.suffix;
                return Err(name_taken(&Part::label(self, run.d), &P::unmarked(suffix)));
            }
            let made = Piece::ensure(self, run.c, run.d, self.found(run.o), &run.how).await?;
            let mut applied = run.applied.lock().unwrap_or_else(PoisonError::into_inner);
            self.record(made, &mut applied);
            Ok(())
        })
    }

    fn delete<'a>(
        &'a self,
        c: &'a Clients,
        d: &'a Desired,
        o: &'a Observed,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<(), PieceError>> {
        Box::pin(Piece::delete(self, c, d, self.found(o), cancel))
    }
}

/// Reads every piece concurrently (the four alarms in one call).
pub async fn read(c: &Clients, d: &Desired) -> Result<Observed, PieceError> {
    // Each read is boxed: joined in place, the reads make one future of a quarter of a megabyte
    // in a debug build, which overflows a worker thread's stack as it is moved.
    let (bucket, topic, roles, log_groups, functions, schedules, alarms, dashboard) = futures::join!(
        Bucket.read(c, d).boxed(),
        Topic.read(c, d).boxed(),
        ScannerReporter::new(|f| async move { Role::of(f).read(c, d).await }.boxed()).join(),
        ScannerReporter::new(|f| async move { LogGroup(f).read(c, d).await }.boxed()).join(),
        ScannerReporter::new(|f| async move { f.read(c, d).await }.boxed()).join(),
        ScannerReporter::new(|f| async move { Schedule(f).read(c, d).await }.boxed()).join(),
        alarms::read_all(c, d).boxed(),
        Dashboard.read(c, d).boxed(),
    );
    // The event-driven pieces are read whether or not they are wanted: one left behind by
    // `event_driven = false` is drift to remove.
    let (events_queue, dead_letter_queue, change_rule, event_source) = futures::join!(
        Queue::Events.read(c, d).boxed(),
        Queue::DeadLetter.read(c, d).boxed(),
        ChangeRule.read(c, d).boxed(),
        EventSource.read(c, d).boxed(),
    );
    Ok(Observed {
        bucket: bucket?,
        topic: topic?,
        roles: roles.transpose()?,
        log_groups: log_groups.transpose()?,
        functions: functions.transpose()?,
        schedules: schedules.transpose()?,
        alarms: alarms?,
        dashboard: dashboard?,
        events_queue: events_queue?,
        dead_letter_queue: dead_letter_queue?,
        change_rule: change_rule?,
        event_source: event_source?,
    })
}

/// What an apply produced.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The topic's ARN.
    pub topic_arn: Option<String>,
    /// The functions' ARNs.
    pub function_arns: ScannerReporter<Option<String>>,
}

fn cancelled(cancel: &CancellationToken) -> Result<(), PieceError> {
    if cancel.is_cancelled() {
        Err(PieceError::new(
            "stack",
            "applying",
            "stopped by Terraform (interrupt)",
        ))
    } else {
        Ok(())
    }
}

/// How an apply treats what it finds.
#[derive(Debug, Clone, Copy)]
pub struct EnsureOptions<'a> {
    /// The functions' packages.
    pub codes: ScannerReporter<Code<'a>>,
    /// The alert address the prior state subscribed, on update: a change of `alert_email`
    /// removes only that address's subscription, never subscribers someone else added.
    pub prior_alert_email: Option<&'a str>,
}

/// Brings every piece to the desired settings, writing only what differs, stage by stage with
/// the pieces of a stage concurrently. On error, `applied` holds what was done so far.
pub async fn ensure(
    c: &Clients,
    d: &Desired,
    o: &Observed,
    opts: EnsureOptions<'_>,
    cancel: &CancellationToken,
    applied: &mut Applied,
) -> Result<(), PieceError> {
    let run = Run {
        c,
        d,
        o,
        how: Ensure {
            codes: opts.codes,
            prior_alert_email: opts.prior_alert_email,
            cancel,
        },
        applied: Mutex::new(applied),
    };
    for stage in STAGES {
        cancelled(cancel)?;
        // Every piece of the stage finishes (or fails) before the first error is returned.
        for result in join_all(stage.iter().map(|p| p.ensure(&run))).await {
            result?;
        }
    }
    Ok(())
}

/// Deletes every piece of the stack, dependents first. Pieces already gone are not errors;
/// pieces that exist but are not the stack's (a name that was taken when a create failed) are
/// left alone and returned, so the caller can say so.
///
/// With `force_destroy = false`, a bucket that holds anything stops the destroy before anything
/// is deleted. The bucket is emptied before anything is deleted: emptying is the one step that can fail
/// for what the bucket holds (Object Lock, a denying policy), and then the stack is left whole
/// and working, not half gone.
pub async fn delete(
    c: &Clients,
    d: &Desired,
    cancel: &CancellationToken,
) -> Result<Vec<String>, PieceError> {
    let o = read(c, d).await?;
    let kept = parts()
        .filter(|p| p.foreign(d, &o))
        .map(|p| p.label(d))
        .collect();
    if !Part::foreign(&Bucket, d, &o) && o.bucket.present().is_some() {
        // The compliance history goes only when the configuration says it may.
        if !d.force_destroy {
            bucket::refuse_if_holding(c, d).await?;
        }
        bucket::empty(c, d, cancel).await?;
    }
    for stage in STAGES.into_iter().rev() {
        let mine = stage.iter().filter(|p| !p.foreign(d, &o));
        for result in join_all(mine.map(|p| p.delete(c, d, &o, cancel))).await {
            result?;
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests;
