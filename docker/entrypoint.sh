#!/bin/sh
# The container's entry point. Schema changes are an explicit step, never a side effect of
# starting the server:
#   entrypoint.sh migrate   apply the migrations, then exit (a one-off job or compose service)
#   entrypoint.sh serve     serve with uvicorn (AGENT_RUNTIME__HOST/PORT/WORKERS)
#   entrypoint.sh devllm    the development LLM (python -m devllm; arguments passed on)
#   entrypoint.sh <cmd...>  anything else runs as given (e.g. python manage.py shell)
set -eu
cd "$(dirname "$0")/.."

command="${1:-serve}"
[ "$#" -gt 0 ] && shift

case "$command" in
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  serve)
    exec python manage.py serve "$@"
    ;;
  devllm)
    exec python -m devllm "$@"
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
