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

/// What reqwest's `rustls` feature builds with its default settings (TLS 1.2 and 1.3, the
/// platform's verifier, SNI, HTTP/1.1 by ALPN: this client speaks no HTTP/2), over
/// [`provider`]. Handed to reqwest, so that reqwest chooses no provider of its own.
pub(crate) fn client_config() -> Result<rustls::ClientConfig, TransportError> {
    let failed = |e: rustls::Error| {
        TransportError::new(TransportErrorKind::Other, format!("setting up TLS: {e}"))
    };
    let provider = provider();
    let verifier =
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).map_err(failed)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(failed)?
        .dangerous() // not dangerous: the platform's verifier, as reqwest installs it
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
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
        let config = super::client_config().unwrap();
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
