//! Sending mail.
