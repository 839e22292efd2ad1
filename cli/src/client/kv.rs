//! `regatta kv put|get|range|delete|txn|watch`.

use clap::{Args, Subcommand};
use regatta_proto::{
    mvcc::v1::{Compare, RequestOp, ResponseOp, compare, request_op, response_op},
    regatta::v1::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, kv_client::KvClient},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    CliResult, ClientOptions, Failure, connect,
    output::{kv_json, parse_bytes, prefix_end, print_json, text},
    request,
};

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Set a key to a value.
    Put {
        table: String,
        /// The key (text, or `hex:…` for raw bytes).
        key: String,
        /// The value (text, or `hex:…` for raw bytes).
        value: String,
        /// Also print the previous value, if there was one.
        #[arg(long)]
        prev_kv: bool,
        /// Time to live (e.g. `30s`, `5m`, `1h 30m`, `250ms`): the key is deleted that long
        /// after the write; without it the key never expires (and loses any TTL it had).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
    },
    /// Read one key. Exits with 4 when the key does not exist.
    Get {
        table: String,
        key: String,
        /// Confirm leadership before reading (core only).
        #[arg(long)]
        linearizable: bool,
    },
    /// Read a range of keys, in key order.
    Range(RangeArgs),
    /// Delete a key, or a range with --range-end / --prefix / --from-key.
    Delete {
        table: String,
        key: String,
        #[command(flatten)]
        bounds: Bounds,
        /// Print the deleted pairs.
        #[arg(long)]
        prev_kv: bool,
    },
    /// Run a transaction read as JSON from a file (`-` for standard input).
    ///
    /// Format: {"compare": [{"key": "a", "result": "equal|not_equal|greater|less",
    /// "value": "1", "range_end": "…"}], "success": [op…], "failure": [op…]} where an op is
    /// {"put": {"key", "value", "prev_kv"}}, {"range": {"key", "range_end", "limit",
    /// "keys_only", "count_only"}} or {"delete": {"key", "range_end", "prev_kv"}}. Leaving
    /// out "value" in a compare tests that the key exists.
    Txn {
        table: String,
        /// JSON file with the transaction, or `-` for standard input.
        file: String,
    },
    /// Print the changes of a key (or of a prefix or range, or of the whole table) as the
    /// node applies them, in revision order, from --from-revision or from now.
    ///
    /// One line per change: `PUT key = value (revision R)` or `DELETE key (revision R)`
    /// (one JSON document per line with --json). Runs until interrupted or --count events.
    /// To follow a table without missing anything: read it (`kv range`, note the revision
    /// R it answers at), then `kv watch --from-revision R+1`; after an interruption, watch
    /// again from the last revision printed + 1.
    Watch(super::watch::WatchArgs),
}

/// Which keys a range or delete covers, beyond the key itself.
#[derive(Args, Debug, Default)]
pub struct Bounds {
    /// Exclusive end of the range.
    #[arg(long, conflicts_with_all = ["prefix", "from_key"])]
    pub range_end: Option<String>,
    /// Treat the key as a prefix.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Every key greater than or equal to the key.
    #[arg(long)]
    pub from_key: bool,
}

impl Bounds {
    /// The wire's `range_end` for `key` with these bounds.
    pub fn end_of(&self, key: &[u8]) -> CliResult<Vec<u8>> {
        self.end(key)
    }

    fn end(&self, key: &[u8]) -> CliResult<Vec<u8>> {
        Ok(match (&self.range_end, self.prefix, self.from_key) {
            (Some(end), _, _) => parse_bytes(end).map_err(Failure::usage)?,
            (None, true, _) => prefix_end(key),
            (None, false, true) => vec![0],
            (None, false, false) => Vec::new(),
        })
    }
}

#[derive(Args, Debug)]
pub struct RangeArgs {
    table: String,
    /// First key; leave out for the whole table.
    key: Option<String>,
    #[command(flatten)]
    bounds: Bounds,
    /// At most this many keys.
    #[arg(long, default_value_t = 0)]
    limit: i64,
    /// Print keys without values.
    #[arg(long)]
    keys_only: bool,
    /// Print only the number of keys.
    #[arg(long)]
    count_only: bool,
    /// Confirm leadership before reading (core only).
    #[arg(long)]
    linearizable: bool,
}

pub async fn run(command: KvCommand, options: &ClientOptions) -> CliResult {
    let channel = connect(options).await?;
    let mut client = KvClient::new(channel.clone());
    match command {
        KvCommand::Put {
            table,
            key,
            value,
            prev_kv,
            ttl,
        } => {
            let req = PutRequest {
                table: table.into_bytes().into(),
                key: parse_bytes(&key).map_err(Failure::usage)?.into(),
                value: parse_bytes(&value).map_err(Failure::usage)?.into(),
                prev_kv,
                ttl_millis: ttl.map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX)),
            };
            let resp = client.put(request(options, req)?).await?.into_inner();
            let revision = resp.header.map_or(0, |h| h.revision);
            if options.json {
                let mut out = Map::new();
                out.insert("revision".into(), json!(revision));
                if let Some(prev) = &resp.prev_kv {
                    out.insert("prev_kv".into(), kv_json(prev, true));
                }
                print_json(&Value::Object(out));
            } else {
                crate::outln!("OK revision {revision}");
                if let Some(prev) = resp.prev_kv {
                    crate::outln!("previous: {} = {}", text(&prev.key), text(&prev.value));
                }
            }
        }
        KvCommand::Get {
            table,
            key,
            linearizable,
        } => {
            let key = parse_bytes(&key).map_err(Failure::usage)?;
            let req = RangeRequest {
                table: table.into_bytes().into(),
                key: key.clone().into(),
                linearizable,
                ..Default::default()
            };
            let resp = client.range(request(options, req)?).await?.into_inner();
            let Some(kv) = resp.kvs.first() else {
                if options.json {
                    print_json(&Value::Null);
                }
                return Err(Failure::not_found(format!("key {} not found", text(&key))));
            };
            if options.json {
                print_json(&kv_json(kv, true));
            } else {
                crate::outln!("{}", text(&kv.value));
            }
        }
        KvCommand::Range(args) => range(&mut client, args, options).await?,
        KvCommand::Watch(args) => return super::watch::run(args, channel, options).await,
        KvCommand::Delete {
            table,
            key,
            bounds,
            prev_kv,
        } => {
            let key = parse_bytes(&key).map_err(Failure::usage)?;
            let req = DeleteRangeRequest {
                table: table.into_bytes().into(),
                range_end: bounds.end(&key)?.into(),
                key: key.into(),
                prev_kv,
                count: true,
            };
            let resp = client
                .delete_range(request(options, req)?)
                .await?
                .into_inner();
            let revision = resp.header.map_or(0, |h| h.revision);
            if options.json {
                let prev: Vec<Value> = resp.prev_kvs.iter().map(|kv| kv_json(kv, true)).collect();
                print_json(
                    &json!({"revision": revision, "deleted": resp.deleted, "prev_kvs": prev}),
                );
            } else {
                crate::outln!("deleted {} (revision {revision})", resp.deleted);
                for kv in &resp.prev_kvs {
                    crate::outln!("{} = {}", text(&kv.key), text(&kv.value));
                }
            }
        }
        KvCommand::Txn { table, file } => {
            let spec = read_txn_spec(&file)?;
            let req = spec.into_request(table)?;
            let resp = client.txn(request(options, req)?).await?.into_inner();
            let revision = resp.header.map_or(0, |h| h.revision);
            let responses: Vec<Value> = resp.responses.iter().map(response_json).collect();
            if options.json {
                print_json(
                    &json!({"revision": revision, "succeeded": resp.succeeded, "responses": responses}),
                );
            } else {
                crate::outln!(
                    "{} (revision {revision})",
                    if resp.succeeded {
                        "SUCCEEDED"
                    } else {
                        "FAILED"
                    }
                );
                for r in responses {
                    crate::outln!("{r}");
                }
            }
        }
    }
    Ok(())
}

async fn range(
    client: &mut KvClient<tonic::transport::Channel>,
    args: RangeArgs,
    options: &ClientOptions,
) -> CliResult {
    let (key, end) = match &args.key {
        Some(key) => {
            let key = parse_bytes(key).map_err(Failure::usage)?;
            let end = args.bounds.end(&key)?;
            (key, end)
        }
        None => (vec![0], vec![0]),
    };
    let req = RangeRequest {
        table: args.table.into_bytes().into(),
        key: key.into(),
        range_end: end.into(),
        limit: args.limit,
        linearizable: args.linearizable,
        keys_only: args.keys_only,
        count_only: args.count_only,
        ..Default::default()
    };
    let mut stream = client
        .iterate_range(request(options, req)?)
        .await?
        .into_inner();
    let mut kvs = Vec::new();
    let mut count = 0;
    let mut revision = 0;
    while let Some(chunk) = stream.message().await? {
        revision = chunk.header.map_or(revision, |h| h.revision);
        count += chunk.count;
        kvs.extend(chunk.kvs);
    }
    if options.json {
        let items: Vec<Value> = kvs.iter().map(|kv| kv_json(kv, !args.keys_only)).collect();
        print_json(&json!({"revision": revision, "count": count, "kvs": items}));
    } else if args.count_only {
        crate::outln!("{count}");
    } else {
        for kv in &kvs {
            if args.keys_only {
                crate::outln!("{}", text(&kv.key));
            } else {
                crate::outln!("{} = {}", text(&kv.key), text(&kv.value));
            }
        }
    }
    Ok(())
}

fn response_json(op: &ResponseOp) -> Value {
    match &op.response {
        Some(response_op::Response::ResponseRange(r)) => {
            json!({"range": {"count": r.count, "more": r.more, "kvs": r.kvs.iter().map(|kv| kv_json(kv, true)).collect::<Vec<_>>()}})
        }
        Some(response_op::Response::ResponsePut(p)) => {
            json!({"put": {"prev_kv": p.prev_kv.as_ref().map(|kv| kv_json(kv, true))}})
        }
        Some(response_op::Response::ResponseDeleteRange(d)) => {
            json!({"delete": {"deleted": d.deleted, "prev_kvs": d.prev_kvs.iter().map(|kv| kv_json(kv, true)).collect::<Vec<_>>()}})
        }
        None => Value::Null,
    }
}

fn read_txn_spec(file: &str) -> CliResult<TxnSpec> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| {
            Failure::usage(format!("reading the transaction from standard input: {e}"))
        })?
    } else {
        std::fs::read_to_string(file).map_err(|e| Failure::usage(format!("reading {file}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| Failure::usage(format!("transaction JSON: {e}")))
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct TxnSpec {
    #[serde(default)]
    compare: Vec<CompareSpec>,
    #[serde(default)]
    success: Vec<OpSpec>,
    #[serde(default)]
    failure: Vec<OpSpec>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CompareSpec {
    key: String,
    #[serde(default)]
    range_end: Option<String>,
    result: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum OpSpec {
    Put {
        key: String,
        value: String,
        #[serde(default)]
        prev_kv: bool,
        /// Time to live in milliseconds (0: none).
        #[serde(default)]
        ttl_millis: i64,
    },
    Range {
        key: String,
        #[serde(default)]
        range_end: Option<String>,
        #[serde(default)]
        limit: i64,
        #[serde(default)]
        keys_only: bool,
        #[serde(default)]
        count_only: bool,
    },
    Delete {
        key: String,
        #[serde(default)]
        range_end: Option<String>,
        #[serde(default)]
        prev_kv: bool,
    },
}

fn bytes_of(arg: &str) -> CliResult<bytes::Bytes> {
    parse_bytes(arg).map(Into::into).map_err(Failure::usage)
}

fn opt_bytes_of(arg: &Option<String>) -> CliResult<bytes::Bytes> {
    arg.as_deref().map_or(Ok(bytes::Bytes::new()), bytes_of)
}

impl TxnSpec {
    fn into_request(self, table: String) -> CliResult<TxnRequest> {
        let compare = self
            .compare
            .into_iter()
            .map(|c| {
                let result = match c.result.to_ascii_lowercase().as_str() {
                    "equal" | "=" | "==" => compare::CompareResult::Equal,
                    "not_equal" | "!=" => compare::CompareResult::NotEqual,
                    "greater" | ">" => compare::CompareResult::Greater,
                    "less" | "<" => compare::CompareResult::Less,
                    other => {
                        return Err(Failure::usage(format!("unknown compare result {other:?}")));
                    }
                };
                Ok(Compare {
                    result: result as i32,
                    target: compare::CompareTarget::Value as i32,
                    key: bytes_of(&c.key)?,
                    range_end: opt_bytes_of(&c.range_end)?,
                    target_union: c
                        .value
                        .as_deref()
                        .map(bytes_of)
                        .transpose()?
                        .map(compare::TargetUnion::Value),
                })
            })
            .collect::<CliResult<Vec<_>>>()?;
        let ops = |ops: Vec<OpSpec>| -> CliResult<Vec<RequestOp>> {
            ops.into_iter()
                .map(|op| {
                    let request = match op {
                        OpSpec::Put {
                            key,
                            value,
                            prev_kv,
                            ttl_millis,
                        } => request_op::Request::RequestPut(request_op::Put {
                            key: bytes_of(&key)?,
                            value: bytes_of(&value)?,
                            prev_kv,
                            ttl_millis,
                        }),
                        OpSpec::Range {
                            key,
                            range_end,
                            limit,
                            keys_only,
                            count_only,
                        } => request_op::Request::RequestRange(request_op::Range {
                            key: bytes_of(&key)?,
                            range_end: opt_bytes_of(&range_end)?,
                            limit,
                            keys_only,
                            count_only,
                        }),
                        OpSpec::Delete {
                            key,
                            range_end,
                            prev_kv,
                        } => request_op::Request::RequestDeleteRange(request_op::DeleteRange {
                            key: bytes_of(&key)?,
                            range_end: opt_bytes_of(&range_end)?,
                            prev_kv,
                            count: true,
                        }),
                    };
                    Ok(RequestOp {
                        request: Some(request),
                    })
                })
                .collect()
        };
        Ok(TxnRequest {
            table: table.into_bytes().into(),
            compare,
            success: ops(self.success)?,
            failure: ops(self.failure)?,
        })
    }
}

/// Parses `--ttl`: a duration of at least 1 ms (`30s`, `5m`, `250ms`), as milliseconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration such as 30s, 5m, 1h 30m or 250ms)"))?;
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(
            "a TTL must be at least 1ms (leave --ttl out for a key that never expires)".into(),
        );
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_takes_human_durations_of_at_least_a_millisecond() {
        assert_eq!(parse_ttl("30s"), Ok(30_000));
        assert_eq!(parse_ttl("1h 30m"), Ok(5_400_000));
        assert_eq!(parse_ttl("250ms"), Ok(250));
        assert!(parse_ttl("0s").is_err_and(|e| e.contains("at least 1ms")));
        assert!(parse_ttl("500us").is_err());
        assert!(parse_ttl("soon").is_err_and(|e| e.contains("30s")));
    }

    #[test]
    fn a_txn_put_may_carry_a_ttl() {
        let spec: TxnSpec = serde_json::from_str(
            r#"{"failure":[{"put":{"key":"lock","value":"me","ttl_millis":2000}}]}"#,
        )
        .expect("valid spec");
        let req = spec.into_request("t".into()).expect("converts");
        let Some(request_op::Request::RequestPut(put)) = &req.failure[0].request else {
            panic!("{req:?}")
        };
        assert_eq!(put.ttl_millis, 2000);
    }

    #[test]
    fn txn_spec_parses_into_a_request() {
        let spec: TxnSpec = serde_json::from_str(
            r#"{"compare":[{"key":"a","result":"equal","value":"1"},{"key":"b","result":"!="}],
                "success":[{"put":{"key":"a","value":"2"}}],"failure":[{"range":{"key":"a"}}]}"#,
        )
        .expect("valid spec");
        let req = spec.into_request("t".into()).expect("converts");
        assert_eq!(req.compare.len(), 2);
        assert!(req.compare[1].target_union.is_none());
        assert_eq!(req.success.len(), 1);
        assert_eq!(req.failure.len(), 1);
    }

    #[test]
    fn txn_spec_rejects_unknown_fields_and_results() {
        assert!(serde_json::from_str::<TxnSpec>(r#"{"compares":[]}"#).is_err());
        let spec: TxnSpec =
            serde_json::from_str(r#"{"compare":[{"key":"a","result":"about"}]}"#).expect("parses");
        assert_eq!(
            spec.into_request("t".into()).expect_err("bad result").code,
            2
        );
    }
}
