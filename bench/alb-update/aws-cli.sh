#!/usr/bin/env bash
# The AWS CLI way of doing what `bosar-deploy alb-update` does to the target
# group, as the legacy update-alb-for-websockets.sh did it: look up the target
# group ARN, set the five WebSocket attributes, read them back.
#
#   AWS_ENDPOINT_URL=http://127.0.0.1:PORT bench/alb-update/aws-cli.sh [TG_NAME]
#
# TG_NAME defaults to $TG_NAME or bosar-api-tg. Attribute values can be
# overridden with COOKIE_DURATION_SECONDS, ALGORITHM, DEREGISTRATION_DELAY.
# AWS_CLI picks the CLI (default: .venv/bin/aws if present, else `aws`).
# Only a loopback endpoint is accepted: this is a benchmark against moto,
# never against real AWS.
set -euo pipefail

: "${AWS_ENDPOINT_URL:?set AWS_ENDPOINT_URL=http://127.0.0.1:PORT (a moto server)}"
case "$AWS_ENDPOINT_URL" in
  http://127.*|http://localhost:*|http://localhost|http://\[::1\]*) ;;
  *) echo "aws-cli.sh: refusing non-loopback AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" >&2; exit 2 ;;
esac
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

TG_NAME="${1:-${TG_NAME:-bosar-api-tg}}"
COOKIE_DURATION_SECONDS="${COOKIE_DURATION_SECONDS:-86400}"
ALGORITHM="${ALGORITHM:-least_outstanding_requests}"
DEREGISTRATION_DELAY="${DEREGISTRATION_DELAY:-30}"

if [[ -z "${AWS_CLI:-}" ]]; then
  repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  if [[ -x "$repo_root/.venv/bin/aws" ]]; then AWS_CLI="$repo_root/.venv/bin/aws"
  elif command -v aws >/dev/null 2>&1; then AWS_CLI="aws"
  else echo "aws-cli.sh: no AWS CLI found; run scripts/setup.sh --bench" >&2; exit 127
  fi
fi
aws_() { "$AWS_CLI" --endpoint-url "$AWS_ENDPOINT_URL" --output json "$@"; }

# 1. Find the target group.
TG_ARN="$(aws_ elbv2 describe-target-groups --names "$TG_NAME" \
  --query 'TargetGroups[0].TargetGroupArn' --output text)"
if [[ -z "$TG_ARN" || "$TG_ARN" == "None" ]]; then
  echo "aws-cli.sh: target group $TG_NAME not found" >&2; exit 1
fi
echo "Target group: $TG_ARN" >&2

# 2. Sticky sessions (ALB cookie), least outstanding requests, short drain.
aws_ elbv2 modify-target-group-attributes \
  --target-group-arn "$TG_ARN" \
  --attributes \
    Key=stickiness.enabled,Value=true \
    Key=stickiness.type,Value=lb_cookie \
    Key=stickiness.lb_cookie.duration_seconds,Value="$COOKIE_DURATION_SECONDS" \
    Key=load_balancing.algorithm.type,Value="$ALGORITHM" \
    Key=deregistration_delay.timeout_seconds,Value="$DEREGISTRATION_DELAY" \
  >/dev/null

# 3. Show the result.
aws_ elbv2 describe-target-group-attributes --target-group-arn "$TG_ARN"
