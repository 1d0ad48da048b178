"""The GitHub workflows `mlgate init` writes: the gate on pull requests, merge queues and pushes
to the default branch (and, with --promotion, bundle registration and the promotion workflow),
in the shape of the starters in mlgate's workflows/ directory."""

from __future__ import annotations

import json
import shlex

from mlgate.init.detect import Project
from mlgate.init.pin import PLACEHOLDER, Pin

# Third-party actions mlgate's own workflows pin (kept in step with them).
_CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
_SETUP_PYTHON = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0"
_PYTHON = '"3.11"'


def _pin_comment(pin: Pin) -> str:
    if pin.sha is None:
        return (
            f"# {PLACEHOLDER}: replace it with the full commit SHA of the mlgate release you\n"
            "# reviewed (`mlgate init` could not tell which commit it runs from); a tag can be\n"
            "# moved, a SHA cannot.\n"
        )
    return (
        f"# mlgate's actions are pinned to {pin.sha}, the commit of\n"
        f"# {pin.source}: update the SHA (all of them) to upgrade.\n"
    )


def _uses(pin: Pin, action: str = "") -> str:
    path = f"/actions/{action}" if action else ""
    comment = "# replace with the mlgate commit SHA" if pin.sha is None else "# mlgate"
    return f"{pin.repository}{path}@{pin.ref} {comment}"


def install_command(project: Project) -> str | None:
    """How the job installs the project the way a developer does; None: nothing to install."""
    args: list[str] = []
    for requirements in project.requirements:
        args += ["-r", requirements]
    if project.pyproject:
        args.append(f".[{project.extras[0]}]" if project.extras else ".")
    # The stages run pytest in the project's environment: it must be there.
    if project.tests and not project.mentions_pytest:
        args.append("pytest")
    if project.benchmarks and not project.mentions_pytest_benchmark:
        args.append("pytest-benchmark")
    if not args:
        return None
    return "python -m pip install " + " ".join(shlex.quote(a) for a in args)


def gate(project: Project, pin: Pin, branch: str, promotion: bool) -> str:
    install = install_command(project)
    install_step = (
        "      - name: Install the project and what its tests need\n"
        f"        run: {json.dumps(install)}\n"
        if install
        else ""
    )
    dispatch = (
        "  workflow_dispatch:\n"
        "    inputs:\n"
        "      model-version:\n"
        "        description: Registered model version the gate judged; on a pass its evidence "
        "bundle is registered.\n"
        "        type: string\n"
        '        default: ""\n'
        if promotion
        else ""
    )
    text = (
        "# mlgate: the gate on every pull request, merge queue entry and push to the default\n"
        "# branch. Written by `mlgate init`.\n" + _pin_comment(pin) + "#\n"
        "# Where the candidate comes from: mlgate.yml names it (quality.candidate,\n"
        "# load.serve.model_uri), e.g. models:/NAME@candidate, the alias your training pipeline\n"
        "# sets on the version it registered, or a model directory this job builds.\n"
        "# How the job reaches the team's MLflow registry: MLFLOW_TRACKING_URI below comes from\n"
        "# the repository or organisation variable MLFLOW_TRACKING_URI - the registry's address,\n"
        "# no credential: this job runs the pull request's code, so it holds no registry secret\n"
        "# (the server must allow reads without one, e.g. from your runners' network). When there\n"
        "# is no registry (or the variable is not set), stages that read models:/ URIs fail and\n"
        "# say so - they never pass on floors alone: use a model directory the job builds, or\n"
        "# leave quality and load commented out in mlgate.yml.\n"
        "name: mlgate\n"
        "\n"
        "on:\n"
        "  pull_request:\n"
        "  merge_group:\n"
        "  push:\n"
        f"    branches: [{branch}]\n" + dispatch + "\n"
        "permissions: {}\n"
        "\n"
        "# A new push to a pull request cancels its gate still running on the old commit.\n"
        "concurrency:\n"
        "  group: mlgate-${{ github.workflow }}-${{ github.event_name }}-${{ github.ref }}\n"
        "  cancel-in-progress: true\n"
        "\n"
        "jobs:\n"
        "  gate:\n"
        "    name: gate\n"
        "    runs-on: ubuntu-latest\n"
        "    permissions:\n"
        "      contents: read\n"
        "      checks: write # check runs per stage and the aggregate 'mlgate' check\n"
        "      statuses: write # fallback when check runs are not allowed\n"
        "      pull-requests: write # the sticky PR comment\n"
        "      security-events: write # SARIF of the scan stage to code scanning\n"
        "    env:\n"
        "      MLFLOW_TRACKING_URI: ${{ vars.MLFLOW_TRACKING_URI }}\n"
        "    steps:\n"
        f"      - uses: {_CHECKOUT}\n"
        "        with:\n"
        "          persist-credentials: false\n"
        f"      - uses: {_SETUP_PYTHON}\n"
        "        with:\n"
        f"          python-version: {_PYTHON}\n" + install_step + "      # Runs the stages in "
        "mlgate.yml, gates, reports checks, the comment and the summary,\n"
        "      # and uploads .mlgate/ (evidence, verdict, report) as the artifact mlgate-report.\n"
        f"      - uses: {_uses(pin)}\n"
        "        with:\n"
        "          config: mlgate.yml\n"
    )
    if promotion:
        text += _bundle_job(pin)
    return text


def _bundle_job(pin: Pin) -> str:
    return (
        "\n"
        "  # Run this workflow by hand on the default branch with model-version (the registered\n"
        "  # version the candidate URI pointed at) to make that version promotable. This job runs\n"
        "  # no code of the repository: the checkout is read for mlgate.yml only, the gate's\n"
        "  # report artifact is data mlgate judges again, and only mlgate's pinned action runs.\n"
        "  # Its registry credential is a secret of the GitHub environment mlgate-registry\n"
        "  # (MLFLOW_TRACKING_URI, and MLFLOW_TRACKING_TOKEN if the server needs one): restrict\n"
        "  # that environment's deployment branches to the default branch.\n"
        "  bundle:\n"
        "    name: bundle\n"
        "    needs: gate\n"
        "    if: github.event_name == 'workflow_dispatch' && inputs.model-version != ''\n"
        "    runs-on: ubuntu-latest\n"
        "    environment: mlgate-registry\n"
        "    permissions:\n"
        "      contents: read # mlgate.yml of the branch the workflow was run on\n"
        "    steps:\n"
        f"      - uses: {_CHECKOUT}\n"
        "        with:\n"
        "          persist-credentials: false\n"
        f"      - uses: {_SETUP_PYTHON}\n"
        "        with:\n"
        f"          python-version: {_PYTHON}\n"
        f"      - uses: {_uses(pin, 'bundle')}\n"
        "        env:\n"
        "          MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}\n"
        "          MLFLOW_TRACKING_TOKEN: ${{ secrets.MLFLOW_TRACKING_TOKEN }}\n"
        "        with:\n"
        "          model-version: ${{ inputs.model-version }}\n"
        "          config: mlgate.yml\n"
    )


def promote(pin: Pin) -> str:
    return (
        "# mlgate promote: move a gated model version to a stage (an MLflow alias), or roll a\n"
        "# stage back. Written by `mlgate init --promotion`.\n" + _pin_comment(pin) + "#\n"
        "# Create one GitHub environment per stage (staging, production) with the protection\n"
        "# rules you want (required reviewers; deployment branches: the default branch only),\n"
        "# and store the registry credential as secrets of each environment:\n"
        "# MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN if the server needs one) - not as\n"
        "# repository secrets, which every job of every workflow could read. Without them the\n"
        "# job fails with the reason; mlgate refuses versions without a registered bundle.\n"
        "name: mlgate promote\n"
        "\n"
        "on:\n"
        "  workflow_dispatch:\n"
        "    inputs:\n"
        "      version:\n"
        "        description: Model version to promote (for a rollback, the version to go back "
        "to; empty for the previous one).\n"
        "        type: string\n"
        '        default: ""\n'
        "      stage:\n"
        "        description: Stage to promote to or roll back.\n"
        "        type: choice\n"
        "        options: [staging, production]\n"
        "      rollback:\n"
        "        description: Roll the stage back instead of promoting.\n"
        "        type: boolean\n"
        "        default: false\n"
        "      reason:\n"
        "        description: Why, for the ledger.\n"
        "        type: string\n"
        '        default: ""\n'
        "\n"
        "permissions: {}\n"
        "\n"
        "jobs:\n"
        "  promote:\n"
        "    name: promote\n"
        "    runs-on: ubuntu-latest\n"
        "    # The stage's environment: its protection rules apply before the job starts, its\n"
        "    # approvals are what mlgate reads back, and its secrets exist only in this job.\n"
        "    environment: ${{ inputs.stage }}\n"
        "    # One promotion per stage at a time; a second one waits instead of racing.\n"
        "    concurrency:\n"
        "      group: mlgate-promote-${{ inputs.stage }}\n"
        "      cancel-in-progress: false\n"
        "    permissions:\n"
        "      contents: read # mlgate.yml of the branch the promotion runs on\n"
        "      deployments: write # the GitHub deployment recording the promotion\n"
        "      actions: read # the run's environment approvals\n"
        "    steps:\n"
        f"      - uses: {_CHECKOUT}\n"
        "        with:\n"
        "          persist-credentials: false\n"
        f"      - uses: {_SETUP_PYTHON}\n"
        "        with:\n"
        f"          python-version: {_PYTHON}\n"
        f"      - uses: {_uses(pin, 'promote')}\n"
        "        env:\n"
        "          MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}\n"
        "          MLFLOW_TRACKING_TOKEN: ${{ secrets.MLFLOW_TRACKING_TOKEN }}\n"
        "        with:\n"
        "          version: ${{ inputs.version }}\n"
        "          stage: ${{ inputs.stage }}\n"
        "          rollback: ${{ inputs.rollback }}\n"
        "          reason: ${{ inputs.reason }}\n"
    )
