//! SHA-256 digests of packages, in the two forms platforms report them.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Base64 of the SHA-256 of `bytes`: the form of Lambda's `CodeSha256`.
///
/// ```
/// assert_eq!(faas_packaging::code_sha256(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
/// ```
pub fn code_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// Lowercase hex of the SHA-256 of `bytes` (what `sha256sum` prints).
///
/// ```
/// assert_eq!(
///     faas_packaging::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// What `faas build` reports for a runner's `package`: its archive, size and [`code_sha256`],
/// and the platform `runtime` it targets.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let zip = dir.path().join("app.zip");
/// std::fs::write(&zip, b"").unwrap();
/// let package = faas_api::Package { app: "app".into(), artifact: zip, size: 0, functions: vec![] };
/// let artifact = faas_packaging::package_artifact(&package, Some("python312".into())).unwrap();
/// assert_eq!(artifact.digest.as_deref(), Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
/// assert_eq!(artifact.runtime.as_deref(), Some("python312"));
/// ```
pub fn package_artifact(
    package: &faas_api::Package,
    runtime: Option<String>,
) -> Result<faas_api::backend::Artifact, faas_api::Error> {
    let zip = std::fs::read(&package.artifact)
        .map_err(|e| faas_api::Error::unavailable(format!("cannot read {}: {e}", package.artifact.display())))?;
    Ok(faas_api::backend::Artifact {
        path: package.artifact.clone(),
        size: package.size,
        digest: Some(code_sha256(&zip)),
        runtime,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_forms_are_of_the_same_digest() {
        let hex = super::sha256_hex(b"faas");
        let raw: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
        use base64::Engine;
        assert_eq!(super::code_sha256(b"faas"), base64::engine::general_purpose::STANDARD.encode(raw));
        assert_ne!(super::sha256_hex(b"faas"), super::sha256_hex(b"faaS"));
    }
}
