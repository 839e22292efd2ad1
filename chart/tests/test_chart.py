"""Offline tests of the Regatta chart: render every value set of chart/ci/ with Helm's own
library, lint it, validate every manifest against the Kubernetes schemas (strict), and check
what a reviewer checks: the Raft member list, probes, the disruption budget, the Secrets, and
that every argument and variable given to `regatta` is an option of that command
(tests/fixtures/flags.golden). Run by scripts/test-chart.
"""

import glob
import json
import os
import re

import helm_python as helm
import kubernetes_validate
import promql_parser
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "chart")
GOLDEN = os.environ.get(
    "CHART_FLAGS_GOLDEN", os.path.join(ROOT, "tests", "fixtures", "flags.golden")
)
NAMESPACE = "regatta"
VALUE_SETS = sorted(glob.glob(os.path.join(CHART, "ci", "*.yaml")))
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest whose
# schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.28.0", kubernetes_validate.utils.latest_version() + ".0"]

# Subcommands that take no option of their own, so the golden file has no line for them.
SUBCOMMANDS_WITHOUT_OPTIONS = {"backup create", "cluster members", "cluster status"}
CUSTOM_KINDS = {"Certificate", "ServiceMonitor", "PrometheusRule"}


# ---------------------------------------------------------------------------------------------
# The golden list of options


def load_golden():
    """{command: {"flags": {flag: (global?, action)}, "env": {...}, "config": {...},
    "positionals": [...]}} with aliases folded (core|leader -> core)."""
    commands = {}
    for line in open(GOLDEN):
        line = line.strip()
        if not line:
            continue
        words = line.split()
        assert words[0] == "regatta"
        at = next(i for i, w in enumerate(words) if w.startswith("env="))
        flag = words[at - 1]
        command = " ".join(w.split("|")[0] for w in words[1 : at - 1])
        attrs = dict(w.split("=", 1) for w in words[at:] if "=" in w)
        marks = {w for w in words[at:] if "=" not in w}
        entry = commands.setdefault(
            command, {"flags": {}, "env": set(), "config": set(), "positionals": []}
        )
        if flag.startswith("<"):
            if flag not in entry["positionals"]:
                entry["positionals"].append(flag)
        else:
            entry["flags"][flag] = ("global" in marks, attrs["action"])
        if attrs["env"] != "-":
            entry["env"].add(attrs["env"])
        if attrs["config"] != "-":
            entry["config"].add(attrs["config"])
    return commands


GOLDEN_COMMANDS = load_golden()


def option_of(command, flag):
    """The golden entry of `flag` for `command`, a global one of a parent command, or None."""
    words = command.split()
    for n in range(len(words), 0, -1):
        prefix = " ".join(words[:n])
        entry = GOLDEN_COMMANDS.get(prefix, {}).get("flags", {}).get(flag)
        if entry and (n == len(words) or entry[0]):
            return entry
    return None


# ---------------------------------------------------------------------------------------------
# Rendering


def release_name(values):
    return "core" if values.get("mode", "core") in ("core", "leader") else "edge-b"


def render(values, name=None):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        merged = chart.merge_values(values)
        out = chart.render(values, name=name or release_name(values), namespace=NAMESPACE,
                           is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return merged, docs


@pytest.fixture(scope="module", params=VALUE_SETS, ids=lambda p: os.path.basename(p))
def rendered(request):
    values = yaml.safe_load(open(request.param)) or {}
    merged, docs = render(values)
    return {"file": request.param, "values": values, "merged": merged, "docs": docs}


def kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs):
    """(owner name, pod spec) of every workload."""
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] in ("StatefulSet", "Deployment", "Job"):
            yield d["metadata"]["name"], spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]


def containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def server(docs):
    """The StatefulSet or Deployment running the node, and its regatta container."""
    (workload,) = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return workload, container


def arg_value(container, flag):
    values = [a.split("=", 1)[1] for a in container["args"] if a.startswith(flag + "=")]
    assert len(values) <= 1, f"{flag} given {len(values)} times"
    return values[0] if values else None


def is_core(merged):
    return merged["mode"] in ("core", "leader")


# ---------------------------------------------------------------------------------------------
# Helm: schema, lint, render


def test_every_value_set_exists():
    names = {os.path.basename(p) for p in VALUE_SETS}
    for required in ("single-core.yaml", "core-3.yaml", "edge.yaml", "edge-chain-tls.yaml"):
        assert required in names


def test_lint(rendered):
    report = helm.lint(CHART, rendered["values"], strict=True, namespace=NAMESPACE,
                       kube_version="v" + KUBE_VERSIONS[-1])
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


def test_defaults_render_and_lint():
    _, docs = render({})
    assert kinds(docs, "StatefulSet")
    report = helm.lint(CHART, {}, strict=True)
    assert not [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]


def test_long_release_names_fit_kubernetes_limits():
    values = yaml.safe_load(open(os.path.join(CHART, "ci", "core-grow.yaml")))
    values["maintenance"]["backup"] = {"enabled": True}
    _, docs = render(values, name="a-release-name-that-is-much-longer-than-anyone-would-choose")
    for doc in docs:
        name = doc["metadata"]["name"]
        limit = {"CronJob": 52, "Service": 63, "Job": 63}.get(doc["kind"], 253)
        assert len(name) <= limit, (doc["kind"], name)
    sts, _ = server(docs)
    last_pod = f"{sts['metadata']['name']}-{sts['spec']['replicas']}"
    assert len(last_pod) <= 63


def test_regatta_mode_names_are_aliases():
    _, leader = render({"mode": "leader"}, name="core")
    assert server(leader)[1]["args"][0] == "core"
    _, follower = render({"mode": "follower", "replication": {"leaderAddress": "http://core:8444"}})
    assert server(follower)[1]["args"][0] == "edge"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"mode": "edge"}, "leaderAddress"),
        ({"replicas": 0}, "replicas"),
        ({"api": {"tls": {"mode": "auto"}}}, "mode"),
        ({"replicaz": 3}, "replicaz"),
        ({"objectStore": {"url": "bucket/prefix"}}, "url"),
        ({"extraArgs": ["core"]}, "extraArgs"),
        ({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds"),
    ],
)
def test_schema_rejects(values, message):
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmError) as error:
            chart.validate_schema(values)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"replicas": 3, "raft": {"initialReplicas": 5}}, "remove members first"),
        ({"api": {"tls": {"mode": "plaintext"}}}, "api.tls.cert is required"),
        ({"maintenance": {"enabled": True}}, "maintenance.token.value is required"),
        ({"objectStore": {"credentials": {"source": "secret"}}}, "existingSecret is required"),
        ({"api": {"tls": {"mode": "certificate"}}}, "api.tls.issuerRef is required"),
    ],
)
def test_render_refuses(values, message):
    with pytest.raises(helm.HelmError) as error:
        render(values)
    assert message in str(error.value)


# ---------------------------------------------------------------------------------------------
# Kubernetes schemas


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_manifests_valid_strict(rendered, version):
    for doc in rendered["docs"]:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.utils.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {e.message} "
                        f"at {'/'.join(map(str, e.path))}")


def test_custom_resources_have_their_required_fields(rendered):
    """cert-manager and Prometheus Operator kinds have no schema in kubernetes-validate: check
    the fields their controllers require."""
    for doc in rendered["docs"]:
        spec = doc.get("spec", {})
        if doc["kind"] == "Certificate":
            assert doc["apiVersion"] == "cert-manager.io/v1"
            assert spec["secretName"] and spec["issuerRef"]["name"] and spec["dnsNames"]
            assert {"server auth", "client auth"} <= set(spec["usages"])
        elif doc["kind"] == "ServiceMonitor":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert spec["selector"]["matchLabels"] and spec["endpoints"][0]["port"] == "http-metrics"
        elif doc["kind"] == "PrometheusRule":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            for group in spec["groups"]:
                assert group["name"] and group["rules"]
                for rule in group["rules"]:
                    assert rule["alert"] and rule["expr"] and rule["labels"]["severity"]


# ---------------------------------------------------------------------------------------------
# Raft membership


def test_core_members_match_replicas(rendered):
    merged, docs = rendered["merged"], rendered["docs"]
    if not is_core(merged):
        assert not kinds(docs, "StatefulSet")
        return
    sts, container = server(docs)
    full = sts["metadata"]["name"]
    replicas = merged["replicas"]
    initial = merged["raft"].get("initialReplicas") or replicas
    assert sts["spec"]["replicas"] == replicas
    assert sts["metadata"]["annotations"]["regatta/initial-replicas"] == str(initial)
    assert sts["spec"]["ordinals"]["start"] == 1, "pod ordinals are node ids: they start at 1"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    headless = sts["spec"]["serviceName"]
    (svc,) = [s for s in kinds(docs, "Service") if s["metadata"]["name"] == headless]
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"]
    scheme = "http" if merged["raft"]["tls"]["mode"] == "disabled" else "https"
    domain = f"{headless}.{NAMESPACE}.svc.{merged['clusterDomain']}"
    port = merged["raft"]["port"]
    members = dict(m.split("=", 1) for m in arg_value(container, "--raft.initial-members").split(","))
    assert members == {
        str(i): f"{scheme}://{full}-{i}.{domain}:{port}" for i in range(1, initial + 1)
    }
    assert arg_value(container, "--raft.address") == f"{scheme}://$(POD_NAME).{domain}:{port}"
    host = merged["listenHost"]
    assert arg_value(container, "--raft.listen-address") == f"{scheme}://{host}:{port}"
    assert arg_value(container, "--raft.advertise-address") is None
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert (env["REGATTA_RAFT_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"]
            == "metadata.labels['apps.kubernetes.io/pod-index']")
    assert arg_value(container, "--raft.node-id") is None

    jobs = [j for j in kinds(docs, "Job") if j["metadata"]["name"].endswith("-add-members")]
    if replicas == initial or not merged["membership"]["hook"]:
        assert not jobs
        return
    (job,) = jobs
    assert "post-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    added = {}
    for c in job["spec"]["template"]["spec"]["initContainers"]:
        assert c["args"][:2] == ["cluster", "add-member"]
        added[c["args"][2]] = c["args"][3]
    assert added == {
        str(i): f"{scheme}://{full}-{i}.{domain}:{port}" for i in range(initial + 1, replicas + 1)
    }


def test_edge_follows_its_upstreams(rendered):
    merged, docs = rendered["merged"], rendered["docs"]
    if is_core(merged):
        return
    _, container = server(docs)
    given = merged["replication"]["leaderAddress"]
    expected = given if isinstance(given, list) else given.split(",")
    assert arg_value(container, "--replication.leader-address").split(",") == expected
    assert container["args"][0] == "edge"
    if merged["autoscaling"]["enabled"]:
        (hpa,) = kinds(docs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == server(docs)[0]["metadata"]["name"]
        assert "replicas" not in server(docs)[0]["spec"]


# ---------------------------------------------------------------------------------------------
# Probes, disruption budget, security


def test_probes_hit_the_rest_port(rendered):
    merged, docs = rendered["merged"], rendered["docs"]
    _, container = server(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    rest = arg_value(container, "--rest.address")
    assert rest.endswith(f":{merged['metricsPort']}") and rest.startswith("http://")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == merged["metricsPort"]


def test_pdb_keeps_a_quorum(rendered):
    merged, docs = rendered["merged"], rendered["docs"]
    pdbs = kinds(docs, "PodDisruptionBudget")
    replicas = merged["replicas"]
    if replicas == 1 or not merged["podDisruptionBudget"]["enabled"]:
        assert not pdbs
        return
    (pdb,) = pdbs
    workload, _ = server(docs)
    assert pdb["spec"]["selector"] == workload["spec"]["selector"]
    if is_core(merged):
        quorum = replicas // 2 + 1
        assert pdb["spec"]["minAvailable"] >= quorum
        assert pdb["spec"]["minAvailable"] < replicas or replicas == 2, "a drain must be possible"
    else:
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable")


def test_data_dir_is_inside_the_volume(rendered):
    """`regatta reseed` renames the data directory aside: it must not be the mount point."""
    _, container = server(rendered["docs"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    data_dir = arg_value(container, "--data-dir")
    parent = os.path.dirname(data_dir)
    assert mounts.get(parent) == "data" and data_dir not in mounts, (data_dir, mounts)


def test_containers_run_locked_down(rendered):
    for name, spec in pod_specs(rendered["docs"]):
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] == 65532
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"], (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
    workload, container = server(rendered["docs"])
    assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 20
    assert "resources" in container


# ---------------------------------------------------------------------------------------------
# Secrets and certificates


def test_secrets_referenced_exist(rendered):
    """Every Secret a pod reads is made by the chart (a Secret, or a cert-manager Certificate's
    secretName) or named in the values the operator gave."""
    docs, given = rendered["docs"], json.dumps(rendered["values"])
    made = {d["metadata"]["name"] for d in kinds(docs, "Secret")}
    made |= {c["spec"]["secretName"] for c in kinds(docs, "Certificate")}
    referenced = set()
    for _, spec in pod_specs(docs):
        for v in spec.get("volumes", []):
            if "secret" in v:
                referenced.add(v["secret"]["secretName"])
        for c in containers(spec):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
                    secret = [d for d in kinds(docs, "Secret") if d["metadata"]["name"] == ref["name"]]
                    if secret:
                        assert ref["key"] in secret[0]["data"], (ref, secret[0]["data"].keys())
    for name in referenced:
        assert name in made or f'"{name}"' in given or _kind_none(rendered, name), name


def _kind_none(rendered, name):
    """A token Secret the operator creates (secretKind: none) under the chart's default name."""
    values = rendered["merged"]
    for key in ("maintenance", "tables"):
        if name.endswith(f"-{key}-token") and values[key]["token"]["secretKind"] == "none":
            return True
    return False


def test_tls_files_come_from_mounted_secrets(rendered):
    merged, docs = rendered["merged"], rendered["docs"]
    _, container = server(docs)
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    for flag in ("--api.cert-filename", "--api.key-filename", "--api.ca-filename",
                 "--replication.cert-filename", "--replication.key-filename",
                 "--replication.ca-filename", "--raft.cert-filename", "--raft.key-filename",
                 "--raft.ca-filename"):
        path = arg_value(container, flag)
        if path:
            assert os.path.dirname(path) in mounts, (flag, path)
    for port, values in (("api", merged["api"]), ("replication", merged["replication"])):
        scheme = arg_value(container, f"--{port}.address").split(":")[0]
        assert scheme == ("http" if values["tls"]["mode"] == "disabled" else "https")
    if not is_core(merged):
        upstreams = arg_value(container, "--replication.leader-address").split(",")
        if any(u.startswith("https://") for u in upstreams) and merged["replication"]["tls"]["mode"] != "disabled":
            assert arg_value(container, "--replication.ca-filename")


# ---------------------------------------------------------------------------------------------
# Every argument, variable and config key is an option of the command


def command_of(args):
    words = []
    for a in args:
        if a.startswith("-"):
            break
        candidate = " ".join(words + [a])
        if candidate in GOLDEN_COMMANDS or candidate in SUBCOMMANDS_WITHOUT_OPTIONS:
            words.append(a)
        else:
            break
    return " ".join(words), args[len(words):]


def test_args_are_options(rendered):
    for name, spec in pod_specs(rendered["docs"]):
        for c in containers(spec):
            if "regatta" not in c["image"]:
                continue
            command, rest = command_of(c["args"])
            assert command, (name, c["name"], c["args"])
            positionals = [a for a in rest if not a.startswith("--")]
            expected = GOLDEN_COMMANDS.get(command, {}).get("positionals", [])
            assert len(positionals) == len(expected), (command, positionals, expected)
            for arg in rest:
                if not arg.startswith("--"):
                    continue
                flag, _, value = arg.partition("=")
                entry = option_of(command, flag)
                assert entry is not None, f"{name}/{c['name']}: `regatta {command}` has no option {flag}"
                if entry[1] == "set-true":
                    assert not value, f"{flag} takes no value"
                else:
                    assert value, f"{flag} needs a value"
            for e in c.get("env", []):
                if e["name"].startswith("REGATTA_"):
                    envs = set()
                    words = command.split()
                    for n in range(len(words), 0, -1):
                        envs |= GOLDEN_COMMANDS.get(" ".join(words[:n]), {}).get("env", set())
                    assert e["name"] in envs, f"`regatta {command}` reads no {e['name']}"


def test_urls_are_well_formed(rendered):
    _, container = server(rendered["docs"])
    url = re.compile(r"^https?://[A-Za-z0-9_$().\-\[\]:]+:[0-9]+$")
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        if flag.endswith(("address", "advertise-address")):
            for u in value.split(","):
                assert url.match(u), (flag, u)
        if flag == "--raft.initial-members":
            for pair in value.split(","):
                i, u = pair.split("=", 1)
                assert int(i) > 0 and url.match(u), pair


def test_config_file_keys_are_options(rendered):
    merged, docs = rendered["merged"], rendered["docs"]
    maps = [d for d in kinds(docs, "ConfigMap") if "config.yaml" in d.get("data", {})]
    if not merged["config"]:
        assert not maps
        return
    (cm,) = maps
    command = "core" if is_core(merged) else "edge"
    keys = yaml.safe_load(cm["data"]["config.yaml"])
    for key in keys:
        assert key in GOLDEN_COMMANDS[command]["config"], f"`regatta {command}` has no option {key}"
    _, container = server(docs)
    assert arg_value(container, "--config") == "/config/config.yaml"


# ---------------------------------------------------------------------------------------------
# Alerts and dashboard read series the node exports


def exported_metrics():
    names = set()
    pattern = re.compile(r'"((?:regatta|grpc_server|process)_[a-z_]+)"')
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".cache", ".git", "tests", "benchmarks", "chart")]
        for f in filenames:
            if f.endswith(".rs"):
                text = open(os.path.join(dirpath, f), errors="replace").read()
                names |= set(pattern.findall(text))
                if "process_collector::ProcessCollector" in text:
                    # The prometheus crate's process collector: the series docs/metrics.md lists.
                    doc = open(os.path.join(ROOT, "docs", "metrics.md")).read()
                    names |= set(re.findall(r"`(process_[a-z_]+)`", doc))
    return names


EXPORTED = None


def metrics_in(expr):
    words = set(re.findall(r"\b((?:regatta|grpc_server|process)_[a-z_]+)\b", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", w) for w in words}


def check_metrics(exprs):
    global EXPORTED
    if EXPORTED is None:
        EXPORTED = exported_metrics()
        assert "regatta_raft_is_leader" in EXPORTED, "no metric names found in the sources"
    used = set()
    for expr in exprs:
        try:
            promql_parser.parse(expr)
        except Exception as e:  # the parser raises its own error types
            pytest.fail(f"not PromQL: {expr}: {e}")
        found = metrics_in(expr)
        assert found, expr
        used |= found
    unknown = sorted(m for m in used if m not in EXPORTED)
    assert not unknown, f"not exported by the node: {unknown}"
    return used


def test_alerts_use_exported_metrics(rendered):
    rules = kinds(rendered["docs"], "PrometheusRule")
    if not rendered["merged"]["prometheusRules"]["enabled"]:
        assert not rules
        return
    (rule,) = rules
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = check_metrics(exprs)
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    if is_core(rendered["merged"]):
        assert {"RegattaNoLeader", "RegattaSnapshotUploadFailures", "RegattaArchiveBehind"} <= names
        assert "regatta_raft_is_leader" in used
    else:
        assert "RegattaEdgeLagging" in names and "regatta_edge_lag_seconds" in used


def test_dashboard_uses_exported_metrics():
    dashboard = json.load(open(os.path.join(CHART, "dashboards", "regatta.json")))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    check_metrics(exprs)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_readme_lists_every_value():
    readme = open(os.path.join(CHART, "README.md")).read()

    def leaves(prefix, value):
        if isinstance(value, dict) and value and prefix not in (
            "resources", "podSecurityContext", "securityContext", "config", "startupProbe",
            "livenessProbe", "readinessProbe", "persistentVolumeClaim.spec",
            "grafanaDashboard.labels", "edge.dataVolume"):
            for k, v in value.items():
                yield from leaves(f"{prefix}.{k}" if prefix else k, v)
        else:
            yield prefix

    with helm.Chart.load(CHART) as chart:
        defaults = chart.values
    missing = [k for k in leaves("", defaults) if f"`{k}`" not in readme]
    assert not missing, f"chart/README.md does not list {missing}"


def test_the_metric_checks_catch_mistakes():
    with pytest.raises(pytest.fail.Exception):
        check_metrics(["sum(regatta_raft_is_leader"])
    with pytest.raises(AssertionError):
        check_metrics(["regatta_raft_has_leader > 0"])
