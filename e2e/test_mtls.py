"""End to end: mutual TLS on an HTTPS listener, the client certificate as the caller's identity.

The Gateway validates client certificates (``spec.tls.frontend``, Gateway API v1.4) against a CA from a
ConfigMap; an ``AccessPolicy`` maps the certificate's SAN to the user and its Organization to the tenant,
and a rule admits one tenant. The OpenAI SDK connects with a client certificate through httpx.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import httpx2 as httpx  # the HTTP client the openai SDK is built on
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway import Gateway

HI = [{"role": "user", "content": "Hi"}]


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(subject, issuer, key, issuer_key, *, ca=False, sans=None, server=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = x509.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.ExtendedKeyUsageOID.CLIENT_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> str:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class Pki:
    def __init__(self, d: Path):
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert(_name("e2e client CA"), _name("e2e client CA"), self.ca_key, self.ca_key, ca=True)
        self.server_key = ec.generate_private_key(ec.SECP256R1())
        self.server = _cert(_name("localhost"), self.ca.subject, self.server_key, self.ca_key, server=True,
                            sans=[x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))])
        self.dir = d
        (d / "ca.pem").write_text(_pem(self.ca))

    def client(self, name: str, org: str, spiffe: str, ca_key=None, ca=None) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(_name(name, org), (ca or self.ca).subject, key, ca_key or self.ca_key,
                     sans=[x509.UniformResourceIdentifier(spiffe)])
        crt, k = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        crt.write_text(_pem(cert))
        k.write_text(_pem(key))
        return crt, k


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def config(pki: Pki, mode: str) -> str:
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: sluice
  addresses: [{{value: 127.0.0.1}}]
  listeners:
  - name: https
    port: {{port}}
    protocol: HTTPS
    tls: {{certificateRefs: [{{name: server-cert}}]}}
  tls:
    frontend:
      default:
        validation:
          mode: {mode}
          caCertificateRefs: [{{kind: ConfigMap, name: client-ca}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: server-cert, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{_indent(_pem(pki.server), 4)}
  tls.key: |
{_indent(_pem(pki.server_key), 4)}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: client-ca, namespace: default}}
data:
  ca.crt: |
{_indent(_pem(pki.ca), 4)}
---
apiVersion: sluice.dev/v1alpha1
kind: AIBackend
metadata: {{name: mock, namespace: default}}
spec:
  provider: {{type: Mock}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: llm, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - backendRefs: [{{group: sluice.dev, kind: AIBackend, name: mock}}]
---
apiVersion: sluice.dev/v1alpha1
kind: AccessPolicy
metadata: {{name: mtls, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}]
  mtls: {{userFrom: SubjectAltName, tenantFromOrganization: true}}
  rules:
  - {{name: platform-only, action: Allow, tenants: [platform]}}
"""


def sdk(gw: Gateway, pki: Pki, cert: tuple[Path, Path] | None) -> openai.OpenAI:
    ctx = ssl.create_default_context(cafile=str(pki.dir / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return openai.OpenAI(base_url=f"https://127.0.0.1:{gw.port}/v1", api_key="unused-by-mtls", max_retries=0,
                         http_client=httpx.Client(verify=ctx, timeout=10))


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


def test_client_certificate_is_the_identity(pki):
    with Gateway(config(pki, "AllowValidOnly")) as gw:
        platform = pki.client("svc-a", "platform", "spiffe://e2e/ns/platform/sa/svc-a")
        other = pki.client("svc-b", "research", "spiffe://e2e/ns/research/sa/svc-b")
        r = sdk(gw, pki, platform).chat.completions.create(model="mock-1", messages=HI)
        assert r.choices[0].message.content
        with pytest.raises(openai.PermissionDeniedError):
            sdk(gw, pki, other).chat.completions.create(model="mock-1", messages=HI)
        # AllowValidOnly: no certificate, no TLS session at all.
        with pytest.raises(openai.APIConnectionError):
            sdk(gw, pki, None).chat.completions.create(model="mock-1", messages=HI)
        records = gw.access_log(wait_for=2)
        ids = [r["identity"] for r in records if "identity" in r]
        assert {"method": "MTLS", "tenant": "platform", "user": "spiffe://e2e/ns/platform/sa/svc-a"} in ids


def test_a_certificate_from_another_ca_fails_the_handshake(pki, tmp_path):
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert(_name("rogue CA"), _name("rogue CA"), rogue_key, rogue_key, ca=True)
    with Gateway(config(pki, "AllowValidOnly")) as gw:
        cert = pki.client("mallory", "platform", "spiffe://e2e/mallory", ca_key=rogue_key, ca=rogue)
        with pytest.raises(openai.APIConnectionError):
            sdk(gw, pki, cert).chat.completions.create(model="mock-1", messages=HI)


def test_insecure_fallback_lets_the_policy_refuse_certificateless_clients(pki):
    with Gateway(config(pki, "AllowInsecureFallback")) as gw:
        with pytest.raises(openai.AuthenticationError):
            sdk(gw, pki, None).chat.completions.create(model="mock-1", messages=HI)
        platform = pki.client("svc-a", "platform", "spiffe://e2e/ns/platform/sa/svc-a")
        assert sdk(gw, pki, platform).chat.completions.create(model="mock-1", messages=HI).choices
