//! State shared across requests and replicas, behind one interface with a local and a Redis
//! implementation, so a single gateway and a fleet of replicas behave the same.

pub mod keys;
