//! Manifests as `joblet run -f` reads them: YAML or JSON, several documents, Lists; every
//! Job found is then defaulted and validated as the API server would.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let validation = joblet_api::FieldValidation::Warn;
    if let Ok((jobs, _)) = joblet_api::parse_jobs_with_warnings("fuzz", text, validation) {
        for mut job in jobs {
            joblet_api::prepare_for_create(&mut job, "uid", Default::default());
            let _ = joblet_api::validate_job(&job);
        }
    }
});
