# The pipesync image: the operator (`pipesync operator`) and, in task pods, the artifact
# init/sidecar agent (`pipesync agent ...`). Build: docker build -t pipesync:dev .
#
# Base: pinned to the Python minor version and the Debian release, not to a digest. The
# digest cannot be verified from the machines this project is built on (no access to
# Docker Hub), and an unverified digest is worse than none; pin the digest where you build
# and push the release (docker buildx imagetools inspect python:3.11-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the package and its runtime dependencies in a venv (no dev/examples extras)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m venv /opt/pipesync \
    && /opt/pipesync/bin/pip install --no-cache-dir /src \
    && /opt/pipesync/bin/pipesync --version

# ---- runtime: the venv, git and ssh (GitSource fetches), a non-root user
FROM ${PYTHON_IMAGE}
# Versions of Debian bookworm (+ security) at the time of writing; bump them together
# with the base image (apt-cache policy git openssh-client inside it).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        git=1:2.39.5-0+deb12u3 \
        openssh-client=1:9.2p1-2+deb12u10 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 pipesync \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin pipesync
COPY --from=build /opt/pipesync /opt/pipesync
ENV PATH=/opt/pipesync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PIPESYNC_CACHE=/var/cache/pipesync/git
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# /metrics, /healthz and the push webhook (/hooks/<namespace>/<gitsource>).
EXPOSE 8080
ENTRYPOINT ["pipesync"]
CMD ["operator"]
