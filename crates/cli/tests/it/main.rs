//! End-to-end tests of the `joblet` binary on real processes.

mod cluster;
mod crash;
mod cronjobs;
mod docker;
mod examples;
mod metrics;
mod one_node;
mod podman;
mod pulls;
mod resume;
mod run;
mod serve;
mod util;
mod versions;
mod web;
