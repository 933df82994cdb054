"""vLLM's `/metrics` as prometheus_client serves it, for drover's scraper to be checked against.

Usage: python tests/py/vllm_exporter.py single|multiproc
  single:    one registry, as a vLLM with one API server has it.
  multiproc: a MultiProcessCollector over PROMETHEUS_MULTIPROC_DIR, as a vLLM with several API
             servers (and every SGLang) has it: prometheus_client then answers `?name[]=` with
             nothing, since that collector lists no names.

Prints `PORT <n>` once listening on 127.0.0.1 (port 0), then one line per request served:
`<query string>|<bytes of the answer>`. Serves until killed. The metrics are vLLM's names with
fixed values (running 5, waiting 2, KV use 0.25, 1234 tokens generated, 1000 blocks of 16), and
a latency histogram like vLLM's, which a filtered answer leaves out.

prometheus_client's WSGI app stands in for the ASGI app vLLM mounts: both read the query with
`parse_qs` and answer through the same `_bake_output`.
"""

import os
import sys
import tempfile

MODE = sys.argv[1] if len(sys.argv) > 1 else "single"
if MODE == "multiproc":
    # Read when prometheus_client is imported: it must be set first.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="drover-prom-")

from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: E402

from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    make_wsgi_app,
    multiprocess,
)

LABELS = {"engine": "0", "model_name": "m"}

if MODE == "multiproc":
    metric_registry = None  # the default registry; samples go to the multiprocess files
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    gauge_kw = {"multiprocess_mode": "mostrecent"}
else:
    metric_registry = registry = CollectorRegistry()
    gauge_kw = {}

kw = {"registry": metric_registry} if metric_registry is not None else {}
names = list(LABELS)
Gauge("vllm:num_requests_running", "Running.", names, **kw, **gauge_kw).labels(**LABELS).set(5)
Gauge("vllm:num_requests_waiting", "Waiting.", names, **kw, **gauge_kw).labels(**LABELS).set(2)
Gauge("vllm:kv_cache_usage_perc", "KV use.", names, **kw, **gauge_kw).labels(**LABELS).set(0.25)
Counter("vllm:generation_tokens", "Tokens out.", names, **kw).labels(**LABELS).inc(1234)
info = ["engine", "block_size", "num_gpu_blocks"]
Gauge("vllm:cache_config_info", "Cache config.", info, **kw, **gauge_kw).labels(
    engine="0", block_size="16", num_gpu_blocks="1000"
).set(1)
latency = Histogram(
    "vllm:e2e_request_latency_seconds",
    "E2E latency.",
    names,
    buckets=[0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    **kw,
)
for v in (0.4, 1.2, 7.0):
    latency.labels(**LABELS).observe(v)

metrics_app = make_wsgi_app(registry)


def app(environ, start_response):
    body = b"".join(metrics_app(environ, start_response))
    print(f"{environ.get('QUERY_STRING', '')}|{len(body)}", flush=True)
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(f"PORT {server.server_port}", flush=True)
server.serve_forever()
