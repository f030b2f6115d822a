//! Shared test support: fresh databases, servers on ephemeral ports, clients.

pub mod db;
pub mod dir;
pub mod fixtures;
pub mod proxy;
pub mod server;
