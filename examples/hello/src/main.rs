//! The smallest faas app: one typed function, `hello`, that greets by name.
//!
//! `cargo run -p hello` serves it on http://127.0.0.1:8080; `cargo faas dev examples/hello` runs it
//! in process mode with hot reload.

use faas::{App, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Hello {
    name: String,
}

#[derive(Serialize)]
struct Reply {
    message: String,
}

async fn hello(cx: Context, req: Hello) -> Result<Reply, Error> {
    cx.logger().info(format!("greeting {}", req.name));
    Ok(Reply { message: format!("Hello, {}!", req.name) })
}

fn app() -> App {
    App::new().function("hello", hello).route("hello", "POST", "/hello")
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    faas::serve(app()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn greets_by_name() {
        let reply = app().call_json("hello", &serde_json::json!({"name": "Ada"})).await.unwrap();
        assert_eq!(reply, serde_json::json!({"message": "Hello, Ada!"}));
    }
}
