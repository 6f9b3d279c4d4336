//! Compositions of five steps, each run inside one invocation.
//!
//! - `five` runs `step` (a no-op adding 1) five times: the benchmarks compare it with the
//!   caller invoking `step` five times (`cargo bench -p faas --bench local -- compose`) and with
//!   the event gateway conducting the same steps (`cargo bench -p faas-gateway --bench conductor`).
//! - `report` is a pipeline doing real work on a CSV of order lines, one function per stage:
//!   `parse` (text → records), `validate` (drops the malformed ones, counting them), `enrich`
//!   (price per line, category from the SKU), `aggregate` (totals per category) and `render`
//!   (a text report). `cargo bench -p faas --bench local -- pipeline` runs it fused and unfused
//!   (`FAAS_FUSE=off`: each stage its own invocation) and compares latency, billed time and cold
//!   starts.
//!
//! `cargo run -p example-pipeline`, then `curl -s localhost:8080/functions/five -d '{"n":0}'`
//! (`{"n":5}`), or `curl -s localhost:8080/functions/report -d '{"csv":"tea-1,2,450\nmug-2,1,1200"}'`.

use std::collections::BTreeMap;

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

/// The input of `report`: order lines, `sku,qty,cents` one per line.
#[derive(Deserialize, Serialize)]
struct Csv {
    csv: String,
}

/// One order line as read, before it is checked.
#[derive(Deserialize, Serialize, Clone)]
struct Line {
    line: usize,
    fields: Vec<String>,
}

/// What a stage hands the next: the lines (or rows) and how many were dropped so far.
#[derive(Deserialize, Serialize)]
struct Batch<T> {
    items: Vec<T>,
    dropped: usize,
}

#[derive(Deserialize, Serialize)]
struct Order {
    sku: String,
    qty: u64,
    cents: u64,
}

#[derive(Deserialize, Serialize)]
struct Priced {
    sku: String,
    category: String,
    qty: u64,
    total_cents: u64,
}

#[derive(Deserialize, Serialize, Default, PartialEq, Debug)]
struct Totals {
    lines: u64,
    qty: u64,
    cents: u64,
}

#[derive(Deserialize, Serialize)]
struct Summary {
    categories: BTreeMap<String, Totals>,
    dropped: usize,
}

#[derive(Deserialize, Serialize)]
struct Report {
    text: String,
    lines: u64,
    cents: u64,
    dropped: usize,
}

/// At most this many lines in one report.
const MAX_LINES: usize = 200_000;

async fn parse(_cx: Context, input: Csv) -> Result<Batch<Line>, Error> {
    let mut items = Vec::new();
    for (n, text) in input.csv.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if items.len() == MAX_LINES {
            return Err(Error::bad_input(format!("a report takes at most {MAX_LINES} lines")));
        }
        items.push(Line { line: n + 1, fields: text.split(',').map(|f| f.trim().to_string()).collect() });
    }
    Ok(Batch { items, dropped: 0 })
}

async fn validate(cx: Context, batch: Batch<Line>) -> Result<Batch<Order>, Error> {
    let mut dropped = batch.dropped;
    let mut items = Vec::with_capacity(batch.items.len());
    for l in batch.items {
        let order = match l.fields.as_slice() {
            [sku, qty, cents] if !sku.is_empty() => match (qty.parse(), cents.parse()) {
                (Ok(qty), Ok(cents)) if qty > 0 => Some(Order { sku: sku.clone(), qty, cents }),
                _ => None,
            },
            _ => None,
        };
        match order {
            Some(o) => items.push(o),
            None => {
                dropped += 1;
                if dropped <= 3 {
                    cx.logger().warn(format!("line {} is not `sku,qty,cents`: dropped", l.line));
                }
            }
        }
    }
    Ok(Batch { items, dropped })
}

async fn enrich(_cx: Context, batch: Batch<Order>) -> Result<Batch<Priced>, Error> {
    let items = batch
        .items
        .into_iter()
        .map(|o| Priced {
            category: o.sku.split('-').next().unwrap_or_default().to_string(),
            total_cents: o.qty.saturating_mul(o.cents),
            qty: o.qty,
            sku: o.sku,
        })
        .collect();
    Ok(Batch { items, dropped: batch.dropped })
}

async fn aggregate(_cx: Context, batch: Batch<Priced>) -> Result<Summary, Error> {
    let mut categories: BTreeMap<String, Totals> = BTreeMap::new();
    for p in batch.items {
        let t = categories.entry(p.category).or_default();
        t.lines += 1;
        t.qty += p.qty;
        t.cents = t.cents.saturating_add(p.total_cents);
    }
    Ok(Summary { categories, dropped: batch.dropped })
}

async fn render(_cx: Context, summary: Summary) -> Result<Report, Error> {
    let mut text = String::from("category      lines        qty          total\n");
    let (mut lines, mut cents) = (0, 0u64);
    for (category, t) in &summary.categories {
        text.push_str(&format!(
            "{category:<12} {:>6} {:>10} {:>11}.{:02}\n",
            t.lines,
            t.qty,
            t.cents / 100,
            t.cents % 100
        ));
        lines += t.lines;
        cents = cents.saturating_add(t.cents);
    }
    text.push_str(&format!("{} line(s) dropped\n", summary.dropped));
    Ok(Report { text, lines, cents, dropped: summary.dropped })
}

fn app() -> App {
    App::new()
        .function("step", step)
        .composition("five", seq((0..5).map(|_| call("step"))))
        .function("parse", parse)
        .function("validate", validate)
        .function("enrich", enrich)
        .function("aggregate", aggregate)
        .function("render", render)
        .composition(
            "report",
            seq([call("parse"), call("validate"), call("enrich"), call("aggregate"), call("render")]),
        )
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    faas::serve(app()).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[tokio::test]
    async fn five_steps_add_five() {
        assert_eq!(super::app().call_json("five", &json!({"n": 2})).await.unwrap(), json!({"n": 7}));
    }

    #[tokio::test]
    async fn a_report_totals_each_category_and_counts_what_it_dropped() {
        let csv = "tea-1,2,450\nmug-2,1,1200\ntea-9,1,100\n\nnot a line\nmug-3,0,5\n";
        let report = super::app().call_json("report", &json!({ "csv": csv })).await.unwrap();
        assert_eq!((&report["lines"], &report["cents"], &report["dropped"]), (&json!(3), &json!(2200), &json!(2)));
        let text = report["text"].as_str().unwrap();
        assert!(text.contains("mug               1          1          12.00\n"), "{text}");
        assert!(text.contains("tea               2          3          10.00\n"), "{text}");
        assert!(text.ends_with("2 line(s) dropped\n"), "{text}");
    }
}
