#!/usr/bin/env bash
# Used by the gate and root actions: run the gate, then always report, even when the gate
# failed, so the verdict reaches the PR. Exits non-zero only when reporting itself failed or
# the config is unusable; enforcing the verdict is the action's last step.
# Inputs arrive through the environment: MLGATE_CONFIG, MLGATE_EVIDENCE_DIR, MLGATE_COMMENT,
# MLGATE_ARTIFACT_NAME, MLGATE_CHECK_NAME, GITHUB_TOKEN.
set -uo pipefail
args=()
if [ -n "${MLGATE_CONFIG:-}" ]; then args+=(--config "$MLGATE_CONFIG"); fi
if [ -n "${MLGATE_EVIDENCE_DIR:-}" ]; then args+=(--evidence-dir "$MLGATE_EVIDENCE_DIR"); fi
mlgate gate "${args[@]}"
gate=$?
case "$gate" in
  0|1|3) ;;  # pass, fail, inconclusive: a verdict of this run exists and is reported
  *) exit "$gate" ;;  # usage/config error or a crash: no verdict of this run to report
esac
# The model card goes into the report artifact; the comment points at it. Without one the
# verdict must still be reported: a warning, not an exit.
if ! mlgate card "${args[@]}"; then
  echo "::warning title=mlgate::the model card could not be written"
fi
report_args=()
if [ -n "${MLGATE_COMMENT:-}" ]; then report_args+=(--comment "$MLGATE_COMMENT"); fi
if [ -n "${MLGATE_ARTIFACT_NAME:-}" ]; then report_args+=(--artifact-name "$MLGATE_ARTIFACT_NAME"); fi
if [ -n "${MLGATE_CHECK_NAME:-}" ]; then report_args+=(--check-name "$MLGATE_CHECK_NAME"); fi
mlgate report "${args[@]}" "${report_args[@]}"
