# syntax=docker/dockerfile:1
# leakgate image: the API server, the Celery worker and the migrations all run from this image.
#
#   CPU (default):  docker build -t leakgate:latest .
#   GPU worker:     docker build -t leakgate:latest \
#                     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 .
#
# CUDA builds of torch bundle the CUDA runtime, so the default slim base already runs on a GPU
# host that has the NVIDIA Container Toolkit. Use a CUDA index that publishes the pinned torch
# (see https://download.pytorch.org/whl/). A CUDA base image works too, e.g.
#   --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04
# it has no Python 3.11, so the first RUN below installs it from apt (Ubuntu 22.04 or later).

ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# CPU wheels by default; pass a CUDA index (cu124, ...) to build a GPU image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# python:3.11-slim already has Python 3.11; other bases (CUDA on Ubuntu) get it from apt.
RUN if ! command -v python3.11 >/dev/null 2>&1; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3.11 python3.11-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3.11 -m venv /opt/venv \
    && pip install --upgrade pip

WORKDIR /opt/leakgate

# torch gets its own layer: it is the big download and changes rarely.
# Keep this pin equal to constraints.txt (tests/test_deploy_files.py checks it).
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

COPY . .
RUN pip install -c constraints.txt '.[server]'

# Run as an unprivileged user; the storage dir is created here so that a fresh named volume
# mounted on it inherits this ownership.
RUN groupadd --system leakgate \
    && useradd --system --gid leakgate --create-home --home-dir /home/leakgate leakgate \
    && mkdir -p /var/lib/leakgate \
    && chown leakgate:leakgate /var/lib/leakgate

# Models are audited from uploaded folders only; never reach out to the Hugging Face Hub.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    LEAKGATE_STORAGE_DIR=/var/lib/leakgate

USER leakgate

EXPOSE 8000

# Only meaningful for the API; compose disables it for the worker and the migrate job.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["leakgate", "api", "--host", "0.0.0.0", "--port", "8000"]
