# carebot: the bot, its HTTP endpoint (/slack/events, /ingest, /healthz, /readyz, /metrics)
# and its workers, in one process. Build from the repository root:
#   docker build -t carebot .
# Run (HTTP mode; Socket Mode: add `--socket` after `run`):
#   docker run --env-file .env -p 3000:3000 carebot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# torch first, the CPU build from PyTorch's own index: installing the project
# then finds torch already satisfied and never pulls a CUDA build from PyPI.
# Its own layer, so code changes do not download it again.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

# The project (pyproject.toml names README.md as its readme).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY scheduler ./scheduler
COPY storage ./storage
RUN pip install . && rm -rf /src

# Never run as root; the home directory holds a SQLite file if DATABASE_URL is left at
# its default (single-process installs); production uses PostgreSQL.
RUN useradd --create-home --home-dir /home/carebot --uid 10001 --shell /usr/sbin/nologin carebot
USER carebot
WORKDIR /home/carebot

# Prepare the shipped classification model at build time (converted weights, the int8
# ONNX export and the OpenVINO export land in ~/.cache/carebot), so a replica starts ready
# instead of converting it. Both exports: the build host's CPU need not be the one the
# replicas run on, and "auto" picks OpenVINO where the CPU has AMX, int8 ONNX elsewhere.
RUN HF_HUB_OFFLINE=1 python -c "from bot.classify.encoder import Encoder; \
Encoder(backend='onnx'); Encoder(backend='openvino')" && \
    HF_HUB_OFFLINE=1 python -c "from bot.config import load_care_config; \
from bot.classify.factory import build_classifier; \
build_classifier(load_care_config(None)).predict(['warm-up'], [None])"

ENV CAREBOT_LOG_FORMAT=json
EXPOSE 3000

# Liveness only: /healthz answers while the process serves HTTP (readiness, which
# also checks the database, is /readyz — for a load balancer or orchestrator).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["carebot"]
CMD ["run", "--host", "0.0.0.0", "--port", "3000"]
