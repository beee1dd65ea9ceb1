//! The supervisor's inputs from outside the process: lines on its socket (the engine's
//! requests and its reports, read by each side) and its journal after any crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    joblet_runtime::fuzz::read_journal(text);
    for line in text.lines() {
        joblet_runtime::fuzz::read_wire_line(line);
    }
});
