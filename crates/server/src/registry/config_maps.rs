//! ConfigMaps (`pkg/registry/core/configmap/strategy.go`): stored as validated; pods take
//! variables from them.

use joblet_api::config::{admit_config_map, admit_config_map_update, Valid};
use joblet_api::k8s_openapi::api::core::v1::ConfigMap;
use joblet_api::k8s_openapi::jiff::Timestamp;
use joblet_api::Invalid;
use joblet_driver::{Plain, Stored};
use serde_json::{json, Value};

use super::{age_column, column, name_column, Strategy};
use crate::api::AdmissionConfig;
use crate::resources::{Resource, CONFIG_MAPS};
use crate::table::age;

pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    type Object = ConfigMap;
    type Valid = Valid<ConfigMap>;
    const RESOURCE: &'static Resource = &CONFIG_MAPS;

    fn validate(
        &self,
        config_map: ConfigMap,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        admit_config_map(config_map)
    }

    fn validate_update(
        &self,
        new: ConfigMap,
        old: &ConfigMap,
        _admission: &AdmissionConfig,
    ) -> Result<Self::Valid, Invalid> {
        admit_config_map_update(new, old)
    }

    fn object(valid: &Self::Valid) -> &ConfigMap {
        valid.object()
    }

    fn stored(valid: Self::Valid) -> Stored {
        Stored::Plain(Box::new(Plain::ConfigMap(valid)))
    }

    fn columns(&self) -> Vec<Value> {
        vec![
            name_column(),
            column("Data", "string", "", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.", 0),
            age_column(),
        ]
    }

    /// `printConfigMap`: DATA counts the keys of both `data` and `binaryData`.
    fn cells(&self, config_map: &ConfigMap, now: Timestamp) -> Vec<Value> {
        let keys = config_map.data.as_ref().map_or(0, |d| d.len())
            + config_map.binary_data.as_ref().map_or(0, |d| d.len());
        let created = config_map.metadata.creation_timestamp.as_ref();
        vec![
            json!(config_map.metadata.name.clone().unwrap_or_default()),
            json!(keys),
            json!(age(created.map(|t| &t.0), now)),
        ]
    }
}
