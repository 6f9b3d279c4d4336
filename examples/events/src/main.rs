//! CloudEvents: `order` emits an `com.example.order.created` event; `audit` is subscribed to every
//! `com.example.order.*` event and receives it asynchronously.
//!
//! `cargo run -p example-events`, then `curl -s localhost:8080/functions/order -d '{"item":"tea"}'`
//! and `cargo faas logs audit`; or post an event yourself:
//! `curl -s localhost:8080/events -H 'ce-specversion: 1.0' -H 'ce-id: 1' -H 'ce-source: /shop'
//!  -H 'ce-type: com.example.order.created' -H 'content-type: application/json' -d '{"item":"tea"}'`.

use faas::cloudevents::{AttributesReader, Event, EventBuilder, EventBuilderV10};
use faas::{App, Context, Error, EventFilter};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct Order {
    item: String,
}

async fn order(cx: Context, order: Order) -> Result<serde_json::Value, Error> {
    let event = EventBuilderV10::new()
        .id(cx.invocation_id())
        .source("/example/shop")
        .ty("com.example.order.created")
        .data("application/json", serde_json::to_value(&order)?)
        .build()
        .map_err(|e| Error::bad_input(e.to_string()))?;
    cx.emit(event).await?;
    Ok(serde_json::json!({"accepted": order.item}))
}

async fn audit(cx: Context, event: Event) -> Result<Option<Event>, Error> {
    cx.logger().info(format!("audit: {} from {} (id {})", event.ty(), event.source(), event.id()));
    Ok(None)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = App::new()
        .function("order", order)
        .event("audit", audit)
        .subscribe("audit", EventFilter::new().event_type("com.example.order.*"));
    faas::serve(app).await
}
