//! Test support for Sluice.
//!
//! Everything here exists so that integration tests can exercise the real `sluice` binary the
//! way a cluster would: real upstream servers ([`upstream`], [`echo`]), real certificates
//! ([`certs`]), Kubernetes-shaped configuration ([`k8s`]), a process harness ([`gateway`]),
//! real `redis-server` processes ([`redis`]), a scriptable Envoy ext_proc gRPC server
//! ([`extproc`]) and a small, non-redirect-following HTTP client
//! ([`client`]).
//!
//! Helpers return errors instead of panicking so that a test can decide whether a failure is
//! fatal or just one entry in a collected report.

pub mod certs;
pub mod client;
pub mod echo;
pub mod extproc;
pub mod gateway;
pub mod k8s;
pub mod redis;
pub mod tempdir;
pub mod upstream;

/// The error type used throughout the testkit: tests only ever display these.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use certs::{Alpn, CertAuthority, LeafCert};
pub use client::{ClientRequest, ClientResponse, HttpVersion};
pub use echo::{EchoConfig, EchoedRequest};
pub use extproc::ExtProcServer;
pub use gateway::{ConfigStatus, GatewayOptions, GatewayProcess};
pub use redis::RedisServer;
pub use tempdir::TempDir;
pub use upstream::{Body, ConnInfo, Upstream, UpstreamBuilder};

/// A lowercase alphanumeric string of `len` random characters, used for Kubernetes-style
/// generated names (`<deployment>-<hash>-<suffix>`) and unique temp paths.
pub fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// A random integer in `0..upper` (request entropy, e.g. the conformance `X-Jitter` header).
pub fn random_below(upper: u64) -> u64 {
    fastrand::u64(..upper.max(1))
}
