//! Routing `tracing` events (feature `tracing`): [`RouteLayer`] finds the
//! routing fields of each event, its own and those of the spans it is in
//! (the innermost value of a field wins), and the [`Router`]'s writer
//! routes the formatted event by them, as one record.
//!
//! The layer must come before the formatting layer, so that it sees the
//! event first:
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! # let tmp = std::env::temp_dir().join(format!("logcut-doc-route-{}", std::process::id()));
//! let router = logcut::Router::builder(&tmp)
//!     .group("std", logcut::Appender::builder())
//!     .build()?;
//! let subscriber = tracing_subscriber::registry()
//!     .with(router.layer())
//!     .with(tracing_subscriber::fmt::layer().with_writer(router.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", tenant = "acme");
//!     let _in = span.enter();
//!     tracing::info!("paid"); // to <root>/std/acme/
//! });
//! router.shutdown()?;
//! # std::fs::remove_dir_all(&tmp).ok();
//! # Ok::<(), logcut::Error>(())
//! ```

use std::{cell::RefCell, fmt, io, sync::Arc};

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

use super::Router;

thread_local! {
    /// The routing fields of the event being formatted on this thread, set
    /// by the layer and taken by the writer.
    static CURRENT: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// A `tracing` layer that gives a [`Router`]'s writer the routing fields of
/// each event: the tenant field and the fields the routing table tests (as
/// they were when the layer was made), plus any named with
/// [`RouterBuilder::route_field`](super::RouterBuilder::route_field).
#[derive(Debug, Clone)]
pub struct RouteLayer {
    names: Arc<[String]>,
}

/// The routing fields found on a span.
struct SpanFields(Vec<(String, String)>);

/// Collects the values of the fields in `names`.
struct Capture<'a> {
    names: &'a [String],
    found: Vec<(String, String)>,
}

impl Capture<'_> {
    fn put(&mut self, field: &Field, value: String) {
        if !self.names.iter().any(|n| n == field.name()) {
            return;
        }
        match self.found.iter_mut().find(|(n, _)| n == field.name()) {
            Some(slot) => slot.1 = value,
            None => self.found.push((field.name().to_string(), value)),
        }
    }
}

impl Visit for Capture<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.names.iter().any(|n| n == field.name()) {
            self.put(field, format!("{value:?}"));
        }
    }
}

impl Router {
    /// The layer that finds each event's routing fields (see the example
    /// in [`RouteLayer`]'s module and the crate docs).
    pub fn layer(&self) -> RouteLayer {
        let table = self.inner.table.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = vec![self.inner.tenant_field.clone()];
        names.extend(table.fields().map(str::to_string));
        names.extend(self.inner.extra_fields.iter().cloned());
        names.sort();
        names.dedup();
        RouteLayer {
            names: names.into(),
        }
    }
}

impl<S> Layer<S> for RouteLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut c = Capture {
            names: &self.names,
            found: Vec::new(),
        };
        attrs.record(&mut c);
        if let (false, Some(span)) = (c.found.is_empty(), ctx.span(id)) {
            span.extensions_mut().insert(SpanFields(c.found));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut ext = span.extensions_mut();
        let found = ext.remove::<SpanFields>().map(|f| f.0).unwrap_or_default();
        let mut c = Capture {
            names: &self.names,
            found,
        };
        values.record(&mut c);
        if !c.found.is_empty() {
            ext.insert(SpanFields(c.found));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut c = Capture {
            names: &self.names,
            found: Vec::new(),
        };
        event.record(&mut c);
        // Innermost first: a span's value counts only where the event and
        // the spans inside it have none.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    for (n, v) in &f.0 {
                        if !c.found.iter().any(|(m, _)| m == n) {
                            c.found.push((n.clone(), v.clone()));
                        }
                    }
                }
            }
        }
        let _ = CURRENT.try_with(|cur| {
            if let Ok(mut cur) = cur.try_borrow_mut() {
                *cur = c.found;
            }
        });
    }
}

/// The writer for one event through a [`Router`]: collects the formatted
/// event and routes it, as one record, when dropped. Errors (only after
/// shutdown) go to nobody; the router does not count them.
#[derive(Debug)]
pub struct RouteWriter<'a> {
    router: &'a Router,
    buf: Vec<u8>,
}

impl io::Write for RouteWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RouteWriter<'_> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // Taken: an event that did not pass the layer routes by no fields
        // rather than by the last one's.
        let fields = CURRENT
            .try_with(|c| {
                c.try_borrow_mut()
                    .map(|mut c| std::mem::take(&mut *c))
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let _ = self.router.write_to(&pairs, &self.buf);
    }
}

impl<'a> MakeWriter<'a> for Router {
    type Writer = RouteWriter<'a>;

    fn make_writer(&'a self) -> RouteWriter<'a> {
        RouteWriter {
            router: self,
            buf: Vec::new(),
        }
    }
}
