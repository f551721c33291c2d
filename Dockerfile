# The pipeline's one image: `store-publish migrate | consume | stream | ...`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The dependencies first, exactly as locked (versions and hashes), in a layer of their own.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# Only what the package needs: no virtualenv, caches or local broker data from the checkout.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY consumers ./consumers
COPY streams ./streams
COPY ops ./ops
# The project itself: its dependencies are all installed above, nothing is resolved again.
RUN pip install . --no-deps && rm -rf /app/build

RUN useradd --system --uid 10001 --no-create-home app
USER app

ENTRYPOINT ["store-publish"]
CMD ["consume"]
