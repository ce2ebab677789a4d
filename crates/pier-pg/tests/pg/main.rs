//! pier-pg's integration tests, in one binary to keep link time down.
//!
//! Most assertions run through both connectors against one engine: `InProcess` directly, and
//! `pgsim::Client` over HTTP to a pgsim started on `127.0.0.1:0` (see `common::Rig`), so the two
//! transports are held to the same contract.

mod common;

mod cards;
mod faults;
mod journal;
mod ledger;
mod window;

// The Toss Payments connector and the suite every connector passes.
mod conformance;
mod toss;
mod toss_live;
mod toss_sim;
