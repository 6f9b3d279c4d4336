//! AWS credentials for the Lambda runner.
//!
//! - Against the local emulator (a loopback `endpoint`), nothing checks a signature, so no credential
//!   chain is walked: requests are signed with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` when both are
//!   set (LocalStack reads the account from the key), else with fixed placeholders
//!   ([`emulator_credentials`]). Nothing is printed about credentials.
//! - Against AWS (no `endpoint`, or one off this machine), the standard chain (environment, profile,
//!   SSO, `credential_process`, web identity, container and instance roles) runs when the first call
//!   needs it, as usual, but quietly ([`QuietChain`]): the chain's own warnings (e.g. IMDS's
//!   `failed to load IMDS session token` on a laptop) are not printed, and when no credential can be
//!   had the call fails with one line, [`MissingCredentials`], saying how to provide one. The chain's
//!   full account is logged at debug level (`FAAS_LOG=debug`).

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_lambda::config::Credentials;
use tracing::instrument::WithSubscriber;

/// The `errorType` of the error for missing or unloadable AWS credentials.
pub const MISSING_CREDENTIALS: &str = "MissingCredentials";

/// How a user provides AWS credentials, for the one-line error.
pub const HOW_TO_PROVIDE: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use a profile made by \
     `aws configure` or `aws sso login` (`aws_profile = \"NAME\"` in the backend profile, or AWS_PROFILE)";

/// No AWS credential could be had: the chain found none, or a provider in it failed.
///
/// ```
/// use faas_runner_lambda::credentials::MissingCredentials;
/// let e = MissingCredentials::new("AWS Lambda in eu-west-1", None);
/// assert!(e.to_string().starts_with("no AWS credentials found for AWS Lambda in eu-west-1; set AWS_ACCESS_KEY_ID"));
/// let e = MissingCredentials::new("AWS Lambda in eu-west-1", Some("the SSO session has expired"));
/// assert!(e.to_string().contains("(the SSO session has expired)"), "{e}");
/// assert!(!e.to_string().contains('\n'));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct MissingCredentials {
    message: String,
}

impl MissingCredentials {
    /// The error for `target` (e.g. `AWS Lambda in eu-west-1`); `cause` is a failing provider's
    /// reason (none when the chain simply found nothing), cut to one short line.
    pub fn new(target: &str, cause: Option<&str>) -> MissingCredentials {
        let message = match cause {
            None => format!("no AWS credentials found for {target}; {HOW_TO_PROVIDE}"),
            Some(c) => format!(
                "the AWS credentials for {target} could not be loaded ({}); {HOW_TO_PROVIDE}",
                crate::aws_errors::one_line(c, 200)
            ),
        };
        MissingCredentials { message }
    }

    /// The portable error (`unauthorized`, `errorType` [`MISSING_CREDENTIALS`]).
    pub fn to_error(&self) -> faas_api::Error {
        faas_api::Error::unauthorized(self.message.clone()).with_type(MISSING_CREDENTIALS)
    }
}

/// The credentials used with the local emulator: the environment's access key pair when both
/// variables are set, else placeholders. Never walks the credential chain.
pub fn emulator_credentials() -> SharedCredentialsProvider {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "environment"),
        _ => Credentials::new("faas-local", "faas-local", None, None, "faas-emulator"),
    };
    SharedCredentialsProvider::new(credentials)
}

/// A credential provider (the standard chain) run without its log output, failing with
/// [`MissingCredentials`].
#[derive(Debug)]
pub struct QuietChain {
    inner: SharedCredentialsProvider,
    target: String,
}

impl QuietChain {
    /// Wraps `inner`; `target` names what the credentials are for, in the error.
    pub fn new(inner: SharedCredentialsProvider, target: impl Into<String>) -> QuietChain {
        QuietChain { inner, target: target.into() }
    }
}

impl ProvideCredentials for QuietChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let result =
                self.inner.provide_credentials().with_subscriber(tracing::subscriber::NoSubscriber::default()).await;
            result.map_err(|e| {
                let chain = crate::aws_errors::source_chain(&e);
                tracing::debug!(target: "faas_runner_lambda::credentials", error = %chain, "no AWS credentials");
                match e {
                    CredentialsError::CredentialsNotLoaded(_) => {
                        CredentialsError::not_loaded(MissingCredentials::new(&self.target, None))
                    }
                    _ => CredentialsError::provider_error(MissingCredentials::new(&self.target, Some(&chain))),
                }
            })
        })
    }
}
