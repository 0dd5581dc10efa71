//! Prometheus metrics: what an operator graphs (requests, logins, second-factor checks, codes
//! per country, refusals, votes, queues, the pool). Served in the Prometheus text format at
//! `/metrics` on a listener of its own, `METRICS_ADDR` (off by default, never the public port);
//! docs/operations.md#metrics lists every series and its labels.
//!
//! Each server records into a recorder of its own ([`Telemetry`], a part of the state), not the
//! `metrics` crate's process-wide one: the API tests run many servers in one process, and each
//! must count only what it did. With `METRICS_ADDR` unset nothing is recorded at all (every
//! method returns at once). Label values come from fixed sets only (route templates, outcomes,
//! limit names, ISO country codes, channel names): nothing names a person, a number or an
//! address.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Request durations, in seconds: from a cached page (well under a millisecond) to a Verify
/// call that times out.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Votes per committed batch (the writer takes at most 128).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

const METADATA: Metadata<'static> = Metadata::new("pollstr", metrics::Level::INFO, None);

/// A server's metrics (cheap to clone; off when `METRICS_ADDR` is unset).
#[derive(Clone, Default)]
pub struct Telemetry(Option<Arc<Inner>>);

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Each route's request series, found without building a key on every request.
    routes: RwLock<HashMap<String, RouteSeries>>,
}

struct RouteSeries {
    duration: Histogram,
    by_status: HashMap<(&'static str, u16), Counter>,
}

/// A label value: always from a fixed set (never what a user typed).
pub type Value = Cow<'static, str>;

impl Telemetry {
    /// Recording nothing.
    pub fn off() -> Telemetry {
        Telemetry(None)
    }

    /// Recording, with the build's information as its first series.
    pub fn on(backend: &'static str) -> Telemetry {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("pollstr_http_request_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("pollstr_vote_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let t = Telemetry(Some(Arc::new(Inner {
            recorder,
            handle,
            routes: RwLock::new(HashMap::new()),
        })));
        t.gauge(
            "pollstr_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION").into()),
                ("backend", backend.into()),
            ],
            1.0,
        );
        t
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Adds one to the counter `name` with these labels.
    pub fn count(&self, name: &'static str, labels: &[(&'static str, Value)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, Value)], n: u64) {
        if let Some(inner) = &self.0 {
            inner
                .recorder
                .register_counter(&key(name, labels), &METADATA)
                .increment(n);
        }
    }

    /// Sets the counter `name` to `value` (a total kept elsewhere, read at scrape time).
    pub fn total(&self, name: &'static str, labels: &[(&'static str, Value)], value: u64) {
        if let Some(inner) = &self.0 {
            inner
                .recorder
                .register_counter(&key(name, labels), &METADATA)
                .absolute(value);
        }
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, Value)], value: f64) {
        if let Some(inner) = &self.0 {
            inner
                .recorder
                .register_gauge(&key(name, labels), &METADATA)
                .set(value);
        }
    }

    pub fn observe(&self, name: &'static str, labels: &[(&'static str, Value)], value: f64) {
        if let Some(inner) = &self.0 {
            inner
                .recorder
                .register_histogram(&key(name, labels), &METADATA)
                .record(value);
        }
    }

    /// One request answered: `route` is the route template (`/polls/{id}/`), never the path.
    pub fn request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        let Some(inner) = &self.0 else {
            return;
        };
        let seconds = took.as_secs_f64();
        {
            let routes = inner.routes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(series) = routes.get(route) {
                if let Some(counter) = series.by_status.get(&(method, status)) {
                    series.duration.record(seconds);
                    counter.increment(1);
                    return;
                }
            }
        }
        let mut routes = inner.routes.write().unwrap_or_else(|e| e.into_inner());
        let series = routes.entry(route.to_string()).or_insert_with(|| {
            let labels = [("route", Value::Owned(route.to_string()))];
            RouteSeries {
                duration: inner.recorder.register_histogram(
                    &key("pollstr_http_request_duration_seconds", &labels),
                    &METADATA,
                ),
                by_status: HashMap::new(),
            }
        });
        series.duration.record(seconds);
        series
            .by_status
            .entry((method, status))
            .or_insert_with(|| {
                let labels = [
                    ("route", Value::Owned(route.to_string())),
                    ("method", Value::Borrowed(method)),
                    ("status", Value::Owned(status.to_string())),
                ];
                inner
                    .recorder
                    .register_counter(&key("pollstr_http_requests_total", &labels), &METADATA)
            })
            .increment(1);
    }

    /// The Prometheus text of every series (histograms brought up to date first).
    pub fn render(&self) -> Option<String> {
        let inner = self.0.as_ref()?;
        inner.handle.run_upkeep();
        Some(inner.handle.render())
    }

    /// Folds the histograms' recent samples in, so that they do not pile up between scrapes
    /// (run every few seconds while serving).
    pub fn upkeep(&self) {
        if let Some(inner) = &self.0 {
            inner.handle.run_upkeep();
        }
    }
}

/// A request's method as a label: one of a fixed few.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn key(name: &'static str, labels: &[(&'static str, Value)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect();
    Key::from_parts(name, labels)
}
