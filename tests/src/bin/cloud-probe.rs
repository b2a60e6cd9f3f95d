//! `cloud-probe CONFIG`: a real cloudcore (the library, started as the
//! binary starts it) that prints where it listens — one JSON line on stdout
//! with `websocket`, `https`, `monitor`, `kubeApi`, `kubeconfig` and a join
//! `token` — so fault tests can run it as a process on port 0, SIGKILL it
//! and start it again on the same data directory.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    daemonkit::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: cloud-probe CONFIG");
        return ExitCode::from(64);
    };
    let config: cloudcore::CloudCoreConfig =
        match daemonkit::config::load(std::path::Path::new(path)) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("cloud-probe: {err}");
                return ExitCode::from(64);
            }
        };
    let shutdown = CancellationToken::new();
    daemonkit::signal::cancel_on_signal(shutdown.clone());
    let started = match cloudcore::start(config, shutdown, |_| {}).await {
        Ok(started) => started,
        Err(err) => {
            eprintln!("cloud-probe: {}", daemonkit::launch::error_chain(&err));
            return ExitCode::from(1);
        }
    };
    let text = |addr: Option<std::net::SocketAddr>| addr.map(|a| a.to_string());
    let addrs = serde_json::json!({
        "websocket": text(started.addrs.websocket),
        "https": text(started.addrs.https),
        "monitor": started.addrs.monitor.to_string(),
        "kubeApi": text(started.addrs.kube_api),
        "kubeconfig": started.kubeconfig().map(|p| p.display().to_string()),
        "token": started.pki().token(),
    });
    println!("{addrs}");
    match started.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloud-probe: {}", daemonkit::launch::error_chain(&err));
            ExitCode::from(1)
        }
    }
}
