//! Builders shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use bytes::Bytes;
use regatta_materializer::{ApplyResponse, Command, Materializer, Revision};
use regatta_proto::event::{self, Event, event::Kind};
use regatta_proto::mvcc::v1::{Compare, RequestOp, compare, request_op};
use regatta_proto::regatta::v1 as wire;

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn event(kind: Kind) -> Event {
    Event {
        version: regatta_proto::EVENT_VERSION,
        proposed_at_micros: 0,
        kind: Some(kind),
    }
}

pub fn create(name: &str) -> Event {
    event(Kind::CreateTable(event::CreateTable {
        name: name.into(),
        config: None,
    }))
}

pub fn put(table: &str, k: &str, v: &str) -> Event {
    put_req(wire::PutRequest {
        table: b(table),
        key: b(k),
        value: b(v),
        prev_kv: true,
        ttl_millis: 0,
    })
}

pub fn put_req(r: wire::PutRequest) -> Event {
    Command::try_from(&r).expect("valid put").to_event(0)
}

pub fn delete(table: &str, k: &str, end: &str) -> Event {
    Command::try_from(&wire::DeleteRangeRequest {
        table: b(table),
        key: b(k),
        range_end: b(end),
        prev_kv: true,
        count: false,
    })
    .expect("valid delete")
    .to_event(0)
}

pub fn txn(r: wire::TxnRequest) -> Event {
    Command::try_from(&r).expect("valid txn").to_event(0)
}

pub fn op_put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(request_op::Put {
            key: b(k),
            value: b(v),
            prev_kv: true,
            ttl_millis: 0,
        })),
    }
}

pub fn op_range(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(request_op::Range {
            key: b(k),
            range_end: b(end),
            ..Default::default()
        })),
    }
}

pub fn op_delete(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            request_op::DeleteRange {
                key: b(k),
                range_end: b(end),
                prev_kv: true,
                count: true,
            },
        )),
    }
}

pub fn cmp(k: &str, end: &str, result: compare::CompareResult, value: Option<&str>) -> Compare {
    Compare {
        result: result as i32,
        target: compare::CompareTarget::Value as i32,
        key: b(k),
        range_end: b(end),
        target_union: value.map(|v| compare::TargetUnion::Value(b(v))),
    }
}

pub fn range_req(table: &str, k: &str, end: &str) -> wire::RangeRequest {
    wire::RangeRequest {
        table: b(table),
        key: b(k),
        range_end: b(end),
        ..Default::default()
    }
}

/// Applies `events` to `m` at consecutive revisions from `first`.
pub fn apply_from(m: &Materializer, first: u64, events: &[Event]) -> Vec<ApplyResponse> {
    m.apply_events(
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (Revision(first + i as u64), e)),
    )
    .expect("apply")
}

/// A materializer plus the next log index to apply at.
pub struct Harness {
    pub m: Materializer,
    pub next: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self {
            m: Materializer::default(),
            next: 1,
        }
    }

    pub fn apply(&mut self, e: Event) -> ApplyResponse {
        let index = Revision(self.next);
        self.next += 1;
        let mut r = self.m.apply_events([(index, &e)]).expect("apply");
        r.pop().expect("one response")
    }

    pub fn range(&self, r: wire::RangeRequest) -> wire::RangeResponse {
        let q = regatta_materializer::request::TableRange::try_from(&r).expect("valid range");
        self.m.view().range(&q, 0).expect("range")
    }

    pub fn keys(&self, r: wire::RangeRequest) -> Vec<String> {
        self.range(r)
            .kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.to_vec()).unwrap())
            .collect()
    }
}
