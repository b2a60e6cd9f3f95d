//! Join tokens, as KubeEdge makes them: `<hex sha256(CA DER)>.<JWT>`, the
//! JWT being HS256 keyed by the CA private key's DER bytes with a single
//! `exp` claim. The edge checks the prefix against the CA it downloads; the
//! certificate server checks the JWT. Pure functions of their inputs and `now`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{PkiError, Result};

/// A join token and when its JWT expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// `<ca hash>.<jwt>`.
    pub(crate) text: String,
    /// The JWT's `exp`.
    pub(crate) expires: SystemTime,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    exp: u64,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A new token for the CA with hash `ca_hash` and key `ca_key`, expiring at `expires`.
pub(crate) fn issue(ca_hash: &str, ca_key: &[u8], expires: SystemTime) -> Result<Token> {
    let claims = Claims {
        exp: unix_secs(expires),
    };
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(ca_key),
    )
    .map_err(|e| PkiError::BadToken(format!("cannot sign a token: {e}")))?;
    Ok(Token {
        text: format!("{ca_hash}.{jwt}"),
        expires: UNIX_EPOCH + Duration::from_secs(claims.exp),
    })
}

/// Checks a JWT (or a whole `<hash>.<jwt>` token, whose hash must then be
/// `ca_hash`) against the CA key at `now`; returns its expiry.
pub(crate) fn verify(
    ca_hash: &str,
    ca_key: &[u8],
    token: &str,
    now: SystemTime,
) -> Result<SystemTime> {
    let token = token.trim();
    let jwt = match token.split_once('.') {
        // A JWT has three dot-separated parts; a full token has four.
        Some((prefix, rest)) if rest.matches('.').count() == 2 => {
            if prefix != ca_hash {
                return Err(PkiError::BadToken(
                    "the token's CA hash is not this cloud's CA".to_owned(),
                ));
            }
            rest
        }
        _ => token,
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false; // checked against `now` below
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_secret(ca_key), &validation)
        .map_err(|e| PkiError::BadToken(format!("invalid token: {e}")))?;
    let expires = UNIX_EPOCH + Duration::from_secs(data.claims.exp);
    if expires <= now {
        return Err(PkiError::BadToken("the token has expired".to_owned()));
    }
    Ok(expires)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn tokens_verify_until_they_expire_and_only_with_the_ca_key() {
        let now = SystemTime::now();
        let token = issue("abcd", b"ca key", now + 24 * HOUR).unwrap();
        let (prefix, jwt) = token.text.split_once('.').unwrap();
        assert_eq!(prefix, "abcd");
        assert_eq!(jwt.matches('.').count(), 2);

        assert_eq!(verify("abcd", b"ca key", jwt, now).unwrap(), token.expires);
        assert!(verify("abcd", b"ca key", &token.text, now).is_ok());
        assert!(verify("beef", b"ca key", &token.text, now).is_err());
        assert!(verify("abcd", b"other key", jwt, now).is_err());
        assert!(verify("abcd", b"ca key", jwt, now + 25 * HOUR).is_err());
        assert!(verify("abcd", b"ca key", "a.b.c", now).is_err());
        assert!(verify("abcd", b"ca key", "", now).is_err());
    }
}
