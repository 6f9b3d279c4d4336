//! What the integration tests share: the fixture app binary.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Builds the fixture app once (an example target of this crate) and returns its path.
pub fn fixture() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        faas_packaging::build::build_example(dir, "faas-runner-openwhisk", "faas-openwhisk-fixture")
            .expect("the fixture builds")
    })
    .clone()
}
