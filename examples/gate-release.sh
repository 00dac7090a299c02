#!/usr/bin/env bash
# Gate a release with leakgate from any CI system or a shell.
#
#   LEAKGATE_SERVER=https://leakgate.internal LEAKGATE_API_KEY=lg_... \
#     examples/gate-release.sh ./model members.jsonl holdout.jsonl intent-bot 1.4.0
#
# Exit status is leakgate's: 0 gate passed, 1 gate failed (leakage over the policy),
# 2 audit failed or server unreachable, 3 bad input. Reports land in ./leakgate-report.*
set -euo pipefail

model=${1:?model folder (save_pretrained, safetensors)}
members=${2:?JSONL/CSV the model trained on}
non_members=${3:?JSONL/CSV held out from training}
name=${4:?model name}
version=${5:-dev}
: "${LEAKGATE_SERVER:?set LEAKGATE_SERVER}" "${LEAKGATE_API_KEY:?set LEAKGATE_API_KEY}"

# Optional: the policy lives on the server; set it here only if this pipeline owns it.
if [[ -n "${LEAKGATE_MAX_AUC:-}" ]]; then
  leakgate policy set --model "$name" --max-auc "$LEAKGATE_MAX_AUC" >/dev/null
fi

status=0
leakgate audit --model "$model" --members "$members" --non-members "$non_members" \
  --name "$name" --version "$version" ${LEAKGATE_EPSILON:+--epsilon "$LEAKGATE_EPSILON"} \
  --wait --gate --report-out leakgate-report.json 2> >(tee leakgate-audit.log >&2) || status=$?

# The audit id is on stderr ("audit <id> queued"); render the reports when there is one.
audit_id=$(sed -n 's/^audit \([0-9a-f]\{32\}\) queued.*/\1/p' leakgate-audit.log | head -n 1)
if [[ -n "$audit_id" && $status -le 1 ]]; then
  leakgate report "$audit_id" --format junit --out leakgate-report.xml
  leakgate report "$audit_id" --format md --out leakgate-report.md
  leakgate report "$audit_id" --format html --out leakgate-report.html
fi

case $status in
  0) echo "leakgate: gate passed for $name $version" ;;
  1) echo "leakgate: gate FAILED for $name $version (see leakgate-report.md)" >&2 ;;
  2) echo "leakgate: the audit did not complete" >&2 ;;
  *) echo "leakgate: bad input" >&2 ;;
esac
exit "$status"
