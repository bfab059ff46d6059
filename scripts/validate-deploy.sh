#!/usr/bin/env bash
# Validates the deployment files: deploy/k8s/*.yaml against Kubernetes' own schemas
# (kubernetes-validate --strict, from PyPI), docker-compose.yml against the Compose
# Specification's JSON schema (deploy/schema/compose-spec.json, from compose-spec/compose-spec),
# and the rules a schema cannot state (deploy/check/check_deploy.py). Each check is also shown
# to fail on a copy broken on purpose, so a green run means something.
# Installs its tools into a virtual environment of the project's own (.data/venvs).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
venv="${ORDERS_DATA_DIR:-$repo/.data}/venvs/deploy-check"
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/python" -c 'import jsonschema, yaml' 2>/dev/null; then
  echo "==> installing kubernetes-validate, jsonschema and PyYAML into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet 'kubernetes-validate>=1.30' 'jsonschema>=4' 'PyYAML>=6'
fi
kv="$venv/bin/kubernetes-validate"
py="$venv/bin/python"

echo "==> Kubernetes manifests (kubernetes-validate --strict, Kubernetes $("$kv" --version))"
"$kv" --strict --quiet deploy/k8s/*.yaml

# kubernetes-validate itself must refuse a manifest with a field Kubernetes does not know.
broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
sed 's/^  replicas: 3$/  replicas: 3\n  replicaz: 3/' deploy/k8s/order-service.yaml >"$broken"
grep -q replicaz "$broken"
if "$kv" --strict --quiet "$broken" >/dev/null 2>&1; then
  echo "kubernetes-validate accepted a Deployment with an unknown field: the check cannot fail" >&2
  exit 1
fi
echo "kubernetes-validate refuses a manifest broken on purpose"

echo "==> docker-compose.yml and the rules of deploy/check/check_deploy.py"
"$py" -W ignore deploy/check/check_deploy.py
"$py" -W ignore deploy/check/check_deploy.py --self-test
