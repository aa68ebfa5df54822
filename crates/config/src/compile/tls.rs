//! TLS material: listener certificates (with SNI selection) and upstream client configurations.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::ir::HostPattern;

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    let certs = certs.map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

pub(crate) fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("invalid PEM private key: {e}"))?
        .ok_or_else(|| "no PEM private key found".to_string())
}

/// A certificate and key ready to serve.
pub(crate) fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let certs = parse_certs(cert_pem)?;
    let key = parse_key(key_pem)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| format!("certificate and private key do not match: {e}"))?;
    Ok(Arc::new(ck))
}

/// Picks the certificate for a TLS handshake from its SNI: exact hostname, then the longest
/// wildcard, then a listener without hostname, then the first certificate configured.
#[derive(Debug, Default)]
pub(crate) struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    any: Option<Arc<CertifiedKey>>,
    first: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    pub fn add(&mut self, host: &HostPattern, key: Arc<CertifiedKey>) {
        if self.first.is_none() {
            self.first = Some(key.clone());
        }
        match host {
            HostPattern::Exact(h) => {
                self.exact.entry(h.clone()).or_insert(key);
            }
            HostPattern::Wildcard(s) => {
                self.wildcard.push((s.clone(), key));
                self.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
            }
            HostPattern::Any => {
                self.any.get_or_insert(key);
            }
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, k)) = self
                .wildcard
                .iter()
                .find(|(s, _)| name.len() > s.len() && name.ends_with(s.as_str()))
            {
                return Some(k.clone());
            }
        }
        self.any.clone().or_else(|| self.first.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// Client certificate validation of a listener socket (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAuth {
    /// The trusted CA bundle, PEM.
    pub ca_pem: Vec<u8>,
    /// Clients without a certificate may connect (`AllowInsecureFallback`); one that presents
    /// an invalid certificate still fails the handshake.
    pub allow_insecure: bool,
}

pub(crate) fn server_config(
    resolver: SniResolver,
    client_auth: Option<&ClientAuth>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in parse_certs(&auth.ca_pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("invalid CA certificate: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let verifier = if auth.allow_insecure {
                verifier.allow_unauthenticated()
            } else {
                verifier
            }
            .build()
            .map_err(|e| format!("client certificate validation: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// What an upstream TLS connection trusts and presents.
pub(crate) struct ClientTlsSettings {
    /// PEM CA bundle; `None` = the webpki roots.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub alpn: Vec<Vec<u8>>,
}

pub(crate) fn client_config(s: &ClientTlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &s.ca_pem {
        Some(pem) => {
            for cert in parse_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("invalid CA certificate: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if s.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider())))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut cfg = match &s.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(parse_certs(cert)?, parse_key(key)?)
            .map_err(|e| format!("invalid client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = s.alpn.clone();
    Ok(Arc::new(cfg))
}

pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("invalid SNI {name:?}: {e}"))
}

/// `insecureSkipVerify: true`: accepts any server certificate (signatures are still checked so
/// the handshake itself stays sound). Only ever built when the config asks for it.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A short stable digest (FNV-1a) of TLS material, so transports can be compared across reloads.
pub(crate) fn digest(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// TLS to a public endpoint named by a credential (e.g. an OAuth token URI): webpki roots, the
/// host as SNI, HTTP/1.1.
pub fn public_client_tls(host: &str) -> Result<crate::ir::UpstreamTls, String> {
    let config = client_config(&ClientTlsSettings {
        ca_pem: None,
        insecure_skip_verify: false,
        client_cert: None,
        alpn: vec![b"http/1.1".to_vec()],
    })?;
    Ok(crate::ir::UpstreamTls {
        config,
        server_name: server_name(host)?,
    })
}
