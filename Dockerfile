# rebalancer — the daemon (`rebalancer run`) in a small image.
#
# Build:  docker build -t rebalancer .
#         (the daemon only: no backtester, no dashboard; add extras with e.g.
#          --build-arg EXTRAS=postgres,web for a PostgreSQL journal and `run --serve`)
# Run:    docker run -d --name rebalancer --restart on-failure \
#           --env-file .env \
#           -v rebalancer-data:/data \
#           -v "$PWD/rebalancer.toml:/config/rebalancer.toml:ro" \
#           rebalancer
#
# Keys (BINANCE_API_KEY, ...) and notification URLs (REBALANCER_NOTIFY_URLS) come from the
# environment at run time (--env-file); nothing secret is copied into the image (see
# .dockerignore). The journal, the paper account, the heartbeat and the logs live on the
# /data volume: back it up. See docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# the bot's core dependencies only (see the extras in pyproject.toml)
ARG EXTRAS=""

WORKDIR /app
COPY pyproject.toml README.md config.example.toml ./
COPY src ./src
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && groupadd --system --gid 10001 rebalancer \
    && useradd --system --uid 10001 --gid rebalancer --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin rebalancer \
    && mkdir -p /data /config \
    && cp config.example.toml /config/rebalancer.toml \
    && chown -R rebalancer:rebalancer /data

# state_dir = "" in the config means $XDG_DATA_HOME/rebalancer, i.e. /data/rebalancer
ENV HOME=/data \
    XDG_DATA_HOME=/data \
    REBALANCER_CONFIG=/config/rebalancer.toml

VOLUME ["/data"]
WORKDIR /data
USER rebalancer:rebalancer

# healthy while the heartbeat says running and the next check is not overdue
HEALTHCHECK --interval=5m --timeout=30s --start-period=2m \
    CMD ["python", "-m", "rebalancer.daemon.health"]

# SIGTERM (docker stop) ends the daemon after the check in progress; give it the time
STOPSIGNAL SIGTERM
ENTRYPOINT ["rebalancer", "run"]
CMD []
