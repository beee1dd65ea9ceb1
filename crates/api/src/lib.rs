//! The batch/v1 API as joblet accepts it: wire types (from `k8s-openapi`), manifest
//! parsing, the API server's defaulting and validation, and index sets.

pub mod alpha;
pub mod config;
pub mod cron;
pub mod cronjobs;
mod decoding;
pub mod defaults;
pub mod field;
pub mod indexset;
pub mod labels;
pub mod manifest;
pub mod names;
pub mod printers;
pub mod quantity;
pub mod resources;
pub mod scheduling;
pub mod services;
pub mod update;
pub mod valid;
pub mod validation;
pub mod version;
pub mod volumes;
pub mod yaml;

pub use defaults::prepare_for_create;
pub use field::{FieldError, Invalid};
pub use indexset::IndexSet;
pub use k8s_openapi;
pub use manifest::{
    decode_object, parse_jobs, parse_manifest, FieldValidation, Manifest, ManifestError,
};
pub use update::{carry_identity, prepare_for_update, validate_job_update, validate_job_update_as};
pub use valid::ValidJob;
pub use validation::{validate_job, validate_job_for_cluster};
