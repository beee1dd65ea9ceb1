//! The ConfigMaps and Secrets a node knows: what its pods' variables and volume files come
//! from.

use std::collections::BTreeMap;

use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The objects by namespace and name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Objects {
    config_maps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
}

fn key_of(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Objects {
    pub fn new<'a>(
        config_maps: impl IntoIterator<Item = &'a ConfigMap>,
        secrets: impl IntoIterator<Item = &'a Secret>,
    ) -> Objects {
        Objects {
            config_maps: config_maps
                .into_iter()
                .map(|c| (key_of(&c.metadata), c.clone()))
                .collect(),
            secrets: secrets
                .into_iter()
                .map(|s| (key_of(&s.metadata), s.clone()))
                .collect(),
        }
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .get(&(namespace.to_string(), name.to_string()))
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(&(namespace.to_string(), name.to_string()))
    }
}
