//! YAML as the Kubernetes tools read it: documents become JSON values, and anything that
//! could exhaust memory or time (alias bombs, deep nesting) is refused with the place it
//! was found, as `kubectl` refuses it (`error converting YAML to JSON: yaml: line 7: …`).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

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
    // kubectl's YAML-to-JSON conversion (go-yaml v2, not strict) keeps a repeated key's last
    // value: the document's visitor does the same with every key as it comes.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options
}

/// Every non-empty document of `text`, in order.
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    documents_after(text, 0)
}

/// Like [`documents`], for text that follows `lines_before` lines of the input: an error
/// names the input's line.
pub fn documents_after(text: &str, lines_before: usize) -> Result<Vec<Value>, String> {
    let documents: Vec<Document> = serde_saphyr::from_multiple_with_options(text, options())
        .map_err(|e| message(&e, lines_before))?;
    Ok(documents.into_iter().map(|d| d.0).collect())
}

/// A document as kubectl's YAML-to-JSON conversion makes it: a plain (unquoted) map key is
/// a YAML 1.1 scalar too, written back as text the way Go writes it (`on:` and `y:` are
/// `"true"`, `010:` is `"8"`, `1.50:` is `"1.5"`); a later key that comes out the same wins.
struct Document(Value);

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Document, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(Document)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Document(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((Key(key), Document(value))) = map.next_entry()? {
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A map key as text: quoted keys as written, plain ones as the scalar they resolve to.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_any(KeyVisitor).map(Key)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar map key")
    }

    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E>(self, v: f64) -> Result<String, E> {
        Ok(go_float_key(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// A float key as sigs.k8s.io/yaml writes it: Go's `strconv.FormatFloat(f, 'g', -1, 32)`,
/// the exponent form below 1e-4 and from 1e6 (`1e+06`), and `.inf`, `-.inf`, `.nan`.
fn go_float_key(value: f64) -> String {
    let single = value as f32;
    if single.is_nan() {
        return ".nan".to_string();
    }
    if single.is_infinite() {
        return if single > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    let scientific = format!("{single:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) || single == 0.0 {
        format!("{single}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
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
             enabled: yes\ndisabled: off\nquoted: \"0400\"\nratio: 0.5\n",
        )
        .unwrap();
        assert_eq!(
            values,
            [
                serde_json::json!({"mode": 256, "prefixed": 256, "limit": 8, "hex": 31,
                "plain": 10, "zero": 0, "enabled": true, "disabled": false, "quoted": "0400", "ratio": 0.5})
            ]
        );
    }

    /// Checked against kubectl 1.3x (`kubectl create --dry-run=client -o json`): plain keys
    /// are YAML 1.1 scalars written back as Go writes them; quoted keys stay as written.
    #[test]
    fn map_keys_are_read_as_kubectl_reads_them() {
        let values = documents(
            "labels: {on: x, y: z, \"off\": q, 010: a, 1.50: b, 2e6: c, 0.00001: d, plain: e}\n",
        )
        .unwrap();
        assert_eq!(
            values,
            [
                serde_json::json!({"labels": {"true": "z", "off": "q", "8": "a", "1.5": "b",
                "2e+06": "c", "1e-05": "d", "plain": "e"}})
            ]
        );
    }

    /// A repeated key keeps its last value, as kubectl's conversion keeps it, whether the
    /// keys are spelled alike or only come out alike.
    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let values =
            documents("a: 1\nb: 2\na: 3\n\"a\": 4\nlabels: {on: x, \"true\": w}\n").unwrap();
        assert_eq!(
            values,
            [serde_json::json!({"a": 4, "b": 2, "labels": {"true": "w"}})]
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
