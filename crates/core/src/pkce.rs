//! PKCE (RFC 7636) with the S256 method.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::PkceVerifier;

/// Bytes of entropy in a verifier (43 base64url characters, RFC 7636's minimum length).
pub(crate) const VERIFIER_ENTROPY_BYTES: usize = 32;

/// A verifier made from handed-in random bytes (half of what `start_authorization` is
/// handed; the other half makes `state`).
pub(crate) fn verifier_from_entropy(entropy: &[u8; VERIFIER_ENTROPY_BYTES]) -> PkceVerifier {
    PkceVerifier::new(URL_SAFE_NO_PAD.encode(entropy))
}

/// The S256 challenge of `verifier`: `BASE64URL(SHA256(verifier))`.
///
/// ```
/// use helloflex_core::{PkceVerifier};
/// use helloflex_core::machines::{pkce_challenge};
/// // RFC 7636 Appendix B.
/// let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
/// assert_eq!(pkce_challenge(&verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// ```
pub fn pkce_challenge(verifier: &PkceVerifier) -> String {
    URL_SAFE_NO_PAD.encode(hmac_sha256::Hash::hash(verifier.expose_secret().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let entropy = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = verifier_from_entropy(&entropy);
        assert_eq!(verifier.expose_secret(), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(pkce_challenge(&verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }
}
