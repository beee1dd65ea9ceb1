"""The official Python client against `joblet serve`: create, list, watch, read, logs, delete.
Usage: python_client.py KUBECONFIG"""
import sys

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
batch = client.BatchV1Api()
core = client.CoreV1Api()

job = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "py-job"},
    "spec": {
        "completions": 2,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo from python"]}],
            }
        },
    },
}
created = batch.create_namespaced_job("default", job)
print("created", created.metadata.name, created.spec.backoff_limit)
print("listed", [j.metadata.name for j in batch.list_namespaced_job("default").items])

stream = watch.Watch()
for event in stream.stream(batch.list_namespaced_job, namespace="default", timeout_seconds=30):
    status = event["object"].status
    if status.succeeded == 2 and any(c.type == "Complete" for c in status.conditions or []):
        stream.stop()
        print("watched", event["object"].metadata.name, "succeeded", status.succeeded)

read = batch.read_namespaced_job_status("py-job", "default")
print("conditions", [c.type for c in read.status.conditions])
pods = core.list_namespaced_pod("default", label_selector="job-name=py-job").items
print("log", core.read_namespaced_pod_log(pods[0].metadata.name, "default").strip())
try:
    batch.create_namespaced_job("default", job)
except client.ApiException as error:
    print("again", error.status, error.reason)
batch.delete_namespaced_job("py-job", "default", propagation_policy="Background")
print("remaining", [j.metadata.name for j in batch.list_namespaced_job("default").items])
