//! consentry: a gRPC permission-query service. Third-party applications get into a customer
//! tenant only with an administrator's consent; consentry answers whether an application may do
//! a thing there, which external permissions a user holds, and what an application may do now.
//!
//! See `ARCHITECTURE.md` for the layers and the direction data flows.

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod convert;
pub mod demo;
pub mod domain;
pub mod health;
pub mod metrics;
pub mod proto;
pub mod reload;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;
pub mod token;
