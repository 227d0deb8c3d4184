"""Pipeline stages as plain functions over folders: each reads the files of the stage before and
writes its own Parquet files plus a manifest. Prefect tasks (`tasks/`) wrap them; tests call them directly."""
