# Teaser as a container: `docker build` here, then docker-compose.yml runs it with PostgreSQL
# and Redis (docs/deploy.md). Needs BuildKit (the default builder since Docker 23; on Docker
# 20.10 set DOCKER_BUILDKIT=1) for the RUN --mount lines below.
#
# There is deliberately no `# syntax=` line: the daemon's built-in Dockerfile frontend
# already knows RUN --mount, and naming one would make BuildKit pull it from a registry.
#
# Behind a proxy that re-signs TLS, give the build the host's CA bundle as a secret
# (it is mounted, never stored in a layer):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t teaser-push .
# Without the secret Debian's own bundle is used.

# The same name script/base-image imports where no registry can be reached.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/teaser
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# Dependencies first, from pyproject.toml alone, so a change to the code reuses this layer.
WORKDIR /src
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt,required=false \
    --mount=type=cache,target=/root/.cache/pip \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt \
 && /opt/teaser/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

# Then Teaser's own wheel (.dockerignore lets in only what the wheel is made of). pip and
# setuptools leave the venv afterwards: the image runs Teaser, it installs nothing.
COPY . ./
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt,required=false \
    --mount=type=cache,target=/root/.cache/pip \
    /opt/teaser/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/teaser/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/teaser/bin/pip check \
 && /opt/teaser/bin/pip uninstall --yes --quiet pip setuptools

FROM ${BASE}
# Only the interpreter and the CA bundle (for rediss:// and PostgreSQL over TLS): no pip,
# no compilers, no package lists.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 teaser \
 && useradd --system --uid 10001 --gid teaser --home-dir /var/lib/teaser --create-home \
      --shell /usr/sbin/nologin teaser
COPY --from=builder /opt/teaser /opt/teaser

# An image runs where others can reach it: production unless told otherwise, so it never
# starts with the demo site's published key, and refuses to start without TEASER_SECRET_KEY.
ENV PATH=/opt/teaser/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TEASER_ENV=production \
    PORT=8000
# The working directory is the teaser user's: a SQLite file (when DATABASE_URL is unset) and
# ./rules live here. With PostgreSQL nothing is written, so the root file system can be
# read-only (deploy/kubernetes/deployment.yaml).
WORKDIR /var/lib/teaser
# Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001

# 8000 serves the API, the widget and the dashboard; 8081 is the ops port (/metrics, /livez,
# /readyz) when TEASER_OPS_PORT=8081.
EXPOSE 8000 8081
# Liveness, with the image's own Python (there is no curl): on the ops port when there is one.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % (os.environ.get('TEASER_OPS_PORT') or os.environ.get('PORT') or '8000'), timeout=2)"]
# Exec form: teaser (uvicorn) is PID 1 and gets the SIGTERM itself, answers /readyz 503,
# drains for TEASER_DRAIN_SECONDS and exits.
STOPSIGNAL SIGTERM
CMD ["teaser", "serve", "--host", "0.0.0.0"]
