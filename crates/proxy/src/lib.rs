//! Sluice data plane: listeners, routing, filters, upstream pools, load balancing, retries.

pub mod access_log;
pub mod ai;
pub mod auth;
pub mod body;
pub mod filters;
pub mod handler;
pub mod headers;
pub mod limits;
pub mod metrics;
pub mod pipeline;
pub mod proxy;
pub mod reply;
pub mod routing;
pub mod server;
pub mod tee;
pub mod upstream;

pub use proxy::{ConnInfo, Proxy, Runtime, SocketKey};
