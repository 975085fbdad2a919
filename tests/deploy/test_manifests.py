"""Static checks of the deploy artefacts beyond what the schema validators
see: Dockerfiles (runtime libraries cover what the binaries link, non-root,
HEALTHCHECK, STOPSIGNAL, migrations), the rendered kustomize overlays
(probes, resources, security context, blue/green wiring of the gateway's
pools) and the compose file. scripts/check-deploy runs this together with
docker-compose config, kubectl kustomize + kubernetes-validate, hadolint
and shellcheck."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
C_SERVICES = ("gateway", "platform", "automation")
RELEASABLE = ("platform", "automation", "llm-orchestrator", "mcp-server")
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
# Sanitizer runtimes appear only in the ASan build the tests use.
IGNORED_SONAMES = re.compile(r"^(libasan|libubsan|liblsan|libtsan|"
                             r"libc|libm|libpthread|libdl|librt|"
                             r"ld-linux.*)\.so")


def dockerfile(svc: str) -> str:
    return (REPO / "services" / svc / "Dockerfile").read_text()


def python_services() -> list[str]:
    """Services without src/main.c but with Python packaging."""
    out = []
    for d in sorted((REPO / "services").iterdir()):
        if (d / "src" / "main.c").exists():
            continue
        if any((d / f).exists() for f in ("requirements.txt",
                                          "pyproject.toml")):
            out.append(d.name)
    return out


def stages(text: str) -> list[str]:
    """Dockerfile text split at FROM lines (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    parts = re.split(r"(?m)^FROM ", joined)
    return ["FROM " + p for p in parts[1:]]


def runtime_packages(text: str) -> set[str]:
    final = stages(text)[-1]
    pkgs: set[str] = set()
    for m in re.finditer(r"apt-get install ([^&]*)", final):
        pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def binary(svc: str) -> Path | None:
    for d in ("build/bin", "build/asan/bin"):
        p = REPO / d / svc
        if p.exists():
            return p
    return None


def needed_packages(path: Path) -> set[str]:
    """Debian packages providing the binary's direct NEEDED libraries."""
    out = subprocess.run(["objdump", "-p", str(path)], capture_output=True,
                         text=True, check=True).stdout
    sonames = [line.split()[1] for line in out.splitlines()
               if line.strip().startswith("NEEDED")]
    pkgs = set()
    for so in sonames:
        if IGNORED_SONAMES.match(so):
            continue
        found = subprocess.run(["dpkg", "-S", f"*/{so}"],
                               capture_output=True, text=True, check=False)
        assert found.returncode == 0, f"no package ships {so}"
        names = {line.split(":")[0] for line in found.stdout.splitlines()
                 if not line.split(":")[0].endswith("-dev")}
        assert names, f"only -dev packages ship {so}"
        pkgs.add(sorted(names)[0])
    return pkgs


@pytest.mark.parametrize("svc", C_SERVICES)
def test_c_dockerfile_shape(svc: str) -> None:
    text = dockerfile(svc)
    st = stages(text)
    assert len(st) == 2, "multi-stage: build + runtime"
    assert st[0].startswith("FROM debian:bookworm AS build")
    assert st[1].startswith("FROM debian:bookworm-slim")
    assert f"make -j\"$(nproc)\" build/bin/{svc}" in st[0]
    assert "-dev" not in " ".join(runtime_packages(text))
    assert re.search(r"(?m)^USER 10001:10001$", text)
    assert re.search(r"(?m)^STOPSIGNAL SIGTERM$", text)
    assert re.search(r"(?m)^HEALTHCHECK .*", text)
    assert "/healthz" in text
    if (REPO / "services" / svc / "migrations").is_dir():
        assert f"COPY services/{svc}/migrations /app/migrations" in text
        assert "MIGRATIONS_DIR=/app/migrations" in text


@pytest.mark.parametrize("svc", C_SERVICES)
def test_runtime_packages_cover_the_binary(svc: str) -> None:
    """Every library the service links is installed in its runtime image
    (the host is Debian bookworm like the image, so dpkg -S answers for
    the image too)."""
    if shutil.which("dpkg") is None or shutil.which("objdump") is None:
        pytest.fail("needs dpkg and objdump (Debian)")
    path = binary(svc)
    if path is None:
        pytest.fail(f"build/bin/{svc} or build/asan/bin/{svc} missing: run "
                    "`make` or `make asan` first")
    missing = needed_packages(path) - runtime_packages(dockerfile(svc))
    assert not missing, (f"services/{svc}/Dockerfile runtime stage lacks "
                         f"{sorted(missing)} (linked by {path})")


@pytest.mark.parametrize("svc", python_services())
def test_python_dockerfile_shape(svc: str) -> None:
    path = REPO / "services" / svc / "Dockerfile"
    assert path.exists(), f"{path} missing"
    text = path.read_text()
    assert (REPO / "services" / svc / "requirements.txt").exists()
    assert "FROM python:3.11-slim-bookworm" in text
    assert f"services/{svc}/requirements.txt" in text
    assert re.search(r"(?m)^USER 10001:10001$", text)
    assert re.search(r"(?m)^STOPSIGNAL SIGTERM$", text)
    assert re.search(r"(?m)^HEALTHCHECK ", text)


# ------------------------------------------------------------------ k8s


def render(overlay: str) -> list[dict]:
    out = subprocess.run([str(REPO / "scripts" / "kustomize-build"),
                          str(REPO / "k8s" / overlay)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_workloads_are_hardened(rendered) -> None:
    _overlay, docs = rendered
    workloads = list(by_kind(docs, "Deployment").values()) + list(
        by_kind(docs, "StatefulSet").values())
    assert workloads
    for w in workloads:
        name = w["metadata"]["name"]
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod.get("automountServiceAccountToken") is False, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), name
            assert "readinessProbe" in c and "livenessProbe" in c, name


def test_basalt_services_probe_and_tmp(rendered) -> None:
    _overlay, docs = rendered
    for name, d in by_kind(docs, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts, name
        vols = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in vols[mounts["/tmp"]], name
        assert pod["terminationGracePeriodSeconds"] >= 30, name


def test_blue_green_wiring(rendered) -> None:
    """Every releasable service has a Deployment and a Service per colour,
    and the gateway's routes pools point at those Services' ports."""
    _overlay, docs = rendered
    deps = by_kind(docs, "Deployment")
    svcs = by_kind(docs, "Service")
    cms = [d for d in docs if d["kind"] == "ConfigMap"
           and d["metadata"]["name"].startswith("gateway-routes")]
    assert len(cms) == 1
    routes = json.loads(cms[0]["data"]["routes.json"])
    for svc in RELEASABLE:
        pool = routes["upstreams"][svc]
        assert pool["blue"]["weight"] + pool["green"]["weight"] == 100
        for color in ("blue", "green"):
            name = f"{svc}-{color}"
            d = deps[name]
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert labels["basalt.dev/color"] == color
            assert labels["app.kubernetes.io/name"] == svc
            s = svcs[name]
            assert s["spec"]["selector"]["basalt.dev/color"] == color
            port = s["spec"]["ports"][0]["port"]
            assert pool[color]["targets"] == [f"http://{name}:{port}"]
        for kind in ("HorizontalPodAutoscaler",):
            assert {f"{svc}-blue", f"{svc}-green"} <= set(by_kind(docs, kind))
        assert svc in by_kind(docs, "PodDisruptionBudget")
    # the gateway mounts the generated ConfigMap
    vols = deps["gateway"]["spec"]["template"]["spec"]["volumes"]
    assert any(v.get("configMap", {}).get("name") == cms[0]["metadata"]["name"]
               for v in vols)


def test_network_policy_only_gateway_reaches_services(rendered) -> None:
    _overlay, docs = rendered
    pols = by_kind(docs, "NetworkPolicy")
    assert pols["default-deny-ingress"]["spec"]["podSelector"] == {}
    rule = pols["backend-from-gateway"]["spec"]
    assert rule["podSelector"]["matchLabels"] == {"basalt.dev/tier": "backend"}
    froms = [f for r in rule["ingress"] for f in r["from"]]
    pod_froms = [f["podSelector"]["matchLabels"] for f in froms
                 if "podSelector" in f]
    assert pod_froms == [{"app.kubernetes.io/name": "gateway"}]
    for name, d in by_kind(docs, "Deployment").items():
        tier = d["spec"]["template"]["metadata"]["labels"]["basalt.dev/tier"]
        assert tier == ("edge" if name == "gateway" else "backend"), name


def test_overlays_data_stores(rendered) -> None:
    overlay, docs = rendered
    sts = by_kind(docs, "StatefulSet")
    if overlay == "overlays/dev":
        assert {"postgres", "redis"} <= set(sts)
        assert "basalt-secrets" in {n.rsplit("-", 1)[0] for n in
                                    by_kind(docs, "Secret")}
    else:
        assert not sts
        # prod: nothing secret is rendered from git
        assert not by_kind(docs, "Secret")


def test_k8s_routes_match_the_gateway_routes() -> None:
    """k8s/base/gateway/routes.json = services/gateway/routes.json with the
    pools in blue/green form: same routes, same upstream names."""
    ours = json.loads((REPO / "k8s/base/gateway/routes.json").read_text())
    src = json.loads((REPO / "services/gateway/routes.json").read_text())
    fix = "run deploy/sync-k8s-routes"
    assert ours["routes"] == src["routes"], f"routes differ: {fix}"
    assert set(ours["upstreams"]) == set(src["upstreams"]), fix


def test_gateway_accepts_the_k8s_routes(tmp_path: Path) -> None:
    """The real gateway loads the k8s routes file (a bad file stops it at
    start with exit 2)."""
    gw = binary("gateway")
    if gw is None:
        pytest.fail("build/bin/gateway or build/asan/bin/gateway missing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1",
           "PORT": str(port), "LOG_LEVEL": "error",
           "ROUTES_FILE": str(REPO / "k8s/base/gateway/routes.json"),
           "JWT_SECRET": "k8s-routes-check-secret-0123456789abcdef",
           "ADMIN_TOKEN": "k8s-routes-check-admin-token",
           "ASAN_OPTIONS": "detect_leaks=0"}
    log = tmp_path / "gateway.log"
    with log.open("wb") as f:
        proc = subprocess.Popen([str(gw)], env=env, stdout=f,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (
                f"gateway refused the k8s routes (exit {proc.returncode}): "
                + log.read_text(errors="replace")[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gateway did not start listening")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------------------ compose


def compose_config() -> dict:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose missing: run scripts/bootstrap"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BASALT_", "COMPOSE_"))}
    out = subprocess.run([exe, "-f", str(REPO / "compose/docker-compose.yml"),
                          "--profile", "green", "config"],
                         capture_output=True, text=True, check=False,
                         env=env, cwd=REPO / "compose")
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_stack() -> None:
    cfg = compose_config()
    services = cfg["services"]
    expected = {"postgres", "redis", "gateway", "platform", "platform-green",
                "automation", "llm-orchestrator", "mcp-server"}
    assert expected <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    for name, s in services.items():
        assert "healthcheck" in s, name
        for dep, cond in (s.get("depends_on") or {}).items():
            assert cond["condition"] == "service_healthy", (name, dep)
        for p in s.get("ports", []):
            host_ip = (p.get("host_ip", "") if isinstance(p, dict)
                       else str(p).split(":")[0])
            assert host_ip == "127.0.0.1", (name, p)
    assert {"pgdata", "redisdata", "storage"} <= set(cfg["volumes"])
    assert services["platform-green"].get("profiles") == ["green"]
    env = services["gateway"]["environment"]
    assert env["UPSTREAM_PLATFORM_GREEN_URL"] == "http://platform-green:8081"
    assert env["UPSTREAM_PLATFORM_URL"] == "http://platform:8081"
    for svc in C_SERVICES:
        build = services[svc]["build"]
        assert build["dockerfile"] == f"services/{svc}/Dockerfile"
        assert (REPO / build["dockerfile"]).exists()
