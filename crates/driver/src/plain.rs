//! ConfigMaps, Secrets and Services: objects no controller reconciles. The engine stores
//! them as they were validated, checks existence and preconditions, and hands every
//! committed change to the node, whose pods take variables and files from the ConfigMaps and
//! Secrets and find headless Services' pods by name.

use std::collections::BTreeMap;

use joblet_api::config::Valid;
use joblet_api::k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use joblet_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use joblet_api::k8s_openapi::{Metadata, Resource};
use joblet_store::Record;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::commands::{CommandError, UpdateBase};
use crate::objects::record;
use crate::JobKey;

pub const KIND_CONFIG_MAP: &str = "ConfigMap";
pub const KIND_SECRET: &str = "Secret";
pub const KIND_SERVICE: &str = "Service";

/// A validated object no controller reconciles, as the API hands it to the engine.
pub enum Plain {
    ConfigMap(Valid<ConfigMap>),
    Secret(Valid<Secret>),
    Service(Box<Valid<Service>>),
}

/// The stored ConfigMaps, Secrets and Services, by namespace and name.
#[derive(Default)]
pub(crate) struct PlainObjects {
    config_maps: Kept<ConfigMap>,
    secrets: Kept<Secret>,
    services: Kept<Service>,
}

type Kept<T> = BTreeMap<JobKey, T>;

impl PlainObjects {
    /// Creates (`base: None`) or updates the object at resourceVersion `rv`; the record to
    /// write and the stored object as JSON.
    pub(crate) fn put(
        &mut self,
        object: Plain,
        base: Option<&UpdateBase>,
        rv: i64,
    ) -> Result<(Record, Value), CommandError> {
        match object {
            Plain::ConfigMap(valid) => put(&mut self.config_maps, valid.into_object(), base, rv),
            Plain::Secret(valid) => put(&mut self.secrets, valid.into_object(), base, rv),
            Plain::Service(valid) => put(&mut self.services, valid.into_object(), base, rv),
        }
    }

    /// Takes the object out; it is returned as JSON, as it was stored.
    pub(crate) fn remove(&mut self, kind: &str, key: &JobKey) -> Option<Value> {
        match kind {
            KIND_CONFIG_MAP => self.config_maps.remove(key).map(to_value),
            KIND_SECRET => self.secrets.remove(key).map(to_value),
            KIND_SERVICE => self.services.remove(key).map(to_value),
            _ => None,
        }
    }

    /// Takes out every object of the namespace, which goes with it; their kinds and names.
    pub(crate) fn remove_namespace(&mut self, namespace: &str) -> Vec<(&'static str, String)> {
        let mut removed = take_namespace(&mut self.config_maps, namespace, KIND_CONFIG_MAP);
        removed.extend(take_namespace(&mut self.secrets, namespace, KIND_SECRET));
        removed.extend(take_namespace(&mut self.services, namespace, KIND_SERVICE));
        removed
    }

    /// Loads stored records of these kinds; unreadable ones are skipped and said.
    pub(crate) fn load(&mut self, records: Vec<Record>) {
        for record in records {
            let key = (record.namespace.clone(), record.name.clone());
            let loaded = match record.kind.as_str() {
                KIND_CONFIG_MAP => load(&mut self.config_maps, key, &record.body),
                KIND_SECRET => load(&mut self.secrets, key, &record.body),
                KIND_SERVICE => load(&mut self.services, key, &record.body),
                other => Err(format!("not a kind kept here: {other}")),
            };
            if let Err(error) = loaded {
                eprintln!(
                    "joblet: skipping stored {} {}/{}: {error}",
                    record.kind, record.namespace, record.name
                );
            }
        }
    }

    /// Whether the node has no ConfigMap or Secret to know of.
    pub(crate) fn nothing_for_node(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }

    /// What the node's pods read: every ConfigMap and Secret.
    pub(crate) fn for_node(&self) -> (Vec<ConfigMap>, Vec<Secret>, Vec<Service>) {
        (
            self.config_maps.values().cloned().collect(),
            self.secrets.values().cloned().collect(),
            self.services.values().cloned().collect(),
        )
    }
}

fn take_namespace<T>(
    kept: &mut Kept<T>,
    namespace: &str,
    kind: &'static str,
) -> Vec<(&'static str, String)> {
    let (gone, stay) = std::mem::take(kept)
        .into_iter()
        .partition(|((ns, _), _)| ns == namespace);
    *kept = stay;
    let gone: Kept<T> = gone;
    gone.into_keys().map(|(_, name)| (kind, name)).collect()
}

fn put<T>(
    kept: &mut Kept<T>,
    mut object: T,
    base: Option<&UpdateBase>,
    rv: i64,
) -> Result<(Record, Value), CommandError>
where
    T: Resource + Metadata<Ty = ObjectMeta> + Serialize,
{
    let meta = object.metadata();
    let key = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let stored_version = |stored: &T| {
        let rv = stored.metadata().resource_version.as_deref();
        rv.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0)
    };
    match (base, kept.get(&key)) {
        (None, Some(_)) => return Err(CommandError::AlreadyExists),
        (Some(_), None) => return Err(CommandError::NotFound),
        // No controller writes these: any change is one of spec or metadata.
        (Some(base), Some(stored)) => {
            base.admits(stored_version(stored), stored_version(stored))?
        }
        (None, None) => {}
    }
    object.metadata_mut().resource_version = Some(rv.to_string());
    let body = to_value(&object);
    let record = record(T::KIND, &key.0, &key.1, rv, &body);
    kept.insert(key, object);
    Ok((record, body))
}

fn load<T: DeserializeOwned>(kept: &mut Kept<T>, key: JobKey, body: &str) -> Result<(), String> {
    let object = serde_json::from_str(body).map_err(|e| e.to_string())?;
    kept.insert(key, object);
    Ok(())
}

fn to_value<T: Serialize>(object: T) -> Value {
    serde_json::to_value(object).expect("API objects serialize")
}
