-- One-time tickets of OAuth2 sign-in: a started sign-in's state and PKCE
-- verifier, and the grant handed back to the app. Keyed by the SHA-256 of
-- the one-time value; bodies are sealed.
CREATE TABLE oauth_ticket (
    key        bytea PRIMARY KEY,
    body       bytea NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX oauth_ticket_expiry ON oauth_ticket (expires_at);
