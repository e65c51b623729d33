"""Checks deploy/k8s (run by scripts/validate-k8s.sh, in the venv that has
kubernetes-validate): argument, the Kubernetes version to validate against.

1. Every kustomization lists every manifest beside it (as a resource or a patch), and
   everything it lists exists.
2. Every resource file validates strictly against the version's schemas (unknown
   fields, wrong types and missing required fields are errors, and so is a kind the
   schemas do not know).
3. The pieces agree: the nodes file names the StatefulSet's pods, in ordinal order, by
   their stable DNS names (pod.service.namespace.svc.cluster.local), one per replica;
   the headless service is the StatefulSet's; the Service and the PodDisruptionBudget
   select its pods; every ConfigMap key the pod mounts exists, event scripts mounted
   executable; the overlay's namespace is the base's; its copy of the interface event
   script is deploy/events' one.
4. Where `kubectl` or `kustomize` is installed, each kustomization is rendered and every
   rendered resource validates too (this covers the overlay's patch). Without one, the
   per-file checks above stand alone and this is said.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import yaml
from kubernetes_validate import utils as kv

K8S = "deploy/k8s"
ROOTS = [K8S, f"{K8S}/public-addresses"]  # what a user applies with -k
errors = []


def error(msg):
    errors.append(msg)
    print(f"ERROR {msg}")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validate(doc, where, version):
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        error(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")
        return 0
    except kv.SchemaNotFoundError:
        error(f"{where}: no schema for {doc.get('apiVersion')} {doc.get('kind')}")
        return 0
    return 1


def kustomization_dirs():
    for top, _, files in os.walk(K8S):
        if "kustomization.yaml" in files:
            yield top


def check_listing(d):
    """Returns the resource files of kustomization dir d (patches and dirs aside)."""
    k = load(f"{d}/kustomization.yaml")[0]
    listed_resources = k.get("resources", [])
    listed_patches = [p["path"] for p in k.get("patches", []) if "path" in p]
    for entry in listed_resources + listed_patches:
        target = os.path.normpath(f"{d}/{entry}")
        if os.path.isdir(target):
            if not os.path.exists(f"{target}/kustomization.yaml"):
                error(f"{d}/kustomization.yaml: {entry} has no kustomization.yaml")
        elif not os.path.isfile(target):
            error(f"{d}/kustomization.yaml lists {entry}, which does not exist")
    beside = sorted(
        f for f in os.listdir(d) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml"
    )
    for f in beside:
        if f not in listed_resources + listed_patches:
            error(f"{d}/{f} is not listed in {d}/kustomization.yaml")
    return [f"{d}/{f}" for f in listed_resources if os.path.isfile(f"{d}/{f}")]


def check_agreement():
    base = f"{K8S}/base"
    namespace = load(f"{base}/kustomization.yaml")[0].get("namespace")
    docs = [doc for f in sorted(os.listdir(base)) if f != "kustomization.yaml"
            for doc in load(f"{base}/{f}")]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    (sts,) = by_kind["StatefulSet"]
    (svc,) = by_kind["Service"]
    (pdb,) = by_kind["PodDisruptionBudget"]
    name, spec = sts["metadata"]["name"], sts["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    if svc["metadata"]["name"] != spec["serviceName"] or svc["spec"].get("clusterIP") != "None":
        error(f"the StatefulSet's serviceName {spec['serviceName']} is not the headless Service")
    for what, selector in [("Service", svc["spec"]["selector"]),
                           ("PodDisruptionBudget", pdb["spec"]["selector"]["matchLabels"]),
                           ("StatefulSet", spec["selector"]["matchLabels"])]:
        if any(pod_labels.get(k) != v for k, v in selector.items()):
            error(f"the {what}'s selector {selector} does not select the pods {pod_labels}")

    configmaps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    overlay = f"{K8S}/public-addresses"
    for f in os.listdir(overlay):
        for doc in load(f"{overlay}/{f}"):
            if doc.get("kind") == "ConfigMap":
                configmaps[doc["metadata"]["name"]] = doc
    nodes = configmaps["ctdb-config"]["data"]["nodes"].split()
    want = [f"{name}-{i}.{spec['serviceName']}.{namespace}.svc.cluster.local"
            for i in range(spec["replicas"])]
    if nodes != want:
        error(f"the nodes file lists {nodes}; the StatefulSet's pods are {want}")
    for volume in spec["template"]["spec"]["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            cm = source.get("configMap")
            if not cm:
                continue
            data = configmaps.get(cm["name"], {}).get("data")
            if data is None:
                error(f"volume {volume['name']} mounts ConfigMap {cm['name']}, defined nowhere")
                continue
            for item in cm.get("items", []):
                if item["key"] not in data:
                    error(f"volume {volume['name']}: ConfigMap {cm['name']} has no {item['key']}")
                # eventd runs only the executable scripts of the events directory.
                if item["path"].startswith("events/") and not item.get("mode", 0) & 0o100:
                    error(f"volume {volume['name']}: {item['path']} is not executable")

    overlay_ns = load(f"{overlay}/kustomization.yaml")[0].get("namespace")
    if overlay_ns != namespace:
        error(f"{overlay}'s namespace {overlay_ns} is not the base's {namespace}")
    with open("deploy/events/legacy/10.interface.script") as f:
        if configmaps["ctdb-public-addresses"]["data"]["10.interface.script"] != f.read():
            error(f"{overlay}/configmap.yaml's 10.interface.script is not "
                  "deploy/events/legacy/10.interface.script")


def render(root):
    """The rendered resources of kustomization root, or None without a renderer."""
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build", root]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", root]
    else:
        return None
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        error(f"{' '.join(cmd)}: {out.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def main():
    version = sys.argv[1]
    files = [f for d in kustomization_dirs() for f in check_listing(d)]
    valid = sum(validate(doc, f, version) for f in files for doc in load(f))
    print(f"k8s: {valid} resources in {len(files)} files valid against Kubernetes {version}")
    check_agreement()
    for root in ROOTS:
        docs = render(root)
        if docs is None:
            print("k8s: neither kustomize nor kubectl is installed: the kustomizations "
                  "were not rendered (the files were checked one by one)")
            break
        valid = sum(validate(doc, f"{root} (rendered)", version) for doc in docs)
        print(f"k8s: {root} renders {len(docs)} resources, {valid} valid")
    if errors:
        print(f"k8s: {len(errors)} errors")
        sys.exit(1)


if __name__ == "__main__":
    main()
