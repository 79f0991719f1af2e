//! Terraform values (cty) and their wire encodings: msgpack for `DynamicValue`, JSON for raw state.
//!
//! Decoding always needs the schema type: msgpack arrays may be lists, sets or tuples and maps may be
//! maps or objects. Unknown values are msgpack extensions; any extension code is accepted as unknown
//! (refined unknowns use code 12 with a payload that this provider does not need).

use std::collections::BTreeMap;
use std::fmt;

/// A cty type, as Terraform writes it in schemas (`"string"`, `["list","string"]`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `string`
    String,
    /// `number`
    Number,
    /// `bool`
    Bool,
    /// `["list", T]`
    List(Box<Type>),
    /// `["set", T]`
    Set(Box<Type>),
    /// `["map", T]`
    Map(Box<Type>),
    /// `["object", {name: T}]`
    Object(BTreeMap<String, Type>),
    /// `["tuple", [T...]]`
    Tuple(Vec<Type>),
    /// `"dynamic"`: the real type travels with the value.
    Dynamic,
}

impl Type {
    /// `["list", elem]`.
    pub fn list(elem: Type) -> Type {
        Type::List(Box::new(elem))
    }

    /// `["set", elem]`.
    pub fn set(elem: Type) -> Type {
        Type::Set(Box::new(elem))
    }

    /// `["map", elem]`.
    pub fn map(elem: Type) -> Type {
        Type::Map(Box::new(elem))
    }

    /// The type as cty's JSON type notation.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Value as J};
        match self {
            Type::String => json!("string"),
            Type::Number => json!("number"),
            Type::Bool => json!("bool"),
            Type::Dynamic => json!("dynamic"),
            Type::List(e) => json!(["list", e.to_json()]),
            Type::Set(e) => json!(["set", e.to_json()]),
            Type::Map(e) => json!(["map", e.to_json()]),
            Type::Object(attrs) => {
                let map: serde_json::Map<String, J> = attrs
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_json()))
                    .collect();
                json!(["object", J::Object(map)])
            }
            Type::Tuple(elems) => {
                json!(["tuple", J::Array(elems.iter().map(Type::to_json).collect())])
            }
        }
    }

    /// Parses cty's JSON type notation (optional-attribute markers of type constraints are ignored).
    pub fn from_json(json: &serde_json::Value) -> Result<Type, CodecError> {
        use serde_json::Value as J;
        let bad = || CodecError::new(format!("invalid type {json}"));
        match json {
            J::String(s) => match s.as_str() {
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                "dynamic" => Ok(Type::Dynamic),
                _ => Err(bad()),
            },
            J::Array(parts) if parts.len() >= 2 => {
                let kind = parts[0].as_str().ok_or_else(bad)?;
                match kind {
                    "list" => Ok(Type::list(Type::from_json(&parts[1])?)),
                    "set" => Ok(Type::set(Type::from_json(&parts[1])?)),
                    "map" => Ok(Type::map(Type::from_json(&parts[1])?)),
                    "object" => {
                        let attrs = parts[1].as_object().ok_or_else(bad)?;
                        let mut out = BTreeMap::new();
                        for (k, v) in attrs {
                            out.insert(k.clone(), Type::from_json(v)?);
                        }
                        Ok(Type::Object(out))
                    }
                    "tuple" => {
                        let elems = parts[1].as_array().ok_or_else(bad)?;
                        Ok(Type::Tuple(
                            elems
                                .iter()
                                .map(Type::from_json)
                                .collect::<Result<_, _>>()?,
                        ))
                    }
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

/// A cty number. Terraform sends numbers as msgpack ints, floats or decimal strings.
#[derive(Debug, Clone)]
pub enum Number {
    /// A whole number that fits in 64 bits.
    Int(i64),
    /// A binary floating-point number.
    Float(f64),
    /// A number too large or too precise for the others, kept as its decimal text.
    Decimal(String),
}

impl Number {
    /// Parses a decimal number as cty writes it, choosing the narrowest exact representation.
    pub fn parse(text: &str) -> Result<Number, CodecError> {
        let t = text.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Number::Int(i));
        }
        match t.parse::<f64>() {
            // Whole numbers written as floats ("1e3", "80.0") are still whole numbers.
            Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Ok(Number::Int(f as i64))
            }
            // Keep the float only when it is exact; else keep the digits.
            Ok(f) if f.is_finite() && f.to_string() == t => Ok(Number::Float(f)),
            Ok(f) if f.is_finite() => Ok(Number::Decimal(t.to_string())),
            _ => Err(CodecError::new(format!("{text:?} is not a number"))),
        }
    }

    /// The number as `i64` when it is a whole number in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            Number::Float(_) => None,
            Number::Decimal(d) => d.parse().ok(),
        }
    }

    /// The number as `f64` (possibly rounded).
    pub fn as_f64(&self) -> f64 {
        match self {
            Number::Int(i) => *i as f64,
            Number::Float(f) => *f,
            Number::Decimal(d) => d.parse().unwrap_or(f64::NAN),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            (Number::Decimal(a), Number::Decimal(b)) => a == b,
            (a, b) => match (a.as_i64(), b.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => a.as_f64() == b.as_f64(),
            },
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Decimal(d) => f.write_str(d),
        }
    }
}

/// A Terraform value. Its type comes from the schema, except inside [`Value::Dynamic`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// A null of any type.
    #[default]
    Null,
    /// A value not known until apply.
    Unknown,
    /// A string.
    String(String),
    /// A number.
    Number(Number),
    /// A bool.
    Bool(bool),
    /// A list.
    List(Vec<Value>),
    /// A set (kept in wire order).
    Set(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
    /// An object: every attribute of its type is present.
    Object(BTreeMap<String, Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A value of a `dynamic` attribute, with the concrete type it was sent with.
    Dynamic(Box<(Type, Value)>),
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// A whole-number value.
    pub fn int(i: i64) -> Value {
        Value::Number(Number::Int(i))
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True when the value or anything inside it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => {
                v.iter().any(Value::contains_unknown)
            }
            Value::Map(m) | Value::Object(m) => m.values().any(Value::contains_unknown),
            Value::Dynamic(d) => d.1.contains_unknown(),
            _ => false,
        }
    }

    /// True for [`Value::Unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// An attribute of an object (null when absent or when `self` is not an object).
    pub fn attr(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(m) => m.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// The elements, if this is a known list (or set).
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Set(items) => Some(items),
            _ => None,
        }
    }

    /// The string inside, if this is a known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside as `i64`, if this is a known whole number.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The bool inside, if known.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Elements of a list, set or tuple (empty for anything else).
    pub fn elements(&self) -> &[Value] {
        match self {
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v,
            _ => &[],
        }
    }

    /// Entries of a map or object (`None` for anything else).
    pub fn entries(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(m) | Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// The type this value implies on its own, used when it is sent as `dynamic`.
    pub fn implied_type(&self) -> Type {
        match self {
            Value::Null | Value::Unknown => Type::Dynamic,
            Value::String(_) => Type::String,
            Value::Number(_) => Type::Number,
            Value::Bool(_) => Type::Bool,
            Value::List(v) => Type::list(v.first().map_or(Type::Dynamic, Value::implied_type)),
            Value::Set(v) => Type::set(v.first().map_or(Type::Dynamic, Value::implied_type)),
            Value::Map(m) => {
                Type::map(m.values().next().map_or(Type::Dynamic, Value::implied_type))
            }
            Value::Object(m) => Type::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.implied_type()))
                    .collect(),
            ),
            Value::Tuple(v) => Type::Tuple(v.iter().map(Value::implied_type).collect()),
            Value::Dynamic(d) => d.0.clone(),
        }
    }
}

/// A value that does not match its type, or bytes that are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl CodecError {
    fn new(msg: impl Into<String>) -> CodecError {
        CodecError(msg.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

// ---------------------------------------------------------------------------------------------
// msgpack

/// Decodes a msgpack `DynamicValue` of the given type.
pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, CodecError> {
    let mut reader = bytes;
    let raw = rmpv::decode::read_value(&mut reader)
        .map_err(|e| CodecError::new(format!("invalid msgpack: {e}")))?;
    if !reader.is_empty() {
        return Err(CodecError::new("trailing bytes after msgpack value"));
    }
    from_rmpv(raw, ty, &mut Vec::new())
}

fn path_text(path: &[String]) -> String {
    if path.is_empty() {
        "value".to_string()
    } else {
        path.join("")
    }
}

fn mismatch(path: &[String], want: &str, got: &rmpv::Value) -> CodecError {
    CodecError::new(format!("{}: expected {want}, found {got}", path_text(path)))
}

fn from_rmpv(raw: rmpv::Value, ty: &Type, path: &mut Vec<String>) -> Result<Value, CodecError> {
    use rmpv::Value as R;
    match raw {
        R::Nil => return Ok(Value::Null),
        R::Ext(_, _) => return Ok(Value::Unknown),
        _ => {}
    }
    match ty {
        Type::String => match raw {
            R::String(s) => s
                .into_str()
                .map(Value::String)
                .ok_or_else(|| CodecError::new(format!("{}: invalid UTF-8", path_text(path)))),
            R::Binary(b) => String::from_utf8(b)
                .map(Value::String)
                .map_err(|_| CodecError::new(format!("{}: invalid UTF-8", path_text(path)))),
            other => Err(mismatch(path, "string", &other)),
        },
        Type::Number => match raw {
            R::Integer(i) => match i.as_i64() {
                Some(v) => Ok(Value::Number(Number::Int(v))),
                None => Ok(Value::Number(Number::Decimal(i.to_string()))),
            },
            R::F32(f) => Ok(Value::Number(Number::Float(f as f64))),
            R::F64(f) => Ok(Value::Number(Number::Float(f))),
            R::String(s) => {
                let text = s.as_str().unwrap_or_default().to_string();
                Number::parse(&text)
                    .map(Value::Number)
                    .map_err(|e| CodecError::new(format!("{}: {e}", path_text(path))))
            }
            other => Err(mismatch(path, "number", &other)),
        },
        Type::Bool => match raw {
            R::Boolean(b) => Ok(Value::Bool(b)),
            other => Err(mismatch(path, "bool", &other)),
        },
        Type::List(elem) | Type::Set(elem) => {
            let items = match raw {
                R::Array(items) => items,
                other => return Err(mismatch(path, "array", &other)),
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                path.push(format!("[{i}]"));
                out.push(from_rmpv(item, elem, path)?);
                path.pop();
            }
            Ok(if matches!(ty, Type::List(_)) {
                Value::List(out)
            } else {
                Value::Set(out)
            })
        }
        Type::Tuple(elems) => {
            let items = match raw {
                R::Array(items) if items.len() == elems.len() => items,
                other => {
                    return Err(mismatch(
                        path,
                        &format!("{}-element tuple", elems.len()),
                        &other,
                    ))
                }
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, (item, ety)) in items.into_iter().zip(elems).enumerate() {
                path.push(format!("[{i}]"));
                out.push(from_rmpv(item, ety, path)?);
                path.pop();
            }
            Ok(Value::Tuple(out))
        }
        Type::Map(elem) => {
            let entries = match raw {
                R::Map(entries) => entries,
                other => return Err(mismatch(path, "map", &other)),
            };
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = map_key(k, path)?;
                path.push(format!("[{key:?}]"));
                let value = from_rmpv(v, elem, path)?;
                path.pop();
                out.insert(key, value);
            }
            Ok(Value::Map(out))
        }
        Type::Object(attrs) => {
            let entries = match raw {
                R::Map(entries) => entries,
                other => return Err(mismatch(path, "object", &other)),
            };
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                let key = map_key(k, path)?;
                let aty = attrs.get(&key).ok_or_else(|| {
                    CodecError::new(format!("{}: unexpected attribute {key:?}", path_text(path)))
                })?;
                path.push(format!(".{key}"));
                let value = from_rmpv(v, aty, path)?;
                path.pop();
                out.insert(key, value);
            }
            // An object carries every attribute of its type; fill any the sender left out with null.
            for name in attrs.keys() {
                out.entry(name.clone()).or_insert(Value::Null);
            }
            Ok(Value::Object(out))
        }
        Type::Dynamic => {
            let items = match raw {
                R::Array(items) if items.len() == 2 => items,
                other => return Err(mismatch(path, "[type, value] pair", &other)),
            };
            let mut items = items.into_iter();
            let type_json = match items.next() {
                Some(R::Binary(b)) => b,
                Some(R::String(s)) => s.into_bytes(),
                Some(other) => return Err(mismatch(path, "type JSON", &other)),
                None => unreachable!("length checked"),
            };
            let json: serde_json::Value = serde_json::from_slice(&type_json).map_err(|e| {
                CodecError::new(format!("{}: bad dynamic type: {e}", path_text(path)))
            })?;
            let inner_ty = Type::from_json(&json)?;
            let inner = from_rmpv(items.next().expect("length checked"), &inner_ty, path)?;
            Ok(Value::Dynamic(Box::new((inner_ty, inner))))
        }
    }
}

fn map_key(raw: rmpv::Value, path: &[String]) -> Result<String, CodecError> {
    match raw {
        rmpv::Value::String(s) => s
            .into_str()
            .ok_or_else(|| CodecError::new(format!("{}: invalid UTF-8 key", path_text(path)))),
        other => Err(mismatch(path, "string key", &other)),
    }
}

/// Encodes a value of the given type as msgpack, as cty does (objects' attributes in name order,
/// whole numbers as ints, unknown as extension 0).
pub fn to_msgpack(value: &Value, ty: &Type) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    write_msgpack(&mut out, value, ty, &mut Vec::new())?;
    Ok(out)
}

fn write_msgpack(
    out: &mut Vec<u8>,
    value: &Value,
    ty: &Type,
    path: &mut Vec<String>,
) -> Result<(), CodecError> {
    use rmp::encode as enc;
    // Writing into a Vec cannot fail, so the encoder's I/O results are ignored below.
    let wrong = |want: &str, path: &[String]| {
        CodecError::new(format!(
            "{}: value {value:?} is not a {want}",
            path_text(path)
        ))
    };
    match value {
        Value::Null => {
            let _ = enc::write_nil(out);
            return Ok(());
        }
        Value::Unknown => {
            out.extend_from_slice(&[0xd4, 0, 0]);
            return Ok(());
        }
        _ => {}
    }
    match ty {
        Type::Dynamic => {
            let (inner_ty, inner) = match value {
                Value::Dynamic(d) => (d.0.clone(), &d.1),
                other => (other.implied_type(), other),
            };
            let _ = enc::write_array_len(out, 2);
            let type_json = serde_json::to_vec(&inner_ty.to_json()).expect("type JSON");
            let _ = enc::write_bin(out, &type_json);
            write_msgpack(out, inner, &inner_ty, path)
        }
        Type::String => match value {
            Value::String(s) => {
                let _ = enc::write_str(out, s);
                Ok(())
            }
            _ => Err(wrong("string", path)),
        },
        Type::Number => match value {
            Value::Number(n) => {
                match n {
                    Number::Int(i) => {
                        let _ = enc::write_sint(out, *i);
                    }
                    Number::Float(f) => match Number::Float(*f).as_i64() {
                        Some(i) if (i as f64) == *f => {
                            let _ = enc::write_sint(out, i);
                        }
                        _ => {
                            let _ = enc::write_f64(out, *f);
                        }
                    },
                    Number::Decimal(d) => {
                        let _ = enc::write_str(out, d);
                    }
                }
                Ok(())
            }
            _ => Err(wrong("number", path)),
        },
        Type::Bool => match value {
            Value::Bool(b) => {
                let _ = enc::write_bool(out, *b);
                Ok(())
            }
            _ => Err(wrong("bool", path)),
        },
        Type::List(elem) | Type::Set(elem) => match value {
            Value::List(items) | Value::Set(items) => {
                let _ = enc::write_array_len(out, items.len() as u32);
                for (i, item) in items.iter().enumerate() {
                    path.push(format!("[{i}]"));
                    write_msgpack(out, item, elem, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(wrong("list or set", path)),
        },
        Type::Tuple(elems) => match value {
            Value::Tuple(items) | Value::List(items) if items.len() == elems.len() => {
                let _ = enc::write_array_len(out, items.len() as u32);
                for (i, (item, ety)) in items.iter().zip(elems).enumerate() {
                    path.push(format!("[{i}]"));
                    write_msgpack(out, item, ety, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(wrong("tuple", path)),
        },
        Type::Map(elem) => match value {
            Value::Map(entries) | Value::Object(entries) => {
                let _ = enc::write_map_len(out, entries.len() as u32);
                for (k, v) in entries {
                    let _ = enc::write_str(out, k);
                    path.push(format!("[{k:?}]"));
                    write_msgpack(out, v, elem, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(wrong("map", path)),
        },
        Type::Object(attrs) => match value {
            Value::Object(entries) | Value::Map(entries) => {
                if let Some(extra) = entries.keys().find(|k| !attrs.contains_key(*k)) {
                    return Err(CodecError::new(format!(
                        "{}: attribute {extra:?} is not in the type",
                        path_text(path)
                    )));
                }
                let _ = enc::write_map_len(out, attrs.len() as u32);
                for (name, aty) in attrs {
                    let _ = enc::write_str(out, name);
                    path.push(format!(".{name}"));
                    write_msgpack(out, entries.get(name).unwrap_or(&Value::Null), aty, path)?;
                    path.pop();
                }
                Ok(())
            }
            _ => Err(wrong("object", path)),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// JSON (raw state in UpgradeResourceState)

/// Decodes a value of the given type from Terraform's JSON state encoding.
pub fn from_json(json: &serde_json::Value, ty: &Type) -> Result<Value, CodecError> {
    use serde_json::Value as J;
    if json.is_null() {
        return Ok(Value::Null);
    }
    let wrong = |want: &str| CodecError::new(format!("expected {want}, found {json}"));
    Ok(match ty {
        Type::String => match json {
            J::String(s) => Value::String(s.clone()),
            J::Number(n) => Value::String(n.to_string()),
            J::Bool(b) => Value::String(b.to_string()),
            _ => return Err(wrong("string")),
        },
        Type::Number => match json {
            J::Number(n) => Value::Number(Number::parse(&n.to_string())?),
            J::String(s) => Value::Number(Number::parse(s)?),
            _ => return Err(wrong("number")),
        },
        Type::Bool => match json {
            J::Bool(b) => Value::Bool(*b),
            J::String(s) if s == "true" || s == "false" => Value::Bool(s == "true"),
            _ => return Err(wrong("bool")),
        },
        Type::List(elem) | Type::Set(elem) => {
            let items = json.as_array().ok_or_else(|| wrong("array"))?;
            let vals = items
                .iter()
                .map(|i| from_json(i, elem))
                .collect::<Result<_, _>>()?;
            if matches!(ty, Type::List(_)) {
                Value::List(vals)
            } else {
                Value::Set(vals)
            }
        }
        Type::Tuple(elems) => {
            let items = json.as_array().filter(|a| a.len() == elems.len());
            let items = items.ok_or_else(|| wrong("tuple"))?;
            Value::Tuple(
                items
                    .iter()
                    .zip(elems)
                    .map(|(i, t)| from_json(i, t))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Map(elem) => {
            let obj = json.as_object().ok_or_else(|| wrong("object"))?;
            Value::Map(
                obj.iter()
                    .map(|(k, v)| Ok((k.clone(), from_json(v, elem)?)))
                    .collect::<Result<_, CodecError>>()?,
            )
        }
        Type::Object(attrs) => {
            let obj = json.as_object().ok_or_else(|| wrong("object"))?;
            // Attributes no longer in the schema are dropped; new ones start null.
            Value::Object(
                attrs
                    .iter()
                    .map(|(k, t)| {
                        Ok((
                            k.clone(),
                            obj.get(k).map_or(Ok(Value::Null), |v| from_json(v, t))?,
                        ))
                    })
                    .collect::<Result<_, CodecError>>()?,
            )
        }
        Type::Dynamic => {
            let obj = json.as_object().ok_or_else(|| wrong("{value, type}"))?;
            let inner_ty = Type::from_json(obj.get("type").ok_or_else(|| wrong("{value, type}"))?)?;
            let inner = from_json(obj.get("value").unwrap_or(&J::Null), &inner_ty)?;
            Value::Dynamic(Box::new((inner_ty, inner)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    fn roundtrip(v: &Value, ty: &Type) -> Value {
        let bytes = to_msgpack(v, ty).expect("encode");
        from_msgpack(&bytes, ty).expect("decode")
    }

    #[test]
    fn unknown_is_extension_zero_and_any_extension_decodes_as_unknown() {
        assert_eq!(
            to_msgpack(&Value::Unknown, &Type::String).unwrap(),
            vec![0xd4, 0, 0]
        );
        // A refined unknown (code 12, a map payload) from newer Terraform.
        let refined = [0xc7, 3, 0x0c, 0x81, 0x01, 0xc2];
        assert_eq!(
            from_msgpack(&refined, &Type::String).unwrap(),
            Value::Unknown
        );
        let other = [0xd4, 0x05, 0x00];
        assert_eq!(from_msgpack(&other, &Type::Number).unwrap(), Value::Unknown);
    }

    #[test]
    fn null_is_nil() {
        assert_eq!(
            to_msgpack(&Value::Null, &Type::list(Type::String)).unwrap(),
            vec![0xc0]
        );
        assert_eq!(from_msgpack(&[0xc0], &Type::Bool).unwrap(), Value::Null);
    }

    #[test]
    fn numbers_arrive_as_int_float_or_string() {
        let int = rmp_bytes(|b| rmp::encode::write_sint(b, 300).map(|_| ()).map_err(|_| ()));
        assert_eq!(from_msgpack(&int, &Type::Number).unwrap(), Value::int(300));
        let float = rmp_bytes(|b| rmp::encode::write_f64(b, 2.5).map_err(|_| ()));
        assert_eq!(
            from_msgpack(&float, &Type::Number).unwrap(),
            Value::Number(Number::Float(2.5))
        );
        let text =
            rmp_bytes(|b| rmp::encode::write_str(b, "12345678901234567890123").map_err(|_| ()));
        let Value::Number(n) = from_msgpack(&text, &Type::Number).unwrap() else {
            panic!()
        };
        assert_eq!(n.to_string(), "12345678901234567890123");
        let whole = rmp_bytes(|b| rmp::encode::write_str(b, "80").map_err(|_| ()));
        assert_eq!(from_msgpack(&whole, &Type::Number).unwrap(), Value::int(80));
        // Whole floats encode as ints, like cty.
        assert_eq!(
            to_msgpack(&Value::Number(Number::Float(3.0)), &Type::Number).unwrap(),
            vec![3]
        );
    }

    fn rmp_bytes(f: impl FnOnce(&mut Vec<u8>) -> Result<(), ()>) -> Vec<u8> {
        let mut b = Vec::new();
        f(&mut b).expect("encode");
        b
    }

    #[test]
    fn objects_encode_attributes_in_name_order_and_fill_missing_with_null() {
        let ty = Type::Object(
            [
                ("b".to_string(), Type::String),
                ("a".to_string(), Type::Bool),
            ]
            .into_iter()
            .collect(),
        );
        let bytes = to_msgpack(&obj(&[("b", Value::string("x"))]), &ty).unwrap();
        assert_eq!(bytes, vec![0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xa1, b'x']);
        let partial = [0x81, 0xa1, b'b', 0xa1, b'x'];
        assert_eq!(
            from_msgpack(&partial, &ty).unwrap(),
            obj(&[("a", Value::Null), ("b", Value::string("x"))])
        );
    }

    #[test]
    fn dynamic_values_carry_their_type() {
        let inner = Type::list(Type::String);
        let v = Value::Dynamic(Box::new((
            inner.clone(),
            Value::List(vec![Value::string("a")]),
        )));
        let bytes = to_msgpack(&v, &Type::Dynamic).unwrap();
        // [type JSON, value]
        assert_eq!(bytes[0], 0x92);
        assert_eq!(from_msgpack(&bytes, &Type::Dynamic).unwrap(), v);
        let empty = Value::Dynamic(Box::new((inner, Value::List(vec![]))));
        assert_eq!(roundtrip(&empty, &Type::Dynamic), empty);
    }

    #[test]
    fn type_json_round_trips() {
        let ty = Type::Object(
            [
                ("l".to_string(), Type::list(Type::Number)),
                (
                    "t".to_string(),
                    Type::Tuple(vec![Type::Bool, Type::Dynamic]),
                ),
                ("m".to_string(), Type::map(Type::set(Type::String))),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(Type::from_json(&ty.to_json()).unwrap(), ty);
        assert!(Type::from_json(&serde_json::json!("strung")).is_err());
    }

    #[test]
    fn mismatches_are_errors_that_say_where() {
        let ty = Type::Object([("port".to_string(), Type::Number)].into_iter().collect());
        let bad = [0x81, 0xa4, b'p', b'o', b'r', b't', 0xa1, b'x'];
        let err = from_msgpack(&bad, &ty).unwrap_err();
        assert!(err.0.contains(".port"), "{err}");
        assert!(from_msgpack(&[0x93], &Type::list(Type::String)).is_err());
        assert!(to_msgpack(&Value::Bool(true), &Type::String).is_err());
    }

    #[test]
    fn json_state_decodes_with_the_schema_type() {
        let ty = Type::Object(
            [
                ("n".to_string(), Type::Number),
                ("s".to_string(), Type::list(Type::String)),
                ("gone".to_string(), Type::Bool),
            ]
            .into_iter()
            .collect(),
        );
        let json = serde_json::json!({"n": 30, "s": ["a"], "removed": 1});
        assert_eq!(
            from_json(&json, &ty).unwrap(),
            obj(&[
                ("gone", Value::Null),
                ("n", Value::int(30)),
                ("s", Value::List(vec![Value::string("a")]))
            ])
        );
    }

    /// A type and a value of it, possibly with nulls and unknowns anywhere.
    fn typed_value() -> impl Strategy<Value = (Type, Value)> {
        let leaf = prop_oneof![
            any::<String>().prop_map(|s| (Type::String, Value::String(s))),
            any::<i64>().prop_map(|i| (Type::Number, Value::int(i))),
            (-1.0e12f64..1.0e12).prop_map(|f| (Type::Number, Value::Number(Number::Float(f)))),
            any::<bool>().prop_map(|b| (Type::Bool, Value::Bool(b))),
            Just((Type::String, Value::Null)),
            Just((Type::Number, Value::Unknown)),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                // Homogeneous collections: elements re-typed to the first element's type.
                (inner.clone(), 0usize..5)
                    .prop_map(|((ty, v), n)| { (Type::list(ty), Value::List(vec![v; n])) }),
                (inner.clone(), 0usize..4)
                    .prop_map(|((ty, v), n)| { (Type::set(ty), Value::Set(vec![v; n])) }),
                (
                    inner.clone(),
                    prop::collection::btree_set("[a-z]{1,6}", 0..4)
                )
                    .prop_map(|((ty, v), keys)| {
                        (
                            Type::map(ty),
                            Value::Map(keys.into_iter().map(|k| (k, v.clone())).collect()),
                        )
                    }),
                prop::collection::btree_map("[a-z_]{1,8}", inner.clone(), 0..5).prop_map(|attrs| {
                    let ty = Type::Object(
                        attrs
                            .iter()
                            .map(|(k, (t, _))| (k.clone(), t.clone()))
                            .collect(),
                    );
                    let v = Value::Object(attrs.into_iter().map(|(k, (_, v))| (k, v)).collect());
                    (ty, v)
                }),
                prop::collection::vec(inner.clone(), 0..4).prop_map(|items| {
                    let ty = Type::Tuple(items.iter().map(|(t, _)| t.clone()).collect());
                    (
                        ty,
                        Value::Tuple(items.into_iter().map(|(_, v)| v).collect()),
                    )
                }),
                inner.prop_map(|(ty, v)| {
                    let wrapped = if v.is_null() || v.is_unknown() {
                        v
                    } else {
                        Value::Dynamic(Box::new((ty, v)))
                    };
                    (Type::Dynamic, wrapped)
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn msgpack_round_trips((ty, v) in typed_value()) {
            prop_assert_eq!(roundtrip(&v, &ty), v);
        }

        #[test]
        fn encoding_is_deterministic((ty, v) in typed_value()) {
            prop_assert_eq!(to_msgpack(&v, &ty).unwrap(), to_msgpack(&v, &ty).unwrap());
        }

        #[test]
        fn json_state_agrees_with_msgpack((ty, v) in typed_value()) {
            // Raw state never holds unknowns; JSON has no place for them.
            prop_assume!(!v.contains_unknown());
            let json = to_json(&v);
            prop_assert_eq!(from_json(&json, &ty).unwrap(), roundtrip(&v, &ty));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = from_msgpack(&bytes, &Type::Object([("a".to_string(), Type::list(Type::Dynamic))].into_iter().collect()));
        }
    }

    /// Terraform's JSON state form of a value (test helper).
    fn to_json(v: &Value) -> serde_json::Value {
        use serde_json::json;
        match v {
            Value::Null | Value::Unknown => serde_json::Value::Null,
            Value::String(s) => json!(s),
            Value::Number(Number::Int(i)) => json!(i),
            Value::Number(Number::Float(f)) => json!(f),
            Value::Number(Number::Decimal(d)) => json!(d),
            Value::Bool(b) => json!(b),
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                serde_json::Value::Array(items.iter().map(to_json).collect())
            }
            Value::Map(m) | Value::Object(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
            }
            Value::Dynamic(d) => json!({"type": d.0.to_json(), "value": to_json(&d.1)}),
        }
    }
}
