//! Where log lines go and what they look like: text or one JSON object per
//! line (`log_format`), colour codes only when stderr is a terminal (the
//! journal and log files get plain text), and in cluster mode the node id
//! (`node`) on every line.
//!
//! The node id is added by the event formatter, not by a span: a span
//! entered in `main` does not follow `tokio::spawn`, so events of spawned
//! tasks would lose it.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("log filter {filter:?} (the `log` key): {reason}")]
    Filter { filter: String, reason: String },
    #[error("installing the logger: {0}")]
    Install(String),
}

/// Installs the process-wide logger: to stderr, in the configured format,
/// coloured only if stderr is a terminal.
pub fn init(config: &Config) -> Result<(), LoggingError> {
    let ansi = std::io::stderr().is_terminal();
    dispatch(config, std::io::stderr, ansi)?
        .try_init()
        .map_err(|e| LoggingError::Install(e.to_string()))
}

/// A logger writing to `writer`, as [`init`] installs it; `ansi` asks for
/// colour codes (text format only).
pub fn dispatch<W>(config: &Config, writer: W, ansi: bool) -> Result<Dispatch, LoggingError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.log).map_err(|e| LoggingError::Filter {
        filter: config.log.clone(),
        reason: e.to_string(),
    })?;
    let node = config
        .cluster_mode()
        .then(|| config.cluster.node_id.clone());
    // A log stream that went away (a closed pipe) must not make the
    // subscriber report to stderr, the same stream, which panics.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .log_internal_errors(false)
        .with_writer(writer);
    Ok(match config.log_format {
        LogFormat::Text => builder
            .with_ansi(ansi)
            .event_format(WithNode::text(node))
            .finish()
            .into(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .event_format(WithNode::json(node))
            .finish()
            .into(),
    })
}

/// An event format that puts `node` first on every line when there is one.
struct WithNode<F> {
    inner: F,
    node: Option<String>,
    json: bool,
}

type Text = tracing_subscriber::fmt::format::Format;
type Json = tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>;

impl WithNode<Text> {
    fn text(node: Option<String>) -> Self {
        WithNode {
            inner: tracing_subscriber::fmt::format(),
            node,
            json: false,
        }
    }
}

impl WithNode<Json> {
    fn json(node: Option<String>) -> Self {
        WithNode {
            inner: tracing_subscriber::fmt::format().json(),
            node,
            json: true,
        }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithNode<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(node) = &self.node else {
            return self.inner.format_event(ctx, writer, event);
        };
        if !self.json {
            write!(writer, "node={node} ")?;
            return self.inner.format_event(ctx, writer, event);
        }
        // The JSON formatter writes one object; the node goes in as its first member.
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let members = line.strip_prefix('{').ok_or(fmt::Error)?;
        let node = serde_json::to_string(node).map_err(|_| fmt::Error)?;
        write!(writer, "{{\"node\":{node},{members}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a logger wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn config(format: LogFormat, cluster: bool) -> Config {
        let mut config = Config {
            log_format: format,
            ..Config::default()
        };
        config.cluster.node_id = "node-7".into();
        if cluster {
            config.store.backend = crate::config::StoreBackend::Postgres;
        }
        config
    }

    /// The lines `config`'s logger writes for two events, one inside a span.
    fn lines(config: &Config, ansi: bool) -> Vec<String> {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let dispatch = dispatch(config, move || out.clone(), ansi).unwrap();
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(accounts = 3, "gateway started");
            tracing::info_span!("watch", account = "a1").in_scope(|| {
                tracing::warn!(error = "quote \" and\nnewline", "reconnecting");
            });
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn json_lines_are_objects_that_name_the_node_in_cluster_mode() {
        let lines = lines(&config(LogFormat::Json, true), true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in &lines {
            assert!(!line.contains('\x1b'), "{line}");
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["node"], "node-7", "{line}");
        }
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["fields"]["message"], "gateway started");
        assert_eq!(first["fields"]["accounts"], 3);
        assert_eq!(first["level"], "INFO");
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["fields"]["error"], "quote \" and\nnewline");
        assert_eq!(second["span"]["account"], "a1");
    }

    #[test]
    fn a_single_node_names_no_node() {
        for line in lines(&config(LogFormat::Json, false), false) {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert!(value.get("node").is_none(), "{line}");
        }
        for line in lines(&config(LogFormat::Text, false), false) {
            assert!(!line.contains("node="), "{line}");
        }
    }

    #[test]
    fn text_lines_name_the_node_and_are_coloured_only_when_asked() {
        let plain = lines(&config(LogFormat::Text, true), false);
        assert_eq!(plain.len(), 2, "{plain:?}");
        for line in &plain {
            assert!(line.starts_with("node=node-7 "), "{line}");
            assert!(!line.contains('\x1b'), "{line}");
        }
        assert!(plain[0].contains("gateway started"), "{}", plain[0]);
        let coloured = lines(&config(LogFormat::Text, true), true);
        assert!(coloured[0].starts_with("node=node-7 "), "{}", coloured[0]);
        assert!(coloured[0].contains('\x1b'), "{}", coloured[0]);
    }

    #[test]
    fn a_bad_filter_is_named() {
        let mut config = config(LogFormat::Text, false);
        config.log = "lemonade=loud".into();
        let err = dispatch(&config, std::io::sink, false).unwrap_err();
        assert!(err.to_string().contains("lemonade=loud"), "{err}");
    }
}
