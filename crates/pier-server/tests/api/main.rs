//! HTTP-level tests of Pier: a real server per test, a fresh database, real HTTP.

mod auth;
mod balance;
mod checkout;
mod common;
mod console;
mod edge;
mod escrows;
mod holder;
mod lookups;
mod receipts;
mod reconcile;
mod refunds;
mod schedules;
mod security;
mod security_edge;
mod security_origins;
mod security_secrets;
mod security_ssrf;
mod subscribe;
mod toss;
mod unavailable;
mod unsupported;
mod vbanks;
mod webhooks;
