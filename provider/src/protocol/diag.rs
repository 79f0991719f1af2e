//! Diagnostics: errors and warnings for Terraform, each able to point at an attribute.

use tfplugin_proto::tfplugin6 as pb;

/// One step of a path into a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An attribute of an object (`attribute_name`).
    Attr(String),
    /// A map key (`element_key_string`).
    Key(String),
    /// A list or tuple index (`element_key_int`).
    Index(i64),
}

/// A path to an attribute, as Terraform shows it under a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttrPath(pub Vec<Step>);

impl AttrPath {
    /// The path to a top-level attribute.
    pub fn attr(name: &str) -> AttrPath {
        AttrPath(vec![Step::Attr(name.to_string())])
    }

    /// This path followed by an attribute.
    pub fn then_attr(mut self, name: &str) -> AttrPath {
        self.0.push(Step::Attr(name.to_string()));
        self
    }

    /// This path followed by a list index.
    pub fn index(mut self, i: usize) -> AttrPath {
        self.0.push(Step::Index(i as i64));
        self
    }

    /// This path followed by a map key.
    pub fn key(mut self, k: &str) -> AttrPath {
        self.0.push(Step::Key(k.to_string()));
        self
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::step::Selector;
        pb::AttributePath {
            steps: self
                .0
                .iter()
                .map(|s| pb::attribute_path::Step {
                    selector: Some(match s {
                        Step::Attr(n) => Selector::AttributeName(n.clone()),
                        Step::Key(k) => Selector::ElementKeyString(k.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Stops the operation.
    Error,
    /// Shown, but the operation goes on.
    Warning,
}

/// An error or warning with a one-line summary, a detail that says how to fix it, and optionally
/// the attribute it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line, shown in bold by Terraform.
    pub summary: String,
    /// What is wrong and how to fix it.
    pub detail: String,
    /// The attribute it is about, if any.
    pub attribute: Option<AttrPath>,
}

impl Diagnostic {
    /// An error about the whole request.
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            summary: summary.into(),
            detail: detail.into(),
            attribute: None,
        }
    }

    /// A warning about the whole request.
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(summary, detail)
        }
    }

    /// The same diagnostic, pointing at `path`.
    pub fn at(mut self, path: AttrPath) -> Diagnostic {
        self.attribute = Some(path);
        self
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::Diagnostic {
        pb::Diagnostic {
            severity: match self.severity {
                Severity::Error => pb::diagnostic::Severity::Error,
                Severity::Warning => pb::diagnostic::Severity::Warning,
            } as i32,
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: self.attribute.as_ref().map(AttrPath::to_proto),
        }
    }
}

/// A list of diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// True when any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// The wire form.
    pub fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}
