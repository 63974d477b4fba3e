"""Offline checks of the Kubernetes manifests: kustomize build, strict schema validation, policies, hadolint.

No cluster is needed. Core kinds are validated against the Kubernetes JSON Schemas bundled by PyPI
`kubernetes-validate` (its ``-strict`` variant: unknown fields are errors); custom resources against the
``openAPIV3Schema`` of the CRDs in ``../shared/k8s-crds/``, made strict the way kubeconform's ``-strict`` does it:
every object schema that lists its properties and does not say otherwise (``additionalProperties``,
``x-kubernetes-preserve-unknown-fields``) rejects other fields. A kind with no schema at all is an error, never a
silent pass.

``python -m tests.k8s.validate [DIR_OR_FILE ...]`` prints every problem and exits 1 if there is one
(default: every overlay); `make k8s-check` runs the pytest tests built on the same functions.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import kubernetes_validate
import referencing
import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p for p in (ROOT / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
DOCKERFILE = ROOT / "k8s" / "image" / "Dockerfile"
#: CI lays shared/ beside the clone; the CRDs are data there, never copied into the project.
CRD_DIR = ROOT.parent / "shared" / "k8s-crds"
KUBERNETES_VERSION = "1.32"  # the oldest Kubernetes the manifests promise to run on (docs/kubernetes.md)
K8S_SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}.0-local-strict"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are megabytes of YAML

_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|(^|_)KEY($|_)", re.IGNORECASE)
_SECRET_CONFIG = re.compile(r"password|secret|access-key|token", re.IGNORECASE)


class ManifestError(Exception):
    pass


# -- building -------------------------------------------------------------------------------------------------


def kubectl() -> str | None:
    return shutil.which("kubectl")


def build(path: Path) -> list[dict]:
    """``kubectl kustomize`` of a kustomization folder (kubectl bundles kustomize), or a plain YAML file's documents."""
    if path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        exe = kubectl()
        if exe is None:
            raise ManifestError("kubectl not found on PATH: it builds the kustomizations (kubectl >= 1.27 bundles kustomize 5)")
        proc = subprocess.run([exe, "kustomize", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ManifestError(f"kustomize build of {path} failed: {proc.stderr.strip()}")
        text = proc.stdout
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def name_of(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# -- schemas ---------------------------------------------------------------------------------------------------


def strict_schema(schema: Any) -> Any:
    """An OpenAPI v3 CRD schema as a strict JSON Schema (what kubeconform's openapi2jsonschema does with -strict)."""
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_schema(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@cache
def crd_validators(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> validator for every served version of every CRD under ``crd_dir``."""
    validators = {}
    for path in sorted(crd_dir.rglob("*.y*ml")):
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_LOADER):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # apiVersion, kind and metadata are validated by the API server itself; keep them from failing strictness.
                schema.setdefault("properties", {}).update({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


@cache
def _k8s_registry() -> referencing.Registry:
    return referencing.Resource.from_contents(json.loads((K8S_SCHEMAS / "_definitions.json").read_text(encoding="utf-8"))) @ referencing.Registry()


@cache
def k8s_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    """The strict schema of a core kind, as `kubernetes-validate` lays them out (``<kind>-<group>-<version>.json``),
    loaded once per kind: `kubernetes_validate.validate` re-reads the shared definitions for every object."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = K8S_SCHEMAS / f"{kind.lower()}-{group_version}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text(encoding="utf-8"))
    registry = referencing.Resource.from_contents(schema) @ _k8s_registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict, crd_dir: Path = CRD_DIR) -> list[str]:
    """Strict schema validation of one object: Kubernetes' own schema, else its CRD's; no schema is an error."""
    where, api_version, kind = name_of(obj), obj.get("apiVersion", ""), obj.get("kind", "")
    validator = crd_validators(crd_dir).get((api_version, kind)) or k8s_validator(api_version, kind)
    if validator is None:
        return [f"{where}: no schema for {api_version} {kind} (neither Kubernetes {KUBERNETES_VERSION} nor a CRD in {crd_dir})"]
    return [f"{where}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(obj)]


# -- policies --------------------------------------------------------------------------------------------------


def pod_specs(obj: dict) -> Iterator[tuple[str, dict]]:
    """Every pod spec inside an object: Pods, workload templates, Jobs, CronJobs, FlinkDeployment pod templates."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        yield "spec", spec
    elif kind == "CronJob":
        yield "spec.jobTemplate.spec.template.spec", spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif kind == "FlinkDeployment":
        yield "spec.podTemplate.spec", spec.get("podTemplate", {}).get("spec", {})
    elif "template" in spec and isinstance(spec["template"], dict) and "spec" in spec["template"]:
        yield "spec.template.spec", spec["template"]["spec"]


def images(obj: dict) -> Iterator[tuple[str, str]]:
    for where, pod in pod_specs(obj):
        for group in ("initContainers", "containers"):
            for c in pod.get(group) or []:
                if "image" in c:
                    yield f"{where}.{group}[{c.get('name')}]", c["image"]
    if obj.get("kind") == "FlinkDeployment":
        yield "spec.image", obj.get("spec", {}).get("image", "")


def _limits_set(resources: dict | None, *keys: str) -> bool:
    return all(k in ((resources or {}).get("limits") or {}) for k in keys)


def policy_violations(obj: dict) -> list[str]:
    """No latest tags, no privilege, limits on every container, no inline secrets, every workload non-root."""
    where, kind, spec = name_of(obj), obj.get("kind"), obj.get("spec") or {}
    found: list[str] = []

    for path, image in images(obj):
        name = image.rsplit("/", 1)[-1]
        if "@" not in name and (":" not in name or name.endswith(":latest")):
            found.append(f"{where}: {path}: image {image!r} has no pinned tag (latest or none)")

    for path, pod in pod_specs(obj):
        pod_sec = pod.get("securityContext") or {}
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            found.append(f"{where}: {path}: uses the host's network/PID/IPC namespace")
        if pod_sec.get("runAsUser") == 0:
            found.append(f"{where}: {path}: runs as root (runAsUser 0)")
        for group in ("initContainers", "containers"):
            for c in pod.get(group) or []:
                cpath, sec = f"{path}.{group}[{c.get('name')}]", c.get("securityContext") or {}
                if sec.get("privileged"):
                    found.append(f"{where}: {cpath}: privileged container")
                if sec.get("allowPrivilegeEscalation", True):
                    found.append(f"{where}: {cpath}: allowPrivilegeEscalation is not false")
                if sec.get("runAsUser") == 0:
                    found.append(f"{where}: {cpath}: runs as root (runAsUser 0)")
                if not (sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot"))):
                    found.append(f"{where}: {cpath}: runAsNonRoot is not set (pod or container)")
                # The operator sizes Flink's main container from spec.jobManager/taskManager.resource.
                sized_by_operator = kind == "FlinkDeployment" and c.get("name") == "flink-main-container"
                if not sized_by_operator and not _limits_set(c.get("resources"), "cpu", "memory"):
                    found.append(f"{where}: {cpath}: no cpu and memory limits")
                for env in c.get("env") or []:
                    if "value" in env and _SECRET_NAME.search(env["name"]) and env.get("value"):
                        found.append(f"{where}: {cpath}: env {env['name']} has an inline value; use valueFrom.secretKeyRef")

    if kind == "FlinkDeployment":
        for role in ("jobManager", "taskManager"):
            resource = (spec.get(role) or {}).get("resource") or {}
            if not ("cpu" in resource and "memory" in resource):
                found.append(f"{where}: spec.{role}.resource needs cpu and memory (they become the container's limits)")
        for key in spec.get("flinkConfiguration") or {}:
            if _SECRET_CONFIG.search(key):
                found.append(f"{where}: spec.flinkConfiguration.{key}: secret in the manifest; use the pods' environment from a Secret")
    if kind == "KafkaNodePool" and not _limits_set(spec.get("resources"), "cpu", "memory"):
        found.append(f"{where}: spec.resources: no cpu and memory limits")
    if kind == "Kafka":
        kafka_pod = ((spec.get("kafka") or {}).get("template") or {}).get("pod") or {}
        if not (kafka_pod.get("securityContext") or {}).get("runAsNonRoot"):
            found.append(f"{where}: spec.kafka.template.pod.securityContext.runAsNonRoot is not true")
        for operator, body in ((spec.get("entityOperator") or {})).items():
            if operator.endswith("Operator") and not _limits_set((body or {}).get("resources"), "cpu", "memory"):
                found.append(f"{where}: spec.entityOperator.{operator}.resources: no cpu and memory limits")
    if kind == "Secret" and (obj.get("data") or obj.get("stringData")):
        found.append(f"{where}: a Secret with values in the manifests; create it out of band (docs/kubernetes.md)")
    if kind == "ConfigMap":
        for key, value in (obj.get("data") or {}).items():
            if _SECRET_NAME.search(key) and not key.endswith(("_FILE", "_PATH")) and value:
                found.append(f"{where}: data.{key}: a secret in a ConfigMap; use a Secret reference")
    return found


# -- everything ------------------------------------------------------------------------------------------------


def problems(objects: list[dict], crd_dir: Path = CRD_DIR) -> list[str]:
    return [p for obj in objects for p in (*schema_errors(obj, crd_dir), *policy_violations(obj))]


def hadolint(dockerfile: Path = DOCKERFILE) -> tuple[int, str]:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([exe, "--no-color", str(dockerfile)], capture_output=True, text=True)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def main(argv: list[str]) -> int:
    if not CRD_DIR.is_dir():
        print(f"CRD schemas not found at {CRD_DIR}: custom resources cannot be validated", file=sys.stderr)
        return 2
    targets = [Path(a) for a in argv] or OVERLAYS
    failed = False
    for target in targets:
        objects = build(target)
        found = problems(objects)
        failed |= bool(found)
        print(f"{target}: {len(objects)} objects, {len(found)} problems")
        for line in found:
            print(f"  {line}")
    code, out = hadolint()
    print(f"hadolint {DOCKERFILE.relative_to(ROOT)}: {'ok' if code == 0 else out}")
    return 1 if failed or code else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
