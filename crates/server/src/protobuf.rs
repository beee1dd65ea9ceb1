//! The protobuf bodies kubectl's generators send (`kubectl create job NAME --image=... --
//! CMD`, `kubectl create namespace|configmap|secret generic NAME`): the `k8s\0` envelope
//! around a `runtime.Unknown`, and of the Job, Namespace, ConfigMap and Secret messages the
//! fields those commands fill in, read into JSON by their numbers in k8s.io/api's
//! generated.proto. Anything else is refused by name, so nothing is dropped silently.

use serde_json::{json, Map, Value};

/// How a message's fields are read: field number to name and kind.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Int,
    Bool,
    Message(&'static [Field]),
    /// `map<string, string>`, as repeated key/value entries.
    StringMap,
    /// `map<string, bytes>`: values base64-encoded, as JSON carries them.
    BytesMap,
}

type Field = (u64, &'static str, Kind, bool);

/// Messages read only as empty (zero values everywhere).
const NO_FIELDS: &[Field] = &[];
const OBJECT_META: &[Field] = &[
    (1, "name", Kind::String, false),
    (2, "generateName", Kind::String, false),
    (3, "namespace", Kind::String, false),
    (11, "labels", Kind::StringMap, false),
    (12, "annotations", Kind::StringMap, false),
];
const ENV_VAR: &[Field] = &[
    (1, "name", Kind::String, false),
    (2, "value", Kind::String, false),
];
const CONTAINER: &[Field] = &[
    (1, "name", Kind::String, false),
    (2, "image", Kind::String, false),
    (3, "command", Kind::String, true),
    (4, "args", Kind::String, true),
    (5, "workingDir", Kind::String, false),
    (7, "env", Kind::Message(ENV_VAR), true),
    (8, "resources", Kind::Message(NO_FIELDS), false),
    (13, "terminationMessagePath", Kind::String, false),
    (14, "imagePullPolicy", Kind::String, false),
    (20, "terminationMessagePolicy", Kind::String, false),
];
const POD_SPEC: &[Field] = &[
    (2, "containers", Kind::Message(CONTAINER), true),
    (3, "restartPolicy", Kind::String, false),
    (4, "terminationGracePeriodSeconds", Kind::Int, false),
    (6, "dnsPolicy", Kind::String, false),
    (19, "schedulerName", Kind::String, false),
    (20, "initContainers", Kind::Message(CONTAINER), true),
];
const POD_TEMPLATE: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "spec", Kind::Message(POD_SPEC), false),
];
const JOB_SPEC: &[Field] = &[
    (1, "parallelism", Kind::Int, false),
    (2, "completions", Kind::Int, false),
    (3, "activeDeadlineSeconds", Kind::Int, false),
    (6, "template", Kind::Message(POD_TEMPLATE), false),
    (7, "backoffLimit", Kind::Int, false),
    (8, "ttlSecondsAfterFinished", Kind::Int, false),
    (9, "completionMode", Kind::String, false),
    (10, "suspend", Kind::Bool, false),
];
const JOB: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "spec", Kind::Message(JOB_SPEC), false),
    (3, "status", Kind::Message(NO_FIELDS), false),
];
const CONFIG_MAP: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "data", Kind::StringMap, false),
    (3, "binaryData", Kind::BytesMap, false),
    (4, "immutable", Kind::Bool, false),
];
const SECRET: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "data", Kind::BytesMap, false),
    (3, "type", Kind::String, false),
    (4, "stringData", Kind::StringMap, false),
    (5, "immutable", Kind::Bool, false),
];
const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Message(OBJECT_META), false),
    (2, "spec", Kind::Message(NO_FIELDS), false),
    (3, "status", Kind::Message(NO_FIELDS), false),
];

/// The body as JSON, with `apiVersion` and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let unknown = body
        .strip_prefix(b"k8s\0")
        .ok_or("the protobuf body does not start with the k8s envelope")?;
    let mut type_meta = (String::new(), String::new());
    let mut raw: &[u8] = &[];
    for field in Reader(unknown) {
        match field? {
            (1, Wire::Bytes(bytes)) => {
                for inner in Reader(bytes) {
                    match inner? {
                        (1, Wire::Bytes(v)) => type_meta.0 = text(v)?,
                        (2, Wire::Bytes(v)) => type_meta.1 = text(v)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let fields = match (type_meta.0.as_str(), type_meta.1.as_str()) {
        ("batch/v1", "Job") => JOB,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        (version, kind) => {
            return Err(format!(
                "joblet reads protobuf only for batch/v1 Job and v1 Namespace, ConfigMap and Secret, not {version} {kind}"
            ))
        }
    };
    let mut object = message(raw, fields, &type_meta.1)?;
    object.insert("apiVersion".into(), json!(type_meta.0));
    object.insert("kind".into(), json!(type_meta.1));
    Ok(Value::Object(object))
}

fn message(bytes: &[u8], fields: &[Field], path: &str) -> Result<Map<String, Value>, String> {
    let mut object = Map::new();
    for field in Reader(bytes) {
        let (number, wire) = field?;
        // Kubernetes' marshalling writes every plain field, set or not: zero values are
        // what it writes for unset ones.
        let zero = match wire {
            Wire::Varint(v) => v == 0,
            Wire::Bytes(b) => b.is_empty(),
        };
        let known = fields.iter().find(|f| f.0 == number);
        if zero && known.is_none_or(|f| matches!(f.2, Kind::String)) {
            continue;
        }
        let Some(&(_, name, kind, repeated)) = known else {
            return Err(format!(
                "field {number} of {path} is not one joblet reads from protobuf: send the object as YAML or JSON (kubectl ... --dry-run=client -o yaml | kubectl apply -f -)"
            ));
        };
        let here = format!("{path}.{name}");
        let value = match (kind, wire) {
            (Kind::String, Wire::Bytes(v)) => json!(text(v)?),
            (Kind::Int, Wire::Varint(v)) => json!(v as i64),
            (Kind::Bool, Wire::Varint(v)) => json!(v != 0),
            (Kind::Message(inner), Wire::Bytes(v)) => Value::Object(message(v, inner, &here)?),
            (Kind::StringMap | Kind::BytesMap, Wire::Bytes(v)) => {
                let (mut key, mut val) = (String::new(), Value::String(String::new()));
                for entry in Reader(v) {
                    match entry? {
                        (1, Wire::Bytes(k)) => key = text(k)?,
                        (2, Wire::Bytes(x)) if matches!(kind, Kind::BytesMap) => {
                            use base64::Engine as _;
                            val = json!(base64::engine::general_purpose::STANDARD.encode(x));
                        }
                        (2, Wire::Bytes(x)) => val = json!(text(x)?),
                        _ => {}
                    }
                }
                let map = object
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                map[&key] = val;
                continue;
            }
            _ => return Err(format!("{here}: unexpected protobuf wire type")),
        };
        if repeated {
            let list = object.entry(name).or_insert_with(|| json!([]));
            if let Value::Array(items) = list {
                items.push(value);
            }
        } else {
            object.insert(name.to_string(), value);
        }
    }
    Ok(object)
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a protobuf string is not UTF-8".to_string())
}

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of one encoded message, in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or("truncated protobuf")?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("malformed protobuf varint".to_string())
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u64, Wire<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = (|| {
            let tag = self.varint()?;
            let wire = match tag & 7 {
                0 => Wire::Varint(self.varint()?),
                2 => {
                    let len = usize::try_from(self.varint()?).map_err(|_| "protobuf length")?;
                    if len > self.0.len() {
                        return Err("truncated protobuf".to_string());
                    }
                    let (bytes, rest) = self.0.split_at(len);
                    self.0 = rest;
                    Wire::Bytes(bytes)
                }
                other => {
                    return Err(format!(
                        "protobuf wire type {other} is not used by these objects"
                    ))
                }
            };
            Ok((tag >> 3, wire))
        })();
        if field.is_err() {
            self.0 = &[];
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [bytes(1, api_version.as_bytes()), bytes(2, kind.as_bytes())].concat();
        let unknown = [bytes(1, &type_meta), bytes(2, raw)].concat();
        [b"k8s\0".to_vec(), unknown].concat()
    }

    #[test]
    fn reads_what_kubectl_create_job_sends() {
        // kubectl create job cj --image=busybox:1.36 -- echo hi
        let container = [
            bytes(1, b"cj"),
            bytes(2, b"busybox:1.36"),
            bytes(3, b"echo"),
            bytes(3, b"hi"),
        ]
        .concat();
        let pod_spec = [bytes(2, &container), bytes(3, b"Never")].concat();
        let template = bytes(2, &pod_spec);
        // Unset fields come as zero values: skipped.
        let meta = [
            bytes(1, b"cj"),
            bytes(2, b""),
            bytes(8, b""),
            vec![7 << 3, 0],
        ]
        .concat();
        let job = [bytes(1, &meta), bytes(2, &bytes(6, &template))].concat();
        let value = decode(&envelope("batch/v1", "Job", &job)).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "cj"},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "cj", "image": "busybox:1.36", "command": ["echo", "hi"]}]}}}})
        );
    }

    #[test]
    fn unknown_fields_and_garbage_are_errors() {
        let namespace = bytes(1, &bytes(1, b"team-a"));
        assert_eq!(
            decode(&envelope("v1", "Namespace", &namespace)).unwrap()["metadata"]["name"],
            "team-a"
        );
        let odd = [bytes(1, &bytes(1, b"x")), bytes(9, b"?")].concat();
        assert!(decode(&envelope("v1", "Namespace", &odd))
            .unwrap_err()
            .starts_with("field 9 of Namespace is not one joblet reads"));
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(b"{}").is_err());
        assert!(decode(&envelope("v1", "Pod", &[])).is_err());
    }
}
