#!/usr/bin/env python3
"""Checks the deployment files beyond their schemas, and that the checks can fail.

    check_deploy.py            docker-compose.yml against the Compose Specification's schema,
                               plus the rules below, for compose and deploy/k8s/*.yaml
    check_deploy.py --self-test  each rule run on a copy broken on purpose must fail

Kubernetes' own schemas are checked by kubernetes-validate (scripts/validate-deploy.sh); the
rules here are the ones a schema cannot state: every service has a health check and waits for
what it needs to be healthy, every workload has probes and a memory limit and a disruption
budget, and the proxy's admin listener is not reachable from outside the cluster.
"""
import copy
import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "deploy" / "schema" / "compose-spec.json"
K8S = ROOT / "deploy" / "k8s"
# Our services, each with the port its health endpoint answers on inside the container.
APP_SERVICES = {"order-service", "sap-mock", "sap-sync", "proxy"}
ADMIN_PORT = 9080


def compose_problems(doc):
    out = []
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        out.append(f"compose schema: {'/'.join(map(str, e.path)) or '(root)'}: {e.message[:160]}")
    services = doc.get("services", {}) or {}
    for name in sorted(APP_SERVICES):
        if name not in services:
            out.append(f"compose: service {name} is missing")
    for name, svc in services.items():
        svc = svc or {}
        if name in APP_SERVICES | {"postgres", "kafka"} and "healthcheck" not in svc:
            out.append(f"compose: {name} has no healthcheck")
        deps = svc.get("depends_on", {})
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, cond in deps.items():
            if dep not in services:
                out.append(f"compose: {name} depends on unknown service {dep}")
            elif "healthcheck" in (services[dep] or {}) and (cond or {}).get("condition") != "service_healthy":
                out.append(f"compose: {name} starts before {dep} is healthy")
        for port in svc.get("ports", []):
            if str(port).split(":")[-1] == str(ADMIN_PORT) and not str(port).startswith("127.0.0.1:"):
                out.append(f"compose: {name} publishes the admin port {ADMIN_PORT} beyond loopback")
    return out


def k8s_docs():
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(path.read_text()):
            if d:
                docs.append(d)
    return docs


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def k8s_problems(docs):
    out = []
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for w in workloads:
        name = w["metadata"]["name"]
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        for c in w["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    out.append(f"k8s: {name}/{c['name']} has no {probe}")
            if "memory" not in c.get("resources", {}).get("limits", {}):
                out.append(f"k8s: {name}/{c['name']} has no memory limit")
        if name != "sap-mock" and not any(
            labels_match(p["spec"]["selector"].get("matchLabels"), labels) for p in pdbs
        ):
            out.append(f"k8s: {name} has no PodDisruptionBudget")
    for s in (d for d in docs if d["kind"] == "Service"):
        ports = [p.get("port") for p in s["spec"].get("ports", [])]
        if ADMIN_PORT in ports and s["spec"].get("type", "ClusterIP") != "ClusterIP":
            out.append(f"k8s: service {s['metadata']['name']} exposes the admin port as {s['spec']['type']}")
    proxy = [w for w in workloads if w["metadata"]["name"] == "proxy"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for w in proxy:
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        guarded = False
        for p in policies:
            if not labels_match(p["spec"]["podSelector"].get("matchLabels"), labels):
                continue
            rules = p["spec"].get("ingress", [])
            admits_admin = [r for r in rules if any(x.get("port") == ADMIN_PORT for x in r.get("ports", []))]
            open_rules = [r for r in rules if not r.get("ports")]
            if admits_admin and not open_rules and all(
                all("podSelector" in f and "namespaceSelector" not in f for f in r.get("from", [{}])) and r.get("from")
                for r in admits_admin
            ):
                guarded = True
        if not guarded:
            out.append("k8s: no NetworkPolicy keeps the proxy's admin port inside the namespace")
    return out


def broken_copies(compose, docs):
    """(what was broken, compose, k8s docs): each must make a check fail."""
    def c(mutate):
        d = copy.deepcopy(compose)
        mutate(d)
        return d

    def k(mutate):
        d = copy.deepcopy(docs)
        mutate(d)
        return d

    def find(ds, kind, name):
        return next(x for x in ds if x["kind"] == kind and x["metadata"]["name"] == name)

    yield "an unknown key in a compose service", c(lambda d: d["services"]["proxy"].update(colour="red")), docs
    yield "a wrong type in compose", c(lambda d: d["services"]["proxy"].update(ports="8080")), docs
    yield "sap-sync without a healthcheck", c(lambda d: d["services"]["sap-sync"].pop("healthcheck")), docs
    yield "a dependency started, not healthy", c(
        lambda d: d["services"]["proxy"]["depends_on"].update({"sap-sync": {"condition": "service_started"}})), docs
    yield "the admin port published on every address", c(
        lambda d: d["services"]["proxy"].update(ports=["8080:8080", "9080:9080"])), docs
    yield "sap-sync missing from compose", c(lambda d: d["services"].pop("sap-sync")), docs
    yield "a workload without a readiness probe", compose, k(
        lambda d: find(d, "StatefulSet", "sap-sync")["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe"))
    yield "a workload without a memory limit", compose, k(
        lambda d: find(d, "Deployment", "order-service")["spec"]["template"]["spec"]["containers"][0]["resources"].pop("limits"))
    yield "a workload without a disruption budget", compose, k(
        lambda d: d.remove(find(d, "PodDisruptionBudget", "order-service")))
    yield "the admin service as a LoadBalancer", compose, k(
        lambda d: find(d, "Service", "proxy-admin")["spec"].update(type="LoadBalancer"))
    yield "the admin port open to every namespace", compose, k(
        lambda d: find(d, "NetworkPolicy", "proxy-admin-in-namespace")["spec"]["ingress"][1]["from"][0].update(
            namespaceSelector={}))


def main():
    compose = yaml.safe_load(COMPOSE.read_text())
    docs = k8s_docs()
    if "--self-test" in sys.argv:
        failed = 0
        for what, c, d in broken_copies(compose, docs):
            problems = compose_problems(c) + k8s_problems(d)
            verdict = "caught" if problems else "NOT CAUGHT"
            print(f"{verdict}: {what}" + (f" ({problems[0]})" if problems else ""))
            failed += not problems
        if failed:
            print(f"{failed} broken copies passed the checks")
            return 1
        print("every broken copy was caught")
        return 0
    problems = compose_problems(compose) + k8s_problems(docs)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s) in the deployment files")
        return 1
    n = len(compose["services"])
    print(f"docker-compose.yml ({n} services) and {len(docs)} Kubernetes objects pass every rule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
