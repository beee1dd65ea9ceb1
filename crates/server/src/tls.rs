//! The server's credentials, kept in the state directory (mode 0600): a CA made on first
//! start, a serving certificate for the listen address signed by it at every start, and
//! the bearer token; and the kubeconfig that hands them to kubectl.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

pub struct Credentials {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Certificate(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialError + '_ {
    move |source| CredentialError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn cert_error(e: impl std::fmt::Display) -> CredentialError {
    CredentialError::Certificate(e.to_string())
}

/// Writes a file only its owner may read.
pub fn write_private(path: &Path, contents: &str) -> Result<(), CredentialError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(contents.as_bytes()).map_err(io_error(path))
}

fn read_or_create(
    path: &Path,
    create: impl FnOnce() -> Result<String, CredentialError>,
) -> Result<String, CredentialError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = create()?;
            write_private(path, &text)?;
            Ok(text)
        }
        Err(e) => Err(io_error(path)(e)),
    }
}

fn ca_params() -> Result<CertificateParams, CredentialError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "joblet-ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

pub fn load_or_create(dir: &Path, listen: SocketAddr) -> Result<Credentials, CredentialError> {
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).map_err(io_error(&pki))?;
    let ca_key_pem = read_or_create(&pki.join("ca.key"), || {
        Ok(KeyPair::generate().map_err(cert_error)?.serialize_pem())
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(cert_error)?;
    let ca_pem = read_or_create(&pki.join("ca.crt"), || {
        Ok(ca_params()?.self_signed(&ca_key).map_err(cert_error)?.pem())
    })?;
    // The serving certificate names the address it is served on, so it is made anew.
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !listen.ip().is_unspecified() && !names.contains(&listen.ip().to_string()) {
        names.push(listen.ip().to_string());
    }
    let mut params = CertificateParams::new(names).map_err(cert_error)?;
    params.distinguished_name.push(DnType::CommonName, "joblet");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(cert_error)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let cert_pem = params.signed_by(&key, &issuer).map_err(cert_error)?.pem();
    let key_pem = key.serialize_pem();
    write_private(&pki.join("server.crt"), &cert_pem)?;
    write_private(&pki.join("server.key"), &key_pem)?;
    let token = read_or_create(&dir.join("token"), random_token)?
        .trim()
        .to_string();
    Ok(Credentials {
        ca_pem,
        cert_pem,
        key_pem,
        token,
    })
}

/// A bearer token; without a random source there is none (never a predictable one).
fn random_token() -> Result<String, CredentialError> {
    let mut bytes = [0u8; 24];
    joblet_driver::random_bytes(&mut bytes).map_err(io_error(Path::new("/dev/urandom")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn server_config(credentials: &Credentials) -> Result<Arc<ServerConfig>, CredentialError> {
    let certs =
        vec![CertificateDer::from_pem_slice(credentials.cert_pem.as_bytes()).map_err(cert_error)?];
    let key = PrivateKeyDer::from_pem_slice(credentials.key_pem.as_bytes()).map_err(cert_error)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(cert_error)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(cert_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes `DIR/kubeconfig`: the cluster, user and current context `joblet`.
pub fn write_kubeconfig(
    dir: &Path,
    listen: SocketAddr,
    credentials: &Credentials,
) -> Result<PathBuf, CredentialError> {
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        listen.ip().to_string()
    };
    let server = match listen {
        SocketAddr::V6(_) if !listen.ip().is_unspecified() => {
            format!("https://[{host}]:{}", listen.port())
        }
        _ => format!("https://{host}:{}", listen.port()),
    };
    let ca = base64::engine::general_purpose::STANDARD.encode(&credentials.ca_pem);
    let config = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: joblet
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: joblet
  user:
    token: {token}
contexts:
- name: joblet
  context:
    cluster: joblet
    user: joblet
    namespace: default
current-context: joblet
",
        token = credentials.token
    );
    let path = dir.join("kubeconfig");
    write_private(&path, &config)?;
    Ok(path)
}
