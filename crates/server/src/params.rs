//! The query parameters of lists and watches, read as the API server's parameter codec
//! reads them and checked as its `ValidateListOptions` checks them: a malformed one is an
//! error naming it, never ignored.

use std::collections::HashMap;
use std::time::Duration;

use crate::errors::ApiError;

pub struct ListOptions {
    pub watch: bool,
    pub allow_watch_bookmarks: bool,
    /// At most this many items per page (0 or unset: all).
    pub limit: Option<usize>,
    pub timeout: Option<Duration>,
    /// `resourceVersion`, when a number other than 0.
    pub resource_version: Option<i64>,
}

impl ListOptions {
    pub fn parse(params: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
        let watch = boolean(params.get("watch"));
        let resource_version = match params.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => None,
            Some(text) => Some(text.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "resourceVersion: Invalid value: {}: strconv.ParseUint: parsing {}: invalid syntax",
                    joblet_api::field::go_quote(text),
                    joblet_api::field::go_quote(text)
                ))
            })? as i64),
        };
        let options = ListOptions {
            watch,
            allow_watch_bookmarks: boolean(params.get("allowWatchBookmarks")),
            limit: integer(params, "limit")?
                .filter(|l| *l > 0)
                .map(|l| l as usize),
            timeout: integer(params, "timeoutSeconds")?
                .map(|t| Duration::from_secs(t.max(0) as u64)),
            resource_version,
        };
        let errors = rules(params, watch);
        if !errors.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "ListOptions.meta.k8s.io \"\" is invalid: {}",
                join(&errors)
            )));
        }
        Ok(options)
    }
}

/// A boolean parameter as the codec reads it: present and neither `0` nor `false` is true.
pub fn boolean(value: Option<&String>) -> bool {
    value.is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

fn integer(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|e| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            ApiError::bad_request(format!(
                "{name}: strconv.ParseInt: parsing {}: {why}",
                joblet_api::field::go_quote(text)
            ))
        }),
    }
}

/// Upstream's `ValidateListOptions` (and its watch half), as field errors.
fn rules(params: &HashMap<String, String>, watch: bool) -> Vec<String> {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let forbidden = |path: &str, why: &str| format!("{path}: Forbidden: {why}");
    let mut errors = Vec::new();
    let matching = get("resourceVersionMatch");
    let initial_events = params.contains_key("sendInitialEvents");
    if watch {
        if !matching.is_empty() && !initial_events {
            errors.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        return errors;
    }
    if !matching.is_empty() {
        if get("resourceVersion").is_empty() {
            errors.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if !get("continue").is_empty() {
            errors.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden when continue is provided",
            ));
        }
        if matching != "Exact" && matching != "NotOlderThan" {
            errors.push(format!(
                "resourceVersionMatch: Unsupported value: {}: supported values: \"Exact\", \"NotOlderThan\", \"\"",
                joblet_api::field::go_quote(matching)
            ));
        }
        if matching == "Exact" && get("resourceVersion") == "0" {
            errors.push(forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
    }
    if initial_events {
        errors.push(forbidden(
            "sendInitialEvents",
            "sendInitialEvents is forbidden for list",
        ));
    }
    errors
}

/// An `ErrorList`'s aggregate: one error as it is, several in brackets.
fn join(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &[(&str, &str)]) -> Result<ListOptions, String> {
        let params = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListOptions::parse(&params).map_err(|e| format!("{} {}", e.code.as_u16(), e.message))
    }

    #[test]
    fn malformed_parameters_are_refused_by_name() {
        assert_eq!(
            parse(&[("limit", "abc")]).err().unwrap(),
            "400 limit: strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse(&[("watch", "1"), ("timeoutSeconds", "abc")])
                .err()
                .unwrap(),
            "400 timeoutSeconds: strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            parse(&[("resourceVersionMatch", "NotOlderThan")]).err().unwrap(),
            "422 ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        assert!(parse(&[("resourceVersion", "abc")]).is_err());
        let fine = parse(&[
            ("limit", "5"),
            ("watch", "true"),
            ("allowWatchBookmarks", "false"),
        ])
        .unwrap();
        assert_eq!(
            (fine.limit, fine.watch, fine.allow_watch_bookmarks),
            (Some(5), true, false)
        );
    }
}
