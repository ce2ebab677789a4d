//! HTTP-level tests of Pier: a real server per test, a fresh database, real HTTP.

mod auth;
mod common;
mod edge;
mod lookups;
mod reconcile;
mod security;
mod subscribe;
