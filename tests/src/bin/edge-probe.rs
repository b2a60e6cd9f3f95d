//! `edge-probe CONFIG COUNT`: a real edgecore (the library, wired as the
//! binary wires it) plus a `probe` module that sends COUNT numbered
//! messages up to the cloud at start. The fault tests run it as a process
//! so they can SIGKILL it mid-flight.

use std::process::ExitCode;

use beehive::{async_trait, Module, ModuleContext, ModuleError};
use proto::{Message, Operation};
use tokio_util::sync::CancellationToken;

struct Probe {
    count: u64,
}

#[async_trait]
impl Module for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn group(&self) -> &str {
        "probe"
    }

    async fn run(&mut self, ctx: &mut ModuleContext) -> Result<(), ModuleError> {
        for seq in 0..self.count {
            let msg = Message::new(
                "probe",
                "resource",
                Operation::Update,
                format!("default/event/probe-{seq}"),
            )
            .with_content(serde_json::json!({ "seq": seq }));
            ctx.bus().send("websocket", msg).await?;
        }
        eprintln!("probe: handed {} messages to edgehub", self.count);
        ctx.cancelled().await;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    daemonkit::logging::init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse().ok())) else {
        eprintln!("usage: edge-probe CONFIG COUNT");
        return ExitCode::from(64);
    };
    let config: edgecore::EdgeCoreConfig = match daemonkit::config::load(std::path::Path::new(path))
    {
        Ok(config) => config,
        Err(err) => {
            eprintln!("edge-probe: {err}");
            return ExitCode::from(64);
        }
    };
    let shutdown = CancellationToken::new();
    daemonkit::signal::cancel_on_signal(shutdown.clone());
    let started = match edgecore::start(config, shutdown, |b| {
        b.module(Probe { count });
    })
    .await
    {
        Ok(started) => started,
        Err(err) => {
            eprintln!("edge-probe: {}", daemonkit::launch::error_chain(&err));
            return ExitCode::from(1);
        }
    };
    match started.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edge-probe: {}", daemonkit::launch::error_chain(&err));
            ExitCode::from(1)
        }
    }
}
