//! `pipes-probe`: the conformance suite's fixture app, served with the pipes host adapter besides
//! the facade's own, so the suite can deploy it to the pipes backend (`FAAS_PROBE_BIN`).

#[tokio::main]
async fn main() -> Result<(), faas::Error> {
    faas::serve_with(faas_conformance::fixture_app(), &[&faas_pipes::PipesHost]).await
}
