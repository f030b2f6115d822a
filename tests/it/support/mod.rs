//! Shared test support: fresh databases, PostgreSQL clusters of a test's own (for faults the
//! shared server must not suffer) and primaries with a real hot standby, servers on ephemeral
//! ports, calling them (who a request comes from, what came back, tables of status codes), the
//! values requests are built from, and the AdminService writes that build a world.

pub mod calls;
pub mod cluster;
pub mod db;
pub mod dir;
pub mod fixtures;
pub mod http;
pub mod proxy;
pub mod server;
pub mod standby;
pub mod world;
