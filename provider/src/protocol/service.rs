//! The `tfplugin6.Provider` gRPC service, generic over a [`Provider`]: it decodes and encodes
//! values, applies schema defaults and replacement rules, and routes calls to resources and data
//! sources.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tfplugin_proto::tfplugin6 as pb;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::diag::{AttrPath, Diagnostic, Diagnostics};
use super::schema::{Mode, Schema};
use super::value::{self, Type, Value};

/// A planning request for one resource, after defaults were applied.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// The prior state (null on create).
    pub prior: Value,
    /// Terraform's proposed new state, with schema defaults filled in.
    pub proposed: Value,
    /// The configuration as written (may hold unknowns).
    pub config: Value,
    /// The change replaces the resource (a replace-forcing attribute changed).
    pub replace: bool,
}

/// An apply request: create when `prior` is null, delete when `planned` is null, else update.
#[derive(Debug, Clone)]
pub struct ApplyRequest {
    /// The prior state.
    pub prior: Value,
    /// The planned state.
    pub planned: Value,
    /// The configuration.
    pub config: Value,
    /// Private data returned with the plan.
    pub planned_private: Vec<u8>,
}

/// The outcome of an operation: a value, provider-private bytes, and diagnostics.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The resulting state (null: the object does not exist).
    pub state: Value,
    /// Private bytes Terraform keeps beside the state and hands back unchanged.
    pub private: Vec<u8>,
    /// Errors and warnings.
    pub diagnostics: Diagnostics,
}

/// A managed resource type.
#[tonic::async_trait]
pub trait Resource: Send + Sync + 'static {
    /// Its type name (`compliance_monitor`).
    fn type_name(&self) -> &'static str;
    /// Its schema.
    fn schema(&self) -> &Schema;
    /// Checks configuration before any remote call. Unknown values are not errors.
    fn validate(&self, config: &Value) -> Diagnostics;
    /// Plans a create or update: returns the planned state (computed values filled or unknown).
    async fn plan(&self, req: PlanRequest, cancel: CancellationToken) -> Outcome;
    /// Applies a planned change.
    async fn apply(&self, req: ApplyRequest, cancel: CancellationToken) -> Outcome;
    /// Reads the real object; a null state means it is gone.
    async fn read(&self, state: Value, private: Vec<u8>, cancel: CancellationToken) -> Outcome;
    /// Adopts an existing object by its import id.
    async fn import(&self, id: &str, cancel: CancellationToken) -> Outcome;
}

/// What a data source read gives back: the state Terraform keeps for the data resource, and
/// diagnostics.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    /// Every attribute of the schema, all known (ignored by Terraform when there are errors).
    pub state: Value,
    /// Errors and warnings.
    pub diagnostics: Diagnostics,
}

/// A data source: reads something that exists, plans and changes nothing.
#[tonic::async_trait]
pub trait DataSource: Send + Sync + 'static {
    /// Its type name (`compliance_scan`).
    fn type_name(&self) -> &'static str;
    /// Its schema.
    fn schema(&self) -> &Schema;
    /// Checks configuration before any remote call. Unknown values are not errors.
    fn validate(&self, config: &Value) -> Diagnostics;
    /// Reads with a wholly known, valid configuration. The state carries the configured values
    /// as they are and fills every computed attribute; it must be wholly known.
    async fn read(&self, config: Value, cancel: CancellationToken) -> ReadOutcome;
}

/// A provider: its own configuration block and the resources and data sources it offers.
#[tonic::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider block's schema.
    fn schema(&self) -> &Schema;
    /// The managed resources.
    fn resources(&self) -> Vec<Arc<dyn Resource>>;
    /// The data sources (none unless the provider offers some).
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }
    /// Checks the provider block before any remote call.
    fn validate(&self, config: &Value) -> Diagnostics;
    /// Configures the provider from its block (called once per process before resource calls).
    async fn configure(&self, config: Value, terraform_version: &str) -> Diagnostics;
}

/// The gRPC service around a [`Provider`].
pub struct ProviderService<P: Provider> {
    provider: Arc<P>,
    resources: BTreeMap<&'static str, Arc<dyn Resource>>,
    data_sources: BTreeMap<&'static str, Arc<dyn DataSource>>,
    /// Cancelled by StopProvider and then replaced, so later calls run normally.
    stop: Mutex<CancellationToken>,
}

impl<P: Provider> ProviderService<P> {
    /// Wraps a provider.
    pub fn new(provider: Arc<P>) -> ProviderService<P> {
        let resources = provider
            .resources()
            .into_iter()
            .map(|r| (r.type_name(), r))
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|d| (d.type_name(), d))
            .collect();
        ProviderService {
            provider,
            resources,
            data_sources,
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    fn cancel_token(&self) -> CancellationToken {
        self.stop.lock().expect("stop lock").clone()
    }

    fn resource(&self, name: &str) -> Result<&Arc<dyn Resource>, Diagnostics> {
        self.resources.get(name).ok_or_else(|| {
            Diagnostic::error(
                format!("Unknown resource type {name:?}"),
                format!(
                    "This provider offers: {}.",
                    self.resources
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into()
        })
    }

    fn data_source(&self, name: &str) -> Result<&Arc<dyn DataSource>, Diagnostics> {
        self.data_sources.get(name).ok_or_else(|| {
            let offered = if self.data_sources.is_empty() {
                "This provider offers no data sources.".to_string()
            } else {
                format!(
                    "This provider offers: {}.",
                    self.data_sources
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            Diagnostic::error(format!("Unknown data source {name:?}"), offered).into()
        })
    }
}

/// What Terraform would plan for a data source whose configuration is not wholly known: the
/// configuration, with every computed attribute the configuration leaves null unknown.
pub fn deferred_data_state(schema: &Schema, config: &Value) -> Value {
    let mut state = config.clone();
    if let Value::Object(attrs) = &mut state {
        for a in &schema.block.attributes {
            let computed = match a.mode {
                Mode::Computed => true,
                Mode::OptionalComputed => config.attr(a.name).is_null(),
                Mode::Required | Mode::Optional => false,
            };
            if computed {
                attrs.insert(a.name.to_string(), Value::Unknown);
            }
        }
    }
    state
}

/// The top-level attributes of `config` that hold an unknown value, for messages.
fn unknown_attributes(config: &Value) -> Vec<&str> {
    config
        .entries()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.contains_unknown())
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Decodes an optional `DynamicValue` of `ty` (absent or empty means null).
pub fn decode(dv: Option<&pb::DynamicValue>, ty: &Type, what: &str) -> Result<Value, Diagnostics> {
    let Some(dv) = dv else { return Ok(Value::Null) };
    let result = if !dv.msgpack.is_empty() {
        value::from_msgpack(&dv.msgpack, ty)
    } else if !dv.json.is_empty() {
        serde_json::from_slice(&dv.json)
            .map_err(|e| value::CodecError(e.to_string()))
            .and_then(|j| value::from_json(&j, ty))
    } else {
        Ok(Value::Null)
    };
    result.map_err(|e| {
        Diagnostic::error(
            format!("Invalid {what} from Terraform"),
            format!(
                "The provider could not decode the {what}: {e}. This is a bug; please report it."
            ),
        )
        .into()
    })
}

/// Encodes a value of `ty` as a msgpack `DynamicValue`.
pub fn encode(v: &Value, ty: &Type) -> Result<pb::DynamicValue, Diagnostics> {
    value::to_msgpack(v, ty)
        .map(|msgpack| pb::DynamicValue {
            msgpack,
            json: Vec::new(),
        })
        .map_err(|e| {
            Diagnostic::error(
                "Provider produced a value it cannot encode",
                format!("{e}. This is a bug; please report it."),
            )
            .into()
        })
}

type Rpc<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for ProviderService<P> {
    async fn get_metadata(
        &self,
        _: Request<pb::get_metadata::Request>,
    ) -> Rpc<pb::get_metadata::Response> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: self
                .resources
                .keys()
                .map(|n| pb::get_metadata::ResourceMetadata {
                    type_name: n.to_string(),
                })
                .collect(),
            data_sources: self
                .data_sources
                .keys()
                .map(|n| pb::get_metadata::DataSourceMetadata {
                    type_name: n.to_string(),
                })
                .collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _: Request<pb::get_provider_schema::Request>,
    ) -> Rpc<pb::get_provider_schema::Response> {
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(self.provider.schema().to_proto()),
            resource_schemas: self
                .resources
                .iter()
                .map(|(n, r)| (n.to_string(), r.schema().to_proto()))
                .collect(),
            data_source_schemas: self
                .data_sources
                .iter()
                .map(|(n, d)| (n.to_string(), d.schema().to_proto()))
                .collect(),
            server_capabilities: Some(capabilities()),
            ..Default::default()
        }))
    }

    async fn validate_provider_config(
        &self,
        req: Request<pb::validate_provider_config::Request>,
    ) -> Rpc<pb::validate_provider_config::Response> {
        let req = req.into_inner();
        let ty = self.provider.schema().value_type();
        let diagnostics = match decode(req.config.as_ref(), &ty, "provider configuration") {
            Ok(config) => self.provider.validate(&config),
            Err(d) => d,
        };
        Ok(Response::new(pb::validate_provider_config::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn validate_resource_config(
        &self,
        req: Request<pb::validate_resource_config::Request>,
    ) -> Rpc<pb::validate_resource_config::Response> {
        let req = req.into_inner();
        let diagnostics = match self.resource(&req.type_name) {
            Ok(r) => match decode(
                req.config.as_ref(),
                &r.schema().value_type(),
                "configuration",
            ) {
                Ok(config) => r.validate(&config),
                Err(d) => d,
            },
            Err(d) => d,
        };
        Ok(Response::new(pb::validate_resource_config::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<pb::validate_data_resource_config::Request>,
    ) -> Rpc<pb::validate_data_resource_config::Response> {
        let req = req.into_inner();
        let diagnostics = match self.data_source(&req.type_name) {
            Ok(d) => match decode(
                req.config.as_ref(),
                &d.schema().value_type(),
                "configuration",
            ) {
                Ok(config) => d.validate(&config),
                Err(diags) => diags,
            },
            Err(diags) => diags,
        };
        Ok(Response::new(pb::validate_data_resource_config::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<pb::upgrade_resource_state::Request>,
    ) -> Rpc<pb::upgrade_resource_state::Response> {
        let req = req.into_inner();
        let result = (|| {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                if raw.flatmap.is_empty() {
                    return Ok(None);
                }
                return Err(Diagnostics::from(Diagnostic::error(
                    "Unsupported state format",
                    "The stored state is in the legacy flatmap format, which this provider never wrote.",
                )));
            }
            let json: serde_json::Value = serde_json::from_slice(&raw.json).map_err(|e| {
                Diagnostics::from(Diagnostic::error("Stored state is not JSON", e.to_string()))
            })?;
            // Schema version 0 is the only one so far: the JSON decodes with the current type.
            let mut state = value::from_json(&json, &ty).map_err(|e| {
                Diagnostics::from(Diagnostic::error(
                    "Stored state does not match the schema",
                    format!("{e}. Remove the resource from state and import it again."),
                ))
            })?;
            // An attribute added since the state was written, with a default, takes its
            // default: the state then says what the older provider did (e.g. `force_destroy`
            // false), and the next plan shows no change for it.
            if let Value::Object(attrs) = &mut state {
                for a in &r.schema().block.attributes {
                    let absent = json.get(a.name).is_none();
                    if let (true, Some(default)) = (absent, &a.default) {
                        attrs.insert(a.name.to_string(), default.clone());
                    }
                }
                // A list block added since holds no blocks: an empty list, as Terraform plans it.
                for b in &r.schema().block.blocks {
                    if json.get(b.name).is_none()
                        && b.nesting == crate::protocol::schema::Nesting::List
                    {
                        attrs.insert(b.name.to_string(), Value::List(Vec::new()));
                    }
                }
            }
            encode(&state, &ty).map(Some)
        })();
        let (upgraded_state, diagnostics) = match result {
            Ok(v) => (v, Vec::new()),
            Err(d) => (None, d.to_proto()),
        };
        Ok(Response::new(pb::upgrade_resource_state::Response {
            upgraded_state,
            diagnostics,
        }))
    }

    async fn configure_provider(
        &self,
        req: Request<pb::configure_provider::Request>,
    ) -> Rpc<pb::configure_provider::Response> {
        let req = req.into_inner();
        let ty = self.provider.schema().value_type();
        let diagnostics = match decode(req.config.as_ref(), &ty, "provider configuration") {
            Ok(config) => {
                let mut d = self.provider.validate(&config);
                if !d.has_errors() {
                    d.extend(
                        self.provider
                            .configure(config, &req.terraform_version)
                            .await,
                    );
                }
                d
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::configure_provider::Response {
            diagnostics: diagnostics.to_proto(),
        }))
    }

    async fn read_resource(
        &self,
        req: Request<pb::read_resource::Request>,
    ) -> Rpc<pb::read_resource::Response> {
        let req = req.into_inner();
        let out = async {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let state = decode(req.current_state.as_ref(), &ty, "current state")?;
            let out = r.read(state, req.private, self.cancel_token()).await;
            let new_state = encode(&out.state, &ty)?;
            Ok::<_, Diagnostics>((new_state, out))
        }
        .await;
        Ok(Response::new(match out {
            Ok((new_state, out)) => pb::read_resource::Response {
                new_state: Some(new_state),
                diagnostics: out.diagnostics.to_proto(),
                private: out.private,
                ..Default::default()
            },
            Err(d) => pb::read_resource::Response {
                diagnostics: d.to_proto(),
                ..Default::default()
            },
        }))
    }

    async fn plan_resource_change(
        &self,
        req: Request<pb::plan_resource_change::Request>,
    ) -> Rpc<pb::plan_resource_change::Response> {
        let req = req.into_inner();
        let out = async {
            let r = self.resource(&req.type_name)?;
            let schema = r.schema();
            let ty = schema.value_type();
            let prior = decode(req.prior_state.as_ref(), &ty, "prior state")?;
            let mut proposed = decode(req.proposed_new_state.as_ref(), &ty, "proposed new state")?;
            let config = decode(req.config.as_ref(), &ty, "configuration")?;
            if proposed.is_null() {
                // Destroy: nothing to plan.
                return Ok((encode(&Value::Null, &ty)?, Vec::new(), Outcome::default()));
            }
            schema.apply_defaults(&mut proposed, &config);
            let requires_replace = schema.requires_replace(&prior, &proposed);
            let plan = PlanRequest {
                prior,
                proposed,
                config,
                replace: !requires_replace.is_empty(),
            };
            let out = r.plan(plan, self.cancel_token()).await;
            Ok::<_, Diagnostics>((encode(&out.state, &ty)?, requires_replace, out))
        }
        .await;
        Ok(Response::new(match out {
            Ok((planned, replace, out)) => pb::plan_resource_change::Response {
                planned_state: Some(planned),
                requires_replace: replace.iter().map(AttrPath::to_proto).collect(),
                planned_private: out.private,
                diagnostics: out.diagnostics.to_proto(),
                ..Default::default()
            },
            Err(d) => pb::plan_resource_change::Response {
                diagnostics: d.to_proto(),
                ..Default::default()
            },
        }))
    }

    async fn apply_resource_change(
        &self,
        req: Request<pb::apply_resource_change::Request>,
    ) -> Rpc<pb::apply_resource_change::Response> {
        let req = req.into_inner();
        let out = async {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let apply = ApplyRequest {
                prior: decode(req.prior_state.as_ref(), &ty, "prior state")?,
                planned: decode(req.planned_state.as_ref(), &ty, "planned state")?,
                config: decode(req.config.as_ref(), &ty, "configuration")?,
                planned_private: req.planned_private,
            };
            let out = r.apply(apply, self.cancel_token()).await;
            // The state is returned even with errors: Terraform keeps what was created.
            Ok::<_, Diagnostics>((encode(&out.state, &ty)?, out))
        }
        .await;
        Ok(Response::new(match out {
            Ok((new_state, out)) => pb::apply_resource_change::Response {
                new_state: Some(new_state),
                private: out.private,
                diagnostics: out.diagnostics.to_proto(),
                ..Default::default()
            },
            Err(d) => pb::apply_resource_change::Response {
                diagnostics: d.to_proto(),
                ..Default::default()
            },
        }))
    }

    async fn import_resource_state(
        &self,
        req: Request<pb::import_resource_state::Request>,
    ) -> Rpc<pb::import_resource_state::Response> {
        let req = req.into_inner();
        let out = async {
            let r = self.resource(&req.type_name)?;
            let ty = r.schema().value_type();
            let out = r.import(&req.id, self.cancel_token()).await;
            let state = encode(&out.state, &ty)?;
            Ok::<_, Diagnostics>((state, out))
        }
        .await;
        Ok(Response::new(match out {
            Ok((state, out)) => pb::import_resource_state::Response {
                imported_resources: if out.diagnostics.has_errors() || out.state.is_null() {
                    Vec::new()
                } else {
                    vec![pb::import_resource_state::ImportedResource {
                        type_name: req.type_name.clone(),
                        state: Some(state),
                        private: out.private,
                        identity: None,
                    }]
                },
                diagnostics: out.diagnostics.to_proto(),
                ..Default::default()
            },
            Err(d) => pb::import_resource_state::Response {
                diagnostics: d.to_proto(),
                ..Default::default()
            },
        }))
    }

    async fn read_data_source(
        &self,
        req: Request<pb::read_data_source::Request>,
    ) -> Rpc<pb::read_data_source::Response> {
        let req = req.into_inner();
        let deferral_allowed = req
            .client_capabilities
            .as_ref()
            .is_some_and(|c| c.deferral_allowed);
        let out = async {
            let d = self.data_source(&req.type_name)?;
            let schema = d.schema();
            let ty = schema.value_type();
            let config = decode(req.config.as_ref(), &ty, "configuration")?;
            if config.contains_unknown() {
                // Terraform defers such a read to apply itself and never sends it; a client that
                // does may take a deferral, else it is told plainly instead of read half-known.
                if deferral_allowed {
                    let planned = encode(&deferred_data_state(schema, &config), &ty)?;
                    return Ok((Some(planned), Diagnostics::default(), true));
                }
                return Err(Diagnostic::error(
                    "Data source configuration not known",
                    format!(
                        "Terraform asked to read {} while {} unknown. Terraform reads a data source \
                         once its configuration is known (at apply, when it depends on values only \
                         apply can know). This is a bug; please report it.",
                        req.type_name,
                        unknown_attributes(&config).join(", ")
                    ),
                )
                .into());
            }
            let checked = d.validate(&config);
            if checked.has_errors() {
                return Ok((None, checked, false));
            }
            let mut out = d.read(config, self.cancel_token()).await;
            let mut diagnostics = checked;
            diagnostics.extend(std::mem::take(&mut out.diagnostics));
            if !diagnostics.has_errors() && (out.state.is_null() || out.state.contains_unknown()) {
                // Terraform would refuse it as "Provider produced invalid object": say which.
                diagnostics.push(Diagnostic::error(
                    "Data source produced an incomplete value",
                    format!(
                        "{} returned {} without an error. This is a bug; please report it.",
                        req.type_name,
                        if out.state.is_null() {
                            "no value".to_string()
                        } else {
                            format!("unknown {}", unknown_attributes(&out.state).join(", "))
                        }
                    ),
                ));
                return Ok((None, diagnostics, false));
            }
            let state = if out.state.is_null() {
                None
            } else {
                Some(encode(&out.state, &ty)?)
            };
            Ok::<_, Diagnostics>((state, diagnostics, false))
        }
        .await;
        Ok(Response::new(match out {
            Ok((state, diagnostics, deferred)) => pb::read_data_source::Response {
                state,
                diagnostics: diagnostics.to_proto(),
                deferred: deferred.then_some(pb::Deferred {
                    reason: pb::deferred::Reason::ResourceConfigUnknown as i32,
                }),
            },
            Err(d) => pb::read_data_source::Response {
                diagnostics: d.to_proto(),
                ..Default::default()
            },
        }))
    }

    async fn get_functions(
        &self,
        _: Request<pb::get_functions::Request>,
    ) -> Rpc<pb::get_functions::Response> {
        Ok(Response::new(pb::get_functions::Response::default()))
    }

    async fn stop_provider(
        &self,
        _: Request<pb::stop_provider::Request>,
    ) -> Rpc<pb::stop_provider::Response> {
        // Cancel work in flight; later calls get a fresh token. The process keeps running.
        let old = std::mem::take(&mut *self.stop.lock().expect("stop lock"));
        old.cancel();
        tracing::info!("StopProvider: cancelled work in flight");
        Ok(Response::new(pb::stop_provider::Response::default()))
    }
}

fn capabilities() -> pb::ServerCapabilities {
    pb::ServerCapabilities {
        plan_destroy: false,
        get_provider_schema_optional: false,
        move_resource_state: false,
    }
}

#[cfg(test)]
mod tests;
