//! Kubernetes-shaped configuration for tests.
//!
//! Sluice is configured with the same objects a cluster would hold (Gateway API resources,
//! Services, EndpointSlices, Secrets). Tests take upstream manifests verbatim, inspect them, and
//! add the objects a cluster would have generated: EndpointSlices pointing at in-process echo
//! "pods", TLS Secrets from [`crate::certs`], the GatewayClass. Generated objects are built as
//! `serde_json::Value` and emitted as plain block YAML by [`to_yaml`], so the gateway's YAML
//! loader sees ordinary files.

use std::net::IpAddr;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::BoxError;

/// One document of a multi-document YAML stream: the raw text (kept verbatim so it can be
/// written back unchanged) and its parsed value.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub raw: String,
    pub value: Value,
}

impl Manifest {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    /// `metadata.namespace`, empty when unset.
    pub fn namespace(&self) -> &str {
        self.value["metadata"]["namespace"].as_str().unwrap_or("")
    }
}

/// Split a YAML stream on `---` lines and parse each non-empty document. Documents holding only
/// comments are dropped.
pub fn split_documents(yaml: &str) -> Result<Vec<Manifest>, BoxError> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| -> Result<(), BoxError> {
        let text = std::mem::take(current);
        let has_content = text.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
        if has_content {
            let value: Value = serde_saphyr::from_str(&text)
                .map_err(|e| format!("parsing YAML document:\n{text}\n{e}"))?;
            docs.push(Manifest { raw: text, value });
        }
        Ok(())
    };
    for line in yaml.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            flush(&mut current)?;
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current)?;
    Ok(docs)
}

/// Join documents (raw YAML texts) into one stream.
pub fn join_documents<I, S>(docs: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        out.push_str(doc.as_ref().trim_end_matches('\n'));
        out.push('\n');
    }
    out
}

/// Emit `value` as block-style YAML. Strings are always double-quoted (JSON escaping is valid
/// YAML), so values like `"80"`, `"true"` or `"*.example.org"` keep their type.
pub fn to_yaml(value: &Value) -> String {
    match value {
        Value::Object(m) if !m.is_empty() => lines(value).join("\n") + "\n",
        Value::Array(a) if !a.is_empty() => lines(value).join("\n") + "\n",
        other => scalar(other) + "\n",
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => false,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b))
        && !k.starts_with(['-', '.']);
    if plain {
        k.to_owned()
    } else {
        Value::String(k.to_owned()).to_string()
    }
}

fn lines(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if is_block(v) {
                    out.push(format!("{}:", key(k)));
                    out.extend(lines(v).into_iter().map(|l| format!("  {l}")));
                } else {
                    out.push(format!("{}: {}", key(k), scalar(v)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    for (i, l) in lines(item).into_iter().enumerate() {
                        out.push(if i == 0 {
                            format!("- {l}")
                        } else {
                            format!("  {l}")
                        });
                    }
                } else {
                    out.push(format!("- {}", scalar(item)));
                }
            }
        }
        other => out.push(scalar(other)),
    }
    out
}

/// A port of a `v1/Service`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePort {
    /// Empty when unnamed.
    pub name: String,
    pub port: u16,
    /// `TCP` unless specified.
    pub protocol: String,
    pub app_protocol: Option<String>,
}

impl ServicePort {
    /// The EndpointSlice entry for this Service port, served on `port`.
    pub fn slice_port(&self, port: u16) -> SlicePort {
        SlicePort {
            name: self.name.clone(),
            port,
            protocol: self.protocol.clone(),
            app_protocol: self.app_protocol.clone(),
        }
    }
}

/// The ports of a Service manifest.
pub fn service_ports(service: &Value) -> Vec<ServicePort> {
    let Some(ports) = service["spec"]["ports"].as_array() else {
        return Vec::new();
    };
    ports
        .iter()
        .filter_map(|p| {
            Some(ServicePort {
                name: p["name"].as_str().unwrap_or("").to_owned(),
                port: u16::try_from(p["port"].as_u64()?).ok()?,
                protocol: p["protocol"].as_str().unwrap_or("TCP").to_owned(),
                app_protocol: p["appProtocol"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

/// One endpoint (a "pod") of an EndpointSlice.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// Referenced as `targetRef` (kind Pod).
    pub pod: String,
    pub ready: bool,
}

/// An EndpointSlice port: a Service port's name/protocol/appProtocol with the real port number.
#[derive(Clone, Debug)]
pub struct SlicePort {
    pub name: String,
    pub port: u16,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

/// A `discovery.k8s.io/v1` EndpointSlice for `service`, labelled
/// `kubernetes.io/service-name` like the ones the EndpointSlice controller creates.
pub fn endpoint_slice(
    name: &str,
    namespace: &str,
    service: &str,
    ports: &[SlicePort],
    endpoints: &[Endpoint],
) -> Value {
    let address_type = match endpoints.first().map(|e| e.ip) {
        Some(IpAddr::V6(_)) => "IPv6",
        _ => "IPv4",
    };
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut port = Map::new();
            port.insert("name".into(), json!(p.name));
            port.insert("port".into(), json!(p.port));
            port.insert("protocol".into(), json!(p.protocol));
            if let Some(ap) = &p.app_protocol {
                port.insert("appProtocol".into(), json!(ap));
            }
            Value::Object(port)
        })
        .collect();
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|e| {
            json!({
                "addresses": [e.ip.to_string()],
                "conditions": { "ready": e.ready },
                "targetRef": { "kind": "Pod", "name": e.pod, "namespace": namespace },
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { "kubernetes.io/service-name": service },
        },
        "addressType": address_type,
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// A `kubernetes.io/tls` Secret (`tls.crt` / `tls.key`, base64 as in the API).
pub fn tls_secret(name: &str, namespace: &str, cert_pem: &str, key_pem: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": b64.encode(cert_pem),
            "tls.key": b64.encode(key_pem),
        },
    })
}

/// A GatewayClass handled by `controller_name`.
pub fn gateway_class(name: &str, controller_name: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": { "name": name },
        "spec": { "controllerName": controller_name },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_through_the_parser() {
        let value = json!({
            "a": "80", "b": 80, "c": true, "d": null, "e": [], "f": {},
            "g": [{"x": 1, "y": ["p", "q"]}, "s", [1, 2]],
            "kubernetes.io/service-name": "*.wild: card",
            "weird key": "multi\nline \"quoted\"",
        });
        let text = to_yaml(&value);
        let parsed: Value = serde_saphyr::from_str(&text).expect("emitted YAML parses");
        assert_eq!(parsed, value, "YAML was:\n{text}");
    }

    #[test]
    fn splits_multi_document_streams() {
        let docs = split_documents(
            "# only a comment\n---\nkind: A\nmetadata:\n  name: x\n---\n\n---\nkind: B\n",
        )
        .expect("valid stream");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].kind(), "A");
        assert_eq!(docs[0].name(), "x");
        assert_eq!(docs[1].kind(), "B");
        let joined = join_documents(docs.iter().map(|d| d.raw.as_str()));
        assert_eq!(split_documents(&joined).expect("rejoined").len(), 2);
    }

    #[test]
    fn service_ports_default_protocol_and_name() {
        let svc = json!({"spec": {"ports": [{"port": 8080, "targetPort": 3000},
            {"name": "h2", "port": 8081, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"}]}});
        let ports = service_ports(&svc);
        assert_eq!(ports[0].name, "");
        assert_eq!(ports[0].protocol, "TCP");
        assert_eq!(ports[1].app_protocol.as_deref(), Some("kubernetes.io/h2c"));
    }
}
