//! Raw bytes in, the same bytes out, content type preserved: a function that is not JSON.
//!
//! `cargo run -p example-echo-bytes`, then
//! `curl -s --data-binary @some.png -H 'content-type: image/png' localhost:8080/functions/echo -o copy.png`.

use faas::{App, Context, Error, Payload};

async fn echo(cx: Context, input: Payload) -> Result<Payload, Error> {
    cx.logger().info(format!("echoing {} bytes of {}", input.len(), input.content_type().unwrap_or("unknown type")));
    Ok(input)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    faas::serve(App::new().raw("echo", echo)).await
}
