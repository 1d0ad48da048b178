#!/usr/bin/env bash
# Used by actions/bundle, in a job that runs none of the pull request's code and alone holds
# the registry credential. The report artifact the gate job uploaded ($1/report) is data from
# a job that ran the pull request's code, so its verdict is not trusted: the evidence is judged
# again with the config checked out here (the base branch's), and only a pass gets a bundle,
# created from that new verdict and registered with the model version.
# Inputs arrive through the environment: MLGATE_CONFIG, MLGATE_MODEL, MLGATE_MODEL_VERSION,
# MLGATE_EVIDENCE_DIR (inside the artifact).
set -uo pipefail
work=$1
evidence="$work/report/${MLGATE_EVIDENCE_DIR:-evidence}"
if [ -z "${MLGATE_MODEL_VERSION:-}" ]; then
  echo "::error title=mlgate::model-version is required: the registered version the gate judged"
  exit 2
fi
if [ ! -d "$evidence" ]; then
  echo "::error title=mlgate::the report artifact has no ${MLGATE_EVIDENCE_DIR:-evidence}/ directory: did the gate job upload it?"
  exit 2
fi
config=(--config "${MLGATE_CONFIG:-mlgate.yml}" --evidence-dir "$evidence")
# The verdict goes beside the artifact, not into it: the artifact's own verdict.json is unused.
mlgate gate "${config[@]}" --output "$work/verdict.json"
gate=$?
case "$gate" in
  0) ;;
  1 | 3)
    echo "::error title=mlgate::no bundle: the report's evidence does not pass this checkout's policy (${MLGATE_CONFIG:-mlgate.yml})"
    exit 1
    ;;
  *) exit "$gate" ;;
esac
args=(--verdict "$work/verdict.json" --version "$MLGATE_MODEL_VERSION" --output "$work/bundle")
if [ -n "${MLGATE_MODEL:-}" ]; then args+=(--model "$MLGATE_MODEL"); fi
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
mlgate bundle create "${config[@]}" "${args[@]}"
