#![recursion_limit = "256"]
//! Pier's server: the HTTP layer (`http`), the use cases (`engine`), background jobs (`jobs`), and
//! `app`, which wires them into a running server. Tests and the binary both start Pier through
//! `app::Pier::start`, so every test talks to the real thing over HTTP.

pub mod app;
pub mod config;
pub mod console;
pub mod edge;
pub mod engine;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod outbound;
pub mod tasks;
pub mod testpg_shared;

pub use app::Pier;
pub use config::Config;
