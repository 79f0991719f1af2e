//! The whole stack: read every piece (concurrently), bring every piece to the desired settings in
//! dependency order (independent pieces concurrently), delete every piece.

use futures::future::try_join_all;
use tokio_util::sync::CancellationToken;

use crate::aws::functions::{Code, Function};
use crate::aws::roles::Role;
use crate::aws::{alarms, bucket, dashboard, functions, log_groups, roles, schedules, topic};
use crate::aws::{Clients, Desired, Difference, Found, PieceError};

/// Every piece as read.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The bucket.
    pub bucket: Found<bucket::Observed>,
    /// The topic.
    pub topic: Found<topic::Observed>,
    /// Roles: scanner, reporter.
    pub roles: [Found<roles::Observed>; 2],
    /// Log groups: scanner, reporter.
    pub log_groups: [Found<log_groups::Observed>; 2],
    /// Functions: scanner, reporter.
    pub functions: [Found<functions::Observed>; 2],
    /// Schedules: scanner, reporter.
    pub schedules: [Found<schedules::Observed>; 2],
    /// Alarms with their differences.
    pub alarms: Vec<(alarms::AlarmSpec, Option<Vec<Difference>>)>,
    /// The dashboard body.
    pub dashboard: Found<serde_json::Value>,
}

const FUNCTIONS: [Function; 2] = [Function::Scanner, Function::Reporter];
const ROLES: [Role; 2] = [Role::Scanner, Role::Reporter];

impl Observed {
    /// True when no piece exists at all.
    pub fn nothing_exists(&self) -> bool {
        self.bucket.present().is_none()
            && self.topic.present().is_none()
            && self.roles.iter().all(|r| r.present().is_none())
            && self.log_groups.iter().all(|r| r.present().is_none())
            && self.functions.iter().all(|r| r.present().is_none())
            && self.schedules.iter().all(|r| r.present().is_none())
            && self.alarms.iter().all(|(_, a)| a.is_none())
            && self.dashboard.present().is_none()
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
        let mut out = bucket::drift(d, &self.bucket);
        out.extend(topic::drift(d, &self.topic));
        for i in 0..2 {
            out.extend(roles::drift(d, ROLES[i], &self.roles[i]));
            let group = log_group_name(d, i);
            out.extend(log_groups::drift(d, group, &self.log_groups[i]));
            out.extend(functions::drift(d, FUNCTIONS[i], &self.functions[i]));
            out.extend(schedules::drift(d, FUNCTIONS[i], &self.schedules[i]));
        }
        out.extend(alarms::drift(&self.alarms));
        out.extend(dashboard::drift(d, &self.dashboard));
        out
    }

    /// The deployed code hash of a function, if it exists.
    pub fn code_sha256(&self, f: Function) -> Option<String> {
        self.functions[f as usize]
            .present()
            .map(|o| o.code_sha256.clone())
    }
}

pub use crate::aws::owned;

/// On create, a piece that already exists but is not the stack's is a name taken: adopting it
/// would put someone else's resource under this stack (and destroy would delete it). Import
/// adopts a stack explicitly instead.
fn claim<T>(
    found: &Found<T>,
    tags: impl Fn(&T) -> &std::collections::BTreeMap<String, String>,
    d: &Desired,
    piece: String,
    creating: bool,
) -> Result<(), PieceError> {
    match found {
        Found::Present(o) if creating && !owned(tags(o), &d.names.suffix) => {
            Err(crate::aws::name_taken(&piece, &d.names.suffix))
        }
        _ => Ok(()),
    }
}

fn log_group_name(d: &Desired, i: usize) -> &str {
    if i == 0 {
        &d.names.scanner_log_group
    } else {
        &d.names.reporter_log_group
    }
}

/// Reads every piece concurrently.
pub async fn read(c: &Clients, d: &Desired) -> Result<Observed, PieceError> {
    let (b, t, r0, r1, l0, l1, f0, f1, s0, s1, a, dash) = futures::join!(
        bucket::read(c, d),
        topic::read(c, d),
        roles::read(c, d, Role::Scanner),
        roles::read(c, d, Role::Reporter),
        log_groups::read(c, &d.names.scanner_log_group),
        log_groups::read(c, &d.names.reporter_log_group),
        functions::read(c, d, Function::Scanner),
        functions::read(c, d, Function::Reporter),
        schedules::read(c, d, Function::Scanner),
        schedules::read(c, d, Function::Reporter),
        alarms::read(c, d),
        dashboard::read(c, d),
    );
    Ok(Observed {
        bucket: b?,
        topic: t?,
        roles: [r0?, r1?],
        log_groups: [l0?, l1?],
        functions: [f0?, f1?],
        schedules: [s0?, s1?],
        alarms: a?,
        dashboard: dash?,
    })
}

/// What an apply produced.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The topic's ARN.
    pub topic_arn: Option<String>,
    /// Function ARNs: scanner, reporter.
    pub function_arns: [Option<String>; 2],
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
    /// The functions' packages: scanner, reporter.
    pub codes: [Code<'a>; 2],
    /// Rewrite tags on pieces whose tags are only checked at write time (alarms).
    pub retag: bool,
    /// A create: an existing piece that is not the stack's is a name taken.
    pub creating: bool,
}

/// Brings every piece to the desired settings, writing only what differs: bucket, topic, roles
/// and log groups first (concurrently), then the functions, then schedules, alarms and
/// dashboard. On error, `applied` holds what was done so far.
pub async fn ensure(
    c: &Clients,
    d: &Desired,
    o: &Observed,
    opts: EnsureOptions<'_>,
    cancel: &CancellationToken,
    applied: &mut Applied,
) -> Result<(), PieceError> {
    let EnsureOptions {
        codes,
        retag,
        creating,
    } = opts;
    cancelled(cancel)?;
    let n = &d.names;
    let (b, t, r0, r1, l0, l1) = futures::join!(
        async {
            claim(
                &o.bucket,
                |b| &b.tags,
                d,
                format!("bucket {}", n.bucket),
                creating,
            )?;
            bucket::ensure(c, d, &o.bucket).await
        },
        async {
            claim(
                &o.topic,
                |t| &t.tags,
                d,
                format!("topic {}", n.topic),
                creating,
            )?;
            topic::ensure(c, d, &o.topic).await
        },
        async {
            claim(
                &o.roles[0],
                |r| &r.tags,
                d,
                format!("IAM role {}", n.scanner),
                creating,
            )?;
            roles::ensure(c, d, Role::Scanner, &o.roles[0]).await
        },
        async {
            claim(
                &o.roles[1],
                |r| &r.tags,
                d,
                format!("IAM role {}", n.reporter),
                creating,
            )?;
            roles::ensure(c, d, Role::Reporter, &o.roles[1]).await
        },
        async {
            claim(
                &o.log_groups[0],
                |l| &l.tags,
                d,
                format!("log group {}", n.scanner_log_group),
                creating,
            )?;
            log_groups::ensure(c, d, &n.scanner_log_group, &o.log_groups[0]).await
        },
        async {
            claim(
                &o.log_groups[1],
                |l| &l.tags,
                d,
                format!("log group {}", n.reporter_log_group),
                creating,
            )?;
            log_groups::ensure(c, d, &n.reporter_log_group, &o.log_groups[1]).await
        },
    );
    if let Ok(arn) = &t {
        applied.topic_arn = Some(arn.clone());
    }
    b?;
    t?;
    r0?;
    r1?;
    l0?;
    l1?;
    cancelled(cancel)?;
    let results = futures::future::join_all(FUNCTIONS.iter().zip(codes).enumerate().map(
        |(i, (f, code))| async move {
            claim(
                &o.functions[i],
                |x| &x.tags,
                d,
                format!("Lambda function {}", f.name(d)),
                creating,
            )?;
            functions::ensure(c, d, *f, code, &o.functions[i], cancel).await
        },
    ))
    .await;
    for (i, r) in results.iter().enumerate() {
        if let Ok(arn) = r {
            applied.function_arns[i] = Some(arn.clone());
        }
    }
    for r in results {
        r?;
    }
    cancelled(cancel)?;
    let (s0, s1, a, dash) = futures::join!(
        schedules::ensure(c, d, Function::Scanner, &o.schedules[0]),
        schedules::ensure(c, d, Function::Reporter, &o.schedules[1]),
        alarms::ensure(c, d, &o.alarms, retag),
        dashboard::ensure(c, d, &o.dashboard),
    );
    s0?;
    s1?;
    a?;
    dash?;
    Ok(())
}

/// Deletes every piece of the stack, dependents first. Pieces already gone are not errors;
/// pieces that exist but are not the stack's (a name that was taken when a create failed) are
/// left alone and returned, so the caller can say so.
///
/// The bucket is emptied before anything is deleted: emptying is the one step that can fail
/// for what the bucket holds (Object Lock, a denying policy), and then the stack is left whole
/// and working, not half gone.
pub async fn delete(
    c: &Clients,
    d: &Desired,
    cancel: &CancellationToken,
) -> Result<Vec<String>, PieceError> {
    let o = read(c, d).await?;
    let mut kept = Vec::new();
    let mut mine =
        |present: Option<&std::collections::BTreeMap<String, String>>, piece: String| match present
        {
            Some(tags) if !owned(tags, &d.names.suffix) => {
                kept.push(piece);
                false
            }
            _ => true,
        };
    let n = &d.names;
    let del_schedule = [
        mine(
            o.schedules[0].present().map(|x| &x.tags),
            format!("schedule {}", n.scanner),
        ),
        mine(
            o.schedules[1].present().map(|x| &x.tags),
            format!("schedule {}", n.reporter),
        ),
    ];
    let del_function = [
        mine(
            o.functions[0].present().map(|x| &x.tags),
            format!("Lambda function {}", n.scanner),
        ),
        mine(
            o.functions[1].present().map(|x| &x.tags),
            format!("Lambda function {}", n.reporter),
        ),
    ];
    let del_bucket = mine(
        o.bucket.present().map(|x| &x.tags),
        format!("bucket {}", n.bucket),
    );
    let del_topic = mine(
        o.topic.present().map(|x| &x.tags),
        format!("topic {}", n.topic),
    );
    let del_role = [
        mine(
            o.roles[0].present().map(|x| &x.tags),
            format!("IAM role {}", n.scanner),
        ),
        mine(
            o.roles[1].present().map(|x| &x.tags),
            format!("IAM role {}", n.reporter),
        ),
    ];
    let del_group = [
        mine(
            o.log_groups[0].present().map(|x| &x.tags),
            format!("log group {}", n.scanner_log_group),
        ),
        mine(
            o.log_groups[1].present().map(|x| &x.tags),
            format!("log group {}", n.reporter_log_group),
        ),
    ];
    if del_bucket {
        bucket::empty(c, d, cancel).await?;
    }
    async fn when(
        yes: bool,
        f: impl std::future::Future<Output = Result<(), PieceError>>,
    ) -> Result<(), PieceError> {
        if yes {
            f.await
        } else {
            Ok(())
        }
    }
    let (s0, s1, a, dash) = futures::join!(
        when(del_schedule[0], schedules::delete(c, d, Function::Scanner)),
        when(del_schedule[1], schedules::delete(c, d, Function::Reporter)),
        alarms::delete(c, &o.alarms),
        dashboard::delete(c, d),
    );
    s0?;
    s1?;
    a?;
    dash?;
    try_join_all(
        FUNCTIONS
            .iter()
            .zip(del_function)
            .map(|(f, yes)| when(yes, functions::delete(c, d, *f))),
    )
    .await?;
    let (b, t, r0, r1, l0, l1) = futures::join!(
        when(del_bucket, bucket::delete(c, d, cancel)),
        when(del_topic, topic::delete(c, d)),
        when(del_role[0], roles::delete(c, d, Role::Scanner, cancel)),
        when(del_role[1], roles::delete(c, d, Role::Reporter, cancel)),
        when(del_group[0], log_groups::delete(c, &n.scanner_log_group)),
        when(del_group[1], log_groups::delete(c, &n.reporter_log_group)),
    );
    b?;
    t?;
    r0?;
    r1?;
    l0?;
    l1?;
    Ok(kept)
}
