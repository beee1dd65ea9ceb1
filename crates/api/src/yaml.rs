//! YAML as the Kubernetes tools read it: documents become JSON values, and anything that
//! could exhaust memory or time (alias bombs, deep nesting) is refused with the place it
//! was found, as `kubectl` refuses it (`error converting YAML to JSON: yaml: line 7: …`).

use serde_json::Value;

/// Deeper than any API object; as deep as JSON bodies may go (serde_json's limit).
const MAX_DEPTH: usize = 128;

fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    // Long manifests (a List of thousands of Jobs) stay readable; alias bombs are still
    // stopped by the alias-to-anchor ratio and the retained-copy caps.
    budget.max_documents = 100_000;
    budget.max_nodes = 10_000_000;
    budget.max_events = 20_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // kubectl reads YAML 1.1 scalars (go-yaml v2, integers through Go's
    // `strconv.ParseInt(s, 0, 64)`): `0400` and `0o400` are 256, `yes` and `on` are true.
    options.legacy_octal_numbers = true;
    options
}

/// Every non-empty document of `text`, in order.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    documents_after(text, 0)
}

/// Like [`documents`], for text that follows `lines_before` lines of the input: an error
/// names the input's line.
pub fn documents_after(text: &str, lines_before: usize) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| message(&e, lines_before))
}

/// The one document of `text` (an empty one is `null`).
pub fn document(text: &str) -> Result<Value, String> {
    Ok(documents(text)?.into_iter().next().unwrap_or(Value::Null))
}

/// `value` as YAML.
pub fn to_string(value: &Value) -> String {
    serde_saphyr::to_string(value).expect("JSON values serialize as YAML")
}

/// kubectl's wording, with the line and column of the problem.
fn message(error: &serde_saphyr::Error, lines_before: usize) -> String {
    let text = error.without_snippet().to_string();
    // The place goes first, as kubectl puts it; the parser appends it.
    let bare = text.split(" at line ").next().unwrap_or(&text);
    match error.location() {
        Some(at) => format!(
            "error converting YAML to JSON: yaml: line {}, column {}: {bare}",
            at.line() as usize + lines_before,
            at.column()
        ),
        None => format!("error converting YAML to JSON: yaml: {bare}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        assert_eq!(
            documents("kind: Job\n  bad: [\n").unwrap_err(),
            "error converting YAML to JSON: yaml: line 2, column 6: mapping values are not allowed in this context"
        );
    }

    #[test]
    fn an_alias_bomb_is_refused_at_once() {
        let mut bomb = String::from("l0: &l0 [a, a, a, a, a, a, a, a, a]\n");
        for level in 1..10 {
            let refs = vec![format!("*l{}", level - 1); 9].join(", ");
            bomb.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
        }
        let error = documents(&bomb).unwrap_err();
        assert!(error.contains("budget breached"), "{error}");
    }

    #[test]
    fn deep_nesting_is_refused_not_parsed_for_ever() {
        let flow = "{a: ".repeat(40_000) + &"}".repeat(40_000);
        assert!(documents(&flow).is_err());
        let block: String = (0..1_000).map(|i| " ".repeat(i) + "a:\n").collect();
        let error = documents(&block).unwrap_err();
        assert!(error.contains("line 129"), "{error}");
    }

    #[test]
    fn scalars_are_read_as_kubectl_reads_them_yaml_1_1() {
        let values = documents(
            "mode: 0400\nprefixed: 0o400\nlimit: 010\nhex: 0x1F\nplain: 10\nzero: 0\n\
             on: yes\noff: off\nquoted: \"0400\"\nratio: 0.5\n",
        )
        .unwrap();
        assert_eq!(
            values,
            [
                serde_json::json!({"mode": 256, "prefixed": 256, "limit": 8, "hex": 31,
                "plain": 10, "zero": 0, "on": true, "off": false, "quoted": "0400", "ratio": 0.5})
            ]
        );
    }

    #[test]
    fn documents_empty_ones_skipped_and_json_is_yaml() {
        let values = documents("a: 1\n---\n---\n{\"b\": [true, \"x\"]}\n").unwrap();
        assert_eq!(
            values,
            [
                serde_json::json!({"a": 1}),
                serde_json::json!({"b": [true, "x"]})
            ]
        );
    }
}
