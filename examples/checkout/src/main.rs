//! A composition: `checkout` is a function built from the app's other functions. It validates
//! the order, sends large ones to review, charges the card (retried on a throttle, a decline
//! caught and answered), then writes the receipt and the notification side by side. The payment
//! token is read at the head and handed to `charge` alone: `validate`, `review`, `receipt` and
//! `notify` never see it. Every step is a function of this app, so a run is one invocation
//! (`faas plan checkout` shows it), on any backend.
//!
//! `cargo run -p example-checkout`, then
//! `curl -s localhost:8080/functions/checkout -d '{"order":{"items":[{"sku":"tea","qty":2,"cents":450}],"card":"4242"},"token":"tok_1"}'`.

use faas::composition::*;
use faas::{App, AppExt, Context, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Deserialize, Serialize)]
struct Item {
    sku: String,
    qty: u32,
    cents: u64,
}

#[derive(Deserialize)]
struct Order {
    items: Vec<Item>,
    card: String,
}

/// Checks the order and prices it. Sees no token: `{"items", "card"}` only.
async fn validate(_cx: Context, order: Value) -> Result<Value, Error> {
    if order.get("token").is_some() {
        return Err(Error::function("Leak", "validate was given the payment token"));
    }
    let parsed: Order = serde_json::from_value(order).map_err(|e| Error::bad_input(format!("order: {e}")))?;
    if parsed.items.is_empty() {
        return Err(Error::bad_input("an order needs at least one item"));
    }
    let amount: u64 = parsed.items.iter().map(|i| i.cents * u64::from(i.qty)).sum();
    Ok(json!({"items": parsed.items, "card": parsed.card, "amount": amount}))
}

/// Large orders get a second look.
async fn review(cx: Context, mut order: Value) -> Result<Value, Error> {
    cx.logger().info(format!("reviewing an order of {} cents", order["amount"]));
    order["reviewed"] = json!(true);
    Ok(order)
}

/// Charges the card with the token: the only step given it.
async fn charge(cx: Context, input: Value) -> Result<Value, Error> {
    let token = input["token"].as_str().ok_or_else(|| Error::bad_input("charge needs the token"))?;
    let order = &input["order"];
    if order["card"] == "0000" {
        return Err(Error::function("CardDeclined", "the card was declined"));
    }
    cx.logger().info(format!("charged {} cents with a token of {} characters", order["amount"], token.len()));
    Ok(json!({"status": "paid", "amount": order["amount"], "items": order["items"]}))
}

async fn receipt(_cx: Context, payment: Value) -> Result<Value, Error> {
    Ok(json!({"receipt": format!("{} for {} cents", payment["status"].as_str().unwrap_or("?"), payment["amount"])}))
}

async fn notify(_cx: Context, payment: Value) -> Result<Value, Error> {
    Ok(json!({"notified": payment["status"] == "paid"}))
}

/// The composition, in the builder DSL (`faas plan checkout --json` prints its JSON form).
fn checkout() -> Node {
    let_(
        [("token", pointer("/token"))],
        seq([
            call("validate").input(pointer("/order")),
            when(at("/amount").gt(10_000), call("review")),
            call("charge")
                .input(object([("order", pointer("")), ("token", var("token"))]))
                .retry_with(Retry {
                    body: Box::new(seq([])),
                    attempts: 3,
                    base_ms: 50,
                    rate: 2.0,
                    cap_ms: Some(1_000),
                    jitter: true,
                    kinds: vec![ErrorKind::Throttled],
                })
                .catch(
                    [ErrorKind::Function],
                    value(object([("status", constant("declined")), ("amount", constant(0))])),
                ),
            parallel([call("receipt"), call("notify")]),
        ]),
    )
}

fn app() -> App {
    App::new()
        .function("validate", validate)
        .function("review", review)
        .function("charge", charge)
        .function("receipt", receipt)
        .function("notify", notify)
        .composition("checkout", checkout())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    faas::serve(app()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paid_order_and_a_declined_one() {
        let app = app();
        let order =
            json!({"order": {"items": [{"sku": "tea", "qty": 2, "cents": 450}], "card": "4242"}, "token": "tok_1"});
        let out = app.call_json("checkout", &order).await.unwrap();
        assert_eq!(out, json!([{"receipt": "paid for 900 cents"}, {"notified": true}]));
        let declined =
            json!({"order": {"items": [{"sku": "tea", "qty": 1, "cents": 1}], "card": "0000"}, "token": "t"});
        let out = app.call_json("checkout", &declined).await.unwrap();
        assert_eq!(out, json!([{"receipt": "declined for 0 cents"}, {"notified": false}]));
        let empty = json!({"order": {"items": [], "card": "4242"}, "token": "t"});
        let err = app.call_json("checkout", &empty).await.unwrap_err();
        assert_eq!((err.kind(), err.message()), (ErrorKind::BadInput, "an order needs at least one item"));
    }
}
