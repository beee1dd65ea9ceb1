//! End-to-end tests of the `joblet` binary on real processes.

mod crash;
mod examples;
mod podman;
mod resume;
mod run;
mod scheduling;
mod serve;
mod util;
