//! The functions' log groups, with their retention.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use super::functions::Function;
use super::{
    codes, compare, compare_tags, is_code, owned, Clients, Desired, Difference, Ensure, Found,
    Piece, PieceError,
};

/// A function's log group (`/aws/lambda/<function>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogGroup(pub Function);

impl LogGroup {
    /// The group's name.
    pub fn name(self, d: &Desired) -> &str {
        match self.0 {
            Function::Scanner => &d.names.scanner_log_group,
            Function::Reporter => &d.names.reporter_log_group,
        }
    }
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Retention in days (`None`: never expire).
    pub retention_days: Option<i32>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

fn piece(name: &str) -> String {
    format!("log group {name}")
}

impl Piece for LogGroup {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        piece(self.name(d))
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    async fn read(&self, c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
        read(c, self.name(d)).await
    }

    fn drift(&self, d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
        drift(d, self.name(d), found)
    }

    async fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _how: &Ensure<'_>,
    ) -> Result<(), PieceError> {
        ensure(c, d, self.name(d), found).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        _found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, self.name(d)).await
    }
}

/// Reads one log group.
// The name-based tag calls are deprecated in favour of ARN-based ones, but they are what every
// emulator implements and they need no account id.
#[allow(deprecated)]
async fn read(c: &Clients, name: &str) -> Result<Found<Observed>, PieceError> {
    let p = piece(name);
    let out = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .send()
        .await
        .map_err(|e| PieceError::aws(&p, "reading", e))?;
    let Some(group) = out
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
    else {
        return Ok(Found::Missing);
    };
    let tags = match c
        .logs
        .list_tags_log_group()
        .log_group_name(name)
        .send()
        .await
    {
        Ok(t) => t.tags.unwrap_or_default().into_iter().collect(),
        Err(e) if is_code(&e, codes::LOGS_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(&p, "reading tags of", e)),
    };
    Ok(Found::Present(Observed {
        retention_days: group.retention_in_days(),
        tags,
    }))
}

/// Differences from the desired settings.
fn drift(d: &Desired, name: &str, found: &Found<Observed>) -> Vec<Difference> {
    let p = piece(name);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    compare(
        &mut out,
        &p,
        "retention days",
        &o.retention_days,
        &Some(d.log_retention_days),
    );
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

/// Creates the log group or brings retention and tags to the desired values.
#[allow(deprecated)]
async fn ensure(
    c: &Clients,
    d: &Desired,
    name: &str,
    found: &Found<Observed>,
) -> Result<(), PieceError> {
    let p = piece(name);
    match found {
        Found::Missing => {
            let created = c
                .logs
                .create_log_group()
                .log_group_name(name)
                .set_tags(Some(d.tags.clone().into_iter().collect()))
                .send()
                .await;
            match created {
                Ok(_) => {}
                // A create whose answer was lost, retried by the SDK: the group it made carries
                // the stack's tags (set by the create itself), so it is this create's.
                Err(e) if is_code(&e, codes::LOGS_EXISTS) => match read(c, name).await? {
                    Found::Present(o) if owned(&o.tags, &d.names.suffix) => {}
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
            super::retag(
                &p,
                &o.tags,
                &d.tags,
                || {
                    c.logs
                        .tag_log_group()
                        .log_group_name(name)
                        .set_tags(Some(d.tags.clone().into_iter().collect()))
                        .send()
                },
                |keys| {
                    c.logs
                        .untag_log_group()
                        .log_group_name(name)
                        .set_tags(Some(keys))
                        .send()
                },
            )
            .await?;
        }
    }
    if found.present().and_then(|o| o.retention_days) != Some(d.log_retention_days) {
        c.logs
            .put_retention_policy()
            .log_group_name(name)
            .retention_in_days(d.log_retention_days)
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "setting the retention of", e))?;
    }
    Ok(())
}

/// Deletes the log group. A missing one is fine.
async fn delete(c: &Clients, name: &str) -> Result<(), PieceError> {
    match c.logs.delete_log_group().log_group_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, codes::LOGS_NOT_FOUND) => Ok(()),
        Err(e) => Err(PieceError::aws(piece(name), "deleting", e)),
    }
}
