//! State shared across requests and replicas, behind one interface with a local and a Redis
//! implementation, so a single gateway and a fleet of replicas behave the same.
//!
//! * [`keys`]: virtual API keys (a JSON file or a Redis hash), and [`keys::KeyWatch`], which
//!   keeps them in process so the request path never waits on a store.
//! * [`limits`]: token-bucket rate limits that reserve, settle, refund and carry debt (exact
//!   integer GCRA), and UTC calendar budgets; in memory or in Redis (Lua), with identical
//!   answers. Not yet wired to the request path (issue 4 continues on the `ratelimit` branch).
//! * [`redis`]: the Redis connection every Redis-backed store shares (timeouts, reconnects,
//!   password-free descriptions).

mod error;
pub mod keys;
pub mod limits;
pub mod redis;

pub use error::StoreError;
