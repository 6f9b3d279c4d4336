//! `faas-probe`: the conformance fixture app as a function binary, deployed by the suite to
//! every backend (process mode, emulators, real clouds).

#[tokio::main]
async fn main() -> Result<(), faas::Error> {
    faas::serve(faas_conformance::fixture_app()).await
}
