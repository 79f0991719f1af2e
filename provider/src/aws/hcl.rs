//! Values as a user writes them in HCL, for everything users read (the `drift` attribute,
//! `analyse`, errors): `30`, `true`, `"rate(6 hours)"`, `["a", "b"]`, `{ Team = "sec" }`, and
//! `(none)` for a setting that is not set. Rust's debug formatting (`Some(30)`, `300.0`) is for
//! programmers and never reaches a user.

use std::collections::BTreeMap;

/// A value rendered as HCL.
pub trait Hcl {
    /// The value as a user would write it in a configuration.
    fn hcl(&self) -> String;
}

/// What an unset value reads as.
pub const NONE: &str = "(none)";

impl Hcl for str {
    fn hcl(&self) -> String {
        quote(self)
    }
}

impl Hcl for String {
    fn hcl(&self) -> String {
        quote(self)
    }
}

impl Hcl for bool {
    fn hcl(&self) -> String {
        self.to_string()
    }
}

impl Hcl for i32 {
    fn hcl(&self) -> String {
        self.to_string()
    }
}

impl Hcl for i64 {
    fn hcl(&self) -> String {
        self.to_string()
    }
}

impl Hcl for u16 {
    fn hcl(&self) -> String {
        self.to_string()
    }
}

impl Hcl for f64 {
    // Display, unlike Debug, writes a whole number without `.0`, as HCL does.
    fn hcl(&self) -> String {
        self.to_string()
    }
}

impl<T: Hcl + ?Sized> Hcl for &T {
    fn hcl(&self) -> String {
        (**self).hcl()
    }
}

impl<T: Hcl> Hcl for Option<T> {
    fn hcl(&self) -> String {
        self.as_ref().map_or_else(|| NONE.to_string(), Hcl::hcl)
    }
}

impl<T: Hcl> Hcl for [T] {
    fn hcl(&self) -> String {
        let items: Vec<String> = self.iter().map(Hcl::hcl).collect();
        format!("[{}]", items.join(", "))
    }
}

impl<T: Hcl> Hcl for Vec<T> {
    fn hcl(&self) -> String {
        self.as_slice().hcl()
    }
}

impl<K: AsRef<str>, V: Hcl> Hcl for BTreeMap<K, V> {
    fn hcl(&self) -> String {
        object(self.iter().map(|(k, v)| (k.as_ref(), v)))
    }
}

/// An object from key-value pairs in their order: `{ KEY = "value", "aws:key" = "v" }`.
pub fn object<'a, V: Hcl + 'a>(pairs: impl IntoIterator<Item = (&'a str, V)>) -> String {
    let items: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{} = {}", key(k), v.hcl()))
        .collect();
    if items.is_empty() {
        "{}".to_string()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// An object key: bare when it is an identifier, quoted otherwise (`"aws:createdBy"`).
fn key(k: &str) -> String {
    let mut chars = k.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if identifier {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A quoted HCL string, with HCL's escapes (template sequences included, so the text reads back
/// as itself).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_written_in_hcl() {
        assert_eq!(30_i32.hcl(), "30");
        assert_eq!(Some(1_i32).hcl(), "1");
        assert_eq!(None::<i32>.hcl(), "(none)");
        assert_eq!(300_000.0_f64.hcl(), "300000");
        assert_eq!(0.5_f64.hcl(), "0.5");
        assert_eq!(true.hcl(), "true");
        assert_eq!("rate(6 hours)".hcl(), "\"rate(6 hours)\"");
        assert_eq!(
            vec!["a".to_string(), "b".to_string()].hcl(),
            "[\"a\", \"b\"]"
        );
        assert_eq!(Vec::<String>::new().hcl(), "[]");
        let map = BTreeMap::from([("Team", "sec"), ("aws:origin", "x")]);
        assert_eq!(map.hcl(), "{ Team = \"sec\", \"aws:origin\" = \"x\" }");
        assert_eq!(BTreeMap::<String, String>::new().hcl(), "{}");
    }

    #[test]
    fn strings_are_escaped_as_hcl_escapes_them() {
        assert_eq!("say \"hi\"\n".hcl(), r#""say \"hi\"\n""#);
        assert_eq!("a\\b".hcl(), r#""a\\b""#);
        assert_eq!("${x} %{y} $z".hcl(), r#""$${x} %%{y} $z""#);
        assert_eq!("\u{1}".hcl(), r#""\u0001""#);
    }
}
