//! Reading Job manifests: YAML or JSON, several documents, or a `v1` `List`; Jobs, and the
//! Namespaces, ConfigMaps, Secrets and Services that ship beside them.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::Resource;
use schemars::JsonSchema;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::decoding::{bad_quantity, go_type_error, Step};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Malformed YAML or JSON; the message carries the line and column.
    #[error("{source_name}: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: document {document}: {message}")]
    Document {
        source_name: String,
        document: usize,
        message: String,
    },
    #[error("{source_name}: no Job in the input")]
    Empty { source_name: String },
}

/// What becomes of fields a type does not have: kubectl's `--validate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// An error (`strict decoding error: unknown field "spec.completion"`), as
    /// `kubectl apply`'s default `--validate=strict` makes it.
    #[default]
    Strict,
    /// A warning each.
    Warn,
    /// Dropped.
    Ignore,
}

/// The documents of a manifest. JSON (the input starts with `{`) is read as a stream of
/// JSON values, as kubectl's decoder reads it; anything else as YAML.
pub fn documents(source_name: &str, text: &str) -> Result<Vec<Value>, ManifestError> {
    let syntax = |message: String| ManifestError::Syntax {
        source_name: source_name.to_string(),
        message,
    };
    if !text.trim_start().starts_with('{') {
        return crate::yaml::documents(text).map_err(syntax);
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut values = Vec::new();
    loop {
        match stream.next() {
            None => return Ok(values),
            Some(Ok(value)) => values.push(value),
            Some(Err(e)) if values.is_empty() => {
                return Err(syntax(format!("error parsing JSON: {e}")))
            }
            // JSON objects, then YAML documents: upstream's YAMLOrJSONDecoder reads such a
            // stream too. An error in the YAML names the file's line.
            Some(Err(_)) => {
                let (read, rest) = text.split_at(stream.byte_offset());
                let lines_before = read.matches('\n').count();
                let more = crate::yaml::documents_after(rest, lines_before).map_err(syntax)?;
                values.extend(more);
                return Ok(values);
            }
        }
    }
}

/// What a manifest holds, in the order of the input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub jobs: Vec<Job>,
    pub cron_jobs: Vec<CronJob>,
    pub namespaces: Vec<Namespace>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub services: Vec<Service>,
}

/// One object of a manifest.
enum Object {
    Job(Box<Job>),
    CronJob(Box<CronJob>),
    Namespace(Box<Namespace>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Service(Box<Service>),
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::Job(_) => "Job",
            Object::CronJob(_) => "CronJob",
            Object::Namespace(_) => "Namespace",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Service(_) => "Service",
        }
    }

    fn to_value(&self) -> Value {
        let value = match self {
            Object::Job(o) => serde_json::to_value(o),
            Object::CronJob(o) => serde_json::to_value(o),
            Object::Namespace(o) => serde_json::to_value(o),
            Object::ConfigMap(o) => serde_json::to_value(o),
            Object::Secret(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
        };
        value.unwrap_or(Value::Null)
    }
}

/// Parses every Job in `text`, dropping fields the Job type does not have. `source_name`
/// names the input in error messages.
pub fn parse_jobs(source_name: &str, text: &str) -> Result<Vec<Job>, ManifestError> {
    let (manifest, _) = parse_manifest(source_name, text, FieldValidation::Ignore)?;
    if manifest.jobs.is_empty() {
        return Err(ManifestError::Empty {
            source_name: source_name.to_string(),
        });
    }
    Ok(manifest.jobs)
}

/// Every Job, ConfigMap and Secret in `text` (there may be none), with fields their type does
/// not have refused or warned about as `validation` says (`unknown field "spec.completion"`).
pub fn parse_manifest(
    source_name: &str,
    text: &str,
    validation: FieldValidation,
) -> Result<(Manifest, Vec<String>), ManifestError> {
    let mut manifest = Manifest::default();
    let mut warnings = Vec::new();
    for (n, value) in documents(source_name, text)?.into_iter().enumerate() {
        let document_error = |message: String| ManifestError::Document {
            source_name: source_name.to_string(),
            document: n + 1,
            message,
        };
        let mut objects = Vec::new();
        collect_objects(value, &mut objects).map_err(document_error)?;
        for (input, object) in objects {
            let mut unknown = Vec::new();
            unknown_fields(&input, &object.to_value(), "", &mut unknown);
            match validation {
                FieldValidation::Strict if !unknown.is_empty() => {
                    let kind = object.kind();
                    return Err(document_error(format!(
                        "{kind} in version \"v1\" cannot be handled as a {kind}: strict decoding error: {}",
                        unknown.join(", ")
                    )));
                }
                FieldValidation::Ignore => {}
                _ => warnings.extend(unknown),
            }
            match object {
                Object::Job(job) => manifest.jobs.push(*job),
                Object::CronJob(cron_job) => manifest.cron_jobs.push(*cron_job),
                Object::Namespace(namespace) => manifest.namespaces.push(*namespace),
                Object::ConfigMap(config_map) => manifest.config_maps.push(*config_map),
                Object::Secret(secret) => manifest.secrets.push(*secret),
                Object::Service(service) => manifest.services.push(*service),
            }
        }
    }
    Ok((manifest, warnings))
}

/// Decodes one API object from a request body's JSON as the API server does: a field of
/// the wrong type names its path; fields the type does not have are listed
/// (`unknown field "spec.x"`) for strict field validation or warnings.
pub fn decode_object<T>(value: serde_json::Value) -> Result<(T, Vec<String>), String>
where
    T: serde::de::DeserializeOwned + serde::Serialize + JsonSchema + Resource,
{
    let object: T = serde_path_to_error::deserialize(&value).map_err(typed_error::<T>)?;
    if let Some(message) = bad_quantity::<T>(&value) {
        return Err(message.to_string());
    }
    let mut unknown = Vec::new();
    let known = serde_json::to_value(&object).unwrap_or(Value::Null);
    unknown_fields(&value, &known, "", &mut unknown);
    Ok((object, unknown))
}

/// A decoding error as the API server's decoder words it: a value of the wrong type as Go's
/// `encoding/json` says it, anything else with the path of the field it is about.
fn typed_error<T: JsonSchema + Resource>(
    error: serde_path_to_error::Error<serde_json::Error>,
) -> String {
    let steps: Option<Vec<Step>> = (error.path().iter())
        .map(|segment| match segment {
            Segment::Map { key } => Some(Step::Field(key)),
            Segment::Seq { .. } => Some(Step::Index),
            _ => None,
        })
        .collect();
    let worded = steps.and_then(|steps| go_type_error::<T>(&steps, &error.inner().to_string()));
    worded.unwrap_or_else(|| path_error(error))
}

/// A decoding error with the path of the field it is about (`spec.completions: ...`).
fn path_error<E: std::fmt::Display>(error: serde_path_to_error::Error<E>) -> String {
    let path = error.path().to_string();
    let inner = error.into_inner();
    if path == "." {
        inner.to_string()
    } else {
        format!("{path}: {inner}")
    }
}

/// Fields of `input` that did not survive the round trip through the typed object.
fn unknown_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(input), Value::Object(known)) => {
            for (name, value) in input {
                let here = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                match known.get(name) {
                    Some(known_value) => unknown_fields(value, known_value, &here, out),
                    None if value.is_null() => {}
                    None => out.push(format!("unknown field {here:?}")),
                }
            }
        }
        (Value::Array(input), Value::Array(known)) => {
            for (i, (value, known_value)) in input.iter().zip(known).enumerate() {
                unknown_fields(value, known_value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn decode<T>(value: &Value) -> Result<Box<T>, String>
where
    T: serde::de::DeserializeOwned + JsonSchema + Resource,
{
    let object = serde_path_to_error::deserialize(value.clone()).map_err(typed_error::<T>)?;
    match bad_quantity::<T>(value) {
        Some(message) => Err(message.to_string()),
        None => Ok(object),
    }
}

/// The objects of one document (a `List` holds several), each with its input.
fn collect_objects(value: Value, objects: &mut Vec<(Value, Object)>) -> Result<(), String> {
    if value.is_null() {
        return Ok(()); // an empty document between `---` separators
    }
    let Value::Object(map) = &value else {
        return Err("expected an object with apiVersion and kind".to_string());
    };
    let field = |name: &str| map.get(name).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let object = match (api_version, kind) {
        ("batch/v1", "Job") => Object::Job(decode(&value)?),
        ("batch/v1", "CronJob") => Object::CronJob(decode(&value)?),
        ("v1", "Namespace") => Object::Namespace(decode(&value)?),
        ("v1", "ConfigMap") => Object::ConfigMap(decode(&value)?),
        ("v1", "Secret") => Object::Secret(decode(&value)?),
        ("v1", "Service") => Object::Service(decode(&value)?),
        ("v1", "List") => {
            let items = match map.get("items") {
                Some(Value::Array(items)) => items.clone(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err("items: expected a list".to_string()),
            };
            for (i, item) in items.into_iter().enumerate() {
                collect_objects(item, objects).map_err(|e| format!("items[{i}]: {e}"))?;
            }
            return Ok(());
        }
        ("", _) | (_, "") => return Err("apiVersion and kind are required".to_string()),
        (api_version, kind) => {
            let name = map
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(format!(
                "joblet runs batch/v1 Jobs and CronJobs, with the v1 Namespaces, ConfigMaps, Secrets and Services beside them; this is a {api_version} {kind} {name:?}"
            ));
        }
    };
    objects.push((value, object));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_documents_and_lists() {
        let text = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: a}
---
---
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "b"}}]}
"#;
        let jobs = parse_jobs("f.yaml", text).unwrap();
        let names: Vec<_> = jobs
            .iter()
            .map(|j| j.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn malformed_yaml_and_json_name_line_and_column() {
        let err = parse_jobs("f.yaml", "kind: Job\n  bad: [\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.yaml: error converting YAML to JSON: yaml: line 2, column 6: mapping values are not allowed in this context"
        );
        let err = parse_jobs("f.json", "{\"kind\": \"Job\",\n \"spec\" 5}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "f.json: error parsing JSON: expected `:` at line 2 column 9"
        );
    }

    #[test]
    fn json_is_read_as_json_however_deep() {
        let deep = "{\"a\": ".repeat(100_000) + &"}".repeat(100_000);
        let err = parse_jobs("f.json", &deep).unwrap_err().to_string();
        assert!(err.contains("recursion limit exceeded"), "{err}");
        let stream = "{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {\"name\": \"b\"}}";
        assert_eq!(parse_jobs("f.json", stream).unwrap().len(), 2);
    }

    /// A value of the wrong type is said as the API server's decoder says it.
    #[test]
    fn wrong_type_is_said_as_go_says_it() {
        let said = |spec: &str| {
            let text = format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: a, labels: {{app: x}}}}\n{spec}");
            let err = parse_jobs("f.yaml", &text).unwrap_err().to_string();
            err.strip_prefix("f.yaml: document 1: ")
                .unwrap_or(&err)
                .to_string()
        };
        let container = |fields: &str| {
            format!("spec:\n  template:\n    spec:\n      containers:\n      - {{name: c, image: i, {fields}}}\n")
        };
        assert_eq!(
            said(&container("command: [echo, yes]")),
            "json: cannot unmarshal bool into Go struct field Container.spec.template.spec.containers.command of type string"
        );
        assert_eq!(
            said(&container("command: echo")),
            "json: cannot unmarshal string into Go struct field Container.spec.template.spec.containers.command of type []string"
        );
        assert_eq!(
            said("spec:\n  completions: lots\n"),
            "json: cannot unmarshal string into Go struct field JobSpec.spec.completions of type int32"
        );
        assert_eq!(
            said("spec:\n  backoffLimit: 3000000000\n"),
            "json: cannot unmarshal number 3000000000 into Go struct field JobSpec.spec.backoffLimit of type int32"
        );
        assert_eq!(
            said("spec: 5\n"),
            "json: cannot unmarshal number into Go struct field Job.spec of type v1.JobSpec"
        );
        assert_eq!(
            said("spec:\n  template:\n    metadata:\n      labels: {tier: [a]}\n"),
            "json: cannot unmarshal array into Go struct field ObjectMeta.spec.template.metadata.labels of type string"
        );
        // A quantity that does not parse is refused by its own decoder.
        assert_eq!(
            said(&container("resources: {limits: {cpu: 2x}}")),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
        );
    }

    #[test]
    fn unknown_fields_are_refused_or_warned_about_like_kubectl() {
        let text = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: a}\nspec:\n  completion: 5\n  template:\n    spec:\n      containers: [{name: c, image: i, comand: [x]}]\n";
        assert_eq!(
            parse_manifest("f.yaml", text, FieldValidation::Strict).unwrap_err().to_string(),
            "f.yaml: document 1: Job in version \"v1\" cannot be handled as a Job: strict decoding error: unknown field \"spec.completion\", unknown field \"spec.template.spec.containers[0].comand\""
        );
        assert_eq!(
            parse_manifest("f.yaml", text, FieldValidation::Ignore)
                .unwrap()
                .1,
            Vec::<String>::new()
        );
        let (_, warnings) = parse_manifest("f.yaml", text, FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"spec.completion\"",
                "unknown field \"spec.template.spec.containers[0].comand\""
            ]
        );
        let clean = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: a, labels: {}}\nspec:\n  parallelism: 2\n  template: {spec: {containers: []}}\n";
        assert_eq!(
            parse_manifest("f.yaml", clean, FieldValidation::Strict)
                .unwrap()
                .1,
            Vec::<String>::new()
        );
    }

    #[test]
    fn config_maps_and_secrets_come_with_the_jobs_in_any_order() {
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cr3t}
---
apiVersion: batch/v1
kind: Job
metadata: {name: a}
---
{"apiVersion": "v1", "kind": "List", "items": [
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"MODE": "fast"}}]}
"#;
        let (manifest, _) = parse_manifest("f.yaml", text, FieldValidation::Strict).unwrap();
        assert_eq!(manifest.jobs.len(), 1);
        assert_eq!(
            manifest.config_maps[0].data.as_ref().unwrap()["MODE"],
            "fast"
        );
        let secret = &manifest.secrets[0];
        assert_eq!(secret.string_data.as_ref().unwrap()["password"], "s3cr3t");
        let typo = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatta: {a: b}\n---\napiVersion: batch/v1\nkind: Job\n";
        assert_eq!(
            parse_manifest("f.yaml", typo, FieldValidation::Strict).unwrap_err().to_string(),
            "f.yaml: document 1: ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"datta\""
        );
    }

    #[test]
    fn json_then_yaml_documents_are_read_and_a_yaml_error_names_the_files_line() {
        let job =
            |name: &str| format!("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n");
        let head = "{\"apiVersion\": \"batch/v1\", \"kind\": \"Job\", \"metadata\": {\"name\": \"a\"}}\n# one\n# two\n---\n";
        let names = |text: &str| -> Vec<String> {
            parse_jobs("f.yaml", text)
                .unwrap()
                .iter()
                .map(|j| j.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(names(&format!("{head}{}", job("b"))), ["a", "b"]);
        // Line 22 of the file: four lines of head, thirteen comments and a Job's four lines,
        // then the badly indented one.
        let padding = "# padding\n".repeat(13) + &job("c");
        let bad = format!("{head}{padding}   labels: {{}}\n");
        let error = parse_jobs("f.yaml", &bad).unwrap_err().to_string();
        assert!(
            error.starts_with("f.yaml: error converting YAML to JSON: yaml: line 22, column"),
            "{error}"
        );
    }

    #[test]
    fn other_kinds_are_refused_by_name() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n";
        assert_eq!(
            parse_jobs("f.yaml", text).unwrap_err().to_string(),
            "f.yaml: document 1: joblet runs batch/v1 Jobs and CronJobs, with the v1 Namespaces, ConfigMaps, Secrets and Services beside them; this is a apps/v1 Deployment \"web\""
        );
        assert!(matches!(
            parse_jobs("f.yaml", "").unwrap_err(),
            ManifestError::Empty { .. }
        ));
    }
}
