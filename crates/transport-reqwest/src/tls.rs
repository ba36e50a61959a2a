//! The TLS configuration of the transport's own client: rustls over ring, or over aws-lc-rs with
//! the feature `aws-lc-rs`, verified by the platform as reqwest's own configuration is.

use std::sync::Arc;

use helloflex_core::{TransportError, TransportErrorKind};
use rustls::crypto::CryptoProvider;

/// The provider of the transport's own client: the process default when the application
/// installed one (reqwest and ureq honour it too), else aws-lc-rs with the feature `aws-lc-rs`,
/// else ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Arc::clone(installed);
    }
    #[cfg(feature = "aws-lc-rs")]
    let chosen = rustls::crypto::aws_lc_rs::default_provider();
    // rustls 0.23.48 deprecates its ring provider for lacking post-quantum key exchange; ring
    // is what an application asks for by turning `aws-lc-rs` off, told so in the docs.
    #[cfg(not(feature = "aws-lc-rs"))]
    #[allow(deprecated)]
    let chosen = rustls::crypto::ring::default_provider();
    Arc::new(chosen)
}

/// Whose certificates the transport's own client trusts.
pub(crate) enum Roots {
    /// The platform's (read when the client is built, as reqwest's own setup does).
    Platform,
    /// These alone (DER): a private CA from `HttpOptions::root_certificates`.
    Only(Vec<Vec<u8>>),
    /// None: every endpoint is plain HTTP, so no TLS connection is ever made, and reading the
    /// platform's store (milliseconds) is spared.
    Nothing,
}

/// What reqwest's `rustls` feature builds with its default settings (TLS 1.2 and 1.3, the
/// platform's verifier, SNI, HTTP/1.1 by ALPN: this client speaks no HTTP/2), over
/// [`provider`], trusting `roots`. Handed to reqwest, so that reqwest chooses no provider of
/// its own.
pub(crate) fn client_config(roots: Roots) -> Result<rustls::ClientConfig, TransportError> {
    let failed = |e: rustls::Error| {
        TransportError::new(TransportErrorKind::Other, format!("setting up TLS: {e}"))
    };
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(failed)?;
    let mut config = match roots {
        Roots::Platform => {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(failed)?;
            builder
                .dangerous() // not dangerous: the platform's verifier, as reqwest installs it
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
        Roots::Only(certificates) => {
            let mut store = rustls::RootCertStore::empty();
            for der in certificates {
                store.add(der.into()).map_err(failed)?;
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
        Roots::Nothing => {
            builder.with_root_certificates(rustls::RootCertStore::empty()).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use rustls::NamedGroup;

    /// aws-lc-rs offers the post-quantum hybrid key exchange, ring does not: which one the
    /// client runs on shows in its key exchange groups.
    #[test]
    fn the_feature_chooses_the_provider() {
        let config = super::client_config(super::Roots::Nothing).unwrap();
        let groups: Vec<NamedGroup> =
            config.crypto_provider().kx_groups.iter().map(|g| g.name()).collect();
        assert!(groups.contains(&NamedGroup::X25519), "{groups:?}");
        assert_eq!(
            groups.contains(&NamedGroup::X25519MLKEM768),
            cfg!(feature = "aws-lc-rs"),
            "{groups:?}"
        );
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
