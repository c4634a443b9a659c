#!/usr/bin/env bash
# LiteLLM's proxy in its own virtual environment, for bench/gateways.py: made once per machine under
# ~/.cache/tiergate/litellm-proxy/<version>. The `proxy` extra of litellm 1.110.2 names `litellm-proxy==<version>`,
# which this machine's package index does not carry (and litellm-proxy-extras / litellm-enterprise at versions it
# lacks); the proxy's code ships inside the litellm wheel itself, so we install litellm plus the extra's other
# requirements, taking the newest available of those two. Never 1.82.7 / 1.82.8 (compromised on PyPI).
set -euo pipefail
version="${1:-1.110.2}"
case "$version" in 1.82.7|1.82.8) echo "refusing compromised litellm $version" >&2; exit 1;; esac
dest="${TIERGATE_CACHE:-$HOME/.cache/tiergate}/litellm-proxy/$version"
[ -f "$dest/.complete" ] && exit 0
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
python3.11 -m venv "$dest"
"$dest/bin/pip" install --quiet --upgrade pip
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$dest/bin/pip" download --quiet --no-deps "litellm==$version" -d "$tmp"
unzip -p "$tmp"/litellm-*.whl 'litellm-*.dist-info/METADATA' | "$dest/bin/python" -c '
import re, sys
for line in sys.stdin:
    if not line.startswith("Requires-Dist:") or "extra == \x27proxy\x27" not in line:
        continue
    spec, _, marker = line.split(":", 1)[1].strip().partition(";")
    marker = re.sub(r"\s*(and\s+)?extra == \x27proxy\x27", "", marker).strip()
    name = re.split(r"[<>=!~ ]", spec.strip())[0]
    if name == "litellm-proxy":
        continue
    if name in ("litellm-proxy-extras", "litellm-enterprise"):
        spec = name
    print(spec.strip() + (f" ; {marker}" if marker else ""))
' > "$tmp/requirements.txt"
"$dest/bin/pip" install --quiet "$tmp"/litellm-*.whl -r "$tmp/requirements.txt"
touch "$dest/.complete"  # last: an interrupted build is started again from scratch
