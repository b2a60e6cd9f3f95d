//! The admin kubeconfig of the embedded API, `<dataDir>/kubeconfig`: one
//! cluster (`apiary`: the server's `https://` URL and its CA inline), one
//! user (`admin`: the bearer token) and the context joining them. kubectl
//! (`KUBECONFIG=<dataDir>/kubeconfig kubectl get ns`) and cloudcore's own
//! client read it; it is written `0600` since it holds the token.

use std::path::Path;

use base64::Engine as _;
use serde::Serialize;

use super::credentials::write_private;
use super::Result;

/// Names used in the kubeconfig.
const CLUSTER: &str = "apiary";
const USER: &str = "admin";
const CONTEXT: &str = "apiary";

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    clusters: [Named<Cluster<'a>>; 1],
    users: [Named<User<'a>>; 1],
    contexts: [Named<Context>; 1],
    current_context: &'static str,
}

#[derive(Serialize)]
struct Named<T> {
    name: &'static str,
    #[serde(flatten)]
    item: T,
}

#[derive(Serialize)]
struct Cluster<'a> {
    cluster: ClusterInfo<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterInfo<'a> {
    server: &'a str,
    certificate_authority_data: String,
}

#[derive(Serialize)]
struct User<'a> {
    user: UserInfo<'a>,
}

#[derive(Serialize)]
struct UserInfo<'a> {
    token: &'a str,
}

#[derive(Serialize)]
struct Context {
    context: ContextInfo,
}

#[derive(Serialize)]
struct ContextInfo {
    cluster: &'static str,
    user: &'static str,
    namespace: &'static str,
}

/// The kubeconfig text for `server` (an `https://` URL), trusting `ca_pem`
/// and presenting `token`.
pub(crate) fn render(server: &str, ca_pem: &str, token: &str) -> Result<String> {
    let config = Kubeconfig {
        api_version: "v1",
        kind: "Config",
        clusters: [Named {
            name: CLUSTER,
            item: Cluster {
                cluster: ClusterInfo {
                    server,
                    certificate_authority_data: base64::engine::general_purpose::STANDARD
                        .encode(ca_pem),
                },
            },
        }],
        users: [Named {
            name: USER,
            item: User {
                user: UserInfo { token },
            },
        }],
        contexts: [Named {
            name: CONTEXT,
            item: Context {
                context: ContextInfo {
                    cluster: CLUSTER,
                    user: USER,
                    namespace: "default",
                },
            },
        }],
        current_context: CONTEXT,
    };
    Ok(serde_norway::to_string(&config)?)
}

/// Writes the kubeconfig to `path` (`0600`).
pub(crate) fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> Result<()> {
    write_private(path, render(server, ca_pem, token)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_reads_what_is_written() {
        let text = render(
            "https://127.0.0.1:6443",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            "tok",
        )
        .unwrap();
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("apiary"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert!(cluster.certificate_authority_data.is_some());
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert!(user.token.is_some());
        assert!(text.starts_with("apiVersion: v1\nkind: Config\n"), "{text}");
        assert!(text.contains("current-context: apiary"), "{text}");
    }
}
