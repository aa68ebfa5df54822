//! Backend references to upstream clusters: Services (through EndpointSlices) and Backends
//! (FQDN or IP destinations with TLS origination).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine;

use super::index::Index;
use super::tls::{client_config, digest, server_name, ClientTlsSettings};
use crate::error::Diagnostics;
use crate::ir::{BackendTarget, Cluster, Endpoints, UpstreamProtocol, UpstreamTls};
use crate::objects::ai::SLUICE_GROUP;
use crate::objects::backend::{BackendSpec, DestinationType, TlsMode};
use crate::objects::core::{IntOrString, SecretBody, ServicePort, ServiceSpec};
use crate::objects::httproute::BackendObjectReference;
use crate::objects::{Object, GATEWAY_GROUP};

/// Clusters of one snapshot, deduplicated by what they point at.
#[derive(Default)]
pub(crate) struct Clusters {
    by_key: HashMap<String, Arc<Cluster>>,
    list: Vec<Arc<Cluster>>,
    /// Every Backend port as `check_backends` built it, so a reference reuses the result (TLS
    /// configuration included) instead of building it again. Taken out when first interned.
    checked: HashMap<(String, String, u32), Result<BackendCluster, String>>,
    /// AI backends and policies, compiled before routes so route rules can refer to them.
    pub ai: super::ai::AiCatalog,
    pub access: super::access::AccessCatalog,
    pub rate_limits: super::ratelimit::RateLimitCatalog,
    pub payload: super::payload::PayloadCatalog,
}

impl Clusters {
    pub fn into_vec(self) -> Vec<Arc<Cluster>> {
        self.list
    }

    fn intern(&mut self, key: String, make: impl FnOnce(usize) -> Cluster) -> Arc<Cluster> {
        if let Some(c) = self.by_key.get(&key) {
            return c.clone();
        }
        let c = Arc::new(make(self.list.len()));
        self.list.push(c.clone());
        self.by_key.insert(key, c.clone());
        c
    }

    /// Resolves a backend reference of a route. Unresolvable references become
    /// [`BackendTarget::Invalid`] (requests get 500, as the spec says) with a warning; malformed
    /// ones are errors.
    pub fn resolve<T>(
        &mut self,
        idx: &Index<'_>,
        route: &Object<T>,
        field: &str,
        r: &BackendObjectReference,
        diags: &mut Diagnostics,
    ) -> BackendTarget {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Service");
        let ns = r.namespace.as_deref().unwrap_or(route.namespace());
        let invalid = |diags: &mut Diagnostics, msg: String| {
            diags.warn(route.error(field, format!("{msg}; requests to it get 500")));
            BackendTarget::Invalid(Arc::from(msg))
        };
        let target_group = match (group, kind) {
            ("", "Service") => "",
            (GATEWAY_GROUP, "Backend") => GATEWAY_GROUP,
            (SLUICE_GROUP, "AIBackend") => SLUICE_GROUP,
            _ => return invalid(diags, format!("unsupported backend kind {group}/{kind}")),
        };
        if !idx.reference_allowed(
            route.kind,
            route.namespace(),
            target_group,
            kind,
            ns,
            &r.name,
        ) {
            return invalid(
                diags,
                format!(
                    "reference to {kind} {ns}/{} is not permitted by any ReferenceGrant in namespace {ns}",
                    r.name
                ),
            );
        }
        if kind == "AIBackend" {
            return match self.ai.backend(ns, &r.name) {
                Some(Ok(ai)) => BackendTarget::Ai(ai.clone()),
                // Already reported against the AIBackend.
                Some(Err(msg)) => BackendTarget::Invalid(Arc::from(msg.as_str())),
                None => invalid(diags, format!("AIBackend {ns}/{} not found", r.name)),
            };
        }
        if kind == "Service" {
            let Some(port) = r.port else {
                diags.error(
                    route.error(format!("{field}.port"), "is required for a Service backend"),
                );
                return BackendTarget::Invalid(Arc::from("missing port"));
            };
            let Some(svc) = idx.service(ns, &r.name) else {
                return invalid(diags, format!("Service {ns}/{} not found", r.name));
            };
            let Some(sp) = svc.spec.ports.iter().find(|p| p.port == port) else {
                return invalid(diags, format!("Service {ns}/{} has no port {port}", r.name));
            };
            let key = format!("Service/{ns}/{}:{port}", r.name);
            let endpoints = service_endpoints(idx, svc, sp, diags);
            let protocol = match sp.app_protocol.as_deref() {
                Some("kubernetes.io/h2c") => UpstreamProtocol::Http2,
                _ => UpstreamProtocol::Http1,
            };
            BackendTarget::Cluster(self.intern(key.clone(), |id| Cluster {
                id,
                name: Arc::from(format!("Service {ns}/{}:{port}", r.name)),
                endpoints: Endpoints::Static(endpoints),
                protocol,
                tls: None,
                transport_key: format!("{protocol:?}"),
            }))
        } else {
            let Some(backend) = idx.backend(ns, &r.name) else {
                return invalid(diags, format!("Backend {ns}/{} not found", r.name));
            };
            let ports = &backend.spec.destination.ports;
            let port = match r.port {
                Some(n) if ports.iter().any(|p| p.number == n) => n,
                Some(n) => {
                    return invalid(diags, format!("Backend {ns}/{} has no port {n}", r.name))
                }
                None if ports.len() == 1 => ports[0].number,
                None => {
                    diags.error(route.error(
                        format!("{field}.port"),
                        format!(
                            "is required: Backend {ns}/{} has {} ports",
                            r.name,
                            ports.len()
                        ),
                    ));
                    return BackendTarget::Invalid(Arc::from("missing port"));
                }
            };
            let key = format!("Backend/{ns}/{}:{port}", r.name);
            if let Some(c) = self.by_key.get(&key) {
                return BackendTarget::Cluster(c.clone());
            }
            let checked = (ns.to_string(), r.name.clone(), port);
            match self.checked.remove(&checked) {
                Some(Ok(make)) => {
                    BackendTarget::Cluster(self.intern(key, |id| make.into_cluster(id)))
                }
                // Already reported against the Backend by `check_backends`.
                Some(Err(msg)) => {
                    let target = BackendTarget::Invalid(Arc::from(msg.as_str()));
                    self.checked.insert(checked, Err(msg));
                    target
                }
                None => BackendTarget::Invalid(Arc::from("Backend was not validated")),
            }
        }
    }

    /// Validates every Backend, referenced or not, reporting each problem once.
    pub fn check_backends(&mut self, idx: &Index<'_>, diags: &mut Diagnostics) {
        for b in &idx.set.backends {
            if b.spec.destination.ports.is_empty() {
                diags.error(b.error("spec.destination.ports", "at least one port is required"));
                continue;
            }
            let mut reported: Vec<(String, String)> = Vec::new();
            for p in &b.spec.destination.ports {
                let built = backend_cluster(idx, b, Some(p.number));
                if let Err(e) = &built {
                    if !reported.contains(e) {
                        diags.error(b.error(e.0.clone(), e.1.clone()));
                        reported.push(e.clone());
                    }
                }
                let key = (b.namespace().to_string(), b.name().to_string(), p.number);
                self.checked.insert(key, built.map_err(|(_, msg)| msg));
            }
        }
    }
}

/// Ready endpoint addresses of a Service port, from the EndpointSlices labelled with its name.
fn service_endpoints(
    idx: &Index<'_>,
    svc: &Object<ServiceSpec>,
    sp: &ServicePort,
    diags: &mut Diagnostics,
) -> Vec<SocketAddr> {
    let port_name = sp.name.as_deref().unwrap_or("");
    let mut out = Vec::new();
    for slice in idx.endpoint_slices(svc.namespace(), svc.name()) {
        let port = slice
            .spec
            .ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .or(match &sp.target_port {
                Some(IntOrString::Int(p)) if slice.spec.ports.is_empty() => Some(*p),
                None if slice.spec.ports.is_empty() => Some(sp.port),
                _ => None,
            });
        let Some(port) = port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for (e, ep) in slice.spec.endpoints.iter().enumerate() {
            // Per the EndpointSlice API, an unknown (nil) readiness means ready.
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for (a, addr) in ep.addresses.iter().enumerate() {
                match addr.parse::<IpAddr>() {
                    Ok(ip) => out.push(SocketAddr::new(ip, port)),
                    Err(_) => diags.error(slice.error(
                        format!("endpoints[{e}].addresses[{a}]"),
                        format!("{addr:?} is not an IP address"),
                    )),
                }
            }
        }
    }
    out
}

/// Decodes a Secret's `data` (base64) and `stringData` (which wins, as on the API server).
pub(crate) fn secret_data(
    secret: &Object<SecretBody>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in &secret.spec.data {
        let compact: String = v.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| format!("data.{k} is not valid base64: {e}"))?;
        out.insert(k.clone(), bytes);
    }
    for (k, v) in &secret.spec.string_data {
        out.insert(k.clone(), v.as_bytes().to_vec());
    }
    Ok(out)
}

struct BackendCluster {
    name: String,
    endpoints: Endpoints,
    protocol: UpstreamProtocol,
    tls: Option<UpstreamTls>,
    transport_key: String,
}

impl BackendCluster {
    fn into_cluster(self, id: usize) -> Cluster {
        Cluster {
            id,
            name: Arc::from(self.name),
            endpoints: self.endpoints,
            protocol: self.protocol,
            tls: self.tls,
            transport_key: self.transport_key,
        }
    }
}

fn backend_cluster(
    idx: &Index<'_>,
    backend: &Object<BackendSpec>,
    port: Option<u32>,
) -> Result<BackendCluster, (String, String)> {
    let d = &backend.spec.destination;
    let host = match d.kind {
        DestinationType::Fqdn => {
            let Some(f) = &d.fqdn else {
                return Err((
                    "spec.destination.fqdn".into(),
                    "is required when type is FQDN".into(),
                ));
            };
            super::gateways::validate_precise_hostname(&f.hostname)
                .map_err(|e| ("spec.destination.fqdn.hostname".to_string(), e))?;
            f.hostname.clone()
        }
        DestinationType::Ip => {
            let Some(ip) = &d.ip else {
                return Err((
                    "spec.destination.ip".into(),
                    "is required when type is IP".into(),
                ));
            };
            if ip.address.parse::<IpAddr>().is_err() {
                return Err((
                    "spec.destination.ip.address".into(),
                    format!("{:?} is not an IP address", ip.address),
                ));
            }
            ip.address.clone()
        }
    };
    let (pi, p) = match port {
        Some(n) => d
            .ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.number == n)
            .ok_or_else(|| {
                (
                    "spec.destination.ports".to_string(),
                    format!("has no port {n}"),
                )
            })?,
        None if d.ports.len() == 1 => (0, &d.ports[0]),
        None => {
            return Err((
                "spec.destination.ports".into(),
                "the backendRef must name a port when the Backend has several (or none)".into(),
            ))
        }
    };
    let pfield = format!("spec.destination.ports[{pi}]");
    let number = u16::try_from(p.number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            (
                format!("{pfield}.number"),
                format!("port {} is out of range 1-65535", p.number),
            )
        })?;
    let (protocol, default_tls) = match p.protocol.as_deref().unwrap_or("HTTP") {
        "HTTP" => (UpstreamProtocol::Http1, false),
        "HTTP2" => (UpstreamProtocol::Http2, false),
        "HTTPS" | "TLS" => (UpstreamProtocol::Auto, true),
        other => {
            return Err((
                format!("{pfield}.protocol"),
                format!("unsupported protocol {other:?} (supported: HTTP, HTTP2, HTTPS, TLS)"),
            ))
        }
    };
    let mode = p
        .tls
        .as_ref()
        .and_then(|t| t.mode)
        .unwrap_or(if default_tls {
            TlsMode::Simple
        } else {
            TlsMode::None
        });
    let mut transport_key = format!("{protocol:?}");
    let tls = if mode == TlsMode::None {
        None
    } else {
        let t = p
            .tls
            .clone()
            .unwrap_or(crate::objects::backend::BackendTls {
                mode: None,
                sni: None,
                ca_bundle_ref: None,
                insecure_skip_verify: None,
                client_certificate_ref: None,
            });
        let tfield = format!("{pfield}.tls");
        let ca_pem = match &t.ca_bundle_ref {
            Some(r) => {
                Some(ca_bundle(idx, backend, r).map_err(|e| (format!("{tfield}.caBundleRef"), e))?)
            }
            None => None,
        };
        let client_cert = match (mode, &t.client_certificate_ref) {
            (TlsMode::Mutual, Some(r)) => {
                let secret = idx.secret(backend.namespace(), &r.name).ok_or_else(|| {
                    (
                        format!("{tfield}.clientCertificateRef"),
                        format!("Secret {}/{} not found", backend.namespace(), r.name),
                    )
                })?;
                let data = secret_data(secret)
                    .map_err(|e| (format!("{tfield}.clientCertificateRef"), e))?;
                match (data.get("tls.crt"), data.get("tls.key")) {
                    (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                    _ => {
                        return Err((
                            format!("{tfield}.clientCertificateRef"),
                            format!(
                                "Secret {}/{} must have tls.crt and tls.key",
                                backend.namespace(),
                                r.name
                            ),
                        ))
                    }
                }
            }
            (TlsMode::Mutual, None) => {
                return Err((
                    format!("{tfield}.clientCertificateRef"),
                    "is required when mode is Mutual".into(),
                ))
            }
            _ => None,
        };
        let insecure = t.insecure_skip_verify.unwrap_or(false);
        let alpn = match protocol {
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        let settings = ClientTlsSettings {
            ca_pem,
            insecure_skip_verify: insecure,
            client_cert,
            alpn,
        };
        let config = client_config(&settings).map_err(|e| (tfield.clone(), e))?;
        let sni = t.sni.clone().unwrap_or_else(|| host.clone());
        let server_name = server_name(&sni).map_err(|e| (format!("{tfield}.sni"), e))?;
        let empty: &[u8] = &[];
        let (cc, ck) = settings
            .client_cert
            .as_ref()
            .map_or((empty, empty), |(c, k)| (c.as_slice(), k.as_slice()));
        let d = digest(&[settings.ca_pem.as_deref().unwrap_or(empty), cc, ck]);
        transport_key = format!("{protocol:?}|tls|sni={sni}|insecure={insecure}|{d:x}");
        Some(UpstreamTls {
            config,
            server_name,
        })
    };
    let endpoints = match host.parse::<IpAddr>() {
        Ok(ip) => Endpoints::Static(vec![SocketAddr::new(ip, number)]),
        Err(_) => Endpoints::Dns {
            hostname: host.clone(),
            port: number,
        },
    };
    Ok(BackendCluster {
        name: format!(
            "Backend {}/{}:{number}",
            backend.namespace(),
            backend.name()
        ),
        endpoints,
        protocol,
        tls,
        transport_key,
    })
}

/// A CA bundle from a ConfigMap (default kind) or Secret, key `ca.crt`.
fn ca_bundle(
    idx: &Index<'_>,
    backend: &Object<BackendSpec>,
    r: &crate::objects::meta::LocalObjectReference,
) -> Result<Vec<u8>, String> {
    let ns = backend.namespace();
    match r.kind.as_deref().unwrap_or("ConfigMap") {
        "ConfigMap" => {
            let cm = idx
                .config_map(ns, &r.name)
                .ok_or_else(|| format!("ConfigMap {ns}/{} not found", r.name))?;
            cm.spec
                .data
                .get("ca.crt")
                .map(|s| s.as_bytes().to_vec())
                .ok_or_else(|| format!("ConfigMap {ns}/{} has no key ca.crt", r.name))
        }
        "Secret" => {
            let s = idx
                .secret(ns, &r.name)
                .ok_or_else(|| format!("Secret {ns}/{} not found", r.name))?;
            secret_data(s)?
                .remove("ca.crt")
                .ok_or_else(|| format!("Secret {ns}/{} has no key ca.crt", r.name))
        }
        other => Err(format!("unsupported kind {other:?} (ConfigMap or Secret)")),
    }
}
