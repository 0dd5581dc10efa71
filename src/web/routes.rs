//! Routes that can be listed. axum's `Router` cannot say which paths and methods it serves, so
//! every feature builds its router through [`Routes`], which keeps the (method, path) pairs
//! beside it; `app::routes` hands the whole list out. The CSRF test posts to every POST route
//! from that list, so a new form cannot be left out of it.

use std::convert::Infallible;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, Route};
use axum::Router;
use tower::{Layer, Service};

use crate::state::AppState;

/// The handlers of one path, and the methods they answer.
pub struct Endpoint {
    methods: Vec<Method>,
    router: MethodRouter<AppState>,
}

/// A `GET` handler (as `axum::routing::get`).
pub fn get<H: Handler<T, AppState>, T: 'static>(handler: H) -> Endpoint {
    Endpoint {
        methods: vec![Method::GET],
        router: axum::routing::get(handler),
    }
}

/// A `POST` handler (as `axum::routing::post`).
pub fn post<H: Handler<T, AppState>, T: 'static>(handler: H) -> Endpoint {
    Endpoint {
        methods: vec![Method::POST],
        router: axum::routing::post(handler),
    }
}

impl Endpoint {
    /// The same path's `POST` handler.
    pub fn post<H: Handler<T, AppState>, T: 'static>(mut self, handler: H) -> Endpoint {
        self.methods.push(Method::POST);
        self.router = self.router.post(handler);
        self
    }
}

/// A router and the (method, path) pairs it serves.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    list: Vec<(Method, &'static str)>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    pub fn route(mut self, path: &'static str, endpoint: Endpoint) -> Routes {
        self.list
            .extend(endpoint.methods.into_iter().map(|m| (m, path)));
        self.router = self.router.route(path, endpoint.router);
        self
    }

    pub fn merge(mut self, other: Routes) -> Routes {
        self.list.extend(other.list);
        self.router = self.router.merge(other.router);
        self
    }

    /// `Router::route_layer`: around the routes so far.
    pub fn route_layer<L>(mut self, layer: L) -> Routes
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.route_layer(layer);
        self
    }

    /// `Router::layer`: around the routes so far.
    pub fn layer<L>(mut self, layer: L) -> Routes
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// The (method, path) pairs, in the order they were added.
    pub fn list(&self) -> &[(Method, &'static str)] {
        &self.list
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
