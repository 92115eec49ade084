# Shared helpers for the benchmark scripts: installing tools, starting a Latchkey, signed admin
# calls with curl. Source it; it expects REPO to point at the repository root.

BENCH_ACCESS_KEY="LKBENCHACCESSKEY0001"
BENCH_SECRET_KEY="bench-secret-key-that-is-long-enough-012"

need_debian_packages() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Debian packages)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

build_latchkey() {
  (cd "$REPO" && cargo build --release --locked -p latchkey >&2)
  LATCHKEY_BIN="$REPO/target/release/latchkey"
}

# start_latchkey DATA_DIR PORT [CONFIG_FILE] -> sets LATCHKEY_PID. Default settings unless a
# config file says otherwise; the log and access log go to DATA_DIR.stderr.
start_latchkey() {
  local config=()
  [ -n "${3:-}" ] && config=(--config "$3")
  LATCHKEY_ROOT_ACCESS_KEY=$BENCH_ACCESS_KEY LATCHKEY_ROOT_SECRET_KEY=$BENCH_SECRET_KEY \
    "$LATCHKEY_BIN" serve --data-dir "$1" --listen "127.0.0.1:$2" "${config[@]}" >/dev/null 2>"$1.stderr" &
  LATCHKEY_PID=$!
  wait_for_port "$2"
}

wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# s3_call METHOD URL [curl args...]: a SigV4-signed request with the bench credentials.
s3_call() {
  local method=$1 url=$2
  shift 2
  curl -sf -X "$method" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$BENCH_ACCESS_KEY:$BENCH_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$url"
}

presign_get() {
  AWS_ACCESS_KEY_ID=$BENCH_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$BENCH_SECRET_KEY AWS_REGION=us-east-1 \
    "$LATCHKEY_BIN" presign "s3://$1" --endpoint-url "$2" --expires-in 3600
}

# The two configurations figure 1 of guard.sh (and guard_instructions.sh) compares: every request
# through the rate limiter (no address exempt), the JSON access log written, metrics served;
# and all of that off.
GUARD_ON='surfaces = ["s3", "shares", "health", "metrics"]
[rate_limits]
per_ip = 1000000
exempt = []'
GUARD_OFF='access_log = "off"
[rate_limits]
per_ip = 0
per_link = 0'

# describe_machine: the CPU the figures were measured on. Presigned requests hash with SHA-256 at
# every step of SigV4 (the canonical request, the four-HMAC signing key, the signature) while a
# static nginx hashes nothing per request, so their ratio depends on whether the CPU has SHA
# instructions; say so beside the figures.
describe_machine() {
  local model flags
  model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  flags=$(awk -F': ' '/^flags/ { print " " $2 " "; exit }' /proc/cpuinfo)
  yes_no() { case "$flags" in *" $1 "*) echo yes ;; *) echo no ;; esac; }
  echo "machine: ${model:-unknown CPU}, $(nproc) cores, SHA instructions (sha_ni): $(yes_no sha_ni), AES-NI: $(yes_no aes)"
}

# ratio A B -> A/B with 3 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }

# start_nginx WORK SERVER_BLOCK: nginx serving WORK/www as told by SERVER_BLOCK (the inside of
# `server { }`), with its temporary files and pid in WORK; waits for PORT in `listen 127.0.0.1:PORT`.
start_nginx() {
  local work=$1 server=$2
  mkdir -p "$work/nginx-tmp"
  cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-tmp;
  proxy_temp_path $work/nginx-tmp;
  fastcgi_temp_path $work/nginx-tmp;
  uwsgi_temp_path $work/nginx-tmp;
  scgi_temp_path $work/nginx-tmp;
  server { $server }
}
CONF
  chmod 755 "$work" && chmod -R a+rX "$work/www"  # nginx workers run as www-data
  nginx -c "$work/nginx.conf"
  wait_for_port "$(sed -n 's/.*listen 127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$server")"
}
