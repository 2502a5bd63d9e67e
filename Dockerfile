FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY plugins plugins
COPY handlers handlers
COPY api api
# The drivers of the backends docker-compose.yml selects (Kafka, MongoDB); EXTRAS="" builds the
# embedded default only.
ARG EXTRAS=kafka,mongo
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" && useradd --create-home balance && mkdir /data && chown balance /data
USER balance
EXPOSE 8000
CMD ["balance", "serve", "--host", "0.0.0.0", "--port", "8000"]
