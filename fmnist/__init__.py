"""The `fmnist` command line: ingest, run the pipeline, report, serve."""
