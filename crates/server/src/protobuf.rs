//! The protobuf bodies kubectl's generators send (`kubectl create job|cronjob NAME
//! --image=... -- CMD`, `kubectl create job NAME --from=cronjob/X`, `kubectl create
//! namespace|configmap|secret generic NAME`): the `k8s\0` envelope around a
//! `runtime.Unknown`, and in it a Job, CronJob, Namespace, ConfigMap or Secret, read into JSON
//! by the field numbers of k8s.io/api's generated.proto (`protobuf/fields.rs`, every message
//! these kinds hold). A field number those do not know is refused by name, so nothing is
//! dropped silently.

mod fields;

use joblet_api::k8s_openapi::jiff::Timestamp;
use serde_json::{json, Map, Value};

/// How a message's field is read.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Int,
    Bool,
    /// Base64-encoded, as JSON carries bytes.
    Bytes,
    Message(&'static [Field]),
    /// A Go struct embedded inline (a Volume's source, a Probe's handler): a message here,
    /// its fields the parent's in JSON.
    Inline(&'static [Field]),
    /// `map<string, V>`, as repeated key/value entries.
    Map(&'static Kind),
    /// `resource.Quantity`: its string.
    Quantity,
    /// `intstr.IntOrString`: the int or the string its type names.
    IntOrString,
    /// `metav1.Time`: seconds since the epoch, in RFC 3339 in JSON.
    Time,
}

/// Field number, JSON name, kind, repeated.
type Field = (u64, &'static str, Kind, bool);

/// Go fields that are plain (not pointer) scalars, which the marshaller writes even when
/// zero and JSON leaves out when zero: a zero is no value. A pointer's zero is a value
/// (`backoffLimit: 0`) and is kept.
const PLAIN_SCALARS: [&str; 14] = [
    "generation",
    "stdin",
    "stdinOnce",
    "tty",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "readOnly",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "hostPort",
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
        ("batch/v1", "Job") => fields::JOB,
        ("batch/v1", "CronJob") => fields::CRON_JOB,
        ("v1", "Namespace") => fields::NAMESPACE,
        ("v1", "ConfigMap") => fields::CONFIG_MAP,
        ("v1", "Secret") => fields::SECRET,
        (version, kind) => {
            return Err(format!(
                "joblet reads protobuf only for batch/v1 Job and CronJob and v1 Namespace, ConfigMap and Secret, not {version} {kind}"
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
        let zero = match wire {
            Wire::Varint(v) => v == 0,
            Wire::Bytes(b) => b.is_empty(),
        };
        let known = fields.iter().find(|f| f.0 == number);
        // Kubernetes' marshalling writes every plain field, set or not: zero values are
        // what it writes for unset ones.
        let unset = |&(_, name, kind, _): &Field| match kind {
            Kind::String | Kind::Bytes | Kind::Time | Kind::Quantity => true,
            Kind::Int | Kind::Bool => PLAIN_SCALARS.contains(&name),
            _ => false,
        };
        if zero && known.is_none_or(unset) {
            continue;
        }
        let Some(&(_, name, kind, repeated)) = known else {
            return Err(format!(
                "field {number} of {path} is not one joblet reads from protobuf: send the object as YAML or JSON (kubectl ... --dry-run=client -o yaml | kubectl apply -f -)"
            ));
        };
        let here = format!("{path}.{name}");
        match (kind, wire) {
            (Kind::Inline(inner), Wire::Bytes(v)) => object.extend(message(v, inner, path)?),
            (Kind::Map(value_kind), Wire::Bytes(v)) => {
                let (mut key, mut val) = (String::new(), Value::String(String::new()));
                for entry in Reader(v) {
                    match entry? {
                        (1, Wire::Bytes(k)) => key = text(k)?,
                        (2, wire) => val = value(*value_kind, wire, &here)?,
                        _ => {}
                    }
                }
                let map = object
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                map[&key] = val;
            }
            (kind, wire) if repeated => {
                let list = object.entry(name).or_insert_with(|| json!([]));
                if let Value::Array(items) = list {
                    items.push(value(kind, wire, &here)?);
                }
            }
            (kind, wire) => {
                object.insert(name.to_string(), value(kind, wire, &here)?);
            }
        }
    }
    Ok(object)
}

/// One value of a field.
fn value(kind: Kind, wire: Wire, here: &str) -> Result<Value, String> {
    Ok(match (kind, wire) {
        (Kind::String, Wire::Bytes(v)) => json!(text(v)?),
        (Kind::Bytes, Wire::Bytes(v)) => {
            use base64::Engine as _;
            json!(base64::engine::general_purpose::STANDARD.encode(v))
        }
        // int32 and int64 alike: a negative value is its 64-bit two's complement.
        (Kind::Int, Wire::Varint(v)) => json!(v as i64),
        (Kind::Bool, Wire::Varint(v)) => json!(v != 0),
        (Kind::Message(inner), Wire::Bytes(v)) => Value::Object(message(v, inner, here)?),
        (Kind::Quantity, Wire::Bytes(v)) => {
            let mut quantity = String::new();
            for field in Reader(v) {
                if let (1, Wire::Bytes(s)) = field? {
                    quantity = text(s)?;
                }
            }
            json!(quantity)
        }
        (Kind::IntOrString, Wire::Bytes(v)) => {
            let (mut is_string, mut int, mut string) = (false, 0i64, String::new());
            for field in Reader(v) {
                match field? {
                    (1, Wire::Varint(t)) => is_string = t == 1,
                    (2, Wire::Varint(i)) => int = i as i64,
                    (3, Wire::Bytes(s)) => string = text(s)?,
                    _ => {}
                }
            }
            if is_string {
                json!(string)
            } else {
                json!(int)
            }
        }
        (Kind::Time, Wire::Bytes(v)) => {
            let mut seconds = 0i64;
            for field in Reader(v) {
                if let (1, Wire::Varint(s)) = field? {
                    seconds = s as i64;
                }
            }
            let time = Timestamp::from_second(seconds).map_err(|e| format!("{here}: {e}"))?;
            json!(time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        }
        _ => return Err(format!("{here}: unexpected protobuf wire type")),
    })
}

fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "a protobuf string is not UTF-8".to_string())
}

#[derive(Clone, Copy)]
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
        let mut out = Vec::new();
        encode(number << 3 | 2, &mut out);
        encode(payload.len() as u64, &mut out);
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

    fn encode(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn varint(number: u64, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(number << 3, &mut out);
        encode(value, &mut out);
        out
    }

    #[test]
    fn reads_what_kubectl_create_cronjob_sends() {
        // kubectl create cronjob tick --image=busybox --schedule='*/5 * * * *' -- echo hi
        let container = [
            bytes(1, b"tick"),
            bytes(2, b"busybox"),
            bytes(3, b"echo"),
            bytes(3, b"hi"),
        ]
        .concat();
        let pod = [bytes(2, &container), bytes(3, b"OnFailure")].concat();
        let job_spec = bytes(6, &bytes(2, &pod));
        let template = [bytes(1, &bytes(1, b"tick")), bytes(2, &job_spec)].concat();
        let spec = [bytes(1, b"*/5 * * * *"), bytes(5, &template)].concat();
        let cron = [bytes(1, &bytes(1, b"tick")), bytes(2, &spec), bytes(3, b"")].concat();
        assert_eq!(
            decode(&envelope("batch/v1", "CronJob", &cron)).unwrap(),
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
                "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"metadata": {"name": "tick"},
                    "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                        "containers": [{"name": "tick", "image": "busybox", "command": ["echo", "hi"]}]}}}}},
                "status": {}})
        );
    }

    /// `kubectl create job --from=cronjob/X` sends the CronJob's whole defaulted template:
    /// owner references, quantities, int-or-strings, inline volume sources, times, and
    /// plain scalars that are zero because unset.
    #[test]
    fn reads_a_whole_template_as_create_job_from_a_cronjob_sends_it() {
        let owner = [
            bytes(1, b"CronJob"),
            bytes(3, b"tick"),
            bytes(4, b"u-1"),
            bytes(5, b"batch/v1"),
            varint(6, 1),
        ]
        .concat();
        let annotation = [
            bytes(1, b"cronjob.kubernetes.io/instantiate"),
            bytes(2, b"manual"),
        ]
        .concat();
        let meta = [
            bytes(1, b"m"),
            bytes(12, &annotation),
            bytes(13, &owner),
            bytes(8, b""),
        ]
        .concat();
        let quantity = |q: &[u8]| bytes(1, q);
        let limit = [bytes(1, b"memory"), bytes(2, &quantity(b"64Mi"))].concat();
        let port = [varint(1, 1), bytes(3, b"http")].concat();
        let probe_handler = bytes(2, &[bytes(1, b"/"), bytes(2, &port)].concat());
        let probe = [bytes(1, &probe_handler), varint(2, 0), varint(6, 0)].concat();
        let mount = [bytes(1, b"config"), varint(2, 0), bytes(3, b"/etc/app")].concat();
        let container = [
            bytes(1, b"tick"),
            bytes(2, b"busybox"),
            bytes(8, &bytes(1, &limit)),
            bytes(9, &mount),
            bytes(10, &probe),
            bytes(13, b"/dev/termination-log"),
            varint(16, 0),
            varint(18, 0),
        ]
        .concat();
        let config_map = [bytes(1, &bytes(1, b"app")), varint(3, 420)].concat();
        let volume = [bytes(1, b"config"), bytes(2, &bytes(19, &config_map))].concat();
        let pod = [
            bytes(1, &volume),
            bytes(2, &container),
            bytes(3, b"Never"),
            varint(4, 30),
            varint(11, 0),
            bytes(14, b""),
        ]
        .concat();
        let spec = [varint(7, 0), bytes(6, &bytes(2, &pod))].concat();
        let job = [bytes(1, &meta), bytes(2, &spec)].concat();
        assert_eq!(
            decode(&envelope("batch/v1", "Job", &job)).unwrap(),
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "m",
                    "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                    "ownerReferences": [{"kind": "CronJob", "name": "tick", "uid": "u-1",
                        "apiVersion": "batch/v1", "controller": true}]},
                // A pointer's zero is a value: `backoffLimit: 0` is kept.
                "spec": {"backoffLimit": 0, "template": {"spec": {
                    "volumes": [{"name": "config", "configMap": {"name": "app", "defaultMode": 420}}],
                    "containers": [{"name": "tick", "image": "busybox",
                        "resources": {"limits": {"memory": "64Mi"}},
                        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
                        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        "terminationMessagePath": "/dev/termination-log"}],
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {}}}}})
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
