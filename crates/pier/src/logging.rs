//! Log output: plain text (coloured only on a terminal) or one JSON object per line.
//!
//! Filtering follows `RUST_LOG` (`tracing_subscriber::EnvFilter` syntax, e.g.
//! `RUST_LOG=info,pier_server::http=debug,sqlx=warn`); the default is `info,sqlx=warn`.

use serde_json::{Map, Value};
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: sqlx logs every statement at info.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colours only when stdout is a terminal.
    Text,
    /// One JSON object per line: timestamp, level, target, message, request_id and merchant
    /// (inside a request), then the event's other fields.
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON (then stdout carries nothing else).
pub fn is_json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// `to_stderr`: for the one-shot commands, whose stdout is their answer (`merchant create
/// --json`, `operator create`, `channel add`…): a log line there (on PostgreSQL the store logs
/// at start) would break a caller that parses it. The servers log to stdout.
pub fn init(format: LogFormat, to_stderr: bool) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, terminal) = if to_stderr {
        (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        )
    } else {
        (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        )
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // `try_init`: a second initialisation (tests) is not an error worth dying for.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(terminal).try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .try_init(),
    };
}

/// A flat JSON object per event; the fields of the spans it is in (the request span's
/// `request_id`, `merchant`, `method`, `path`) are merged in, outermost first.
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // timestamp, level, target, message first (in that order), then the spans' fields
        // (request_id, merchant, …), then the event's own.
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let meta = event.metadata();
        let mut obj = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                let Some(fields) = ext.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(fields) {
                    obj.extend(m);
                }
            }
        }
        let mut visitor = Fields(&mut obj);
        event.record(&mut visitor);
        let message = obj
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        let head = |v: &Value| serde_json::to_string(v).map_err(|_| fmt::Error);
        let mut line = format!(
            "{{\"timestamp\":{},\"level\":{},\"target\":{},\"message\":{}",
            head(&Value::String(ts))?,
            head(&Value::String(meta.level().to_string()))?,
            head(&Value::String(meta.target().to_owned()))?,
            head(&message)?
        );
        for key in ["timestamp", "level", "target"] {
            obj.remove(key);
        }
        for (k, v) in &obj {
            line.push(',');
            line.push_str(&head(&Value::String(k.clone()))?);
            line.push(':');
            line.push_str(&head(v)?);
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}
