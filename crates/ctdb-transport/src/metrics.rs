//! Prometheus metrics: the counters behind `ctdb statistics` (gathered from every
//! component as STATISTICS gathers them), the node's flags and generation, and whether
//! each component is connected, as text on `GET /metrics`. Off unless `[metrics]
//! address` (or CTDB_RS_METRICS_ADDRESS) names a local address and port. A minimal
//! HTTP/1.1 responder: one request per connection, a few at a time, each given a few
//! seconds.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ctdb_protocol::control::Statistics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::routing::Owner;
use crate::Node;

/// Scrapes served at once.
const AT_ONCE: usize = 8;

/// How long one scrape may take, request and answer.
const SCRAPE_TIME: Duration = Duration::from_secs(5);

/// Starts serving metrics on `addr`.
pub(crate) fn serve(node: &Arc<Node>, addr: SocketAddr) -> std::io::Result<()> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    info!(%addr, "serving metrics");
    let weak = Arc::downgrade(node);
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!("metrics accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(node) = weak.upgrade() else { return };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            tokio::spawn(async move {
                let _ = tokio::time::timeout(SCRAPE_TIME, answer(&node, stream)).await;
                drop(slot);
            });
        }
    });
    Ok(())
}

async fn answer(node: &Arc<Node>, mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET / ") {
        ("200 OK", render(node).await)
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The metrics text of `node` now.
pub(crate) async fn render(node: &Arc<Node>) -> String {
    let (stats, extras) = crate::controls::gather_with_extras(node).await;
    let (flags, generation, pnn) = {
        let state = node.state();
        let flags = state.flags.get(node.pnn as usize).copied().unwrap_or(0);
        (flags, state.generation, node.pnn)
    };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP ctdb_{name} {help}");
        let _ = writeln!(out, "# TYPE ctdb_{name} {kind}");
        let _ = writeln!(out, "ctdb_{name}{{pnn=\"{pnn}\"}} {value}");
    };
    counters(&stats, &mut metric);
    metric(
        "node_flags",
        "gauge",
        "This node's flags (Samba's NODE_FLAGS_*).",
        flags.to_string(),
    );
    metric(
        "generation",
        "gauge",
        "The generation of the vnn map this node has.",
        generation.to_string(),
    );
    for (name, help) in [
        (
            "leader_changes",
            "How often the leader this node knows changed (to another node or none).",
        ),
        ("elections_won", "How often this node became the leader."),
    ] {
        let value = extras.get(name).copied().unwrap_or(0);
        metric(&format!("{name}_total"), "counter", help, value.to_string());
    }
    let _ = writeln!(
        out,
        "# HELP ctdb_component_restarts_total How often a component came back after its \
         first start (transport's packet connection to it was made again)."
    );
    let _ = writeln!(out, "# TYPE ctdb_component_restarts_total counter");
    for owner in Owner::COMPONENTS {
        let restarts = node.link(owner).map_or(0, |l| l.reconnects());
        let _ = writeln!(
            out,
            "ctdb_component_restarts_total{{pnn=\"{pnn}\",component=\"{}\"}} {restarts}",
            owner.name(),
        );
    }
    let _ = writeln!(
        out,
        "# HELP ctdb_component_up Whether transport is connected to the component."
    );
    let _ = writeln!(out, "# TYPE ctdb_component_up gauge");
    for owner in Owner::COMPONENTS {
        let up = node.link(owner).is_some_and(|l| l.is_up());
        let _ = writeln!(
            out,
            "ctdb_component_up{{pnn=\"{pnn}\",component=\"{}\"}} {}",
            owner.name(),
            u8::from(up)
        );
    }
    out
}

/// The counters of `ctdb statistics`, each through `metric(name, kind, help, value)`.
fn counters(s: &Statistics, metric: &mut impl FnMut(&str, &str, &str, String)) {
    let mut counter = |name: &str, help: &str, value: u32| {
        metric(name, "counter", help, value.to_string());
    };
    counter(
        "client_packets_received_total",
        "Packets from local clients.",
        s.client_packets_recv,
    );
    counter(
        "client_packets_sent_total",
        "Packets to local clients.",
        s.client_packets_sent,
    );
    counter(
        "node_packets_received_total",
        "Packets from other nodes.",
        s.node_packets_recv,
    );
    counter(
        "node_packets_sent_total",
        "Packets to other nodes.",
        s.node_packets_sent,
    );
    counter(
        "client_calls_total",
        "REQ_CALLs from local clients.",
        s.client.req_call,
    );
    counter(
        "client_controls_total",
        "Controls from local clients.",
        s.client.req_control,
    );
    counter(
        "client_messages_total",
        "Messages from local clients.",
        s.client.req_message,
    );
    counter(
        "node_calls_total",
        "REQ_CALLs from other nodes.",
        s.node.req_call,
    );
    counter(
        "node_dmaster_requests_total",
        "REQ_DMASTERs: record migrations through this node as lmaster.",
        s.node.req_dmaster,
    );
    counter("calls_total", "Calls run here.", s.total_calls);
    counter(
        "recoveries_total",
        "Recoveries this node took part in.",
        s.num_recoveries,
    );
    let mut gauge = |name: &str, help: &str, value: u32| {
        metric(name, "gauge", help, value.to_string());
    };
    gauge("clients", "Connected local clients.", s.num_clients);
    gauge("frozen", "1 while the databases are frozen.", s.frozen);
    gauge("recovering", "1 while a recovery runs.", s.recovering);
    gauge(
        "pending_calls",
        "Calls waiting for a thaw.",
        s.pending_calls,
    );
    gauge(
        "max_hop_count",
        "Most forwards a call needed.",
        s.max_hop_count,
    );
    let l = &s.call_latency;
    metric(
        "call_latency_seconds_sum",
        "counter",
        "Total latency of calls.",
        format!("{}", l.total),
    );
    metric(
        "call_latency_seconds_count",
        "counter",
        "Calls timed.",
        l.num.to_string(),
    );
    metric(
        "call_latency_seconds_max",
        "gauge",
        "Slowest call.",
        format!("{}", l.max),
    );
}
