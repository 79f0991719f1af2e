//! The four alarms: each function's errors and duration, with actions on the alert topic.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, StandardUnit,
    Statistic, Tag,
};
use tokio_util::sync::CancellationToken;

use super::errors::absent_if;
use super::functions::Function;
use super::{
    codes, compare, compare_tags, hcl, is_code, Clients, Desired, Difference, Ensure, Found, Hcl,
    Piece, PieceError, ScannerReporter, EXTRA_TAGS, TAGS,
};

pub use crate::desired::{FailureDuration, Kind};

/// One of the four alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    /// The function it watches.
    pub function: Function,
    /// What it watches.
    pub kind: Kind,
}

/// The namespace of the metrics the alarms watch.
const NAMESPACE: &str = "AWS/Lambda";

/// Seconds each alarm evaluates over.
const PERIOD: i32 = 300;

/// One query of a metric-math alarm: a metric, or an expression over the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Its id (`errors`, `unscanned`, `failures`).
    pub id: String,
    /// The expression, for the query the alarm compares.
    pub expression: Option<String>,
    /// The metric of a metric query.
    pub metric: Option<QueryMetric>,
    /// The alarm compares this query.
    pub returned: bool,
}

/// Namespace, name, dimensions and statistic of a metric query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryMetric {
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub name: String,
    /// Dimensions, name and value.
    pub dimensions: Vec<(String, String)>,
    /// Statistic (`Sum`).
    pub stat: String,
}

impl Query {
    fn metric(id: &str, namespace: &str, name: &str, dimension: (&str, &str)) -> Query {
        Query {
            id: id.into(),
            expression: None,
            metric: Some(QueryMetric {
                namespace: namespace.into(),
                name: name.into(),
                dimensions: vec![(dimension.0.into(), dimension.1.into())],
                stat: "Sum".into(),
            }),
            returned: false,
        }
    }

    fn written(&self) -> String {
        match (&self.expression, &self.metric) {
            (Some(e), _) => format!("{} = {e}", self.id),
            (None, Some(m)) => {
                let dims: Vec<String> = m
                    .dimensions
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                format!(
                    "{} = {} of {} {} {}",
                    self.id,
                    m.stat,
                    m.namespace,
                    m.name,
                    dims.join(",")
                )
            }
            (None, None) => format!("{} = (nothing)", self.id),
        }
    }

    fn to_sdk(&self) -> MetricDataQuery {
        let mut q = MetricDataQuery::builder()
            .id(&self.id)
            .return_data(self.returned);
        if let Some(e) = &self.expression {
            q = q.expression(e);
        }
        if let Some(m) = &self.metric {
            let metric = Metric::builder()
                .namespace(&m.namespace)
                .metric_name(&m.name)
                .set_dimensions(Some(
                    m.dimensions
                        .iter()
                        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                        .collect(),
                ))
                .build();
            q = q.metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(PERIOD)
                    .stat(&m.stat)
                    .build(),
            );
        }
        q.build()
    }

    fn of_sdk(q: &MetricDataQuery) -> Query {
        Query {
            id: q.id().unwrap_or_default().to_string(),
            expression: q.expression().map(str::to_string),
            metric: q.metric_stat().and_then(|m| {
                let metric = m.metric()?;
                Some(QueryMetric {
                    namespace: metric.namespace().unwrap_or_default().to_string(),
                    name: metric.metric_name().unwrap_or_default().to_string(),
                    dimensions: metric
                        .dimensions()
                        .iter()
                        .map(|d| {
                            (
                                d.name().unwrap_or_default().to_string(),
                                d.value().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
                    stat: m.stat().unwrap_or_default().to_string(),
                })
            }),
            // CloudWatch leaves ReturnData out when it is true.
            returned: q.return_data() != Some(false),
        }
    }
}

impl Alarm {
    /// The alarm on `function` for `kind`.
    pub const fn new(function: Function, kind: Kind) -> Alarm {
        Alarm { function, kind }
    }

    /// The alarm's name.
    pub fn name(self, d: &Desired) -> &str {
        d.names.alarms.get(self.function).get(self.kind)
    }

    fn metric(self) -> &'static str {
        match self.kind {
            Kind::Failure => "Errors",
            Kind::Duration => "Duration",
        }
    }

    /// The duration alarms fire when a run reaches the function's timeout, so their threshold
    /// follows `lambda_timeout_seconds`.
    fn threshold(self, d: &Desired) -> f64 {
        match self.kind {
            Kind::Failure => 0.0,
            Kind::Duration => f64::from(d.timeout_seconds) * 1000.0,
        }
    }

    fn comparison(self) -> ComparisonOperator {
        match self.kind {
            Kind::Failure => ComparisonOperator::GreaterThanThreshold,
            Kind::Duration => ComparisonOperator::GreaterThanOrEqualToThreshold,
        }
    }

    fn statistic(self) -> Statistic {
        match self.kind {
            Kind::Failure => Statistic::Sum,
            Kind::Duration => Statistic::Maximum,
        }
    }

    /// The scanner's failure alarm also counts what a scan could not read (the scanner's
    /// `ScanErrors`: a member account without its role, a region not enabled), so one alarm says
    /// "the scan is not whole"; it compares a sum of the two.
    pub fn queries(self, d: &Desired) -> Vec<Query> {
        if (self.function, self.kind) != (Function::Scanner, Kind::Failure) {
            return Vec::new();
        }
        vec![
            Query::metric(
                "errors",
                NAMESPACE,
                "Errors",
                ("FunctionName", self.function.name(d)),
            ),
            Query::metric(
                "unscanned",
                &d.names.metric_namespace,
                "ScanErrors",
                ("Stack", &d.names.suffix),
            ),
            Query {
                id: "failures".into(),
                expression: Some("FILL(errors, 0) + FILL(unscanned, 0)".into()),
                metric: None,
                returned: true,
            },
        ]
    }

    /// The alarm as a read finds it when it is as the stack wants it.
    pub fn wanted(self, d: &Desired) -> Observed {
        let queries = self.queries(d);
        // A metric-math alarm names its metrics in its queries, not at the top.
        let single = queries.is_empty();
        Observed {
            namespace: single.then(|| NAMESPACE.to_string()),
            metric: single.then(|| self.metric().to_string()),
            threshold: Some(self.threshold(d)),
            comparison: Some(self.comparison().as_str().to_string()),
            dimensions: if single {
                vec![(
                    "FunctionName".to_string(),
                    self.function.name(d).to_string(),
                )]
            } else {
                Vec::new()
            },
            actions: vec![d.topic_arn()],
            actions_enabled: true,
            tags: d.tags.clone(),
            queries,
        }
    }
}

/// What a read finds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    /// Namespace of the watched metric.
    pub namespace: Option<String>,
    /// The watched metric.
    pub metric: Option<String>,
    /// Threshold.
    pub threshold: Option<f64>,
    /// Comparison operator, as CloudWatch names it (`GreaterThanThreshold`).
    pub comparison: Option<String>,
    /// Dimensions, name and value, in CloudWatch's order.
    pub dimensions: Vec<(String, String)>,
    /// ARNs the alarm notifies.
    pub actions: Vec<String>,
    /// Whether its actions run (CloudWatch's default when unset: yes).
    pub actions_enabled: bool,
    /// The alarm's tags (ListTagsForResource): DescribeAlarms holds none.
    pub tags: BTreeMap<String, String>,
    /// The queries of a metric-math alarm (empty for a one-metric alarm).
    pub queries: Vec<Query>,
}

fn observe(a: &MetricAlarm, tags: BTreeMap<String, String>) -> Observed {
    Observed {
        namespace: a.namespace().map(str::to_string),
        metric: a.metric_name().map(str::to_string),
        threshold: a.threshold(),
        comparison: a.comparison_operator().map(|c| c.as_str().to_string()),
        dimensions: a
            .dimensions()
            .iter()
            .map(|d| {
                (
                    d.name().unwrap_or_default().to_string(),
                    d.value().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        actions: a.alarm_actions().to_vec(),
        actions_enabled: a.actions_enabled() != Some(false),
        tags,
        queries: a.metrics().iter().map(Query::of_sdk).collect(),
    }
}

/// Reads the named alarms in one DescribeAlarms (which takes up to 100 names).
async fn describe(
    c: &Clients,
    piece: &str,
    names: Vec<String>,
) -> Result<Vec<MetricAlarm>, PieceError> {
    let out = c
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await
        .map_err(|e| PieceError::aws(piece, "reading", e))?;
    Ok(out.metric_alarms.unwrap_or_default())
}

/// The alarm's ARN.
fn arn(d: &Desired, name: &str) -> String {
    d.arn(&format!(
        "cloudwatch:{}:{}:alarm:{name}",
        d.region, d.account_id
    ))
}

/// The tags of an alarm, or `None` when it was deleted since it was described.
async fn tags_of(
    c: &Clients,
    piece: &str,
    arn: &str,
) -> Result<Option<BTreeMap<String, String>>, PieceError> {
    let out = absent_if(
        c.cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await,
        codes::CLOUDWATCH_TAGS_NOT_FOUND,
    )
    .map_err(|e| PieceError::aws(piece, "reading tags of", e))?;
    Ok(out.map(|out| {
        super::tag_map(
            out.tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))),
        )
    }))
}

/// The named alarm as described, with its tags (read concurrently for every alarm described).
async fn found(
    c: &Clients,
    d: &Desired,
    alarms: &[MetricAlarm],
    alarm: Alarm,
) -> Result<Found<Observed>, PieceError> {
    let name = alarm.name(d);
    let Some(a) = alarms.iter().find(|a| a.alarm_name() == Some(name)) else {
        return Ok(Found::Missing);
    };
    let arn = a.alarm_arn().map_or_else(|| arn(d, name), str::to_string);
    Ok(match tags_of(c, &alarm.label(d), &arn).await? {
        Some(tags) => Found::Present(observe(a, tags)),
        None => Found::Missing,
    })
}

/// Reads the four alarms with one DescribeAlarms and their tags, as the stack's read does;
/// each is found as [`Piece::read`] finds one.
pub async fn read_all(
    c: &Clients,
    d: &Desired,
) -> Result<ScannerReporter<FailureDuration<Found<Observed>>>, PieceError> {
    let alarms = ScannerReporter::new(|f| FailureDuration::new(|k| Alarm::new(f, k)));
    let names = alarms
        .iter()
        .flat_map(|(_, pair)| pair.iter().map(|(_, a)| a.name(d).to_string()))
        .collect();
    let read = &describe(c, "alarms", names).await?;
    ScannerReporter::new(|f| FailureDuration::new(|k| found(c, d, read, Alarm::new(f, k))).join())
        .join()
        .await
        .map(|_, pair| pair.transpose())
        .transpose()
}

/// The comparison as the threshold reads: `threshold is 120000, want 300000`, with the
/// comparison operator said when it is the one that differs.
fn threshold_detail(o: &Observed, want: &Observed) -> String {
    let mut parts = Vec::new();
    if o.threshold != want.threshold {
        parts.push(format!(
            "threshold is {}, want {}",
            o.threshold.hcl(),
            want.threshold.hcl()
        ));
    }
    if o.comparison != want.comparison {
        parts.push(format!(
            "comparison is {}, want {}",
            o.comparison.hcl(),
            want.comparison.hcl()
        ));
    }
    parts.join("; ")
}

impl Piece for Alarm {
    type Observed = Observed;
    type Made = ();

    fn label(&self, d: &Desired) -> String {
        format!("alarm {}", self.name(d))
    }

    fn owner(o: &Observed) -> Option<&str> {
        super::stack_of(&o.tags)
    }

    async fn read(&self, c: &Clients, d: &Desired) -> Result<Found<Observed>, PieceError> {
        let read = describe(c, &self.label(d), vec![self.name(d).to_string()]).await?;
        found(c, d, &read, *self).await
    }

    fn drift(&self, d: &Desired, found: &Found<Observed>) -> Vec<Difference> {
        let p = self.label(d);
        let Found::Present(o) = found else {
            return vec![Difference::missing(p)];
        };
        let want = self.wanted(d);
        let mut out = Vec::new();
        if o.metric != want.metric || o.namespace != want.namespace {
            out.push(Difference::new(
                &p,
                "metric",
                format!(
                    "metric is {} in {}, want {} in {}",
                    o.metric.hcl(),
                    o.namespace.hcl(),
                    want.metric.hcl(),
                    want.namespace.hcl()
                ),
            ));
        }
        if o.threshold != want.threshold || o.comparison != want.comparison {
            out.push(Difference::new(&p, "threshold", threshold_detail(o, &want)));
        }
        if o.dimensions != want.dimensions {
            let object =
                |dims: &[(String, String)]| hcl::object(dims.iter().map(|(k, v)| (k.as_str(), v)));
            out.push(Difference::new(
                &p,
                "dimensions",
                format!(
                    "dimensions is {}, want {}",
                    object(&o.dimensions),
                    object(&want.dimensions)
                ),
            ));
        }
        compare(&mut out, &p, "actions", &o.actions, &want.actions);
        if !o.actions_enabled {
            out.push(Difference::new(&p, "actions enabled", "actions disabled"));
        }
        if o.queries != want.queries {
            let written = |q: &[Query]| q.iter().map(Query::written).collect::<Vec<_>>().join("; ");
            out.push(Difference::new(
                &p,
                "metrics",
                format!(
                    "metrics are [{}], want [{}]",
                    written(&o.queries),
                    written(&want.queries)
                ),
            ));
        }
        compare_tags(&mut out, &p, &o.tags, &want.tags);
        out
    }

    /// Writes the alarm when it is missing or a setting differs (PutMetricAlarm creates or
    /// replaces), and brings its tags to the desired ones when they differ.
    async fn ensure(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _how: &Ensure<'_>,
    ) -> Result<(), PieceError> {
        let drift = self.drift(d, found);
        let settings_differ = drift
            .iter()
            .any(|x| x.setting != TAGS && x.setting != EXTRA_TAGS);
        if let Found::Present(o) = found {
            if !settings_differ {
                return retag_alarm(c, d, *self, &o.tags).await;
            }
        }
        let name = self.name(d);
        let function = self.function.name(d);
        let tags: Vec<Tag> = d
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let queries = self.queries(d);
        let mut put = c
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .alarm_description(format!(
                "{} of {function} ({}).",
                if queries.is_empty() {
                    self.metric()
                } else {
                    "Errors and unscanned accounts or regions"
                },
                d.names.suffix
            ))
            .evaluation_periods(1)
            .threshold(self.threshold(d))
            .comparison_operator(self.comparison())
            .treat_missing_data("notBreaching")
            .actions_enabled(true)
            .alarm_actions(d.topic_arn())
            .set_tags(Some(tags.clone()));
        put = if queries.is_empty() {
            put.namespace(NAMESPACE)
                .metric_name(self.metric())
                .dimensions(
                    Dimension::builder()
                        .name("FunctionName")
                        .value(function)
                        .build(),
                )
                .statistic(self.statistic())
                .period(PERIOD)
                .unit(match self.kind {
                    Kind::Duration => StandardUnit::Milliseconds,
                    Kind::Failure => StandardUnit::Count,
                })
        } else {
            put.set_metrics(Some(queries.iter().map(Query::to_sdk).collect()))
        };
        put.send()
            .await
            .map_err(|e| PieceError::aws(self.label(d), "writing", e))?;
        // PutMetricAlarm ignores tags when it updates an alarm that exists.
        match found {
            Found::Present(o) => retag_alarm(c, d, *self, &o.tags).await,
            Found::Missing => Ok(()),
        }
    }

    /// Deletes the alarm if the read found it; a `ResourceNotFound` is a retried call whose
    /// first answer (which deleted it) was lost.
    async fn delete(
        &self,
        c: &Clients,
        d: &Desired,
        found: &Found<Observed>,
        _cancel: &CancellationToken,
    ) -> Result<(), PieceError> {
        if found.present().is_none() {
            return Ok(());
        }
        match c
            .cloudwatch
            .delete_alarms()
            .alarm_names(self.name(d))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, codes::ALARM_NOT_FOUND) => Ok(()),
            Err(e) => Err(PieceError::aws(self.label(d), "deleting", e)),
        }
    }
}

/// Brings an existing alarm's tags from `current` to the desired set.
async fn retag_alarm(
    c: &Clients,
    d: &Desired,
    alarm: Alarm,
    current: &BTreeMap<String, String>,
) -> Result<(), PieceError> {
    let p = alarm.label(d);
    let arn = arn(d, alarm.name(d));
    let tags: Vec<Tag> = d
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    super::retag(
        &p,
        current,
        &d.tags,
        || {
            c.cloudwatch
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(tags))
                .send()
        },
        |keys| {
            c.cloudwatch
                .untag_resource()
                .resource_arn(&arn)
                .set_tag_keys(Some(keys))
                .send()
        },
    )
    .await
}
