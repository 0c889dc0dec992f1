"""minictl's other verbs against a real apiserver: label/annotate/scale/rollout/describe/edit, errors,
logs/exec without a kubelet, top, discovery verbs, config, completion and the minik8s extras."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from certs import ensure_pki, issue_client_cert, write_kubeconfig
from minictl.components import ClusterConfig
from tests.conftest import ControlPlane

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
"""


def _get(cp: ControlPlane, ns: str, *what: str) -> dict:
    return json.loads(cp.kubectl("-n", ns, "get", *what, "-o", "json").stdout)


def test_label_and_annotate(control_plane: ControlPlane, mctl, namespace: str) -> None:
    mctl("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    assert mctl("-n", namespace, "label", "deploy", "web", "tier=fe", "env=prod").stdout == "deployment.apps/web labeled\n"
    refused = mctl("-n", namespace, "label", "deploy/web", "tier=be", check=False)
    theirs = control_plane.kubectl("-n", namespace, "label", "deploy/web", "tier=be", check=False)
    assert refused.code == theirs.returncode == 1
    assert refused.stderr.strip() == theirs.stderr.strip() == "error: 'tier' already has a value (fe), and --overwrite is false"
    mctl("-n", namespace, "label", "deploy/web", "tier=be", "env-", "--overwrite")
    assert _get(control_plane, namespace, "deploy", "web")["metadata"]["labels"] == {"app": "web", "tier": "be"}
    assert mctl("-n", namespace, "label", "deploy/web", "--list").stdout == "app=web\ntier=be\n"
    assert mctl("-n", namespace, "annotate", "deploy", "web", "note=a b").stdout == "deployment.apps/web annotated\n"
    mctl("-n", namespace, "annotate", "deploy", "--all", "kubernetes.io/change-cause=first")
    ann = _get(control_plane, namespace, "deploy", "web")["metadata"]["annotations"]
    assert ann["note"] == "a b" and ann["kubernetes.io/change-cause"] == "first"
    mctl("-n", namespace, "annotate", "deploy", "web", "note-")
    assert "note" not in _get(control_plane, namespace, "deploy", "web")["metadata"]["annotations"]
    # a precondition the object no longer meets: the server's Conflict
    stale = mctl("-n", namespace, "label", "deploy/web", "x=y", "--resource-version=1", check=False)
    assert stale.code == 1 and stale.stderr.startswith("Error from server (Conflict)")
    managers = {m["manager"] for m in json.loads(control_plane.kubectl(
        "-n", namespace, "get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)["metadata"]["managedFields"]}
    assert {"kubectl-client-side-apply", "kubectl-label", "kubectl-annotate"} <= managers


def test_scale(control_plane: ControlPlane, mctl, namespace: str) -> None:
    mctl("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    assert mctl("-n", namespace, "scale", "deploy/web", "--replicas=3").stdout == "deployment.apps/web scaled\n"
    assert _get(control_plane, namespace, "deploy", "web")["spec"]["replicas"] == 3
    wrong = mctl("-n", namespace, "scale", "deploy", "web", "--replicas=5", "--current-replicas=2", check=False)
    assert wrong.code == 1 and "Expected replicas to be 2, was 3" in wrong.stderr
    mctl("-n", namespace, "scale", "deploy", "web", "--replicas=0", "--current-replicas=3")
    assert _get(control_plane, namespace, "deploy", "web")["spec"]["replicas"] == 0
    mctl("-n", namespace, "create", "configmap", "c")
    no_scale = mctl("-n", namespace, "scale", "cm", "c", "--replicas=1", check=False)
    assert no_scale.code == 1


def _replicaset(deploy: dict, revision: int, image: str, cause: str | None = None) -> dict:
    meta = deploy["metadata"]
    template = json.loads(json.dumps(deploy["spec"]["template"]))
    template["metadata"]["labels"]["pod-template-hash"] = f"h{revision}"
    template["spec"]["containers"][0]["image"] = image
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    if cause:
        annotations["kubernetes.io/change-cause"] = cause
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"web-h{revision}", "labels": template["metadata"]["labels"], "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "pod-template-hash": f"h{revision}"}},
                     "template": template}}


def test_rollout_history_undo_restart_pause(control_plane: ControlPlane, mctl, namespace: str) -> None:
    """The ReplicaSets a deployment controller would have made are created here by hand, so the
    rollout verbs are tested on their own."""
    mctl("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    deploy = _get(control_plane, namespace, "deploy", "web")
    for rs in (_replicaset(deploy, 1, "nginx:1.25", "first"), _replicaset(deploy, 2, "nginx:1.27")):
        control_plane.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(rs))
    for args in (["deploy/web"], ["deploy", "web", "--revision=1"]):
        mine = mctl("-n", namespace, "rollout", "history", *args)
        theirs = control_plane.kubectl("-n", namespace, "rollout", "history", *args)
        assert mine.stdout == theirs.stdout
    assert "1         first" in mctl("-n", namespace, "rollout", "history", "deploy/web").stdout
    missing = mctl("-n", namespace, "rollout", "history", "deploy/web", "--revision=9", check=False)
    assert missing.code == 1 and "unable to find the specified revision" in missing.stderr

    assert mctl("-n", namespace, "rollout", "undo", "deploy/web", "--to-revision=2").stdout == \
        "deployment.apps/web skipped rollback (current template already matches revision 2)\n"
    assert mctl("-n", namespace, "rollout", "undo", "deploy/web").stdout == "deployment.apps/web rolled back\n"
    after = _get(control_plane, namespace, "deploy", "web")
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert "pod-template-hash" not in after["spec"]["template"]["metadata"]["labels"]
    assert after["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
    assert "kubectl.kubernetes.io/last-applied-configuration" in after["metadata"]["annotations"]

    assert mctl("-n", namespace, "rollout", "restart", "deploy/web").stdout == "deployment.apps/web restarted\n"
    restarted = _get(control_plane, namespace, "deploy", "web")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", restarted["kubectl.kubernetes.io/restartedAt"])

    assert mctl("-n", namespace, "rollout", "pause", "deploy/web").stdout == "deployment.apps/web paused\n"
    assert _get(control_plane, namespace, "deploy", "web")["spec"]["paused"] is True
    assert mctl("-n", namespace, "rollout", "restart", "deploy/web", check=False).code == 1
    assert mctl("-n", namespace, "rollout", "resume", "deploy/web").stdout == "deployment.apps/web resumed\n"
    # no controller runs here: the status is "waiting", and --watch=false returns at once
    status = mctl("-n", namespace, "rollout", "status", "deploy/web", "--watch=false")
    assert status.code == 0 and status.stdout.startswith("Waiting for deployment")
    timed_out = mctl("-n", namespace, "rollout", "status", "deploy/web", "--timeout=1", check=False)
    assert timed_out.code == 1 and "timed out" in timed_out.stderr


def test_describe_matches_kubectl(control_plane: ControlPlane, mctl, namespace: str) -> None:
    k = control_plane.kubectl
    mctl("-n", namespace, "apply", "-f", "-", input=DEPLOY)
    k("-n", namespace, "create", "configmap", "c", "--from-literal=a=1", "--from-literal=multi=x\ny")
    k("-n", namespace, "create", "secret", "generic", "s", "--from-literal=p=secret")
    k("-n", namespace, "create", "service", "clusterip", "svc", "--tcp=80:8080")
    k("-n", namespace, "run", "p", "--image=busybox", "--labels=a=b", "--env=X=1", "--port=80", "--", "sleep", "1")
    k("-n", namespace, "annotate", "pod", "p", "long=" + "x" * 200)
    k("-n", namespace, "create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace, "apiVersion": "v1",
                           "uid": _get(control_plane, namespace, "pod", "p")["metadata"]["uid"]},
        "reason": "Scheduled", "message": "Successfully assigned to testnode", "type": "Normal",
        "source": {"component": "default-scheduler"}, "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}))
    k("-n", namespace, "create", "-f", "-", input=json.dumps({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "held", "labels": {"described-by": namespace}},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}}))
    # across namespaces, but only this test's lease: other components renew theirs between the two calls
    for what in (["deploy", "web"], ["cm", "c"], ["secret", "s"], ["svc", "svc"], ["pod", "p"], ["sa", "default"],
                 ["ns", namespace], ["cm"], ["lease", "-A", "-l", f"described-by={namespace}"]):
        mine = mctl("-n", namespace, "describe", *what)
        theirs = k("-n", namespace, "describe", *what)
        assert mine.stdout == theirs.stdout, what
    assert re.search(r"^  Holder Identity:\s+me$", mine.stdout, re.M)  # the last one: the lease itself
    described = mctl("-n", namespace, "describe", "pod", "p").stdout
    assert re.search(r"Normal\s+Scheduled\s+\S+ \(x3 over \S+\)\s+default-scheduler\s+Successfully assigned", described)
    missing = mctl("-n", namespace, "describe", "pod", "zzz", check=False)
    assert missing.code == 1 and missing.stderr.strip() == 'Error from server (NotFound): pods "zzz" not found'


def test_edit_with_an_editor(control_plane: ControlPlane, mctl, namespace: str, tmp_path: Path, monkeypatch) -> None:
    mctl("-n", namespace, "create", "configmap", "ed", "--from-literal=a=1")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/a: \"1\"/a: \"2\"/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("KUBE_EDITOR", str(editor))
    assert mctl("-n", namespace, "edit", "cm", "ed").stdout == "configmap/ed edited\n"
    assert _get(control_plane, namespace, "cm", "ed")["data"] == {"a": "2"}
    monkeypatch.setenv("KUBE_EDITOR", "true")
    assert mctl("-n", namespace, "edit", "cm/ed").stdout == "Edit cancelled, no changes made.\n"
    managers = {m["manager"] for m in json.loads(control_plane.kubectl(
        "-n", namespace, "get", "cm", "ed", "-o", "json", "--show-managed-fields").stdout)["metadata"]["managedFields"]}
    assert "kubectl-edit" in managers
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nsed -i 's/name: ed/name: other/' \"$1\"\n")
    bad.chmod(bad.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("KUBE_EDITOR", str(bad))
    r = mctl("-n", namespace, "edit", "cm", "ed", check=False)
    assert r.code == 1 and "A copy of your changes has been stored" in r.stderr


def test_forbidden_user_sees_the_servers_message(control_plane: ControlPlane, mctl, tmp_path: Path) -> None:
    cert, key = issue_client_cert(control_plane.pki, "mctl-nobody", "mctl-nobody")
    kc = write_kubeconfig(tmp_path / "nobody.kubeconfig", server=control_plane.url, ca_cert=control_plane.pki.ca_cert,
                          user="mctl-nobody", client_cert=cert, client_key=key)
    mine = mctl("get", "pods", "-n", "default", kubeconfig=kc, check=False)
    theirs = control_plane.kubectl("--kubeconfig", str(kc), "get", "pods", "-n", "default", check=False)
    assert mine.code == theirs.returncode == 1
    assert mine.stderr.strip() == theirs.stderr.strip()
    assert mine.stderr.startswith('Error from server (Forbidden): pods is forbidden: User "mctl-nobody"')


def test_logs_and_exec_report_the_servers_answer_without_a_kubelet(control_plane: ControlPlane, mctl, namespace: str) -> None:
    """No kubelet runs in this cluster: the request reaches the apiserver, whose answer is printed."""
    control_plane.kubectl("-n", namespace, "run", "p", "--image=busybox", "--", "sleep", "1")
    # logs of a pod no node runs yet: nothing, and no error (upstream's 204)
    logs = mctl("-n", namespace, "logs", "p", check=False)
    theirs = control_plane.kubectl("-n", namespace, "logs", "p", check=False)
    assert (logs.code, logs.stdout, logs.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr) == (0, "", "")
    ex = mctl("-n", namespace, "exec", "p", "--", "ls", check=False)
    k_ex = control_plane.kubectl("-n", namespace, "exec", "p", "--", "ls", check=False)
    assert ex.code == 1 and k_ex.returncode == 1
    # kubectl says "error: unable to upgrade connection: <message>"; we print the server's Status
    message = k_ex.stderr.strip().removeprefix("error: unable to upgrade connection: ")
    assert message in ex.stderr
    missing = mctl("-n", namespace, "logs", "nope", check=False)
    assert missing.code == 1 and missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_top_without_metrics(control_plane: ControlPlane, mctl) -> None:
    # no kubelet to scrape: the same answers as kubectl's
    for args in (["top", "nodes"], ["top", "node"], ["-n", "kube-public", "top", "pods"], ["top", "pod", "-A"]):
        r = mctl(*args, check=False)
        k = control_plane.kubectl(*args, check=False)
        # pods older than two minutes are named with their age, which moves between the two calls
        assert (r.code, r.stderr.split(", age:")[0]) == (k.returncode, k.stderr.split(", age:")[0]), args
    assert mctl("top", "node", check=False).stderr.strip() == "error: metrics not available yet"


def test_discovery_verbs_match_kubectl(control_plane: ControlPlane, mctl) -> None:
    for args in (["api-resources"], ["api-resources", "-o", "wide"], ["api-resources", "--namespaced=false"],
                 ["api-resources", "--api-group=apps", "-o", "name"], ["api-versions"]):
        assert mctl(*args).stdout == control_plane.kubectl(*args).stdout, args
    version = json.loads(mctl("version", "-o", "json").stdout)
    assert version["serverVersion"] == json.loads(control_plane.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert "serverVersion" not in json.loads(mctl("version", "--client", "-o", "json").stdout)


def test_config_verbs(control_plane: ControlPlane, mctl, tmp_path: Path) -> None:
    kc = tmp_path / "copy.kubeconfig"
    doc = yaml.safe_load(control_plane.kubeconfig.read_text())
    doc["contexts"].append({"name": "second", "context": {"cluster": doc["clusters"][0]["name"],
                                                         "user": doc["users"][0]["name"], "namespace": "kube-system"}})
    kc.write_text(yaml.safe_dump(doc))
    for args in (["config", "view"], ["config", "view", "--minify"], ["config", "get-contexts"],
                 ["config", "current-context"]):
        mine = mctl(*args, kubeconfig=kc)
        theirs = control_plane.kubectl("--kubeconfig", str(kc), *args)
        assert yaml.safe_load(mine.stdout) == yaml.safe_load(theirs.stdout) if "view" in args else \
            mine.stdout == theirs.stdout, args
    assert mctl("config", "use-context", "second", kubeconfig=kc).stdout == 'Switched to context "second".\n'
    assert yaml.safe_load(kc.read_text())["current-context"] == "second"
    # the context's namespace is now the default one
    assert "kube-root-ca.crt" in mctl("get", "cm", kubeconfig=kc).stdout
    assert mctl("get", "cm", "--context", doc["current-context"], "-n", "default", kubeconfig=kc).code == 0
    mctl("config", "set-context", "--current", "--namespace=default", kubeconfig=kc)
    assert yaml.safe_load(kc.read_text())["contexts"][1]["context"]["namespace"] == "default"
    raw = yaml.safe_load(mctl("config", "view", "--raw", kubeconfig=kc).stdout)
    assert raw["users"][0]["user"]["client-key-data"] == doc["users"][0]["user"]["client-key-data"]
    bad = mctl("config", "use-context", "nope", kubeconfig=kc, check=False)
    assert bad.code == 1 and 'no context exists with the name: "nope"' in bad.stderr


def test_flags_before_and_after_the_verb(control_plane: ControlPlane, mctl_process, namespace: str) -> None:
    before = mctl_process("-n", namespace, "get", "cm")
    after = mctl_process("get", "cm", "-n", namespace)
    assert before.returncode == after.returncode == 0
    assert before.stdout.split()[:4] == after.stdout.split()[:4] == ["NAME", "DATA", "AGE", "kube-root-ca.crt"]
    no_config = mctl_process("--kubeconfig", "/nonexistent/kubeconfig", "get", "pods")
    assert no_config.returncode == 1 and no_config.stderr.startswith("error:")


def test_help_everywhere_has_examples(mctl) -> None:
    from minictl.__main__ import cli

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            if name == "cluster":
                continue
            yield [*prefix, name], cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, [*prefix, name])

    for path, cmd in walk(cli, []):
        out = mctl(*path, "--help").stdout
        assert out.startswith("Usage:"), path
        if not hasattr(cmd, "commands") or path[-1] in ("create",):
            assert "Example" in out, path


def test_completion(mctl, control_plane: ControlPlane, cache_dir: Path, namespace: str) -> None:
    script = mctl("completion", "bash").stdout
    assert "_MINICTL_COMPLETE" in script and "complete " in script
    assert "compdef" in mctl("completion", "zsh").stdout
    from click.testing import CliRunner

    from minictl.__main__ import cli

    control_plane.kubectl("-n", namespace, "create", "configmap", "completeme")

    def complete(words: str) -> list[str]:
        env = {"_MINICTL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1
                                                                                               + words.endswith(" ")),
               "MINIK8S_CACHE_DIR": str(cache_dir), "KUBECONFIG": str(control_plane.kubeconfig)}
        r = CliRunner().invoke(cli, [], env=env, prog_name="minictl")
        return [line.split(",", 1)[1] for line in r.stdout.splitlines() if "," in line]

    assert "deployments" in complete("minictl get dep")
    assert "completeme" in complete(f"minictl get -n {namespace} configmaps comp")


def test_minik8s_extras(mctl, tmp_path: Path) -> None:
    # a malformed token is refused before anything is fetched
    join = mctl("node", "join", "https://127.0.0.1:1", "--token", "abc.def", "--discovery-token-ca-cert-hash",
                "sha256:" + "0" * 64, "--data-dir", str(tmp_path / "node"), check=False)
    assert join.code == 1 and join.stderr.strip() == (
        "error: discovery failed: the bootstrap token 'abc.def' is not of the form [a-z0-9]{6}.[a-z0-9]{16}")
    data = tmp_path / "cluster"
    cfg = ClusterConfig(str(data), apiserver_port=7443, node_name="n1")
    cfg.save()
    pki = ensure_pki(data / "pki", node_names=["n1"])
    shown = mctl("certs", "show", "--data-dir", str(data)).stdout
    assert re.search(r"^apiserver\s+kube-apiserver\s", shown, re.M)
    assert re.search(r"^admin\s+kubernetes-admin\s+system:masters\s", shown, re.M)
    before = pki.cert("admin").read_bytes()
    rotated = mctl("certs", "rotate", "admin", "--data-dir", str(data))
    assert "admin certificate renewed" in rotated.stdout
    assert pki.cert("admin").read_bytes() != before
    admin_kc = yaml.safe_load(cfg.admin_kubeconfig.read_text())
    assert admin_kc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"
    import base64

    assert base64.b64decode(admin_kc["users"][0]["user"]["client-certificate-data"]) == pki.cert("admin").read_bytes()
    assert oct(os.stat(cfg.admin_kubeconfig).st_mode & 0o777) == "0o600"
    no_pki = mctl("certs", "show", "--data-dir", str(tmp_path / "none"), check=False)
    assert no_pki.code == 1 and "no cluster PKI" in no_pki.stderr
    no_socket = mctl("image", "load", str(data / "cluster.json"), "--data-dir", str(data), check=False)
    assert no_socket.code == 1 and "no containerd socket" in no_socket.stderr


@pytest.mark.parametrize("args", [["get"], ["scale", "deploy/x"], ["exec", "p"], ["logs"]])
def test_usage_errors_exit_non_zero(mctl, args: list[str]) -> None:
    assert mctl(*args, check=False).code != 0
