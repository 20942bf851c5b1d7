# One image for every botmon component; docker-compose.yml runs each with
# `botmon serve <component>`, and `docker run botmon` alone runs the whole suite.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Generated protobuf code is committed, so the image needs no protoc.
COPY pyproject.toml README.md ./
COPY botmon ./botmon
COPY services ./services
COPY gateway ./gateway
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/botmon --create-home botmon
USER botmon
WORKDIR /var/lib/botmon
# In a container the gateway must listen beyond loopback to be reachable at all.
ENV BOTMON_DATA_DIR=/var/lib/botmon \
    BOTMON_HTTP_ADDR=0.0.0.0:8080

EXPOSE 8080 50051 50052 50053 50054 50055
# `up` runs the whole suite; its gateway answering /health/live means the suite is up.
# Compose and Kubernetes give each `serve <component>` container its own check instead.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s \
    CMD ["botmon", "healthcheck", "http://127.0.0.1:8080/api/v1/monitoring/health/live"]
ENTRYPOINT ["botmon"]
CMD ["up"]
