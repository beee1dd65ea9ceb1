//! `labelSelector` and `fieldSelector` query parameters, as the API server reads them.

use std::collections::BTreeMap;

use crate::cache::{Entry, Filter};
use crate::resources::Resource;

#[derive(Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    fn matches(&self, values: &BTreeMap<String, String>) -> bool {
        let number = |k: &str| values.get(k).and_then(|v| v.parse::<i64>().ok());
        match self {
            Requirement::Equals(k, v) => values.get(k) == Some(v),
            Requirement::NotEquals(k, v) => values.get(k) != Some(v),
            Requirement::In(k, vs) => values.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => values.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => values.contains_key(k),
            Requirement::DoesNotExist(k) => !values.contains_key(k),
            Requirement::GreaterThan(k, n) => number(k).is_some_and(|v| v > *n),
            Requirement::LessThan(k, n) => number(k).is_some_and(|v| v < *n),
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
        let fields = fields.unwrap_or("");
        for term in split_field_terms(fields) {
            if term.is_empty() {
                continue;
            }
            let Some((key, equal, value)) = split_field_term(term) else {
                return Err(format!(
                    "invalid selector: '{fields}'; can't understand '{term}'"
                ));
            };
            let value = unescape_field_value(value)?;
            let supported = key == "metadata.name"
                || (key == "metadata.namespace" && resource.namespaced)
                || resource.field_paths.iter().any(|(f, _)| *f == key);
            if !supported {
                return Err(format!("field label not supported: {key}"));
            }
            parsed.push((key.to_string(), equal, value));
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

impl Filter for &Selector {
    fn keep(&self, entry: &Entry) -> bool {
        self.matches(entry)
    }

    fn required_label(&self) -> Option<(&str, &str)> {
        self.labels.iter().find_map(|r| match r {
            Requirement::Equals(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }
}

/// The terms of a field selector: commas split them unless escaped (`\,`).
fn split_field_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

/// A field term's key, whether it asks for equality, and its (escaped) value: split at the
/// first operator, `!=` and `==` before `=`.
fn split_field_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (operator, equal) in [("!=", false), ("==", true), ("=", true)] {
            if let Some(value) = rest.strip_prefix(operator) {
                return Some((&term[..i], equal, value));
            }
        }
    }
    None
}

/// A field selector value without its escapes; `,` and `=` must be escaped, and only
/// `\\`, `\,` and `\=` are escapes (apimachinery's `UnescapeValue`, with its messages).
fn unescape_field_value(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Go prints the rune as its number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ))
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// The label selector language, as apimachinery's lexer and parser read it
/// (`labels.Parse`), with its error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(text: &str) -> Option<Token> {
    Some(match text {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_special(b: u8) -> bool {
    b"=!(),><".contains(&b)
}

fn is_space(b: u8) -> bool {
    b" \t\r\n".contains(&b)
}

/// Every token of `text` and its literal, ending with [`Token::End`].
fn lex(text: &str) -> Vec<(Token, String)> {
    let bytes = text.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            items.push((Token::End, String::new()));
            return items;
        }
        if is_special(bytes[i]) {
            let start = i;
            let mut last: Option<(Token, usize)> = None;
            while i < bytes.len() && is_special(bytes[i]) {
                match keyword(&text[start..=i]) {
                    Some(token) => last = Some((token, i + 1)),
                    None if last.is_some() => break,
                    None => {}
                }
                i += 1;
            }
            match last {
                Some((token, end)) => {
                    items.push((token, text[start..end].to_string()));
                    i = end;
                }
                None => items.push((
                    Token::Error,
                    format!("error expected: keyword found '{}'", &text[start..i]),
                )),
            }
        } else {
            let start = i;
            while i < bytes.len() && !is_special(bytes[i]) && !is_space(bytes[i]) {
                i += 1;
            }
            let literal = &text[start..i];
            items.push((
                keyword(literal).unwrap_or(Token::Identifier),
                literal.to_string(),
            ));
        }
    }
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    /// The current token; in a place for values, `in` and `notin` are plain words.
    fn lookahead(&self, values: bool) -> (Token, String) {
        let (token, literal) = self.items[self.position.min(self.items.len() - 1)].clone();
        (as_value(token, values), literal)
    }

    fn consume(&mut self, values: bool) -> (Token, String) {
        let item = self.lookahead(values);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(true);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(true);
                    match token {
                        Token::End => return Ok(requirements),
                        Token::Comma => {
                            let (next, literal) = self.lookahead(true);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ))
                        }
                    }
                }
                Token::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut token, mut key) = self.consume(true);
        let negated = token == Token::DoesNotExist;
        if negated {
            (token, key) = self.consume(true);
        }
        if token != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let errors = joblet_api::names::qualified_name_errors(&key);
        if !errors.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                joblet_api::field::go_quote(&key),
                errors.join("; ")
            ));
        }
        let (next, _) = self.lookahead(true);
        if next == Token::End || next == Token::Comma {
            return Ok(if negated {
                Requirement::DoesNotExist(key)
            } else {
                Requirement::Exists(key)
            });
        }
        let (operator, literal) = self.consume(false);
        let values = match operator {
            Token::In | Token::NotIn => self.set()?,
            Token::Equals
            | Token::DoubleEquals
            | Token::NotEquals
            | Token::GreaterThan
            | Token::LessThan => vec![self.exact_value()?],
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        };
        check_values(operator, &key, &values)?;
        let one = || values[0].clone();
        let number = || values[0].parse::<i64>().unwrap_or_default();
        Ok(match operator {
            Token::In => Requirement::In(key, values),
            Token::NotIn => Requirement::NotIn(key, values),
            Token::NotEquals => Requirement::NotEquals(key, one()),
            Token::GreaterThan => Requirement::GreaterThan(key, number()),
            Token::LessThan => Requirement::LessThan(key, number()),
            _ => Requirement::Equals(key, one()),
        })
    }

    /// `(a, b, ...)`; empty members are the empty value.
    fn set(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(true);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(true);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.identifiers()?;
                if self.consume(true).0 != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(true);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut values = std::collections::BTreeSet::new();
        loop {
            let (token, literal) = self.consume(true);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (next, literal) = self.lookahead(true);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values.into_iter().collect()),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.lookahead(true);
                    if next == Token::ClosedPar || next == Token::Comma {
                        values.insert(String::new());
                    }
                    if next == Token::ClosedPar {
                        return Ok(values.into_iter().collect());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<String, String> {
        let (token, _) = self.lookahead(true);
        if token == Token::End || token == Token::Comma {
            return Ok(String::new());
        }
        let (token, literal) = self.consume(true);
        if token == Token::Identifier {
            Ok(literal)
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

fn as_value(token: Token, values: bool) -> Token {
    match token {
        Token::In | Token::NotIn if values => Token::Identifier,
        other => other,
    }
}

/// apimachinery's `NewRequirement` checks of the values.
fn check_values(operator: Token, key: &str, values: &[String]) -> Result<(), String> {
    let mut errors = Vec::new();
    if matches!(operator, Token::GreaterThan | Token::LessThan) {
        for (i, value) in values.iter().enumerate() {
            if value.parse::<i64>().is_err() {
                errors.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    joblet_api::field::go_quote(value)
                ));
            }
        }
    }
    for (i, value) in values.iter().enumerate() {
        let problems = joblet_api::names::label_value_errors(value);
        if !problems.is_empty() {
            errors.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                joblet_api::field::go_quote(value),
                problems.join("; ")
            ));
        }
    }
    match errors.as_slice() {
        [] => Ok(()),
        [one] => Err(one.clone()),
        many => Err(format!("[{}]", many.join(", "))),
    }
}

/// A lexing error is a token the parser finds where it expects another, so it is reported
/// in the parser's words, as upstream reports it.
fn parse_labels(text: &str) -> Result<Vec<Requirement>, String> {
    Parser {
        items: lex(text),
        position: 0,
    }
    .parse()
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
        assert!(check("tier in (in, batch)"), "in is a value inside a set");
        let numbered = labels(&[("replicas", "3")]);
        let numbers = |text: &str| {
            parse_labels(text)
                .unwrap()
                .iter()
                .all(|r| r.matches(&numbered))
        };
        assert!(numbers("replicas>2") && numbers("replicas<4") && !numbers("replicas>3"));
    }

    #[test]
    fn malformed_label_selectors_get_upstreams_messages() {
        let error = |text: &str| parse_labels(text).unwrap_err();
        assert_eq!(
            error("a==b==c"),
            "found '==', expected: ',' or 'end of string'"
        );
        assert_eq!(
            error(&format!("{}=x", "k".repeat(300))),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{}\": name part must be no more than 63 characters",
                "k".repeat(300)
            )
        );
        assert_eq!(error("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            error("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            error("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            error("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(error("a=b c").starts_with("found 'c'"));
    }

    #[test]
    fn field_selector_values_are_escaped_as_upstream_escapes_them() {
        assert_eq!(split_field_terms("a=x\\,y,b=z"), ["a=x\\,y", "b=z"]);
        assert_eq!(split_field_term("a!=b"), Some(("a", false, "b")));
        assert_eq!(split_field_term("a==b"), Some(("a", true, "b")));
        assert_eq!(unescape_field_value("x\\,y\\=z\\\\").unwrap(), "x,y=z\\");
        assert_eq!(
            unescape_field_value("a=b").unwrap_err(),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            unescape_field_value("a\\b").unwrap_err(),
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            unescape_field_value("a\\").unwrap_err(),
            "invalid field selector: invalid escape sequence: \\"
        );
    }
}
