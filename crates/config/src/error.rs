//! Configuration errors: every one names the file, the object and the field it is about.

use std::fmt;

/// Identifies an object in messages: `HTTPRoute gateway-conformance-infra/backend-v1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct ObjectId {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One problem found while loading or compiling a configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    /// File the object came from (`<built-in>` for the embedded default).
    pub file: Option<String>,
    pub object: Option<ObjectId>,
    /// Field path inside the object, e.g. `spec.rules[0].matches[0].path.value`.
    pub field: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            object: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn on(mut self, object: ObjectId) -> Self {
        self.object = Some(object);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All the errors (and warnings) of one load: a configuration is either entirely valid or rejected.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Diagnostics {
    pub fn error(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    pub fn warn(&mut self, e: ConfigError) {
        self.warnings.push(e);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// Returned when a configuration cannot be used; carries every error found, not just the first.
#[derive(Debug, Clone, thiserror::Error)]
#[error("configuration has {} error(s)", .diagnostics.errors.len())]
pub struct Rejected {
    pub diagnostics: Diagnostics,
}
