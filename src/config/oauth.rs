//! The `[oauth]` section: signing in with an OAuth2 provider instead of a
//! password, the gateway being the OAuth client. Providers named `google`
//! and `microsoft` start from presets (endpoints, scopes, servers), so an
//! operator sets only the client id and secret; any other name must say
//! everything itself. [`OAuthConfig::providers`] resolves them once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::sasl::OAuthMechanism;
use crate::store::Security;

/// Signing in through OAuth2 providers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// The gateway's public base URL (`https://mail.example.com`): the
    /// provider sends browsers to `<public_url>/v1/oauth/callback`, the
    /// redirect URI to register with each provider.
    pub public_url: Option<String>,
    /// Where the gateway may send the browser back to after a sign-in
    /// (the apps' own redirect URIs); nothing else, so the gateway is no
    /// open redirect.
    pub app_redirect_uris: Vec<String>,
    /// How long a started sign-in may take (state and PKCE verifier kept).
    pub state_ttl_secs: u64,
    /// How long the one-time grant handed to the app stays redeemable.
    pub grant_ttl_secs: u64,
    /// The providers, by the name clients use (`google`, `microsoft`, …).
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            public_url: None,
            app_redirect_uris: Vec::new(),
            state_ttl_secs: 600,
            grant_ttl_secs: 120,
            providers: BTreeMap::new(),
        }
    }
}

/// One provider as configured: every field may be left to the preset.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// A file holding the client secret (trailing whitespace ignored).
    pub client_secret_file: Option<PathBuf>,
    /// Microsoft's directory: `common` (work and personal accounts),
    /// `organizations`, `consumers` or a tenant id.
    pub tenant: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Extra query parameters of the authorization request.
    pub authorize_params: Option<BTreeMap<String, String>>,
    pub imap: Option<ServerConfig>,
    pub smtp: Option<ServerConfig>,
    /// `xoauth2` or `oauthbearer`.
    pub mechanism: Option<String>,
}

/// Where a provider's IMAP or submission server is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// A provider with every setting known, ready to use.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub authorize_url: String,
    pub token_url: String,
    pub revoke_url: Option<String>,
    pub userinfo_url: Option<String>,
    pub scopes: Vec<String>,
    pub authorize_params: BTreeMap<String, String>,
    pub imap: ServerConfig,
    pub smtp: Option<ServerConfig>,
    pub mechanism: OAuthMechanism,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

const GOOGLE_SCOPE: &str = "https://mail.google.com/";

/// The preset of a provider name, if it has one.
fn preset(name: &str, tenant: &str) -> Option<ProviderConfig> {
    let server = |host: &str, port, security| {
        Some(ServerConfig {
            host: host.into(),
            port,
            security,
        })
    };
    match name {
        "google" => Some(ProviderConfig {
            authorize_url: Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
            token_url: Some("https://oauth2.googleapis.com/token".into()),
            revoke_url: Some("https://oauth2.googleapis.com/revoke".into()),
            userinfo_url: Some("https://openidconnect.googleapis.com/v1/userinfo".into()),
            scopes: Some(vec!["openid".into(), "email".into(), GOOGLE_SCOPE.into()]),
            // A refresh token is only issued offline, and again only on consent.
            authorize_params: Some(BTreeMap::from([
                ("access_type".into(), "offline".into()),
                ("prompt".into(), "consent".into()),
            ])),
            imap: server("imap.gmail.com", 993, Security::Tls),
            smtp: server("smtp.gmail.com", 465, Security::Tls),
            mechanism: Some("xoauth2".into()),
            ..ProviderConfig::default()
        }),
        "microsoft" => {
            let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
            Some(ProviderConfig {
                authorize_url: Some(format!("{base}/authorize")),
                token_url: Some(format!("{base}/token")),
                scopes: Some(vec![
                    "openid".into(),
                    "email".into(),
                    "offline_access".into(),
                    "https://outlook.office.com/IMAP.AccessAsUser.All".into(),
                    "https://outlook.office.com/SMTP.Send".into(),
                ]),
                authorize_params: Some(BTreeMap::new()),
                imap: server("outlook.office365.com", 993, Security::Tls),
                smtp: server("smtp.office365.com", 587, Security::Starttls),
                mechanism: Some("xoauth2".into()),
                ..ProviderConfig::default()
            })
        }
        _ => None,
    }
}

impl ProviderConfig {
    /// This provider's settings over its preset, complete; the error names
    /// the first thing missing or wrong.
    pub fn resolve(&self, name: &str) -> Result<Provider, String> {
        let tenant = self.tenant.as_deref().unwrap_or("common");
        let base = preset(name, tenant).unwrap_or_default();
        let pick = |own: &Option<String>, preset: Option<String>, what: &str| {
            own.clone()
                .or(preset)
                .ok_or_else(|| format!("{what} is not set (and `{name}` has no preset)"))
        };
        let client_secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(secret), None) => secret.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("client_secret_file {}: {e}", path.display()))?
                .trim_end()
                .to_string(),
            _ => return Err("set exactly one of client_secret and client_secret_file".into()),
        };
        let authorize_url = pick(&self.authorize_url, base.authorize_url, "authorize_url")?;
        let token_url = pick(&self.token_url, base.token_url, "token_url")?;
        let mechanism = match pick(&self.mechanism, base.mechanism, "mechanism")?.as_str() {
            "xoauth2" => OAuthMechanism::XOAuth2,
            "oauthbearer" => OAuthMechanism::OAuthBearer,
            other => {
                return Err(format!(
                    "mechanism `{other}` is neither xoauth2 nor oauthbearer"
                ))
            }
        };
        let provider = Provider {
            name: name.to_string(),
            client_id: pick(&self.client_id, None, "client_id")?,
            client_secret,
            authorize_url,
            token_url,
            revoke_url: self.revoke_url.clone().or(base.revoke_url),
            userinfo_url: self.userinfo_url.clone().or(base.userinfo_url),
            scopes: self.scopes.clone().or(base.scopes).unwrap_or_default(),
            authorize_params: self
                .authorize_params
                .clone()
                .or(base.authorize_params)
                .unwrap_or_default(),
            imap: self
                .imap
                .clone()
                .or(base.imap)
                .ok_or_else(|| format!("imap is not set (and `{name}` has no preset)"))?,
            smtp: self.smtp.clone().or(base.smtp),
            mechanism,
        };
        provider.check()?;
        Ok(provider)
    }
}

impl Provider {
    fn check(&self) -> Result<(), String> {
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err("client_id and the client secret must not be empty".into());
        }
        for (what, url) in [
            ("authorize_url", Some(&self.authorize_url)),
            ("token_url", Some(&self.token_url)),
            ("revoke_url", self.revoke_url.as_ref()),
            ("userinfo_url", self.userinfo_url.as_ref()),
        ] {
            if let Some(url) = url {
                check_http_url(url).map_err(|e| format!("{what}: {e}"))?;
            }
        }
        if self.scopes.is_empty() {
            return Err("scopes must not be empty".into());
        }
        Ok(())
    }
}

/// An absolute `http(s)` URL without a fragment.
fn check_http_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.fragment().is_some() {
        return Err(format!("`{url}` must be an http(s) URL without a fragment"));
    }
    Ok(parsed)
}

impl OAuthConfig {
    /// Every configured provider, resolved.
    pub fn providers(&self) -> Result<BTreeMap<String, Provider>, ConfigError> {
        self.providers
            .iter()
            .map(|(name, provider)| {
                let resolved = provider
                    .resolve(name)
                    .map_err(|reason| ConfigError::Invalid {
                        key: "oauth.providers",
                        reason: format!("{name}: {reason}"),
                    })?;
                Ok((name.clone(), resolved))
            })
            .collect()
    }

    /// The URL providers send browsers back to.
    pub fn callback_url(&self) -> Option<String> {
        let base = self.public_url.as_deref()?.trim_end_matches('/');
        Some(format!("{base}/v1/oauth/callback"))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| Err(ConfigError::Invalid { key, reason });
        if let Some(url) = &self.public_url {
            if let Err(e) = check_http_url(url) {
                return invalid("oauth.public_url", e);
            }
        } else if !self.providers.is_empty() {
            return invalid(
                "oauth.public_url",
                "must be set when providers are: it is where providers send browsers back".into(),
            );
        }
        for uri in &self.app_redirect_uris {
            match url::Url::parse(uri) {
                Ok(parsed) if parsed.fragment().is_none() => {}
                _ => {
                    return invalid(
                        "oauth.app_redirect_uris",
                        format!("`{uri}` is not an absolute URI without a fragment"),
                    )
                }
            }
        }
        if self.state_ttl_secs == 0 || self.grant_ttl_secs == 0 {
            return invalid(
                "oauth.state_ttl_secs",
                "state_ttl_secs and grant_ttl_secs must be positive".into(),
            );
        }
        self.providers().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(client: &str) -> ProviderConfig {
        ProviderConfig {
            client_id: Some(client.into()),
            client_secret: Some("secret".into()),
            ..ProviderConfig::default()
        }
    }

    #[test]
    fn presets_need_only_the_client() {
        let google = named("id").resolve("google").expect("google");
        assert_eq!(google.imap.host, "imap.gmail.com");
        assert!(google.scopes.iter().any(|s| s == GOOGLE_SCOPE));
        assert_eq!(google.authorize_params["access_type"], "offline");
        let mut microsoft = named("id");
        microsoft.tenant = Some("contoso.onmicrosoft.com".into());
        let microsoft = microsoft.resolve("microsoft").expect("microsoft");
        assert!(microsoft.token_url.contains("/contoso.onmicrosoft.com/"));
        assert!(microsoft.scopes.iter().any(|s| s == "offline_access"));
        assert_eq!(microsoft.mechanism, OAuthMechanism::XOAuth2);
    }

    #[test]
    fn other_providers_must_say_everything() {
        let error = named("id").resolve("corp").expect_err("no preset");
        assert!(error.contains("authorize_url"), "{error}");
        let mut both = named("id");
        both.client_secret_file = Some("/nonexistent".into());
        let error = both.resolve("google").expect_err("two secrets");
        assert!(error.contains("exactly one"), "{error}");
        let mut bad = named("id");
        bad.mechanism = Some("plain".into());
        assert!(bad.resolve("google").is_err());
    }

    #[test]
    fn providers_need_a_public_url() {
        let mut config = OAuthConfig::default();
        config.providers.insert("google".into(), named("id"));
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                key: "oauth.public_url",
                ..
            })
        ));
        config.public_url = Some("https://mail.example.com/".into());
        config.validate().expect("valid");
        assert_eq!(
            config.callback_url().as_deref(),
            Some("https://mail.example.com/v1/oauth/callback")
        );
        config.app_redirect_uris = vec!["not a uri".into()];
        assert!(config.validate().is_err());
    }
}
