//! The EventBridge schedules: a rule per function, its target, and the permission that lets
//! EventBridge invoke the function.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::RuleState;
use tokio_util::sync::CancellationToken;

use super::functions::Function;
use super::{
    codes, compare, compare_tags, is_code, Clients, Desired, Difference, Ensure, Found, Piece,
    PieceError,
};

/// A function's schedule: an EventBridge rule named as the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule(pub Function);

/// Id of the rule's one target.
pub const TARGET_ID: &str = "compliance-function";
/// Statement id of the invoke permission on the function.
pub const PERMISSION_ID: &str = "compliance-schedule";

fn expression(d: &Desired, f: Function) -> &str {
    match f {
        Function::Scanner => &d.scan_schedule,
        Function::Reporter => &d.report_schedule,
    }
}

fn rule_arn(d: &Desired, f: Function) -> String {
    d.arn(&format!(
        "events:{}:{}:rule/{}",
        d.region,
        d.account_id,
        f.name(d)
    ))
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Schedule expression.
    pub expression: String,
    /// Enabled.
    pub enabled: bool,
    /// ARNs of the rule's targets.
    pub targets: Vec<String>,
    /// The function's policy allows this rule to invoke it.
    pub permitted: bool,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// Reads the rule, its targets, the invoke permission and tags.
async fn read(c: &Clients, d: &Desired, f: Function) -> Result<Found<Observed>, PieceError> {
    let name = f.name(d);
    let p = Schedule(f).label(d);
    let rule = match c.events.describe_rule().name(name).send().await {
        Ok(r) => r,
        Err(e) if is_code(&e, codes::EVENTS_NOT_FOUND) => return Ok(Found::Missing),
        Err(e) => return Err(PieceError::aws(p, "reading", e)),
    };
    let arn = rule_arn(d, f);
    let (targets_tags, policy) = futures::join!(
        super::eventbridge::targets_and_tags(c, &p, name, &arn),
        c.lambda.get_policy().function_name(name).send(),
    );
    let (targets, tags) = targets_tags?;
    let rule_arn = rule
        .arn()
        .map(str::to_string)
        .unwrap_or_else(|| rule_arn(d, f));
    let permitted = match policy {
        Ok(p) => p.policy().is_some_and(|text| {
            serde_json::from_str::<serde_json::Value>(text).is_ok_and(|doc| {
                doc["Statement"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|st| st["Sid"] == PERMISSION_ID && st.to_string().contains(&rule_arn))
                })
            })
        }),
        Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => false,
        Err(e) => return Err(PieceError::aws(&p, "reading the invoke permission of", e)),
    };
    Ok(Found::Present(Observed {
        expression: rule.schedule_expression().unwrap_or_default().to_string(),
        enabled: rule.state() == Some(&RuleState::Enabled),
        targets,
        permitted,
        tags,
    }))
}

/// Differences from the desired schedule.
fn drift(d: &Desired, f: Function, found: &Found<Observed>) -> Vec<Difference> {
    let p = Schedule(f).label(d);
    let Found::Present(o) = found else {
        return vec![Difference::missing(p)];
    };
    let mut out = Vec::new();
    compare(
        &mut out,
        &p,
        "expression",
        &o.expression.as_str(),
        &expression(d, f),
    );
    compare(&mut out, &p, "enabled", &o.enabled, &true);
    compare(
        &mut out,
        &p,
        "targets",
        &o.targets,
        &vec![d.function_arn(f.name(d))],
    );
    compare(&mut out, &p, "invoke permission", &o.permitted, &true);
    compare_tags(&mut out, &p, &o.tags, &d.tags);
    out
}

/// Creates or repairs the rule, its target and the invoke permission.
async fn ensure(
    c: &Clients,
    d: &Desired,
    f: Function,
    found: &Found<Observed>,
) -> Result<(), PieceError> {
    let name = f.name(d);
    let p = Schedule(f).label(d);
    let blank = Observed::default();
    let o = found.present().unwrap_or(&blank);
    let function_arn = d.function_arn(name);
    let rule_changed = found.present().is_none() || o.expression != expression(d, f) || !o.enabled;
    let rule_arn = if rule_changed {
        c.events
            .put_rule()
            .name(name)
            .schedule_expression(expression(d, f))
            .state(RuleState::Enabled)
            .description(format!("Runs {name}."))
            .set_tags(
                found
                    .present()
                    .is_none()
                    .then(|| super::eventbridge::tags(&d.tags)),
            )
            .send()
            .await
            .map_err(|e| PieceError::aws(&p, "writing", e))?
            .rule_arn
            .unwrap_or_else(|| rule_arn(d, f))
    } else {
        rule_arn(d, f)
    };
    if found.present().is_some() {
        super::eventbridge::retag(c, &p, &rule_arn, &o.tags, &d.tags).await?;
    }
    if o.targets != vec![function_arn.clone()] {
        super::eventbridge::set_target(c, &p, name, TARGET_ID, &function_arn).await?;
    }
    if !o.permitted {
        // Replace a stale statement (e.g. for another rule ARN) rather than fail on the id.
        match c
            .lambda
            .remove_permission()
            .function_name(name)
            .statement_id(PERMISSION_ID)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_code(&e, codes::LAMBDA_NOT_FOUND) => {}
            Err(e) => return Err(PieceError::aws(&p, "replacing the invoke permission of", e)),
        }
        match c
            .lambda
            .add_permission()
            .function_name(name)
            .statement_id(PERMISSION_ID)
            .action("lambda:InvokeFunction")
            .principal("events.amazonaws.com")
            .source_arn(&rule_arn)
            .send()
            .await
        {
            Ok(_) => {}
            // The statement was removed just above, so one with its id is this call's own,
            // retried by the SDK after its answer was lost.
            Err(e) if is_code(&e, codes::LAMBDA_CONFLICT) => {}
            Err(e) => return Err(PieceError::aws(&p, "granting the invoke permission of", e)),
        }
    }
    Ok(())
}

/// Removes the targets and the rule (the permission goes with the function). Missing is fine.
async fn delete(c: &Clients, d: &Desired, f: Function) -> Result<(), PieceError> {
    let p = Schedule(f).label(d);
    super::eventbridge::delete(c, &p, f.name(d), TARGET_ID).await
}

impl Piece for Schedule {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!("schedule {}", self.0.name(d))
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    async fn read(&self, c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
        read(c, d, self.0).await
    }

    fn drift(&self, d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
        drift(d, self.0, found)
    }

    async fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _how: &Ensure<'_>,
    ) -> Result<(), PieceError> {
        ensure(c, d, self.0, found).await
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        _found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        delete(c, d, self.0).await
    }
}
