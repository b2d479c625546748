//! Reads each file named on the command line the way echo_orchestration 0.1.1's
//! `FileCheckpointStore::load` does (`read_to_string`, then `serde_json::from_str::<Checkpoint>`)
//! and prints one JSON line per file: `{"ok":true,"pretty":...}` with what
//! `serde_json::to_string_pretty` writes back (what `FileCheckpointStore::save` would store), or
//! `{"ok":false,"error":...}` with serde's message.
//!
//! The types below are the serde-relevant part of echo_orchestration-0.1.1 src/graph/checkpoint.rs
//! (kept in this repository as /work/shared/reference/echo_orchestration-0.1.1-checkpoint.rs):
//! same fields, same types, same field order, same derives and serde attributes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: String,
    pub graph_name: String,
    pub current_node: String,
    pub state_snapshot: serde_json::Value,
    pub path: Vec<String>,
    pub step_count: usize,
    pub created_at: DateTime<Utc>,
    pub pending_action: Option<serde_json::Value>,
    pub interrupt_type: InterruptType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InterruptType {
    BeforeNode,
    AfterNode,
    ToolApproval,
    UserRequest,
}

fn verdict(path: &str) -> serde_json::Value {
    let text = match std::fs::read(path).map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => return serde_json::json!({"ok": false, "error": format!("not UTF-8: {}", e)}),
        Err(e) => return serde_json::json!({"ok": false, "error": format!("cannot read: {}", e)}),
    };
    match serde_json::from_str::<Checkpoint>(&text) {
        Ok(cp) => match serde_json::to_string_pretty(&cp) {
            Ok(pretty) => serde_json::json!({"ok": true, "pretty": pretty}),
            Err(e) => serde_json::json!({"ok": false, "error": format!("serialize: {}", e)}),
        },
        Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
    }
}

fn main() {
    for path in std::env::args().skip(1) {
        println!("{}", verdict(&path));
    }
}
