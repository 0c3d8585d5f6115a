//! Amazon MSK IAM authentication. MSK's IAM listener (port 9098) takes
//! SASL/OAUTHBEARER tokens that are not JWTs but AWS SigV4-presigned
//! `kafka-cluster:Connect` requests, signed with the caller's AWS
//! credentials — on EKS those of the pod's service account (IRSA web
//! identity or EKS Pod Identity), found through the AWS default chain.
//!
//! The token is the presigned URL, base64url without padding, as AWS's own
//! signers (Java, Go, Python, JavaScript) make it. Neither rdkafka nor
//! wasmtime is known here: the Kafka clients ask for a token through
//! [`crate::kafka::TokenSource`].

use anyhow::Context as _;
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::kafka::{OAuthToken, TokenSource};

/// How long a token is valid; MSK's signers use the same 15 minutes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);
/// How long fetching credentials (an STS call for IRSA) may take.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);
/// Credentials closer than this to their expiry are fetched anew.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

/// Signs MSK IAM tokens with credentials from the AWS default chain.
pub struct MskIam {
    region: String,
    credentials: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
    // Drives the credential providers' HTTP calls (STS, the Pod Identity
    // agent); the Kafka clients call in from their own threads.
    runtime: tokio::runtime::Runtime,
}

impl MskIam {
    /// `region` defaults to the chain's (`AWS_REGION`, which EKS sets for
    /// IRSA and Pod Identity, then the profile).
    pub fn new(region: Option<String>) -> anyhow::Result<MskIam> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aws-credentials")
            .enable_all()
            .build()
            .context("starting the AWS credentials runtime")?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        let config = runtime.block_on(loader.load());
        let region = config.region().map(|r| r.to_string()).context(
            "--aws-msk-iam needs the MSK cluster's region: set --aws-region or AWS_REGION",
        )?;
        let credentials = config.credentials_provider().context(
            "no AWS credential source: give the pod's service account an IAM role \
             (IRSA or EKS Pod Identity) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )?;
        Ok(MskIam {
            region,
            credentials,
            cached: Mutex::new(None),
            runtime,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    fn credentials(&self) -> anyhow::Result<Credentials> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref()
            && c.expiry()
                .is_none_or(|e| e > SystemTime::now() + CREDENTIALS_MARGIN)
        {
            return Ok(c.clone());
        }
        let fresh = self
            .runtime
            .block_on(async {
                tokio::time::timeout(CREDENTIALS_TIMEOUT, self.credentials.provide_credentials())
                    .await
            })
            .map_err(|_| {
                anyhow::anyhow!(
                    "no AWS credentials within {CREDENTIALS_TIMEOUT:?}: check that the pod reaches \
                     STS or the EKS Pod Identity agent"
                )
            })?
            .context(
                "loading AWS credentials for MSK IAM: check the service account's IAM role \
                 (IRSA annotation eks.amazonaws.com/role-arn, or a Pod Identity association)",
            )?;
        *cached = Some(fresh.clone());
        Ok(fresh)
    }
}

impl TokenSource for MskIam {
    fn token(&self) -> anyhow::Result<OAuthToken> {
        let credentials = self.credentials()?;
        token_at(&self.region, &credentials, SystemTime::now())
    }
}

/// The MSK IAM token for `region`, signed with `credentials` at `now`.
pub fn token_at(
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> anyhow::Result<OAuthToken> {
    let mut url = url::Url::parse(&format!("https://kafka.{region}.amazonaws.com/"))
        .with_context(|| format!("'{region}' is not an AWS region"))?;
    url.query_pairs_mut()
        .append_pair("Action", "kafka-cluster:Connect");

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kafka-cluster")
        .time(now)
        .settings(settings)
        .build()
        .context("building the SigV4 signing parameters")?;
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .context("preparing the MSK IAM request for signing")?;
    let (instructions, _) = sign(request, &params.into())
        .context("signing the MSK IAM request")?
        .into_parts();
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in instructions.params() {
            query.append_pair(name, value);
        }
        query.append_pair(
            "User-Agent",
            concat!("wasmpipe/", env!("CARGO_PKG_VERSION")),
        );
    }

    // Valid until the signature expires, or the credentials if sooner.
    let mut expires = now + TOKEN_LIFETIME;
    if let Some(e) = credentials.expiry() {
        expires = expires.min(e);
    }
    let expires_at_ms = expires
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_millis() as i64;
    Ok(OAuthToken {
        value: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str()),
        // MSK reads the principal from the signature; this name only
        // appears in librdkafka's own logs.
        principal: "wasmpipe".to_owned(),
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a token back into the presigned URL's query parameters.
    fn params(token: &OAuthToken) -> Vec<(String, String)> {
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token.value)
            .unwrap();
        let url = url::Url::parse(std::str::from_utf8(&url).unwrap()).unwrap();
        assert_eq!(url.host_str(), Some("kafka.us-east-1.amazonaws.com"));
        assert_eq!(url.path(), "/");
        url.query_pairs()
            .filter(|(k, _)| k != "User-Agent")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn at_2026_01_02_03_04_05() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_767_323_045)
    }

    fn expected(signature: &str, session: Option<&str>) -> Vec<(String, String)> {
        let mut p = vec![
            ("Action", "kafka-cluster:Connect"),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            (
                "X-Amz-Credential",
                "AKIDEXAMPLE/20260102/us-east-1/kafka-cluster/aws4_request",
            ),
            ("X-Amz-Date", "20260102T030405Z"),
            ("X-Amz-Expires", "900"),
            ("X-Amz-SignedHeaders", "host"),
        ];
        if let Some(s) = session {
            p.push(("X-Amz-Security-Token", s));
        }
        p.push(("X-Amz-Signature", signature));
        let mut p: Vec<(String, String)> =
            p.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        p.sort();
        p
    }

    // The signatures are those of AWS's own signer for the same inputs
    // (aws-msk-iam-sasl-signer-python 1.0.2 with botocore's clock fixed):
    // an independent implementation, so a wrong canonical request, scope
    // or key derivation here cannot match by accident.
    #[test]
    fn tokens_carry_the_signature_of_the_aws_signer() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        for (session, signature) in [
            (
                None,
                "24ebada2ed545858377591fc84af1a1bff3c40c5e8ab0c1fc85eee156cfb42da",
            ),
            (
                Some("session-token-example"),
                "5b2f61b26c0885ee1018f048908ddf214cb09a347af7b20c81a643a7af708877",
            ),
        ] {
            let credentials = Credentials::new(
                "AKIDEXAMPLE",
                secret,
                session.map(str::to_owned),
                None,
                "test",
            );
            let token = token_at("us-east-1", &credentials, at_2026_01_02_03_04_05()).unwrap();
            let mut got = params(&token);
            got.sort();
            assert_eq!(got, expected(signature, session));
            assert_eq!(token.expires_at_ms, 1_767_323_945_000);
            assert!(!token.value.contains('=') && !token.value.contains('+'));
        }
    }

    #[test]
    fn a_token_expires_with_its_credentials_when_they_expire_first() {
        let now = at_2026_01_02_03_04_05();
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            Some("t".into()),
            Some(now + Duration::from_secs(120)),
            "test",
        );
        let token = token_at("us-east-1", &credentials, now).unwrap();
        assert_eq!(token.expires_at_ms, 1_767_323_165_000);
    }
}
