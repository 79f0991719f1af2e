//! The dashboard: compliance over time, compliant and non-compliant counts, and both functions'
//! invocations, errors and duration.

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{
    codes, is_code, Clients, Desired, Difference, Ensure, Found, Piece, PieceError, Unmarked,
};

/// The dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dashboard;

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The body (`null` when it is not JSON).
    pub body: Value,
    /// The stack its marker names, if it carries one.
    pub owner: Option<String>,
}

impl Observed {
    /// A dashboard as read with `body`.
    pub fn new(body: Value) -> Observed {
        let owner = owner_of(&body);
        Observed { body, owner }
    }
}

/// Dashboards carry no tags, so the stack marks its own with this text widget, and reads the
/// mark back before it overwrites or deletes a dashboard of its name.
const MARKER: &str = "Managed by Terraform as compliance_monitor stack";

fn marker_widget(suffix: &str) -> Value {
    json!({
        "type": "text", "x": 0, "y": 24, "width": 24, "height": 1,
        "properties": {"markdown": format!(
            "{MARKER} `{suffix}`: changes made here are undone by the next apply."
        )}
    })
}

/// The stack named by the marker widget of a dashboard body.
fn owner_of(body: &Value) -> Option<String> {
    body.get("widgets")?.as_array()?.iter().find_map(|w| {
        let text = w
            .get("properties")?
            .get("markdown")?
            .as_str()?
            .strip_prefix(MARKER)?;
        let rest = text.strip_prefix(" `")?;
        Some(rest[..rest.find('`')?].to_string())
    })
}

/// Compliance of each (account, region) a scan covers: the scanner publishes one series per
/// share when there are several, and a search draws whichever exist.
fn by_account(x: i64, y: i64, ns: &str, stack: &str, region: &str) -> Value {
    let search = format!(
        "SEARCH('{{{ns},Account,Region,Stack}} MetricName=\"CompliancePercentage\" Stack=\"{stack}\"', 'Average', 3600)"
    );
    json!({
        "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
        "properties": {
            "title": "Compliance percentage by account and region", "region": region,
            "period": 3600, "view": "timeSeries",
            "metrics": [[{"expression": search, "id": "shares", "label": ""}]]
        }
    })
}

/// The dashboard body.
pub fn body(d: &Desired) -> Value {
    let ns = &d.names.metric_namespace;
    let stack = &d.names.suffix;
    let region = &d.region;
    let widget = |x: i64, y: i64, title: &str, metrics: Value, stat: &str| {
        json!({
            "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": 3600, "view": "timeSeries", "metrics": metrics}
        })
    };
    let lambda = |metric: &str| {
        json!([
            ["AWS/Lambda", metric, "FunctionName", d.names.scanner],
            ["AWS/Lambda", metric, "FunctionName", d.names.reporter]
        ])
    };
    json!({
        "widgets": [
            widget(0, 0, "Compliance percentage", json!([[ns, "CompliancePercentage", "Stack", stack]]), "Average"),
            widget(12, 0, "Compliant and non-compliant instances", json!([
                [ns, "CompliantInstances", "Stack", stack],
                [ns, "NonCompliantInstances", "Stack", stack],
                [ns, "ExemptInstances", "Stack", stack],
                [ns, "ExemptedFindings", "Stack", stack]
            ]), "Maximum"),
            widget(0, 6, "Invocations", lambda("Invocations"), "Sum"),
            widget(12, 6, "Errors", lambda("Errors"), "Sum"),
            widget(0, 12, "Duration (ms)", lambda("Duration"), "Maximum"),
            widget(12, 12, "Open security-group rules and instances missing tags", json!([
                [ns, "OpenSecurityGroupRules", "Stack", stack],
                [ns, "InstancesMissingTags", "Stack", stack]
            ]), "Maximum"),
            by_account(0, 18, ns, stack, region),
            widget(12, 18, "Accounts or regions a scan could not read", json!([
                [ns, "ScanErrors", "Stack", stack]
            ]), "Maximum"),
            marker_widget(stack),
        ]
    })
}

impl Piece for Dashboard {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!("dashboard {}", d.names.dashboard)
    }

    fn owner(o: &Observed) -> Option<&str> {
        o.owner.as_deref()
    }

    fn unmarked(suffix: &str) -> Unmarked {
        Unmarked {
            why: format!("its body has no widget saying `{MARKER} `{suffix}``"),
            reclaim: "delete it, and the next apply writes it again".to_string(),
        }
    }

    async fn read(&self, c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
        match c
            .cloudwatch
            .get_dashboard()
            .dashboard_name(&d.names.dashboard)
            .send()
            .await
        {
            Ok(out) => Ok(Found::Present(Observed::new(
                out.dashboard_body()
                    .and_then(|b| serde_json::from_str(b).ok())
                    .unwrap_or(Value::Null),
            ))),
            Err(e) if is_code(&e, codes::DASHBOARD_NOT_FOUND) => Ok(Found::Missing),
            Err(e) => Err(PieceError::aws(self.label(d), "reading", e)),
        }
    }

    fn drift(&self, d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
        match found {
            Found::Missing => vec![Difference::missing(self.label(d))],
            Found::Present(o) if o.body != body(d) => {
                vec![Difference::new(self.label(d), "widgets", "widgets differ")]
            }
            Found::Present(_) => Vec::new(),
        }
    }

    /// Writes the dashboard when missing or different (PutDashboard creates or replaces).
    async fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _how: &Ensure<'_>,
    ) -> Result<(), PieceError> {
        if self.drift(d, found).is_empty() {
            return Ok(());
        }
        c.cloudwatch
            .put_dashboard()
            .dashboard_name(&d.names.dashboard)
            .dashboard_body(body(d).to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| PieceError::aws(self.label(d), "writing", e))
    }

    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        _found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        match c
            .cloudwatch
            .delete_dashboards()
            .dashboard_names(&d.names.dashboard)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, codes::DASHBOARD_NOT_FOUND) => Ok(()),
            Err(e) => Err(PieceError::aws(self.label(d), "deleting", e)),
        }
    }
}
