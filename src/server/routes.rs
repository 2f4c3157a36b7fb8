//! The route table: every method and path the server answers, with its handler, in one list.
//! Dispatch, the `405 Method Not Allowed` answer and its `Allow` list, the operator-token check
//! and the OpenAPI document (`GET /api/openapi.json`, [`super::openapi`]) are all read from it,
//! so a route cannot be served undocumented or documented unserved.
//!
//! Adding an endpoint takes three things:
//! 1. an answer type deriving `Serialize` and `utoipa::ToSchema` (in `crate::query`);
//! 2. a query struct deriving `Deserialize` and `utoipa::IntoParams` if it takes a query string
//!    (in `crate::query::params`), read with [`Call::query`];
//! 3. a handler `async fn name(call: Call<'_>) -> Result<Resp, ApiError>` carrying
//!    `#[utoipa::path(get, path = "/api/sites/{site}/name", params(..), responses(..))]` — the
//!    method and path are written there, once — and one line `route!(api::name)` in [`table`]
//!    (under `operator` for bearer-token endpoints, which then get the check and a documented 401).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::LazyLock;

use http::{HeaderMap, Method, Request};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use super::response::Resp;
use super::{api, public};
use crate::app::App;
use crate::error::ApiError;
use crate::model::now_ms;
use crate::query::params::Params;

/// One request on its way to a handler: the app, the request, the client address and the path's
/// `{parameters}`.
pub struct Call<'a> {
    pub app: &'a App,
    pub req: Request<Incoming>,
    pub peer: IpAddr,
    params: PathParams,
}

impl Call<'_> {
    /// The value of path parameter `{name}` (empty if the route has none by that name).
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
    }

    pub fn headers(&self) -> &HeaderMap {
        self.req.headers()
    }

    /// The query string as a typed struct; a bad or missing parameter is a 400 naming it.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        crate::query::params::parse(self.req.uri().query()).map_err(ApiError::BadRequest)
    }

    /// The query string as what a store is asked ([`Params`]); a bad value is a 400 naming it.
    pub fn ask<P: Params>(&self) -> Result<P::Query, ApiError> {
        self.query::<P>()?.into_query(now_ms()).map_err(ApiError::BadRequest)
    }
}

/// The `{name}`s of a matched path and their values.
pub type PathParams = Vec<(&'static str, String)>;

/// What a handler returns, boxed so that every handler has the same type.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Resp, ApiError>> + Send + 'a>>;
pub type Handler = for<'a> fn(Call<'a>) -> Answer<'a>;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `Authorization: Bearer <operator token>`, else 401.
    Operator,
}

/// One documented handler: the method(s) and path of its `#[utoipa::path]`, and its operation.
pub struct Route {
    pub methods: Vec<Method>,
    /// OpenAPI form: `/api/sites/{site}/sessions/{sid}`; a last `{*name}` takes the rest.
    pub path: String,
    pub access: Access,
    pub handler: Handler,
    pub operation: fn() -> Operation,
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
    http_methods: Vec<HttpMethod>,
}

impl Route {
    pub fn new<P: utoipa::Path + utoipa::__dev::SchemaReferences>(access: Access, handler: Handler) -> Self {
        let http_methods = P::methods();
        let methods = http_methods.iter().map(method_of).collect();
        Route { methods, path: P::path(), access, handler, operation: P::operation, schemas: P::schemas, http_methods }
    }

    pub fn http_methods(&self) -> &[HttpMethod] {
        &self.http_methods
    }

    /// The path as the document shows it: `{*file}` becomes `{file}`.
    pub fn doc_path(&self) -> String {
        self.path.replace("{*", "{")
    }
}

fn method_of(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// `route!(module::handler)`: the handler, boxed, with the method, path and operation of its
/// `#[utoipa::path]` attribute.
macro_rules! route {
    ($access:expr, $module:ident :: $handler:ident) => {
        paste::paste! {
            Route::new::<$module::[<__path_ $handler>]>($access, {
                fn boxed(call: Call<'_>) -> Answer<'_> {
                    Box::pin($module::$handler(call))
                }
                boxed
            })
        }
    };
}

/// Every route the server answers.
pub fn table() -> Vec<Route> {
    use Access::{Operator, Public};
    vec![
        route!(Public, public::collect),
        route!(Public, public::collect_preflight),
        route!(Public, public::healthz),
        route!(Public, public::metrics),
        route!(Public, public::snippet),
        route!(Public, public::replay_recorder),
        route!(Public, public::replay_player),
        route!(Public, public::more),
        route!(Public, public::demo),
        route!(Public, public::dashboard),
        route!(Public, public::dashboard_file),
        route!(Public, public::disable),
        route!(Public, public::enable_page),
        route!(Public, public::enable),
        route!(Public, public::optout),
        route!(Public, public::optout_preflight),
        route!(Public, public::me_export),
        route!(Public, public::me_export_preflight),
        route!(Public, public::me_forget),
        route!(Public, public::me_forget_preflight),
        route!(Public, public::page_style),
        route!(Public, public::openapi),
        route!(Operator, api::list_sites),
        route!(Operator, api::create_site),
        route!(Operator, api::stats),
        route!(Operator, api::pages),
        route!(Operator, api::heatmap),
        route!(Operator, api::scroll),
        route!(Operator, api::forms),
        route!(Operator, api::attention),
        route!(Operator, api::funnel),
        route!(Operator, api::sessions),
        route!(Operator, api::session),
        route!(Operator, api::forget_visitor),
    ]
}

/// The table indexed for lookup.
pub struct Routes {
    pub routes: Vec<Route>,
    matcher: matchit::Router<usize>,
    /// Per matched path: `(method, index into routes)` and the `Allow` header value.
    paths: Vec<(Vec<(Method, usize)>, String)>,
}

/// Why a request found no handler.
pub enum Miss {
    NotFound,
    /// The path exists; these methods (an `Allow` value) do.
    MethodNotAllowed(&'static str),
}

pub static ROUTES: LazyLock<Routes> = LazyLock::new(|| Routes::new(table()));

impl Routes {
    fn new(routes: Vec<Route>) -> Self {
        let mut matcher = matchit::Router::new();
        let mut paths: Vec<(Vec<(Method, usize)>, String)> = Vec::new();
        let mut index_of: Vec<String> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let slot = match index_of.iter().position(|p| *p == route.path) {
                Some(slot) => slot,
                None => {
                    matcher.insert(route.path.clone(), paths.len()).expect("route paths do not overlap");
                    index_of.push(route.path.clone());
                    paths.push((Vec::new(), String::new()));
                    paths.len() - 1
                }
            };
            for m in &route.methods {
                assert!(!paths[slot].0.iter().any(|(have, _)| have == m), "{m} {} routed twice", route.path);
                paths[slot].0.push((m.clone(), i));
            }
        }
        for (methods, allow) in &mut paths {
            *allow = methods.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ");
        }
        Routes { routes, matcher, paths }
    }

    /// The route for `method` and `path`, with the path's parameters.
    pub fn find(&'static self, method: &Method, path: &str) -> Result<(&'static Route, PathParams), Miss> {
        let found = self.matcher.at(path).map_err(|_| Miss::NotFound)?;
        let (methods, allow) = &self.paths[*found.value];
        let Some((_, i)) = methods.iter().find(|(m, _)| m == method) else {
            return Err(Miss::MethodNotAllowed(allow.as_str()));
        };
        let params = found.params.iter().map(|(k, v)| (k, v.to_owned())).collect();
        Ok((&self.routes[*i], params))
    }
}

/// Builds the call for a found route.
pub fn call<'a>(app: &'a App, req: Request<Incoming>, peer: IpAddr, params: PathParams) -> Call<'a> {
    Call { app, req, peer, params }
}
