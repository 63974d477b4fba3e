# Kubernetes manifests (docs/kubernetes.md). The checks are offline: kustomize build of every overlay, strict schema
# validation (Kubernetes' schemas from kubernetes-validate, the CRDs' from ../shared/k8s-crds), the policies, and
# hadolint on the Dockerfile, and the Iceberg catalog options the cluster settings give. They are unit tests, so
# `make test` and `make unit` run them too.
.PHONY: k8s-render k8s-check
k8s-render: python
	@$(CLI) k8s render

k8s-check: python
	@$(CLI) k8s render --check
	@$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_k8s_manifests.py tests/unit/test_k8s_checks.py tests/unit/test_iceberg_catalog.py
