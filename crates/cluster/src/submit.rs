//! Sending a manifest's objects to the cluster, all or nothing: the Namespaces first, then
//! everything else once with `dryRun=All` so the API server's validation of every object
//! speaks before one is stored; ConfigMaps, Secrets and Services by server-side apply (field
//! manager `joblet`), Jobs by create, as `kubectl create` does.

use std::collections::HashSet;

use joblet_api::k8s_openapi::api::batch::v1::Job;
use joblet_api::k8s_openapi::api::core::v1::Namespace;
use joblet_api::Manifest;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Resource;
use serde_json::Value;

use crate::connect::{said, Cluster};

pub const FIELD_MANAGER: &str = "joblet";

/// Sends a manifest's `objects` (their namespaces filled in); with `dry_run`, only as `dryRun=All`. Returns every object as the server
/// stored it (or would have), the Jobs first. An error is worded as kubectl's, naming `source`.
pub async fn submit(
    cluster: &Cluster,
    objects: &Manifest,
    source: &str,
    dry_run: bool,
) -> Result<Submitted, String> {
    let says = |e: kube::Error| kubectl_error(cluster, &e, source);
    let mut shown = Vec::new();
    for namespace in &objects.namespaces {
        let api: Api<Namespace> = Api::all(cluster.client.clone());
        shown.push(value(apply(&api, namespace, dry_run, false).await).map_err(says)?);
    }
    // Everything once as a dry run: the server's word on each before anything is stored.
    let passes: &[bool] = if dry_run { &[true] } else { &[true, false] };
    let mut submitted = Submitted::default();
    for &dry in passes {
        shown.truncate(objects.namespaces.len());
        for object in &objects.config_maps {
            let api = namespaced(cluster, object);
            shown.push(value(apply(&api, object, dry, false).await).map_err(says)?);
        }
        for object in &objects.secrets {
            let api = namespaced(cluster, object);
            shown.push(value(apply(&api, object, dry, false).await).map_err(says)?);
        }
        for object in &objects.services {
            let api = namespaced(cluster, object);
            shown.push(value(apply(&api, object, dry, false).await).map_err(says)?);
        }
        let params = PostParams {
            dry_run: dry,
            field_manager: Some(FIELD_MANAGER.to_string()),
        };
        let mut jobs = Vec::new();
        let mut attached = HashSet::new();
        for job in &objects.jobs {
            let api = namespaced(cluster, job);
            let sent = match (api.create(&params, job).await, &job.metadata.name) {
                (Err(kube::Error::Api(status)), Some(name)) if status.reason == "AlreadyExists" => {
                    // The Job of that name is this run's once the manifest applies to it: its
                    // mutable fields are taken, a changed template is refused as immutable.
                    let stored = apply(&api, job, dry, true).await;
                    if let Ok(stored) = &stored {
                        attached.insert(stored.metadata.uid.clone().unwrap_or_default());
                    }
                    stored.map_err(|e| (name.clone(), e))
                }
                (sent, name) => sent.map_err(|e| (name.clone().unwrap_or_default(), e)),
            };
            match sent {
                Ok(stored) => jobs.push(stored),
                Err((_, e)) => {
                    if !dry {
                        // Raced by another writer: what this run created goes again.
                        let created: Vec<Job> = (jobs.into_iter())
                            .filter(|j| !attached.contains(uid(j)))
                            .collect();
                        delete_jobs(cluster, &created).await;
                    }
                    return Err(says(e));
                }
            }
        }
        submitted = Submitted {
            jobs,
            attached,
            others: Vec::new(),
        };
    }
    submitted.others = shown;
    Ok(submitted)
}

fn uid(job: &Job) -> &str {
    job.metadata.uid.as_deref().unwrap_or_default()
}

#[derive(Default)]
pub struct Submitted {
    pub jobs: Vec<Job>,
    /// The uids of the Jobs that existed, with the manifest's template, and were attached
    /// to rather than created.
    pub attached: HashSet<String>,
    /// Everything else sent, as the server returned it.
    pub others: Vec<Value>,
}

/// Deletes Jobs with `propagationPolicy: Background`: the Job goes at once, its pods after.
/// Returns what could not be deleted.
pub async fn delete_jobs(cluster: &Cluster, jobs: &[Job]) -> Vec<String> {
    let mut problems = Vec::new();
    for job in jobs {
        let name = job.metadata.name.clone().unwrap_or_default();
        match namespaced(cluster, job)
            .delete(&name, &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => problems.push(format!("job {name}: not deleted: {}", said(&e))),
        }
    }
    problems
}

fn namespaced<K>(cluster: &Cluster, object: &K) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    let namespace = object.meta().namespace.as_deref();
    Api::namespaced(
        cluster.client.clone(),
        namespace.unwrap_or(&cluster.namespace),
    )
}

/// Server-side apply as the field manager `joblet`; `force` takes the fields other managers
/// hold.
async fn apply<K>(api: &Api<K>, object: &K, dry_run: bool, force: bool) -> Result<K, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let mut params = PatchParams::apply(FIELD_MANAGER);
    params.dry_run = dry_run;
    params.force = force;
    // k8s-openapi writes the kind and apiVersion server-side apply wants in the body.
    api.patch(&name, &params, &Patch::Apply(object)).await
}

fn value<K: serde::Serialize>(stored: Result<K, kube::Error>) -> Result<Value, kube::Error> {
    serde_json::to_value(stored?).map_err(kube::Error::SerdeError)
}

/// As kubectl words a failed create: an invalid object's causes one per line, other refusals
/// as `Error from server (Reason): error when creating "FILE": message`.
pub fn kubectl_error(cluster: &Cluster, error: &kube::Error, source: &str) -> String {
    let kube::Error::Api(status) = error else {
        return format!("error: {}: {}", cluster.describe(), said(error));
    };
    if status.reason == "Invalid" {
        if let Some(details) = &status.details {
            let head = match (details.kind.is_empty(), details.name.is_empty()) {
                (true, true) => "The request is invalid".to_string(),
                _ => format!("The {} {:?} is invalid", details.kind, details.name),
            };
            let causes: Vec<String> = (details.causes.iter())
                .map(|c| match c.field.is_empty() {
                    true => c.message.clone(),
                    false => format!("{}: {}", c.field, c.message),
                })
                .collect();
            return match causes.as_slice() {
                [] => head,
                [one] => format!("{head}: {one}"),
                many => format!("{head}: \n* {}", many.join("\n* ")),
            };
        }
    }
    let reason = match status.reason.as_str() {
        "" => "Unknown",
        reason => reason,
    };
    format!(
        "Error from server ({reason}): error when creating {source:?}: {}",
        status.message
    )
}
