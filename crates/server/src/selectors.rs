//! `labelSelector` and `fieldSelector` query parameters, as the API server reads them.

use std::collections::BTreeMap;

use crate::cache::Entry;
use crate::resources::Resource;

#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, values: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => values.get(k) == Some(v),
            Requirement::NotEquals(k, v) => values.get(k) != Some(v),
            Requirement::In(k, vs) => values.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => values.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => values.contains_key(k),
            Requirement::DoesNotExist(k) => !values.contains_key(k),
        }
    }
}

/// Both selectors of a list or watch request.
#[derive(Debug, Default)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<(String, bool, String)>,
}

impl Selector {
    pub fn parse(
        resource: &Resource,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Selector, String> {
        let labels = match labels {
            Some(text) => parse_labels(text)?,
            None => Vec::new(),
        };
        let mut parsed = Vec::new();
        for term in fields
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{term}'; can't understand '{term}'"
                ));
            };
            let key = key.trim();
            let supported = key == "metadata.name"
                || (key == "metadata.namespace" && resource.namespaced)
                || resource.field_paths.iter().any(|(f, _)| *f == key);
            if !supported {
                return Err(format!("field label not supported: {key}"));
            }
            parsed.push((key.to_string(), equal, value.trim().to_string()));
        }
        Ok(Selector {
            labels,
            fields: parsed,
        })
    }

    pub fn matches(&self, entry: &Entry) -> bool {
        self.labels.iter().all(|r| r.matches(&entry.labels))
            && self.fields.iter().all(|(key, equal, value)| {
                let actual = entry.fields.get(key.as_str()).map_or("", String::as_str);
                (actual == value) == *equal
            })
    }
}

fn parse_labels(text: &str) -> Result<Vec<Requirement>, String> {
    let mut requirements = Vec::new();
    for term in split_terms(text) {
        let term = term.trim();
        if term.is_empty() {
            continue;
        }
        let invalid = || {
            format!("unable to parse requirement: found '{term}', expected: valid label selector")
        };
        let requirement = if let Some(key) = term.strip_prefix('!') {
            Requirement::DoesNotExist(key.trim().to_string())
        } else if let Some((k, v)) = term.split_once("!=") {
            Requirement::NotEquals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = term.split_once("==") {
            Requirement::Equals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = term.split_once('=') {
            Requirement::Equals(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, rest)) = term.split_once(" notin ") {
            Requirement::NotIn(k.trim().to_string(), set(rest).ok_or_else(invalid)?)
        } else if let Some((k, rest)) = term.split_once(" in ") {
            Requirement::In(k.trim().to_string(), set(rest).ok_or_else(invalid)?)
        } else if term
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            Requirement::Exists(term.to_string())
        } else {
            return Err(invalid());
        };
        requirements.push(requirement);
    }
    Ok(requirements)
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_as_kubectl_writes_them() {
        let pod = labels(&[("job-name", "hello"), ("tier", "batch")]);
        let check = |text: &str| parse_labels(text).unwrap().iter().all(|r| r.matches(&pod));
        assert!(check("job-name=hello"));
        assert!(check("job-name==hello,tier=batch"));
        assert!(!check("job-name!=hello"));
        assert!(check("tier in (batch, web),job-name"));
        assert!(!check("tier notin (batch)"));
        assert!(check("!missing"));
        assert!(!check("missing"));
        assert!(parse_labels("a in b").is_err());
    }
}
