//! End-to-end: TLS with mutual authentication between core nodes on the Raft port
//! (`--raft.cert-filename`, `--raft.key-filename`, `--raft.ca-filename`, `https://` Raft
//! addresses). A three-node cluster elects, replicates, forwards writes and answers a
//! read index over it; the Raft port refuses a client without a certificate; a node whose
//! certificate another CA signed never gets in; a node killed and restarted rejoins; and
//! the configurations start-up refuses. Certificates are made at test time.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use regatta_proto::regatta::{
    admin::v1::{AddMemberRequest, admin_client::AdminClient},
    raft::v1::{NodeInfoRequest, raft_transport_client::RaftTransportClient},
    v1::MemberListRequest,
};
use regatta_tls::{ClientSettings, Dialer, IdentityFiles, PemFile};
use tonic::transport::Endpoint;

/// A CA that signs node certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, cert.pem()).expect("write CA");
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A node certificate for 127.0.0.1 and localhost (server and client alike): its
    /// certificate and key files.
    fn node(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("node key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("node params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("node certificate");
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

fn raft_tls_args(cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    vec![
        format!("--raft.cert-filename={}", cert.display()),
        format!("--raft.key-filename={}", key.display()),
        format!("--raft.ca-filename={}", ca.display()),
    ]
}

/// A core node with an `https://` Raft address and its own certificate signed by `ca`,
/// trusting `trust` for its peers.
fn tls_node(id: u64, root: &Path, ca: &Ca, trust: &Path) -> Node {
    let mut node = Node::core(id, root);
    node.raft = format!("https://127.0.0.1:{}", free_port());
    let (cert, key) = ca.node(root, &format!("node-{id}"));
    node.args = raft_tls_args(&cert, &key, trust);
    // Longer than the default, so that a loaded machine does not move the leadership the
    // test checks is unchanged.
    node.args.push("--raft.election-timeout=2s".into());
    node
}

/// A Raft-transport client of `node`'s Raft port trusting `ca`, presenting `identity`.
fn raft_client(
    node: &Node,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> RaftTransportClient<tonic::transport::Channel> {
    let settings = ClientSettings {
        ca: Some(PemFile::new("ca", ca)),
        identity: identity.map(|(cert, key)| IdentityFiles {
            cert: PemFile::new("cert", cert),
            key: PemFile::new("key", key),
        }),
        insecure_skip_verify: false,
    };
    let config = regatta_tls::client_config(&settings, "test", None).expect("client config");
    let dialer = Dialer::tls(config, None).expect("dialer");
    let endpoint = Endpoint::from_shared(node.raft.clone()).expect("endpoint");
    RaftTransportClient::new(dialer.connect_lazy(endpoint).expect("channel"))
}

/// The members' ids and the API URLs each reports, as `node` lists them.
async fn members(node: &Node) -> Option<Vec<(String, Vec<String>)>> {
    let list = node
        .cluster()
        .await
        .member_list(MemberListRequest {})
        .await
        .ok()?
        .into_inner();
    let mut members: Vec<_> = list
        .members
        .into_iter()
        .map(|m| (m.id, m.client_ur_ls))
        .collect();
    members.sort();
    Some(members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nodes_speak_mutual_tls_on_the_raft_port() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root_dir = dir.path().to_path_buf();
    let root = root_dir.as_path();
    let ca = Ca::new(root, "raft-ca");

    phase("three core nodes with https:// Raft addresses and certificates of one CA");
    let mut nodes: Vec<Node> = (1..=3).map(|id| tls_node(id, root, &ca, &ca.pem)).collect();
    let members_flag = initial_members(&nodes);
    for node in &mut nodes {
        node.start(&members_flag);
    }
    let mut cluster = Cluster {
        nodes,
        members: members_flag,
        dir,
    };
    let leader = cluster.wait_for_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    eprintln!("leader {leader}, follower {follower}");

    phase("writes at the leader and at a follower (forwarded over TLS)");
    create_table(cluster.node(leader), "t").await;
    put(cluster.node(leader), "t", "at-leader", "1")
        .await
        .expect("put at the leader");
    put(cluster.node(follower), "t", "at-follower", "2")
        .await
        .expect("put at a follower, forwarded to the leader");

    phase("a linearizable read at a follower (read index from the leader over TLS)");
    for key in ["at-leader", "at-follower"] {
        let value = get(cluster.node(follower), "t", key, true)
            .await
            .expect("linearizable read at a follower");
        assert!(value.is_some(), "{key} not read at the follower");
    }

    phase("the member list carries every node's info, asked over TLS");
    let listed = members(cluster.node(follower)).await.expect("member list");
    assert_eq!(listed.len(), 3, "{listed:?}");
    for (id, urls) in &listed {
        assert!(
            !urls.is_empty(),
            "node {id}'s API URL was not learned: {listed:?}"
        );
    }

    phase("the Raft port refuses a client without a certificate or with one another CA signed");
    let probe = cluster.node(follower);
    let refused = raft_client(probe, &ca.pem, None)
        .node_info(NodeInfoRequest {})
        .await
        .expect_err("a client without a certificate is refused");
    eprintln!(
        "without a client certificate: {}",
        regatta_tls::describe(&refused)
    );
    let other_ca = Ca::new(root, "other-ca");
    let (cert, key) = other_ca.node(root, "other-probe");
    let refused = raft_client(probe, &ca.pem, Some((&cert, &key)))
        .node_info(NodeInfoRequest {})
        .await
        .expect_err("a client certificate another CA signed is refused");
    eprintln!(
        "with another CA's certificate: {}",
        regatta_tls::describe(&refused)
    );

    phase("the Raft port admits a client certificate the CA signed");
    let (cert, key) = ca.node(root, "probe");
    let info = raft_client(probe, &ca.pem, Some((&cert, &key)))
        .node_info(NodeInfoRequest {})
        .await
        .expect("a client certificate the CA signed is admitted")
        .into_inner();
    assert_eq!(info.node_id, follower);

    phase("a membership change with an http:// Raft address is refused");
    let mut admin = AdminClient::new(cluster.node(follower).channel().await);
    let status = admin
        .add_member(AddMemberRequest {
            id: 9,
            raft_address: format!("http://127.0.0.1:{}", free_port()),
            learner_only: true,
        })
        .await
        .expect_err("an http:// member on a TLS cluster");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains("https://"), "{status}");

    phase("a fourth node whose certificate another CA signed is refused by the others");
    // It trusts the cluster's CA, so only its own certificate is wrong: the others refuse it.
    let mut rogue = tls_node(4, root, &other_ca, &ca.pem);
    let all = format!("{},4={}", cluster.members, rogue.raft);
    rogue.start(&all);
    // The others answer its handshakes with the alert "unknown CA": its log says so.
    wait_until_blocking(
        "the fourth node logs that its certificate was refused",
        || {
            std::fs::read_to_string(rogue.log_path())
                .is_ok_and(|log| log.contains("received fatal alert: UnknownCA"))
        },
    );
    // Its first votes are refused before its API serves: wait until it answers.
    wait_until("the fourth node answers Cluster.Status", || async {
        leader_of(&rogue).await.is_some()
    })
    .await;
    assert_eq!(
        leader_of(&rogue).await,
        Some(0),
        "the refused node found a leader"
    );
    assert_eq!(
        cluster.wait_for_leader().await,
        leader,
        "the leader changed"
    );
    let listed = members(cluster.node(leader)).await.expect("member list");
    assert_eq!(
        listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"],
        "the refused node got in"
    );
    rogue.kill();

    phase("the leader is killed (SIGKILL); the others elect another over TLS");
    cluster.node(leader).kill();
    let new_leader = cluster.wait_for_leader_other_than(leader).await;
    put(cluster.node(new_leader), "t", "after-kill", "3")
        .await
        .expect("put at the new leader");

    phase("the killed node restarts and rejoins over TLS");
    cluster.restart(leader);
    let rejoined = cluster.node(leader);
    wait_until(
        "the restarted node has the write made while it was down",
        || async {
            get(rejoined, "t", "after-kill", false)
                .await
                .is_ok_and(|v| v.as_deref() == Some("3"))
        },
    )
    .await;
    cluster.wait_for_leader().await;
    put(cluster.node(leader), "t", "after-rejoin", "4")
        .await
        .expect("put at the rejoined node");
}

#[test]
fn bad_raft_tls_configuration_fails_start_up_naming_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = Ca::new(dir.path(), "raft-ca");
    let (cert, key) = ca.node(dir.path(), "node-1");
    let https = format!("https://127.0.0.1:{}", free_port());
    let http = format!("http://127.0.0.1:{}", free_port());
    let args = |raft: &str, members: &str, extra: &[String]| {
        let node = Node::core(1, dir.path());
        let mut args = vec![
            "core".to_string(),
            "--raft.node-id=1".to_string(),
            format!("--raft.address={raft}"),
            format!("--raft.initial-members={members}"),
            format!("--api.address={}", node.api),
            format!("--rest.address={}", node.rest),
            format!("--replication.address={}", node.replication),
            format!("--data-dir={}", node.data_dir.display()),
        ];
        args.extend_from_slice(extra);
        args
    };
    let all = raft_tls_args(&cert, &key, &ca.pem);
    let missing = dir.path().join("missing.pem");
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "a certificate without its key and CA",
            args(&https, &format!("1={https}"), &all[..1]),
            vec![
                "--raft.key-filename, --raft.ca-filename missing".into(),
                "--raft.cert-filename given".into(),
            ],
        ),
        (
            "a certificate and key without the CA",
            args(&https, &format!("1={https}"), &all[..2]),
            vec!["--raft.ca-filename missing".into()],
        ),
        (
            "an http:// initial member with TLS on",
            args(&https, &format!("1={https},2={http}"), &all),
            vec![
                "--raft.initial-members (node 2)".into(),
                http.clone(),
                "not https://".into(),
            ],
        ),
        (
            "an http:// Raft address with TLS on",
            args(&http, &format!("1={https}"), &all),
            vec!["--raft.address".into(), "not https://".into()],
        ),
        (
            "an http:// listen address with TLS on",
            {
                let mut a = args(&https, &format!("1={https}"), &all);
                a.push(format!("--raft.listen-address={http}"));
                a
            },
            vec!["--raft.listen-address".into(), "not https://".into()],
        ),
        (
            "bare host:port members are https:// with TLS on: only the http:// one is refused",
            {
                let bare = https.trim_start_matches("https://");
                args(bare, &format!("1={bare},2={http}"), &all)
            },
            vec![
                "--raft.initial-members (node 2)".into(),
                http.clone(),
                "not https://".into(),
            ],
        ),
        (
            "an https:// Raft address without the TLS flags",
            args(&https, &format!("1={https}"), &[]),
            vec!["--raft.address".into(), "--raft.cert-filename".into()],
        ),
        (
            "a CA file that does not exist",
            args(
                &https,
                &format!("1={https}"),
                &[
                    all[0].clone(),
                    all[1].clone(),
                    format!("--raft.ca-filename={}", missing.display()),
                ],
            ),
            vec!["--raft.ca-filename".into(), missing.display().to_string()],
        ),
    ];
    for (what, args, expected) in cases {
        phase(what);
        let (code, text) = run_to_exit(&args, &[]);
        eprintln!("{what}: exit {code}: {}", text.trim_end());
        assert_ne!(code, 0, "{what}: start-up succeeded");
        for part in expected {
            assert!(text.contains(&part), "{what}: {part:?} not in: {text}");
        }
    }
}
