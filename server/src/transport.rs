//! Listeners: plain TCP, TLS (rustls with the ring provider), or both on one port as etcd
//! serves an address named by both an `http://` and an `https://` URL; and the TLS
//! configuration from etcd's flags.
//!
//! Each listener has its own accept task feeding accepted connections to tonic's server,
//! which serves HTTP/2 and HTTP/1.1 on each (`accept_http1`), so gRPC and the HTTP
//! endpoints share the port as they do on etcd. TLS handshakes run in their own tasks, so a
//! slow or failing client never holds up the accept loop; a failed handshake is logged and
//! the listener goes on. Every connection gets `TCP_NODELAY` and, as on etcd, TCP keepalive
//! after 30 s idle.
//!
//! TLS follows etcd's `TLSInfo.ServerConfig`: the certificate and key are read again when
//! their files change (etcd reloads them on every handshake, so renewed certificates apply
//! without a restart); a client certificate signed by `--trusted-ca-file` is required when
//! `--client-cert-auth` is set or a trusted CA is given; ALPN offers `h2` (gRPC) and
//! `http/1.1` (the HTTP endpoints).

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::METRICS;

/// How long a client may take to complete its TLS handshake (or, on a port serving both,
/// to send its first byte).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle time before TCP keepalive probes start (etcd's 30 s).
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// gRPC and the HTTP endpoints (`--listen-client-urls`).
    Client,
    /// The HTTP endpoints only (`--listen-metrics-urls`).
    Metrics,
}

/// A bound listener and how to serve it.
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// The server TLS configuration, if some URL for this address is `https://`.
    pub tls: Option<Arc<ServerConfig>>,
    /// Whether plaintext is served too (some URL for this address is `http://`).
    pub plain: bool,
    /// What is served.
    pub role: Role,
}

/// The client TLS flags (`--cert-file`, `--key-file`, `--trusted-ca-file`,
/// `--client-cert-auth`).
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// The server certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// The server private key (PEM).
    pub key: Option<PathBuf>,
    /// CA certificates that sign client certificates (PEM).
    pub trusted_ca: Option<PathBuf>,
    /// Require and verify client certificates.
    pub client_cert_auth: bool,
}

impl TlsFiles {
    /// etcd's `TLSInfo.Empty()`: neither certificate nor key given.
    pub fn is_empty(&self) -> bool {
        self.cert.is_none() && self.key.is_none()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration for `files`, or etcd's error for what is missing or unreadable.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let (Some(cert), Some(key)) = (&files.cert, &files.key) else {
        return Err(format!(
            "KeyFile and CertFile must both be present[key: {}, cert: {}]",
            files
                .key
                .as_deref()
                .map_or(String::new(), |p| p.display().to_string()),
            files
                .cert
                .as_deref()
                .map_or(String::new(), |p| p.display().to_string()),
        ));
    };
    let provider = provider();
    let resolver = ReloadingCert::new(cert, key, provider.clone())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = if files.trusted_ca.is_some() || files.client_cert_auth {
        let Some(ca) = &files.trusted_ca else {
            // etcd would verify against the system's roots; Strata has no system root
            // store and will not accept client certificates it cannot verify.
            return Err(
                "--client-cert-auth needs --trusted-ca-file (the CA that signs client certificates)"
                    .into(),
            );
        };
        let mut roots = RootCertStore::empty();
        for c in read_certs(ca, "--trusted-ca-file")? {
            roots
                .add(c)
                .map_err(|e| format!("--trusted-ca-file {}: {e}", ca.display()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("--trusted-ca-file {}: {e}", ca.display()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{flag} {}: no certificate found in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = read_certs(cert, "--cert-file")?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--key-file {}: {e}", key.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("--key-file {}: {e}", key.display()))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match()
        .map_err(|e| format!("--cert-file and --key-file do not match: {e}"))?;
    Ok(ck)
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The server certificate, read again when its files change.
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn new(cert: &Path, key: &Path, provider: Arc<CryptoProvider>) -> Result<Self, String> {
        let (cm, km) = (modified(cert), modified(key));
        let ck = load_key(cert, key, &provider)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: Mutex::new((cm, km, Arc::new(ck))),
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut cur = self.current.lock().ok()?;
        let (cm, km) = (modified(&self.cert), modified(&self.key));
        if (cm, km) != (cur.0, cur.1) {
            // A renewal may be half written: keep serving the old pair until both load.
            match load_key(&self.cert, &self.key, &self.provider) {
                Ok(ck) => {
                    tracing::info!(cert = %self.cert.display(), "reloaded the server certificate");
                    *cur = (cm, km, Arc::new(ck));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading the server certificate failed; keeping the previous one")
                }
            }
        }
        Some(cur.2.clone())
    }
}

/// An accepted connection, plain or TLS. An HTTP/2 connection on a client listener (gRPC
/// is always HTTP/2; Prometheus scrapes HTTP/1.1) counts its bytes for
/// `etcd_network_client_grpc_{received,sent}_bytes_total`.
pub(crate) struct Conn {
    io: ConnIo,
    count: Count,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    /// A client listener's connection before its first bytes.
    Undecided,
    Yes,
    No,
}

/// The start of the HTTP/2 client preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

enum ConnIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match &self.io {
            ConnIo::Plain(s) => s.connect_info(),
            ConnIo::Tls(s) => s.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        let read = buf.filled().get(before..).unwrap_or_default();
        if this.count == Count::Undecided && !read.is_empty() {
            let n = read.len().min(H2_PREFACE.len());
            this.count = if read.get(..n) == H2_PREFACE.get(..n) {
                Count::Yes
            } else {
                Count::No
            };
        }
        if this.count == Count::Yes {
            METRICS.client_bytes(read.len() as u64, 0);
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if this.count == Count::Yes
            && let Poll::Ready(Ok(n)) = &r
        {
            METRICS.client_bytes(0, *n as u64);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            ConnIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        if this.count == Count::Yes
            && let Poll::Ready(Ok(n)) = &r
        {
            METRICS.client_bytes(0, *n as u64);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            ConnIo::Plain(s) => s.is_write_vectored(),
            ConnIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            ConnIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ConnIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts connections on `l` and sends them (TLS ones after their handshake) to `tx`,
/// until `stop` turns true or the receiving server is gone; then closes the socket, so new
/// clients are refused at once while the server drains the connections it has.
pub(crate) async fn accept_loop(
    l: Listener,
    tx: mpsc::Sender<io::Result<Conn>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let count = match l.role {
        Role::Client => Count::Undecided,
        Role::Metrics => Count::No,
    };
    let acceptor = l.tls.clone().map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            _ = stop.wait_for(|s| *s) => return,
            r = l.tcp.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off a little, as Go's server does,
                // rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "setting TCP_NODELAY failed");
        }
        // As etcd's keepalive listener: a peer that vanished (host crashed, cable pulled)
        // is found within minutes instead of holding its watch streams forever.
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(%peer, error = %e, "setting TCP keepalive failed");
        }
        let Some(acceptor) = acceptor.clone() else {
            let conn = Conn {
                io: ConnIo::Plain(stream),
                count,
            };
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        let plain = l.plain;
        tokio::spawn(async move {
            let io = match handshake(stream, &acceptor, plain).await {
                Ok(io) => io,
                Err(e) => {
                    tracing::warn!(remote_addr = %peer, error = %e, "rejected connection");
                    return;
                }
            };
            let _ = tx.send(Ok(Conn { io, count })).await;
        });
    }
}

/// The TLS handshake, or on a port serving both, plaintext if the first byte is not a TLS
/// handshake record (0x16).
async fn handshake(stream: TcpStream, acceptor: &TlsAcceptor, plain: bool) -> io::Result<ConnIo> {
    let timeout = |e| io::Error::new(io::ErrorKind::TimedOut, e);
    if plain {
        let mut first = [0u8; 1];
        let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
            .await
            .map_err(|_| timeout("no first byte before the handshake timeout"))??;
        if n == 1 && first[0] != 0x16 {
            return Ok(ConnIo::Plain(stream));
        }
    }
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| timeout("TLS handshake timed out"))??;
    Ok(ConnIo::Tls(Box::new(tls)))
}
