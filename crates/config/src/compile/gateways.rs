//! Gateways to sockets and listeners: protocols, hostnames, TLS certificates, conflicts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::index::Index;
use super::routes::EntryBuild;
use super::tls::{certified_key, server_config, ClientAuth, SniResolver};
use super::CompileOptions;
use crate::error::Diagnostics;
use crate::ir::{HostPattern, ListenerIr, SocketIr, VirtualHost};
use crate::objects::gateway::{FromNamespaces, GatewaySpec, Listener};
use crate::objects::meta::LabelSelector;
use crate::objects::Object;

/// A listener while routes are being attached to it.
pub(crate) struct ListenerBuild {
    pub gateway_ns: String,
    pub gateway_name: String,
    pub gateway: Arc<str>,
    pub name: Arc<str>,
    pub hostname: HostPattern,
    pub port: u16,
    pub https: bool,
    pub from: FromNamespaces,
    pub selector: Option<LabelSelector>,
    /// `allowedRoutes.kinds` permits HTTPRoute.
    pub allows_http_route: bool,
    pub vhosts: BTreeMap<String, (HostPattern, Vec<EntryBuild>)>,
}

pub(crate) struct SocketBuild {
    pub address: IpAddr,
    pub port: u16,
    pub https: bool,
    pub resolver: SniResolver,
    /// Client certificate validation, once the first HTTPS listener has said (`Some(None)`:
    /// none). Every Gateway sharing the socket must agree: it is one TLS configuration.
    pub client_auth: Option<Option<ClientAuth>>,
    pub listeners: Vec<ListenerBuild>,
}

pub(crate) fn build_sockets(
    idx: &Index<'_>,
    options: &CompileOptions,
    diags: &mut Diagnostics,
) -> Vec<SocketBuild> {
    let mut sockets: Vec<SocketBuild> = Vec::new();
    for gw in &idx.gateways {
        let addresses = gateway_addresses(gw, options, diags);
        let mut names = Vec::new();
        for (i, l) in gw.spec.listeners.iter().enumerate() {
            let field = format!("spec.listeners[{i}]");
            if names.contains(&l.name.as_str()) {
                diags.error(gw.error(
                    format!("{field}.name"),
                    format!("duplicate listener name {:?}", l.name),
                ));
                continue;
            }
            names.push(&l.name);
            let Some(listener) = build_listener(gw, l, &field, diags) else {
                continue;
            };
            for address in &addresses {
                place(
                    &mut sockets,
                    *address,
                    listener.clone_empty(),
                    gw,
                    &field,
                    diags,
                );
            }
            if listener.https {
                client_validation(idx, gw, l.port, &mut sockets, &addresses, diags);
                add_certificates(
                    idx,
                    gw,
                    l,
                    &field,
                    &mut sockets,
                    &addresses,
                    &listener,
                    diags,
                );
            }
        }
    }
    sockets
}

impl ListenerBuild {
    fn clone_empty(&self) -> ListenerBuild {
        ListenerBuild {
            gateway_ns: self.gateway_ns.clone(),
            gateway_name: self.gateway_name.clone(),
            gateway: self.gateway.clone(),
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            port: self.port,
            https: self.https,
            from: self.from,
            selector: self.selector.clone(),
            allows_http_route: self.allows_http_route,
            vhosts: BTreeMap::new(),
        }
    }
}

fn gateway_addresses(
    gw: &Object<GatewaySpec>,
    options: &CompileOptions,
    diags: &mut Diagnostics,
) -> Vec<IpAddr> {
    if gw.spec.addresses.is_empty() {
        return vec![options.default_bind];
    }
    let mut out = Vec::new();
    for (i, a) in gw.spec.addresses.iter().enumerate() {
        let kind = a.kind.as_deref().unwrap_or("IPAddress");
        if kind != "IPAddress" {
            diags.error(gw.error(
                format!("spec.addresses[{i}].type"),
                format!("unsupported address type {kind:?} (only IPAddress)"),
            ));
            continue;
        }
        match a.value.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => diags.error(gw.error(
                format!("spec.addresses[{i}].value"),
                format!("{:?} is not an IP address", a.value),
            )),
        }
    }
    out
}

fn build_listener(
    gw: &Object<GatewaySpec>,
    l: &Listener,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<ListenerBuild> {
    let https = match l.protocol.as_str() {
        "HTTP" => false,
        "HTTPS" => true,
        other => {
            diags.error(gw.error(
                format!("{field}.protocol"),
                format!("unsupported protocol {other:?} (supported: HTTP, HTTPS)"),
            ));
            return None;
        }
    };
    let port = match u16::try_from(l.port) {
        Ok(p) if p > 0 => p,
        _ => {
            diags.error(gw.error(
                format!("{field}.port"),
                format!("port {} is out of range 1-65535", l.port),
            ));
            return None;
        }
    };
    let hostname = match &l.hostname {
        Some(h) => match validate_hostname(h) {
            Ok(()) => HostPattern::parse(h),
            Err(e) => {
                diags.error(gw.error(format!("{field}.hostname"), e));
                return None;
            }
        },
        None => HostPattern::Any,
    };
    if let Some(tls) = &l.tls {
        if !https {
            diags.warn(gw.error(
                format!("{field}.tls"),
                "ignored: the listener protocol is HTTP",
            ));
        }
        if tls.frontend_validation.is_some() {
            // Silently ignoring it would let clients in without the certificates it demands.
            diags.error(gw.error(
                format!("{field}.tls.frontendValidation"),
                "client certificate validation is configured Gateway-wide: use spec.tls.frontend (Gateway API v1.4)",
            ));
            return None;
        }
        if !tls.options.is_empty() {
            diags.warn(gw.error(
                format!("{field}.tls.options"),
                "ignored: no TLS options are supported",
            ));
        }
    }
    let allowed = l.allowed_routes.clone().unwrap_or_default();
    let ns = allowed.namespaces.unwrap_or_default();
    let from = ns.from.unwrap_or(FromNamespaces::Same);
    if from == FromNamespaces::Selector && ns.selector.is_none() {
        diags.error(gw.error(
            format!("{field}.allowedRoutes.namespaces.selector"),
            "is required when from is Selector",
        ));
        return None;
    }
    let allows_http_route = allowed.kinds.is_empty()
        || allowed.kinds.iter().any(|k| {
            k.kind == "HTTPRoute"
                && k.group.as_deref().unwrap_or(crate::objects::GATEWAY_GROUP)
                    == crate::objects::GATEWAY_GROUP
        });
    for (i, k) in allowed.kinds.iter().enumerate() {
        let group = k.group.as_deref().unwrap_or(crate::objects::GATEWAY_GROUP);
        if k.kind != "HTTPRoute" || group != crate::objects::GATEWAY_GROUP {
            diags.warn(gw.error(
                format!("{field}.allowedRoutes.kinds[{i}].kind"),
                format!("route kind {group}/{} is not supported; ignored", k.kind),
            ));
        }
    }
    Some(ListenerBuild {
        gateway_ns: gw.namespace().to_string(),
        gateway_name: gw.name().to_string(),
        gateway: Arc::from(format!("{}/{}", gw.namespace(), gw.name())),
        name: Arc::from(l.name.as_str()),
        hostname,
        port,
        https,
        from,
        selector: ns.selector,
        allows_http_route,
        vhosts: BTreeMap::new(),
    })
}

/// A `PreciseHostname` (redirects, rewrites, Backend FQDNs): a DNS name without wildcard.
pub(crate) fn validate_precise_hostname(h: &str) -> Result<(), String> {
    if h.starts_with('*') {
        return Err(format!(
            "invalid hostname {h:?}: a wildcard is not allowed here"
        ));
    }
    validate_hostname(h)
}

/// Gateway API hostnames: lowercase DNS names, optionally with a leading `*.`, never an IP.
pub(crate) fn validate_hostname(h: &str) -> Result<(), String> {
    let body = h.strip_prefix("*.").unwrap_or(h);
    let ok = !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !ok {
        return Err(format!(
            "invalid hostname {h:?}: expected a lowercase DNS name, optionally prefixed with \"*.\""
        ));
    }
    if body.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "invalid hostname {h:?}: IP addresses are not allowed"
        ));
    }
    Ok(())
}

fn place(
    sockets: &mut Vec<SocketBuild>,
    address: IpAddr,
    listener: ListenerBuild,
    gw: &Object<GatewaySpec>,
    field: &str,
    diags: &mut Diagnostics,
) {
    // A socket on every address (0.0.0.0 or ::) and one on a specific address cannot both listen
    // on the same port: report it here rather than as a bind failure at run time.
    if let Some(other) = sockets.iter().find(|s| {
        s.port == listener.port
            && s.address != address
            && (s.address.is_unspecified() || address.is_unspecified())
    }) {
        let first = &other.listeners[0];
        diags.error(gw.error(
            format!("{field}.port"),
            format!(
                "conflicting listeners: port {} on {address} overlaps port {} on {} (Gateway {} listener {:?}); an unspecified address binds every interface",
                listener.port, other.port, other.address, first.gateway, &*first.name,
            ),
        ));
        return;
    }
    match sockets
        .iter_mut()
        .find(|s| s.address == address && s.port == listener.port)
    {
        Some(socket) => {
            if socket.https != listener.https {
                let other = &socket.listeners[0];
                diags.error(gw.error(
                    format!("{field}.protocol"),
                    format!(
                        "conflicting listeners: port {} on {address} is {} for Gateway {} listener {:?} but {} here",
                        listener.port,
                        if socket.https { "HTTPS" } else { "HTTP" },
                        other.gateway,
                        &*other.name,
                        if listener.https { "HTTPS" } else { "HTTP" },
                    ),
                ));
                return;
            }
            if let Some(other) = socket
                .listeners
                .iter()
                .find(|o| o.hostname == listener.hostname)
            {
                diags.error(gw.error(
                    format!("{field}.hostname"),
                    format!(
                        "conflicting listeners: hostname {:?} on port {} ({address}) is also served by Gateway {} listener {:?}; give one Gateway its own spec.addresses",
                        listener.hostname.as_config_string(),
                        listener.port,
                        other.gateway,
                        &*other.name,
                    ),
                ));
                return;
            }
            socket.listeners.push(listener);
        }
        None => sockets.push(SocketBuild {
            address,
            port: listener.port,
            https: listener.https,
            resolver: SniResolver::default(),
            client_auth: None,
            listeners: vec![listener],
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn add_certificates(
    idx: &Index<'_>,
    gw: &Object<GatewaySpec>,
    l: &Listener,
    field: &str,
    sockets: &mut [SocketBuild],
    addresses: &[IpAddr],
    listener: &ListenerBuild,
    diags: &mut Diagnostics,
) {
    let Some(tls) = &l.tls else {
        diags.error(gw.error(format!("{field}.tls"), "is required for an HTTPS listener"));
        return;
    };
    if let Some(mode) = tls.mode.as_deref() {
        if mode != "Terminate" {
            diags.error(gw.error(
                format!("{field}.tls.mode"),
                format!("unsupported TLS mode {mode:?} (only Terminate)"),
            ));
            return;
        }
    }
    if tls.certificate_refs.is_empty() {
        diags.error(gw.error(
            format!("{field}.tls.certificateRefs"),
            "at least one certificate is required for an HTTPS listener",
        ));
        return;
    }
    for (i, r) in tls.certificate_refs.iter().enumerate() {
        let rfield = format!("{field}.tls.certificateRefs[{i}]");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        let group = r.group.as_deref().unwrap_or("");
        if kind != "Secret" || !group.is_empty() {
            diags.error(gw.error(
                format!("{rfield}.kind"),
                format!("unsupported certificate reference {group}/{kind} (only core Secret)"),
            ));
            continue;
        }
        let ns = r.namespace.as_deref().unwrap_or(gw.namespace());
        if !idx.reference_allowed("Gateway", gw.namespace(), "", "Secret", ns, &r.name) {
            diags.error(gw.error(
                rfield,
                format!(
                    "reference to Secret {ns}/{} is not permitted by any ReferenceGrant in namespace {ns}",
                    r.name
                ),
            ));
            continue;
        }
        let Some(secret) = idx.secret(ns, &r.name) else {
            diags.error(gw.error(rfield, format!("Secret {ns}/{} not found", r.name)));
            continue;
        };
        if let Some(t) = secret.spec.kind.as_deref() {
            if t != "kubernetes.io/tls" {
                diags.error(gw.error(
                    rfield,
                    format!(
                        "Secret {ns}/{} has type {t:?}; a certificate needs kubernetes.io/tls",
                        r.name
                    ),
                ));
                continue;
            }
        }
        let data = match super::backends::secret_data(secret) {
            Ok(d) => d,
            Err(e) => {
                diags.error(secret.error("data", e));
                continue;
            }
        };
        let (Some(cert), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) else {
            diags.error(gw.error(
                rfield,
                format!("Secret {ns}/{} must have tls.crt and tls.key", r.name),
            ));
            continue;
        };
        match certified_key(cert, key) {
            Ok(ck) => {
                for s in sockets
                    .iter_mut()
                    .filter(|s| s.port == listener.port && addresses.contains(&s.address))
                {
                    s.resolver.add(&listener.hostname, ck.clone());
                }
            }
            Err(e) => diags.error(secret.error("data", e)),
        }
    }
}

/// The Gateway's client certificate validation for `port` (`spec.tls.frontend`: the port's own
/// entry, else the default), applied to its sockets on that port.
fn client_validation(
    idx: &Index<'_>,
    gw: &Object<GatewaySpec>,
    port: u32,
    sockets: &mut [SocketBuild],
    addresses: &[IpAddr],
    diags: &mut Diagnostics,
) {
    let frontend = gw.spec.tls.as_ref().and_then(|t| t.frontend.as_ref());
    let chosen = frontend.and_then(|f| match f.per_port.iter().position(|p| p.port == port) {
        Some(i) => f.per_port[i]
            .tls
            .validation
            .as_ref()
            .map(|v| (format!("spec.tls.frontend.perPort[{i}].tls.validation"), v)),
        None => f
            .default
            .as_ref()
            .and_then(|d| d.validation.as_ref())
            .map(|v| ("spec.tls.frontend.default.validation".to_string(), v)),
    });
    let auth = match chosen {
        None => None,
        Some((field, v)) => match client_auth(idx, gw, &field, v) {
            Ok(a) => Some(a),
            Err((at, msg)) => {
                diags.error(gw.error(at, msg));
                return;
            }
        },
    };
    for s in sockets
        .iter_mut()
        .filter(|s| u32::from(s.port) == port && addresses.contains(&s.address))
    {
        match &s.client_auth {
            None => s.client_auth = Some(auth.clone()),
            Some(existing) if *existing == auth => {}
            Some(_) => diags.error(gw.error(
                "spec.tls.frontend",
                format!(
                    "port {port} on {} is shared with another Gateway whose client certificate validation differs; one port has one TLS configuration",
                    s.address
                ),
            )),
        }
    }
}

fn client_auth(
    idx: &Index<'_>,
    gw: &Object<GatewaySpec>,
    field: &str,
    v: &crate::objects::gateway::FrontendValidation,
) -> Result<ClientAuth, (String, String)> {
    let allow_insecure = match v.mode.as_deref() {
        None | Some("AllowValidOnly") => false,
        Some("AllowInsecureFallback") => true,
        Some(other) => {
            return Err((
                format!("{field}.mode"),
                format!("unknown mode {other:?}: use AllowValidOnly or AllowInsecureFallback"),
            ))
        }
    };
    if v.ca_certificate_refs.is_empty() {
        return Err((
            format!("{field}.caCertificateRefs"),
            "at least one CA certificate reference is required".into(),
        ));
    }
    let mut ca_pem = Vec::new();
    for (i, r) in v.ca_certificate_refs.iter().enumerate() {
        let rfield = format!("{field}.caCertificateRefs[{i}]");
        let kind = r.kind.as_deref().unwrap_or("ConfigMap");
        let group = r.group.as_deref().unwrap_or("");
        let ns = r.namespace.as_deref().unwrap_or(gw.namespace());
        if !group.is_empty() || !matches!(kind, "ConfigMap" | "Secret") {
            return Err((
                format!("{rfield}.kind"),
                format!("unsupported CA reference {group}/{kind} (a core ConfigMap or Secret)"),
            ));
        }
        if !idx.reference_allowed("Gateway", gw.namespace(), "", kind, ns, &r.name) {
            return Err((rfield, format!("reference to {kind} {ns}/{} is not permitted by any ReferenceGrant in namespace {ns}", r.name)));
        }
        let pem = if kind == "ConfigMap" {
            let cm = idx.config_map(ns, &r.name).ok_or_else(|| {
                (
                    rfield.clone(),
                    format!("ConfigMap {ns}/{} not found", r.name),
                )
            })?;
            cm.spec.data.get("ca.crt").map(|s| s.as_bytes().to_vec())
        } else {
            let s = idx
                .secret(ns, &r.name)
                .ok_or_else(|| (rfield.clone(), format!("Secret {ns}/{} not found", r.name)))?;
            super::backends::secret_data(s)
                .map_err(|e| (rfield.clone(), e))?
                .remove("ca.crt")
        };
        let pem = pem.ok_or_else(|| {
            (
                rfield.clone(),
                format!("{kind} {ns}/{} has no key ca.crt", r.name),
            )
        })?;
        super::tls::parse_certs(&pem)
            .map_err(|e| (rfield.clone(), format!("{kind} {ns}/{}: {e}", r.name)))?;
        ca_pem.extend_from_slice(&pem);
        ca_pem.push(b'\n');
    }
    Ok(ClientAuth {
        ca_pem,
        allow_insecure,
    })
}

/// Sorts everything by precedence and freezes the sockets into the IR.
pub(crate) fn finish(
    sockets: Vec<SocketBuild>,
    catalogs: &super::backends::Clusters,
    diags: &mut Diagnostics,
) -> Vec<Arc<SocketIr>> {
    let mut out = Vec::new();
    for s in sockets {
        let tls = if s.https {
            match server_config(s.resolver, s.client_auth.flatten().as_ref()) {
                Ok(cfg) => Some(cfg),
                Err(e) => {
                    diags.error(crate::error::ConfigError::new(format!(
                        "cannot build TLS configuration for port {}: {e}",
                        s.port
                    )));
                    None
                }
            }
        } else {
            None
        };
        let mut listeners: Vec<Arc<ListenerIr>> = s
            .listeners
            .into_iter()
            .map(|l| {
                let mut virtual_hosts: Vec<VirtualHost> = l
                    .vhosts
                    .into_values()
                    .map(|(host, mut entries)| {
                        entries.sort_by(|a, b| a.key.cmp(&b.key));
                        VirtualHost {
                            host,
                            entries: entries.into_iter().map(|e| e.entry).collect(),
                        }
                    })
                    .collect();
                virtual_hosts.sort_by(|a, b| a.host.specificity_cmp(&b.host));
                let has_ai_routes = virtual_hosts.iter().any(|v| {
                    v.entries.iter().any(|e| {
                        e.rule
                            .backends
                            .iter()
                            .any(|b| matches!(b.target, crate::ir::BackendTarget::Ai(_)))
                    })
                });
                let rate_limits = catalogs.rate_limits.gateway(&l.gateway_ns, &l.gateway_name);
                let counts_tokens = rate_limits.as_ref().is_some_and(|p| p.counts_tokens())
                    || virtual_hosts
                        .iter()
                        .flat_map(|v| &v.entries)
                        .any(|e| e.rule.counts_tokens());
                Arc::new(ListenerIr {
                    ai: catalogs
                        .ai
                        .listener(&l.gateway_ns, &l.gateway_name, has_ai_routes),
                    access: catalogs.access.gateway(&l.gateway_ns, &l.gateway_name),
                    rate_limits,
                    counts_tokens,
                    pre_routing: catalogs.payload.gateway(&l.gateway_ns, &l.gateway_name).0,
                    post_routing: catalogs.payload.gateway(&l.gateway_ns, &l.gateway_name).1,
                    gateway: l.gateway,
                    name: l.name,
                    hostname: l.hostname,
                    port: l.port,
                    https: l.https,
                    virtual_hosts,
                })
            })
            .collect();
        listeners.sort_by(|a, b| a.hostname.specificity_cmp(&b.hostname));
        out.push(Arc::new(SocketIr {
            address: s.address,
            port: s.port,
            tls,
            listeners,
        }));
    }
    out.sort_by_key(|s| (s.port, s.address));
    out
}
