//! Functions calling functions by logical name: `greet` asks `shout` to upper-case its greeting.
//! The call goes through whatever backend hosts them; the trace id is carried along.
//!
//! `cargo run -p example-chain`, then `curl -s localhost:8080/functions/greet -d '{"name":"Ada"}'`.

use faas::{App, Context, Error, Payload};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct Text {
    text: String,
}

#[derive(Deserialize)]
struct Hello {
    name: String,
}

async fn shout(_cx: Context, t: Text) -> Result<Text, Error> {
    Ok(Text { text: t.text.to_uppercase() })
}

async fn greet(cx: Context, h: Hello) -> Result<Text, Error> {
    let reply = cx.invoke("shout", Payload::json(&Text { text: format!("hello, {}!", h.name) })?).await?;
    reply.json_as()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    faas::serve(App::new().function("greet", greet).function("shout", shout)).await
}
