//! The `Eventd` gRPC service: recoverd asks for an event to be run.

use std::time::Duration;

use ctdb_protocol::event::EventCall;
use ctdb_rpc::eventd_server::{Eventd as EventdRpc, EventdServer};
use ctdb_rpc::{RunEventReply, RunEventRequest};
use tonic::{Request, Response, Status};

use crate::Eventd;

impl Eventd {
    /// This daemon as a tonic service.
    pub fn into_server(self) -> EventdServer<Self> {
        EventdServer::new(self)
    }
}

#[tonic::async_trait]
impl EventdRpc for Eventd {
    /// Runs the event (pre-empting a monitor run in flight, waiting for any other
    /// event) and answers with its status and output. An unknown event name is
    /// `InvalidArgument`; a script failure is a normal reply with a non-zero status.
    async fn run_event(
        &self,
        request: Request<RunEventRequest>,
    ) -> Result<Response<RunEventReply>, Status> {
        let req = request.into_inner();
        let event = EventCall::from_name(&req.event)
            .ok_or_else(|| Status::invalid_argument(format!("unknown event {:?}", req.event)))?;
        let timeout = (req.timeout_secs > 0).then(|| Duration::from_secs(req.timeout_secs.into()));
        // In a task of its own: a caller that goes away must not kill the scripts of
        // an event (releaseip, takeip, ...) half-way.
        let this = self.clone();
        let result = tokio::spawn(async move { this.run_event(event, &req.args, timeout).await })
            .await
            .map_err(|e| Status::internal(format!("event {event} did not complete: {e}")))?;
        Ok(Response::new(RunEventReply {
            status: result.status,
            output: if result.status == 0 {
                result.output()
            } else {
                result.summary()
            },
        }))
    }
}
