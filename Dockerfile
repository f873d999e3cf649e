# One image for the proxy, the worker and the CLI.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY llm_pool ./llm_pool
COPY proxy ./proxy
COPY sdk ./sdk
COPY worker ./worker
# the proxy, the worker and the dashboard: every extra but the test tools
RUN pip install -e '.[all]'
COPY config ./config
EXPOSE 4000
CMD ["pool", "proxy", "--host", "0.0.0.0", "--port", "4000"]
