# QENEX API server image. Build: docker build -t qenex .
# Secrets are never baked in: pass QENEX_SECRET_KEY, QENEX_JWT_SECRET, QENEX_MASTER_KEY (or
# QENEX_MASTER_KEY_FILE / QENEX_PKCS11_*) and QENEX_DB_PASSWORD at run time (env file, K8s Secret).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libpq for psycopg; SoftHSM2's PKCS#11 library is not installed here: mount the HSM vendor's
# module and point QENEX_PKCS11_MODULE at it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 qenex \
    && useradd --system --uid 10001 --gid qenex --home-dir /app --shell /usr/sbin/nologin qenex \
    && install -d -o qenex -g qenex -m 0750 /var/lib/qenex

WORKDIR /app

# Pinned runtime dependencies first (cached layer; requirements.lock holds the run-time
# dependencies and the tracing extra, never the test and lint tools of requirements-dev.lock),
# then the package itself without re-resolving.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf /app/src

ENV QENEX_ENV=production \
    QENEX_DATA_DIR=/var/lib/qenex

USER 10001:10001
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

CMD ["qenex", "serve", "--host", "0.0.0.0", "--port", "8080"]
