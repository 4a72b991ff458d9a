"""Monitoring of what the serving proxy receives against the training data.

`fmnist monitor` reads the proxy's request logs (JSONL files, or its BigQuery
table on Cloud Run), computes TFDV statistics of the served instances and
checks them against the curated schema (SERVING environment), the training
statistics of the served model (skew) and the previous monitoring window
(drift); statistical tests with p-values compare the window with the served
model's outputs and image features on held-out data (monitoring/detectors.py).
It writes a report, alerts and can start a retraining run. See
docs/monitoring.md.
"""
