//! Typed helpers for the controls and calls clients use most.

use bytes::Bytes;
use ctdb_protocol::control::{self, DbMap, NodeMap, Statistics, Uptime, VnnMap};
use ctdb_protocol::flags::call;
use ctdb_protocol::{Opcode, ReqCall, Wire};

use crate::{Client, ClientError, Result};

fn decode<T: Wire>(opcode: Opcode, data: &[u8]) -> Result<T> {
    T::from_bytes(data).map_err(|e| ClientError::Unexpected(format!("{opcode} reply: {e}")))
}

impl Client {
    pub async fn get_pnn(&self, node: u32) -> Result<u32> {
        self.control_status(node, Opcode::GetPnn, Bytes::new())
            .await
            .map(|s| s as u32)
    }

    /// PING: answers the number of clients connected to that node.
    pub async fn ping(&self, node: u32) -> Result<u32> {
        self.control_status(node, Opcode::Ping, Bytes::new())
            .await
            .map(|s| s as u32)
    }

    pub async fn get_pid(&self, node: u32) -> Result<u32> {
        self.control_status(node, Opcode::GetPid, Bytes::new())
            .await
            .map(|s| s as u32)
    }

    pub async fn get_recmode(&self, node: u32) -> Result<u32> {
        self.control_status(node, Opcode::GetRecmode, Bytes::new())
            .await
            .map(|s| s as u32)
    }

    pub async fn set_recmode(&self, node: u32, mode: u32) -> Result<()> {
        self.control(node, Opcode::SetRecmode, 0, mode.to_bytes().into())
            .await
            .map(|_| ())
    }

    pub async fn get_nodemap(&self, node: u32) -> Result<NodeMap> {
        let data = self
            .control(node, Opcode::GetNodemap, 0, Bytes::new())
            .await?;
        decode(Opcode::GetNodemap, &data)
    }

    pub async fn get_vnnmap(&self, node: u32) -> Result<VnnMap> {
        let data = self
            .control(node, Opcode::Getvnnmap, 0, Bytes::new())
            .await?;
        decode(Opcode::Getvnnmap, &data)
    }

    pub async fn set_vnnmap(&self, node: u32, map: &VnnMap) -> Result<()> {
        self.control(node, Opcode::Setvnnmap, 0, map.to_bytes().into())
            .await
            .map(|_| ())
    }

    pub async fn get_dbmap(&self, node: u32) -> Result<DbMap> {
        let data = self
            .control(node, Opcode::GetDbmap, 0, Bytes::new())
            .await?;
        decode(Opcode::GetDbmap, &data)
    }

    pub async fn get_dbname(&self, node: u32, db_id: u32) -> Result<String> {
        let data = self
            .control(node, Opcode::GetDbname, 0, db_id.to_bytes().into())
            .await?;
        decode(Opcode::GetDbname, &data)
    }

    pub async fn get_dbpath(&self, node: u32, db_id: u32) -> Result<String> {
        let data = self
            .control(node, Opcode::Getdbpath, 0, db_id.to_bytes().into())
            .await?;
        decode(Opcode::Getdbpath, &data)
    }

    /// Attaches (creating if needed) a database; returns its db_id.
    pub async fn attach(&self, node: u32, name: &str, persistent: bool) -> Result<u32> {
        let opcode = if persistent {
            Opcode::DbAttachPersistent
        } else {
            Opcode::DbAttach
        };
        let data = self
            .control(node, opcode, 0, name.to_string().to_bytes().into())
            .await?;
        decode(opcode, &data)
    }

    pub async fn get_tunable(&self, node: u32, name: &str) -> Result<u32> {
        let request = control::TunableName(name.to_string()).to_bytes();
        let data = self
            .control(node, Opcode::GetTunable, 0, request.into())
            .await?;
        decode(Opcode::GetTunable, &data)
    }

    pub async fn set_tunable(&self, node: u32, name: &str, value: u32) -> Result<()> {
        let request = control::Tunable {
            name: name.to_string(),
            value,
        };
        self.control(node, Opcode::SetTunable, 0, request.to_bytes().into())
            .await
            .map(|_| ())
    }

    pub async fn list_tunables(&self, node: u32) -> Result<Vec<String>> {
        let data = self
            .control(node, Opcode::ListTunables, 0, Bytes::new())
            .await?;
        let list: control::VarList = decode(Opcode::ListTunables, &data)?;
        Ok(list.vars)
    }

    pub async fn uptime(&self, node: u32) -> Result<Uptime> {
        let data = self.control(node, Opcode::Uptime, 0, Bytes::new()).await?;
        decode(Opcode::Uptime, &data)
    }

    pub async fn get_capabilities(&self, node: u32) -> Result<u32> {
        let data = self
            .control(node, Opcode::GetCapabilities, 0, Bytes::new())
            .await?;
        decode(Opcode::GetCapabilities, &data)
    }

    pub async fn get_runstate(&self, node: u32) -> Result<u32> {
        let data = self
            .control(node, Opcode::GetRunstate, 0, Bytes::new())
            .await?;
        decode(Opcode::GetRunstate, &data)
    }

    pub async fn get_debug(&self, node: u32) -> Result<i32> {
        let data = self
            .control(node, Opcode::GetDebug, 0, Bytes::new())
            .await?;
        decode(Opcode::GetDebug, &data)
    }

    pub async fn set_debug(&self, node: u32, level: i32) -> Result<()> {
        self.control(node, Opcode::SetDebug, 0, level.to_bytes().into())
            .await
            .map(|_| ())
    }

    pub async fn statistics(&self, node: u32) -> Result<Statistics> {
        let data = self
            .control(node, Opcode::Statistics, 0, Bytes::new())
            .await?;
        // Samba 4.17 answers with its longer layout; both decode.
        Statistics::decode_any(&data)
            .map_err(|e| ClientError::Unexpected(format!("{} reply: {e}", Opcode::Statistics)))
    }

    /// FETCH_FUNC on a record: its current data (empty when it does not exist).
    pub async fn fetch(&self, db_id: u32, key: &[u8]) -> Result<Bytes> {
        let reply = self
            .call(ReqCall {
                flags: 0,
                db_id,
                callid: call::FETCH_FUNC,
                hopcount: 0,
                key: Bytes::copy_from_slice(key),
                calldata: Bytes::new(),
            })
            .await?;
        Ok(reply.data)
    }
}
