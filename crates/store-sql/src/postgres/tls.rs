//! How a connection to PostgreSQL is encrypted: the TLS mode a URL gets, and rustls's settings.

use tokio_postgres::config::{Host, SslMode};

use crate::SqlError;

/// The TLS a connection asks for: what the URL says (`sslmode=disable`, `prefer`, `require`),
/// except that a server on another host gets TLS required when the URL did not say
/// `disable`: libpq's default, `prefer`, falls back to clear text when the server (or anyone
/// in between) declines TLS, which would send the password and the sealed records in clear
/// to another host. A server on this host (a loopback address, `localhost`, a Unix socket)
/// keeps `prefer`.
pub(super) fn ssl_mode(config: &tokio_postgres::Config) -> SslMode {
    let here = config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    });
    match config.get_ssl_mode() {
        SslMode::Disable => SslMode::Disable,
        SslMode::Prefer if here => SslMode::Prefer,
        _ => SslMode::Require,
    }
}

/// rustls's settings: the system's roots and `pem`'s; ring as the crypto provider unless the
/// program installed one (rustls refuses to pick when several are compiled in).
pub(super) fn client_config(pem: Option<&[u8]>) -> Result<rustls::ClientConfig, SqlError> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut roots = rustls::RootCertStore::empty();
    // Certificates the system has that rustls cannot read are skipped, as browsers do.
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = pem {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|_| SqlError::Setting("the root certificates are not PEM".into()))?;
        if certs.is_empty() {
            return Err(SqlError::Setting("no certificate in the root certificates' PEM".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                SqlError::Setting(format!("a root certificate cannot be used: {e}"))
            })?;
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use tokio_postgres::config::SslMode;

    use super::ssl_mode;

    fn mode(url: &str) -> SslMode {
        ssl_mode(&tokio_postgres::Config::from_str(url).unwrap())
    }

    #[test]
    fn another_host_gets_tls_required_unless_the_url_turns_it_off() {
        for url in [
            "postgres://u@db.internal/app",
            "postgres://u@10.0.0.5:5432/app",
            "postgres://u@db.internal/app?sslmode=prefer",
            "host=db.internal user=u",
            // One host here and one elsewhere: the other may be the one answering.
            "host=localhost,db.internal user=u",
        ] {
            assert!(matches!(mode(url), SslMode::Require), "{url}");
        }
        assert!(matches!(mode("postgres://u@db.internal/app?sslmode=disable"), SslMode::Disable));
        assert!(matches!(mode("postgres://u@db.internal/app?sslmode=require"), SslMode::Require));
    }

    #[test]
    fn this_host_keeps_what_the_url_says() {
        for url in [
            "postgres://u@localhost/app",
            "postgres://u@127.0.0.1:5432/app",
            "postgres://u@[::1]:5432/app",
            "host=/var/run/postgresql user=u",
        ] {
            assert!(matches!(mode(url), SslMode::Prefer), "{url}");
        }
        assert!(matches!(mode("postgres://u@127.0.0.1/app?sslmode=require"), SslMode::Require));
        assert!(matches!(mode("postgres://u@127.0.0.1/app?sslmode=disable"), SslMode::Disable));
    }
}
