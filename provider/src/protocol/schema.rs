//! Schemas: what Terraform shows and checks for a provider block or a resource, plus the
//! plan-time behaviour the protocol layer applies for every resource (defaults, replacement).

use std::collections::BTreeMap;

use tfplugin_proto::tfplugin6 as pb;

use super::diag::AttrPath;
use super::value::{Type, Value};

/// Whether an attribute is set by the user, by the provider, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The user must set it.
    Required,
    /// The user may set it; null when unset (unless it has a default).
    Optional,
    /// Only the provider sets it.
    Computed,
    /// The user may set it; when unset the provider chooses (a default, or a value at apply).
    OptionalComputed,
}

/// One attribute of a block.
#[derive(Debug, Clone)]
pub struct Attribute {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Markdown description, shown in docs and by language servers.
    pub description: String,
    /// Required, optional or computed.
    pub mode: Mode,
    /// Hidden in plan output.
    pub sensitive: bool,
    /// Value planned when the user leaves it unset (needs [`Mode::OptionalComputed`]).
    pub default: Option<Value>,
    /// A change to it replaces the resource.
    pub requires_replace: bool,
}

impl Attribute {
    /// A new attribute.
    pub fn new(
        name: &'static str,
        ty: Type,
        mode: Mode,
        description: impl Into<String>,
    ) -> Attribute {
        Attribute {
            name,
            ty,
            description: description.into(),
            mode,
            sensitive: false,
            default: None,
            requires_replace: false,
        }
    }

    /// Sets a default; the attribute becomes optional + computed, so the default shows in plans.
    pub fn default(mut self, value: Value) -> Attribute {
        self.default = Some(value);
        self.mode = Mode::OptionalComputed;
        self
    }

    /// Marks it sensitive.
    pub fn sensitive(mut self) -> Attribute {
        self.sensitive = true;
        self
    }

    /// Marks it as forcing replacement when changed.
    pub fn requires_replace(mut self) -> Attribute {
        self.requires_replace = true;
        self
    }

    fn to_proto(&self) -> pb::schema::Attribute {
        let mut description = self.description.clone();
        if let Some(default) = &self.default {
            description.push_str(&format!(" Defaults to `{}`.", render_default(default)));
        }
        pb::schema::Attribute {
            name: self.name.to_string(),
            r#type: serde_json::to_vec(&self.ty.to_json()).expect("type JSON"),
            description,
            description_kind: pb::StringKind::Markdown as i32,
            required: self.mode == Mode::Required,
            optional: matches!(self.mode, Mode::Optional | Mode::OptionalComputed),
            computed: matches!(self.mode, Mode::Computed | Mode::OptionalComputed),
            sensitive: self.sensitive,
            ..Default::default()
        }
    }
}

fn render_default(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) | Value::Set(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(render_default)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Map(m) | Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k} = {}", render_default(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => "null".into(),
    }
}

/// How a nested block repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one, as an object.
    Single,
    /// A list of blocks.
    List,
}

/// A nested block (`assume_role { ... }`).
#[derive(Debug, Clone)]
pub struct NestedBlock {
    /// The block's name.
    pub name: &'static str,
    /// Its contents.
    pub block: Block,
    /// How it repeats.
    pub nesting: Nesting,
}

/// A block: attributes and nested blocks.
#[derive(Debug, Clone, Default)]
pub struct Block {
    /// Markdown description.
    pub description: String,
    /// Attributes.
    pub attributes: Vec<Attribute>,
    /// Nested blocks.
    pub blocks: Vec<NestedBlock>,
}

impl Block {
    /// The object type of this block's values.
    pub fn value_type(&self) -> Type {
        let mut attrs: BTreeMap<String, Type> = self
            .attributes
            .iter()
            .map(|a| (a.name.to_string(), a.ty.clone()))
            .collect();
        for b in &self.blocks {
            let ty = b.block.value_type();
            attrs.insert(
                b.name.to_string(),
                match b.nesting {
                    Nesting::Single => ty,
                    Nesting::List => Type::list(ty),
                },
            );
        }
        Type::Object(attrs)
    }

    /// The attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    fn to_proto(&self, version: i64) -> pb::schema::Block {
        pb::schema::Block {
            version,
            attributes: self.attributes.iter().map(Attribute::to_proto).collect(),
            block_types: self
                .blocks
                .iter()
                .map(|b| pb::schema::NestedBlock {
                    type_name: b.name.to_string(),
                    block: Some(b.block.to_proto(version)),
                    nesting: match b.nesting {
                        Nesting::Single => pb::schema::nested_block::NestingMode::Single,
                        Nesting::List => pb::schema::nested_block::NestingMode::List,
                    } as i32,
                    min_items: 0,
                    max_items: if b.nesting == Nesting::Single { 1 } else { 0 },
                })
                .collect(),
            description: self.description.clone(),
            description_kind: pb::StringKind::Markdown as i32,
            deprecated: false,
        }
    }
}

/// A versioned schema for a provider block or a resource.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Bumped when the state layout changes; older states are upgraded.
    pub version: i64,
    /// The top-level block.
    pub block: Block,
}

impl Schema {
    /// The wire form.
    pub fn to_proto(&self) -> pb::Schema {
        pb::Schema {
            version: self.version,
            block: Some(self.block.to_proto(self.version)),
        }
    }

    /// The object type of values of this schema.
    pub fn value_type(&self) -> Type {
        self.block.value_type()
    }

    /// Fills defaults into Terraform's proposed new state: an attribute with a default that the
    /// configuration leaves null is planned with its default, so the plan shows it.
    pub fn apply_defaults(&self, proposed: &mut Value, config: &Value) {
        if let Value::Object(attrs) = proposed {
            for a in &self.block.attributes {
                if let Some(default) = &a.default {
                    if config.attr(a.name).is_null() {
                        attrs.insert(a.name.to_string(), default.clone());
                    }
                }
            }
        }
    }

    /// Paths of replace-forcing attributes whose planned value differs from the prior state.
    pub fn requires_replace(&self, prior: &Value, planned: &Value) -> Vec<AttrPath> {
        if prior.is_null() {
            return Vec::new();
        }
        self.block
            .attributes
            .iter()
            .filter(|a| a.requires_replace && prior.attr(a.name) != planned.attr(a.name))
            .map(|a| AttrPath::attr(a.name))
            .collect()
    }
}
