#!/usr/bin/env bash
# Presigned GET of a 4 KiB object signed by an IAM user with 10 inline policies of 5 statements
# each (conditions and policy variables), against the same GET signed by root, in the same run:
# wrk -t1 -c32 -d10s, alternating root and user for ROUNDS rounds. Prints requests/s and the
# median ratio user/root (target: at least 0.9).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/bench/lib/common.sh"
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}

need_debian_packages wrk curl
build_latchkey

work=$(mktemp -d)
trap 'kill $LATCHKEY_PID 2>/dev/null || true; rm -rf "$work"' EXIT
head -c 4096 /dev/urandom >"$work/4k"
start_latchkey "$work/latchkey" 9482
endpoint=http://127.0.0.1:9482
s3_call PUT "$endpoint/bench" >/dev/null
s3_call PUT "$endpoint/bench/4k" -T "$work/4k" >/dev/null

# iam_call ACTION [--data-urlencode k=v...]: an IAM query API call signed by root.
iam_call() {
  local action=$1
  shift
  curl -sf -X POST --aws-sigv4 "aws:amz:us-east-1:iam" --user "$BENCH_ACCESS_KEY:$BENCH_SECRET_KEY" \
    --data-urlencode "Action=$action" --data-urlencode "Version=2010-05-08" "$@" "$endpoint/"
}

iam_call CreateUser --data-urlencode UserName=bencher >/dev/null
for i in $(seq 1 10); do
  policy=$(cat <<JSON
{"Version": "2012-10-17", "Statement": [
 {"Sid": "Read$i", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectTagging"],
  "Resource": "arn:aws:s3:::bench/*", "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "10.$i.0.0/16"]}}},
 {"Sid": "Home$i", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bench",
  "Condition": {"StringLike": {"s3:prefix": ["home/\${aws:username}/*", "shared-$i/*"]}}},
 {"Sid": "MfaDelete$i", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*",
  "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
 {"Sid": "Write$i", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
  "Resource": "arn:aws:s3:::bench/home/\${aws:username}/*"},
 {"Sid": "Fresh$i", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::vault-$i/*",
  "Condition": {"NumericGreaterThan": {"s3:signatureAge": "600000"}}}
]}
JSON
)
  iam_call PutUserPolicy --data-urlencode UserName=bencher --data-urlencode "PolicyName=p$i" \
    --data-urlencode "PolicyDocument=$policy" >/dev/null
done
key_xml=$(iam_call CreateAccessKey --data-urlencode UserName=bencher)
user_key=$(sed -n 's:.*<AccessKeyId>\(.*\)</AccessKeyId>.*:\1:p' <<<"$key_xml")
user_secret=$(sed -n 's:.*<SecretAccessKey>\(.*\)</SecretAccessKey>.*:\1:p' <<<"$key_xml")

root_url=$(presign_get bench/4k "$endpoint")
user_url=$(AWS_ACCESS_KEY_ID=$user_key AWS_SECRET_ACCESS_KEY=$user_secret AWS_REGION=us-east-1 \
  "$LATCHKEY_BIN" presign s3://bench/4k --endpoint-url "$endpoint" --expires-in 3600)
for url in "$root_url" "$user_url"; do
  cmp -s <(curl -sf "$url") "$work/4k" || { echo "a presigned GET did not return the object" >&2; exit 1; }
done

rps() { wrk -t1 -c32 -d"$DURATION" "$1" | awk '/Requests\/sec/ { print $2 }'; }

printf '%-6s %14s %14s %8s\n' round root_req/s iam_user_req/s ratio
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  root_rps=$(rps "$root_url")
  user_rps=$(rps "$user_url")
  r=$(ratio "$user_rps" "$root_rps")
  ratios+=("$r")
  printf '%-6s %14s %14s %8s\n' "$round" "$root_rps" "$user_rps" "$r"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median ratio iam_user/root: $median (target: at least 0.9)"
