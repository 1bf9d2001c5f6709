//! What the TLS clients among the sinks (avro, http) trust: a PEM file, or the
//! system's CA certificates, as a Flume sink falls back to the JVM's.

use std::sync::Arc;
use tokio_rustls::rustls;

/// The certificates of a PEM file, to trust.
pub(crate) fn pem_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(f)) {
        let c = c.map_err(|e| format!("{} is not a PEM file: {e}", path.display()))?;
        roots
            .add(c)
            .map_err(|e| format!("a certificate in {} is unusable: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate; a Java truststore converts with `keytool -exportcert -rfc -keystore truststore.jks -alias NAME -file ca.pem`",
            path.display()
        ));
    }
    Ok(roots)
}

/// The system's CA certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` when set, else
/// the distribution's bundle), which a Java agent's default truststore mirrors.
pub(crate) fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!("no CA certificates were found on this system{why}"));
    }
    Ok(roots)
}

pub(crate) fn client_tls(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}
