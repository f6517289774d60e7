"""python -m jobs.serve --config serve/config_demo.yaml [--smoke]

Start the complyray service from a Serve config file, print its URL and keep it up (or smoke-test it).

    python -m jobs.serve --config serve/config_demo.yaml --smoke     # start, one POST /v1/analyze, stop
    python -m jobs.serve --config serve/config_demo.yaml             # serve until Ctrl-C
    python -m jobs.serve --config serve/config_demo.yaml engine.max_new_tokens=64 detector.num_cpus=2
    ray job submit --working-dir . -- python -m jobs.serve --config serve/config_mistral7b_gpu.yaml

Dotted overrides change the application's `args` (a ServeAppConfig). `serve run <file>` and
`serve deploy <file>` take the same files directly. Exits 2 on a bad config, 1 when the service
does not come up or the smoke request fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from pipeline.config import ConfigError, deep_merge, parse_overrides

SMOKE_TEXT = ("Client: Is the Harbor fund safe for my retirement savings?\n"
              "Advisor: I guarantee you will not lose a cent on it.")


def read_serve_config(path: str, overrides: list[str]) -> tuple[dict, dict]:
    """(the Serve config file, its single application with `args` overridden). Raises ConfigError."""
    from serve.config import parse_app_config

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    doc = yaml.safe_load(p.read_text()) or {}
    apps = doc.get("applications") if isinstance(doc, dict) else None
    if not apps or len(apps) != 1:
        raise ConfigError(f"{p}: expected a Serve config with exactly one entry under `applications`")
    app = dict(apps[0])
    if app.get("deployments"):
        raise ConfigError(f"{p}: `deployments` overrides are for `serve deploy`; put replicas and limits in args "
                          "(detector.*, ingress.*)")
    app["args"] = deep_merge(app.get("args") or {}, parse_overrides(overrides))
    parse_app_config(app["args"])  # every problem now, before Ray starts
    return doc, app


def smoke(url: str, api_key: str | None) -> bool:
    """One real HTTP /v1/analyze; prints the answer; True on 200."""
    import requests

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    t0 = time.time()
    r = requests.post(f"{url}/v1/analyze", json={"text": SMOKE_TEXT, "id": "smoke-1"}, headers=headers,
                      timeout=900)
    print(f"POST {url}/v1/analyze -> {r.status_code} in {time.time() - t0:.1f}s")
    print(json.dumps(r.json(), indent=2, ensure_ascii=False))
    return r.status_code == 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="Serve config file (serve/config_*.yaml)")
    parser.add_argument("--smoke", action="store_true", help="send one /v1/analyze, print it, shut down")
    parser.add_argument("--port", type=int, help="HTTP port (default: the file's http_options.port, else 8000)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the app args (engine.max_new_tokens=64)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        doc, app = read_serve_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2

    from ray import serve

    from pipeline.runtime import init_ray
    from serve.app import build_app
    from serve.auth import resolve_api_key
    from serve.config import parse_app_config

    http = dict(doc.get("http_options") or {})
    if args.port:
        http["port"] = args.port
    host, port = http.get("host", "127.0.0.1"), http.get("port", 8000)
    prefix = (app.get("route_prefix") or "/").rstrip("/")
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}{prefix}"
    init_ray()
    serve.start(http_options=http, proxy_location=doc.get("proxy_location"))
    try:
        serve.run(build_app(app["args"]), name=app.get("name", "complyray"), route_prefix=prefix or "/")
    except Exception as e:  # a replica that fails to start (bad model path, unreadable key) surfaces here
        print(f"the service did not start: {type(e).__name__}: {e}", file=sys.stderr)
        serve.shutdown()
        return 1
    print(f"serving {url}  (OpenAPI: {url}/docs; stop with Ctrl-C)", flush=True)
    if args.smoke:
        try:
            ok = smoke(url, resolve_api_key(parse_app_config(app["args"]).auth))
        finally:
            serve.shutdown()
        return 0 if ok else 1
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
