#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for user postgres:
# starts the local cluster if it is stopped, installs Debian's postgresql if there is none.
set -euo pipefail
answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if command -v pg_isready >/dev/null && answers; then
  echo "postgres.sh: PostgreSQL answers on 127.0.0.1:5432"
  exit 0
fi
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "postgres.sh: installing PostgreSQL (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  ver=$(ls /etc/postgresql | head -n 1)
  conf=/etc/postgresql/$ver/main/pg_hba.conf
  # Local test server only: trust connections from this machine.
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$conf"
fi
ver=$(ls /etc/postgresql | head -n 1)
pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
for _ in $(seq 1 60); do
  answers && { echo "postgres.sh: PostgreSQL started"; exit 0; }
  sleep 0.5
done
echo "postgres.sh: PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
