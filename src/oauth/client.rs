//! Talking to one provider's endpoints, with the `oauth2` crate: the
//! authorization URL (PKCE S256), the code exchange, refreshing, revoking,
//! and learning the mail address of the person who signed in (the ID
//! token's `email` claim, else the userinfo endpoint).
//!
//! The ID token comes straight from the token endpoint over the
//! connection the gateway opened (TLS in production), so its claims are
//! read without checking its signature (OpenID Connect Core 3.1.3.7).
//! Answers are read up to [`MAX_ANSWER`] bytes; nothing follows redirects.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::OAuthError;
use crate::config::Provider;

/// Longest answer read from a provider's endpoint.
pub const MAX_ANSWER: usize = 64 * 1024;

/// The token answer's one field beyond RFC 6749: OpenID Connect's ID token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdToken {}

type TokenAnswer = StandardTokenResponse<IdToken, BasicTokenType>;
type Oauth2Client = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a token endpoint handed out. Never `Debug`: it holds secrets.
pub struct Tokens {
    pub access: Zeroizing<String>,
    /// How long the access token lives, as the provider said (an hour
    /// when it did not).
    pub lifetime: Duration,
    /// A new refresh token, when the provider issued or rotated one.
    pub refresh: Option<Zeroizing<String>>,
    id_token: Option<String>,
}

/// A started sign-in: where to send the browser, and what to keep.
pub struct Authorization {
    pub url: String,
    pub verifier: Zeroizing<String>,
}

/// One provider's endpoints, with the gateway's client credentials.
pub struct ProviderClient {
    provider: Provider,
    client: Oauth2Client,
    http: reqwest::Client,
}

/// The HTTP client of the `oauth2` crate's requests: reads at most
/// [`MAX_ANSWER`] bytes of an answer.
struct Capped<'a>(&'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for Capped<'_> {
    type Error = HttpError;
    type Future = Sent<'c>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        send(self.0, request)
    }
}

impl ProviderClient {
    pub fn new(provider: Provider, http: reqwest::Client) -> Result<Self, OAuthError> {
        let bad = |e: oauth2::url::ParseError| OAuthError::Operator(e.to_string());
        let client = oauth2::Client::new(ClientId::new(provider.client_id.clone()))
            .set_client_secret(ClientSecret::new(provider.client_secret.clone()))
            .set_auth_uri(AuthUrl::new(provider.authorize_url.clone()).map_err(bad)?)
            .set_token_uri(TokenUrl::new(provider.token_url.clone()).map_err(bad)?)
            // Accepted by every provider; Basic is not by all.
            .set_auth_type(AuthType::RequestBody);
        Ok(ProviderClient {
            provider,
            client,
            http,
        })
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The URL that starts a sign-in at the provider, with PKCE (S256) and
    /// `state`; the browser comes back to `redirect_uri`.
    pub fn authorize(&self, state: &str, redirect_uri: &str) -> Result<Authorization, OAuthError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let redirect = redirect_url(redirect_uri)?;
        let state = state.to_string();
        let mut request = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(challenge)
            .set_redirect_uri(Cow::Owned(redirect))
            .add_scopes(self.provider.scopes.iter().cloned().map(Scope::new));
        for (name, value) in &self.provider.authorize_params {
            request = request.add_extra_param(name.clone(), value.clone());
        }
        let (url, _) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            verifier: Zeroizing::new(verifier.secret().clone()),
        })
    }

    /// Exchanges an authorization code (with the PKCE verifier of its
    /// sign-in, and the redirect URI it was issued for, when there were).
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: Option<&str>,
        redirect_uri: Option<&str>,
    ) -> Result<Tokens, OAuthError> {
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()));
        if let Some(verifier) = verifier {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()));
        }
        if let Some(uri) = redirect_uri {
            request = request.set_redirect_uri(Cow::Owned(redirect_url(uri)?));
        }
        let http = Capped(&self.http);
        let answer = request.request_async(&http).await.map_err(classify)?;
        Ok(tokens(answer))
    }

    /// A new access token for `refresh_token` (and a new refresh token
    /// when the provider rotates them).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, OAuthError> {
        let refresh = RefreshToken::new(refresh_token.to_string());
        let http = Capped(&self.http);
        let answer = self
            .client
            .exchange_refresh_token(&refresh)
            .request_async(&http)
            .await
            .map_err(classify)?;
        Ok(tokens(answer))
    }

    /// Revokes a refresh token where the provider has an endpoint for it
    /// (false when it has none). RFC 7009 by hand: the `oauth2` crate
    /// refuses revocation URLs that are not https, which a provider on
    /// this machine (the tests') is not.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, OAuthError> {
        let Some(url) = &self.provider.revoke_url else {
            return Ok(false);
        };
        let form = [
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("client_id", &self.provider.client_id),
            ("client_secret", &self.provider.client_secret),
        ];
        let answer = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| OAuthError::Transient(e.without_url().to_string()))?;
        match answer.status() {
            status if status.is_success() => Ok(true),
            status => Err(OAuthError::Transient(format!(
                "revocation answered {status}"
            ))),
        }
    }

    /// The mail address of who signed in: the ID token's `email` claim,
    /// else what the userinfo endpoint says.
    pub async fn email(&self, tokens: &Tokens) -> Result<String, OAuthError> {
        if let Some(email) = tokens.id_token.as_deref().and_then(email_claim) {
            return Ok(email);
        }
        let Some(url) = &self.provider.userinfo_url else {
            return Err(OAuthError::NoEmail);
        };
        let mut answer = self
            .http
            .get(url)
            .bearer_auth(tokens.access.as_str())
            .send()
            .await
            .map_err(|e| OAuthError::Transient(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(OAuthError::Transient(format!(
                "userinfo answered {}",
                answer.status()
            )));
        }
        let body = read_capped(&mut answer).await?;
        let claims: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| OAuthError::NoEmail)?;
        claims["email"]
            .as_str()
            .filter(|e| e.contains('@'))
            .map(str::to_string)
            .ok_or(OAuthError::NoEmail)
    }
}

fn redirect_url(uri: &str) -> Result<RedirectUrl, OAuthError> {
    RedirectUrl::new(uri.to_string()).map_err(|e| OAuthError::Operator(e.to_string()))
}

fn tokens(answer: TokenAnswer) -> Tokens {
    Tokens {
        access: Zeroizing::new(answer.access_token().secret().clone()),
        lifetime: answer
            .expires_in()
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(3600)),
        refresh: answer
            .refresh_token()
            .map(|r| Zeroizing::new(r.secret().clone())),
        id_token: answer.extra_fields().id_token.clone(),
    }
}

/// The `email` claim of a JWT, read without checking its signature.
pub fn email_claim(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    if payload.len() > MAX_ANSWER {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    if claims["email_verified"] == serde_json::Value::Bool(false) {
        return None;
    }
    // Microsoft's work accounts often have no `email`; their user name
    // (the UPN) is the mail address.
    let address = [&claims["email"], &claims["preferred_username"]]
        .into_iter()
        .filter_map(|claim| claim.as_str())
        .find(|e| e.contains('@') && e.len() <= 254 && !e.contains(char::is_whitespace))
        .map(str::to_string);
    address
}

/// What a failed token request means for the gateway.
fn classify(e: RequestTokenError<HttpError, BasicErrorResponse>) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            BasicErrorResponseType::InvalidGrant => OAuthError::Refused,
            BasicErrorResponseType::InvalidClient
            | BasicErrorResponseType::UnauthorizedClient
            | BasicErrorResponseType::UnsupportedGrantType
            | BasicErrorResponseType::InvalidScope => OAuthError::Operator(format!(
                "the provider refused the client: {}",
                answer.error()
            )),
            other => OAuthError::Transient(format!("the token endpoint answered {other}")),
        },
        RequestTokenError::Request(e) => OAuthError::Transient(e.to_string()),
        RequestTokenError::Parse(_, _) => {
            OAuthError::Transient("the token endpoint's answer could not be read".into())
        }
        RequestTokenError::Other(e) => OAuthError::Transient(e),
    }
}

/// Why a request to a provider got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach the provider: {0}")]
    Send(String),
    #[error("the provider's answer is larger than {MAX_ANSWER} bytes")]
    TooLarge,
}

type Sent<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'a>>;

/// Sends one request of the `oauth2` crate, reading at most [`MAX_ANSWER`].
fn send(http: &reqwest::Client, request: HttpRequest) -> Sent<'_> {
    Box::pin(async move {
        let request =
            reqwest::Request::try_from(request).map_err(|e| HttpError::Send(e.to_string()))?;
        let mut answer = http
            .execute(request)
            .await
            .map_err(|e| HttpError::Send(e.without_url().to_string()))?;
        let mut builder = http::Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            builder = builder.header(name, value);
        }
        let body = read_capped(&mut answer)
            .await
            .map_err(|_| HttpError::TooLarge)?;
        builder
            .body(body)
            .map_err(|e| HttpError::Send(e.to_string()))
    })
}

async fn read_capped(answer: &mut reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| OAuthError::Transient(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(OAuthError::Transient(
                "the provider's answer is too large".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("e30.{}.sig", b64.encode(claims.to_string()))
    }

    #[test]
    fn the_email_comes_from_the_id_token() {
        let token = jwt(serde_json::json!({"email": "a@example.org", "email_verified": true}));
        assert_eq!(email_claim(&token).as_deref(), Some("a@example.org"));
        let unverified =
            jwt(serde_json::json!({"email": "a@example.org", "email_verified": false}));
        assert_eq!(email_claim(&unverified), None);
        assert_eq!(email_claim(&jwt(serde_json::json!({"sub": "1"}))), None);
        let upn = jwt(serde_json::json!({"preferred_username": "b@contoso.example"}));
        assert_eq!(email_claim(&upn).as_deref(), Some("b@contoso.example"));
        assert_eq!(email_claim("not a jwt"), None);
        assert_eq!(email_claim("a.!!!.c"), None);
    }

    #[test]
    fn invalid_grant_is_a_refusal_and_the_rest_is_classified() {
        let answer = |code: &str| {
            let body = format!(r#"{{"error":"{code}"}}"#);
            classify(RequestTokenError::ServerResponse(
                serde_json::from_str(&body).expect("error answer"),
            ))
        };
        assert!(matches!(answer("invalid_grant"), OAuthError::Refused));
        assert!(matches!(answer("invalid_client"), OAuthError::Operator(_)));
        assert!(matches!(
            answer("temporarily_unavailable"),
            OAuthError::Transient(_)
        ));
    }
}
