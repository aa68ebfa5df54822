//! Throwaway PKI for tests: a CA plus leaf certificates signed by it.
//!
//! Real TLS (SNI selection, ALPN, hostname verification) only gets exercised when the client
//! actually verifies the chain, so tests trust a freshly generated CA instead of disabling
//! verification. Everything is available as PEM (for Kubernetes `Secret`s handed to the gateway)
//! and as rustls types (for in-process clients and upstreams).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::BoxError;

/// Which ALPN protocols a TLS config offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// No ALPN extension.
    None,
    /// `http/1.1` only.
    Http1,
    /// `h2` only.
    Http2,
    /// `h2` preferred, then `http/1.1`.
    Both,
}

impl Alpn {
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::None => vec![],
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::Http2 => vec![b"h2".to_vec()],
            Alpn::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }
}

/// The ring provider, explicitly: the process-wide default may be ambiguous when several
/// providers are compiled in, and tests must not depend on global install order.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed certificate authority.
pub struct CertAuthority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl CertAuthority {
    /// Generate a new CA with the given common name.
    pub fn new(common_name: &str) -> Result<Self, BoxError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Self { issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Issue a server+client leaf for `names`: each entry is a DNS name (wildcards such as
    /// `*.example.org` allowed) or an IP address literal.
    pub fn issue(&self, names: &[&str]) -> Result<LeafCert, BoxError> {
        let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(sans)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(LeafCert {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            ca_der: self.cert_der(),
        })
    }

    /// A root store containing only this CA.
    pub fn root_store(&self) -> Result<RootCertStore, BoxError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert_der())?;
        Ok(roots)
    }

    /// A client config that trusts only this CA and offers `alpn`.
    pub fn client_config(&self, alpn: Alpn) -> Result<Arc<ClientConfig>, BoxError> {
        let mut config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.root_store()?)
            .with_no_client_auth();
        config.alpn_protocols = alpn.protocols();
        Ok(Arc::new(config))
    }
}

/// A leaf certificate and its private key.
#[derive(Clone)]
pub struct LeafCert {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
    key_der: Vec<u8>,
    ca_der: CertificateDer<'static>,
}

impl LeafCert {
    /// The leaf certificate, PEM (what goes into a `kubernetes.io/tls` Secret's `tls.crt`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS#8 PEM (`tls.key`).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// Leaf then issuing CA, for servers that present the full chain.
    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone(), self.ca_der.clone()]
    }

    /// A server config presenting this certificate and offering `alpn`.
    pub fn server_config(&self, alpn: Alpn) -> Result<Arc<ServerConfig>, BoxError> {
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], self.key_der())?;
        config.alpn_protocols = alpn.protocols();
        Ok(Arc::new(config))
    }
}
