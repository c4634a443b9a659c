# Tiergate gateway image. The local model runs in its own container (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_OFFLINE_MODE=true
# CPU-only torch first, so nothing resolves torch to a CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY router router
COPY classifiers classifiers
COPY config config
RUN pip install .
EXPOSE 8000
CMD ["tiergate", "serve", "--host", "0.0.0.0", "--port", "8000"]
