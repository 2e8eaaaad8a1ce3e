# RONAN Studio: the Gradio app on the bundled offline models, port 7860, non-root user 1000.
# The install step is the README's install (`python -m pip install -r requirements.txt`).
# Build: docker build -t ronan-studio .    Run: docker run --rm -p 7860:7860 ronan-studio
# Your own models: mount a folder of model cards (`ronan register --models-dir DIR ...`) and point
# RONAN_MODELS_DIR at it, e.g. -v $PWD/models:/models -e RONAN_MODELS_DIR=/models (a card's
# factory_path must exist inside the container too; a path relative to the card folder travels with it)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1

RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

COPY --chown=user:user requirements.txt ./
RUN python -m pip install -r requirements.txt

COPY --chown=user:user . .
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH

EXPOSE 7860
CMD ["python", "app.py"]
