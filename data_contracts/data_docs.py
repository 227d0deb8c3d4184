"""Great Expectations' HTML data docs for a run's validation, written into the run folder.

Only the GX-engine expectations appear there (the Polars-engine ones are in the JSON report).
The docs describe the valid rows, which pass every expectation by construction; a table larger
than `MAX_DOCUMENTED_ROWS` is documented on every k-th row, so the site costs bounded memory
(the full table would be one more pandas copy of it).
"""

import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from data_contracts.engine import TableContract
from data_contracts.suite import GX_ENGINE, build_gx_suite, import_great_expectations, load_suite

SITE = "run_site"
MAX_DOCUMENTED_ROWS = 1_000_000
Table = pl.DataFrame | pl.LazyFrame  # a frame, or a scan of a written table


def write_data_docs(tables: list[tuple[TableContract, Table, dict[str, Any]]], site_dir: Path) -> Path:
    """Validate each (contract, frame, parameters) through a GX Checkpoint that updates a local
    data-docs site in `site_dir`; return the site's `index.html`."""
    with tempfile.TemporaryDirectory(prefix="gx_project_") as project:  # GX's stores; only the site is kept
        return _build_site(tables, Path(project), site_dir)


def documented_rows(frame: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """`frame`, or every k-th row of it when it has more than `MAX_DOCUMENTED_ROWS` rows."""
    lazy = frame.lazy()
    step = -(-lazy.select(pl.len()).collect().item() // MAX_DOCUMENTED_ROWS)
    return (lazy if step <= 1 else lazy.gather_every(step)).collect()


def _build_site(tables: list[tuple[TableContract, Table, dict[str, Any]]], project: Path, site_dir: Path) -> Path:
    gx = import_great_expectations()
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(project))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        site_name=SITE,
        site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
        },
    )
    for contract, frame, parameters in tables:
        spec = load_suite(contract.suite_file)
        expectations = tuple(
            e for e in spec.expectations if e.engine == GX_ENGINE and e.parameters <= parameters.keys()
        )
        suite = context.suites.add(build_gx_suite(spec.name, expectations))
        batch_definition = (
            context.data_sources.add_pandas(name=contract.table)
            .add_dataframe_asset(name=contract.table)
            .add_batch_definition_whole_dataframe(name="whole_table")
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(data=batch_definition, suite=suite, name=contract.table)
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=contract.table,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[SITE])],
                result_format={"result_format": "SUMMARY"},
            )
        )
        columns = sorted({e.column for e in expectations if e.column})
        needed = {name: parameters[name] for e in expectations for name in e.parameters}
        documented = documented_rows(frame.select(columns))
        checkpoint.run(batch_parameters={"dataframe": documented.to_pandas()}, expectation_parameters=needed)
    return site_dir / "index.html"
