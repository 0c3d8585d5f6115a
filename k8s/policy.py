"""What wasmpipe needs of its rendered manifests, beyond schema validity.

Usage: policy.py NAME RENDERED.yaml -- exits non-zero naming each breach.
"""

import base64
import re
import sys

import yaml

CONFIGMAP_LIMIT = 1 << 20


def main(name, path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    problems = []

    def need(ok, what):
        if not ok:
            problems.append(what)

    deployments = by_kind.get("Deployment", [])
    need(len(deployments) == 1, "exactly one Deployment")
    dep = deployments[0]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    need(spec.get("replicas", 0) >= 1, "replicas set (equal to the partition count)")
    rolling = spec.get("strategy", {}).get("rollingUpdate", {})
    need(rolling.get("maxSurge") == 0, "rolling update maxSurge: 0")
    need(rolling.get("maxUnavailable") == 1, "rolling update maxUnavailable: 1")
    need(spec["selector"]["matchLabels"].items() <= labels.items(), "the selector matches the pod")

    psc = pod.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "RuntimeDefault seccomp")
    settings = {}
    for cm in by_kind.get("ConfigMap", []):
        if cm["metadata"]["name"].startswith("wasmpipe-settings"):
            settings = cm.get("data", {})
    grace = int(re.fullmatch(r"(\d+)s", settings.get("WASMPIPE_SHUTDOWN_GRACE", "20s")).group(1))
    need(pod.get("terminationGracePeriodSeconds", 30) >= grace + 10,
         "terminationGracePeriodSeconds above the drain (--shutdown-grace + 10 s)")

    (container,) = pod["containers"]
    sc = container.get("securityContext", {})
    need(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    need(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    need(sc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped")
    res = container.get("resources", {})
    need(res.get("requests", {}).get("memory") == res.get("limits", {}).get("memory") is not None,
         "memory requests equal limits")
    for probe, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")]:
        need(container.get(probe, {}).get("httpGet", {}).get("path") == path, f"{probe} on {path}")
    for m in container.get("volumeMounts", []):
        need("subPath" not in m, f"no subPath mount ({m['name']}): it never updates")
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    need(env.get("WASMPIPE_CACHE_DIR") == mounts.get("cache", {}).get("mountPath")
         and "emptyDir" in volumes.get("cache", {}), "the compile cache on an emptyDir")
    need(env.get("WASMPIPE_STATE_DIR") == mounts.get("state", {}).get("mountPath")
         and "emptyDir" in volumes.get("state", {}), "plugin state on an emptyDir")

    # The plugin ConfigMap: binaryData, no name hash, fits.
    plugins = [cm for cm in by_kind.get("ConfigMap", []) if cm["metadata"]["name"] == "wasmpipe-plugins"]
    need(len(plugins) == 1, "a ConfigMap named exactly wasmpipe-plugins (no name hash)")
    if plugins:
        cm = plugins[0]
        binary = cm.get("binaryData", {})
        need(any(k.endswith((".wasm", ".wasm.gz", ".wasm.zst")) for k in binary), "plugins in binaryData")
        need("pipeline.yaml" in cm.get("data", {}), "pipeline.yaml in data")
        size = sum(len(base64.b64decode(v)) for v in binary.values()) + sum(
            len(v.encode()) for v in cm.get("data", {}).values())
        need(size <= CONFIGMAP_LIMIT, f"the plugin ConfigMap fits 1 MiB ({size} bytes)")

    watched = env.get("WASMPIPE_WATCH_CONFIGMAP")
    if watched:
        need(watched == "wasmpipe-plugins", "--watch-configmap names the plugin ConfigMap")
        need("emptyDir" in volumes.get("plugins", {}), "the mirror is an emptyDir")
        need(pod.get("automountServiceAccountToken") is True, "a token to watch with")
        roles = by_kind.get("Role", [])
        rules = [r for role in roles for r in role["rules"]]
        need(rules == [{"apiGroups": [""], "resources": ["configmaps"],
                        "resourceNames": ["wasmpipe-plugins"], "verbs": ["get", "list", "watch"]}],
             "RBAC: get, list, watch on the plugin ConfigMap, nothing else")
    else:
        need(volumes.get("plugins", {}).get("configMap", {}).get("name") == "wasmpipe-plugins",
             "the plugin ConfigMap mounted as a directory")
        need(mounts.get("plugins", {}).get("readOnly") is True, "the plugin mount read-only")
        need(not by_kind.get("Role") and not by_kind.get("ClusterRole"), "no RBAC without --watch-configmap")
        need(pod.get("automountServiceAccountToken") is False, "no API token without --watch-configmap")

    secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
    for ref in container.get("envFrom", []):
        if "secretRef" in ref:
            need(ref["secretRef"]["name"] in secrets, f"Secret {ref['secretRef']['name']} rendered")
    if settings.get("WASMPIPE_AWS_MSK_IAM") == "true":
        # MSK IAM: the pod's AWS role signs; there is no password to keep.
        accounts = {a["metadata"]["name"]: a for a in by_kind.get("ServiceAccount", [])}
        account = accounts.get(pod.get("serviceAccountName"), {})
        need("eks.amazonaws.com/role-arn" in account.get("metadata", {}).get("annotations", {}),
             "an IAM role on the service account (IRSA) for MSK IAM")
        need(not by_kind.get("Secret"), "no Kafka Secret with MSK IAM")
        need(":9098" in settings.get("WASMPIPE_BROKERS", ""), "MSK's IAM port 9098")
    elif not settings.get("WASMPIPE_KAFKA_SECURITY_PROTOCOL"):
        # Plaintext, without credentials: only the local single-node
        # cluster's broker on the node (tests/k8s/cluster) is reached so.
        need(name == "local", "a Kafka security protocol (plaintext is for overlays/local only)")
    else:
        need(any(k in ("WASMPIPE_KAFKA_SASL_PASSWORD",) for s in by_kind.get("Secret", [])
                 for k in s.get("data", {})), "Kafka credentials in a Secret, not in the ConfigMap")
    need(not any("PASSWORD" in k or "SECRET" in k for k in settings), "no credential in the settings ConfigMap")
    need(bool(settings.get("WASMPIPE_BROKERS")), "brokers set")

    for kind in ("Service", "PodDisruptionBudget"):
        for obj in by_kind.get(kind, []):
            sel = obj["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            need(sel.items() <= labels.items() and sel, f"the {kind} selects the pods")
    need(by_kind.get("PodDisruptionBudget"), "a PodDisruptionBudget")
    need(by_kind.get("Service"), "a Service for the metrics")

    for p in problems:
        print(f"k8s/check: {name}: missing {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
