#!/bin/sh
# Tests only (tests/test_model_cache_keys.py): piped into `docker compose run -T ... sh -s`
# of a backend slot while the model cache is locked. Starts the app without the
# entrypoint's check and prints /readyz's answer as JSON {"status": N, "body": {...}}.
uvicorn src.main:app --host 127.0.0.1 --port 8001 --log-level warning &
for _ in $(seq 60); do
  python -c "
import json, urllib.request, urllib.error
try:
    r = urllib.request.urlopen('http://127.0.0.1:8001/readyz', timeout=3)
    print(json.dumps({'status': r.status, 'body': json.load(r)}))
except urllib.error.HTTPError as e:
    print(json.dumps({'status': e.code, 'body': json.load(e)}))
" 2>/dev/null && exit 0
  sleep 0.5
done
exit 1
