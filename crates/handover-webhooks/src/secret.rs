//! Standard Webhooks signing: `whsec_` secrets and `v1,` HMAC-SHA256 signatures.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::WebhookError;

/// What a Standard Webhooks secret starts with; base64 of the key follows.
pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret in the Standard Webhooks form `whsec_<base64 of the key>`.
///
/// Its `Debug` output hides the key.
///
/// ```
/// use handover_webhooks::WebhookSecret;
///
/// let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
/// let signature = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b"{\"test\": 2432232314}");
/// assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
/// ```
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(whsec_…)")
    }
}

impl WebhookSecret {
    /// Reads `whsec_<base64>`; the key is the decoded base64 (standard alphabet, padded), at
    /// least one byte.
    pub fn parse(text: &str) -> Result<WebhookSecret, WebhookError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            WebhookError::InvalidSecret(format!("it must start with {SECRET_PREFIX}"))
        })?;
        let key = STANDARD.decode(encoded).map_err(|error| {
            WebhookError::InvalidSecret(format!(
                "what follows {SECRET_PREFIX} is not base64: {error}"
            ))
        })?;
        if key.is_empty() {
            return Err(WebhookError::InvalidSecret("the key is empty".to_owned()));
        }
        Ok(WebhookSecret { key })
    }

    /// The `webhook-signature` header value for a delivery: `v1,` and the base64 of
    /// HMAC-SHA256 over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        // Any key length is valid for HMAC, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_need_the_prefix_and_base64() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
        assert!(WebhookSecret::parse("whsec_a2V5").is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let secret = WebhookSecret::parse("whsec_a2V5").unwrap();
        assert!(!format!("{secret:?}").contains("a2V5"));
    }
}
