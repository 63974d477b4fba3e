"""A small Kubernetes API for FlinkDeployments on 127.0.0.1, with a stand-in for the Flink operator.

It serves what the Airflow provider's operator and hook call — cluster-wide LIST, namespaced GET, POST
(409 on an existing name) and merge PATCH — keeps ``metadata.generation`` like the API server (bumped by a
spec change), and reconciles like the operator, one step per read: a new generation is first observed as
DEPLOYED/RECONCILING (an upgrade as UPGRADING), then runs (RUNNING/STABLE), or for a bounded job FINISHED.
Every request is recorded so tests can assert what was sent.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/apis/flink.apache.org/v1beta1"
NAMESPACED = re.compile(rf"^{PREFIX}/namespaces/([^/]+)/flinkdeployments(?:/([^/?]+))?$")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKubernetes:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        }))
        return path

    def __enter__(self) -> "FakeKubernetes":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str) -> list[tuple[str, Any]]:
        return [(path, body) for m, path, body in self.requests if m == method]

    def _reconcile(self, obj: dict[str, Any]) -> None:
        """One step of the operator: observe a new generation, then run it (or finish a bounded job)."""
        status = obj.setdefault("status", {})
        generation = obj["metadata"]["generation"]
        if status.get("observedGeneration") != generation:
            upgrading = "observedGeneration" in status
            status.update({"observedGeneration": generation, "lifecycleState": "UPGRADING" if upgrading else "DEPLOYED",
                           "jobStatus": {"state": "RECONCILING"}})
        elif "--bounded" in obj["spec"].get("job", {}).get("args", []):
            status.update({"lifecycleState": "STABLE", "jobStatus": {"state": "FINISHED"}})
        else:
            status.update({"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING"}})

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code})

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _route(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                body = self._body() if method in ("POST", "PATCH") else None
                with fake.lock:
                    fake.requests.append((method, path, body))
                    if method == "GET" and path == f"{PREFIX}/flinkdeployments":
                        return self._send(200, {"apiVersion": "flink.apache.org/v1beta1", "kind": "FlinkDeploymentList", "metadata": {},
                                                "items": list(fake.objects.values())})
                    match = NAMESPACED.match(path)
                    if not match:
                        return self._status(404, "NotFound", f"no route {method} {path}")
                    namespace, name = match.groups()
                    key = (namespace, name or (body or {}).get("metadata", {}).get("name", ""))
                    obj = fake.objects.get(key)
                    if method == "POST" and name is None:
                        if obj is not None:
                            return self._status(409, "AlreadyExists", f'flinkdeployments.flink.apache.org "{key[1]}" already exists')
                        created = copy.deepcopy(body)
                        created["metadata"].update({"namespace": namespace, "generation": 1, "resourceVersion": "1", "uid": f"uid-{key[1]}"})
                        fake.objects[key] = created
                        return self._send(201, created)
                    if obj is None:
                        return self._status(404, "NotFound", f'flinkdeployments.flink.apache.org "{key[1]}" not found')
                    if method == "GET":
                        fake._reconcile(obj)
                        return self._send(200, obj)
                    if method == "PATCH":
                        patched = merge_patch(obj, body)
                        if patched.get("spec") != obj.get("spec"):
                            patched["metadata"]["generation"] = obj["metadata"]["generation"] + 1
                        fake.objects[key] = patched
                        return self._send(200, patched)
                    if method == "DELETE":
                        del fake.objects[key]
                        return self._send(200, {"kind": "Status", "status": "Success"})
                    return self._status(405, "MethodNotAllowed", method)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        return Handler
