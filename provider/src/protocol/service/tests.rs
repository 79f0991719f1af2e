//! The service's data source calls, driven through the generated gRPC trait as Terraform's client
//! would call them, with a small in-process data source that echoes its configuration.

use std::sync::atomic::{AtomicUsize, Ordering};

use pb::provider_server::Provider as _;

use super::*;
use crate::protocol::schema::{Attribute, Block};

/// `echo`: `name` (required), `label` (optional + computed: "label-<name>" when unset),
/// `length` (computed). A name of "fail" errors; "broken" returns an unknown without an error.
struct Echo {
    schema: Schema,
    reads: AtomicUsize,
}

impl Echo {
    fn new() -> Echo {
        Echo {
            schema: Schema {
                version: 0,
                block: Block {
                    description: "echoes".into(),
                    attributes: vec![
                        Attribute::new("name", Type::String, Mode::Required, "The name."),
                        Attribute::new("label", Type::String, Mode::OptionalComputed, "A label."),
                        Attribute::new("length", Type::Number, Mode::Computed, "Its length."),
                    ],
                    blocks: Vec::new(),
                },
            },
            reads: AtomicUsize::new(0),
        }
    }
}

#[tonic::async_trait]
impl DataSource for Echo {
    fn type_name(&self) -> &'static str {
        "test_echo"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match config.attr("name").as_str() {
            Some("") => Diagnostic::error("Invalid name", "The name is empty.")
                .at(AttrPath::attr("name"))
                .into(),
            _ => Diagnostics::default(),
        }
    }

    async fn read(&self, config: Value, _cancel: CancellationToken) -> ReadOutcome {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let name = config.attr("name").as_str().unwrap_or_default().to_string();
        if name == "fail" {
            return ReadOutcome {
                state: Value::Null,
                diagnostics: Diagnostic::error("No such thing", "fail never exists.").into(),
            };
        }
        let mut state = config.clone();
        if let Value::Object(attrs) = &mut state {
            if config.attr("label").is_null() {
                attrs.insert("label".into(), Value::string(format!("label-{name}")));
            }
            let length = if name == "broken" {
                Value::Unknown
            } else {
                Value::int(name.len() as i64)
            };
            attrs.insert("length".into(), length);
        }
        ReadOutcome {
            state,
            diagnostics: Diagnostics::default(),
        }
    }
}

/// A provider with no resources and, unless `bare`, the `echo` data source.
struct TestProvider {
    schema: Schema,
    echo: Option<Arc<Echo>>,
}

#[tonic::async_trait]
impl Provider for TestProvider {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        Vec::new()
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        self.echo
            .iter()
            .map(|e| e.clone() as Arc<dyn DataSource>)
            .collect()
    }

    fn validate(&self, _: &Value) -> Diagnostics {
        Diagnostics::default()
    }

    async fn configure(&self, _: Value, _: &str) -> Diagnostics {
        Diagnostics::default()
    }
}

fn service(with_echo: bool) -> (ProviderService<TestProvider>, Option<Arc<Echo>>) {
    let echo = with_echo.then(|| Arc::new(Echo::new()));
    let provider = TestProvider {
        schema: Schema {
            version: 0,
            block: Block::default(),
        },
        echo: echo.clone(),
    };
    (ProviderService::new(Arc::new(provider)), echo)
}

fn echo_type() -> Type {
    Echo::new().schema.value_type()
}

fn config(name: Value, label: Value) -> pb::DynamicValue {
    let v = Value::Object(
        [
            ("name".to_string(), name),
            ("label".to_string(), label),
            ("length".to_string(), Value::Null),
        ]
        .into(),
    );
    encode(&v, &echo_type()).expect("encode config")
}

fn read_request(config: pb::DynamicValue, deferral: bool) -> pb::read_data_source::Request {
    pb::read_data_source::Request {
        type_name: "test_echo".into(),
        config: Some(config),
        provider_meta: None,
        client_capabilities: Some(pb::ClientCapabilities {
            deferral_allowed: deferral,
            write_only_attributes_allowed: false,
        }),
    }
}

fn errors(diags: &[pb::Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .filter(|d| d.severity == pb::diagnostic::Severity::Error as i32)
        .map(|d| format!("{}: {}", d.summary, d.detail))
        .collect()
}

#[tokio::test]
async fn metadata_and_schema_list_the_data_source() {
    let (svc, _) = service(true);
    let meta = svc
        .get_metadata(Request::new(pb::get_metadata::Request {}))
        .await
        .expect("metadata")
        .into_inner();
    let names: Vec<&str> = meta
        .data_sources
        .iter()
        .map(|d| d.type_name.as_str())
        .collect();
    assert_eq!(names, ["test_echo"]);
    assert!(meta.resources.is_empty());

    let schema = svc
        .get_provider_schema(Request::new(pb::get_provider_schema::Request {}))
        .await
        .expect("schema")
        .into_inner();
    let block = schema.data_source_schemas["test_echo"]
        .block
        .as_ref()
        .expect("block");
    let flags: Vec<(&str, bool, bool, bool)> = block
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.required, a.optional, a.computed))
        .collect();
    assert_eq!(
        flags,
        [
            ("name", true, false, false),
            ("label", false, true, true),
            ("length", false, false, true)
        ]
    );
    assert!(schema.resource_schemas.is_empty());
}

#[tokio::test]
async fn validate_decodes_and_points_at_the_attribute() {
    let (svc, _) = service(true);
    let validate = |name: Value| {
        svc.validate_data_resource_config(Request::new(
            pb::validate_data_resource_config::Request {
                type_name: "test_echo".into(),
                config: Some(config(name, Value::Null)),
            },
        ))
    };
    let bad = validate(Value::string("")).await.expect("rpc").into_inner();
    assert_eq!(
        errors(&bad.diagnostics),
        ["Invalid name: The name is empty."]
    );
    assert_eq!(
        bad.diagnostics[0].attribute,
        Some(AttrPath::attr("name").to_proto())
    );
    // Validation runs before values are known: an unknown is not an error.
    let unknown = validate(Value::Unknown).await.expect("rpc").into_inner();
    assert!(unknown.diagnostics.is_empty(), "{:?}", unknown.diagnostics);
    let good = validate(Value::string("a"))
        .await
        .expect("rpc")
        .into_inner();
    assert!(good.diagnostics.is_empty());
}

#[tokio::test]
async fn an_unknown_type_name_names_what_is_offered() {
    let (svc, _) = service(true);
    let resp = svc
        .read_data_source(Request::new(pb::read_data_source::Request {
            type_name: "test_other".into(),
            ..read_request(config(Value::string("a"), Value::Null), false)
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(
        errors(&resp.diagnostics),
        ["Unknown data source \"test_other\": This provider offers: test_echo."]
    );

    let (bare, _) = service(false);
    let resp = bare
        .validate_data_resource_config(Request::new(pb::validate_data_resource_config::Request {
            type_name: "test_echo".into(),
            config: None,
        }))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(
        errors(&resp.diagnostics),
        ["Unknown data source \"test_echo\": This provider offers no data sources."]
    );
    let meta = bare
        .get_metadata(Request::new(pb::get_metadata::Request {}))
        .await
        .expect("metadata")
        .into_inner();
    assert!(meta.data_sources.is_empty());
}

#[tokio::test]
async fn a_known_configuration_is_read_and_the_state_returned() {
    let (svc, echo) = service(true);
    let resp = svc
        .read_data_source(Request::new(read_request(
            config(Value::string("abc"), Value::Null),
            true,
        )))
        .await
        .expect("rpc")
        .into_inner();
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    assert!(resp.deferred.is_none());
    let state = decode(resp.state.as_ref(), &echo_type(), "state").expect("decode state");
    assert_eq!(state.attr("name"), &Value::string("abc"));
    assert_eq!(state.attr("label"), &Value::string("label-abc"));
    assert_eq!(state.attr("length"), &Value::int(3));
    assert_eq!(echo.expect("echo").reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unknown_configuration_is_deferred_when_the_client_allows_it_and_never_read() {
    let (svc, echo) = service(true);
    let resp = svc
        .read_data_source(Request::new(read_request(
            config(Value::Unknown, Value::string("mine")),
            true,
        )))
        .await
        .expect("rpc")
        .into_inner();
    assert!(resp.diagnostics.is_empty(), "{:?}", resp.diagnostics);
    assert_eq!(
        resp.deferred.map(|d| d.reason),
        Some(pb::deferred::Reason::ResourceConfigUnknown as i32)
    );
    // As Terraform plans it: the configuration, with computed attributes left null unknown.
    let state = decode(resp.state.as_ref(), &echo_type(), "state").expect("decode state");
    assert_eq!(state.attr("name"), &Value::Unknown);
    assert_eq!(state.attr("label"), &Value::string("mine"));
    assert_eq!(state.attr("length"), &Value::Unknown);
    assert_eq!(echo.expect("echo").reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_configuration_without_deferral_is_an_error_naming_the_attribute() {
    let (svc, echo) = service(true);
    let resp = svc
        .read_data_source(Request::new(read_request(
            config(Value::Unknown, Value::Null),
            false,
        )))
        .await
        .expect("rpc")
        .into_inner();
    let errs = errors(&resp.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0],
        "Data source configuration not known: Terraform asked to read test_echo while name \
         unknown. Terraform reads a data source once its configuration is known (at apply, when \
         it depends on values only apply can know). This is a bug; please report it."
    );
    assert!(resp.deferred.is_none());
    assert!(resp.state.is_none());
    assert_eq!(echo.expect("echo").reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_invalid_configuration_is_not_read() {
    let (svc, echo) = service(true);
    let resp = svc
        .read_data_source(Request::new(read_request(
            config(Value::string(""), Value::Null),
            false,
        )))
        .await
        .expect("rpc")
        .into_inner();
    assert_eq!(
        errors(&resp.diagnostics),
        ["Invalid name: The name is empty."]
    );
    assert_eq!(echo.expect("echo").reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn read_errors_pass_through_and_an_incomplete_value_is_caught() {
    let (svc, _) = service(true);
    let read = |name: &str| {
        svc.read_data_source(Request::new(read_request(
            config(Value::string(name), Value::Null),
            false,
        )))
    };
    let failed = read("fail").await.expect("rpc").into_inner();
    assert_eq!(
        errors(&failed.diagnostics),
        ["No such thing: fail never exists."]
    );
    assert!(failed.state.is_none());

    // Terraform would refuse an unknown in a read value; the service says which attribute.
    let broken = read("broken").await.expect("rpc").into_inner();
    let errs = errors(&broken.diagnostics);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("Data source produced an incomplete value")
            && errs[0].contains("unknown length"),
        "{errs:?}"
    );
    assert!(broken.state.is_none());
}

#[test]
fn the_deferred_state_keeps_set_optional_computed_values() {
    let schema = Echo::new().schema;
    let config = Value::Object(
        [
            ("name".to_string(), Value::string("x")),
            ("label".to_string(), Value::Null),
            ("length".to_string(), Value::Null),
        ]
        .into(),
    );
    let planned = deferred_data_state(&schema, &config);
    assert_eq!(planned.attr("name"), &Value::string("x"));
    assert_eq!(planned.attr("label"), &Value::Unknown);
    assert_eq!(planned.attr("length"), &Value::Unknown);
}
