//! Field errors rendered the way apimachinery's `field.Error` renders them, so joblet's
//! validation messages read exactly as the API server's.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `Required value[: detail]`
    Required(String),
    /// `Invalid value: <value>: detail` (value already rendered: ints bare, strings quoted,
    /// lists and objects as JSON), or `Invalid value: detail` when no value is shown.
    Invalid {
        value: Option<String>,
        detail: String,
    },
    /// `Unsupported value: "<value>": supported values: "A", "B"`
    NotSupported {
        value: String,
        supported: &'static [&'static str],
    },
    /// `Duplicate value: <value>`
    Duplicate(String),
    /// `Not found: <value>`
    NotFound(String),
    /// `Too many: <n>: must have at most <max> items`
    TooMany { count: usize, max: usize },
    /// `Forbidden: detail`
    Forbidden(String),
    /// `Too long: must have at most <max> bytes` (the value is never shown)
    TooLong { max: usize },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    /// What joblet's node cannot run (a volume kind, an image's entrypoint on the host), not
    /// an upstream rule: a cluster's nodes have no such limit, so a run there drops it.
    pub node_limit: bool,
}

impl FieldError {
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::Required(detail.into()),
        }
    }

    pub fn invalid(path: impl Into<String>, value: impl fmt::Display, detail: &str) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::Invalid {
                value: Some(value.to_string()),
                detail: detail.to_string(),
            },
        }
    }

    pub fn invalid_str(path: impl Into<String>, value: &str, detail: &str) -> Self {
        Self::invalid(path, go_quote(value), detail)
    }

    pub fn invalid_no_value(path: impl Into<String>, detail: &str) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::Invalid {
                value: None,
                detail: detail.to_string(),
            },
        }
    }

    pub fn not_supported(
        path: impl Into<String>,
        value: &str,
        supported: &'static [&'static str],
    ) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::NotSupported {
                value: value.to_string(),
                supported,
            },
        }
    }

    pub fn not_found(path: impl Into<String>, value: impl fmt::Display) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::NotFound(value.to_string()),
        }
    }

    pub fn duplicate(path: impl Into<String>, value: impl fmt::Display) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::Duplicate(value.to_string()),
        }
    }

    pub fn too_many(path: impl Into<String>, count: usize, max: usize) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::TooMany { count, max },
        }
    }

    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            node_limit: false,
            kind: FieldErrorKind::Forbidden(detail.into()),
        }
    }

    /// Marks what joblet's node cannot run, which a cluster's node can.
    pub fn node_limit(mut self) -> Self {
        self.node_limit = true;
        self
    }

    /// The upstream error type name (`FieldValueInvalid` and so on) for `Status` causes.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Required(_) => "FieldValueRequired",
            FieldErrorKind::Invalid { .. } => "FieldValueInvalid",
            FieldErrorKind::NotSupported { .. } => "FieldValueNotSupported",
            FieldErrorKind::Duplicate(_) => "FieldValueDuplicate",
            FieldErrorKind::NotFound(_) => "FieldValueNotFound",
            FieldErrorKind::TooMany { .. } => "FieldValueTooMany",
            FieldErrorKind::Forbidden(_) => "FieldValueForbidden",
            FieldErrorKind::TooLong { .. } => "FieldValueTooLong",
        }
    }
}

/// A string as Go's `%q` writes it (what `field.Invalid` shows): control characters as
/// `\n`, `\t` or `\x00`, printable text as it is.
pub fn go_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.kind {
            FieldErrorKind::Required(detail) if detail.is_empty() => f.write_str("Required value"),
            FieldErrorKind::Required(detail) => write!(f, "Required value: {detail}"),
            FieldErrorKind::Invalid {
                value: Some(value),
                detail,
            } => write!(f, "Invalid value: {value}: {detail}"),
            FieldErrorKind::Invalid {
                value: None,
                detail,
            } => write!(f, "Invalid value: {detail}"),
            FieldErrorKind::NotSupported { value, supported } => {
                let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
                write!(
                    f,
                    "Unsupported value: {value:?}: supported values: {}",
                    list.join(", ")
                )
            }
            FieldErrorKind::Duplicate(value) => write!(f, "Duplicate value: {value}"),
            FieldErrorKind::NotFound(value) => write!(f, "Not found: {value}"),
            FieldErrorKind::TooMany { count, max } => {
                write!(f, "Too many: {count}: must have at most {max} items")
            }
            FieldErrorKind::Forbidden(detail) => write!(f, "Forbidden: {detail}"),
            FieldErrorKind::TooLong { max } => {
                write!(f, "Too long: must have at most {max} bytes")
            }
        }
    }
}

/// All validation errors of one object, rendered as the API server's `Invalid` message:
/// `Job.batch "x" is invalid: <err>` or `... is invalid: [<err>, <err>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub kind: &'static str,
    pub name: String,
    pub errors: Vec<FieldError>,
}

impl Invalid {
    /// `Ok` without errors, else the object's `Invalid`.
    pub fn check(kind: &'static str, name: &str, errors: Vec<FieldError>) -> Result<(), Invalid> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                kind,
                name: name.to_string(),
                errors,
            })
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} is invalid: ", self.kind, self.name)?;
        match self.errors.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                let rendered: Vec<String> = many.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", rendered.join(", "))
            }
        }
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_apimachinery() {
        assert_eq!(
            FieldError::required("spec.completions", "when completion mode is Indexed").to_string(),
            "spec.completions: Required value: when completion mode is Indexed"
        );
        assert_eq!(
            FieldError::required("spec.selector", "").to_string(),
            "spec.selector: Required value"
        );
        assert_eq!(
            FieldError::not_supported("spec.x", "Bad", &["A", "B"]).to_string(),
            "spec.x: Unsupported value: \"Bad\": supported values: \"A\", \"B\""
        );
        let invalid = Invalid {
            kind: "Job.batch",
            name: "pi".into(),
            errors: vec![
                FieldError::invalid("spec.parallelism", -1, "must be greater than or equal to 0"),
                FieldError::too_many("spec.podFailurePolicy.rules", 21, 20),
            ],
        };
        assert_eq!(
            invalid.to_string(),
            "Job.batch \"pi\" is invalid: [spec.parallelism: Invalid value: -1: must be greater than or equal to 0, spec.podFailurePolicy.rules: Too many: 21: must have at most 20 items]"
        );
    }
}
