//! TLS on the gRPC listener (rustls, ring): the certificate chain, its key and, for mutual TLS,
//! the CA that client certificates must chain to, read from PEM files and re-read while serving.
//!
//! Invariant: a connection is only ever handshaken with a configuration that loaded whole (chain,
//! matching key, client CA); a file that changes into something unusable (a half-written
//! rotation, a key that does not match) leaves the last good configuration in place and is
//! reported, never served. Handshakes run off the accept loop, each bounded in time and at most
//! [`MAX_HANDSHAKES`] at once, so a slow or silent client cannot hold up anyone else's connection.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::reload::{Reload, pem_problem, reread_every};

/// The longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; beyond it, connections wait in the kernel's accept queue.
pub const MAX_HANDSHAKES: usize = 512;

/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// Why a TLS configuration could not be loaded; each names the flag whose file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{flag}: cannot read {path}: {source}")]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: io::Error,
    },
    /// A file holds no usable PEM item of the kind the flag needs.
    #[error("{flag}: {path} {problem}")]
    Pem {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the combination (most often: the key does not match the certificate).
    #[error("{flag}: {problem}")]
    Refused {
        /// The flag most likely at fault.
        flag: &'static str,
        /// rustls's reason, in words.
        problem: String,
    },
}

/// Every problem found with the TLS files (at least one).
#[derive(Debug)]
pub struct TlsErrors(pub Vec<TlsError>);

impl std::fmt::Display for TlsErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TlsErrors {}

/// The files TLS is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate that chains to one of these CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// The raw contents of the files, and their digest (to see whether anything changed).
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
    digest: [u8; 32],
}

impl TlsFiles {
    fn read(&self) -> Result<Contents, TlsErrors> {
        let mut errors = Vec::new();
        let mut read = |flag: &'static str, path: &Path| {
            std::fs::read(path)
                .map_err(|source| {
                    errors.push(TlsError::Read {
                        flag,
                        path: path.to_owned(),
                        source,
                    })
                })
                .ok()
        };
        let cert = read("--tls-cert", &self.cert);
        let key = read("--tls-key", &self.key);
        let client_ca = self
            .client_ca
            .as_ref()
            .map(|path| read("--tls-client-ca", path));
        let (Some(cert), Some(key), None | Some(Some(_))) = (cert, key, &client_ca) else {
            return Err(TlsErrors(errors));
        };
        let client_ca = client_ca.flatten();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [Some(&cert), Some(&key), client_ca.as_ref()] {
            let part = part.map(Vec::as_slice).unwrap_or_default();
            digest.update(&(part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Ok(Contents {
            cert,
            key,
            client_ca,
            digest: digest.finish().as_ref().try_into().unwrap_or_default(),
        })
    }

    fn build(&self, contents: &Contents) -> Result<ServerConfig, TlsErrors> {
        let mut errors = Vec::new();
        let mut pem = |flag: &'static str, path: &Path, problem: String| {
            errors.push(TlsError::Pem {
                flag,
                path: path.to_owned(),
                problem,
            })
        };
        // Each file is parsed on its own, so that every bad one is reported at once.
        let chain = certificates(&contents.cert)
            .map_err(|problem| pem("--tls-cert", &self.cert, problem))
            .ok();
        let key = PrivateKeyDer::from_pem_slice(&contents.key)
            .map_err(|e| {
                pem(
                    "--tls-key",
                    &self.key,
                    format!("holds no private key ({})", pem_problem(&e)),
                )
            })
            .ok();
        let roots = match (&self.client_ca, &contents.client_ca) {
            (Some(path), Some(bytes)) => match client_roots(bytes) {
                Ok(roots) => Some(roots),
                Err(problem) => {
                    pem("--tls-client-ca", path, problem);
                    None
                }
            },
            _ => None,
        };
        let (Some(chain), Some(key), true) = (chain, key, errors.is_empty()) else {
            return Err(TlsErrors(errors));
        };
        let refused = |flag: &'static str, problem: String| {
            TlsErrors(vec![TlsError::Refused { flag, problem }])
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| refused("--tls-cert", e.to_string()))?;
        let builder = match roots {
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| refused("--tls-client-ca", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, key).map_err(|e| {
            refused(
                "--tls-key",
                match e {
                    rustls::Error::InconsistentKeys(_) => {
                        "the key does not match the certificate of --tls-cert".to_owned()
                    }
                    e => format!("the certificate and key cannot be used together ({e})"),
                },
            )
        })?;
        // gRPC is HTTP/2 only; clients such as grpc-go insist on negotiating it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// Reads and checks the files once: what `serve` does before it binds anything. Every bad
    /// file is reported, each naming its flag.
    pub fn check(&self) -> Result<(), TlsErrors> {
        self.build(&self.read()?).map(drop)
    }
}

/// The client CAs of a PEM text.
fn client_roots(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(pem)? {
        roots
            .add(ca)
            .map_err(|e| format!("holds a certificate that is not a usable CA ({e})"))?;
    }
    Ok(roots)
}

/// Every certificate in a PEM text, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not valid PEM: {}", pem_problem(&e)))?;
    if chain.is_empty() {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(chain)
}

/// The TLS configuration in use, re-read from its files.
pub struct Tls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    digest: std::sync::Mutex<[u8; 32]>,
}

impl Tls {
    /// Loads the files; an error names the flag at fault.
    pub fn load(files: TlsFiles) -> Result<Arc<Tls>, TlsErrors> {
        let contents = files.read()?;
        let config = files.build(&contents)?;
        Ok(Arc::new(Tls {
            files,
            current: ArcSwap::from_pointee(config),
            digest: std::sync::Mutex::new(contents.digest),
        }))
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// Re-reads the files; a change that loads whole replaces the configuration new connections
    /// are handshaken with (connections already open keep theirs).
    pub fn reload(&self) -> Reload {
        let outcome = match self.files.read() {
            Ok(contents) => {
                let mut digest = self.digest.lock().unwrap_or_else(|p| p.into_inner());
                if *digest == contents.digest {
                    return Reload::Unchanged;
                }
                match self.files.build(&contents) {
                    Ok(config) => {
                        self.current.store(Arc::new(config));
                        *digest = contents.digest;
                        tracing::info!(
                            cert = %self.files.cert.display(),
                            "TLS certificate files changed; new connections use them"
                        );
                        Reload::Applied
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS files changed but cannot be used; still serving the previous certificate");
                        Reload::Refused
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files cannot be read; still serving the previous certificate");
                Reload::Refused
            }
        };
        if let Some(result) = outcome.result() {
            metrics::counter!("consentry_tls_reloads_total", "result" => result).increment(1);
        }
        outcome
    }

    /// Re-reads the files every `interval` until `stop`.
    pub fn follow(
        self: Arc<Self>,
        interval: Duration,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        reread_every(interval, stop, move || self.reload())
    }

    /// Connections accepted on `listener`, handshaken with the configuration current when each
    /// arrived. Handshakes that fail or time out are dropped (and logged at debug).
    pub fn incoming(self: Arc<Self>, listener: TcpListener) -> TlsIncoming {
        let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = async {
                        let permit = handshakes.clone().acquire_owned().await;
                        (permit, listener.accept().await)
                    } => accepted,
                    // The server stopped taking connections: close the listener.
                    _ = tx.closed() => return,
                };
                let (Ok(permit), accepted) = accepted else {
                    return;
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = TlsAcceptor::from(self.current.load_full());
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    drop(permit);
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => {
                            metrics::counter!("consentry_tls_handshake_failures_total")
                                .increment(1);
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            metrics::counter!("consentry_tls_handshake_failures_total")
                                .increment(1);
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        TlsIncoming { rx }
    }
}

/// The stream of handshaken connections that the gRPC server takes.
pub struct TlsIncoming {
    rx: mpsc::Receiver<io::Result<TlsStream<TcpStream>>>,
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_broken_pem_file_is_described_in_words() {
        let unterminated = b"-----BEGIN CERTIFICATE-----\nMIIB\n";
        let problem = certificates(unterminated).unwrap_err();
        assert_eq!(
            problem,
            r#"is not valid PEM: a section has no end line: "-----END CERTIFICATE-----" is missing"#
        );
        let malformed = b"-----BEGIN CERTIFICATE\nMIIB\n";
        let problem = certificates(malformed).unwrap_err();
        assert_eq!(
            problem,
            r#"is not valid PEM: a section starts with a malformed line "-----BEGIN CERTIFICATE""#
        );
    }
}
