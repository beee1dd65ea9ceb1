//! Manifests as `joblet run -f` reads them: YAML or JSON, several documents, Lists; every
//! Job, ConfigMap and Secret found is then defaulted and validated as the API server would.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let validation = joblet_api::FieldValidation::Warn;
    if let Ok((manifest, _)) = joblet_api::parse_manifest("fuzz", text, validation) {
        for mut job in manifest.jobs {
            joblet_api::prepare_for_create(&mut job, "uid", Default::default());
            let _ = joblet_api::validate_job(&job);
        }
        for config_map in &manifest.config_maps {
            let _ = joblet_api::config::validate_config_map(config_map);
        }
        for mut secret in manifest.secrets {
            joblet_api::config::prepare_secret(&mut secret);
            let _ = joblet_api::config::validate_secret(&secret);
        }
    }
});
