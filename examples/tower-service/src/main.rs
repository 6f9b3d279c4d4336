//! A `tower::Service` as a function, with a tower layer around it: any service taking an
//! `Invocation` and returning a `Payload` can be deployed, so existing middleware composes.
//!
//! `cargo run -p example-tower-service`, then `curl -s localhost:8080/functions/len -d 'hello'`.

use faas::handler::Invocation;
use faas::{App, Error, Payload};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let len = ServiceBuilder::new()
        .map_request(|inv: Invocation| {
            inv.cx.logger().info(format!("request of {} bytes", inv.payload.len()));
            inv
        })
        .service_fn(|inv: Invocation| async move { Payload::json(&serde_json::json!({ "bytes": inv.payload.len() })) });
    faas::serve(App::new().service("len", len)).await
}
