//! Policies the gateway applies to requests, independent of how requests travel: who is calling
//! (authentication) and what they may do (authorization). Everything here is compiled once when
//! configuration loads and then only read on the request path.

pub mod auth;
pub mod expr;
pub mod guard;
pub mod time;
