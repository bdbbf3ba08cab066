//! [`JsonLayer`] (feature `json`): a `tracing` layer that writes each event
//! as one JSON line, with the trace context a search needs on every line.
//!
//! A line holds `timestamp` (RFC 3339, UTC), `level`, `target`, `message`,
//! the event's other `fields`, `spans` (the names from the root span to the
//! innermost), `trace_id` and `span_id` when an enclosing span has such a
//! field (the innermost wins) or, with feature `opentelemetry`, from the
//! OpenTelemetry context of the event's span (tracing-opentelemetry's
//! layer must be in the subscriber), and the configured business keys
//! ([`JsonLayer::lift`]: `order_id`, `user_id`) from the enclosing spans,
//! at the top level, so that every line of a request carries its keys
//! without the call site repeating them.
//!
//! A span's fields are rendered once, when it is created (or recorded); an
//! event costs one buffer per thread, reused, and the writer's own work.

use std::{cell::RefCell, fmt::Write as _, io::Write as _, sync::Arc};

use tracing_core::{
    Event, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{
    fmt::MakeWriter,
    layer::{Context, Layer},
    registry::LookupSpan,
};

thread_local! {
    /// The line being built, reused from event to event.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes each event as one JSON line to `W` (an [`Appender`](crate::Appender)
/// or a [`Router`](crate::Router): one event is one record).
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// # let dir = std::env::temp_dir().join(format!("logcut-doc-json-{}", std::process::id()));
/// let appender = logcut::Appender::builder().dir(&dir).build()?;
/// let layer = logcut::JsonLayer::new(appender.clone()).lift(["order_id"]);
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("checkout", trace_id = "4bf92f3577b34da6", order_id = 42);
///     let _in = span.enter();
///     tracing::info!(amount = 9.5, "paid");
/// });
/// appender.shutdown()?;
/// let line = String::from_utf8(logcut_format::read_all(&dir, "app")?)?;
/// assert!(line.contains(r#""trace_id":"4bf92f3577b34da6""#) && line.contains(r#""order_id":42"#), "{line}");
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct JsonLayer<W> {
    writer: W,
    lifted: Arc<[String]>,
    /// The subscriber this layer is part of: the OpenTelemetry context is
    /// looked up through it (`get_default` gives none inside an event).
    #[cfg(feature = "opentelemetry")]
    dispatch: Arc<std::sync::OnceLock<tracing_core::dispatcher::WeakDispatch>>,
}

impl<W> JsonLayer<W>
where
    W: for<'a> MakeWriter<'a> + 'static,
{
    /// A layer writing to `writer`.
    pub fn new(writer: W) -> JsonLayer<W> {
        JsonLayer {
            writer,
            lifted: Arc::from(Vec::new()),
            #[cfg(feature = "opentelemetry")]
            dispatch: Arc::default(),
        }
    }

    /// Fields of enclosing spans copied to the top level of every line
    /// beneath them (the innermost span's value wins), besides `trace_id`
    /// and `span_id`, which always are.
    pub fn lift<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v: Vec<String> = self.lifted.iter().cloned().collect();
        v.extend(keys.into_iter().map(Into::into));
        self.lifted = v.into();
        self
    }
}

/// A span's fields, each as `"name":value` (JSON), rendered once.
struct SpanJson {
    fields: Vec<(&'static str, String)>,
}

/// Renders fields as JSON values.
struct Render<'a> {
    out: &'a mut Vec<(&'static str, String)>,
}

impl Render<'_> {
    fn put(&mut self, field: &Field, value: String) {
        match self.out.iter_mut().find(|(n, _)| *n == field.name()) {
            Some(slot) => slot.1 = value,
            None => self.out.push((field.name(), value)),
        }
    }
}

impl Visit for Render<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let mut s = String::with_capacity(value.len() + 2);
        quote(&mut s, value);
        self.put(field, s);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those become strings.
        let s = if value.is_finite() {
            value.to_string()
        } else {
            format!("\"{value}\"")
        };
        self.put(field, s);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        let mut s = String::with_capacity(text.len() + 2);
        quote(&mut s, &text);
        self.put(field, s);
    }
}

/// Appends `s` to `out` as a JSON string.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// Appends `s` to `out`, escaped for the inside of a JSON string.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    #[cfg(feature = "opentelemetry")]
    fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Render { out: &mut fields });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanJson { fields });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(j) = ext.get_mut::<SpanJson>() {
                values.record(&mut Render { out: &mut j.fields });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let _ = LINE.try_with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return;
            };
            line.clear();
            self.render(&mut line, event, &ctx);
            let mut w = self.writer.make_writer_for(event.metadata());
            // One write: the writer takes the whole line as one record.
            let _ = w.write_all(line.as_bytes());
        });
    }
}

/// Writes an event's fields straight into the line (no allocation per
/// field): the `message` alone, or every other field as the `fields`
/// object.
struct Direct<'a> {
    line: &'a mut String,
    message: bool,
    /// No field written yet (the object is still to be opened).
    first: bool,
}

impl Direct<'_> {
    /// Writes the separator and name of `field`, if it is one this pass
    /// writes; false otherwise.
    fn key(&mut self, field: &Field) -> bool {
        if (field.name() == "message") != self.message {
            return false;
        }
        if self.message {
            self.line.push_str(",\"message\":");
        } else {
            self.line
                .push_str(if self.first { ",\"fields\":{" } else { "," });
            quote(self.line, field.name());
            self.line.push(':');
        }
        self.first = false;
        true
    }
}

impl Visit for Direct<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            quote(self.line, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            let _ = write!(self.line, "{value}");
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            if value.is_finite() {
                let _ = write!(self.line, "{value}");
            } else {
                // JSON has no NaN or infinity.
                let _ = write!(self.line, "\"{value}\"");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.key(field) {
            self.line.push('"');
            let _ = write!(Escaped(self.line), "{value:?}");
            self.line.push('"');
        }
    }
}

/// A `fmt::Write` that escapes what it is given for a JSON string.
struct Escaped<'a>(&'a mut String);

impl std::fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

impl<W> JsonLayer<W> {
    /// Renders one event's line into `line`, with no allocation of its own
    /// (the line is reused; span fields were rendered when the spans were
    /// made).
    fn render<S>(&self, line: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        line.push_str("{\"timestamp\":\"");
        let now = jiff::Timestamp::now();
        let _ = write!(line, "{now:.6}");
        line.push_str("\",\"level\":\"");
        line.push_str(meta.level().as_str());
        line.push_str("\",\"target\":");
        quote(line, meta.target());
        event.record(&mut Direct {
            line,
            message: true,
            first: true,
        });
        self.lift_into(line, event, ctx);
        let mut rest = Direct {
            line,
            message: false,
            first: true,
        };
        event.record(&mut rest);
        if !rest.first {
            line.push('}');
        }
        if let Some(scope) = ctx.event_scope(event) {
            line.push_str(",\"spans\":[");
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                quote(line, span.name());
            }
            line.push(']');
        }
        line.push_str("}\n");
    }

    /// Writes `trace_id`, `span_id` and the lifted keys of the enclosing
    /// spans, the innermost span's value of each.
    fn lift_into<S>(&self, line: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // Names written so far, on the stack: a few keys per line.
        let mut seen: [&str; 16] = [""; 16];
        let mut n = 0;
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            let ext = span.extensions();
            let Some(j) = ext.get::<SpanJson>() else {
                continue;
            };
            for (name, value) in &j.fields {
                let wanted = *name == "trace_id"
                    || *name == "span_id"
                    || self.lifted.iter().any(|k| k == name);
                if !wanted || seen[..n].contains(name) || n == seen.len() {
                    continue;
                }
                seen[n] = name;
                n += 1;
                line.push(',');
                quote(line, name);
                line.push(':');
                line.push_str(value);
            }
        }
        #[cfg(feature = "opentelemetry")]
        {
            let has = |k: &str| seen[..n].contains(&k);
            if !(has("trace_id") && has("span_id")) {
                let d = self.dispatch.get().and_then(|w| w.upgrade());
                if let Some(d) = d {
                    otel_ids(line, event, ctx, &d, has("trace_id"), has("span_id"));
                }
            }
        }
    }
}

/// Writes `trace_id` and `span_id` (those not given by span fields) from
/// the OpenTelemetry context of the event's span, if it has a valid one.
#[cfg(feature = "opentelemetry")]
fn otel_ids<S>(
    line: &mut String,
    event: &Event<'_>,
    ctx: &Context<'_, S>,
    dispatch: &tracing_core::Dispatch,
    trace: bool,
    span: bool,
) where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use opentelemetry::trace::TraceContextExt as _;
    let Some(id) = ctx.event_span(event).map(|s| s.id()) else {
        return;
    };
    // No span extensions are held here: the lookup locks them.
    let Some(cx) = tracing_opentelemetry::get_otel_context(&id, dispatch) else {
        return;
    };
    let otel = cx.span();
    let sc = otel.span_context();
    if !sc.is_valid() {
        return;
    }
    if !trace {
        let _ = write!(line, ",\"trace_id\":\"{}\"", sc.trace_id());
    }
    if !span {
        let _ = write!(line, ",\"span_id\":\"{}\"", sc.span_id());
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn strings_are_escaped_as_json_wants() {
        let mut s = String::new();
        quote(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }
}
