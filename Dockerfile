# Streamer live captioning server. CPU image by default (the bundled tiny.en model; no download at run time).
#
#   docker build -t streamer .
#   docker run -p 8765:8765 -v streamer-data:/data \
#       -e STREAMER_SPEAKER_TOKEN=change-me-speaker -e STREAMER_VIEWER_TOKEN=change-me-viewer streamer
#
# The container listens on 0.0.0.0, a public interface: the server refuses to start there without a speaker
# token, so pass STREAMER_SPEAKER_TOKEN / STREAMER_VIEWER_TOKEN (or --speaker-token/--viewer-token after the
# image name), or --allow-public-without-auth when something in front of it does authentication.
#
# CUDA variant: `docker build --build-arg CUDA=1 -t streamer:cuda .` adds the CUDA 12 cuBLAS and cuDNN 9
# libraries that CTranslate2 loads (the way faster-whisper documents it); run it with `docker run --gpus all`
# on a host with the NVIDIA driver and container toolkit. `--device auto` (the default) then picks CUDA and
# float16; `--max-batch 4` or more lets several speakers share each GPU decode.
FROM python:3.11-slim

ARG CUDA=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib

WORKDIR /app
COPY pyproject.toml README.md ./
COPY streamer ./streamer
RUN pip install . \
    && if [ "$CUDA" = "1" ]; then pip install "nvidia-cublas-cu12" "nvidia-cudnn-cu12==9.*"; fi

RUN useradd --create-home --uid 1000 streamer && mkdir -p /data && chown streamer /data
USER streamer
VOLUME ["/data"]
EXPOSE 8765
ENTRYPOINT ["streamer", "serve", "--host", "0.0.0.0", "--port", "8765", "--data-dir", "/data"]
