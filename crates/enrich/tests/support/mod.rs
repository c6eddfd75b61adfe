//! Real parts for the tests: a loopback DNS server and MaxMind-format databases.

pub mod dns;
pub mod mmdb;
