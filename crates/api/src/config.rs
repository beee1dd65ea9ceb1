//! ConfigMaps and Secrets as the API server takes them: Secret defaulting (`stringData`
//! folded into `data`, `type: Opaque`) and validation (`ValidateConfigMap`, `ValidateSecret`)
//! with upstream's messages. A Secret's values never appear in an error.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use crate::field::{FieldError, FieldErrorKind, Invalid};
use crate::names::{dns1123_subdomain_errors, regex_error};

/// The most a ConfigMap's or Secret's values may hold together (`core.MaxSecretSize`).
pub const MAX_SIZE: usize = 1024 * 1024;

/// What the v1 to internal conversion does to a Secret on its way in: `stringData` goes into
/// `data` (winning over a key of the same name) and is not kept; `type` defaults to `Opaque`.
pub fn prepare_secret(secret: &mut Secret) {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    if secret.type_.as_deref().unwrap_or("").is_empty() {
        secret.type_ = Some("Opaque".to_string());
    }
}

pub fn validate_config_map(config_map: &ConfigMap) -> Result<(), Invalid> {
    let mut errors = Vec::new();
    let name = validate_meta(&config_map.metadata, &mut errors);
    let data = config_map.data.iter().flatten();
    let binary = config_map.binary_data.iter().flatten();
    let mut size = 0;
    for (key, value) in data {
        key_errors("data", key, &mut errors);
        if config_map
            .binary_data
            .as_ref()
            .is_some_and(|b| b.contains_key(key))
        {
            let detail = "duplicate of key present in binaryData";
            errors.push(FieldError::invalid_str(format!("data[{key}]"), key, detail));
        }
        size += value.len();
    }
    for (key, value) in binary {
        key_errors("binaryData", key, &mut errors);
        if config_map
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
        {
            let detail = "duplicate of key present in data";
            errors.push(FieldError::invalid_str(format!("data[{key}]"), key, detail));
        }
        size += value.0.len();
    }
    if size > MAX_SIZE {
        errors.push(too_long(""));
    }
    Invalid::check("ConfigMap", &name, errors)
}

/// Validates a Secret prepared by [`prepare_secret`].
pub fn validate_secret(secret: &Secret) -> Result<(), Invalid> {
    let mut errors = Vec::new();
    let name = validate_meta(&secret.metadata, &mut errors);
    let data = secret.data.clone().unwrap_or_default();
    let mut size = 0;
    for (key, value) in &data {
        key_errors("data", key, &mut errors);
        size += value.0.len();
    }
    if size > MAX_SIZE {
        errors.push(too_long("data"));
    }
    let required = |key: &str| FieldError::required(format!("data[{key}]"), "");
    match secret.type_.as_deref().unwrap_or("Opaque") {
        "kubernetes.io/service-account-token" => {
            let annotations = secret.metadata.annotations.as_ref();
            let key = "kubernetes.io/service-account.name";
            if annotations
                .and_then(|a| a.get(key))
                .is_none_or(String::is_empty)
            {
                errors.push(FieldError::required(
                    format!("metadata.annotations[{key}]"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !data.contains_key(".dockercfg") => {
            errors.push(required(".dockercfg"))
        }
        "kubernetes.io/dockerconfigjson" if !data.contains_key(".dockerconfigjson") => {
            errors.push(required(".dockerconfigjson"))
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errors.push(required("username"));
            errors.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errors.push(required("ssh-privatekey"))
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    errors.push(required(key));
                }
            }
        }
        _ => {}
    }
    Invalid::check("Secret", &name, errors)
}

/// An object of a kind no Job-like rules cover (a ConfigMap, Secret, Service, CronJob) that
/// passed the API server's validation: the only form in which
/// the engine takes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Valid<T>(pub(crate) T);

impl<T> Valid<T> {
    pub fn object(&self) -> &T {
        &self.0
    }

    pub fn into_object(self) -> T {
        self.0
    }
}

pub fn admit_config_map(config_map: ConfigMap) -> Result<Valid<ConfigMap>, Invalid> {
    validate_config_map(&config_map)?;
    Ok(Valid(config_map))
}

/// `ValidateConfigMapUpdate`: an immutable ConfigMap keeps its data and stays immutable.
pub fn admit_config_map_update(
    new: ConfigMap,
    old: &ConfigMap,
) -> Result<Valid<ConfigMap>, Invalid> {
    let mut errors = Vec::new();
    if old.immutable == Some(true) {
        immutable_errors(new.immutable, &mut errors);
        if new.data != old.data {
            errors.push(FieldError::forbidden("data", IMMUTABLE_SET));
        }
        if new.binary_data != old.binary_data {
            errors.push(FieldError::forbidden("binaryData", IMMUTABLE_SET));
        }
    }
    let name = new.metadata.name.clone().unwrap_or_default();
    join("ConfigMap", name, errors, validate_config_map(&new))?;
    Ok(Valid(new))
}

/// Takes a Secret prepared by [`prepare_secret`].
pub fn admit_secret(secret: Secret) -> Result<Valid<Secret>, Invalid> {
    validate_secret(&secret)?;
    Ok(Valid(secret))
}

/// `ValidateSecretUpdate`: `type` never changes; an immutable Secret keeps its data.
pub fn admit_secret_update(new: Secret, old: &Secret) -> Result<Valid<Secret>, Invalid> {
    let mut errors = Vec::new();
    if new.type_ != old.type_ {
        let value = new.type_.as_deref().unwrap_or("");
        errors.push(FieldError::invalid_str("type", value, "field is immutable"));
    }
    if old.immutable == Some(true) {
        immutable_errors(new.immutable, &mut errors);
        if new.data != old.data {
            errors.push(FieldError::forbidden("data", IMMUTABLE_SET));
        }
    }
    let name = new.metadata.name.clone().unwrap_or_default();
    join("Secret", name, errors, validate_secret(&new))?;
    Ok(Valid(new))
}

const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

fn immutable_errors(new: Option<bool>, errors: &mut Vec<FieldError>) {
    if new != Some(true) {
        errors.push(FieldError::forbidden("immutable", IMMUTABLE_SET));
    }
}

/// The update's own errors first, then those of the create-time rules, as upstream lists them.
fn join(
    kind: &'static str,
    name: String,
    mut errors: Vec<FieldError>,
    create: Result<(), Invalid>,
) -> Result<(), Invalid> {
    if let Err(invalid) = create {
        errors.extend(invalid.errors);
    }
    Invalid::check(kind, &name, errors)
}

fn validate_meta(meta: &ObjectMeta, errors: &mut Vec<FieldError>) -> String {
    let name = meta.name.clone().unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    }
    for detail in (!name.is_empty())
        .then(|| dns1123_subdomain_errors(&name))
        .into_iter()
        .flatten()
    {
        errors.push(FieldError::invalid_str("metadata.name", &name, &detail));
    }
    name
}

/// apimachinery's `IsConfigMapKey`, for a key under `field`.
fn key_errors(field: &str, key: &str, errors: &mut Vec<FieldError>) {
    for detail in config_key_errors(key) {
        errors.push(FieldError::invalid_str(
            format!("{field}[{key}]"),
            key,
            &detail,
        ));
    }
}

/// apimachinery's `IsConfigMapKey`: what a key of a ConfigMap or Secret must be.
pub fn config_key_errors(key: &str) -> Vec<String> {
    let mut details = Vec::new();
    if key.len() > 253 {
        details.push("must be no more than 253 characters".to_string());
    }
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"-._".contains(b);
    if key.is_empty() || !key.as_bytes().iter().all(allowed) {
        details.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match key {
        "." => details.push("must not be '.'".to_string()),
        ".." => details.push("must not be '..'".to_string()),
        _ if key.starts_with("..") => details.push("must not start with '..'".to_string()),
        _ => {}
    }
    details
}

fn too_long(path: &str) -> FieldError {
    FieldError {
        path: path.to_string(),
        kind: FieldErrorKind::TooLong { max: MAX_SIZE },
        node_limit: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config_map(value: serde_json::Value) -> Result<(), String> {
        let config_map: ConfigMap = serde_json::from_value(value).unwrap();
        validate_config_map(&config_map).map_err(|e| e.to_string())
    }

    fn secret(value: serde_json::Value) -> Result<Secret, String> {
        let mut secret: Secret = serde_json::from_value(value).unwrap();
        prepare_secret(&mut secret);
        validate_secret(&secret).map_err(|e| e.to_string())?;
        Ok(secret)
    }

    #[test]
    fn config_map_keys_duplicates_and_size_as_upstream() {
        assert!(config_map(json!({"metadata": {"name": "ok"}, "data": {"a.b-c_D": "1"}})).is_ok());
        assert_eq!(
            config_map(json!({"metadata": {"name": "bad"}, "data": {"a b": "1", "..x": "2"}}))
                .unwrap_err(),
            "ConfigMap \"bad\" is invalid: [data[..x]: Invalid value: \"..x\": must not start with '..', \
             data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')]"
        );
        assert_eq!(
            config_map(json!({"metadata": {"name": "twice"}, "data": {"k": "1"}, "binaryData": {"k": "AA=="}}))
                .unwrap_err(),
            "ConfigMap \"twice\" is invalid: [data[k]: Invalid value: \"k\": duplicate of key present in binaryData, \
             data[k]: Invalid value: \"k\": duplicate of key present in data]"
        );
        let big = "x".repeat(MAX_SIZE + 1);
        assert_eq!(
            config_map(json!({"metadata": {"name": "big"}, "data": {"k": big}})).unwrap_err(),
            "ConfigMap \"big\" is invalid: : Too long: must have at most 1048576 bytes"
        );
        assert_eq!(
            config_map(json!({"metadata": {"name": "Big"}})).unwrap_err(),
            "ConfigMap \"Big\" is invalid: metadata.name: Invalid value: \"Big\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    }

    #[test]
    fn string_data_is_folded_into_data_and_typed_secrets_need_their_keys() {
        // "b2xk" is base64 for "old".
        let folded = secret(
            json!({"metadata": {"name": "s"}, "data": {"a": "b2xk", "b": "b2xk"},
            "stringData": {"a": "new"}}),
        )
        .unwrap();
        assert_eq!(folded.type_.as_deref(), Some("Opaque"));
        assert!(folded.string_data.is_none());
        let data = folded.data.unwrap();
        assert_eq!(
            (data["a"].0.as_slice(), data["b"].0.as_slice()),
            (&b"new"[..], &b"old"[..])
        );
        assert_eq!(
            secret(
                json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": "c"}})
            )
            .unwrap_err(),
            "Secret \"t\" is invalid: data[tls.key]: Required value"
        );
        let big = "x".repeat(MAX_SIZE + 1);
        let error =
            secret(json!({"metadata": {"name": "big"}, "stringData": {"k": big}})).unwrap_err();
        assert_eq!(
            error,
            "Secret \"big\" is invalid: data: Too long: must have at most 1048576 bytes"
        );
    }

    #[test]
    fn immutable_objects_keep_their_data_and_a_secret_its_type() {
        let old: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": "c"}, "data": {"k": "1"}, "immutable": true}),
        )
        .unwrap();
        let mut relabelled = old.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert!(admit_config_map_update(relabelled, &old).is_ok());
        let changed: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"k": "2"}})).unwrap();
        assert_eq!(
            admit_config_map_update(changed, &old).unwrap_err().to_string(),
            "ConfigMap \"c\" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, \
             data: Forbidden: field is immutable when `immutable` is set]"
        );
        let old = secret(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}})).unwrap();
        let mut retyped = old.clone();
        retyped.type_ = Some("kubernetes.io/tls".to_string());
        assert_eq!(
            admit_secret_update(retyped, &old).unwrap_err().to_string(),
            "Secret \"s\" is invalid: [type: Invalid value: \"kubernetes.io/tls\": field is immutable, \
             data[tls.crt]: Required value, data[tls.key]: Required value]"
        );
        let mut changed = old.clone();
        changed.data = None;
        assert!(admit_secret_update(changed, &old).is_ok());
    }
}
