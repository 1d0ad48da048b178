"""The GitHub workflows `mlgate init` writes: the gate on pull requests, merge queues and pushes
to the default branch, the report on pull requests from forks (and, with --promotion, bundle
registration and the promotion workflow), in the shape of the starters in mlgate's workflows/
directory."""

from __future__ import annotations

import json
import shlex

from mlgate.init.detect import Project
from mlgate.init.pin import PLACEHOLDER, Pin

# Third-party actions mlgate's own workflows pin (kept in step with them).
_CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
_SETUP_PYTHON = "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0"
# mlgate's own jobs (bundle, promote, fork report) run mlgate only: any Python it supports will do.
_MLGATE_PYTHON = "3.11"
# The gate workflow's `name:`, which the fork report's workflow_run trigger must name exactly.
GATE_NAME = "mlgate"


def _setup_steps(python: str) -> str:
    """The first steps of every job: the repository (no token left behind), then Python."""
    return (
        f"      - uses: {_CHECKOUT}\n"
        "        with:\n"
        "          persist-credentials: false\n"
        f"      - uses: {_SETUP_PYTHON}\n"
        "        with:\n"
        f"          python-version: {json.dumps(python)}\n"
    )


# The registry credential: secrets of the job's GitHub environment, on mlgate's step only.
_REGISTRY_SECRETS = (
    "        env:\n"
    "          MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}\n"
    "          MLFLOW_TRACKING_TOKEN: ${{ secrets.MLFLOW_TRACKING_TOKEN }}\n"
)


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


def _lines(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def _header(pin: Pin, promotion: bool) -> str:
    version = (
        ["# model-version, when you run this workflow by hand, is that version's number."]
        if promotion
        else []
    )
    return (
        _lines(
            "# mlgate: the gate on every pull request, merge queue entry and push to the default",
            "# branch. Written by `mlgate init`.",
        )
        + _pin_comment(pin)
        + _lines(
            "#",
            "# Where the candidate comes from: mlgate.yml names it (quality.candidate,",
            "# load.serve.model_uri), e.g. models:/NAME@candidate - the alias your training",
            "# pipeline sets on the version it registered - or a model directory this job builds.",
            *version,
            "# How the job reaches the team's MLflow registry: this job runs the pull request's",
            "# code, so it holds no registry secret: its MLFLOW_TRACKING_URI is the repository",
            "# variable MLFLOW_TRACKING_URI, the registry's address for reads that need no",
            "# credential.",
            "# When there is no registry (or the variable is not set), stages that read models:/",
            "# URIs fail and say why - they never pass on floors alone: gate a model directory the",
            "# job builds instead, or leave quality and load commented out in mlgate.yml.",
        )
    )


def _triggers(branch: str, promotion: bool) -> str:
    dispatch = [
        "  workflow_dispatch:",
        "    inputs:",
        "      model-version:",
        "        description: Registered model version the gate judged; on a pass its evidence "
        "bundle is registered.",
        "        type: string",
        '        default: ""',
    ]
    return _lines(
        "on:",
        "  pull_request:",
        "  merge_group:",
        "  push:",
        f"    branches: [{branch}]",
        *(dispatch if promotion else []),
    )


def gate(project: Project, pin: Pin, branch: str, promotion: bool) -> str:
    install = install_command(project)
    install_step = (
        [
            "      - name: Install the project and what its tests need",
            f"        run: {json.dumps(install)}",
        ]
        if install
        else []
    )
    text = (
        _header(pin, promotion)
        + _lines(f"name: {GATE_NAME}", "")
        + _triggers(branch, promotion)
        + _lines(
            "",
            "permissions: {}",
            "",
            "# A new push to a pull request cancels its gate still running on the old commit.",
            "concurrency:",
            "  group: mlgate-${{ github.workflow }}-${{ github.event_name }}-${{ github.ref }}",
            "  cancel-in-progress: true",
            "",
            "jobs:",
            "  gate:",
            "    name: gate",
            "    runs-on: ubuntu-latest",
            "    permissions:",
            "      contents: read",
            "      checks: write # check runs per stage and the aggregate 'mlgate' check",
            "      statuses: write # fallback when check runs are not allowed",
            "      pull-requests: write # the sticky PR comment",
            "      security-events: write # SARIF of the scan stage to code scanning",
            "    env:",
            "      MLFLOW_TRACKING_URI: ${{ vars.MLFLOW_TRACKING_URI }}",
            "    steps:",
        )
        + _setup_steps(project.python)
        + _lines(
            *install_step,
            "      # Runs the stages in mlgate.yml, gates, reports checks, the comment and the",
            "      # summary, and uploads .mlgate/ (evidence, verdict, report) as the artifact",
            "      # mlgate-report.",
            f"      - uses: {_uses(pin)}",
            "        with:",
            "          config: mlgate.yml",
        )
    )
    return text + _bundle_job(pin) if promotion else text


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
        + _setup_steps(_MLGATE_PYTHON)
        + f"      - uses: {_uses(pin, 'bundle')}\n"
        + _REGISTRY_SECRETS
        + "        with:\n"
        "          model-version: ${{ inputs.model-version }}\n"
        "          config: mlgate.yml\n"
    )


def fork_report(pin: Pin) -> str:
    """On workflow_run of the gate: judge a fork's run with the config, policy and waivers of
    its pull request's base branch, and report on the pull request. Steps rather than the
    reusable workflow, as in the gate: no `$/` and no `cache-mode:`, which GitHub Enterprise
    Server does not know. No checkout: the action reads the base branch through the API."""
    return (
        _lines(
            "# mlgate fork report: checks and the sticky comment on pull requests from forks.",
            "# Written by `mlgate init` (`--no-fork-report` leaves it out).",
        )
        + _pin_comment(pin)
        + _lines(
            "#",
            f'# A fork\'s pull_request run of the workflow "{GATE_NAME}" (mlgate.yml in this',
            "# directory) gets a read-only token: it runs the stages and uploads the artifact",
            "# mlgate-report but cannot publish. When it completes, this workflow runs in this",
            "# repository - the default branch's copy of this file, with a write token - and runs",
            "# none of the pull request's code: it judges that run's evidence with the mlgate.yml,",
            "# policy and waivers of the pull request's base branch (read through the API), and",
            "# reports on the pull request whose head is the run's commit. It takes effect once",
            "# it is on the default branch. Pull requests from this repository's branches, and",
            "# merge queues, are reported by the gate workflow itself: for them this job is",
            "# skipped.",
            f"name: {GATE_NAME} fork report",
            "",
            "on:",
            "  # zizmor's dangerous-triggers flags every workflow_run: the trigger that gives a",
            "  # fork's result a write token. Mitigated here: the job checks nothing out, runs",
            "  # none of the pull request's code, reads the run's artifact as data through the API",
            "  # (only mlgate's evidence, size-capped, no links or paths out), takes the pull",
            "  # request from the API, not from the artifact, and the config, policy and waivers",
            "  # from the pull request's base branch, not from the fork.",
            "  workflow_run: # zizmor: ignore[dangerous-triggers]",
            f"    workflows: [{GATE_NAME}] # the gate workflow's name:, exactly",
            "    types: [completed]",
            "",
            "permissions: {}",
            "",
            "jobs:",
            "  report:",
            "    name: report",
            "    if: >-",
            "      github.event.workflow_run.event == 'pull_request'",
            "      && github.event.workflow_run.head_repository.full_name != github.repository",
            "    runs-on: ubuntu-latest",
            "    # A newer run of the same fork branch supersedes this one.",
            "    concurrency:",
            "      group: ${{ github.workflow }}-${{ github.event.workflow_run.head_repository"
            ".full_name }}-${{ github.event.workflow_run.head_branch }}",
            "      cancel-in-progress: true",
            "    permissions:",
            "      actions: read # the pull request run's artifact",
            "      contents: read # the base branch's mlgate.yml and waivers, through the API",
            "      checks: write # check runs per stage and the aggregate 'mlgate' check",
            "      statuses: write # fallback when check runs are not allowed",
            "      pull-requests: write # the sticky PR comment (and finding the pull request)",
            "    steps:",
            "      # No checkout: the pull request's code never runs here, and the base branch's",
            "      # files come through the API.",
            f"      - uses: {_SETUP_PYTHON}",
            "        with:",
            f"          python-version: {json.dumps(_MLGATE_PYTHON)}",
        )
        + f"      - uses: {_uses(pin, 'fork-report')}\n"
        + _lines("        with:", "          config: mlgate.yml")
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
        + _setup_steps(_MLGATE_PYTHON)
        + f"      - uses: {_uses(pin, 'promote')}\n"
        + _REGISTRY_SECRETS
        + "        with:\n"
        "          version: ${{ inputs.version }}\n"
        "          stage: ${{ inputs.stage }}\n"
        "          rollback: ${{ inputs.rollback }}\n"
        "          reason: ${{ inputs.reason }}\n"
    )
