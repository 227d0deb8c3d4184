"""One formatting for the whole tree: `make test` runs `ruff format --check`, and no file opts a line
or a block out of it (the formatter's skip and off comments), so the formatter, not the author, decides."""

from tests.pipeline_helpers import REPO_ROOT

FOLDERS = (
    "cli",
    "flows",
    "tasks",
    "stages",
    "recsys_models",
    "data_contracts",
    "serving",
    "reporting",
    "tests",
    "benchmarks",
)
OPT_OUTS = ("fmt: " + "skip", "fmt: " + "off")  # split so this file does not name them itself


def test_no_line_opts_out_of_the_formatter() -> None:
    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for folder in FOLDERS
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if any(opt_out in line for opt_out in OPT_OUTS)
    ]
    assert not found, f"formatter opt-outs: {found}"
    assert len(list((REPO_ROOT / "cli").rglob("*.py"))) > 0  # the folders are where this test looks
