#!/bin/sh
# REST and Server-Sent Events with curl: the same data the SDKs see.
#
#   rtdb serve --emulator
#   sh examples/rest_sse.sh http://127.0.0.1:9000 demo
set -eu
BASE=${1:-http://127.0.0.1:9000}
NS=${2:-demo}
AUTH='Authorization: Bearer owner'   # emulator admin; use ?auth=<ID token> as a user

echo "# PUT a value, GET it back"
curl -sS -H "$AUTH" -X PUT -d '{"name": "Ada", "born": 1815}' "$BASE/people/ada.json?ns=$NS"; echo
curl -sS -H "$AUTH" "$BASE/people/ada.json?ns=$NS"; echo

echo "# POST appends under a push id; PATCH updates children"
curl -sS -H "$AUTH" -X POST -d '{"name": "Grace", "born": 1906}' "$BASE/people.json?ns=$NS"; echo
curl -sS -H "$AUTH" -X PATCH -d '{"ada/field": "math"}' "$BASE/people.json?ns=$NS"; echo

echo "# a query: the earliest-born person"
curl -sS -H "$AUTH" -G "$BASE/people.json" --data-urlencode "ns=$NS" \
  --data-urlencode 'orderBy="born"' --data-urlencode 'limitToFirst=1'; echo

echo "# server values"
curl -sS -H "$AUTH" -X PUT -d '{".sv": "timestamp"}' "$BASE/people/ada/seen.json?ns=$NS"; echo

echo "# stream /people for two seconds while another request writes"
( sleep 1; curl -sS -o /dev/null -H "$AUTH" -X PUT -d '"live!"' "$BASE/people/ada/status.json?ns=$NS" ) &
curl -sS -N -H "$AUTH" -H 'Accept: text/event-stream' --max-time 2 "$BASE/people.json?ns=$NS" || true
wait
echo
echo "# DELETE"
curl -sS -H "$AUTH" -X DELETE "$BASE/people.json?ns=$NS"; echo
