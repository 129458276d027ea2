# The CSMS as one container: OCPP WebSocket on 9000, operations HTTP on 8080.
#
#   docker build -t csms .
#   docker run -p 9000:9000 -p 8080:8080 -v csms-data:/data csms
#   docker run -v csms-data:/data csms stations add CP-001      # the operator CLI
#
# With no configuration the SQLite database is /data/csms.db (the volume);
# set CSMS_DATABASE_URL / CSMS_AMQP_URL for PostgreSQL and RabbitMQ.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN useradd --system --user-group --uid 10001 --home-dir /data --shell /usr/sbin/nologin csms \
    && mkdir -p /data \
    && chown csms:csms /data

# The project installs from its own files only; the sources go once installed.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY csms ./csms
COPY protocols ./protocols
COPY migrations ./migrations
RUN pip install --no-cache-dir '.[fast]' \
    && cd / \
    && rm -rf /src

WORKDIR /data

USER csms
VOLUME ["/data"]

EXPOSE 9000 8080

# slim has no curl. Follows CSMS_HTTP_PORT when set in the environment (not --http-port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CSMS_HTTP_PORT') or '8080'; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/health/live', timeout=4).status != 200)"]

# Exec form: csms is PID 1 and receives SIGTERM itself (close 1001, flush, exit 0).
ENTRYPOINT ["csms"]
CMD ["serve"]
