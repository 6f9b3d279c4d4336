//! Five steps as one composition: `five` runs `step` five times, inside one invocation.
//! The benchmark (`cargo bench -p faas --bench local -- compose`) compares invoking `five` with
//! invoking `step` five times from the client, as a caller conducting the steps itself does.
//!
//! `cargo run -p example-pipeline`, then `curl -s localhost:8080/functions/five -d '{"n":0}'` (`{"n":5}`).

use faas::composition::{call, seq};
use faas::{App, AppExt, Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct Count {
    n: u64,
}

async fn step(_cx: Context, c: Count) -> Result<Count, Error> {
    Ok(Count { n: c.n + 1 })
}

fn app() -> App {
    App::new().function("step", step).composition("five", seq((0..5).map(|_| call("step"))))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    faas::serve(app()).await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn five_steps_add_five() {
        assert_eq!(
            super::app().call_json("five", &serde_json::json!({"n": 2})).await.unwrap(),
            serde_json::json!({"n": 7})
        );
    }
}
