//! Wire → domain conversions as the API layer calls them: what is rejected, with which
//! error, and that a validated write round-trips through its log event.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use regatta_materializer::request::{self, KeyRange, TableRange, Txn};
use regatta_materializer::{Command, Error};
use regatta_proto::mvcc::v1::{RequestOp, compare::CompareResult as CR, request_op};
use regatta_proto::regatta::v1 as wire;

fn invalid(e: Error) -> bool {
    matches!(
        e,
        Error::InvalidArgument { .. } | Error::KeyTooLarge { .. } | Error::ValueTooLarge { .. }
    )
}

#[test]
fn range_request_validation() {
    let ok = range_req("t", "a", "");
    assert!(TableRange::try_from(&ok).is_ok());
    let bad = |f: &dyn Fn(&mut wire::RangeRequest)| {
        let mut r = ok.clone();
        f(&mut r);
        TableRange::try_from(&r).unwrap_err()
    };
    assert!(invalid(bad(&|r| r.limit = -1)));
    assert!(invalid(bad(&|r| {
        r.keys_only = true;
        r.count_only = true
    })));
    assert!(invalid(bad(&|r| r.table = Bytes::new())));
    assert!(invalid(bad(&|r| r.key = Bytes::new())));
    assert!(matches!(
        bad(&|r| r.key = Bytes::from(vec![b'k'; 1025])),
        Error::KeyTooLarge {
            len: 1025,
            limit: 1024
        }
    ));
    assert!(matches!(
        bad(&|r| r.range_end = Bytes::from(vec![b'k'; 1025])),
        Error::KeyTooLarge { .. }
    ));
    assert!(invalid(bad(&|r| r.min_mod_revision = -3)));
    assert!(
        invalid(bad(&|r| r.table = Bytes::from_static(&[0xff, 0xfe]))),
        "table names are UTF-8"
    );
    let max_key = TableRange::try_from(&wire::RangeRequest {
        key: Bytes::from(vec![b'k'; 1024]),
        ..ok.clone()
    });
    assert!(max_key.is_ok(), "exactly 1 KiB is allowed");
    assert!(request::validate_range(&ok).is_ok());
}

#[test]
fn key_range_shapes() {
    assert_eq!(
        KeyRange::from_wire(&b("a"), &b("")).unwrap(),
        KeyRange::Key(b("a"))
    );
    assert_eq!(
        KeyRange::from_wire(&b("a"), &b("\0")).unwrap(),
        KeyRange::Span {
            start: b("a"),
            end: None
        }
    );
    assert_eq!(
        KeyRange::from_wire(&b("\0"), &b("\0")).unwrap(),
        KeyRange::Span {
            start: b("\0"),
            end: None
        }
    );
    assert_eq!(
        KeyRange::from_wire(&b("a"), &b("c")).unwrap(),
        KeyRange::Span {
            start: b("a"),
            end: Some(b("c"))
        }
    );
    assert!(
        KeyRange::Span {
            start: b("a"),
            end: Some(b("c"))
        }
        .contains(b"b")
    );
    assert!(
        !KeyRange::Span {
            start: b("a"),
            end: Some(b("c"))
        }
        .contains(b"c")
    );
}

#[test]
fn put_and_delete_validation() {
    let put = |k: Bytes, v: Bytes| wire::PutRequest {
        table: b("t"),
        key: k,
        value: v,
        prev_kv: false,
        ttl_millis: 0,
    };
    assert!(request::validate_put(&put(b("k"), b("v"))).is_ok());
    assert!(invalid(
        request::validate_put(&put(Bytes::new(), b("v"))).unwrap_err()
    ));
    let big = Bytes::from(vec![0u8; 2 * 1024 * 1024 + 1]);
    assert!(matches!(
        request::validate_put(&put(b("k"), big)).unwrap_err(),
        Error::ValueTooLarge { .. }
    ));
    assert!(request::validate_put(&put(b("k"), Bytes::from(vec![0u8; 2 * 1024 * 1024]))).is_ok());
    let no_table = wire::PutRequest {
        table: Bytes::new(),
        ..put(b("k"), b("v"))
    };
    assert!(invalid(request::validate_put(&no_table).unwrap_err()));
    let del = wire::DeleteRangeRequest {
        table: b("t"),
        key: Bytes::new(),
        ..Default::default()
    };
    assert!(invalid(request::validate_delete_range(&del).unwrap_err()));
}

#[test]
fn txn_validation_reaches_inside_ops_and_compares() {
    let base = wire::TxnRequest {
        table: b("t"),
        compare: vec![cmp("a", "", CR::Equal, Some("v"))],
        success: vec![op_put("a", "1"), op_range("a", "z"), op_delete("b", "")],
        failure: vec![],
    };
    assert!(Txn::try_from(&base).is_ok());
    let with = |f: &dyn Fn(&mut wire::TxnRequest)| {
        let mut r = base.clone();
        f(&mut r);
        request::validate_txn(&r).unwrap_err()
    };
    assert!(matches!(
        with(&|r| r.failure = vec![RequestOp {
            request: Some(request_op::Request::RequestPut(request_op::Put {
                key: b("k"),
                value: Bytes::from(vec![0u8; 2 * 1024 * 1024 + 1]),
                prev_kv: false,
                ttl_millis: 0,
            })),
        }]),
        Error::ValueTooLarge { .. }
    ));
    assert!(matches!(
        with(&|r| r.success.push(op_put(&"k".repeat(1025), "v"))),
        Error::KeyTooLarge { .. }
    ));
    assert!(invalid(with(&|r| r
        .success
        .push(RequestOp { request: None }))));
    assert!(invalid(with(&|r| r.success.push(RequestOp {
        request: Some(request_op::Request::RequestRange(request_op::Range {
            key: b("a"),
            limit: -1,
            ..Default::default()
        })),
    }))));
    assert!(
        invalid(with(&|r| r.compare[0].result = 9)),
        "unknown compare result"
    );
    assert!(
        invalid(with(&|r| r.compare[0].target = 5)),
        "unknown compare target"
    );
    assert!(invalid(with(&|r| r.compare[0].key = Bytes::new())));
    assert!(invalid(with(&|r| r.table = Bytes::new())));
}

#[test]
fn table_requests_need_a_name() {
    assert!(invalid(
        Command::try_from(&wire::CreateTableRequest {
            name: String::new(),
            config: None
        })
        .unwrap_err()
    ));
    assert!(invalid(
        Command::try_from(&wire::DeleteTableRequest {
            name: String::new()
        })
        .unwrap_err()
    ));
}

#[test]
fn validated_writes_round_trip_through_their_event() {
    let commands = vec![
        Command::try_from(&wire::PutRequest {
            table: b("t"),
            key: b("k"),
            value: b("v"),
            prev_kv: true,
            ttl_millis: 0,
        })
        .unwrap(),
        Command::try_from(&wire::DeleteRangeRequest {
            table: b("t"),
            key: b("a"),
            range_end: b("\0"),
            prev_kv: true,
            count: true,
        })
        .unwrap(),
        Command::try_from(&wire::TxnRequest {
            table: b("t"),
            compare: vec![
                cmp("a", "b", CR::Less, Some("x")),
                cmp("c", "", CR::NotEqual, None),
            ],
            success: vec![op_put("a", "1"), op_range("a", "z"), op_delete("b", "c")],
            failure: vec![op_range("\0", "\0")],
        })
        .unwrap(),
        Command::try_from(&wire::CreateTableRequest {
            name: "t".into(),
            config: None,
        })
        .unwrap(),
        Command::try_from(&wire::DeleteTableRequest { name: "t".into() }).unwrap(),
        Command::RestoreTable {
            name: "t".into(),
            clear: true,
            kvs: vec![(b("k"), b("v")).into()],
        },
    ];
    for (i, c) in commands.into_iter().enumerate() {
        let event = c.to_event(42);
        assert_eq!(event.version, regatta_proto::EVENT_VERSION);
        let encoded = prost::Message::encode_to_vec(&event);
        let decoded: regatta_proto::event::Event =
            prost::Message::decode(encoded.as_slice()).unwrap();
        assert_eq!(Command::from_event(i as u64 + 1, &decoded).unwrap(), c);
    }
}

#[test]
fn restore_events_split_by_size_and_clear_first() {
    let kvs: Vec<_> = (0..100)
        .map(|i| (b(&format!("k{i:03}")), Bytes::from(vec![0u8; 100])))
        .collect();
    let events = regatta_materializer::command::restore_events("t", kvs.clone(), 1000);
    assert!(events.len() > 1);
    let mut seen = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let Command::RestoreTable { clear, kvs, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(*clear, i == 0);
        seen.extend(kvs.iter().cloned());
    }
    assert_eq!(seen, kvs);
    let empty =
        regatta_materializer::command::restore_events("t", Vec::<(Bytes, Bytes)>::new(), 1000);
    assert!(
        matches!(&empty[..], [Command::RestoreTable { clear: true, kvs, .. }] if kvs.is_empty())
    );
}
