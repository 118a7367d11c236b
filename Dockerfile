FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub hub
COPY routes routes
COPY adapters adapters
COPY schemas schemas
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["hub", "run"]
