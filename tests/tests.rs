//! The integration tests of the `f2b-notify` binary (one test binary, ripgrep style):
//! `cli` runs the built binary directly, `fail2ban` runs it under the real Fail2Ban.

mod util;

mod cli;
mod fail2ban;
