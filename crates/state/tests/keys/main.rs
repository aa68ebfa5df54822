//! Key store tests against real stores: JSON files in temp dirs and real `redis-server`
//! processes started by the testkit (one per test, so tests run in parallel and under nextest).

mod file_store;
mod outage;
mod redis_store;
mod replicas;
mod suite;
mod support;
