FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY trader ./trader
COPY workflows ./workflows
COPY activities ./activities
COPY worker.py starter.py ./
COPY config ./config
RUN pip install --no-cache-dir .
CMD ["python", "worker.py"]
