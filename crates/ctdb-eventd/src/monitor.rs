//! The life of the daemon: `init` and `setup` once, then `monitor` every interval once
//! `startup` has run, each monitor result reported to transport as the node's health.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use ctdb_protocol::event::EventCall;
use ctdb_rpc::transport_client::TransportClient;
use ctdb_rpc::Health;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Eventd;

/// Where monitor results go.
pub trait HealthSink: Send + Sync + 'static {
    /// Reports the node's health; an error is logged and the report is retried with
    /// the next monitor run.
    fn set_health(
        &self,
        healthy: bool,
        reason: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

/// Reports health to the node's transport (`Transport.SetHealth`) over its Unix socket.
#[derive(Debug, Clone)]
pub struct TransportHealth {
    client: TransportClient<tonic::transport::Channel>,
}

impl TransportHealth {
    /// A client of the transport socket `path`; it connects lazily, on every use if
    /// need be, so a transport that is down or restarted is simply reached later.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            client: TransportClient::new(ctdb_rpc::uds::channel(path)),
        }
    }
}

impl HealthSink for TransportHealth {
    fn set_health(
        &self,
        healthy: bool,
        reason: String,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .set_health(Health {
                    healthy,
                    reason,
                    source: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(|s| s.to_string())
        })
    }
}

/// Runs the daemon's own events until `shutdown` fires:
/// 1. `init`, then `setup` (a failure is logged; the daemon keeps going, where Samba's
///    ctdbd would exit: the supervisor restarting us would not fix a broken script);
/// 2. every `monitor_interval`, while monitoring is enabled, a `monitor` run once a
///    `startup` event has succeeded or `startup_grace` has passed since we started,
///    each completed run reported to `health` (healthy when its status is 0).
pub async fn run(eventd: Eventd, health: impl HealthSink, shutdown: CancellationToken) {
    let began = Instant::now();
    for event in [EventCall::Init, EventCall::Setup] {
        if shutdown.is_cancelled() {
            return;
        }
        let result = eventd.run_event(event, &[], None).await;
        if result.status != 0 && !result.cancelled() {
            tracing::error!("{}", result.summary());
        }
    }

    let config = eventd.config().clone();
    let mut announced = false;
    loop {
        // Wake at the interval, or at once when startup completes.
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(config.monitor_interval) => {}
            () = eventd.startup_notified(), if !eventd.startup_done() => {}
        }
        if !eventd.monitoring_enabled() {
            continue;
        }
        if !eventd.startup_done() {
            if began.elapsed() < config.startup_grace {
                continue;
            }
            if !announced {
                tracing::warn!(
                    grace = ?config.startup_grace,
                    "no startup event yet: monitoring anyway"
                );
            }
        }
        if !announced {
            tracing::info!(interval = ?config.monitor_interval, "monitoring started");
            announced = true;
        }
        let run = tokio::select! {
            () = shutdown.cancelled() => return,
            r = eventd.runner().run_monitor() => r,
        };
        let Some(result) = run else {
            continue;
        };
        let healthy = result.status == 0;
        let reason = if healthy {
            String::new()
        } else {
            result.summary()
        };
        if let Err(e) = health.set_health(healthy, reason).await {
            tracing::warn!(error = %e, healthy, "cannot report health to transport; retrying after the next monitor run");
        }
    }
}
