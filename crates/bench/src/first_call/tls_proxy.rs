//! A loopback TLS listener in front of the emulator (which speaks plain HTTP): each connection's
//! TLS is ended here with a certificate for `127.0.0.1` from a private CA
//! (`helloflex_testkit::tls`), and its bytes are copied to and from the emulator.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::Result;

/// A TLS proxy on its own thread and runtime, stopped when dropped.
pub struct TlsProxy {
    /// Its base URL (`https://127.0.0.1:<port>`).
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves TLS with `cert` and `key` (PEM) on a free loopback port, forwarding each connection
/// to `127.0.0.1:<upstream>`.
pub fn start(upstream: u16, cert: &str, key: &str) -> Result<TlsProxy> {
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
    // Two crypto providers are compiled in (reqwest's aws-lc-rs, ureq's ring): name one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let base = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("tls-proxy".into()).spawn(move || {
        rt.block_on(async move {
            let Ok(listener) = TcpListener::from_std(listener) else { return };
            tokio::select! {
                _ = stopped => {}
                _ = serve(listener, acceptor, upstream) => {}
            }
        });
    })?;
    Ok(TlsProxy { base, stop: Some(stop), thread: Some(thread) })
}

/// Accepts connections until the listener fails, each on a task of its own.
async fn serve(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, upstream: u16) {
    while let Ok((socket, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let Ok(mut tls) = acceptor.accept(socket).await else { return };
            let Ok(mut plain) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
            let _ = plain.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
        });
    }
}
