//! The `compliance_monitor` resource's typed model.
//!
//! Every configurable attribute is declared once, in the [`model!`] invocation below: its name
//! (the field), Rust type, default, check and description. The struct [`MonitorModel`], its
//! conversion from and to a Terraform value, the schema's attributes and the validation all come
//! from that one declaration; a test checks the registry docs' argument list against it.

use std::collections::BTreeMap;

use super::exemption::ExemptionBlock;
use super::schema::{DEFAULT_EXEMPT_TAG_KEY, DEFAULT_REQUIRED_TAGS, DEFAULT_RESTRICTED_PORTS};
use super::validate::checks;
use crate::protocol::diag::{AttrPath, Diagnostic, Diagnostics};
use crate::protocol::schema::{Attribute, Mode};
use crate::protocol::value::{Type, Value};

/// A Rust type an attribute holds: its Terraform type and its conversions.
pub trait Field: Sized {
    /// The Terraform type.
    fn tf_type() -> Type;
    /// The field from a known value; `None` when the value has another shape.
    fn from_value(v: &Value) -> Option<Self>;
    /// The value Terraform holds for the field.
    fn to_value(&self) -> Value;
}

impl Field for String {
    fn tf_type() -> Type {
        Type::String
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_str().map(str::to_string)
    }
    fn to_value(&self) -> Value {
        Value::string(self)
    }
}

impl Field for bool {
    fn tf_type() -> Type {
        Type::Bool
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_bool()
    }
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}

impl Field for i32 {
    fn tf_type() -> Type {
        Type::Number
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_i64().and_then(|n| i32::try_from(n).ok())
    }
    fn to_value(&self) -> Value {
        Value::int((*self).into())
    }
}

impl Field for u16 {
    fn tf_type() -> Type {
        Type::Number
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.as_i64().and_then(|n| u16::try_from(n).ok())
    }
    fn to_value(&self) -> Value {
        Value::int((*self).into())
    }
}

impl<T: Field> Field for Vec<T> {
    fn tf_type() -> Type {
        Type::list(T::tf_type())
    }
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::List(items) => items.iter().map(T::from_value).collect(),
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::List(self.iter().map(Field::to_value).collect())
    }
}

impl<T: Field> Field for BTreeMap<String, T> {
    fn tf_type() -> Type {
        Type::map(T::tf_type())
    }
    fn from_value(v: &Value) -> Option<Self> {
        v.entries()?
            .iter()
            .map(|(k, v)| Some((k.clone(), T::from_value(v)?)))
            .collect()
    }
    fn to_value(&self) -> Value {
        Value::Map(
            self.iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
}

/// An optional attribute without a default: null when unset, kept apart from an empty value so
/// a state holds exactly what the plan did.
impl<T: Field> Field for Option<T> {
    fn tf_type() -> Type {
        T::tf_type()
    }
    fn from_value(v: &Value) -> Option<Self> {
        if v.is_null() {
            Some(None)
        } else {
            T::from_value(v).map(Some)
        }
    }
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Field::to_value)
    }
}

/// What a check reports: the path of the offending value (the attribute, or an element of it)
/// and what is wrong with how to fix it.
pub type Problems = Vec<(AttrPath, String)>;

/// A check of one attribute's known, non-null value.
pub type Check = fn(&Value, &AttrPath) -> Problems;

/// One attribute as declared: everything the schema, the docs and validation need.
#[derive(Debug, Clone)]
pub struct AttrDef {
    /// The name, as users write it.
    pub name: &'static str,
    /// The Terraform type.
    pub ty: Type,
    /// Required or optional.
    pub mode: Mode,
    /// The value planned when unset.
    pub default: Option<Value>,
    /// A change replaces the stack.
    pub replaces: bool,
    /// The description shown in docs and by language servers.
    pub doc: &'static str,
    /// The check run at validate.
    pub check: Option<Check>,
    /// A nested block (`exemption { ... }`), not an attribute.
    pub block: bool,
}

impl AttrDef {
    fn new(name: &'static str, ty: Type, doc: &'static str) -> AttrDef {
        AttrDef {
            name,
            ty,
            mode: Mode::Optional,
            default: None,
            replaces: false,
            doc,
            check: None,
            block: false,
        }
    }

    /// The schema attribute.
    pub fn attribute(&self) -> Attribute {
        let mut a = Attribute::new(self.name, self.ty.clone(), self.mode, self.doc);
        if let Some(d) = &self.default {
            a = a.default(d.clone());
        }
        if self.replaces {
            a = a.requires_replace();
        }
        a
    }

    /// The check's problems as diagnostics at their paths; unknown and null values pass.
    pub fn validate(&self, config: &Value) -> Diagnostics {
        let v = config.attr(self.name);
        let mut d = Diagnostics::default();
        if v.is_null() || v.is_unknown() {
            return d;
        }
        let Some(check) = self.check else {
            return d;
        };
        for (path, detail) in check(v, &AttrPath::attr(self.name)) {
            d.push(Diagnostic::error(format!("Invalid {}", self.name), detail).at(path));
        }
        d
    }
}

/// Declares the model: for each attribute a doc line, `name: Type`, and its settings among
/// `required`, `computed` (optional; when unset the provider plans the value), `replaces`,
/// `default = <value of Type>`, `check = <fn(&Value, &AttrPath) -> Problems>`.
macro_rules! model {
    ($(
        #[doc = $doc:literal]
        $name:ident : $ty:ty { $($key:ident $(= $val:expr)?),* $(,)? }
    )*) => {
        /// The resource's configuration, typed: built once from a known config, plan or state
        /// value, and used by plan, apply, import and `analyse`.
        #[derive(Debug, Clone, PartialEq)]
        pub struct MonitorModel {
            $(
                #[doc = $doc]
                pub $name: $ty,
            )*
        }

        /// Every configurable attribute, in schema order.
        pub fn attributes() -> Vec<AttrDef> {
            vec![$({
                #[allow(unused_mut)]
                let mut def = AttrDef::new(
                    stringify!($name),
                    <$ty as Field>::tf_type(),
                    $doc.trim(),
                );
                $( model!(@set def, $ty, $key $(= $val)?); )*
                def
            }),*]
        }

        impl MonitorModel {
            /// The model of a known value (a validated config, a plan or a state); an unset
            /// attribute takes its default. An error names the attribute.
            pub fn from_value(v: &Value) -> Result<MonitorModel, String> {
                let defs = attributes();
                let def = |name: &str| defs.iter().find(|d| d.name == name).expect("declared");
                Ok(MonitorModel {
                    $( $name: field(v, def(stringify!($name)))?, )*
                })
            }

            /// The configurable attributes as an object value (computed ones are the caller's).
            pub fn to_value(&self) -> Value {
                Value::Object(BTreeMap::from([
                    $( (stringify!($name).to_string(), Field::to_value(&self.$name)), )*
                ]))
            }
        }
    };
    (@set $def:ident, $ty:ty, required) => { $def.mode = Mode::Required; };
    (@set $def:ident, $ty:ty, replaces) => { $def.replaces = true; };
    (@set $def:ident, $ty:ty, computed) => { $def.mode = Mode::OptionalComputed; };
    (@set $def:ident, $ty:ty, block) => { $def.block = true; };
    (@set $def:ident, $ty:ty, default = $val:expr) => {
        $def.default = Some(Field::to_value(&{ let v: $ty = $val; v }));
    };
    (@set $def:ident, $ty:ty, check = $val:expr) => { $def.check = Some($val); };
}

/// One field from `v`, or its default when unset.
fn field<T: Field>(v: &Value, def: &AttrDef) -> Result<T, String> {
    let raw = v.attr(def.name);
    if raw.is_unknown() || raw.contains_unknown() {
        return Err(format!("{} is not known yet", def.name));
    }
    let raw = match (raw, &def.default) {
        (Value::Null, Some(default)) => default,
        (Value::Null, None) if def.mode == Mode::Required => {
            return Err(format!("{} is not set", def.name))
        }
        _ => raw,
    };
    T::from_value(raw).ok_or_else(|| format!("{} is not a valid {:?}", def.name, def.ty))
}

model! {
    /// Suffix of every resource name (`compliance-results-<suffix>`, ...), so stacks live side by side. Lowercase letters, digits and hyphens, at most 44 characters. Changing it replaces the stack.
    environment_suffix: String { required, replaces, check = checks::suffix }
    /// Name of the S3 bucket that holds scan results and reports. Default: `compliance-results-<suffix>`. Bucket names are global across AWS accounts, so a name another account holds cannot be used: set another here. Changing it replaces the stack.
    bucket_name: Option<String> { computed, replaces, check = checks::bucket_name }
    /// Let a destroy or replacement delete the results bucket with every stored result and report (the compliance history). With `false`, a destroy or replacement whose bucket holds objects fails before anything is deleted. As in `aws_s3_bucket`, set it to `true` and apply before the destroy that should delete the history.
    force_destroy: bool { default = false }
    /// E-mail address subscribed to the alert topic.
    alert_email: String { default = "compliance-team@example.com".into(), check = checks::email }
    /// Tag keys every EC2 instance must carry with a non-blank value (case-sensitive).
    required_tags: Vec<String> {
        default = DEFAULT_REQUIRED_TAGS.iter().map(|t| t.to_string()).collect(),
        check = checks::required_tags,
    }
    /// Ports that must not be open to `0.0.0.0/0` or `::/0` over TCP or UDP.
    restricted_ports: Vec<u16> {
        default = DEFAULT_RESTRICTED_PORTS.iter().filter_map(|p| u16::try_from(*p).ok()).collect(),
        check = checks::ports,
    }
    /// Tag key that exempts an instance when its value is `true` (any case).
    exempt_tag_key: String { default = DEFAULT_EXEMPT_TAG_KEY.into(), check = checks::tag_key }
    /// EventBridge schedule of the scanner.
    scan_schedule: String { default = "rate(6 hours)".into(), check = checks::schedule }
    /// EventBridge schedule of the daily reporter.
    report_schedule: String { default = "cron(0 0 * * ? *)".into(), check = checks::schedule }
    /// Retention of both functions' log groups, one of CloudWatch Logs' accepted values.
    log_retention_days: i32 { default = 30, check = checks::retention }
    /// Days after which results move to S3 Glacier (they are never expired).
    glacier_transition_days: i32 { default = 90, check = checks::glacier_days }
    /// Memory of both functions, in MB (128-10240).
    lambda_memory_mb: i32 { default = 256, check = checks::memory }
    /// Timeout of both functions, in seconds (1-900); the duration alarms fire at this limit.
    lambda_timeout_seconds: i32 { default = 300, check = checks::timeout }
    /// Tags for every piece of the stack, on top of the provider's `default_tags` and the stack's own (`ManagedBy`, `ComplianceStack`).
    tags: Option<BTreeMap<String, String>> { check = checks::tags }
    /// Regions to scan, in every scanned account: region names, or `["*"]` for every region enabled in each account (DescribeRegions at scan time). Default: the provider's region.
    scan_regions: Option<Vec<String>> { check = checks::scan_regions }
    /// 12-digit ids of member accounts to scan besides this one, each through the role `member_role_name`.
    member_accounts: Option<Vec<String>> { check = checks::member_accounts }
    /// Scan every active account of the AWS Organization (listed at scan time with ListAccounts, from the management or a delegated administrator account) besides this one.
    organization_accounts: bool { default = false }
    /// Name of the role the scanner assumes in each member account.
    member_role_name: String { default = "ComplianceScannerMember".into(), check = checks::role_name }
    /// External id the member roles' trust policies require, if any.
    member_external_id: Option<String> { check = checks::external_id }
    /// Most (account, region) pairs the scanner reads at once.
    scan_concurrency: i32 { default = 8, check = checks::concurrency }
    /// React to changes within a minute: an EventBridge rule sends instance launches, tag changes and security-group changes to an SQS queue (with a dead-letter queue) that the scanner reads in batches, and the scanner judges only the changed resources.
    event_driven: bool { default = true }
    /// Exemptions, each with the resources it covers, the checks it waives, a reason, an owner and an expiry (see below).
    exemption: Vec<ExemptionBlock> { block, default = Vec::new() }
    /// Longest an exemption may run: its `expires` is at most this many days after the day it is validated.
    max_exemption_days: i32 { default = 365, check = checks::exemption_days }
}

impl MonitorModel {
    /// The model with every default, for `suffix`: what an import starts from.
    pub fn defaults(suffix: &str) -> MonitorModel {
        let v = Value::Object(BTreeMap::from([(
            "environment_suffix".to_string(),
            Value::string(suffix),
        )]));
        MonitorModel::from_value(&v).expect("every other attribute has a default")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn defaults_round_trip_through_a_value() {
        let m = MonitorModel::defaults("dev");
        assert_eq!(m.environment_suffix, "dev");
        assert_eq!(m.lambda_timeout_seconds, 300);
        assert_eq!(m.restricted_ports.len(), 16);
        assert_eq!(m.tags, None);
        assert_eq!(MonitorModel::from_value(&m.to_value()), Ok(m));
    }

    #[test]
    fn a_missing_required_or_mistyped_attribute_is_an_error_naming_it() {
        let e = MonitorModel::from_value(&Value::Object(BTreeMap::new())).unwrap_err();
        assert!(e.contains("environment_suffix"), "{e}");
        let mut v = MonitorModel::defaults("dev").to_value();
        if let Value::Object(attrs) = &mut v {
            attrs.insert("lambda_memory_mb".into(), Value::string("lots"));
        }
        let e = MonitorModel::from_value(&v).unwrap_err();
        assert!(e.contains("lambda_memory_mb"), "{e}");
    }

    #[test]
    fn every_declared_attribute_is_in_the_value_and_the_schema_once() {
        let names: Vec<&str> = attributes().iter().map(|d| d.name).collect();
        let unique: BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        let Value::Object(attrs) = MonitorModel::defaults("x").to_value() else {
            panic!("an object")
        };
        assert_eq!(
            attrs.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            names.iter().copied().collect()
        );
    }

    /// The registry docs' argument and attribute lists agree with the schema: every attribute
    /// documented once with its type, "required" when it is, and its default as written in HCL;
    /// nothing documented that the schema lacks.
    #[test]
    fn the_registry_docs_match_the_schema() {
        let docs = include_str!("../../../docs/resources/compliance_monitor.md");
        let section = |title: &str| -> String {
            let start = docs
                .find(title)
                .unwrap_or_else(|| panic!("no {title:?} in the docs"));
            let rest = &docs[start + title.len()..];
            rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
        };
        // Each bullet, its lines joined, with the names it opens with (`a`, `b`, ...).
        let bullets = |text: &str| -> Vec<(Vec<String>, String)> {
            let mut joined: Vec<String> = Vec::new();
            for line in text.lines() {
                if let Some(item) = line.strip_prefix("- ") {
                    joined.push(item.to_string());
                } else if let Some(last) = joined.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
            }
            joined
                .into_iter()
                .map(|item| {
                    let mut names = Vec::new();
                    let mut rest = item.as_str();
                    while let Some(after) = rest.strip_prefix('`') {
                        let Some((name, tail)) = after.split_once('`') else {
                            break;
                        };
                        names.push(name.to_string());
                        rest = tail.strip_prefix(", ").unwrap_or("");
                    }
                    (names, item)
                })
                .collect()
        };
        let type_name = |t: &Type| match t {
            Type::String => "String".to_string(),
            Type::Number => "Number".to_string(),
            Type::Bool => "Bool".to_string(),
            Type::List(e) if **e == Type::String => "List of String".into(),
            Type::List(e) if **e == Type::Number => "List of Number".into(),
            Type::Map(e) if **e == Type::String => "Map of String".into(),
            other => panic!("no docs name for {other:?}"),
        };
        let hcl = |v: &Value| -> String {
            match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::List(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| match i {
                            Value::String(s) => format!("{s:?}"),
                            Value::Number(n) => n.to_string(),
                            other => panic!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                other => panic!("no HCL rendering for {other:?}"),
            }
        };
        let arguments = bullets(&section("## Argument reference"));
        let defs = attributes();
        for def in &defs {
            let found: Vec<&String> = arguments
                .iter()
                .filter(|(names, _)| names.first().map(String::as_str) == Some(def.name))
                .map(|(_, text)| text)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "{} documented {} times",
                def.name,
                found.len()
            );
            let text = found[0];
            if def.block {
                assert!(text.contains("(Block List"), "{}: {text}", def.name);
                continue;
            }
            let kind = format!("({}", type_name(&def.ty));
            assert!(
                text.contains(&kind),
                "{}: the docs do not say {kind:?}: {text}",
                def.name
            );
            assert_eq!(
                text.contains(", required)"),
                def.mode == Mode::Required,
                "{}: required or not: {text}",
                def.name
            );
            if let Some(default) = &def.default {
                let want = format!("Default `{}`", hcl(default));
                assert!(
                    text.contains(&want),
                    "{}: the docs do not say {want}: {text}",
                    def.name
                );
            }
        }
        for (names, _) in &arguments {
            for name in names {
                assert!(
                    defs.iter().any(|d| d.name == name),
                    "the docs describe {name}, which the schema lacks"
                );
            }
        }
        let computed: BTreeSet<String> = bullets(&section("## Attribute reference"))
            .into_iter()
            .flat_map(|(names, _)| names)
            .collect();
        let schema = crate::monitor::schema::resource_schema();
        let want: BTreeSet<String> = schema
            .block
            .attributes
            .iter()
            .filter(|a| a.mode == Mode::Computed)
            .map(|a| a.name.to_string())
            .collect();
        assert_eq!(
            computed, want,
            "computed attributes in the docs vs the schema"
        );
    }
}
