//! Decoding errors worded as the API server's JSON decoder (Go's `encoding/json`) words
//! them, found by walking the type's OpenAPI schema along the failing path: `json: cannot
//! unmarshal bool into Go struct field Container.spec.template.spec.containers.command of
//! type string`; and quantities that do not parse, refused at decoding as `Quantity`'s own
//! `UnmarshalJSON` refuses them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::Resource;
use schemars::JsonSchema;
use serde_json::Value;

use crate::quantity::Quantity;

/// `resource.ErrFormatWrong`.
const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const QUANTITY_DEF: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// The JSON schema of `T` with its definitions, made once per kind.
fn schema<T: JsonSchema + Resource>() -> Arc<Value> {
    static SCHEMAS: OnceLock<Mutex<HashMap<&'static str, Arc<Value>>>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(Default::default);
    let mut schemas = schemas.lock().expect("schemas");
    let made = schemas.entry(T::KIND).or_insert_with(|| {
        let settings = schemars::generate::SchemaSettings::default();
        let generator = settings
            .with_transform(without_descriptions)
            .into_generator();
        Arc::new(generator.into_root_schema_for::<T>().to_value())
    });
    made.clone()
}

/// The structure is all a decoding error needs: the descriptions, most of a schema's
/// bytes, are dropped as it is made.
fn without_descriptions(schema: &mut schemars::Schema) {
    schema.remove("description");
    schemars::transform::transform_subschemas(&mut without_descriptions, schema);
}

/// One step of a path into a JSON value.
pub(crate) enum Step<'a> {
    Field(&'a str),
    Index,
}

/// A schema with its `$ref` followed, and the name of the definition it led to.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or(reference);
            let definitions = root.get("$defs").or_else(|| root.get("definitions"));
            match definitions.and_then(|d| d.get(name)) {
                Some(found) => (found, Some(name)),
                None => (schema, Some(name)),
            }
        }
        None => (schema, None),
    }
}

/// Go's name of the type a schema describes: `string`, `int32`, `[]string`,
/// `map[string]string`, `v1.Container`, `resource.Quantity`.
fn go_type(root: &Value, schema: &Value) -> String {
    let (schema, name) = resolve(root, schema);
    if let Some(name) = name {
        let mut parts = name.rsplit('.');
        let (kind, package) = (parts.next().unwrap_or(name), parts.next().unwrap_or(""));
        return format!("{package}.{kind}");
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => "string".to_string(),
        Some("boolean") => "bool".to_string(),
        Some("number") => "float64".to_string(),
        Some("integer") => match schema.get("format").and_then(Value::as_str) {
            Some("int32") => "int32".to_string(),
            _ => "int64".to_string(),
        },
        Some("array") => format!("[]{}", go_type(root, &schema["items"])),
        Some("object") => match schema.get("additionalProperties") {
            Some(values) if values.is_object() => format!("map[string]{}", go_type(root, values)),
            _ => "map[string]interface {}".to_string(),
        },
        _ => "interface {}".to_string(),
    }
}

/// What Go calls a JSON value of the kind serde names (`boolean `true``, `integer `5``):
/// `bool`, `string`, `number`, `object`, `array`; a number that does not fit an integer
/// type is given with its digits.
fn go_value(unexpected: &str, expected: &str) -> Option<String> {
    let (kind, literal) = match unexpected.split_once(" `") {
        Some((kind, rest)) => (kind, rest.strip_suffix('`').unwrap_or(rest)),
        None => (unexpected.split(' ').next().unwrap_or(unexpected), ""),
    };
    let into_integer = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"].contains(&expected);
    Some(match kind {
        "boolean" => "bool".to_string(),
        "string" => "string".to_string(),
        "integer" | "floating point" if into_integer => format!("number {literal}"),
        "integer" | "floating point" => "number".to_string(),
        "map" => "object".to_string(),
        "sequence" => "array".to_string(),
        _ => return None,
    })
}

/// serde's `invalid type: X, expected Y` (or `invalid value: ...`) of a value at `path` of
/// a `T`, as Go's `UnmarshalTypeError`; `None` when it is another kind of error.
pub(crate) fn go_type_error<T: JsonSchema + Resource>(
    path: &[Step],
    message: &str,
) -> Option<String> {
    let rest = (message.strip_prefix("invalid type: "))
        .or_else(|| message.strip_prefix("invalid value: "))?;
    let (unexpected, expected) = rest.rsplit_once(", expected ")?;
    let value = go_value(unexpected, expected)?;
    let root = schema::<T>();
    let mut struct_name = T::KIND.to_string();
    let mut fields: Vec<&str> = Vec::new();
    let mut at: &Value = &root;
    for step in path {
        let (schema, name) = resolve(&root, at);
        at = match step {
            Step::Field(field) => match schema.get("properties").and_then(|p| p.get(*field)) {
                Some(property) => {
                    if let Some(name) = name {
                        struct_name = name.rsplit('.').next().unwrap_or(name).to_string();
                    } else if fields.is_empty() {
                        struct_name = T::KIND.to_string();
                    }
                    fields.push(field);
                    property
                }
                // A map's value: Go's path names no key.
                None => schema.get("additionalProperties")?,
            },
            Step::Index => schema.get("items")?,
        };
    }
    if fields.is_empty() {
        return None;
    }
    Some(format!(
        "json: cannot unmarshal {value} into Go struct field {struct_name}.{} of type {}",
        fields.join("."),
        go_type(&root, at)
    ))
}

/// The first quantity of `value` (a `T`) that does not parse, as the decoder refuses it.
pub(crate) fn bad_quantity<T: JsonSchema + Resource>(value: &Value) -> Option<&'static str> {
    let root = schema::<T>();
    let found = first_bad_quantity(&root, &root, value);
    found.then_some(QUANTITY_FORMAT)
}

fn first_bad_quantity(root: &Value, schema: &Value, value: &Value) -> bool {
    let (schema, name) = resolve(root, schema);
    if name == Some(QUANTITY_DEF) {
        return match value {
            Value::String(text) => Quantity::parse(text).is_none(),
            _ => false,
        };
    }
    match value {
        Value::Object(map) => map.iter().any(|(key, inner)| {
            let property = schema.get("properties").and_then(|p| p.get(key));
            match property.or_else(|| schema.get("additionalProperties")) {
                Some(inner_schema) if inner_schema.is_object() => {
                    first_bad_quantity(root, inner_schema, inner)
                }
                _ => false,
            }
        }),
        Value::Array(items) => match schema.get("items") {
            Some(item_schema) => items
                .iter()
                .any(|i| first_bad_quantity(root, item_schema, i)),
            None => false,
        },
        _ => false,
    }
}
