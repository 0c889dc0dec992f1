"""PodSecurity against a real apiserver started with an admission configuration file: warnings
for workload templates (as kubectl prints them), enforce versions, the audit annotations in the
audit log, existing pods checked when a namespace's enforce level tightens, an exempt user, and
a configuration that does not load."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from minictl.components import apiserver_command, component_env
from tests.conftest import ControlPlane, audited, private_control_plane, wait_for

PSA = "pod-security.kubernetes.io/"
CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: privileged
      warn: privileged
    exemptions:
      usernames: [ci-bot]
"""
PLAIN_VIOLATIONS = (
    'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true '
    '(pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    config = tmp_path_factory.mktemp("psa") / "admission.yaml"
    config.write_text(CONFIG)
    with private_control_plane("mk8s-psa-", extra_apiserver_args=["--admission-control-config-file", str(config)]) as plane:
        yield plane


@pytest.fixture
def api(cp: ControlPlane) -> Iterator[httpx.Client]:
    with cp.client() as c:
        yield c


def make_namespace(cp: ControlPlane, api: httpx.Client, **labels: str) -> str:
    name = f"psa-{os.urandom(4).hex()}"
    body = {"metadata": {"name": name, "labels": {PSA + k.replace("_", "-"): v for k, v in labels.items()}}}
    assert api.post("/api/v1/namespaces", json=body).status_code == 201
    cp.wait_namespace_ready(name)
    return name


def pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def test_a_deployment_in_a_warn_namespace_is_created_with_a_warning(cp: ControlPlane, api: httpx.Client) -> None:
    ns = make_namespace(cp, api, enforce="restricted", warn="restricted")
    manifest = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: busybox}}]
"""
    r = cp.kubectl("apply", "-f", "-", input=manifest)
    assert r.stdout.strip() == "deployment.apps/web created"  # enforce never refuses a template
    assert f'Warning: would violate PodSecurity "restricted:latest": {PLAIN_VIOLATIONS}' in r.stderr
    assert api.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web").status_code == 200
    # the same template made conforming: no warning
    conforming = manifest.replace("[{name: c, image: busybox}]", "[{name: c, image: busybox, securityContext: {"
                                  "allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: {drop: [ALL]}, "
                                  "seccompProfile: {type: RuntimeDefault}}}]")
    r = cp.kubectl("apply", "-f", "-", input=conforming)
    assert r.stdout.strip() == "deployment.apps/web configured" and "Warning" not in r.stderr
    # a pod like the first template is refused in that namespace
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod("p"))
    assert r.status_code == 403
    assert r.json()["message"] == f'pods "p" is forbidden: PodSecurity: violates PodSecurity "restricted:latest": {PLAIN_VIOLATIONS}'


def test_the_enforce_version_picks_the_safe_sysctls(cp: ControlPlane, api: httpx.Client) -> None:
    # net.ipv4.ip_local_reserved_ports is a safe sysctl from v1.27 on
    old = make_namespace(cp, api, enforce="baseline", enforce_version="v1.26")
    new = make_namespace(cp, api, enforce="baseline", enforce_version="latest")
    p = pod("tuned", securityContext={"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "30000"}]})
    r = api.post(f"/api/v1/namespaces/{old}/pods", json=p)
    assert r.status_code == 403
    assert r.json()["message"] == ('pods "tuned" is forbidden: PodSecurity: violates PodSecurity "baseline:v1.26": '
                                   "forbidden sysctls (net.ipv4.ip_local_reserved_ports)")
    assert api.post(f"/api/v1/namespaces/{new}/pods", json=p).status_code == 201


def test_audit_annotations_in_the_audit_log(cp: ControlPlane, api: httpx.Client) -> None:
    ns = make_namespace(cp, api, audit="restricted", enforce="baseline", enforce_version="v1.30")
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod("audited"))
    assert r.status_code == 201 and "warning" not in r.headers
    (event,) = audited(cp.audit_records(), verb="create", resource="pods", namespace=ns, code=201)
    assert event["annotations"][PSA + "enforce-policy"] == "baseline:v1.30"
    assert event["annotations"][PSA + "audit-violations"] == f'would violate PodSecurity "restricted:latest": {PLAIN_VIOLATIONS}'


def test_labelling_a_namespace_restricted_warns_about_its_pods(cp: ControlPlane, api: httpx.Client) -> None:
    ns = make_namespace(cp, api)
    privileged = pod("priv")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=privileged).status_code == 201
    label = f"{PSA}enforce=restricted"
    expected = [f'Warning: existing pods in namespace "{ns}" violate the new PodSecurity enforce level "restricted:latest"',
                "Warning: priv: privileged, allowPrivilegeEscalation != false, unrestricted capabilities, "
                "runAsNonRoot != true, seccompProfile"]

    def dry_run_warns() -> bool:  # the apiserver's pod cache may not hold the pod yet
        return cp.kubectl("label", "--dry-run=server", "namespace", ns, label).stderr.splitlines() == expected

    wait_for(dry_run_warns, what="the dry-run label to warn about the pod")
    assert PSA + "enforce" not in (api.get(f"/api/v1/namespaces/{ns}").json()["metadata"].get("labels") or {})
    r = cp.kubectl("label", "namespace", ns, label)
    assert r.stdout.strip() == f"namespace/{ns} labeled" and r.stderr.splitlines() == expected
    # the pod stays; a new one like it is refused
    assert api.get(f"/api/v1/namespaces/{ns}/pods/priv").status_code == 200
    wait_for(lambda: api.post(f"/api/v1/namespaces/{ns}/pods", json={**privileged, "metadata": {"name": "priv2"}}
                              ).status_code == 403, what="the new label to apply")
    # an invalid label value is refused
    r = cp.kubectl("label", "--overwrite", "namespace", ns, f"{PSA}enforce=strict", check=False)
    assert r.returncode != 0
    assert (f'The Namespace "{ns}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
            '"strict": must be one of privileged, baseline, restricted') in r.stderr


def test_an_exempt_user_from_the_configuration(cp: ControlPlane, api: httpx.Client) -> None:
    ns = make_namespace(cp, api, enforce="restricted")
    privileged = pod("root-shell", hostPID=True)
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=privileged).status_code == 403
    bot = {"Impersonate-User": "ci-bot", "Impersonate-Group": "system:masters"}
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=privileged, headers=bot)
    assert r.status_code == 201, r.text
    events = audited(cp.audit_records(), verb="create", resource="pods", namespace=ns)
    by_bot = [e for e in events if (e.get("impersonatedUser") or {}).get("username") == "ci-bot"]
    assert [e["annotations"].get(PSA + "exempt") for e in by_bot] == ["user"]
    assert [e["responseStatus"]["code"] for e in events if e not in by_bot] == [403]


def test_a_configuration_that_does_not_load_stops_the_apiserver(cp: ControlPlane, tmp_path: Path) -> None:
    bad = tmp_path / "admission.yaml"
    bad.write_text(CONFIG.replace("enforce: privileged", "enforce: strict"))
    cmd = [*apiserver_command(cp.cfg), "--admission-control-config-file", str(bad), "--secure-port", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=component_env())
    assert r.returncode != 0
    assert (f'--admission-control-config-file: PodSecurity: {bad}: defaults.enforce: Invalid value: "strict": '
            "must be one of privileged, baseline, restricted") in r.stderr
