//! The facts of a verified client certificate that identity mapping reads: subject CN and O,
//! and the subject alternative names. Parsed once per connection, after the handshake.

use sluice_policy::auth::PeerCert;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Reads the leaf certificate (DER) the client presented; `None` if it cannot be parsed (the
/// handshake already verified it, so this only happens with exotic encodings).
pub fn from_der(der: &[u8]) -> Option<PeerCert> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let mut out = PeerCert {
        common_name: first(&mut subject.iter_common_name()),
        organization: first(&mut subject.iter_organization()),
        ..PeerCert::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => out.uri_sans.push(u.to_string()),
                GeneralName::DNSName(d) => out.dns_sans.push(d.to_string()),
                GeneralName::RFC822Name(e) => out.email_sans.push(e.to_string()),
                _ => {}
            }
        }
    }
    Some(out)
}
