//! Builds a "cluster" for one conformance test: config directory, echo pods, gateway process.
//!
//! Layout choices (all per test, so tests run in parallel without colliding):
//! * Gateway listeners bind on `127.0.0.<10+index>` with `--port-offset 20000` (80 → 20080,
//!   8080 → 28080, 443 → 20443); the admin server uses a free port on the same IP.
//! * Every Service of the base manifests with a TCP port (except `tls-backend*`) gets as many
//!   echo pods as its Deployment has replicas (default 1), named like Kubernetes pods
//!   (`<deployment>-<hash>-<suffix>`) and reporting the Service's namespace. Pod n of test i
//!   listens on `127.1.<i>.<n>`; all pods of a Service share one port number, which serves every
//!   Service port (echo speaks HTTP/1.1 and h2c on one socket). So each Service gets a single
//!   EndpointSlice with one `ports[]` entry per Service port (its name, `""` when unnamed,
//!   protocol and appProtocol) all carrying that shared port.
//! * Only the Gateways the test addresses are kept: the base manifests declare several Gateways
//!   on port 80, which on a cluster get separate addresses but here would share one bind IP.
//! * The HTTPS listener's Secret `tls-validity-checks-certificate` (created by the Go suite at
//!   runtime, so absent from the manifests) is generated from a throwaway CA the client trusts.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use serde_json::Value;
use sluice_testkit::k8s::{self, Endpoint, Manifest};
use sluice_testkit::{
    Alpn, BoxError, CertAuthority, ConfigStatus, EchoConfig, GatewayOptions, GatewayProcess,
    TempDir, Upstream,
};

use super::model::{data_dir, CaseFile};

pub const PORT_OFFSET: u16 = 20000;
const GATEWAY_CLASS: &str = "sluice";
const CONTROLLER_NAME: &str = "sluice.dev/gateway-controller";
const TLS_SECRET: &str = "tls-validity-checks-certificate";
const INFRA_NAMESPACE: &str = "gateway-conformance-infra";
/// Names the HTTPS listeners of the base manifests (and the conformance tests) use.
const TLS_NAMES: &[&str] = &[
    "example.org",
    "*.example.org",
    "second-example.org",
    "third-example.org",
    "*.wildcard.org",
    "fourth-example.wildcard.org",
];

/// A Gateway's first listener: what a block's requests are sent to.
#[derive(Clone, Debug)]
pub struct GatewayTarget {
    pub logical_port: u16,
    pub https: bool,
}

/// Everything one conformance test needs; dropping it stops gateway and pods.
pub struct Cluster {
    pub gateway: GatewayProcess,
    pub ip: Ipv4Addr,
    pub gateways: BTreeMap<String, GatewayTarget>,
    pub client_tls: Arc<rustls::ClientConfig>,
    /// `/config/status` right after readiness.
    pub config_status: Result<ConfigStatus, String>,
    _pods: Vec<Upstream>,
    _dir: TempDir,
}

impl Cluster {
    pub async fn start(index: u8, case_file: &CaseFile) -> Result<Self, BoxError> {
        let ip = Ipv4Addr::new(127, 0, 0, 10 + index);
        let dir = TempDir::new(&format!("conformance-{}", case_file.test))?;
        let data = data_dir();
        let read = |name: &str| -> Result<String, BoxError> {
            let text = std::fs::read_to_string(data.join(name))
                .map_err(|e| format!("{}: {e}", data.join(name).display()))?;
            Ok(text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS))
        };
        let targets = case_file.target_gateways();
        let keep = |m: &Manifest| m.kind() != "Gateway" || targets.iter().any(|t| t == m.name());
        let base: Vec<Manifest> = k8s::split_documents(&read("base-manifests.yaml")?)?
            .into_iter()
            .filter(keep)
            .collect();
        let own: Vec<Manifest> = k8s::split_documents(&read(&case_file.manifest)?)?
            .into_iter()
            .filter(keep)
            .collect();
        let all: Vec<&Manifest> = base.iter().chain(own.iter()).collect();

        let gateways = gateway_targets(&all);
        for target in &targets {
            if !gateways.contains_key(target) {
                return Err(format!("gateway {target} not found in manifests").into());
            }
        }

        let (pods, slices) = start_pods(index, &all).await?;

        let ca = CertAuthority::new("sluice conformance CA")?;
        let leaf = ca.issue(TLS_NAMES)?;
        let mut generated = vec![
            k8s::gateway_class(GATEWAY_CLASS, CONTROLLER_NAME),
            k8s::tls_secret(TLS_SECRET, INFRA_NAMESPACE, leaf.cert_pem(), leaf.key_pem()),
        ];
        generated.extend(slices);

        let config = dir.subdir("config")?;
        std::fs::write(
            config.join("00-base-manifests.yaml"),
            k8s::join_documents(base.iter().map(|m| m.raw.as_str())),
        )?;
        std::fs::write(
            config.join(format!("01-{}", case_file.manifest)),
            k8s::join_documents(own.iter().map(|m| m.raw.as_str())),
        )?;
        std::fs::write(
            config.join("02-generated.yaml"),
            k8s::join_documents(generated.iter().map(k8s::to_yaml)),
        )?;

        let options = GatewayOptions::new(env!("CARGO_BIN_EXE_sluice"), &config)
            .bind_address(IpAddr::V4(ip))
            .admin_ip(IpAddr::V4(ip))
            .port_offset(PORT_OFFSET)
            .log_dir(dir.path().join("logs"));
        let gateway = match GatewayProcess::start(options).await {
            Ok(gateway) => gateway,
            Err(e) => {
                let mut dir = dir;
                dir.keep();
                return Err(format!("config in {}:\n{e}", config.display()).into());
            }
        };
        let config_status = gateway.config_status().await.map_err(|e| e.to_string());
        Ok(Self {
            gateway,
            ip,
            gateways,
            client_tls: ca.client_config(Alpn::Http1)?,
            config_status,
            _pods: pods,
            _dir: dir,
        })
    }

    /// Socket address the gateway binds for `logical_port`.
    pub fn connect_addr(&self, logical_port: u16) -> SocketAddr {
        self.gateway.listener_addr(logical_port)
    }

    /// Where the config and logs are, for failure reports.
    pub fn describe(&self) -> String {
        format!(
            "config: {}/config, gateway logs: {}",
            self._dir.path().display(),
            self.gateway.log_dir().display()
        )
    }
}

fn gateway_targets(manifests: &[&Manifest]) -> BTreeMap<String, GatewayTarget> {
    manifests
        .iter()
        .filter(|m| m.kind() == "Gateway")
        .filter_map(|m| {
            let listener = m.value["spec"]["listeners"].get(0)?;
            let port = u16::try_from(listener["port"].as_u64()?).ok()?;
            let https = listener["protocol"].as_str() == Some("HTTPS");
            Some((
                m.name().to_owned(),
                GatewayTarget {
                    logical_port: port,
                    https,
                },
            ))
        })
        .collect()
}

/// Replica count of the Deployment named like the Service (Kubernetes default 1).
fn replicas(manifests: &[&Manifest], namespace: &str, name: &str) -> usize {
    manifests
        .iter()
        .find(|m| m.kind() == "Deployment" && m.namespace() == namespace && m.name() == name)
        .and_then(|m| m.value["spec"]["replicas"].as_u64())
        .and_then(|r| usize::try_from(r).ok())
        .unwrap_or(1)
}

/// Start echo pods for every TCP Service and build their EndpointSlices.
async fn start_pods(
    index: u8,
    manifests: &[&Manifest],
) -> Result<(Vec<Upstream>, Vec<Value>), BoxError> {
    let mut pods = Vec::new();
    let mut slices = Vec::new();
    let mut next_host: u8 = 1;
    for service in manifests.iter().filter(|m| m.kind() == "Service") {
        let (name, namespace) = (service.name(), service.namespace());
        let ports: Vec<_> = k8s::service_ports(&service.value)
            .into_iter()
            .filter(|p| p.protocol == "TCP")
            .collect();
        if name.starts_with("tls-backend") || ports.is_empty() {
            continue;
        }
        let deployment_hash = sluice_testkit::random_suffix(10);
        let mut port = 0;
        let mut endpoints = Vec::new();
        for _ in 0..replicas(manifests, namespace, name) {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 1, index, next_host));
            next_host = next_host.checked_add(1).ok_or("too many echo pods")?;
            let pod = format!(
                "{name}-{deployment_hash}-{}",
                sluice_testkit::random_suffix(5)
            );
            let upstream = EchoConfig::new(namespace, pod.clone())
                .spawn_with(Upstream::builder().bind(SocketAddr::new(ip, port)))
                .await
                .map_err(|e| format!("echo pod {pod} on {ip}:{port}: {e}"))?;
            port = upstream.addr().port();
            endpoints.push(Endpoint {
                ip,
                pod,
                ready: true,
            });
            pods.push(upstream);
        }
        let slice_ports: Vec<_> = ports.iter().map(|p| p.slice_port(port)).collect();
        let slice_name = format!("{name}-{}", sluice_testkit::random_suffix(5));
        slices.push(k8s::endpoint_slice(
            &slice_name,
            namespace,
            name,
            &slice_ports,
            &endpoints,
        ));
    }
    Ok((pods, slices))
}
