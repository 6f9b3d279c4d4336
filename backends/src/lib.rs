//! # faas-backends
//!
//! Every backend of this build, one line each: the `faas` command, the `faas-gateway` server and
//! the conformance suite take their backends from [`all`]. Adding a backend is adding its line
//! here (and removing its `planned` line); see `docs/adding-a-backend.md`.
//!
//! ```
//! let backends = faas_backends::all();
//! assert_eq!(backends.kinds(), ["azure", "gcf", "lambda", "local", "openwhisk"]);
//! assert_eq!(backends.emulator_names(), ["lambda", "openwhisk", "gcf", "azure"]);
//! ```
#![warn(missing_docs)]

use faas_api::backend::Backends;

/// The backends of this build, and the kinds planned but not built yet.
pub fn all() -> Backends {
    Backends::new()
        .with(faas_front::backend::LocalBackend)
        .with_emulator(faas_runner_lambda::LambdaBackend, faas_emulator_lambda::emulate::LocalLambda)
        .with_emulator(
            faas_runner_openwhisk::backend::OpenWhiskBackend,
            faas_emulator_openwhisk::emulate::LocalOpenWhisk,
        )
        .with_emulator(faas_runner_gcf::backend::GcfBackend, faas_emulator_gcf::emulate::LocalCloudFunctions)
        .with_emulator(faas_runner_azure::backend::AzureBackend, faas_emulator_azure::emulate::LocalFunctionsHost)
}
