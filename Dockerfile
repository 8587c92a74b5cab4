# syntax=docker/dockerfile:1
# Production image of Ava: one image for every process (`ava-bot serve | worker | migrate`).
# Build: docker compose build   (or: docker build -t ava-bot .)

# ---- builder: resolve the locked dependencies into /app/.venv ------------------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install uv==0.13.9

WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --no-install-project

# Then the project itself, installed as a regular (non-editable) package into the venv.
COPY ava_bot ./ava_bot
COPY core ./core
COPY channels ./channels
COPY imaging ./imaging
COPY billing ./billing
COPY portal ./portal
COPY migrations ./migrations
COPY plans.toml ./
COPY README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable
# Bytecode for the runtime's PYTHONOPTIMIZE=2 (`.opt-2.pyc`): the runtime cannot write it (read-only code,
# PYTHONDONTWRITEBYTECODE), so without this every process start would compile every module from source.
RUN python -OO -m compileall -q -j 0 /app/.venv/lib/python3.11/site-packages

# ---- runtime: slim image, non-root user, no build tooling ----------------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:${PATH}" \
    AVA_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MEDIA_DIR=/app/data/media \
    MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    PYTHONOPTIMIZE=2
# MALLOC_ARENA_MAX: glibc gives each thread that allocates its own malloc arena (up to 8 per CPU); the worker's
# image threads then keep tens of MB each after a photo. Two arenas cut the worker's peak RSS (bench/memory.py).
# MALLOC_MMAP_THRESHOLD_=131072: glibc's default threshold, held fixed. By default it rises to the size of the
# first large block freed, so a photo's buffers (decoded images, JPEG and C2PA copies) then come from the heap and
# leave it fragmented; held at 128 KB they are mapped and given back on their own. Worker peak with every service
# 185 -> 174 MB in the same run (bench/memory.py), for ~5 ms more CPU per photo (fresh pages); unset it to trade
# the memory back for that CPU.
# PYTHONOPTIMIZE=2: no docstrings (nor asserts) in memory; the ~2,100 modules a process loads (the openai SDK's
# types, botocore, pywa...) hold ~8 MB of them per process. Nothing of ours or of our libraries reads a docstring
# or relies on an assert at run time; the multi-process tests (tests/reliability) run the processes this way too.

RUN groupadd --system --gid 10001 ava \
    && useradd --system --uid 10001 --gid ava --home-dir /app --no-create-home --shell /usr/sbin/nologin ava

WORKDIR /app

# Code and venv stay root-owned (read-only to the app user). The venv's interpreter links to
# /usr/local/bin/python3.11, identical in both stages.
COPY --from=builder /app /app

# Media is written by the worker and served by web; a named volume mounted here inherits this owner.
RUN mkdir -p /app/data/media /app/certs && chown -R ava:ava /app/data

USER ava:ava

EXPOSE 8080

# Liveness only (`/health` touches no dependency). The worker does not listen: compose disables this there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status == 200 else 1)"]

CMD ["ava-bot", "serve"]
