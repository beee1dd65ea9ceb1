//! Secrets (`pkg/registry/core/secret/strategy.go`): `stringData` is folded into `data` on
//! every write and never stored; `type` never changes. Values never appear in an error.

use joblet_api::config::{admit_secret, admit_secret_update, prepare_secret, Valid};
use joblet_api::k8s_openapi::api::core::v1::Secret;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::Invalid;
use joblet_driver::{Plain, Stored};
use serde_json::{json, Value};

use super::{age_column, column, name_column, Strategy};
use crate::api::AdmissionConfig;
use crate::resources::{Resource, SECRETS};
use crate::table::age;

pub struct Secrets;

impl Strategy for Secrets {
    type Object = Secret;
    type Valid = Valid<Secret>;
    const RESOURCE: &'static Resource = &SECRETS;

    /// The v1 to internal conversion: `stringData` into `data`, `type` defaulted.
    fn apply_defaults(&self, secret: &mut Secret) {
        prepare_secret(secret);
    }

    fn validate(
        &self,
        secret: Secret,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        admit_secret(secret)
    }

    fn validate_update(
        &self,
        new: Secret,
        old: &Secret,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        admit_secret_update(new, old)
    }

    fn object(valid: &Self::Valid) -> &Secret {
        valid.object()
    }

    fn stored(valid: Self::Valid) -> Stored {
        Stored::Plain(Box::new(Plain::Secret(valid)))
    }

    fn columns(&self) -> Vec<Value> {
        vec![
            name_column(),
            column("Type", "string", "", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types", 0),
            column("Data", "string", "", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4", 0),
            age_column(),
        ]
    }

    /// `printSecret`: the number of keys, never a value.
    fn cells(&self, secret: &Secret, now: Timestamp) -> Vec<Value> {
        let created = secret.metadata.creation_timestamp.as_ref();
        vec![
            json!(secret.metadata.name.clone().unwrap_or_default()),
            json!(secret.type_.clone().unwrap_or_default()),
            json!(secret.data.as_ref().map_or(0, |d| d.len())),
            json!(age(created.map(|t| &t.0), now)),
        ]
    }
}
