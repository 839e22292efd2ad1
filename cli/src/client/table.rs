//! `regatta table create|delete|list`.

use clap::Subcommand;
use regatta_proto::regatta::v1::{
    CreateTableRequest, DeleteTableRequest, ListTablesRequest, tables_client::TablesClient,
};
use serde_json::{Value, json};

use super::{CliResult, ClientOptions, Failure, connect, output::print_json, request};

#[derive(Subcommand, Debug)]
pub enum TableCommand {
    /// Create a table (core only).
    Create {
        name: String,
        /// Table configuration as a JSON object.
        #[arg(long)]
        config: Option<String>,
    },
    /// Delete a table and every key in it (core only).
    Delete { name: String },
    /// List tables, sorted by name.
    List,
}

pub async fn run(command: TableCommand, options: &ClientOptions) -> CliResult {
    let mut client = TablesClient::new(connect(options).await?);
    match command {
        TableCommand::Create { name, config } => {
            let config = config.map(|c| json_to_struct(&c)).transpose()?;
            let resp = client
                .create(request(
                    options,
                    CreateTableRequest {
                        name: name.clone(),
                        config,
                    },
                )?)
                .await?;
            let id = resp.into_inner().id;
            if options.json {
                print_json(&json!({"name": name, "id": id}));
            } else {
                crate::outln!("created table {name} (id {id})");
            }
        }
        TableCommand::Delete { name } => {
            client
                .delete(request(options, DeleteTableRequest { name: name.clone() })?)
                .await?;
            if options.json {
                print_json(&json!({"name": name, "deleted": true}));
            } else {
                crate::outln!("deleted table {name}");
            }
        }
        TableCommand::List => {
            let tables = client
                .list(request(options, ListTablesRequest {})?)
                .await?
                .into_inner()
                .tables;
            if options.json {
                let items: Vec<Value> = tables
                    .iter()
                    .map(|t| json!({"name": t.name, "id": t.id}))
                    .collect();
                print_json(&Value::Array(items));
            } else {
                for t in tables {
                    crate::outln!("{}\t{}", t.name, t.id);
                }
            }
        }
    }
    Ok(())
}

/// A JSON object as a protobuf `Struct`.
fn json_to_struct(text: &str) -> CliResult<prost_types::Struct> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Failure::usage(format!("--config is not JSON: {e}")))?;
    match to_proto_value(value).kind {
        Some(prost_types::value::Kind::StructValue(s)) => Ok(s),
        _ => Err(Failure::usage("--config must be a JSON object")),
    }
}

fn to_proto_value(value: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(to_proto_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .into_iter()
                .map(|(k, v)| (k, to_proto_value(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}
