"""`make release VERSION=1.2.0 [STAGE=prod]`: register the committed model as a version.

    python -m mnist_classifier.release 1.2.0 [--stage prod] [--no-push]
    (or `mnist-release ...`)

A release is a git tag made by GTO, DVC's model registry on git tags: `mnist-classifier@v1.2.0`
on the commit whose dvc.lock pins the model (and `mnist-classifier#prod#N` for a stage).
Anyone can then fetch that version's file from the DVC remote, without training or cloning:

    dvc artifacts get <repo URL> mnist-classifier --rev v1.2.0      # or: --stage prod
    mnist-serve --rev v1.2.0

Before tagging it checks what a fetch will need: the model in the workspace is the one
dvc.lock pins, dvc.lock is committed, and a DVC remote is configured in the commit; then it
pushes the model there (unless --no-push). The tags stay local until `git push --tags`.
`released_model` is the way back: a version's file, fetched for `mnist-serve --rev`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mnist_classifier.cli import run_program
from mnist_classifier.errors import PipelineError, first_line
from mnist_classifier.processes import checked, run

ARTIFACT = "mnist-classifier"  # its name under `artifacts:` in dvc.yaml
SEMVER = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


def check_ready() -> None:
    """Refuse, with what to do, anything that would make the release unfetchable or wrong."""
    if run("git", "status", "--porcelain", "--", "dvc.lock", "dvc.yaml", "params.yaml").stdout.strip():
        raise PipelineError(
            "dvc.lock, dvc.yaml or params.yaml has uncommitted changes: commit them "
            "first, so the release's commit pins this model."
        )
    status = run("dvc", "status", "train", "--json")
    if status.returncode or status.stdout.strip() not in ("{}", ""):
        raise PipelineError(
            "the model is not the one dvc.lock pins (`dvc status train` shows changes): "
            "`dvc repro` and commit, or `dvc checkout`, first."
        )
    if run("git", "diff", "--quiet", "HEAD", "--", ".dvc/config").returncode:
        raise PipelineError(".dvc/config has uncommitted changes: commit the remote first.")
    if run("dvc", "remote", "default").returncode:  # "No default remote set", exit 1
        raise PipelineError(
            "no default DVC remote: add and commit one (`dvc remote add -d store "
            "s3://bucket/path`; docs/team.md), so that a release can be fetched."
        )


def release(version: str, stage: str | None, push: bool) -> list[str]:
    """Check, push the model, tag the version (and the stage); the tags made."""
    from gto.api import assign, register
    from gto.exceptions import GTOException

    if not SEMVER.fullmatch(version):
        raise PipelineError(f"version {version!r} is not MAJOR.MINOR.PATCH, e.g. 1.2.0.")
    version = version if version.startswith("v") else f"v{version}"
    if stage is not None:  # before any tag or push: a stage GTO refuses would leave the version half-made
        from gto.constants import assert_name_is_valid

        try:
            assert_name_is_valid(stage)
        except GTOException as exc:
            raise PipelineError(f"stage {stage!r} is not a stage name GTO takes: {first_line(exc)}") from None
    check_ready()
    if push:
        checked(run("dvc", "push", "train"), "`dvc push train`")
    tags = [f"{ARTIFACT}@{version}"]
    try:
        register(".", ARTIFACT, "HEAD", version=version, message=f"{ARTIFACT} {version}")
        if stage:
            assign(".", ARTIFACT, stage, version=version, message=f"{ARTIFACT} {version} to {stage}")
            tags.append(f"{ARTIFACT}#{stage}")
    except GTOException as exc:
        raise PipelineError(f"gto refused: {first_line(exc)}") from None
    return tags


def released_model(rev: str, repo: str, into: Path) -> tuple[Path, str]:
    """The model file of a released version (`v1.2.0`) or stage (`prod`), fetched with DVC
    from the remote named in that version's commit: (the file, the version's name)."""
    import dvc.api
    from dvc.exceptions import DvcException

    local = "://" not in repo and not repo.startswith("git@")  # else a URL DVC clones
    if local and run("git", "-C", repo, "rev-parse", "--git-dir").returncode:
        raise PipelineError(f"--repo {repo}: not a git repository, so it holds no releases.")
    queries = [{"version": rev}, {"stage": rev}]
    if SEMVER.fullmatch(rev) and not rev.startswith("v"):  # 1.2.0 for v1.2.0, the tag GTO makes
        queries.insert(1, {"version": f"v{rev}"})
    for query in queries:
        try:
            found = dvc.api.artifacts_show(ARTIFACT, repo=repo, **query)
            rev = query.get("version", rev)
            break
        except Exception:  # noqa: BLE001 - DVC's and GTO's errors alike mean: not this one
            continue
    else:
        raise PipelineError(
            f"no release {rev!r} of {ARTIFACT} in {repo}; `gto show {ARTIFACT}` lists "
            "them, `make release VERSION=...` makes one."
        )
    target = into / "model.keras"
    try:
        with dvc.api.open(found["path"], repo=repo, rev=found["rev"], mode="rb") as src:
            target.write_bytes(src.read())
    except DvcException as exc:
        raise PipelineError(
            f"release {rev!r}: its model could not be fetched ({first_line(exc)}); "
            "was it pushed (`dvc push`)?"
        ) from None
    return target, rev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="MAJOR.MINOR.PATCH, e.g. 1.2.0")
    parser.add_argument("--stage", help="also assign this stage, e.g. prod")
    parser.add_argument("--no-push", action="store_true", help="do not push the model to the DVC remote")
    args = parser.parse_args()
    tags = release(args.version, args.stage, push=not args.no_push)
    print(
        f"release: tagged {', '.join(tags)}; share with `git push origin --tags`. Fetch with "
        f"`dvc artifacts get <repo> {ARTIFACT} --rev {tags[0].split('@')[1]}`."
    )


def cli() -> None:
    """The `mnist-release` console script."""
    run_program("release", main)


if __name__ == "__main__":
    cli()
