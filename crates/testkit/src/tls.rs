//! A private certificate authority and a certificate it signed for `127.0.0.1`, for the tests
//! that run a server over TLS on loopback (Redis's `rediss://`, PostgreSQL's `sslmode=require`).

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// The PEM texts a TLS test needs: the CA a client is told to trust, and the server's
/// certificate and key.
pub struct LoopbackTls {
    /// The private CA's certificate.
    pub ca: String,
    /// The server's certificate (for `127.0.0.1`), signed by the CA.
    pub cert: String,
    /// The server's private key.
    pub key: String,
}

/// A new CA and a certificate for `127.0.0.1` signed by it.
pub fn loopback_tls() -> LoopbackTls {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    LoopbackTls { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() }
}
