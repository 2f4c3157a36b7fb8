//! The OpenAPI 3.1 document of `GET /api/openapi.json`, generated from the route table: each
//! route's `#[utoipa::path]` operation and the schemas of its types. Operator routes are tagged,
//! marked with the bearer scheme and given their 401 here, so none can forget it.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref};
use utoipa::openapi::{PathsBuilder, ServerBuilder};
use utoipa::PartialSchema;

use super::response::ErrorBody;
use super::routes::{Access, ROUTES};

const DESCRIPTION: &str = "Privacy-first session recording and analytics collector. Public endpoints \
need no auth; operator endpoints under /api/ need `Authorization: Bearer TOKEN` (else 401). Days are \
UTC; times are ms since the epoch. Every 4xx/5xx body is `{\"error\": \"what was wrong\"}`.";

pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new().build();
    let mut schemas = Vec::new();
    for route in &ROUTES.routes {
        let mut operation = (route.operation)();
        match route.access {
            Access::Public => operation.tags = Some(vec!["public".into()]),
            Access::Operator => operator(&mut operation),
        }
        paths.add_path_operation(route.doc_path(), route.http_methods().to_vec(), operation);
        (route.schemas)(&mut schemas);
    }
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .schema("Error", ErrorBody::schema())
        .security_scheme("bearerAuth", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()))
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("hushtale")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .license(Some(LicenseBuilder::new().name("AGPL-3.0-only").build())),
        )
        .servers(Some(vec![ServerBuilder::new().url("/").build()]))
        .tags(Some(vec![
            TagBuilder::new().name("public").description(Some("No authentication.")).build(),
            TagBuilder::new().name("operator").description(Some("Bearer token; never CORS.")).build(),
        ]))
        .paths(paths)
        .components(Some(components))
        .build()
}

/// Tags an operator operation, requires the bearer token and documents the 401.
fn operator(operation: &mut Operation) {
    operation.tags = Some(vec!["operator".into()]);
    operation.security = Some(vec![SecurityRequirement::new("bearerAuth", Vec::<String>::new())]);
    let unauthorized = ResponseBuilder::new()
        .description("Missing or wrong operator token.")
        .header("WWW-Authenticate", utoipa::openapi::header::Header::default())
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
        .build();
    operation.responses.responses.insert("401".into(), unauthorized.into());
    let throttled = ResponseBuilder::new()
        .description("Too many wrong tokens from this address; retry after `Retry-After` seconds.")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
        .build();
    operation.responses.responses.insert("429".into(), throttled.into());
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_in_the_document() {
        let doc = serde_json::to_value(super::document()).unwrap();
        for route in &super::ROUTES.routes {
            for m in &route.methods {
                let op = &doc["paths"][route.doc_path()][m.as_str().to_lowercase()];
                assert!(op.is_object(), "{m} {} undocumented", route.path);
            }
        }
        assert!(doc["components"]["schemas"]["Stats"].is_object());
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = &r[..r.find('"').unwrap()];
            assert!(doc.pointer(target.trim_start_matches('#')).is_some(), "dangling $ref {target}");
        }
    }
}
